"""topology.yaml: the one source of truth for topics, their configs, and the agents that use them.

`load_topology` parses and validates the file and refuses bad data with a `TopologyError` in the one operator-error
format, ``FILE: FIELD: problem. Fix: ...``. `apply_topology` creates missing topics and reports drift of existing
ones (it never deletes or shrinks).

>>> topo = load_topology(DEFAULT_PATH)
>>> topo.topic("riskstream.decisions").partitions
4
>>> "riskstream.decisions" in topo.agents["score"].writes
True
"""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Any

from riskstream.core.errors import TOP, OperatorError, read_yaml
from riskstream.data import TOPOLOGY

DEFAULT_PATH = TOPOLOGY

# Topic-level configs we allow; a typo here would silently be ignored by nobody but us, so it is an error.
KNOWN_TOPIC_CONFIGS = {
    "cleanup.policy", "retention.ms", "retention.bytes", "segment.ms", "segment.bytes", "min.insync.replicas",
    "max.message.bytes", "min.compaction.lag.ms", "max.compaction.lag.ms", "delete.retention.ms",
    "compression.type", "message.timestamp.type", "min.cleanable.dirty.ratio", "unclean.leader.election.enable",
}
CONFIG_VALUES = {
    "cleanup.policy": {"delete", "compact", "compact,delete", "delete,compact"},
    "message.timestamp.type": {"CreateTime", "LogAppendTime"},
    "compression.type": {"uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"},
}
TOPIC_FIELDS = {"key", "partitions", "replication", "configs", "description"}
AGENT_FIELDS = {"group", "reads", "writes", "tables", "description"}


class TopologyError(OperatorError):
    """topology.yaml cannot be used: ``FILE: FIELD: problem. Fix: ...``."""


@dataclasses.dataclass(frozen=True)
class Topic:
    name: str
    key: str
    partitions: int
    replication: int
    configs: dict[str, str]
    description: str = ""


@dataclasses.dataclass(frozen=True)
class Agent:
    name: str
    group: str
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    tables: tuple[str, ...] = ()
    description: str = ""


@dataclasses.dataclass(frozen=True)
class Topology:
    path: str
    app_id: str
    topic_prefix: str
    topics: dict[str, Topic]
    agents: dict[str, Agent]

    def topic(self, name: str) -> Topic:
        return self.topics[name]

    def name(self, logical: str) -> str:
        """The physical topic name (with the configured prefix)."""
        return self.topic_prefix + logical


def _hint(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def load_topology(path: str | Path | None = None) -> Topology:
    """Load and validate a topology file; None means the one shipped in the package."""
    path = Path(path) if path is not None else DEFAULT_PATH
    doc = read_yaml(path, error=TopologyError, fix="pass --file with the path to a readable topology.yaml")
    return parse_topology(doc, str(path))


def parse_topology(doc: Any, where: str = "topology.yaml") -> Topology:
    def err(field: str, problem: str, fix: str) -> TopologyError:
        return TopologyError(where, field, problem, fix)

    if not isinstance(doc, dict):
        raise err(TOP, "the file must be a mapping", "start with 'version: 1', 'app:', 'topics:' and 'agents:'")
    for top in doc:
        if top not in {"version", "app", "defaults", "topics", "agents"}:
            raise err(top, "unknown top-level field", "remove it or use one of version, app, defaults, topics, "
                                                       "agents." + _hint(top, ["version", "app", "defaults", "topics", "agents"]))
    if doc.get("version") != 1:
        raise err("version", f"unsupported version {doc.get('version')!r}", "set 'version: 1'")
    app = doc.get("app") or {}
    app_id = app.get("id")
    if not isinstance(app_id, str) or not app_id:
        raise err("app.id", "missing or not a string", "set app.id to the Faust app id, e.g. 'riskstream'")
    prefix = app.get("topic_prefix", "") or ""
    defaults = doc.get("defaults") or {}
    d_parts = defaults.get("partitions", 4)
    d_repl = defaults.get("replication", 1)

    raw_topics = doc.get("topics")
    if not isinstance(raw_topics, dict) or not raw_topics:
        raise err("topics", "missing or empty", "declare every topic under 'topics:'")
    topics: dict[str, Topic] = {}
    for name, spec in raw_topics.items():
        f = f"topics.{name}"
        if not isinstance(spec, dict):
            raise err(f, "must be a mapping", "give key, partitions, replication and configs")
        for k in spec:
            if k not in TOPIC_FIELDS:
                raise err(f"{f}.{k}", "unknown field", f"use one of {sorted(TOPIC_FIELDS)}." + _hint(k, TOPIC_FIELDS))
        parts = spec.get("partitions", d_parts)
        repl = spec.get("replication", d_repl)
        if not isinstance(parts, int) or isinstance(parts, bool) or parts < 1:
            raise err(f"{f}.partitions", f"{parts!r} is not a positive integer", "set a whole number >= 1")
        if not isinstance(repl, int) or isinstance(repl, bool) or repl < 1:
            raise err(f"{f}.replication", f"{repl!r} is not a positive integer", "set a whole number >= 1")
        key = spec.get("key")
        if not isinstance(key, str) or not key:
            raise err(f"{f}.key", "missing", "name the message key, e.g. 'account_id'")
        configs = spec.get("configs") or {}
        if not isinstance(configs, dict):
            raise err(f"{f}.configs", "must be a mapping", "write configs as {name: value}")
        clean: dict[str, str] = {}
        for ck, cv in configs.items():
            if ck not in KNOWN_TOPIC_CONFIGS:
                raise err(f"{f}.configs.{ck}", "unknown topic config key",
                          "use a Kafka topic config name." + _hint(ck, KNOWN_TOPIC_CONFIGS))
            sv = str(cv)
            allowed = CONFIG_VALUES.get(ck)
            if allowed and sv not in allowed:
                raise err(f"{f}.configs.{ck}", f"value {sv!r} is not allowed", f"use one of {sorted(allowed)}")
            if ck.endswith((".ms", ".bytes")) and not sv.lstrip("-").isdigit():
                raise err(f"{f}.configs.{ck}", f"value {sv!r} is not an integer", "give a whole number as a string")
            clean[ck] = sv
        topics[name] = Topic(name, key, parts, repl, clean, str(spec.get("description", "")))

    raw_agents = doc.get("agents") or {}
    if not isinstance(raw_agents, dict):
        raise err("agents", "must be a mapping", "declare agents as name: {group, reads, writes}")
    agents: dict[str, Agent] = {}
    for name, spec in raw_agents.items():
        f = f"agents.{name}"
        if not isinstance(spec, dict):
            raise err(f, "must be a mapping", "give group, reads and writes")
        for k in spec:
            if k not in AGENT_FIELDS:
                raise err(f"{f}.{k}", "unknown field", f"use one of {sorted(AGENT_FIELDS)}." + _hint(k, AGENT_FIELDS))
        group = spec.get("group")
        if not isinstance(group, str) or not group:
            raise err(f"{f}.group", "missing", "name the consumer group, e.g. 'riskstream'")
        io = {}
        for field in ("reads", "writes"):
            vals = spec.get(field) or []
            if not isinstance(vals, list):
                raise err(f"{f}.{field}", "must be a list of topic names", "write [topic, ...]")
            for t in vals:
                if t not in topics:
                    raise err(f"{f}.{field}", f"topic {t!r} is not declared under topics",
                              "declare it or fix the name." + _hint(str(t), topics))
            io[field] = tuple(vals)
        reads = io["reads"]
        if len({topics[t].partitions for t in reads}) > 1:
            raise err(f"{f}.reads", "topics read by one agent have different partition counts",
                      "give them the same partitions so they are co-partitioned")
        agents[name] = Agent(name, group, reads, io["writes"], tuple(spec.get("tables") or ()),
                             str(spec.get("description", "")))
    return Topology(where, app_id, prefix, topics, agents)
