"""Prints the fault suite's table of figures at the end of the session and keeps it in var/faults/table.md."""

from __future__ import annotations

from pathlib import Path


def pytest_terminal_summary(terminalreporter):
    from tests.faults.harness import ROWS, format_table

    if not ROWS:
        return
    table = format_table(ROWS)
    terminalreporter.write_sep("=", "fault suite: figures of each scenario against its clean run")
    terminalreporter.write_line(table)
    out = Path("var/faults")
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(table + "\n")
