"""Backtest figures from truth + commands (pure), the offline actuator of the sweep, and one end-to-end run."""

import orjson
import pytest
import yaml

from riskstream.core.actuator import ActuatorConfig, step
from riskstream.core.policy import load_policy
from riskstream.data import DEFAULT_POLICY
from riskstream.offline.backtest import (
    DAY, HOUR, Ledger, compute_metrics, exposure_at, format_table, percentile, run_backtest, scaled_policy_text,
    simulate_commands,
)
from riskstream.offline.files import FileFormatError, read_truth, write_events, write_truth
from riskstream.ops.population import PopulationConfig, generate


def cmd(account, action, day, decision_id="d", **params):
    return {"account_id": account, "action": action, "issued_at": int(day * DAY), "decision_id": decision_id,
            "params": params, "command_id": f"{decision_id}-{action}"}


def book(*entities):
    """entities: (id, product, outcome, default day or None)"""
    ledger, truth = Ledger(), {}
    for eid, product, outcome, day in entities:
        ledger.open(eid, product, "retail", 1000.0, 0)
        truth[eid] = {"entity": eid, "outcome": outcome, "time": None if day is None else int(day * DAY)}
    return ledger, truth


def test_catch_rate_counts_restrictive_commands_by_lead_time():
    ledger, truth = book(("A", "credit_line", "default", 100), ("B", "credit_line", "default", 100),
                         ("C", "credit_line", "default", 100), ("D", "credit_line", "default", 100),
                         ("G", "credit_line", "good", None))
    cmds = [cmd("A", "REDUCE_LIMIT", 5, limit_factor=0.7),      # 95 days ahead
            cmd("B", "WARN", 5), cmd("B", "FREEZE", 35),        # a warning is not restrictive: 65 days ahead
            cmd("C", "CLOSE", 70),                              # 30 days ahead: exactly at the 30-day mark
            cmd("D", "REDUCE_LIMIT", 101)]                      # after the default: not caught
    m = compute_metrics(truth, ledger, [], cmds)
    assert (m["defaulters"], m["good_accounts"]) == (4, 1)
    assert (m["catch_rate_30d"], m["catch_rate_60d"], m["catch_rate_90d"]) == (0.75, 0.5, 0.25)
    assert m["caught_before_default"] == 0.75
    assert m["lead_days_median"] == 65.0 and m["lead_days_p10"] == 37.0 and m["lead_days_p90"] == 89.0
    assert m["commands_by_action"] == {"CLOSE": 1, "FREEZE": 1, "REDUCE_LIMIT": 2, "WARN": 1}


def test_good_account_harm_shares():
    ledger, truth = book(*[(f"G{i}", "credit_line", "good", None) for i in range(10)])
    cmds = [cmd("G0", "WARN", 1), cmd("G0", "REDUCE_LIMIT", 2), cmd("G0", "CLOSE", 5),   # closed (and limited)
            cmd("G1", "FREEZE", 3),                                                     # frozen
            cmd("G2", "WARN", 3), cmd("G3", "WARN", 4), cmd("G3", "REPRICE", 5),        # only warned
            cmd("G4", "REVIEW", 1)]                                                     # not harm
    m = compute_metrics(truth, ledger, [], cmds)
    assert m["good_closed_share"] == 0.1
    assert m["good_limited_share"] == 0.2
    assert m["good_restricted_share"] == 0.2
    assert m["good_warned_only_share"] == 0.2
    assert m["catch_rate_60d"] is None                      # no defaulter: no rate rather than 0


def test_exposure_with_and_without_limit_cuts():
    ledger, truth = book(("A", "credit_line", "default", 100))
    e = ledger.entities["A"]
    e.limit = 2000.0
    e.flows = [(int(d * DAY), amount, amount > 0) for d, amount in
               [(1, 300.0), (10, 200.0), (20, -100.0), (30, 400.0), (40, 150.0), (50, 100.0), (120, 50.0)]]
    assert exposure_at(e, truth["A"]["time"]) == 1050.0                   # everything up to the default
    cut = [cmd("A", "REDUCE_LIMIT", 25, limit_factor=0.3)]                # limit 600 from day 25
    assert exposure_at(e, truth["A"]["time"], cut) == 550.0               # 400 and then 100 no longer fit
    frozen = [cmd("A", "FREEZE", 29, until=int(45 * DAY))]
    assert exposure_at(e, truth["A"]["time"], frozen) == 500.0            # the drawdowns at 30 and 40 are refused
    closed = [cmd("A", "CLOSE", 15)]
    assert exposure_at(e, truth["A"]["time"], closed) == 400.0
    back = cut + [cmd("A", "REINSTATE", 35, restore_limit=True)]
    assert exposure_at(e, truth["A"]["time"], back) == 650.0              # limit restored: 150 and 100 fit
    m = compute_metrics(truth, ledger, [], cut)
    assert (m["exposure_at_default_without"], m["exposure_at_default_with"], m["exposure_saved"]) == \
        (1050.0, 550.0, 500.0)


def test_a_command_after_the_event_it_reacts_to_does_not_undo_it():
    ledger, truth = book(("A", "credit_line", "default", 100))
    e = ledger.entities["A"]
    e.flows = [(int(10 * DAY), 900.0, True)]
    assert exposure_at(e, truth["A"]["time"], [cmd("A", "CLOSE", 10)]) == 900.0


def test_fraud_frozen_before_first_fraudulent_drawdown():
    ledger, truth = book(("F1", "credit_line", "fraud", 50), ("F2", "credit_line", "fraud", 50),
                         ("F3", "credit_line", "fraud", 50), ("F4", "credit_line", "fraud", 50))
    cmds = [cmd("F1", "FREEZE", 50),                       # decided on the drawdown itself: stops it
            cmd("F2", "FREEZE", 50 + 1 / 24),              # an hour too late
            cmd("F3", "FREEZE", 20),                       # long before: not this burst
            cmd("F4", "CLOSE", 50 - 2 / 24)]
    m = compute_metrics(truth, ledger, [], cmds)
    assert (m["takeovers"], m["fraud_frozen_share"]) == (4, 0.5)
    assert m["good_accounts"] == 0 and m["defaulters"] == 0


def test_project_finance_warned_at_least_one_period_before_default():
    ledger, truth = book(("P1", "project_facility", "default", 200), ("P2", "project_facility", "default", 200),
                         ("P3", "project_facility", "default", 200), ("P4", "project_facility", "good", None),
                         ("P5", "project_facility", "good", None))
    cmds = [cmd("P1", "REPAYMENT_PLAN", 100), cmd("P2", "WARN", 185), cmd("P4", "WARN", 10)]
    m = compute_metrics(truth, ledger, [], cmds, period_days=30)
    assert (m["facilities"], m["facility_defaults"]) == (5, 3)
    assert m["facility_defaults_warned_share"] == round(1 / 3, 4)
    assert m["facility_good_alerted_share"] == 0.5
    assert m["credit_lines"] == 0 and m["catch_rate_30d"] is None


def test_time_to_act_from_first_lead_signal():
    ledger, truth = book(("A", "credit_line", "default", 100), ("B", "credit_line", "default", 100))
    for eid, day in (("A", 10), ("B", 40)):
        ledger.add({"event_id": f"{eid}-m", "type": "payment_missed", "account_id": eid,
                    "event_time": int(day * DAY), "payload": {"days_past_due": 1, "amount_due": 10.0,
                                                              "statement_id": "s"}})
    m = compute_metrics(truth, ledger, [], [cmd("A", "REDUCE_LIMIT", 15), cmd("B", "REDUCE_LIMIT", 30)])
    assert m["defaulters_with_lead_signal"] == 1.0
    assert m["time_to_act_days_median"] == -2.5           # +5 for A, -10 (acted before any signal) for B


def test_counts_by_rule_and_reason_code():
    ledger, truth = book(("A", "credit_line", "default", 100))
    decisions = [{"decision_id": "d1", "rule_id": "pd-limit", "reasons": ["rule text",
                  "days past due: 45 is higher than the typical 2.1, which raises the risk"]},
                 {"decision_id": "d2", "rule_id": "dpd-limit", "reasons": ["rule text"]}]
    cmds = [cmd("A", "REDUCE_LIMIT", 10, "d1"), cmd("A", "WARN", 11, "d2"), cmd("A", "REINSTATE", 12, "cure:e9")]
    m = compute_metrics(truth, ledger, decisions, cmds)
    assert m["commands_by_rule"] == {"pd-limit -> REDUCE_LIMIT": 1, "dpd-limit -> WARN": 1, "cure -> REINSTATE": 1}
    assert m["commands_by_reason_code"] == {"days_past_due": 1, "rule-only": 1}


def test_percentile_matches_linear_interpolation():
    assert percentile([10, 20, 30, 40, 50], 0.1) == 14.0
    assert percentile([3, 1, 2], 0.5) == 2.0


def test_scaled_policy_scales_every_pd_cutoff_and_runs_in_shadow():
    base = load_policy(DEFAULT_POLICY)
    scaled = load_policy(scaled_policy_text(base.text, 0.5, "x"))
    assert scaled.name == "x" and scaled.mode == "shadow"
    for product, th in base.thresholds.items():
        assert scaled.thresholds[product] == {k: round(v * 0.5, 6) for k, v in th.items()}
    doc = yaml.safe_load(base.text)
    doc["rules"][0]["when"] = {"any": [{"fact": "pd", "op": ">=", "value": 0.5},
                                       {"fact": "utilisation", "op": ">=", "value": 0.5}]}
    scaled = yaml.safe_load(scaled_policy_text(yaml.safe_dump(doc), 2.0, "y"))
    assert scaled["rules"][0]["when"]["any"] == [{"fact": "pd", "op": ">=", "value": 0.999},
                                                 {"fact": "utilisation", "op": ">=", "value": 0.5}]


def test_offline_actuator_matches_the_state_machine():
    """Shadow decisions replayed through simulate_commands give what `step` gives a live champion."""
    ledger = Ledger()
    events = [("e1", 0), ("e2", 1 * DAY), ("e3", 4 * DAY), ("p1", 5 * DAY), ("p2", 40 * DAY)]
    for eid, t in events:
        etype = "payment_received" if eid.startswith("p") else "login"
        ledger.add({"event_id": eid, "type": etype, "account_id": "A", "event_time": t,
                    "payload": {"amount": 5.0}})
    dec = [{"decision_id": f"d-{eid}", "account_id": "A", "action": action, "params": {}, "immediate": False,
            "mode": "shadow", "policy_name": "p", "policy_version": 1, "event_id": eid, "event_time": t}
           for (eid, t), action in zip(events[:3], ["CLOSE", "REDUCE_LIMIT", "CLOSE"])]
    sim = simulate_commands(dec, ledger, policy_names=["p"])["p"]
    # by hand: the same inputs to `step`, live
    line, want = None, []
    for d in dec:
        line, cmds, _ = step(line, dict(d, mode="live"), d["event_time"], ActuatorConfig())
        want += cmds
    for eid, t in events[3:]:
        line, cmds, _ = step(line, {"kind": "cure", "account_id": "A", "event_id": eid}, t, ActuatorConfig())
        want += cmds
    assert [c["action"] for c in sim] == [c["action"] for c in want] == ["WARN", "REDUCE_LIMIT", "CLOSE"]
    assert sim == want


def test_truth_file_is_checked(tmp_path):
    p = tmp_path / "t.jsonl"
    p.write_bytes(b'{"entity": "A", "outcome": "defaulted", "time": 1}\n')
    with pytest.raises(FileFormatError, match="outcome must be one of"):
        read_truth(open(p, "rb"), "t.jsonl")
    p.write_bytes(b'{"entity": "A", "outcome": "default", "time": null}\n')
    with pytest.raises(FileFormatError, match="needs its time"):
        read_truth(open(p, "rb"), "t.jsonl")


def test_end_to_end_on_a_small_population(tmp_path):
    """The real driver over a small synthetic book: figures, JSON, PNG, and the sweep's self-check."""
    pop = generate(PopulationConfig(accounts=40, facilities=2, days=200, seed=2, bad_share=0.15, fraud_share=0.03))
    ev, tr = tmp_path / "ev.jsonl", tmp_path / "tr.jsonl"
    with open(ev, "wb") as fh:
        write_events(fh, pop.records)
    with open(tr, "wb") as fh:
        write_truth(fh, pop.truth)
    report = run_backtest(ev, tr, [DEFAULT_POLICY], out=tmp_path / "out", sweep=(0.7, 1.0), show_progress=False)
    (p,) = report["policies"]
    assert p["policy"] == "retail-champion" and p["defaulters"] == 6 and p["dead_letters"] == 0
    for key in ("catch_rate_30d", "catch_rate_60d", "catch_rate_90d", "lead_days_median", "good_closed_share",
                "good_limited_share", "exposure_saved", "throughput_ev_s"):
        assert key in p
    assert p["sweep_self_check"]["equal"] is True and p["sweep_self_check"]["commands"] == p["commands"]
    assert [s["factor"] for s in p["sweep"]] == [0.7, 1.0]
    saved = orjson.loads((tmp_path / "out" / "backtest.json").read_bytes())
    assert saved["policies"][0]["catch_rate_60d"] == p["catch_rate_60d"]
    assert (tmp_path / "out" / "backtest.png").read_bytes()[:4] == b"\x89PNG"
    assert "retail-champion" in format_table(report)


def test_parity_with_a_plain_replay(tmp_path):
    """The champion's decisions and commands in a backtest run (sweep copies beside it, the file read as a stream)
    equal those of a plain replay of the same records with the bundled challenger: 0 differing ids."""
    from riskstream.core.steps import PipelineConfig
    from riskstream.offline.backtest import _run_policy, scan_events, stream_events
    from riskstream.offline.files import entity_key
    from riskstream.offline.replay import replay
    pop = generate(PopulationConfig(accounts=30, facilities=2, days=200, seed=8, bad_share=0.2))
    ev = tmp_path / "ev.jsonl"
    with open(ev, "wb") as fh:
        write_events(fh, pop.records)
    scan = scan_events(ev)
    shadow = tmp_path / "x.yaml"
    shadow.write_text(scaled_policy_text(load_policy(DEFAULT_POLICY).text, 0.5, "retail-champion x0.5"))
    run = _run_policy(ev, DEFAULT_POLICY, now_ms=scan.now_ms, shadow_paths=(shadow,))
    records = [(topic, entity_key(e).encode(), raw) for topic, e, raw in stream_events(ev)]
    ref = replay(records, now_ms=scan.now_ms, config=PipelineConfig(), learn=True, flush=True)  # as the CLI
    ref_dec = [orjson.loads(o.value) for o in ref.decisions]
    ids = [d["decision_id"] for d in ref_dec if d.get("role") == "champion"]
    assert run.decision_ids == ids and ids
    assert [c["command_id"] for c in run.commands] == [o.ident for o in ref.commands]
    print(f"backtest parity with replay: decisions N={len(ids)}, commands N={len(ref.commands)}, 0 differing")


def test_parallel_runs_report_what_sequential_runs_report(tmp_path):
    """Two policies in two worker processes give the figures the same runs give one after the other."""
    from riskstream.data import CHALLENGER_POLICY
    pop = generate(PopulationConfig(accounts=30, facilities=2, days=200, seed=5, bad_share=0.2, fraud_share=0.03))
    ev, tr = tmp_path / "ev.jsonl", tmp_path / "tr.jsonl"
    with open(ev, "wb") as fh:
        write_events(fh, pop.records)
    with open(tr, "wb") as fh:
        write_truth(fh, pop.truth)
    runs = [run_backtest(ev, tr, [DEFAULT_POLICY, CHALLENGER_POLICY], sweep=(1.0, 2.0), show_progress=False,
                         jobs=jobs) for jobs in (1, 2)]
    timing = {"throughput_ev_s", "throughput_ev_per_cpu_s", "seconds", "cpu_seconds", "peak_rss_mb"}
    seq, par = ([{k: v for k, v in p.items() if k not in timing} for p in r["policies"]] for r in runs)
    assert [p["policy"] for p in par] == ["retail-champion", "retail-challenger"]
    assert par == seq
    assert runs[1]["throughput"]["parallel_runs"] == 2 and runs[1]["throughput"]["events_per_s"] > 0


def test_a_malformed_line_stops_the_parallel_runs(tmp_path):
    from riskstream.data import CHALLENGER_POLICY
    ev, tr = tmp_path / "ev.jsonl", tmp_path / "tr.jsonl"
    ev.write_bytes(b'{"topic": "riskstream.events.behaviour", "event": {}}\nnot json\n')
    tr.write_bytes(b'{"entity": "A", "outcome": "good", "time": null}\n')
    with pytest.raises(FileFormatError, match="ev.jsonl:2: not JSON"):
        run_backtest(ev, tr, [DEFAULT_POLICY, CHALLENGER_POLICY], show_progress=False, jobs=2)


def test_the_offline_actuator_sends_a_close_after_its_wait_and_at_the_end():
    """A CLOSE waits one window of event time in the breaker, as live; at the end of the run one quiet window
    passes (`finish`), so the last CLOSE counts as sent."""
    from riskstream.offline.backtest import OfflineActuator

    act = OfflineActuator(["p"])

    def close(i, t):
        return {"decision_id": f"d{i}", "account_id": f"a{i}", "action": "CLOSE", "immediate": True, "params": {},
                "policy_name": "p", "policy_version": 1, "event_time": t, "active_accounts": 1000}

    act.decision(close(1, 0))
    assert act.commands["p"] == []
    act.decision(close(2, 60_000))          # a minute later: the first leaves, the second waits
    assert [c["decision_id"] for c in act.commands["p"]] == ["d1"]
    act.finish()
    assert [c["decision_id"] for c in act.commands["p"]] == ["d1", "d2"]


def test_shadow_decisions_left_unactuated_change_no_command(tmp_path):
    """The backtest's driver does not actuate its sweep copies' shadow decisions (the offline actuator does): the
    same decisions, and the champion's commands are those with the shadows actuated, and those of a run without
    shadows."""
    from riskstream.core.names import COMMANDS, DECISIONS
    from riskstream.core.steps import PipelineConfig
    from riskstream.offline.driver import OfflineDriver
    pop = generate(PopulationConfig(accounts=30, facilities=2, days=200, seed=8, bad_share=0.2))
    shadow = tmp_path / "x.yaml"
    shadow.write_text(scaled_policy_text(load_policy(DEFAULT_POLICY).text, 0.5, "retail-champion x0.5"))

    now = max(max(ev["event_time"], ev.get("producer_time", 0)) for _, ev in pop.records) + 60_000

    def run(shadows, actuate_shadow):
        outs = []
        d = OfflineDriver(config=PipelineConfig(challenger_paths=shadows), on_output=outs.append,
                          actuate_shadow=actuate_shadow)
        for topic, ev in pop.records:
            d.feed(topic, orjson.dumps(ev), timestamp_ms=now)
        return ([o.value for o in outs if o.topic == DECISIONS and not o.label.startswith("challenger/")],
                [o.value for o in outs if o.topic == DECISIONS], [o.value for o in outs if o.topic == COMMANDS])

    skipped, actuated, alone = run((shadow,), False), run((shadow,), True), run((), True)
    assert skipped[1] == actuated[1] and len(skipped[1]) > len(skipped[0]) > 0   # same decisions, shadows made some
    assert skipped[2] == actuated[2] == alone[2] and skipped[2]
