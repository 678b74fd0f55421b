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


def test_german_credit_prequential_auc_within_003_of_batch(capsys):
    rc = _cli(["evaluate", "--csv", str(GERMAN), "--target", "creditability", "--bad", "bad"])
    out = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(out[-1])
    with capsys.disabled():
        print(f"\ngerman credit: prequential AUC {summary['prequential_auc']} vs batch {summary['batch_auc']} "
              f"(gap {summary['auc_gap']}), logloss {summary['prequential_logloss']}, ECE {summary['prequential_ece']}")
    assert rc == 0 and summary["rows"] == 1000 and summary["model"] == "logistic"
    assert 0.75 <= summary["batch_auc"] <= 0.83
    assert summary["batch_auc"] - summary["prequential_auc"] <= 0.03
    assert summary["label_delay"] == 0 and "settings" in summary


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
