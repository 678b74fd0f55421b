"""The slowly changing context every step reads: configuration, market history, model and policies.

It holds no per-account or per-partition state: that is the steps' own, passed in and returned (`decoded` is only a
bounded memo of records this process wrote, consulted for byte-equal records: see steps.memo). The drivers swap
its parts (a new market event, model snapshot or policy version) between batches, and the account step records
on the `versions` topic from which offset each version was used, so a replay can follow the same versions.

>>> ctx = Context(PipelineConfig())
>>> ctx.model_version, ctx.policies.policy.name
('pd@0', 'retail-champion')
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

from riskstream.core.actuator import ActuatorConfig
from riskstream.core.contracts import DEFAULT_LIMITS, Limits
from riskstream.core.market import apply_market, new_history
from riskstream.core.names import TOPOLOGY, VALID
from riskstream.core.policy import Policy, PolicyHolder, load_policy
from riskstream.core.privacy import Pseudonymizer
from riskstream.core.signing import Keyring, Signer, control_keyring, control_signer
from riskstream.core.steps.memo import DecodedRecords
from riskstream.core.windows import FeatureConfig, default_config
from riskstream.data import CHALLENGER_POLICY, DEFAULT_POLICY


@dataclasses.dataclass
class PipelineConfig:
    limits: Limits = DEFAULT_LIMITS
    pseudonymizer: Pseudonymizer = dataclasses.field(default_factory=Pseudonymizer.from_env)
    features: FeatureConfig = dataclasses.field(default_factory=default_config)
    policy_path: Path = DEFAULT_POLICY
    challenger_paths: tuple[Path, ...] = (CHALLENGER_POLICY,)
    actuator: ActuatorConfig = dataclasses.field(default_factory=ActuatorConfig)
    breaker_max_share: float = 0.2     # CLOSE+FREEZE in a sliding minute, as a share of active accounts ...
    breaker_max_count: int = 200       # ... or as an absolute count: either trips the breaker
    breaker_min_count_for_share: int = 10  # the share counts only from this many commands in the window
    breaker_hold_ms: int = 60_000      # a policy's CLOSE/FREEZE waits this long in event time before it leaves
    behaviour_sample: int = 8          # 1 in N behaviour events trains the anomaly model (deterministic by id)
    partitions: int = TOPOLOGY.topic(VALID).partitions  # valid = decisions partitions: per-partition state
    model_config_path: Path | None = None  # models.yaml overlay (None: the bundled models.yaml)
    control_keys: Keyring = dataclasses.field(default_factory=control_keyring)  # verifies control messages
    control_signer: Signer = dataclasses.field(default_factory=control_signer)  # signs the breaker trips it emits
    policy_signers: int = 1            # distinct signers a policy version needs (2 = maker-checker)
    decoded_records: int = 8192        # accounts whose decoded record is kept next to its bytes (0 = none)
    # Offline only (the backtest): the account step writes records as steps.memo.DecodedRecord objects, never
    # encoded, for a driver whose table is a dict nobody reads as bytes. A shell that persists records leaves it off.
    keep_decoded: bool = False
    # Upstream source partitions ("topic/partition") the account step aligns (steps.align, docs/time.md), and how
    # many events a valid partition may hold back before the oldest go early.
    sources: tuple[str, ...] = dataclasses.field(default_factory=lambda: default_sources(TOPOLOGY))
    align_max_pending: int = 20_000


def default_sources(topology) -> tuple[str, ...]:
    """Every partition of every topic the ingest agent reads, as the alignment names them."""
    return tuple(f"{t}/{p}" for t in topology.agents["ingest"].reads for p in range(topology.topic(t).partitions))


class Context:
    """Market history, model and policies in force, plus the configuration; swapped by the drivers only."""

    def __init__(self, config: PipelineConfig | None = None, *, model=None):
        from riskstream.core.models import load_config

        self.config = config or PipelineConfig()
        self.market = new_history(config=self.config.features)
        self.model_config = load_config(self.config.model_config_path)
        self.model = model if model is not None else initial_model(self.model_config)
        self.policies = PolicyHolder(load_policy(self.config.policy_path))
        self.challengers: list[Policy] = [load_policy(p) for p in self.config.challenger_paths]
        # Versions used recently, so records re-read after a crash are decided with the versions used the first
        # time (the account step keeps, per partition, which offset used which version).
        self.known_models = {self.model_version: self.model}
        self.known_policies = {_policy_key(self.policies.policy): self.policies.policy}
        self._views: dict = {}
        # Not state: decoded objects of records this process wrote, used only for byte-equal records (steps.memo).
        self.decoded = DecodedRecords(self.config.decoded_records)

    @property
    def model_version(self) -> str:
        return f"pd@{getattr(self.model, 'version', 0)}"

    def versions(self) -> dict:
        """The versions in force, as the account step records them."""
        p = self.policies.policy
        return {"model_version": self.model_version, "policy": p.name, "policy_version": p.version,
                "policy_sha256": p.digest}

    def at_versions(self, versions: dict) -> "Context":
        """This context with the model and policy of `versions` (as `versions()` returns them), where they are
        still known; otherwise the ones in force."""
        if versions == self.versions():
            return self
        key = (versions["model_version"], versions["policy"], versions["policy_version"])
        view = self._views.get(key)
        if view is None:
            view = copy.copy(self)
            view.model = self.known_models.get(versions["model_version"], self.model)
            policy = self.known_policies.get((versions["policy"], versions["policy_version"]), self.policies.policy)
            view.policies = PolicyHolder(policy)
            self._views = {key: view}  # one view: a re-read covers a few seconds of one version switch
        view.market = self.market
        return view

    def on_market(self, event: dict) -> None:
        self.market = apply_market(self.market, event)

    def offer_policy(self, text: str, source: str) -> tuple[bool, str | None, dict | None]:
        """Hot reload: returns (accepted, error, audit payload of the change)."""
        previous = self.policies.policy
        ok, err = self.policies.offer(text, source)
        if ok:
            _remember(self.known_policies, _policy_key(self.policies.policy), self.policies.policy)
        return ok, err, (self.policies.change_record(previous) if ok else None)

    def offer_model(self, model) -> bool:
        """A newer model version replaces the running one; an older or equal one is ignored."""
        if getattr(model, "version", 0) > getattr(self.model, "version", 0):
            self.model = model
            _remember(self.known_models, self.model_version, model)
            return True
        return False


def _policy_key(policy) -> tuple:
    return policy.name, policy.version


def _remember(known: dict, key, value, keep: int = 16) -> None:
    known[key] = value
    while len(known) > keep:
        del known[next(iter(known))]


def initial_model(model_config: dict):
    """Version 0 of the PD model, identical on every worker: warmed on the documented synthetic stream."""
    from riskstream.core.models.synthetic import default_scorer

    scorer = default_scorer(n=1500, config=model_config)
    scorer.version = 0
    return scorer
