import pytest

from bench.models import bench_models
from riskstream.core.models.config import ModelConfigError, load_config


def test_bundled_config_loads():
    cfg = load_config()
    assert cfg["scorer"]["kind"] in ("logistic", "tree") and cfg["labels"]["bad_dpd"] == 30


@pytest.mark.parametrize("text, field", [
    ("scorer: {kind: forest}", "scorer.kind"),
    ("scorer: {balance: -0.5}", "scorer.balance"),
    ("scorer: {pd_correction: 1}", "scorer.pd_correction"),
    ("scorer: {max_bad_weight: 0}", "scorer.max_bad_weight"),
    ("labels: {bad_dpd: -1}", "labels.bad_dpd"),
    ("drift: {delta: fast}", "drift.delta"),
    ("anomaly: {limits: {utilisation: [1, 0]}}", "anomaly.limits.utilisation"),
    ("anomaly: {limits: {dscr: [0, 10]}}", "anomaly.limits.dscr"),
    ("- just a list", "<top>"),
    ("scorer: [unclosed", "<file>"),
])
def test_invalid_config_names_file_field_and_fix(tmp_path, text, field):
    path = tmp_path / "models.yaml"
    path.write_text(text)
    with pytest.raises(ModelConfigError) as err:
        load_config(path)
    assert err.value.field == field
    assert str(err.value).startswith(f"{path}: {field}: ") and ". Fix: " in str(err.value)


def test_overlay_merges_with_defaults(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("scorer: {kind: tree}\n")
    cfg = load_config(path)
    assert cfg["scorer"]["kind"] == "tree" and cfg["scorer"]["learning_rate"] == load_config()["scorer"]["learning_rate"]


def test_bench_reports_throughput():
    out = bench_models(n=500)
    assert out["score_learn_ev_s"] > 0 and out["events"] == 500
