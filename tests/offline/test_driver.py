"""The offline driver and the mass-close breaker (issue 13, scenario 6): a poison policy that would close every
line sends 0 CLOSE, while a normal policy's closes still leave, one window of event time late."""

from __future__ import annotations

from collections import Counter

import orjson
import pytest

from riskstream.core.names import COMMANDS, DECISIONS
from riskstream.core.steps import Context, PipelineConfig
from riskstream.data import DEFAULT_POLICY
from riskstream.offline.driver import OfflineDriver
from riskstream.ops.simulator import SimConfig, Simulator
from tests.support import close_everyone_policy

EVENTS = 6_000
BREAKER_MAX = 20   # CLOSE/FREEZE a minute over the 4 partitions, as in the fault suite: 5 per partition
POISON = close_everyone_policy("driver-poison", 9, "a poison policy (driver test)")


def closer_policy_text() -> str:
    """The bundled champion with an immediate pd-close (a normal policy that closes some lines at once)."""
    text = DEFAULT_POLICY.read_text().replace(
        "    action: CLOSE\n    reason: probability of default at or above the closing line",
        "    action: CLOSE\n    immediate: true\n    reason: probability of default at or above the closing line")
    assert "immediate: true\n    reason: probability of default" in text
    return text.replace("name: retail-champion", "name: driver-closer")


def run(tmp_path, *, poison_from: int | None, hold_ms: int = 60_000):
    """The simulator's events through the driver under the closer policy; from event `poison_from` on, the poison
    policy is the champion. Returns (CLOSE decisions, CLOSE commands, breaker audit counts), by policy name."""
    path = tmp_path / "closer.yaml"
    path.write_text(closer_policy_text())
    ctx = Context(PipelineConfig(policy_path=path, challenger_paths=(), breaker_max_count=BREAKER_MAX,
                                 breaker_hold_ms=hold_ms))
    decisions, commands = Counter(), Counter()
    names = {}

    def keep(o):
        if o.topic == DECISIONS:
            d = orjson.loads(o.value)
            if d.get("action") == "CLOSE" and d.get("mode") == "live":
                decisions[d["policy_name"]] += 1
                names[d["decision_id"]] = d["policy_name"]
        elif o.topic == COMMANDS:
            c = orjson.loads(o.value)
            if c["action"] == "CLOSE":
                commands[names[c["decision_id"]]] += 1

    driver = OfflineDriver(ctx, learn=False, on_output=keep)
    sim = Simulator(SimConfig(accounts=400, facilities=0, seed=13, step_ms=2_000))
    for i, (topic, _, value) in enumerate(sim.wire(EVENTS)):
        if i == poison_from:
            ok, err, _ = ctx.offer_policy(POISON, "test")
            assert ok, err
        driver.feed(topic, value, timestamp_ms=sim.t)
    driver.flush()
    breaker = Counter((r["payload"].get("event"), str(r["payload"].get("cause", ""))[:9]) for r in driver.audit
                      if r["kind"] == "breaker")
    return decisions, commands, breaker


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("driver")


def test_a_poison_policy_sends_no_close_and_a_normal_one_still_does(tmp):
    normal_d, normal_c, normal_b = run(tmp, poison_from=None)
    d, c, b = run(tmp, poison_from=EVENTS // 2)
    print(f"normal policy alone: CLOSE decisions {dict(normal_d)}, CLOSE commands {dict(normal_c)}, breaker "
          f"{dict(normal_b)}\npoison from event {EVENTS // 2}: CLOSE decisions {dict(d)}, CLOSE commands {dict(c)}, "
          f"breaker {dict(b)}")
    # the normal policy closes lines, within the limits: every CLOSE it decides leaves (after its wait)
    assert normal_d["driver-closer"] > 0 and normal_c == normal_d and not normal_b
    # the poison policy decides a CLOSE for every line it sees, the breaker trips, and none of them leaves
    assert d["driver-poison"] > 100 and b[("tripped", "count")] >= 1
    assert c["driver-poison"] == 0
    # the normal policy's closes decided more than a window before the trip left as before
    assert 0 < c["driver-closer"] <= d["driver-closer"]


def test_without_the_wait_a_poison_policy_gets_closes_out(tmp):
    """The old pass-through (hold 0), for the figure: the breaker trips only after its limit has left."""
    d, c, b = run(tmp, poison_from=EVENTS // 2, hold_ms=0)
    print(f"hold 0 (before): poison CLOSE decisions {d['driver-poison']}, CLOSE commands sent under it "
          f"{c['driver-poison']}, breaker {dict(b)}")
    assert d["driver-poison"] > 100 and 0 < c["driver-poison"] <= BREAKER_MAX
