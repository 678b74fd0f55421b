import argparse
import io
import json
import pathlib

import numpy as np
import pytest

import riskstream
from riskstream.offline import evaluate
from riskstream.offline.evaluate import auc, batch_logistic_cv, ece, evaluate_rows, read_csv

GERMAN = pathlib.Path(riskstream.__file__).parent / "data" / "germancredit.csv"


def _cli(argv):
    parser = argparse.ArgumentParser(prog="riskstream")
    evaluate.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def test_german_credit_prequential_auc_within_002_of_batch(capsys):
    rc = _cli(["evaluate", "--csv", str(GERMAN), "--target", "creditability", "--bad", "bad"])
    out = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(out[-1])
    with capsys.disabled():
        print(f"\ngerman credit: prequential AUC {summary['prequential_auc']} vs batch {summary['batch_auc']} "
              f"(gap {summary['auc_gap']}), logloss {summary['prequential_logloss']}, ECE {summary['prequential_ece']}")
    assert rc == 0 and summary["rows"] == 1000 and summary["model"] == "logistic"
    assert 0.75 <= summary["batch_auc"] <= 0.83
    assert summary["batch_auc"] - summary["prequential_auc"] <= 0.02
    assert summary["prequential_ece"] <= 0.06  # the class-weighted default still serves calibrated PDs
    assert summary["label_delay"] == 0 and summary["settings"]["online"]["balance"] == 0.5


def test_german_credit_with_label_delay_is_still_close():
    header, rows = read_csv(GERMAN.open(newline=""))
    res = evaluate_rows(header, rows, target="creditability", bad="bad", label_delay=10)
    assert res["batch_auc"] - res["prequential_auc"] <= 0.03


def test_messy_csv_with_missing_values_and_numeric_target():
    rng = np.random.default_rng(0)
    lines = ["income,region,age,target"]
    for i in range(400):
        income = rng.normal(50, 10)
        region = rng.choice(["north", "south", "", "NA"])
        bad = rng.random() < 1 / (1 + np.exp((income - 50) / 5 - (region == "south")))
        income_s = "" if i % 13 == 0 else f"{income:.1f}"
        age = "?" if i % 17 == 0 else str(int(rng.integers(20, 70)))
        lines.append(f"{income_s},{region},{age},{int(bad)}")
    header, rows = read_csv(io.StringIO("\n".join(lines) + "\n"))
    res = evaluate_rows(header, rows, target="target", bad="1", label_delay=5)
    assert res["rows"] == 400 and res["prequential_auc"] > 0.7 and res["batch_auc"] > 0.7
    assert res["settings"]["encoding"] == {"numeric": 2, "categorical": 1}


def test_bad_arguments_are_reported(capsys, tmp_path):
    assert _cli(["evaluate", "--csv", str(GERMAN), "--target", "nope", "--bad", "bad"]) == 2
    assert "nope" in capsys.readouterr().err
    assert _cli(["evaluate", "--csv", str(GERMAN), "--target", "creditability", "--bad", "x"]) == 2
    assert _cli(["evaluate", "--csv", str(tmp_path / "missing.csv"), "--target", "t", "--bad", "1"]) == 2


def test_metrics():
    assert auc([0.1, 0.2, 0.3, 0.4], [0, 0, 1, 1]) == 1.0
    assert auc([0.5, 0.5], [0, 1]) == 0.5
    assert ece([0.2] * 10, [1, 1] + [0] * 8) == pytest.approx(0.0)
    x = np.random.default_rng(1).normal(size=(300, 2))
    y = (x[:, 0] + 0.3 * np.random.default_rng(2).normal(size=300) > 0).astype(float)
    assert auc(batch_logistic_cv(x, y), y) > 0.9


def test_subsample_keeps_goods_file_order_and_is_seeded():
    labels = np.array([i % 3 == 0 for i in range(300)])  # 100 bad, 200 good
    a, b, c = (evaluate.subsample_bad(labels, 0.05, seed) for seed in (1, 1, 2))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert int(labels[a].sum()) == 11 and int((~labels[a]).sum()) == 200
    assert (np.diff(a) > 0).all()
    with pytest.raises(ValueError, match="smaller share"):
        evaluate.subsample_bad(labels, 0.5, 0)
    with pytest.raises(ValueError, match="larger share"):
        evaluate.subsample_bad(labels, 0.001, 0)


def test_bad_share_cli_prints_repeats_mean_and_spread(capsys):
    rc = _cli(["evaluate", "--csv", str(GERMAN), "--target", "creditability", "--bad", "bad",
               "--bad-share", "0.05", "--repeats", "2", "--seed", "3"])
    out = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(out[-1])
    assert rc == 0 and summary["bad_share"] == 0.05 and summary["repeats"] == 2 and summary["seed"] == 3
    assert summary["rows"] == 737 and summary["bads"] == 37 and summary["rows_full"] == 1000
    assert [u["seed"] for u in summary["per_repeat"]] == [3, 4]
    aucs = [u["prequential_auc"] for u in summary["per_repeat"]]
    assert summary["prequential_auc"] == pytest.approx(np.mean(aucs), abs=1e-4)
    assert summary["prequential_auc_std"] == pytest.approx(np.std(aucs), abs=1e-4)
    assert summary["auc_gap"] == pytest.approx(np.mean([u["auc_gap"] for u in summary["per_repeat"]]), abs=1e-4)
    assert summary["settings"]["batch"]["l2"] == 1.0 and summary["settings"]["batch"]["folds"] == 5
    assert any(line.startswith("  repeat 1 (seed 4)") for line in out)


def test_bad_share_arguments_are_checked(capsys):
    base = ["evaluate", "--csv", str(GERMAN), "--target", "creditability", "--bad", "bad"]
    assert _cli(base + ["--repeats", "3"]) == 2 and "--bad-share" in capsys.readouterr().err
    assert _cli(base + ["--bad-share", "0.6"]) == 2 and "smaller share" in capsys.readouterr().err
    assert _cli(base + ["--bad-share", "0.05", "--repeats", "0"]) == 2


def test_german_credit_at_5_percent_bads_mean_prequential_auc_within_002_of_batch(capsys):
    """Issue 12, point 6: 10 seeded subsamples with 5 % bads; the batch reference is today's (5-fold L2 logistic)."""
    rc = _cli(["evaluate", "--csv", str(GERMAN), "--target", "creditability", "--bad", "bad",
               "--bad-share", "0.05", "--repeats", "10", "--seed", "0"])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    with capsys.disabled():
        print(f"\ngerman credit, 5 % bads x 10: prequential AUC {summary['prequential_auc']} ± "
              f"{summary['prequential_auc_std']} vs batch {summary['batch_auc']} ± {summary['batch_auc_std']} "
              f"(gap {summary['auc_gap']} ± {summary['auc_gap_std']})")
    assert rc == 0 and summary["bads"] == 37 and len(summary["per_repeat"]) == 10
    assert summary["settings"]["batch"] == {"method": "IRLS L2 logistic regression", "l2": 1.0, "folds": 5, "seed": 0}
    assert summary["batch_auc"] - summary["prequential_auc"] <= 0.02
    assert summary["prequential_ece"] <= 0.08


def test_default_model_beats_the_unweighted_one_at_5_percent_bads():
    header, rows = read_csv(GERMAN.open(newline=""))
    cfg = evaluate.load_config()
    plain = {**cfg, "scorer": {**cfg["scorer"], "balance": 0.0}}
    kw = dict(target="creditability", bad="bad", bad_share=0.05, repeats=4, seed=0)
    assert evaluate.evaluate_imbalanced(header, rows, config=cfg, **kw)["prequential_auc"] > \
        evaluate.evaluate_imbalanced(header, rows, config=plain, **kw)["prequential_auc"] + 0.01
