"""Helpers shared by the end-to-end tests: read a process's /metrics, wait for a condition."""

from __future__ import annotations

import re
import time
import urllib.request

# One REVIEW per event: makes the expected decisions and commands of a test countable.
REVIEW_POLICY = """\
name: e2e-review
version: 1
mode: live
segments:
  credit_line: {thresholds: {warn_pd: 0.1, limit_pd: 0.2, close_pd: 0.4}}
actions:
  REVIEW: {cooldown: 0s, hysteresis: false, queue: e2e}
rules:
  - id: review-every-event
    product: credit_line
    when: [{fact: pd, op: ">=", value: 0}]
    action: REVIEW
    reason: every event is reviewed (end-to-end test policy)
"""


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def metric(port: int, name: str, **labels) -> float:
    """Sum of the samples of `name` at localhost:port/metrics whose labels include `labels` (0 if none)."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3).read().decode()
    except OSError:
        return 0.0
    total = 0.0
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m and m.group(1) == name:
            have = dict(_LABEL.findall(m.group(2) or ""))
            if all(have.get(k) == v for k, v in labels.items()):
                total += float(m.group(3))
    return total


def wait_for(what: str, cond, timeout: float = 120, every: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for: {what}")


def close_everyone_policy(name: str, version: int, reason: str) -> str:
    """A policy text with one rule: an immediate CLOSE of every credit line, whatever its PD (a poison policy)."""
    import yaml

    return yaml.safe_dump({
        "name": name, "version": version, "mode": "live",
        "segments": {"credit_line": {"thresholds": {"warn_pd": 0.1, "limit_pd": 0.2, "close_pd": 0.4}}},
        "actions": {"CLOSE": {"cooldown": "0s", "hysteresis": False, "grace": "72h"}},
        "rules": [{"id": "close-everyone", "product": "credit_line",
                   "when": [{"fact": "pd", "op": ">=", "value": 0}],
                   "action": "CLOSE", "immediate": True, "reason": reason}]},
        sort_keys=False)
