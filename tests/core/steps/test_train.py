import orjson

from riskstream.core.steps import Context, new_train_state, train_batch


def _labels(n):
    return [orjson.dumps({"kind": "label", "entity": f"p{i % 7}", "snapshot_time": i, "label_time": i + 5,
                          "features": {"days_past_due": float(i % 3) * 30, "utilisation": (i % 10) / 10},
                          "label": i % 3 == 2}) for i in range(n)]


def test_quality_off_learns_and_publishes_the_same():
    ctx = Context()
    on, off = new_train_state(ctx), new_train_state(ctx)
    blobs_on, blobs_off = [], []
    for chunk in range(6):
        batch = _labels(80)[chunk * 10:(chunk + 1) * 10 + 30]
        r_on = train_batch(on, batch, publish_every=25)
        r_off = train_batch(off, batch, publish_every=25, quality=False)
        blobs_on += [o.value for o in r_on.outs]
        blobs_off += [o.value for o in r_off.outs]
        assert "auc" not in r_off.report and "log_loss" not in r_off.report
        assert {k: v for k, v in r_on.report.items() if k not in ("auc", "log_loss")} == r_off.report
    assert blobs_on and blobs_on == blobs_off   # byte-equal signed snapshots
    assert "log_loss" in r_on.report
