"""`riskstream topology apply`: create the topics of a topology on a cluster and report drift (kafka-python admin)."""

from __future__ import annotations

import dataclasses

from riskstream.core.topology import Topology


@dataclasses.dataclass
class ApplyReport:
    created: list[str] = dataclasses.field(default_factory=list)
    ok: list[str] = dataclasses.field(default_factory=list)
    drift: list[str] = dataclasses.field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"created {len(self.created)}, verified {len(self.ok)}, drift {len(self.drift)}"]
        lines += [f"  created {t}" for t in self.created]
        lines += [f"  DRIFT {d}" for d in self.drift]
        return "\n".join(lines)


def _config_values(described) -> dict[str, dict[str, str]]:
    """Normalise kafka-python's describe_configs answer (a dict in 3.x, response objects in 2.x)."""
    out: dict[str, dict[str, str]] = {}
    if isinstance(described, dict):
        for name, entries in described.get("topic", {}).items():
            out[name] = {k: (v.get("value") if isinstance(v, dict) else v) for k, v in entries.items()}
        return out
    for resp in described:
        for res in resp.resources:
            out[res[3]] = {e[0]: e[1] for e in res[4]}
    return out


def apply_topology(topo: Topology, bootstrap: str, *, timeout_s: float = 30, security=None) -> ApplyReport:
    """Create missing topics; compare existing ones with the file and report drift. Idempotent. `security`:
    TLS/SASL settings (default: from the environment)."""
    from kafka import KafkaAdminClient

    from riskstream.stream.security import KafkaSecurity
    from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="riskstream-topology",
                             request_timeout_ms=int(timeout_s * 1000),
                             **(security or KafkaSecurity.from_env()).kafka_python())
    report = ApplyReport()
    try:
        existing = set(admin.list_topics())
        wanted = {topo.name(n): t for n, t in topo.topics.items()}
        missing = [NewTopic(name, t.partitions, t.replication, topic_configs=dict(t.configs))
                   for name, t in wanted.items() if name not in existing]
        if missing:
            try:
                admin.create_topics(missing, timeout_ms=int(timeout_s * 1000))
            except TopicAlreadyExistsError:
                pass  # a concurrent apply won the race
            report.created = [m.name for m in missing]
        present = [n for n in wanted if n not in report.created]
        if present:
            meta = admin.describe_topics(present)
            parts = {m.get("name", m.get("topic")): len(m["partitions"]) for m in meta}
            resources = [ConfigResource(ConfigResourceType.TOPIC, n) for n in present]
            described = admin.describe_configs(resources)
            actual_cfg = _config_values(described)
            for n in present:
                t = wanted[n]
                problems = []
                if parts.get(n) != t.partitions:
                    problems.append(f"partitions {parts.get(n)} != {t.partitions}")
                for ck, cv in t.configs.items():
                    got = actual_cfg.get(n, {}).get(ck)
                    if got is not None and got != cv:
                        problems.append(f"{ck}={got} != {cv}")
                if problems:
                    report.drift.append(f"{n}: " + "; ".join(problems))
                else:
                    report.ok.append(n)
    finally:
        admin.close()
    return report
