import math
import random

from riskstream.core.models.config import load_config
from riskstream.core.models.drift import DriftMonitor
from riskstream.core.models.labels import LabeledExample
from riskstream.core.models.snapshot import Trainer

FLIP = 2000


def flipping_stream(n, seed=0):
    """P(bad) = sigmoid(4a) before FLIP, sigmoid(-4a) after: the default relation flips halfway."""
    rng = random.Random(seed)
    for i in range(n):
        a, b = rng.uniform(-1, 1), rng.uniform(-1, 1)
        sign = 1 if i < FLIP else -1
        yield {"a": a, "b": b}, rng.random() < 1 / (1 + math.exp(-4 * sign * a))


def _run(detector, reaction="alert_only", n=2 * FLIP):
    cfg = load_config()
    cfg["drift"] = {**cfg["drift"], "detector": detector, "reaction": reaction}
    trainer = Trainer(cfg, key=b"k")
    fired = []
    losses = []
    for i, (x, y) in enumerate(flipping_stream(n)):
        pd = trainer.scorer.predict_pd(x) if trainer.scorer.n_learned else 0.5
        if i >= FLIP:
            losses.append(abs(y - pd))
        if trainer.learn(LabeledExample("e", i, x, y)):
            fired.append(i)
    return fired, trainer, losses


def test_adwin_fires_within_a_bounded_number_of_labels_after_the_flip():
    fired, trainer, _ = _run("adwin")
    after = [i for i in fired if i >= FLIP]
    assert after, "no drift detected after the flip"
    delay = after[0] - FLIP
    print(f"\nADWIN detected the flip {delay} labels after it (false alarms before: {len(fired) - len(after)})")
    assert delay <= 300
    assert len(fired) == len(after), "false alarm before the flip"
    assert trainer.drift.n_error_drifts == len(fired)


def test_page_hinkley_fires_after_the_flip():
    fired, _, _ = _run("page_hinkley")
    after = [i for i in fired if i >= FLIP]
    assert after
    print(f"\nPageHinkley detected the flip {after[0] - FLIP} labels after it")
    assert after[0] - FLIP <= 600


def test_retrain_window_recovers_faster_than_alert_only():
    _, _, alert_losses = _run("adwin", "alert_only")
    _, trainer, retrain_losses = _run("adwin", "retrain_window")
    assert trainer.n_reactions >= 1
    window = slice(300, 1000)  # after detection, before alert_only has had time to unlearn
    assert sum(retrain_losses[window]) < sum(alert_losses[window])


def test_score_distribution_drift():
    mon = DriftMonitor({"detector": "adwin"})
    fired = [mon.update_score(0.05 if i < 1000 else 0.4) for i in range(2000)]
    assert any(fired[1000:1200]) and not any(fired[:1000])
    assert mon.stats()["score_drifts"] >= 1


def test_reset_reaction_replaces_the_model():
    fired, trainer, _ = _run("adwin", "reset")
    assert fired and trainer.n_reactions == len(fired)
    assert trainer.scorer.n_learned < 2 * FLIP  # the fresh model has learned only since the last reset
