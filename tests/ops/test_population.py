"""The synthetic population: every event passes riskstream's own validator, outcomes follow the default
definition, the same seed gives the same files, and the CLI writes them."""

import collections

import orjson
import pytest

from riskstream.core.contracts import Rejected, parse_event
from riskstream.core.outcomes import DEFAULT_DPD
from riskstream.core.privacy import Pseudonymizer
from riskstream.offline.files import iter_events, read_truth
from riskstream.ops.cli import main
from riskstream.ops.population import DAY, PopulationConfig, generate

CFG = PopulationConfig(accounts=400, facilities=12, days=240, seed=5, bad_share=0.08, fraud_share=0.01,
                       facility_bad_share=0.2, shock_day=60, shock_segment="retail")


@pytest.fixture(scope="module")
def pop():
    return generate(CFG)


def test_every_event_passes_the_validator(pop):
    now = max(ev["producer_time"] for _, ev in pop.records) + 60_000
    ps = Pseudonymizer(b"test-secret-123")
    rejected = collections.Counter()
    for topic, ev in pop.records:
        family = topic.rsplit(".", 1)[-1]
        out = parse_event(orjson.dumps(ev), now_ms=now, pseudonymizer=ps, family=family)
        if isinstance(out, Rejected):
            rejected[(ev["type"], out.reason)] += 1
    assert not rejected
    types = {ev["type"] for _, ev in pop.records}
    # the whole catalogue that a credit book and a project book produce
    assert {"account_opened", "drawdown", "purchase", "login", "login_failed", "device_change", "contact_change",
            "statement_issued", "payment_received", "payment_partial", "payment_missed", "bureau_inquiry",
            "new_debt", "external_delinquency", "sector_index", "rate_change", "macro_indicator",
            "financial_statement", "cashflow_actual", "covenant_test", "milestone_report"} <= types


def test_publication_order_ids_and_synthetic_marking(pop):
    times = [ev["event_time"] for _, ev in pop.records]
    assert times == sorted(times)
    ids = [ev["event_id"] for _, ev in pop.records]
    assert len(ids) == len(set(ids))
    assert {ev["source"] for _, ev in pop.records} == {"synthetic-population"}
    first = {}
    for _, ev in pop.records:
        first.setdefault(ev.get("account_id") or ev.get("facility_id"), ev["type"])
    first.pop(None)
    assert set(first.values()) == {"account_opened"}        # nothing is dead-lettered as an unknown account
    assert all(t["synthetic"] is True for t in pop.truth)


def test_nothing_before_the_account_opens_even_when_distress_starts_with_the_history():
    pop = generate(PopulationConfig(accounts=300, facilities=5, days=200, seed=12, bad_share=0.5, cure_rate=0.3))
    opened = set()
    for _, ev in pop.records:
        entity = ev.get("account_id") or ev.get("facility_id")
        if ev["type"] == "account_opened":
            opened.add(entity)
        elif entity is not None:
            assert entity in opened, (ev["type"], entity)


def test_same_seed_same_population_other_seed_other_population():
    a, b = generate(PopulationConfig(accounts=50, facilities=2, days=200, seed=9)), \
        generate(PopulationConfig(accounts=50, facilities=2, days=200, seed=9))
    assert a.records == b.records and a.truth == b.truth
    c = generate(PopulationConfig(accounts=50, facilities=2, days=200, seed=10))
    assert c.records != a.records


def test_outcomes_follow_the_default_definition(pop):
    by_entity = collections.defaultdict(list)
    for _, ev in pop.records:
        by_entity[ev.get("account_id") or ev.get("facility_id")].append(ev)
    truth = {t["entity"]: t for t in pop.truth}
    accounts = [t for t in pop.truth if t["entity"].startswith("ACC")]
    defaults = [t for t in accounts if t["outcome"] == "default"]
    # bad_share of the book plus the shock's extra defaults in its segment
    assert int(CFG.bad_share * CFG.accounts) <= len(defaults) <= int(CFG.bad_share * CFG.accounts) + 20
    for t in defaults:
        evs = by_entity[t["entity"]]
        missed = [e for e in evs if e["type"] == "payment_missed"]
        assert missed[-1]["payload"]["days_past_due"] == DEFAULT_DPD and missed[-1]["event_time"] == t["time"]
        assert max(e["event_time"] for e in evs) == t["time"]          # charged off: nothing after the default
        assert [e["payload"]["days_past_due"] for e in missed] == sorted(e["payload"]["days_past_due"] for e in missed)
        # nothing clears the arrears once payments stop
        first_miss = t["time"] - DEFAULT_DPD * DAY
        assert not [e for e in evs if e["type"] == "payment_received" and e["event_time"] > first_miss]
    for t in accounts:
        if t["outcome"] == "good":
            assert t["time"] is None
            dpds = [e["payload"]["days_past_due"] for e in by_entity[t["entity"]] if e["type"] == "payment_missed"]
            assert max(dpds, default=0) < DEFAULT_DPD
    frauds = [t for t in accounts if t["outcome"] == "fraud"]
    assert frauds
    for t in frauds:
        evs = by_entity[t["entity"]]
        assert any(e["type"] == "drawdown" and e["event_time"] == t["time"] for e in evs)
        assert any(e["type"] == "login_failed" and t["time"] - DAY < e["event_time"] < t["time"] for e in evs)
    cohorts = collections.Counter(t.get("cohort") for t in pop.truth)
    assert cohorts["cured"] and cohorts["one_off_miss"] and cohorts["default_sudden"] and cohorts["default_shock"]
    fac = [t for t in pop.truth if t["entity"].startswith("FAC")]
    assert any(t["outcome"] == "default" for t in fac) and any(t["outcome"] == "good" for t in fac)
    assert set(truth) == set(by_entity) - {None}


def test_behaviour_follows_latent_risk(pop):
    """Lead signals are much more frequent before a default than in good accounts, but not always there."""
    truth = {t["entity"]: t for t in pop.truth}
    partial = collections.Counter()
    for _, ev in pop.records:
        if ev["type"] == "payment_partial":
            partial[ev["account_id"]] += 1
    bad = [e for e, t in truth.items() if t["outcome"] == "default" and e.startswith("ACC")]
    good = [e for e, t in truth.items() if t["outcome"] == "good" and e.startswith("ACC")]
    share_bad = sum(1 for e in bad if partial[e]) / len(bad)
    share_good = sum(1 for e in good if partial[e]) / len(good)
    assert 0.3 < share_bad < 0.95 and share_good < 0.1


def test_config_is_checked():
    with pytest.raises(ValueError, match="bad_share"):
        PopulationConfig(bad_share=1.5).check()
    with pytest.raises(ValueError, match="shock_segment"):
        PopulationConfig(shock_segment="mars").check()


def test_cli_writes_events_and_truth(tmp_path, capsys):
    ev, tr = tmp_path / "ev.jsonl", tmp_path / "tr.jsonl"
    assert main(["simulate", "--accounts", "30", "--facilities", "2", "--days", "200", "--seed", "4",
                 "--out-events", str(ev), "--out-truth", str(tr), "--quiet"]) == 0
    with open(ev, "rb") as fh:
        records = list(iter_events(fh))
    with open(tr, "rb") as fh:
        truth = read_truth(fh)
    assert len(truth) == 32 and records[0][0].startswith("riskstream.events.")
    assert '"synthetic": true' in capsys.readouterr().err
    assert main(["simulate", "--population", "--accounts", "5", "--quiet"]) == 2   # Kafka without --out-truth
