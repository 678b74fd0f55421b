"""One model across workers: HMAC-signed, versioned model snapshots and the Trainer that publishes them.

Envelope (big-endian struct): ``b"RSM1" | version u64 | payload length u64 | HMAC-SHA256 (32 bytes) | payload``
where ``HMAC = HMAC-SHA256(key, version u64 || payload)`` and ``payload = pickle(scorer)``. `load_snapshot`
verifies the HMAC BEFORE unpickling (pickle of untrusted bytes runs code) and raises `TamperedSnapshot` otherwise;
a signed payload that is not a working scorer raises `BrokenSnapshot`. Both are `RefusedSnapshot`: the old model stays.

The key comes from ``RISKSTREAM_MODEL_KEY`` or the file named by ``RISKSTREAM_MODEL_KEY_FILE``
(:mod:`riskstream.core.secrets`). WARNING: without either `model_key()` returns a fixed development key, which
anyone can read in this source; production mode (``RISKSTREAM_ENV=production``) refuses to start with it.

>>> from riskstream.core.models.scorer import make_scorer
>>> blob = dump_snapshot(make_scorer({}), version=3, key=b"k")
>>> version, scorer = load_snapshot(blob, key=b"k")
>>> version, scorer.kind
(3, 'logistic')
>>> load_snapshot(blob, key=b"other")
Traceback (most recent call last):
...
riskstream.core.models.snapshot.TamperedSnapshot: model snapshot signature does not match (wrong key or altered bytes)

"""

from __future__ import annotations

import collections
import hashlib
import hmac
import pickle
import struct

from riskstream.core.models.config import load_config
from riskstream.core.models.drift import DriftMonitor
from riskstream.core.models.labels import LabeledExample
from riskstream.core.models.scorer import Scorer, make_scorer
from riskstream.core.secrets import DEV_VALUES, secret_or_dev

__all__ = ["RefusedSnapshot", "TamperedSnapshot", "BrokenSnapshot", "dump_snapshot", "load_snapshot", "model_key", "Trainer", "DEV_KEY"]

MAGIC = b"RSM1"
_HEADER = struct.Struct(">4sQQ32s")
DEV_KEY = DEV_VALUES["RISKSTREAM_MODEL_KEY"][1]


class RefusedSnapshot(ValueError):
    """A snapshot the worker must not use: the running model stays."""


class TamperedSnapshot(RefusedSnapshot):
    """The snapshot is malformed or its signature does not verify; it was NOT unpickled."""


class BrokenSnapshot(RefusedSnapshot):
    """Signed, but it does not load into a working scorer (a trainer bug, not an attack)."""


def model_key() -> bytes:
    """The signing key from ``RISKSTREAM_MODEL_KEY`` (or ``_FILE``), else the development key (insecure)."""
    return secret_or_dev("RISKSTREAM_MODEL_KEY")


def _mac(key: bytes, version: int, payload: bytes) -> bytes:
    return hmac.new(key, struct.pack(">Q", version) + payload, hashlib.sha256).digest()


def dump_snapshot(scorer: Scorer, *, version: int, key: bytes) -> bytes:
    payload = pickle.dumps(scorer, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(MAGIC, version, len(payload), _mac(key, version, payload)) + payload


def load_snapshot(blob: bytes, *, key: bytes) -> tuple[int, Scorer]:
    if len(blob) < _HEADER.size:
        raise TamperedSnapshot("model snapshot is truncated")
    magic, version, length, mac = _HEADER.unpack_from(blob)
    payload = blob[_HEADER.size:]
    if magic != MAGIC or length != len(payload):
        raise TamperedSnapshot("model snapshot envelope is malformed")
    if not hmac.compare_digest(mac, _mac(key, version, payload)):
        raise TamperedSnapshot("model snapshot signature does not match (wrong key or altered bytes)")
    try:
        scorer = pickle.loads(payload)
    except Exception as exc:  # noqa: BLE001  (any unpickling failure: the payload is unusable)
        raise BrokenSnapshot(f"model snapshot v{version} does not unpickle: {type(exc).__name__}: {exc}") from None
    if not isinstance(scorer, Scorer):
        raise BrokenSnapshot(f"model snapshot v{version} holds a {type(scorer).__name__}, not a Scorer")
    try:
        pd = scorer.predict_pd({})
    except Exception as exc:  # noqa: BLE001  (a scorer that cannot score must never reach the hot path)
        raise BrokenSnapshot(f"model snapshot v{version} cannot score: {type(exc).__name__}: {exc}") from None
    if not 0.0 <= pd <= 1.0:
        raise BrokenSnapshot(f"model snapshot v{version} scores a PD of {pd!r} (outside 0..1)")
    scorer.version = version
    return version, scorer


class Trainer:
    """Learns from labelled examples (test-then-train), watches drift, and publishes signed snapshots.

    >>> from riskstream.core.models.labels import LabeledExample
    >>> tr = Trainer(load_config(), key=b"k")
    >>> for i in range(4):
    ...     _ = tr.learn(LabeledExample("a", i, {"days_past_due": float(i % 2) * 40}, i % 2 == 1))
    >>> tr.maybe_publish(every_n=3) is not None, tr.version, tr.maybe_publish(every_n=3)
    (True, 1, None)

    """

    def __init__(self, config: dict | None = None, *, key: bytes | None = None, scorer: Scorer | None = None,
                 version: int = 0):
        self.config = config or load_config()
        self.key = key if key is not None else model_key()
        self.scorer = scorer if scorer is not None else make_scorer(self.config)
        self.drift = DriftMonitor(self.config)
        self.window: collections.deque = collections.deque(maxlen=int(self.drift.config["window"]))
        self.version = version
        self.scorer.version = version
        self.since_publish = 0
        self.n_learned = 0
        self.n_reactions = 0

    def learn(self, example: LabeledExample) -> bool:
        """Score the snapshot, feed the error to drift detection, react, then learn. Returns True on drift."""
        pd = self.scorer.predict_pd(example.features) if self.scorer.n_learned else 0.5
        drifted = self.drift.update_error(abs(float(example.label) - pd))
        if drifted and self.drift.reaction != "alert_only":
            self._react()
        self.scorer.learn_one(example.features, example.label)
        self.window.append((example.features, example.label))
        self.n_learned += 1
        self.since_publish += 1
        return drifted

    def _react(self) -> None:
        self.n_reactions += 1
        fresh = make_scorer(self.config)
        fresh.version = self.version
        if self.drift.reaction == "retrain_window":
            # ADWIN has already cut its window to the recent regime; the last examples are the best proxy for it.
            recent = list(self.window)[-max(1, len(self.window) // 2):]
            for x, y in recent:
                fresh.learn_one(x, y)
        self.scorer = fresh

    def maybe_publish(self, every_n: int | None = None) -> bytes | None:
        """A new signed snapshot (version + 1) when `every_n` labels arrived since the last one, else None."""
        every_n = every_n or int(self.config["trainer"]["publish_every"])
        if self.since_publish < every_n:
            return None
        self.version += 1
        self.scorer.version = self.version
        self.since_publish = 0
        return dump_snapshot(self.scorer, version=self.version, key=self.key)
