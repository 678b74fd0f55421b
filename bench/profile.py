"""Where a live process spends its CPU: py-spy samples it from outside, this module sums the stacks.

py-spy reads the target's memory without stopping it (``--nonblocking``) and keeps only samples of running
threads (no ``--idle``), so the shares are shares of busy CPU. Each frame is put in a layer by its file:
riskstream's pure core, its stream shell, Faust (+ mode), the Kafka client, asyncio, River, or other.

>>> stacks = ["main (a/riskstream/stream/worker.py:1);decide (a/riskstream/core/policy/engine.py:9) 3",
...           "main (a/riskstream/stream/worker.py:1);poll (x/aiokafka/consumer.py:5) 1"]
>>> s = summarize(stacks)
>>> s["samples"], s["own_by_layer"]["riskstream.core"], s["inclusive_by_layer"]["riskstream.stream"]
(4, 0.75, 1.0)
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterable

LAYERS = (  # first match wins, so the more specific paths come first
    ("riskstream.core", "/riskstream/core/"),
    ("riskstream.stream", "/riskstream/stream/"),
    ("riskstream.other", "/riskstream/"),
    ("faust+mode", "/faust/"),
    ("faust+mode", "/mode/"),
    ("kafka client", "/aiokafka/"),
    ("kafka client", "/kafka/"),
    ("river", "/river/"),
    ("asyncio", "/asyncio/"),
)
OWN_CODE = ("riskstream.core", "riskstream.stream")
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*):(?P<line>\d+)\)$")


def layer(path: str) -> str:
    for name, needle in LAYERS:
        if needle in path:
            return name
    return "other"


def summarize(lines: Iterable[str], top: int = 15) -> dict:
    """Shares of samples by layer (own = the innermost frame, inclusive = anywhere on the stack) and the top
    functions by own share and riskstream's own functions by inclusive share, from py-spy's ``--format raw`` (collapsed stacks) lines."""
    total = 0
    own_layer: dict[str, int] = {}
    incl_layer: dict[str, int] = {}
    own_fn: dict[str, int] = {}
    incl_fn: dict[str, int] = {}
    for raw in lines:
        raw = raw.rstrip("\n")
        stack, _, count = raw.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = []
        for f in stack.split(";"):
            m = FRAME.match(f)
            frames.append((m["func"], m["file"]) if m else (f, ""))
        total += n
        func, path = frames[-1]
        own_layer[layer(path)] = own_layer.get(layer(path), 0) + n
        key = f"{func} ({short(path)})"
        own_fn[key] = own_fn.get(key, 0) + n
        for name in {layer(p) for _, p in frames}:
            incl_layer[name] = incl_layer.get(name, 0) + n
        for key in {f"{fn} ({short(p)})" for fn, p in frames if layer(p) in OWN_CODE}:
            incl_fn[key] = incl_fn.get(key, 0) + n

    def shares(d: dict, k: int | None = None) -> dict:
        items = sorted(d.items(), key=lambda kv: -kv[1])[:k]
        return {name: round(n / total, 3) for name, n in items} if total else {}

    # The process's entry frames (cli, app.run) are on nearly every stack and say nothing.
    incl_fn = {k: v for k, v in incl_fn.items() if v < 0.95 * total}
    return {"samples": total, "own_by_layer": shares(own_layer), "inclusive_by_layer": shares(incl_layer),
            "top_own": shares(own_fn, top), "top_inclusive_riskstream": shares(incl_fn, top)}


def short(path: str) -> str:
    """A frame's file without the machine's prefix: from the package directory on."""
    if "/site-packages/" in path:
        return path.split("/site-packages/", 1)[1]
    if "/riskstream/" in path:
        return "riskstream/" + path.rsplit("/riskstream/", 1)[1]
    return Path(path).name


def py_spy() -> str | None:
    """The py-spy next to this interpreter (the test extra installs it), or on PATH."""
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


class Sampler:
    """py-spy attached to `pid` for at most `seconds`; `result()` waits for it and summarizes."""

    def __init__(self, pid: int, seconds: float, out: Path, rate: int = 100):
        self.out, self.proc, self.error = out, None, None
        exe = py_spy()
        if exe is None:
            self.error = "py-spy is not installed (pip install py-spy)"
            return
        self.proc = subprocess.Popen(
            [exe, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))), "--rate", str(rate),
             "--format", "raw", "--nonblocking", "--full-filenames", "--output", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self) -> None:
        """End sampling early (py-spy writes what it has on SIGINT)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(2)

    def result(self, timeout: float = 30) -> dict:
        if self.proc is None:
            return {"skipped": self.error}
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return {"skipped": "py-spy did not finish"}
        if not self.out.exists():
            return {"skipped": f"py-spy wrote nothing: {err.decode(errors='replace')[-300:]}"}
        with self.out.open() as f:
            return {"tool": "py-spy record --nonblocking --rate 100 (busy samples only)", **summarize(f)}
