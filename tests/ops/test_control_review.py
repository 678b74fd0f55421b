"""`riskstream control review`: a signed review verdict, built from the REVIEW decision record it answers."""

import doctest
import os
import subprocess
import sys

import orjson
import pytest

from riskstream.core import signing
from riskstream.core.errors import FORMAT, OperatorError
from riskstream.core.steps import PipelineConfig, route_control
from riskstream.ops import control

KEY = b"ann-secret-0123456789"
RING = signing.Keyring({"ann": KEY})
NOW = 1_790_000_000_000


def cli(*argv):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RISKSTREAM_")}
    return subprocess.run([sys.executable, "-m", "riskstream", "control", *argv], capture_output=True, text=True,
                          timeout=60, env={**clean, "RISKSTREAM_CONTROL_KEY_ID": "ann",
                                           "RISKSTREAM_CONTROL_KEY": KEY.decode()})


@pytest.fixture(scope="module")
def review_decision():
    """A REVIEW decision as the account step publishes it (a short simulated run)."""
    from riskstream.offline.replay import replay
    from riskstream.ops.simulator import SimConfig, Simulator

    sim = Simulator(SimConfig(accounts=60, facilities=6, seed=11, start_ms=NOW - 3 * 86_400_000, step_ms=20_000))
    decisions = [orjson.loads(o.value) for o in replay(list(sim.wire(3000)), now_ms=NOW).decisions]
    return next(d for d in decisions if d.get("action") == "REVIEW" and d.get("mode") == "live")


def test_doctests():
    assert doctest.testmod(control).failed == 0


def test_a_review_decision_carries_its_point_in_time_features(review_decision):
    assert review_decision["features"] and all(v for v in review_decision["features"].values())


def test_cli_writes_a_signed_verdict_whose_label_has_the_decisions_features(tmp_path, review_decision):
    record, out = tmp_path / "d.json", tmp_path / "m.json"
    record.write_bytes(orjson.dumps(review_decision))
    res = cli("review", review_decision["account_id"], "--decision-from", str(record), "--verdict", "fraud",
              "--note", "confirmed with the card issuer", "--out", str(out))
    assert res.returncode == 0, res.stderr
    checked = signing.verify(out.read_bytes(), RING)
    assert isinstance(checked, signing.Verified) and checked.signers == ("ann",)
    msg = checked.msg
    assert (msg["kind"], msg["verdict"], msg["decision_id"], msg["by"]) == \
        ("review", "fraud", review_decision["decision_id"], "ann")
    assert msg["features"] == review_decision["features"] and msg["snapshot_time"] == review_decision["event_time"]
    cfg = PipelineConfig(control_keys=RING)
    label = orjson.loads(route_control(cfg, out.read_bytes()).outs[1].value)
    assert (label["features"], label["snapshot_time"], label["label"]) == \
        (review_decision["features"], review_decision["event_time"], True)


def test_cli_refuses_a_bad_verdict_in_the_operator_error_format(tmp_path):
    res = cli("review", "A1", "--decision", "d1", "--verdict", "maybe", "--out", str(tmp_path / "m.json"))
    assert res.returncode == 2 and not (tmp_path / "m.json").exists()
    line = res.stderr.strip().removeprefix("riskstream control: ")
    assert FORMAT.fullmatch(line)["field"] == "--verdict", res.stderr


def test_cli_refuses_a_record_of_another_decision(tmp_path, review_decision):
    record = tmp_path / "d.json"
    record.write_bytes(orjson.dumps(review_decision))
    res = cli("review", review_decision["account_id"], "--decision", "other", "--decision-from", str(record),
              "--verdict", "clear", "--out", str(tmp_path / "m.json"))
    assert res.returncode == 2 and FORMAT.fullmatch(res.stderr.strip().removeprefix("riskstream control: "))
    assert f"{record}: decision_id:" in res.stderr


def test_without_the_record_the_verdict_is_applied_but_teaches_nothing(tmp_path):
    out = tmp_path / "m.json"
    res = cli("review", "A1", "--decision", "d1", "--verdict", "hold", "--note", "asked for statements",
              "--out", str(out))
    assert res.returncode == 0 and "teaches the trainer nothing" in res.stderr
    assert [o.topic for o in route_control(PipelineConfig(control_keys=RING), out.read_bytes()).outs] == \
        ["riskstream.decisions"]


def test_review_message_checks_what_it_copies():
    with pytest.raises(OperatorError, match="is not a REVIEW decision"):
        control.review_message("A1", "d1", "fraud", decision={"decision_id": "d1", "account_id": "A1",
                                                               "action": "CLOSE", "event_time": 1, "features": {}})


def test_help_shows_a_review_example():
    res = cli("--help")
    assert "riskstream control review ACC000123 --decision-from" in res.stdout and "--verdict" in res.stdout
