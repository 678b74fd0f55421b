"""Logical topic names, derived once from the packaged topology.yaml; every module names topics through these.

A name that is not in topology.yaml fails at import, so a renamed topic cannot silently drift from the code.

>>> VALID, FAMILY_OF_TOPIC[BEHAVIOUR]
('riskstream.events.valid', 'behaviour')
>>> sorted(set(FAMILY_OF_TOPIC.values()))
['behaviour', 'credit', 'market', 'project', 'repayment']
"""

from __future__ import annotations

from riskstream.core.errors import OperatorError
from riskstream.core.topology import load_topology

TOPOLOGY = load_topology()


class UnknownTopic(OperatorError, LookupError):
    """Code names a topic that topology.yaml does not declare."""


def _topic(name: str) -> str:
    if name not in TOPOLOGY.topics:
        raise UnknownTopic(TOPOLOGY.path, f"topics.{name}", "not declared",
                           "add it to topology.yaml or stop naming it in code")
    return name


(BEHAVIOUR, REPAYMENT, CREDIT, MARKET, PROJECT, VALID, DEAD, DECISIONS, COMMANDS, LABELS, MODELS, CONTROL, VERSIONS,
 ACCOUNTS_CHANGELOG, LINES_CHANGELOG) = map(_topic, (
    "riskstream.events.behaviour", "riskstream.events.repayment", "riskstream.events.credit",
    "riskstream.events.market", "riskstream.events.project", "riskstream.events.valid", "riskstream.deadletter",
    "riskstream.decisions", "riskstream.commands", "riskstream.labels", "riskstream.models", "riskstream.control",
    "riskstream.versions",
    "riskstream-accounts-changelog", "riskstream-actuator-lines-changelog"))  # Faust: <app id>-<table>-changelog

#: Upstream topic -> event family (the last part of its name): what the ingest step accepts from each topic.
FAMILY_OF_TOPIC = {t: t.rsplit(".", 1)[1] for t in (*TOPOLOGY.agents["ingest"].reads, MARKET)}
UPSTREAM = tuple(FAMILY_OF_TOPIC)
