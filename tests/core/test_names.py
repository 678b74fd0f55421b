"""One source for every name: topics come from topology.yaml, and the shell stays thin."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from riskstream.core import names
from riskstream.core.topology import load_topology

PKG = Path(__file__).resolve().parents[2] / "riskstream"
# A string that names a topic: riskstream.<word>[.<word>] or a changelog; module paths are told apart below.
TOPICISH = re.compile(r"^riskstream[.-][a-z_]+(?:[.-][a-z_]+)*$")


def _string_constants(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value


def _is_module(name: str) -> bool:
    parts = name.split(".")
    return (PKG.parent.joinpath(*parts).with_suffix(".py").exists() or PKG.parent.joinpath(*parts).is_dir())


def test_every_topic_a_module_names_is_in_topology_yaml():
    topics = set(load_topology().topics)
    unknown = {}
    for path in PKG.rglob("*.py"):
        for s in _string_constants(path):
            if TOPICISH.match(s) and not _is_module(s) and s not in topics and not s.startswith("riskstream-"):
                unknown.setdefault(s, str(path.relative_to(PKG.parent)))
            if s.endswith("-changelog") and s.startswith("riskstream-") and s not in topics:
                unknown.setdefault(s, str(path.relative_to(PKG.parent)))
    assert not unknown, f"topic names absent from topology.yaml: {unknown}"


def test_names_refuses_a_topic_that_topology_lacks():
    with pytest.raises(LookupError, match="topics.riskstream.nope: not declared. Fix:"):
        names._topic("riskstream.nope")


def test_families_cover_every_upstream_topic_the_ingest_agent_reads():
    topo = load_topology()
    assert set(names.FAMILY_OF_TOPIC) == set(topo.agents["ingest"].reads) | {names.MARKET}


def test_no_function_in_the_shell_is_over_60_lines():
    long = []
    for path in (PKG / "stream").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > 60:
                    long.append(f"{path.name}:{node.name} ({n} lines)")
    assert not long, long
