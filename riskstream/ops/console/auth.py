"""Console sign-in: users and roles, password hashes, idle-expiring sessions and their CSRF tokens, and the
throttle on failed sign-ins (no web framework).

Users come from `RISKSTREAM_CONSOLE_USERS` (lines or `;`-separated entries) or the file named by
`RISKSTREAM_CONSOLE_USERS_FILE`, one `name:role:hash` an entry; the role is `viewer` (reads every page) or
`operator` (also acts: review verdicts, breaker release/drop). Hashes are made with hashlib only
(`pbkdf2_sha256$ITERATIONS$SALT$HASH` or `scrypt$N$R$P$SALT$HASH`, hex): `riskstream console --hash-password`
prints one.

>>> h = hash_password("correct horse", iterations=1000, salt=b"0123456789abcdef")
>>> h.split("$")[:2], check_password("correct horse", h), check_password("wrong", h)
(['pbkdf2_sha256', '1000'], True, False)
>>> users = parse_users(f"ana:operator:{h}\\nvic:viewer:{h}", source="env")
>>> sorted(users), users["vic"].role, may(users["vic"].role, "act"), may(users["ana"].role, "act")
(['ana', 'vic'], 'viewer', False, True)
>>> clock = iter([0, 10, 20, 5000]).__next__
>>> sessions = Sessions(ttl_ms=1000, clock=lambda: clock())
>>> s = sessions.create(users["ana"])
>>> sessions.get(s.token) is s, sessions.get(s.token) is s, sessions.get(s.token)  # idle 4980 ms > 1000 ms
(True, True, None)
>>> csrf_ok(s, s.csrf), csrf_ok(s, "forged"), csrf_ok(s, None)
(True, False, False)
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from riskstream.core.errors import OperatorError

__all__ = ["ROLES", "Session", "Sessions", "Throttle", "User", "check_password", "csrf_ok", "dev_users", "hash_password",
           "load_users", "may", "parse_users", "same_origin"]

USERS_ENV = "RISKSTREAM_CONSOLE_USERS"
USERS_FILE_ENV = "RISKSTREAM_CONSOLE_USERS_FILE"
#: What each role may do: every page is "view"; every POST that changes something is "act".
ROLES = {"viewer": frozenset({"view"}), "operator": frozenset({"view", "act"})}
PBKDF2_ITERATIONS = 240_000
#: Failed sign-ins a user name or a client address may make within the window before it is refused (429).
SIGNIN_LIMIT = 5
SIGNIN_WINDOW_MS = 5 * 60_000


@dataclass(frozen=True)
class User:
    name: str
    role: str
    password_hash: str = field(repr=False)


def hash_password(password: str, *, iterations: int = PBKDF2_ITERATIONS, salt: bytes | None = None) -> str:
    """PBKDF2-HMAC-SHA256 of `password` with a random 16-byte salt, as `pbkdf2_sha256$ITERATIONS$SALT$HASH`."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    """Does `password` match `stored` (pbkdf2_sha256 or scrypt)? Compared in constant time; a malformed hash is
    False.

    >>> salt = b"s" * 16
    >>> h = "scrypt$1024$8$1$" + salt.hex() + "$" + hashlib.scrypt(b"pw", salt=salt, n=1024, r=8, p=1).hex()
    >>> check_password("pw", h), check_password("px", h), check_password("pw", "md5$x")
    (True, False, False)
    """
    parts = stored.split("$")
    try:
        if parts[0] == "pbkdf2_sha256" and len(parts) == 4:
            got = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(parts[2]), int(parts[1]))
            return hmac.compare_digest(got, bytes.fromhex(parts[3]))
        if parts[0] == "scrypt" and len(parts) == 6:
            n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
            want = bytes.fromhex(parts[5])
            got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(parts[4]), n=n, r=r, p=p, dklen=len(want),
                                 maxmem=256 * 1024 * 1024)
            return hmac.compare_digest(got, want)
    except (ValueError, OverflowError):
        return False
    return False


def parse_users(text: str, *, source: str) -> dict[str, User]:
    """`name:role:hash` entries, one a line or separated by `;` (blank lines and `#` comments skipped).

    >>> parse_users("ana:admin:x", source="users.txt")
    Traceback (most recent call last):
    ...
    riskstream.core.errors.OperatorError: users.txt: ana.role: unknown role 'admin'. Fix: use viewer or operator
    """
    users: dict[str, User] = {}
    for n, raw in enumerate(text.replace(";", "\n").splitlines(), start=1):
        entry = raw.strip()
        if not entry or entry.startswith("#"):
            continue
        parts = entry.split(":", 2)
        if len(parts) != 3 or not all(parts):
            raise OperatorError(source, f"entry {n}", "not name:role:hash",
                                "write one user as name:role:hash, the hash from `riskstream console "
                                "--hash-password`")
        name, role, hashed = parts
        if role not in ROLES:
            raise OperatorError(source, f"{name}.role", f"unknown role {role!r}", "use viewer or operator")
        if hashed.split("$", 1)[0] not in ("pbkdf2_sha256", "scrypt"):
            raise OperatorError(source, f"{name}.hash", "not a pbkdf2_sha256 or scrypt hash",
                                "make one with `riskstream console --hash-password` (never a clear-text password)")
        if name in users:
            raise OperatorError(source, f"{name}", "user listed twice", "keep one entry a user")
        users[name] = User(name, role, hashed)
    return users


def load_users(environ=None) -> dict[str, User]:
    """Users from `RISKSTREAM_CONSOLE_USERS`, else the file `RISKSTREAM_CONSOLE_USERS_FILE`; {} when neither."""
    env = os.environ if environ is None else environ
    if env.get(USERS_ENV, "").strip():
        return parse_users(env[USERS_ENV], source=f"environment {USERS_ENV}")
    path = env.get(USERS_FILE_ENV, "").strip()
    if not path:
        return {}
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise OperatorError(path, "<file>", f"cannot read the console users ({exc.strerror})",
                            f"point {USERS_FILE_ENV} at a readable file of name:role:hash lines") from exc
    return parse_users(text, source=path)


def dev_users() -> tuple[dict[str, User], dict[str, str]]:
    """Development only: an operator and a viewer with fresh random passwords (printed once by the command).

    >>> users, passwords = dev_users()
    >>> sorted((u.name, u.role) for u in users.values()), check_password(passwords["dev-operator"],
    ...                                                                    users["dev-operator"].password_hash)
    ([('dev-operator', 'operator'), ('dev-viewer', 'viewer')], True)
    """
    passwords = {"dev-operator": secrets.token_urlsafe(12), "dev-viewer": secrets.token_urlsafe(12)}
    users = {name: User(name, name.split("-")[1], hash_password(pw, iterations=50_000))
             for name, pw in passwords.items()}
    return users, passwords


def may(role: str, what: str) -> bool:
    """May `role` do `what` ("view" or "act")?"""
    return what in ROLES.get(role, ())


@dataclass
class Session:
    token: str
    user: str
    role: str
    csrf: str
    last_seen: int
    #: pseudonym -> account id as this user typed it: shown back to them only, never in a URL or a log
    entered: dict = field(default_factory=dict)
    #: a message for the next page (after a redirect), and the backtest report this user opened
    flash: str | None = None
    backtest: tuple | None = None


class Sessions:
    """Signed-in sessions by their random cookie token; one idle longer than `ttl_ms` is gone."""

    def __init__(self, ttl_ms: int = 30 * 60_000, clock=None):
        self.ttl_ms = ttl_ms
        self.clock = clock or (lambda: int(time.time() * 1000))
        self._by_token: dict[str, Session] = {}

    def create(self, user: User) -> Session:
        s = Session(secrets.token_urlsafe(32), user.name, user.role, secrets.token_urlsafe(32), self.clock())
        self._by_token[s.token] = s
        return s

    def get(self, token: str | None, *, touch: bool = True) -> Session | None:
        """The live session of `token` (its idle clock restarts unless `touch` is False: a page's own refresh is
        not a person's activity), else None (and an expired one is dropped)."""
        if not token:
            return None
        s = self._by_token.get(token)
        if s is None:
            return None
        now = self.clock()
        if now - s.last_seen > self.ttl_ms:
            del self._by_token[token]
            return None
        if touch:
            s.last_seen = now
        return s

    def drop(self, token: str | None) -> None:
        self._by_token.pop(token or "", None)

    def __len__(self) -> int:
        return len(self._by_token)


def csrf_ok(session: Session, sent: str | None) -> bool:
    """Does the form's token match the session's (constant-time)?"""
    return bool(sent) and hmac.compare_digest(session.csrf.encode(), str(sent).encode())


def same_origin(origin: str | None, referer: str | None, host: str, scheme: str) -> bool:
    """A state-changing request must come from a page of this console: its Origin (else its Referer) is ours.

    >>> same_origin("http://127.0.0.1:8080", None, "127.0.0.1:8080", "http")
    True
    >>> same_origin("https://evil.example", None, "127.0.0.1:8080", "http"), same_origin(None, None, "h:1", "http")
    (False, False)
    >>> same_origin(None, "http://h:1/review", "h:1", "http"), same_origin("null", None, "h:1", "http")
    (True, False)
    """
    mine = f"{scheme}://{host}"
    if origin:
        return origin == mine
    if referer:
        return referer == mine or referer.startswith(mine + "/")
    return False


class Throttle:
    """Failed sign-ins by key (a user name, a client address): once a key has `limit` failures within `window_ms`,
    further attempts are refused until the oldest of them is `window_ms` old. An unknown user name counts like a
    known one, so a refusal says nothing about who exists. At most `max_keys` keys are kept (the least recently
    failed go first), so a flood of names cannot grow it without bound.

    >>> t = Throttle(limit=2, window_ms=60_000)
    >>> keys = ("user:ana", "addr:10.0.0.9")
    >>> t.retry_after(keys, 0), t.failed(keys, 0), t.failed(keys, 1_000), t.retry_after(keys, 2_000)
    (0, None, None, 58)
    >>> t.retry_after(("user:bob", "addr:10.0.0.9"), 2_000), t.retry_after(("user:ana", "addr:10.0.0.1"), 2_000)
    (58, 58)
    >>> t.retry_after(keys, 59_500), t.retry_after(keys, 60_000)  # then the first failure has aged out
    (1, 0)
    """

    def __init__(self, limit: int = SIGNIN_LIMIT, window_ms: int = SIGNIN_WINDOW_MS, max_keys: int = 100_000):
        if limit < 1 or window_ms < 1:
            raise ValueError("limit and window_ms must be positive")
        self.limit, self.window_ms, self.max_keys = limit, window_ms, max_keys
        self._failures: dict[str, list[int]] = {}  # key -> its last `limit` failure times (ms), oldest first

    def retry_after(self, keys, now_ms: int) -> int:
        """Seconds until any of `keys` may try again (rounded up); 0 when all may now."""
        wait = 0
        for k in keys:
            times = self._failures.get(k)
            if times and len(times) >= self.limit and now_ms - times[0] < self.window_ms:
                wait = max(wait, times[0] + self.window_ms - now_ms)
        return -(-wait // 1000)

    def failed(self, keys, now_ms: int) -> None:
        """Count one failed sign-in against each of `keys`."""
        for k in keys:
            times = [t for t in self._failures.pop(k, ()) if now_ms - t < self.window_ms]
            self._failures[k] = (times + [now_ms])[-self.limit:]  # re-inserted: the newest failure last
        while len(self._failures) > self.max_keys:
            del self._failures[next(iter(self._failures))]

    def succeeded(self, key: str) -> None:
        """A user signed in: forget that name's failures (not the address's: one good account must not reset the
        count of an address that guesses others)."""
        self._failures.pop(key, None)

    def __len__(self) -> int:
        return len(self._failures)
