"""How much validation costs on top of decoding: `bench_parse()` times `orjson.loads` alone and `parse_event` on
the same realistic mix of ~200-byte events, in one run. The contract is ratio <= ~2 (validation no slower than
the decode itself).

Run: ``python -c "from bench.contracts import bench_parse; print(bench_parse())"``
"""

from __future__ import annotations

import random
import time

import orjson

from riskstream.core.privacy import Pseudonymizer

from riskstream.core.contracts.validator import parse_event
from riskstream.core.contracts.wire import encode_event, make_event

__all__ = ["bench_parse", "sample_events"]

_T0 = 1_760_000_000_000
_ACCOUNTS = 20_000  # active accounts in the sample; logins repeat their devices, as in production


def sample_events(n: int, seed: int = 7) -> list[bytes]:
    """`n` encoded upstream events in a realistic mix (mostly behaviour, then repayment, credit, market, project)."""
    rng = random.Random(seed)
    makers = [
        (30, lambda a, t: make_event("drawdown", a, {"amount": round(rng.uniform(10, 5000), 2), "channel": "app"},
                                     event_time=t, source="core-banking")),
        (20, lambda a, t: make_event("purchase", a, {"amount": round(rng.uniform(1, 900), 2),
                                                     "merchant_id": f"m{rng.randrange(5000)}"}, event_time=t,
                                     source="card-switch")),
        # Customers come back on one of their few devices, from one of a few networks.
        (15, lambda a, t: make_event("login", a, {"device_fingerprint": f"fp-{a}-{rng.randrange(2)}",
                                                  "ip": f"10.{int(a[-3:]) % 256}.{rng.randrange(4)}.7"},
                                     event_time=t, source="auth")),
        (10, lambda a, t: make_event("app_session", a, {"duration_s": rng.uniform(5, 900)}, event_time=t,
                                     source="mobile")),
        (10, lambda a, t: make_event("payment_received", a, {"amount": round(rng.uniform(50, 3000), 2),
                                                             "statement_id": f"st-{rng.randrange(10**6)}"},
                                     event_time=t, source="payments")),
        (5, lambda a, t: make_event("bureau_inquiry", a, {"bureau": "bureau-x", "inquiry_kind": "soft"},
                                    event_time=t, source="bureau-feed")),
        (5, lambda a, t: make_event("rate_change", "base_rate|all", {"value": rng.uniform(2, 6)}, event_time=t,
                                    source="market-data")),
        (5, lambda a, t: make_event("covenant_test", "F" + a[1:], {"covenant": "dscr_min",
                                                                   "value": rng.uniform(0.8, 2.0),
                                                                   "threshold": 1.2, "direction": "min"},
                                    event_time=t, source="project-office")),
    ]
    weights = [w for w, _ in makers]
    fns = [f for _, f in makers]
    out = []
    for i in range(n):
        fn = rng.choices(fns, weights)[0]
        out.append(encode_event(fn(f"A{rng.randrange(_ACCOUNTS):06d}", _T0 + i * 37)))
    return out


def bench_parse(n: int = 200_000, repeat: int = 5, chunk: int = 5_000) -> dict:
    """Throughput (events/s) of decode only and decode + validate over the same `n` events.

    The two loops alternate chunk by chunk and each chunk keeps its best of `repeat` timings, so both sides see
    the same machine load (shared CI runners are noisy); the ratio is the figure that matters.
    """
    events = sample_events(n)
    ps = Pseudonymizer(b"bench-secret-bench-secret")
    now = _T0 + n * 37
    loads = orjson.loads
    clock = time.thread_time  # CPU time of this thread: robust to other processes on a shared machine
    decode_total = validate_total = 0.0
    for start in range(0, n, chunk):
        part = events[start:start + chunk]
        decode_best = validate_best = float("inf")
        for _ in range(repeat):
            t = clock()
            for raw in part:
                loads(raw)
            decode_best = min(decode_best, clock() - t)
            t = clock()
            for raw in part:
                parse_event(raw, now_ms=now, pseudonymizer=ps)
            validate_best = min(validate_best, clock() - t)
        decode_total += decode_best
        validate_total += validate_best
    rejected = sum(1 for raw in events if parse_event(raw, now_ms=now, pseudonymizer=ps).__class__ is not dict)
    if rejected:
        raise AssertionError(f"bench sample produced {rejected} rejected events")
    return {
        "decode_only_ev_s": round(n / decode_total),
        "decode_validate_ev_s": round(n / validate_total),
        "ratio": round(validate_total / decode_total, 3),
        "mean_bytes": round(sum(map(len, events)) / n, 1),
    }
