"""One core, two drivers: a live run on Apache Kafka and the offline driver make the same decisions and commands.

The live pipeline (worker and actuator as processes) reads ≥20,000 simulator events of ≥1,000 accounts. During the
run the worker is SIGKILLed and restarted, a policy is hot-reloaded, a poison policy trips the mass-close breaker
and a reset releases it, and the trainer publishes model versions. Then the offline driver runs the same steps
over the same per-account order (the live valid topic, per partition), following the model and policy versions
the workers recorded on `riskstream.versions`, and the actuate step over the live decisions topic. Decisions
(id, action, rule, reasons, policy and model version) and commands (id, action, params) are compared by id.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import orjson
import pytest

from riskstream.core.names import CONTROL, DECISIONS, MARKET, VALID, VERSIONS
from riskstream.data import DEFAULT_POLICY
from riskstream.ops import control
from riskstream.ops.orchestrate import read_topic
from tests.e2e.test_recovery import Progress, produce, simulated
from tests.support import close_everyone_policy, metric, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.kafka]

N_EVENTS = int(os.environ.get("RS_PARITY_EVENTS", "20000"))
ACCOUNTS = 1000
BREAKER_MAX = 8   # CLOSE+FREEZE a minute over the 4 partitions: the poison policy trips it at once
MODEL_CONFIG = "trainer:\n  publish_every: 25\n"   # several model versions within the run
# A poison policy that would close every line: the bundled champion's header, one immediate CLOSE for any PD.
POISON = close_everyone_policy("e2e-poison", 3, "a poison policy (end-to-end test)")


def policy_version(text: str, version: int) -> str:
    lines = [f"version: {version}" if ln.startswith("version:") else ln for ln in text.splitlines()]
    return "\n".join(lines) + "\n"


def wait_progress(prog: Progress, proc, share: float, total: int, timeout: float = 240) -> None:
    wait_for(f"{share:.0%} of valid records committed",
             lambda: (not proc.alive() and pytest.fail(proc.log_text()[-3000:])) or
             prog.valid_committed() >= share * total, timeout=timeout, every=0.2)


def actuator_done(p, prog: Progress) -> bool:
    from kafka import TopicPartition  # noqa: F401  (kafka-python, as Progress)

    group = p.prefix + "riskstream-actuator"
    committed = {tp: m.offset for tp, m in prog.admin.list_group_offsets({group: None}).get(group, {}).items()}
    return all(committed.get(tp, -1) >= end for tp, end in prog.end(DECISIONS).items() if end)


def live_by_id(records, key) -> dict:
    """The last record of each id, in (partition, offset) order: a record re-made after a crash supersedes."""
    out = {}
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        d = orjson.loads(r.value)
        out[key(d)] = d
    return out


def decision_key(d: dict) -> str:
    return d.get("decision_id") or f"cure:{d.get('account_id')}:{d.get('event_id')}"


def decision_fields(d: dict) -> tuple:
    return (d.get("action"), d.get("rule_id"), tuple(d.get("reasons") or ()), d.get("policy_name"),
            d.get("policy_version"), d.get("model_version"), d.get("kind"))


def command_fields(c: dict) -> tuple:
    return c["action"], orjson.dumps(c.get("params"), option=orjson.OPT_SORT_KEYS)


def diff(live: dict, offline: dict, fields) -> list:
    ids = set(live) | set(offline)
    return sorted(i for i in ids if i not in live or i not in offline or fields(live[i]) != fields(offline[i]))


def test_live_and_offline_make_the_same_decisions_and_commands(kafka_pipeline, tmp_path):
    p = kafka_pipeline
    model_cfg = tmp_path / "models.yaml"
    model_cfg.write_text(MODEL_CONFIG)
    first, rest = simulated(N_EVENTS, accounts=ACCOUNTS, facilities=20, seed=23)
    n_open = sum(1 for topic, _, _ in first if topic != MARKET)
    total = n_open + len(rest)
    default_text = DEFAULT_POLICY.read_text()
    prog = Progress(p)
    try:
        produce(p.bootstrap, p.topic, first)
        worker = p.start("worker", "--model-config", str(model_cfg), name="worker-1")
        aport = _free_port()
        actuator = p.start("actuator", "--breaker-max-count", str(BREAKER_MAX), name="actuator", metrics_port=aport)
        worker.wait_ready(90)
        actuator.wait_ready(90)
        wait_progress(prog, worker, n_open / total, total)
        chunks = [rest[i * len(rest) // 5:(i + 1) * len(rest) // 5] for i in range(5)]

        produce(p.bootstrap, p.topic, chunks[0] + chunks[1])
        wait_progress(prog, worker, 0.25, total)
        worker.kill()
        killed_at = prog.valid_committed() / total
        worker = p.start("worker", "--model-config", str(model_cfg), name="worker-2")
        worker.wait_ready(90)
        print(f"worker SIGKILLed with {killed_at:.0%} of valid records committed, restarted")

        control.publish(p.bootstrap, control.message("policy", text=policy_version(default_text, 2)),
                        topic=p.topic(CONTROL))
        produce(p.bootstrap, p.topic, chunks[2])
        wait_progress(prog, worker, 0.6, total)

        control.publish(p.bootstrap, control.message("policy", text=POISON), topic=p.topic(CONTROL))
        produce(p.bootstrap, p.topic, chunks[3])
        wait_for("the breaker trips under the poison policy",
                 lambda: metric(aport, "riskstream_breaker_trips_total") >= 1, timeout=180, every=0.5)
        control.publish(p.bootstrap, control.message("policy", text=policy_version(default_text, 4)),
                        topic=p.topic(CONTROL))
        wait_progress(prog, worker, 0.8, total)
        control.publish(p.bootstrap, control.message("breaker_reset", how="release", by="e2e",
                                                     reason="poison policy withdrawn"), topic=p.topic(CONTROL))
        produce(p.bootstrap, p.topic, chunks[4])
        prog.wait_done(worker, total, timeout=300)
        wait_for("the actuator has committed every decision", lambda: actuator_done(p, prog), timeout=180, every=1)
        trips = metric(aport, "riskstream_breaker_trips_total")
    finally:
        prog.close()
        p.close()

    live_decisions = read_topic(p.bootstrap, p.topic(DECISIONS), timeout_s=120)
    live_commands = read_topic(p.bootstrap, p.topic("riskstream.commands"), timeout_s=120)
    offline = offline_run(p, model_cfg, [default_text, policy_version(default_text, 2), POISON,
                                         policy_version(default_text, 4)], live_decisions)

    live_d = live_by_id([r for r in live_decisions if r.key != b"__breaker__" and
                         orjson.loads(r.value).get("kind") not in ("breaker_reset",)], decision_key)
    live_c = live_by_id(live_commands, lambda c: c["command_id"])
    d_diff = diff(live_d, offline["decisions"], decision_fields)
    c_diff = diff(live_c, offline["commands"], command_fields)
    models = sorted({d.get("model_version") for d in live_d.values() if d.get("model_version")})
    policies = sorted({(d.get("policy_name"), d.get("policy_version")) for d in live_d.values()
                       if d.get("role") == "champion"})
    dup_commands = len(live_commands) - len(live_c)
    print(f"parity: decisions N={len(live_d)} differing={len(d_diff)}; commands N={len(live_c)} "
          f"differing={len(c_diff)} (duplicate command ids on the topic: {dup_commands}); breaker trips {trips:.0f}; "
          f"model versions {models}; champion policy versions {policies}")
    assert trips >= 1 and len(models) >= 2 and len(policies) >= 3
    assert dup_commands == 0
    if d_diff:
        by_event = {(d.get("account_id"), d.get("event_id"), d.get("role")): d for d in offline["decisions"].values()}
        for i in d_diff[:10]:
            lv, off = live_d.get(i), offline["decisions"].get(i)
            d = lv or off
            other = by_event.get((d.get("account_id"), d.get("event_id"), d.get("role")))
            print(f"differs {i}: live {lv and decision_fields(lv)} event_time {d.get('event_time')}\n"
                  f"   offline {off and decision_fields(off)}\n   offline for the same event "
                  f"{other and (other.get('decision_id'), decision_fields(other))}")
        for proc_log in sorted((tmp_path / "run").glob("*.log")):
            for line in proc_log.read_text().splitlines():
                if any(w in line for w in ("not caught up", "context ready", "hot-swapped", "policy reloaded",
                                           "refused", "first batch")):
                    print(f"{proc_log.name}: {line[:240]}")
    assert not d_diff, d_diff[:5]
    assert not c_diff, c_diff[:5]


def offline_run(p, model_cfg: Path, policy_texts: list[str], live_decisions) -> dict:
    """The offline driver over the live valid topic, following the recorded versions; then the actuate step over
    the live decisions topic (the actuator's own input, which includes the resets the control agent routed)."""
    from riskstream.core.models.snapshot import load_snapshot, model_key
    from riskstream.core.policy import load_policy
    from riskstream.core.steps import Context, Decision, PipelineConfig, Source, Valid, ingest
    from riskstream.offline.driver import Followed, OfflineDriver

    ctx = Context(PipelineConfig(model_config_path=model_cfg, breaker_max_count=BREAKER_MAX))
    follow = Followed()
    follow.models[ctx.model_version] = ctx.model
    for r in read_topic(p.bootstrap, p.topic("riskstream.models"), timeout_s=60):
        version, model = load_snapshot(r.value, key=model_key())
        follow.models[f"pd@{version}"] = model
    for text in policy_texts:
        pol = load_policy(text)
        follow.policies[(pol.name, pol.version)] = pol
    for r in sorted(read_topic(p.bootstrap, p.topic(VERSIONS), timeout_s=60), key=lambda r: (r.partition, r.offset)):
        follow.add(orjson.loads(r.value))
    for r in read_topic(p.bootstrap, p.topic(MARKET), timeout_s=60):
        out = ingest(ctx.config, r.value, Source(MARKET, r.partition, r.offset, r.timestamp))
        if out.topic == VALID:
            ctx.on_market(orjson.loads(out.value))
    decisions, commands = {}, {}

    def keep(o):
        if o.topic == DECISIONS:
            d = orjson.loads(o.value)
            decisions[decision_key(d)] = d
        elif o.topic == "riskstream.commands":
            c = orjson.loads(o.value)
            commands[c["command_id"]] = c

    driver = OfflineDriver(ctx, learn=False, follow=follow, on_output=keep, actuate=False, route=False)
    valid = read_topic(p.bootstrap, p.topic(VALID), timeout_s=120)
    for r in sorted(valid, key=lambda r: (r.partition, r.offset)):
        driver.feed_valid(Valid(r.key, r.value, r.partition, r.offset))
    for r in sorted(live_decisions, key=lambda r: (r.partition, r.offset)):
        driver.feed_decision(Decision(r.key, r.value, r.partition, r.offset))
    return {"decisions": decisions, "commands": commands}


def _free_port() -> int:
    from riskstream.stream.app import free_port

    return free_port()
