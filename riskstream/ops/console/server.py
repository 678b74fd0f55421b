"""The console's web application (aiohttp): sign-in, the five pages, their JSON, and the two actions.

`make_app(state)` builds it from a `ConsoleState`: the read model and its lock, the users, the sessions and a
`publish(msg)` that signs and sends a control message. Rules every request meets:

* no session: a page redirects to /login, an /api/ request or a POST gets 401;
* a POST must come from this console (Origin, else Referer) and carry the session's CSRF token, else 403;
* an action that changes something (a review verdict, a breaker reset) needs the operator role, else 403;
  a look-up (account id, backtest file) is a POST too, so the id is never in a URL, but a viewer may make it;
* the session cookie is HttpOnly and SameSite=Strict; a session idle longer than its TTL is gone;
* after 5 failed sign-ins in 5 min for a user name or from a client address, sign-in answers 429 with a
  Retry-After until the oldest ages out (`auth.Throttle`), whether the user exists or not.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import orjson
from aiohttp import web

from riskstream.core.errors import OperatorError
from riskstream.ops.console import auth, views
from riskstream.ops.console.actions import RESETS, VERDICTS, breaker_control, review_control

log = logging.getLogger("riskstream.ops.console")

COOKIE = "riskstream_console"
REFRESH_HEADER = "X-Console-Refresh"  # sent by the overview's timer: keeps no session alive
PUBLIC = frozenset({"/login", "/static/console.css", "/static/console.js", "/healthz"})
MAX_UPLOAD = 32 * 1024 * 1024
_DUMMY_HASH = auth.hash_password("not a password", iterations=auth.PBKDF2_ITERATIONS)


@dataclass
class ConsoleState:
    model: object
    users: dict
    sessions: auth.Sessions
    publish: Callable[[dict], None]
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: pseudonym -> {decision id: (features, hash matches?)}, when the valid events are followed
    features: Callable[[str], dict] | None = None
    signer_id: str = "?"
    #: why the background reader is not following the topics right now, or None
    health: Callable[[], str | None] = field(default=lambda: None)
    clock: Callable[[], int] = field(default=lambda: int(time.time() * 1000))
    throttle: auth.Throttle = field(default_factory=auth.Throttle)


STATE = web.AppKey("state", ConsoleState)
SESSION = web.RequestKey("session", auth.Session)


def _state(request) -> ConsoleState:
    return request.app[STATE]


def _wants_json(request) -> bool:
    return request.path.startswith("/api/")


@web.middleware
async def security_headers(request, handler):
    try:
        resp = await handler(request)
    except web.HTTPException as exc:
        resp = exc
    resp.headers.setdefault("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; "
                                                       "img-src 'self' data:; connect-src 'self'; form-action "
                                                       "'self'; frame-ancestors 'none'; base-uri 'none'")
    resp.headers.setdefault("X-Frame-Options", "DENY")
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("Referrer-Policy", "same-origin")
    resp.headers.setdefault("Cache-Control", "no-store")
    if isinstance(resp, web.HTTPException):
        raise resp
    return resp


def _refuse(request, status: int, text: str):
    if _wants_json(request):
        return web.json_response({"error": text}, status=status)
    return web.Response(status=status, text=text, content_type="text/plain")


@web.middleware
async def authenticate(request, handler):
    if request.path in PUBLIC:
        return await handler(request)
    st = _state(request)
    session = st.sessions.get(request.cookies.get(COOKIE), touch=REFRESH_HEADER not in request.headers)
    if session is None:
        if request.method == "GET" and not _wants_json(request):
            raise web.HTTPSeeOther("/login?next=" + _safe_next(request.path))
        return _refuse(request, 401, "sign in first: no session, or it expired")
    request[SESSION] = session
    if request.method not in ("GET", "HEAD"):
        if not auth.same_origin(request.headers.get("Origin"), request.headers.get("Referer"), request.host,
                                request.scheme):
            return _refuse(request, 403, "refused: the request does not come from a page of this console (Origin)")
        form = await request.post()
        sent = form.get("csrf") or request.headers.get("X-CSRF-Token")
        if not auth.csrf_ok(session, sent if isinstance(sent, str) else None):
            return _refuse(request, 403, "refused: missing or wrong CSRF token; reload the page and try again")
    return await handler(request)


def _safe_next(path: str) -> str:
    return path if path.startswith("/") and not path.startswith("//") else "/"


def _require_operator(request):
    s = request[SESSION]
    if not auth.may(s.role, "act"):
        return _refuse(request, 403, f"refused: {s.user} is a {s.role}; actions need the operator role")
    return None


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, content_type="text/html", status=status)


def _take_flash(session) -> str | None:
    msg, session.flash = session.flash, None
    return msg


# -- sign-in --------------------------------------------------------------------------------------------------------
async def login_get(request):
    return _html(views.login_page(next_url=_safe_next(request.query.get("next", "/"))))


async def login_post(request):
    st = _state(request)
    if not auth.same_origin(request.headers.get("Origin"), request.headers.get("Referer"), request.host,
                            request.scheme):
        return _refuse(request, 403, "refused: the request does not come from a page of this console (Origin)")
    form = await request.post()
    name, password = str(form.get("user", "")), str(form.get("password", ""))
    next_url = _safe_next(str(form.get("next", "/")))
    keys = (f"user:{name}", f"addr:{request.remote}")  # behind a proxy the address is the proxy's (docs/console.md)
    wait = st.throttle.retry_after(keys, st.clock())
    if wait:  # refused before the password is checked, the same for a user who exists and one who does not
        log.warning("console sign-in throttled")
        resp = _html(views.login_page(f"Too many failed sign-ins for this user or from this address. Try again in "
                                      f"{_wait_text(wait)}.", next_url), status=429)
        resp.headers["Retry-After"] = str(wait)
        return resp
    user = st.users.get(name)
    loop = asyncio.get_running_loop()
    ok = await loop.run_in_executor(None, auth.check_password, password,
                                    user.password_hash if user else _DUMMY_HASH)
    if not (user and ok):
        st.throttle.failed(keys, st.clock())
        log.warning("console sign-in refused")
        return _html(views.login_page("Unknown user or wrong password.", next_url), status=401)
    st.throttle.succeeded(keys[0])
    session = st.sessions.create(user)
    resp = web.HTTPSeeOther(next_url)
    resp.set_cookie(COOKIE, session.token, httponly=True, samesite="Strict", path="/", secure=request.secure)
    log.info("console sign-in: %s (%s)", user.name, user.role)
    raise resp


def _wait_text(seconds: int) -> str:
    return f"{seconds} s" if seconds < 120 else f"{-(-seconds // 60)} min"


async def logout(request):
    st = _state(request)
    st.sessions.drop(request.cookies.get(COOKIE))
    resp = web.HTTPSeeOther("/login")
    resp.del_cookie(COOKIE, path="/")
    raise resp


# -- overview -------------------------------------------------------------------------------------------------------
def _overview(st: ConsoleState) -> dict:
    with st.lock:
        o = st.model.overview(st.clock())
    o["reader_error"] = st.health()
    return o


async def overview(request):
    s = request[SESSION]
    return _html(views.overview_page(_overview(_state(request)), user=s, csrf=s.csrf))


async def api_overview(request):
    o = _overview(_state(request))
    return web.json_response({"data": o, "html": {f"f-{k}": v for k, v in views.overview_fragments(o).items()}},
                             dumps=lambda x: orjson.dumps(x, default=str).decode())


# -- account --------------------------------------------------------------------------------------------------------
async def account_form(request):
    s = request[SESSION]
    return _html(views.account_page(None, user=s, csrf=s.csrf, msg=_take_flash(s)))


async def account_lookup(request):
    st, s = _state(request), request[SESSION]
    account_id = str((await request.post()).get("account_id", "")).strip()
    if not account_id:
        s.flash = "Enter an account id."
        raise web.HTTPSeeOther("/account")
    p = st.model.pseudonym(account_id)
    s.entered[p] = account_id
    raise web.HTTPSeeOther(f"/account/{p}")


def _account(st: ConsoleState, pseudonym: str):
    with st.lock:
        a = st.model.account(pseudonym)
    feats = None
    if a is not None and st.features is not None:
        feats = st.features(pseudonym)
    return a, feats


async def account_view(request):
    st, s = _state(request), request[SESSION]
    p = request.match_info["pseudonym"]
    a, feats = _account(st, p)
    return _html(views.account_page(a, user=s, csrf=s.csrf, entered=s.entered.get(p), pseudonym=p, features=feats,
                                    msg=_take_flash(s)), status=200 if a else 404)


async def api_account(request):
    a, feats = _account(_state(request), request.match_info["pseudonym"])
    if a is None:
        return web.json_response({"error": "no records for this pseudonym"}, status=404)
    a["features"] = {k: {"features": f, "hash_matches": ok} for k, (f, ok) in (feats or {}).items()}
    return web.json_response(a, dumps=lambda x: orjson.dumps(x, default=str).decode())


# -- review queue ---------------------------------------------------------------------------------------------------
async def review_view(request):
    st, s = _state(request), request[SESSION]
    with st.lock:
        queue, verdicts = st.model.review_queue(), list(st.model.verdicts)
    return _html(views.review_page(queue, verdicts, user=s, csrf=s.csrf, can_act=auth.may(s.role, "act"),
                                   msg=_take_flash(s)))


async def api_review(request):
    st = _state(request)
    with st.lock:
        return web.json_response({"queue": st.model.review_queue(), "verdicts": st.model.verdicts},
                                 dumps=lambda x: orjson.dumps(x, default=str).decode())


async def _publish(st: ConsoleState, msg: dict) -> None:
    await asyncio.get_running_loop().run_in_executor(None, st.publish, msg)


async def _published(st: ConsoleState, s, msg: dict, what: str, page: str, detail: str = ""):
    """Publish an action's signed control message, log and flash it, and send the browser back to `page`."""
    await _publish(st, msg)
    log.info("console %s %s published as control message %s by %s", msg["kind"], what, msg["control_id"], s.user)
    s.flash = (f"Published the signed {msg['kind']} control message {msg['control_id']} ({what}){detail}, "
               f"signed by {st.signer_id}.")
    raise web.HTTPSeeOther(page)


async def review_act(request):
    refused = _require_operator(request)
    if refused:
        return refused
    st, s = _state(request), request[SESSION]
    form = await request.post()
    decision_id, verdict = str(form.get("decision_id", "")), str(form.get("verdict", ""))
    note = str(form.get("note", "")).strip()[:500]
    if verdict not in VERDICTS or not note:
        return _refuse(request, 400, "a verdict needs fraud, clear or hold and a note")
    with st.lock:
        d = st.model.decision(decision_id)
        account_id = st.model.raw_account_id(d["account"]) if d else None
    if not account_id:
        return _refuse(request, 404, "no such decision on the decisions topic")
    record = {k: v for k, v in d.items() if k not in ("account", "kind", "time", "audit")}
    try:
        msg = review_control(account_id, decision_id, verdict, note, s.user,
                             decision={**record, "account_id": account_id})
    except (OperatorError, ValueError) as exc:
        return _refuse(request, 400, f"refused: {exc}")
    await _published(st, s, msg, verdict, "/review", detail=f" for decision {decision_id}")


# -- breaker --------------------------------------------------------------------------------------------------------
async def breaker_view(request):
    st, s = _state(request), request[SESSION]
    with st.lock:
        b = st.model.breaker()
    return _html(views.breaker_page(b, user=s, csrf=s.csrf, can_act=auth.may(s.role, "act"), msg=_take_flash(s)))


async def api_breaker(request):
    st = _state(request)
    with st.lock:
        return web.json_response(st.model.breaker(), dumps=lambda x: orjson.dumps(x, default=str).decode())


async def breaker_act(request):
    refused = _require_operator(request)
    if refused:
        return refused
    st, s = _state(request), request[SESSION]
    form = await request.post()
    how, reason = str(form.get("how", "")), str(form.get("reason", "")).strip()[:500]
    if how not in RESETS or not reason:
        return _refuse(request, 400, "a breaker reset needs release or drop and a reason")
    msg = breaker_control(how, reason, s.user)
    await _published(st, s, msg, how, "/breaker")


# -- backtest -------------------------------------------------------------------------------------------------------
async def backtest_view(request):
    s = request[SESSION]
    name, report = s.backtest or ("", None)
    if report is None and request.app.get(BACKTEST):
        name, report = request.app[BACKTEST]
    return _html(views.backtest_page(report, user=s, csrf=s.csrf, name=name, msg=_take_flash(s)))


BACKTEST = web.AppKey("backtest", tuple)


async def backtest_open(request):
    s = request[SESSION]
    f = (await request.post()).get("file")
    if not isinstance(f, web.FileField):
        return _refuse(request, 400, "choose a backtest.json file")
    try:
        report = orjson.loads(f.file.read())
        if not isinstance(report, dict) or not isinstance(report.get("policies"), list):
            raise ValueError("no 'policies' list")
    except (ValueError, orjson.JSONDecodeError) as exc:
        s.flash = f"{f.filename}: <file>: not a riskstream backtest report ({exc}). Fix: open the backtest.json " \
                  f"that `riskstream backtest --out DIR` wrote"
        raise web.HTTPSeeOther("/backtest")
    s.backtest = (str(f.filename), report)
    raise web.HTTPSeeOther("/backtest")


# -- static ---------------------------------------------------------------------------------------------------------
async def css(request):
    return web.Response(text=views.CSS, content_type="text/css")


async def js(request):
    return web.Response(text=views.JS, content_type="application/javascript")


async def healthz(request):
    return web.Response(text="ok")


def make_app(state: ConsoleState, *, backtest: tuple | None = None) -> web.Application:
    """The aiohttp application over `state` (and a backtest report every user sees until they open their own)."""
    app = web.Application(middlewares=[security_headers, authenticate], client_max_size=MAX_UPLOAD)
    app[STATE] = state
    if backtest:
        app[BACKTEST] = backtest
    app.add_routes([
        web.get("/login", login_get), web.post("/login", login_post), web.post("/logout", logout),
        web.get("/", overview), web.get("/api/overview", api_overview),
        web.get("/account", account_form), web.post("/account", account_lookup),
        web.get("/account/{pseudonym:[0-9a-f]{8,64}}", account_view),
        web.get("/api/account/{pseudonym:[0-9a-f]{8,64}}", api_account),
        web.get("/review", review_view), web.post("/review", review_act), web.get("/api/review", api_review),
        web.get("/breaker", breaker_view), web.post("/breaker", breaker_act), web.get("/api/breaker", api_breaker),
        web.get("/backtest", backtest_view), web.post("/backtest", backtest_open),
        web.get("/static/console.css", css), web.get("/static/console.js", js), web.get("/healthz", healthz),
    ])
    return app
