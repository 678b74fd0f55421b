"""Console sign-in data: users from the environment or a file, roles, idle-expiring sessions, CSRF and Origin."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from riskstream.core.errors import FORMAT, OperatorError
from riskstream.ops.console import auth

FAST = auth.hash_password("s3cret-pass", iterations=1000)


def test_users_from_env_and_file(tmp_path):
    env = {auth.USERS_ENV: f"ana:operator:{FAST}; vic:viewer:{FAST}"}
    assert {u.name: u.role for u in auth.load_users(env).values()} == {"ana": "operator", "vic": "viewer"}
    f = tmp_path / "users"
    f.write_text(f"# console users\nana:operator:{FAST}\n\n")
    assert list(auth.load_users({auth.USERS_FILE_ENV: str(f)})) == ["ana"]
    assert auth.load_users({}) == {}


@pytest.mark.parametrize("text, field", [("ana:operator", "entry 1"), ("ana:root:" + FAST, "ana.role"),
                                         ("ana:viewer:plaintext", "ana.hash"),
                                         (f"ana:viewer:{FAST}\nana:operator:{FAST}", "ana")])
def test_bad_users_are_operator_errors(text, field):
    with pytest.raises(OperatorError) as exc:
        auth.parse_users(text, source="users.txt")
    m = FORMAT.fullmatch(str(exc.value))
    assert m and m["file"] == "users.txt" and m["field"] == field


def test_unreadable_users_file(tmp_path):
    with pytest.raises(OperatorError) as exc:
        auth.load_users({auth.USERS_FILE_ENV: str(tmp_path / "missing")})
    assert FORMAT.fullmatch(str(exc.value))


def test_password_hashes_never_match_another_password():
    h = auth.hash_password("right-password", iterations=2000)
    assert auth.check_password("right-password", h)
    assert not auth.check_password("right-passworD", h)
    assert not auth.check_password("right-password", h.replace("pbkdf2_sha256$2000", "pbkdf2_sha256$2001"))


def test_sessions_expire_when_idle_and_restart_on_use():
    now = [0]
    sessions = auth.Sessions(ttl_ms=1000, clock=lambda: now[0])
    s = sessions.create(auth.User("ana", "operator", FAST))
    for t in (900, 1800, 2700):  # each use restarts the idle clock
        now[0] = t
        assert sessions.get(s.token) is s
    now[0] = 3701
    assert sessions.get(s.token) is None and len(sessions) == 0
    assert sessions.get("guess") is None and sessions.get(None) is None


def test_roles():
    assert auth.may("operator", "act") and auth.may("viewer", "view")
    assert not auth.may("viewer", "act") and not auth.may("nobody", "view")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_csrf_accepts_only_the_session_token(sent):
    s = auth.Session("t", "ana", "operator", "the-token", 0)
    assert auth.csrf_ok(s, sent) == (sent == "the-token")


def test_origin_checks():
    assert auth.same_origin("http://h:8080", None, "h:8080", "http")
    assert not auth.same_origin("http://h:8080.evil", None, "h:8080", "http")
    assert not auth.same_origin(None, "http://h:8080.evil/x", "h:8080", "http")
    assert not auth.same_origin("https://h:8080", None, "h:8080", "http")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=5_000), max_size=30), st.integers(min_value=0, max_value=5_000))
def test_throttle_refuses_exactly_when_the_limit_is_reached_within_the_window(gaps, probe):
    t = auth.Throttle(limit=3, window_ms=10_000)
    now, times = 0, []
    for gap in gaps:
        now += gap
        if t.retry_after(["user:ana"], now) == 0:  # a refused attempt is not checked, so not counted
            t.failed(["user:ana"], now)
            times.append(now)
    at = now + probe
    recent = [x for x in times if at - x < 10_000]
    wait = t.retry_after(["user:ana"], at)
    assert (wait > 0) == (len(recent) >= 3)
    if wait:
        assert wait == -(-(recent[-3] + 10_000 - at) // 1000)


def test_throttle_forgets_a_name_on_success_not_the_address_and_keeps_a_bounded_number_of_keys():
    t = auth.Throttle(limit=2, window_ms=60_000, max_keys=100)
    t.failed(["user:ana", "addr:a"], 0)
    t.failed(["user:ana", "addr:a"], 1)
    t.succeeded("user:ana")
    assert t.retry_after(["user:ana"], 2) == 0 and t.retry_after(["addr:a"], 2) == 60
    for i in range(1000):  # a flood of made-up names
        t.failed([f"user:x{i}"], 10 + i)
    assert len(t) == 100
    with pytest.raises(ValueError):
        auth.Throttle(limit=0)
