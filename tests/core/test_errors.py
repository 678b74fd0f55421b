"""One operator-error type and format: every loader refuses typical mistakes as ``FILE: FIELD: problem. Fix: ...``."""

from __future__ import annotations

import copy

import pytest
import yaml

from riskstream.core.durations import parse_duration
from riskstream.core.errors import FILE, FORMAT, TOP, OperatorError
from riskstream.core.models.config import ModelConfigError, load_config as load_models
from riskstream.core.policy import PolicyError, load_policy
from riskstream.core.topology import DEFAULT_PATH as TOPOLOGY_PATH, TopologyError, load_topology, parse_topology
from riskstream.core.windows import FeaturesError, load_config as load_features, load_config_text
from riskstream.data import DEFAULT_POLICY, FEATURES

TOPOLOGY = yaml.safe_load(TOPOLOGY_PATH.read_text())
POLICY = DEFAULT_POLICY.read_text()
WINDOWS = FEATURES.read_text()


def _topology(mutate):
    doc = copy.deepcopy(TOPOLOGY)
    mutate(doc)
    return lambda tmp: parse_topology(doc, "topology.yaml")


def _write(name: str, text: str):
    def run(tmp):
        path = tmp / name
        path.write_text(text)
        return path
    return run


CASES = [
    # (error class, call(tmp_path) that must raise, expected FIELD)
    (TopologyError, _topology(lambda d: d["topics"]["riskstream.labels"].update(partitions=0)),
     "topics.riskstream.labels.partitions"),
    (TopologyError, _topology(lambda d: d["topics"]["riskstream.decisions"]["configs"].update({"retention.mss": 1})),
     "topics.riskstream.decisions.configs.retention.mss"),
    (TopologyError, _topology(lambda d: d["agents"]["score"].update(reads=["riskstream.events.vlaid"])),
     "agents.score.reads"),
    (TopologyError, _topology(lambda d: d.update(extra=1)), "extra"),
    (TopologyError, lambda tmp: parse_topology([1, 2], "topology.yaml"), TOP),
    (TopologyError, lambda tmp: load_topology(tmp / "missing.yaml"), FILE),
    (TopologyError, lambda tmp: load_topology(_write("t.yaml", "topics: [1")(tmp)), FILE),
    (PolicyError, lambda tmp: load_policy(POLICY.replace("fact: pd,", "fact: pdd,", 1), source="p.yaml"),
     "rules[pd-close].when.all[0].fact"),
    (PolicyError, lambda tmp: load_policy(POLICY.replace("cooldown: 24h", "cooldown: 24 hours", 1), source="p.yaml"),
     "actions.FREEZE.cooldown"),
    (PolicyError, lambda tmp: load_policy("name: x\nversion: 1\n", source="p.yaml"), "segments"),
    (PolicyError, lambda tmp: load_policy("[1, 2", source="p.yaml"), FILE),
    (PolicyError, lambda tmp: load_policy("- a list", source="p.yaml"), TOP),
    (PolicyError, lambda tmp: load_policy(str(tmp / "missing.yaml")), FILE),
    (FeaturesError, lambda tmp: load_config_text(WINDOWS.replace("granularity: 5m", "granularity: 5 minutes"),
                                                 source="f.yaml"), "windows[drawdown_short].granularity"),
    (FeaturesError, lambda tmp: load_config_text(WINDOWS.replace("horizons: [1h, 24h]", "horizons: [1h, 7m]", 1),
                                                 source="f.yaml"), "windows[drawdown_short].horizons"),
    (FeaturesError, lambda tmp: load_config_text(WINDOWS.replace("allowed_lateness: 1h", "allowed_lateness: 0"),
                                                 source="f.yaml"), "allowed_lateness"),
    (FeaturesError, lambda tmp: load_config_text(WINDOWS + "colour: red\n", source="f.yaml"), "colour"),
    (FeaturesError, lambda tmp: load_config_text("windows: [", source="f.yaml"), FILE),
    (FeaturesError, lambda tmp: load_features(_write("f.yaml", WINDOWS.replace("name: new_debt", "name: debt"))(tmp)),
     "windows"),
    (FeaturesError, lambda tmp: load_features(tmp / "missing.yaml"), FILE),
    (ModelConfigError, lambda tmp: load_models(_write("m.yaml", "scorer: {kind: forest}")(tmp)), "scorer.kind"),
    (ModelConfigError, lambda tmp: load_models(_write("m.yaml", "labels: {bad_dpd: -1}")(tmp)), "labels.bad_dpd"),
    (ModelConfigError, lambda tmp: load_models(_write("m.yaml", "anomaly: {limits: {dscr: [0, 1]}}")(tmp)),
     "anomaly.limits.dscr"),
    (ModelConfigError, lambda tmp: load_models(_write("m.yaml", "- a list")(tmp)), TOP),
    (ModelConfigError, lambda tmp: load_models(_write("m.yaml", "scorer: [1")(tmp)), FILE),
    (ModelConfigError, lambda tmp: load_models(tmp / "missing.yaml"), FILE),
    (OperatorError, lambda tmp: parse_duration("soon", file="any.yaml", field="x.grace"), "x.grace"),
]


@pytest.mark.parametrize("cls, call, field", CASES, ids=[f"{c[0].__name__}-{c[2]}-{i}" for i, c in enumerate(CASES)])
def test_loader_errors_follow_the_one_format(tmp_path, cls, call, field):
    with pytest.raises(cls) as err:
        call(tmp_path)
    exc = err.value
    assert isinstance(exc, OperatorError) and isinstance(exc, ValueError)
    msg = str(exc)
    match = FORMAT.fullmatch(msg)
    assert match, msg
    assert (match["file"], match["field"]) == (exc.file, exc.field) and exc.field == field, msg
    assert msg == f"{exc.file}: {exc.field}: {exc.problem}. Fix: {exc.fix}"
    assert exc.problem and exc.fix


def test_every_loader_error_is_an_operator_error():
    for cls in (TopologyError, PolicyError, FeaturesError, ModelConfigError):
        assert issubclass(cls, OperatorError)


def test_errors_survive_pickling():
    import pickle

    exc = PolicyError("p.yaml", "mode", "unknown mode 'x'", "use 'live' or 'shadow'")
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is PolicyError and str(back) == str(exc)
