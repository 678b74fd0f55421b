"""The console's read model folded from topic records: counts, the review queue, the breaker, versions, accounts
by pseudonym only, and the audit chain checked as it grows."""

from __future__ import annotations

import orjson

from riskstream.core import names
from riskstream.core.audit import AuditLog
from riskstream.core.privacy import Pseudonymizer
from riskstream.ops.console.model import ReadModel


def decision(i: int, account: str, action: str = "WARN", **kw) -> bytes:
    return orjson.dumps({"decision_id": f"d{i}", "account_id": account, "action": action, "rule_id": "r",
                         "reasons": ["why"], "policy_name": "champ", "policy_version": 1, "model_version": 4,
                         "event_time": 1000 + i, "mode": "live", "role": "champion", "pd": i / 100, **kw})


def test_counts_series_and_no_raw_ids():
    m = ReadModel(Pseudonymizer(b"model-test-secret"), bucket_ms=1000, buckets=10)
    for i in range(30):
        m.apply(names.DECISIONS, b"A", decision(i, f"ACC{i % 3}", "REVIEW" if i % 5 == 0 else "WARN"), 10_000 + i * 100)
    m.apply(names.DECISIONS, b"A", orjson.dumps({"kind": "cure", "account_id": "ACC1", "event_time": 5}), 13_000)
    m.apply(names.DECISIONS, b"__breaker__", orjson.dumps({"kind": "breaker_reset", "how": "release"}), 13_000)
    m.apply(names.DEAD, b"s", b"not json", 13_000)
    m.apply(names.DEAD, b"s", orjson.dumps({"reason": "late"}), 13_000)
    o = m.overview(now_ms=13_000)
    assert o["decisions"] == 30 and o["review_waiting"] == 6 and o["dead_by_reason"] == {"late": 1}
    assert sum(n for _, n in o["series"]["decision/WARN"]) == 24
    # the charts start two buckets before the first with data (10 s) and end at now (13 s)
    assert [t for t, _ in o["series"]["decision/WARN"]] == [8_000, 9_000, 10_000, 11_000, 12_000, 13_000]
    assert o["accounts"] == 3
    blob = orjson.dumps([o, m.review_queue(), [m.account(p) for p in m.accounts]]).decode()
    assert "ACC" not in blob
    assert m.raw_account_id(m.pseudonym("ACC2")) == "ACC2"
    assert [d["decision_id"] for d in m.review_queue()] == ["d0", "d5", "d10", "d15", "d20", "d25"]


def test_review_verdicts_fraud_and_clear_leave_the_queue_hold_stays():
    m = ReadModel(Pseudonymizer(b"model-test-secret"))
    for i in range(3):
        m.apply(names.DECISIONS, b"A", decision(i, "ACC9", "REVIEW"), 0)
    for i, verdict in enumerate(("fraud", "clear", "hold")):
        m.apply(names.CONTROL, b"review", orjson.dumps({"kind": "review", "decision_id": f"d{i}", "verdict": verdict,
                                                        "account_id": "ACC9", "by": "ana", "note": "n"}), 0)
    assert [(d["decision_id"], d.get("held_by")) for d in m.review_queue()] == [("d2", "ana")]
    assert [v["verdict"] for v in m.verdicts] == ["fraud", "clear", "hold"]


def test_challenger_decisions_never_enter_the_queue_and_versions_are_tracked():
    m = ReadModel(Pseudonymizer(b"model-test-secret"))
    m.apply(names.DECISIONS, b"A", decision(1, "ACC1", "REVIEW", role="challenger", mode="shadow",
                                            policy_name="chall", policy_version=9), 0)
    m.apply(names.DECISIONS, b"A", decision(2, "ACC1", "WARN", policy_version=3, model_version=12), 0)
    o = m.overview(0)
    assert m.review_queue() == [] and o["versions"]["champion"] == {"policy": "champ", "version": 3,
                                                                    "model_version": 12}
    assert o["versions"]["challengers"] == {"chall": {"version": 9, "mode": "shadow"}}


def test_breaker_from_the_lines_changelog_joins_the_decisions_reasons():
    m = ReadModel(Pseudonymizer(b"model-test-secret"))
    m.apply(names.DECISIONS, b"A", decision(1, "ACC1", "CLOSE", reasons=["pd over the close line"]), 0)
    held = [{"command_id": "c1", "decision_id": "d1", "account_id": "ACC1", "action": "CLOSE"},
            {"command_id": "c2", "decision_id": "d-unknown", "account_id": "ACC2", "action": "FREEZE"}]
    value = orjson.dumps({"tripped": True, "trips": 2, "held": held, "waiting": [[5, {}]]})
    m.apply(names.LINES_CHANGELOG, b"\x00breaker/3", orjson.dumps(value.decode()), 0)  # Faust-json-wrapped bytes
    m.apply(names.LINES_CHANGELOG, b"\x00breaker/1", orjson.dumps({"tripped": False}), 0)
    b = m.breaker()
    assert b["tripped"] == [3] and b["trips"] == 2 and b["waiting"] == 1 and b["partitions"] == 2
    assert b["held_by_action"] == {"CLOSE": 1, "FREEZE": 1}
    assert b["held_by_reason"] == {"pd over the close line": 1, "(no decision seen)": 1}
    assert "ACC" not in orjson.dumps(b).decode()
    m.apply(names.LINES_CHANGELOG, b"\x00breaker/3", None, 0)  # a tombstone
    assert m.breaker()["held"] == []


def test_account_timeline_and_audit_records(tmp_path):
    path = tmp_path / "actuator.jsonl"
    log = AuditLog(path)
    log.append("decision", {"decision_id": "d1", "account_id": "ACC1"})
    log.append("command", {"command_id": "c1", "decision_id": "d1", "account_id": "ACC1"})
    log.close()
    m = ReadModel(Pseudonymizer(b"model-test-secret"))
    m.apply(names.DECISIONS, b"ACC1", decision(1, "ACC1", "CLOSE"), 0)
    m.apply(names.COMMANDS, b"ACC1", orjson.dumps({"command_id": "c1", "decision_id": "d1", "account_id": "ACC1",
                                                   "action": "CLOSE", "issued_at": 1001}), 0)
    m.apply(names.LINES_CHANGELOG, b"ACC1", orjson.dumps({"account_id": "ACC1", "state": "CLOSED",
                                                          "handled": ["x"]}), 0)
    for line in path.read_bytes().splitlines():
        m.apply_audit(str(path), line)
    a = m.account(m.pseudonym("ACC1"))
    assert a["line"] == {"state": "CLOSED"}
    assert [i["kind"] for i in a["timeline"]] == ["decision", "command"]
    assert [(r["seq"], r["chain_ok"]) for r in a["timeline"][0]["audit"]] == [(1, True), (2, True)]
    assert a["audit_files"][str(path)] == {"ok": True, "records": 2, "problem": None}
    m.apply_audit(str(path), path.read_bytes().splitlines()[0])  # a replayed line breaks the chain
    assert not m.account(m.pseudonym("ACC1"))["audit_files"][str(path)]["ok"]
    assert m.account("0" * 16) is None


def test_point_in_time_features_rebuilt_from_valid_events_match_the_pipeline():
    """The offline replay of the live steps makes decisions with feature hashes; the console's rebuild from the
    valid events gives the same hashes (and the REVIEW decisions' own features check too)."""
    import time
    from pathlib import Path

    from riskstream.core.contracts import encode_event, make_event
    from riskstream.core.steps import PipelineConfig
    from riskstream.offline.replay import replay
    from tests.support import REVIEW_POLICY

    t0 = int(time.time() * 1000) - 3_600_000
    recs = [("riskstream.events.behaviour", b"ACC1", encode_event(make_event(
        "account_opened", "ACC1", {"product": "credit_line", "segment": "retail", "limit": 1000.0,
                                   "currency": "EUR"}, event_time=t0)))]
    for i, amount in enumerate((100.0, 300.0, 550.0)):
        recs.append(("riskstream.events.behaviour", b"ACC1", encode_event(make_event(
            "drawdown", "ACC1", {"amount": amount}, event_time=t0 + 60_000 * (i + 1)))))
    policy = Path(__file__).parent / "review.yaml"
    try:
        policy.write_text(REVIEW_POLICY)
        ref = replay(recs, now_ms=int(time.time() * 1000), config=PipelineConfig(policy_path=policy))
    finally:
        policy.unlink()
    ps = Pseudonymizer(b"model-test-secret")
    m = ReadModel(ps)
    for offset, r in enumerate(ref.valid):
        m.apply(names.VALID, r.key, r.value, 0, offset)
    for r in ref.decisions:
        d = orjson.loads(r.value)
        d.pop("features", None)  # as a decision that carries none
        m.apply(names.DECISIONS, r.key, orjson.dumps(d), 0)
    a = m.account(m.pseudonym("ACC1"))
    checked = [i["features_checked"] for i in a["timeline"] if i["kind"] == "decision"]
    assert len(checked) == len(ref.decisions) >= 4
    assert all(c[1] for c in checked), checked
    assert checked[-1][0]["utilisation"] == 0.95


def test_policy_control_messages_show_among_the_versions():
    from riskstream.ops.console import views

    m = ReadModel(Pseudonymizer(b"model-test-secret"))
    m.apply(names.CONTROL, b"policy", orjson.dumps({"kind": "policy", "control_id": "p1", "time": 5, "by": "ana",
                                                    "source": "new.yaml", "text": "...",
                                                    "signatures": [{"key_id": "ops-1"}]}), 0)
    o = m.overview(0)
    assert o["versions"]["policy_messages"][0]["source"] == "new.yaml"
    html = views.overview_fragments(o)["versions"]
    assert "new.yaml" in html and "signed by ops-1" in html and "..." not in html


def test_chart_span_is_bounded_by_the_buckets_kept_and_empty_without_data():
    m = ReadModel(Pseudonymizer(b"model-test-secret"), bucket_ms=1000, buckets=10)
    assert m.overview(now_ms=50_000)["series"] == {} and list(m.span(50_000)) == []
    for t in (0, 30_000):
        m.apply(names.DECISIONS, b"A", decision(t, "ACC1"), t)
    assert [t for t, _ in m.overview(now_ms=40_000)["series"]["decision/WARN"]] == list(range(31_000, 41_000,
                                                                                              1000))


def test_accounts_beyond_the_bound_are_dropped_least_recently_updated_first_but_not_those_under_review():
    m = ReadModel(Pseudonymizer(b"model-test-secret"), max_accounts=3)
    p = {i: m.pseudonym(f"ACC{i}") for i in range(8)}
    m.apply(names.DECISIONS, b"A", decision(0, "ACC0", "REVIEW"), 0)  # waits for a verdict: kept past its turn
    m.apply(names.DECISIONS, b"A", decision(1, "ACC1"), 1)
    m.apply(names.VALID, b"ACC2", orjson.dumps({"event_id": "e2"}), 2, offset=2)
    m.apply(names.DECISIONS, b"A", decision(2, "ACC2"), 2)
    m.apply(names.COMMANDS, b"A", orjson.dumps({"command_id": "c", "account_id": "ACC1", "action": "WARN"}), 3)
    m.apply(names.DECISIONS, b"A", decision(3, "ACC3"), 4)  # ACC1 was just updated: ACC2 goes
    assert set(m.accounts) == {p[0], p[1], p[3]} and m.overview(0)["accounts_dropped"] == 1
    assert m.account(p[2]) is None and m.raw_account_id(p[2]) is None and p[2] not in m._valid
    assert m.decision("d2") is None and m.decision("d0") is not None and m.decision("d1") is not None
    assert m.overview(0)["decisions"] == 4 and m.overview(0)["by_policy"]["champ (champion, live)"]["WARN"] == 3
    m.apply(names.CONTROL, b"r", orjson.dumps({"kind": "review", "decision_id": "d0", "verdict": "clear",
                                               "account_id": "ACC0", "by": "ana"}), 5)
    for i in (4, 5, 6):  # ACC0 no longer waits: it goes in its turn
        m.apply(names.DECISIONS, b"A", decision(i, f"ACC{i}"), 5 + i)
    assert set(m.accounts) == {p[4], p[5], p[6]} and m.decision("d0") is None and m.raw_account_id(p[0]) is None


def test_valid_events_are_kept_for_a_bounded_number_of_accounts():
    m = ReadModel(Pseudonymizer(b"model-test-secret"), max_accounts=2)
    for i in range(5):
        m.apply(names.VALID, f"ACC{i}".encode(), orjson.dumps({"event_id": f"e{i}"}), i, offset=i)
    assert list(m._valid) == [m.pseudonym("ACC3"), m.pseudonym("ACC4")]
    m.apply(names.VALID, b"ACC0", orjson.dumps({"event_id": "e9"}), 9, offset=9)  # back, its first events lost
    assert m.replayed_features(m.pseudonym("ACC0"), [{"event_id": "e9", "decision_id": "d9"}]) == {}


def test_the_pd_chart_has_one_series_a_policy_role():
    m = ReadModel(Pseudonymizer(b"model-test-secret"))
    m.apply(names.DECISIONS, b"A", decision(1, "ACC1", pd=0.1, event_id="e1"), 0)
    m.apply(names.DECISIONS, b"A", decision(2, "ACC1", pd=0.7, event_id="e1", role="challenger", mode="shadow"), 0)
    m.apply(names.DECISIONS, b"A", decision(3, "ACC1", pd=0.2, event_id="e2"), 0)
    a = m.account(m.pseudonym("ACC1"))
    assert a["pd_by_role"] == {"champion": [(1001, 0.1), (1003, 0.2)], "challenger": [(1002, 0.7)]}
