"""The console's web application through aiohttp's test client: sign-in, 401/redirect without a session, 403 for a
viewer's action and for a missing or forged CSRF token or Origin, the control messages the actions publish, and no
raw account id in any URL or page."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from riskstream.core import names
from riskstream.core.privacy import Pseudonymizer
from riskstream.ops.console import auth
from riskstream.ops.console.model import ReadModel
from riskstream.ops.console.server import COOKIE, ConsoleState, make_app

PW = "pass-word-1"
HASH = auth.hash_password(PW, iterations=1000)
USERS = {"ana": auth.User("ana", "operator", HASH), "vic": auth.User("vic", "viewer", HASH)}
ACCOUNT = "ACC000777"


def seeded_model() -> ReadModel:
    m = ReadModel(Pseudonymizer(b"test-secret-123"))
    d = {"decision_id": "d-review-1", "account_id": ACCOUNT, "action": "REVIEW", "rule_id": "drawdown-spike",
         "reasons": ["drawdown spike"], "policy_name": "retail-champion", "policy_version": 2, "model_version": 3,
         "event_time": 1_700_000_000_000, "mode": "live", "role": "champion", "pd": 0.12, "feature_hash": "ab",
         "features": {"drawdown_velocity_ratio": 4.0}}
    m.apply(names.DECISIONS, ACCOUNT.encode(), orjson.dumps(d), 1_700_000_000_000)
    m.apply(names.DECISIONS, ACCOUNT.encode(), orjson.dumps({**d, "decision_id": "d-shadow", "role": "challenger",
                                                             "policy_name": "retail-challenger", "mode": "shadow",
                                                             "action": "WARN"}), 1_700_000_000_000)
    m.apply(names.COMMANDS, ACCOUNT.encode(), orjson.dumps({"command_id": "c1", "decision_id": "d-review-1",
                                                            "account_id": ACCOUNT, "action": "REVIEW",
                                                            "issued_at": 1_700_000_000_000}), 1_700_000_000_000)
    m.apply(names.DEAD, b"x", orjson.dumps({"reason": "schema"}), 1_700_000_000_000)
    held = {"command_id": "c9", "decision_id": "d-review-1", "account_id": ACCOUNT, "action": "CLOSE"}
    m.apply(names.LINES_CHANGELOG, b"\x00breaker/0", orjson.dumps({"tripped": True, "trips": 1, "held": [held]}), 0)
    m.apply(names.LINES_CHANGELOG, ACCOUNT.encode(), orjson.dumps({"account_id": ACCOUNT, "state": "WARNED"}), 0)
    return m


class Console:
    def __init__(self, ttl_ms: int = 60_000):
        self.published: list[dict] = []
        self.now = [1_700_000_000_000]
        self.state = ConsoleState(model=seeded_model(), users=USERS, publish=self.published.append,
                                  sessions=auth.Sessions(ttl_ms=ttl_ms, clock=lambda: self.now[0]),
                                  clock=lambda: self.now[0], signer_id="test-key")

    async def __aenter__(self):
        self.client = TestClient(TestServer(make_app(self.state)), cookie_jar=aiohttp.CookieJar(unsafe=True))
        await self.client.start_server()
        self.origin = str(self.client.make_url("/")).rstrip("/")
        return self

    async def __aexit__(self, *exc):
        await self.client.close()

    async def sign_in(self, user: str, password: str = PW):
        return await self.client.post("/login", data={"user": user, "password": password, "next": "/"},
                                      headers={"Origin": self.origin}, allow_redirects=False)

    async def csrf(self, path: str = "/review") -> str:
        text = await (await self.client.get(path)).text()
        return re.search(r'name="csrf" value="([^"]+)"', text).group(1)

    async def post(self, path: str, data: dict, *, origin: str | None = "mine"):
        headers = {"Origin": self.origin if origin == "mine" else origin} if origin else {}
        return await self.client.post(path, data=data, headers=headers, allow_redirects=False)


def run(coro):
    return asyncio.run(coro)


def test_without_a_session_pages_redirect_and_api_and_posts_get_401():
    async def go():
        async with Console() as c:
            for path in ("/", "/account", "/review", "/breaker", "/backtest"):
                r = await c.client.get(path, allow_redirects=False)
                assert r.status == 303 and r.headers["Location"] == f"/login?next={path}", path
            for path in ("/api/overview", "/api/review", "/api/breaker"):
                r = await c.client.get(path)
                assert r.status == 401 and "sign in" in (await r.json())["error"], path
            for path, data in (("/review", {"decision_id": "d-review-1", "verdict": "fraud", "note": "n"}),
                               ("/breaker", {"how": "release", "reason": "r"}), ("/account", {"account_id": "x"})):
                assert (await c.post(path, data)).status == 401, path
            r = await c.client.get("/login")
            assert r.status == 200 and 'name="password"' in await r.text()
            assert c.published == []
    run(go())


def test_sign_in_sets_a_strict_httponly_cookie_and_wrong_passwords_are_refused():
    async def go():
        async with Console() as c:
            assert (await c.sign_in("ana", "wrong")).status == 401
            assert (await c.sign_in("nobody")).status == 401
            r = await c.sign_in("ana")
            assert r.status == 303 and r.headers["Location"] == "/"
            cookie = r.headers["Set-Cookie"]
            assert cookie.startswith(COOKIE + "=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
            assert (await c.client.get("/")).status == 200
            r = await c.client.post("/login", data={"user": "ana", "password": PW}, allow_redirects=False)
            assert r.status == 403, "a sign-in from another site (no Origin) must be refused"
    run(go())


def test_failed_sign_ins_are_throttled_by_name_and_address_with_a_429_that_reveals_no_user():
    async def go():
        async with Console() as c:
            for _ in range(auth.SIGNIN_LIMIT):
                assert (await c.sign_in("ana", "wrong")).status == 401
            refused = await c.sign_in("ana")  # the right password, but too late
            assert refused.status == 429 and 0 < int(refused.headers["Retry-After"]) <= 300
            assert "Too many failed sign-ins" in await refused.text() and COOKIE not in refused.cookies
            other = await c.sign_in("nobody")  # the same address: the same answer, user or not
            assert other.status == 429 and (await other.text()) == (await refused.text())
            c.now[0] += auth.SIGNIN_WINDOW_MS  # the failures age out
            assert (await c.sign_in("ana")).status == 303
        async with Console() as c:  # a made-up name is throttled exactly like a real one
            for _ in range(auth.SIGNIN_LIMIT):
                assert (await c.sign_in("nobody", "wrong")).status == 401
            assert (await c.sign_in("nobody", "wrong")).status == 429
    run(go())


def test_a_viewer_sees_every_page_but_an_action_gets_403():
    async def go():
        async with Console() as c:
            await c.sign_in("vic")
            for path in ("/", "/account", "/review", "/breaker", "/backtest", "/api/overview"):
                assert (await c.client.get(path)).status == 200, path
            page = await (await c.client.get("/review")).text()
            assert "Confirm fraud" not in page, "a viewer is offered no action"
            token = await c.csrf("/account")
            r = await c.post("/review", {"csrf": token, "decision_id": "d-review-1", "verdict": "fraud", "note": "x"})
            assert r.status == 403 and "operator role" in await r.text()
            r = await c.post("/breaker", {"csrf": token, "how": "release", "reason": "x"})
            assert r.status == 403 and "operator role" in await r.text()
            assert c.published == []
            r = await c.post("/account", {"csrf": token, "account_id": ACCOUNT})  # a look-up is not an action
            assert r.status == 303
    run(go())


def test_csrf_and_origin_are_checked_on_every_post():
    async def go():
        async with Console() as c:
            await c.sign_in("ana")
            token = await c.csrf()
            form = {"decision_id": "d-review-1", "verdict": "fraud", "note": "stolen card"}
            for data, origin in ((form, "mine"), ({**form, "csrf": "forged"}, "mine"),
                                 ({**form, "csrf": token}, "http://evil.example"), ({**form, "csrf": token}, None)):
                r = await c.post("/review", data, origin=origin)
                assert r.status == 403, (data.get("csrf"), origin)
            assert c.published == []
            r = await c.post("/logout", {})  # sign-out is a POST with the token too
            assert r.status == 403
    run(go())


def test_operator_review_and_breaker_actions_publish_control_messages():
    async def go():
        async with Console() as c:
            await c.sign_in("ana")
            token = await c.csrf()
            r = await c.post("/review", {"csrf": token, "decision_id": "d-review-1", "verdict": "fraud",
                                         "note": "customer confirmed takeover"})
            assert r.status == 303 and r.headers["Location"] == "/review"
            r = await c.post("/breaker", {"csrf": token, "how": "release", "reason": "feed checked"})
            assert r.status == 303
            review, reset = c.published
            assert {k: review[k] for k in ("kind", "account_id", "decision_id", "verdict", "note", "by")} == {
                "kind": "review", "account_id": ACCOUNT, "decision_id": "d-review-1", "verdict": "fraud",
                "note": "customer confirmed takeover", "by": "ana"}
            assert review["features"] == {"drawdown_velocity_ratio": 4.0}  # the label's point-in-time features
            assert {k: reset[k] for k in ("kind", "how", "reason", "by")} == {
                "kind": "breaker_reset", "how": "release", "reason": "feed checked", "by": "ana"}
            page = await (await c.client.get("/breaker")).text()
            assert "Published the signed breaker_reset control message" in page
            r = await c.post("/review", {"csrf": token, "decision_id": "nope", "verdict": "clear", "note": "x"})
            assert r.status == 404
            r = await c.post("/review", {"csrf": token, "decision_id": "d-review-1", "verdict": "maybe", "note": "x"})
            assert r.status == 400 and len(c.published) == 2
    run(go())


def test_account_lookup_keeps_the_raw_id_out_of_urls_and_pages():
    async def go():
        async with Console() as c:
            await c.sign_in("vic")
            token = await c.csrf("/account")
            r = await c.post("/account", {"csrf": token, "account_id": ACCOUNT})
            where = r.headers["Location"]
            pseudonym = c.state.model.pseudonym(ACCOUNT)
            assert where == f"/account/{pseudonym}" and ACCOUNT not in where
            page = await (await c.client.get(where)).text()
            assert f'id="entered">{ACCOUNT}<' in page, "the id is shown back to the user who typed it"
            assert page.count(ACCOUNT) == 1 and "WARNED" in page and "drawdown-spike" in page
            assert "chart-pd" in page
            data = await (await c.client.get(f"/api/account/{pseudonym}")).json()
            assert ACCOUNT not in orjson.dumps(data).decode() and len(data["timeline"]) == 3
            for path in ("/", "/review", "/breaker", "/api/overview", "/api/review", "/api/breaker"):
                assert ACCOUNT not in await (await c.client.get(path)).text(), path
            assert (await c.client.get("/account/0123456789abcdef")).status == 404
            assert (await c.client.get(f"/account/{ACCOUNT}")).status == 404, "a raw id is no route"
    run(go())


def test_overview_json_counts_and_pages_render():
    async def go():
        async with Console() as c:
            await c.sign_in("vic")
            d = (await (await c.client.get("/api/overview")).json())["data"]
            assert (d["decisions"], d["commands"], d["dead_letters"], d["review_waiting"]) == (2, 1, 1, 1)
            assert d["breaker"]["tripped"] == [0] and len(d["breaker"]["held"]) == 1
            page = await (await c.client.get("/")).text()
            assert 'id="kpi-decisions">2<' in page and "retail-challenger" in page and "TRIPPED" in page
            r = await c.client.get("/")
            assert "default-src 'none'" in r.headers["Content-Security-Policy"]
            assert r.headers["X-Frame-Options"] == "DENY"
    run(go())


def test_sessions_expire():
    async def go():
        async with Console(ttl_ms=60_000) as c:
            await c.sign_in("ana")
            assert (await c.client.get("/", allow_redirects=False)).status == 200
            c.now[0] += 61_000
            r = await c.client.get("/", allow_redirects=False)
            assert r.status == 303 and r.headers["Location"].startswith("/login")
            assert (await c.client.get("/api/overview")).status == 401
            await c.sign_in("ana")
            for _ in range(3):  # the overview's own refresh is no activity: it keeps no session alive
                c.now[0] += 25_000
                r = await c.client.get("/api/overview", headers={"X-Console-Refresh": "1"})
            assert r.status == 401
    run(go())


def test_backtest_upload(tmp_path):
    report = {"note": "tiny", "policies": [
        {"policy": "retail-champion", "version": 2, "catch_rate_60d": 0.8, "good_restricted_share": 0.02,
         "commands_by_action": {"CLOSE": 3}, "sweep": [{"factor": 1, "catch_rate_60d": 0.8,
                                                        "good_restricted_share": 0.02}]},
        {"policy": "retail-challenger", "version": 1, "catch_rate_60d": 0.7, "good_restricted_share": 0.01,
         "commands_by_action": {"CLOSE": 2}}]}

    async def go():
        async with Console() as c:
            await c.sign_in("vic")
            token = await c.csrf("/backtest")
            form = aiohttp.FormData()
            form.add_field("csrf", token)
            form.add_field("file", orjson.dumps(report), filename="backtest.json", content_type="application/json")
            r = await c.client.post("/backtest", data=form, headers={"Origin": c.origin}, allow_redirects=False)
            assert r.status == 303
            page = await (await c.client.get("/backtest")).text()
            assert "retail-champion v2" in page and "retail-challenger v1" in page and "80.0 %" in page
            assert "chart-sweep" in page and "chart-bt-actions" in page
            form = aiohttp.FormData()
            form.add_field("csrf", token)
            form.add_field("file", b"not json", filename="x.json")
            await c.client.post("/backtest", data=form, headers={"Origin": c.origin})
            page = await (await c.client.get("/backtest")).text()
            assert "retail-champion v2" in page  # the earlier report stays
    run(go())
