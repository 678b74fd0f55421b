"""The layering contract (import-linter, [tool.importlinter] in pyproject.toml) holds, and fails on a violation."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT), "--no-cache"], cwd=cwd, capture_output=True, text=True,
                          env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"})


def test_the_tree_keeps_its_layers():
    res = _lint(ROOT)
    assert res.returncode == 0, res.stdout[-2000:]


def test_a_core_module_that_imports_the_shell_breaks_the_contract(tmp_path):
    shutil.copytree(ROOT / "riskstream", tmp_path / "riskstream", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    bad = tmp_path / "riskstream" / "core" / "market.py"
    bad.write_text(bad.read_text() + "\nfrom riskstream.stream import metrics  # deliberate violation\n")
    res = _lint(tmp_path)
    assert res.returncode != 0
    assert "riskstream.core.market -> riskstream.stream" in res.stdout
