"""Reaching the broker: one readable line (address, cause, fix) when it cannot be reached, and a retry with backoff.

A long-running command (worker, actuator, simulate) waits for the broker instead of exiting with a traceback: an
operator who starts the pipeline before the broker, or mistypes ``--bootstrap``, sees why and what to do, and the
process goes on by itself once the broker answers.

>>> unreachable_line("127.0.0.1:1", "connection refused", 2.0, attempt=1)
'cannot reach the Kafka broker at 127.0.0.1:1: connection refused. Fix: start the broker (riskstream broker start) or pass the right --bootstrap HOST:PORT (or RISKSTREAM_BOOTSTRAP); retrying in 2 s (attempt 1)'
>>> [round(d) for d in backoff_delays(first=1, cap=10, attempts=6)]
[1, 2, 4, 8, 10, 10]
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from typing import Callable, Iterator

__all__ = ["BrokerUnreachable", "authenticate", "backoff_delays", "diagnose", "unreachable_line", "wait_for_broker"]

log = logging.getLogger("riskstream.stream")

FIXES = {
    "connection refused": "start the broker (riskstream broker start) or pass the right --bootstrap HOST:PORT "
                          "(or RISKSTREAM_BOOTSTRAP)",
    "unknown host": "check the host name in --bootstrap HOST:PORT (or RISKSTREAM_BOOTSTRAP) and DNS",
    "timed out": "check the address, the firewall and that the broker listens on that interface",
    "bad address": "pass --bootstrap as HOST:PORT, e.g. 127.0.0.1:9092",
    "TLS handshake failed": "check RISKSTREAM_KAFKA_SSL_CAFILE and that the listener speaks TLS "
                            "(RISKSTREAM_KAFKA_SECURITY_PROTOCOL)",
    "authentication failed": "check RISKSTREAM_KAFKA_SASL_USERNAME, the password (RISKSTREAM_KAFKA_SASL_PASSWORD or "
                             "_FILE) and RISKSTREAM_KAFKA_SASL_MECHANISM",
    "no answer to a Kafka request": "check that HOST:PORT is a Kafka listener with the security protocol configured "
                                    "(RISKSTREAM_KAFKA_SECURITY_PROTOCOL)",
}


class BrokerUnreachable(RuntimeError):
    """The broker did not answer within the allowed attempts; the message is the readable line."""


def unreachable_line(bootstrap: str, cause: str, delay: float | None, *, attempt: int) -> str:
    """The one line an operator reads: address, cause, fix, and when the next try comes."""
    fix = FIXES.get(cause.split(" (")[0], FIXES["no answer to a Kafka request"])
    then = f"; retrying in {delay:.0f} s (attempt {attempt})" if delay is not None else f" (gave up after attempt {attempt})"
    return f"cannot reach the Kafka broker at {bootstrap}: {cause}. Fix: {fix}{then}"


def backoff_delays(*, first: float = 1.0, cap: float = 30.0, attempts: int | None = None) -> Iterator[float]:
    """Doubling delays from `first`, capped at `cap`; endless when `attempts` is None."""
    delay, n = first, 0
    while attempts is None or n < attempts:
        yield min(delay, cap)
        delay, n = delay * 2, n + 1


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.strip().rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(address)
    return host.strip("[]"), int(port)


def diagnose(bootstrap: str, *, tls: ssl.SSLContext | None = None, timeout: float = 3.0) -> str | None:
    """None when some address of `bootstrap` accepts a TCP connection (and a TLS handshake, given `tls`), else
    the cause for the first address, in words (`connection refused`, `unknown host`, `timed out`, ...)."""
    causes = []
    for address in bootstrap.split(","):
        try:
            host, port = _split(address)
        except ValueError:
            causes.append(f"bad address ({address.strip()!r})")
            continue
        try:
            with socket.create_connection((host, port), timeout=timeout) as sock:
                if tls is not None:
                    with tls.wrap_socket(sock, server_hostname=host):
                        pass
            return None
        except socket.gaierror:
            causes.append("unknown host")
        except ssl.SSLError as exc:
            causes.append(f"TLS handshake failed ({exc.reason or exc.__class__.__name__})")
        except (socket.timeout, TimeoutError):
            causes.append("timed out")
        except ConnectionRefusedError:
            causes.append("connection refused")
        except OSError as exc:
            causes.append((exc.strerror or str(exc)).lower())
    return causes[0] if causes else "bad address (empty)"


def authenticate(bootstrap: str, security: dict, *, timeout: float = 10.0) -> str | None:
    """None when an aiokafka client (the library Faust uses) with `security` (its SASL/TLS arguments) bootstraps
    from `bootstrap`, else the cause (`authentication failed (...)`, or no answer). Run after `diagnose` found the
    port open. aiokafka raises a bare "unable to bootstrap" and logs the cause, so the cause is read off its log."""
    import asyncio

    from aiokafka.admin import AIOKafkaAdminClient

    causes: list[str] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            causes.append(record.getMessage())

    async def attempt() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000),
                                    **security)
        try:
            await admin.start()
        finally:
            await admin.close()

    aiolog = logging.getLogger("aiokafka")
    catch, propagate = Catch(logging.ERROR), aiolog.propagate
    aiolog.addHandler(catch)
    aiolog.propagate = False  # the cause goes into our one line, not into a second, raw one
    try:
        asyncio.run(asyncio.wait_for(attempt(), timeout * 2))
        return None
    except Exception as exc:  # noqa: BLE001  (any failure to bootstrap is a cause to report)
        text = " ".join(causes) + f" {exc!r}"
        if "SaslAuthenticationFailed" in text or "uthentication failed" in text:
            return "authentication failed (wrong user, password or mechanism)"
        return f"no answer to a Kafka request ({type(exc).__name__})"
    finally:
        aiolog.removeHandler(catch)
        aiolog.propagate = propagate


def wait_for_broker(bootstrap: str, *, probe: Callable[[str], str | None] | None = None,
                    sleep: Callable[[float], None] = time.sleep, first: float = 1.0, cap: float = 30.0,
                    attempts: int | None = None, say: Callable[[str], None] | None = None) -> int:
    """Probe until the broker answers; each failure is one WARNING line and a backoff. Returns the attempts used.
    With `attempts`, raises `BrokerUnreachable` (its message the last line) once they are spent."""
    probe = probe or diagnose
    say = say or log.warning
    n = 0
    delays = backoff_delays(first=first, cap=cap, attempts=None if attempts is None else attempts - 1)
    while True:
        n += 1
        cause = probe(bootstrap)
        if cause is None:
            if n > 1:
                log.info("broker at %s reachable after %d attempts", bootstrap, n)
            return n
        delay = next(delays, None)
        line = unreachable_line(bootstrap, cause, delay, attempt=n)
        if delay is None:
            raise BrokerUnreachable(line)
        say(line)
        sleep(delay)
