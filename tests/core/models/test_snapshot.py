import pickle

import pytest

from riskstream.core.models.labels import LabeledExample
from riskstream.core.models.scorer import make_scorer
from riskstream.core.models.snapshot import DEV_KEY, TamperedSnapshot, Trainer, dump_snapshot, load_snapshot, model_key
from riskstream.core.models.synthetic import synthetic_stream

KEY = b"test-key"


def _trained():
    scorer = make_scorer({})
    for x, y in synthetic_stream(200, seed=1):
        scorer.learn_one(x, y)
    return scorer


def test_round_trip_keeps_version_and_predictions():
    scorer = _trained()
    version, clone = load_snapshot(dump_snapshot(scorer, version=7, key=KEY), key=KEY)
    x = next(synthetic_stream(1, seed=3))[0]
    assert version == 7 and clone.version == 7
    assert clone.predict_one(x).pd == scorer.predict_one(x).pd


@pytest.mark.parametrize("position", [5, 12, 30, 60, -1])
def test_any_flipped_byte_is_refused(position):
    blob = bytearray(dump_snapshot(_trained(), version=1, key=KEY))
    blob[position] ^= 0x01
    with pytest.raises(TamperedSnapshot):
        load_snapshot(bytes(blob), key=KEY)


def test_truncated_and_wrong_key_are_refused():
    blob = dump_snapshot(_trained(), version=1, key=KEY)
    for bad in (blob[:10], blob[:-1]):
        with pytest.raises(TamperedSnapshot):
            load_snapshot(bad, key=KEY)
    with pytest.raises(TamperedSnapshot):
        load_snapshot(blob, key=b"other")


class Boom:
    def __reduce__(self):
        return (pytest.fail, ("unpickled an unverified payload",))


def test_signature_is_checked_before_unpickling():
    good = dump_snapshot(_trained(), version=1, key=KEY)
    evil = pickle.dumps(Boom())
    header = good[: len(good) - len(pickle.dumps(_trained(), protocol=pickle.HIGHEST_PROTOCOL))]
    forged = header[:12] + len(evil).to_bytes(8, "big") + header[20:] + evil
    with pytest.raises(TamperedSnapshot):
        load_snapshot(forged, key=KEY)


def test_model_key_from_env(monkeypatch):
    monkeypatch.delenv("RISKSTREAM_MODEL_KEY", raising=False)
    assert model_key() == DEV_KEY
    monkeypatch.setenv("RISKSTREAM_MODEL_KEY", "s3cret")
    assert model_key() == b"s3cret"


def test_trainer_publishes_every_n_with_increasing_versions():
    trainer = Trainer(key=KEY)
    versions = []
    for i, (x, y) in enumerate(synthetic_stream(1000, seed=5)):
        trainer.learn(LabeledExample("e", i, x, y))
        blob = trainer.maybe_publish(every_n=250)
        if blob is not None:
            versions.append(load_snapshot(blob, key=KEY)[0])
    assert versions == [1, 2, 3, 4]
    assert trainer.n_learned == 1000


def _signed(payload: bytes, version: int = 7) -> bytes:
    """A correctly signed envelope around any payload: what a buggy trainer holding the key could publish."""
    from riskstream.core.models.snapshot import _HEADER, MAGIC, _mac

    return _HEADER.pack(MAGIC, version, len(payload), _mac(KEY, version, payload)) + payload


@pytest.mark.parametrize("payload, why", [
    (pickle.dumps({"weights": [1, 2]}), "not a Scorer"),
    (pickle.dumps(_trained(), protocol=pickle.HIGHEST_PROTOCOL)[:-40], "does not unpickle"),
    (b"not a pickle at all", "does not unpickle"),
])
def test_a_signed_snapshot_that_is_not_a_working_scorer_is_refused(payload, why):
    from riskstream.core.models.snapshot import BrokenSnapshot, RefusedSnapshot

    with pytest.raises(BrokenSnapshot, match=why) as err:
        load_snapshot(_signed(payload), key=KEY)
    assert isinstance(err.value, RefusedSnapshot) and not isinstance(err.value, TamperedSnapshot)


def test_a_signed_scorer_that_cannot_score_is_refused():
    from riskstream.core.models.snapshot import BrokenSnapshot

    broken = _trained()
    broken.__dict__.clear()      # unpickles to a Scorer with no state: scoring raises
    with pytest.raises(BrokenSnapshot, match="cannot score"):
        load_snapshot(_signed(pickle.dumps(broken)), key=KEY)
