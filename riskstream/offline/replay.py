"""`riskstream replay FILE`: the offline driver's command line, and `replay()`, the same for tests and benchmarks.

FILE holds JSON lines, one upstream record per line in publication order (docs/files.md):
``{"topic": "<upstream topic>", "event": {...the event exactly as published...}}``. Ingest judges future and
stale events against the event's ``producer_time`` (else its ``event_time``), as live it uses the broker time.
The decisions and commands go to ``--out`` as JSON lines, and a summary is printed. At the end of FILE one quiet
window of event time passes, so the CLOSE still waiting in the mass-close breaker leave, as they would live
once time moved on (`commands_after_the_last_event` in the summary); `replay()` does so with `flush=True`.

>>> from riskstream.ops.simulator import Simulator, SimConfig
>>> sim = Simulator(SimConfig(accounts=5, facilities=0, seed=3))
>>> result = replay(list(sim.wire(200)), now_ms=sim.t)
>>> from riskstream.core.contracts import read_dead_letter
>>> upstream_dead = [d for d in result.dead if read_dead_letter(d.value)["source_topic"] != "riskstream.events.valid"]
>>> result.consumed == len(result.valid) + len(result.market) + len(upstream_dead)
True
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Iterable

import orjson

from riskstream.core.names import COMMANDS, DEAD, DECISIONS, FAMILY_OF_TOPIC, MARKET, VALID
from riskstream.core.steps import Context, Out, PipelineConfig
from riskstream.offline.driver import OfflineDriver


@dataclasses.dataclass
class ReplayResult:
    consumed: int = 0
    valid: list[Out] = dataclasses.field(default_factory=list)
    market: list[Out] = dataclasses.field(default_factory=list)
    dead: list[Out] = dataclasses.field(default_factory=list)
    decisions: list[Out] = dataclasses.field(default_factory=list)
    commands: list[Out] = dataclasses.field(default_factory=list)
    other: list[Out] = dataclasses.field(default_factory=list)
    accounts: dict[bytes, bytes] = dataclasses.field(default_factory=dict)
    lines: dict[bytes, bytes] = dataclasses.field(default_factory=dict)
    audit: list[dict] = dataclasses.field(default_factory=list)
    model_versions: list[int] = dataclasses.field(default_factory=list)

    def sort(self, out: Out) -> None:
        {VALID: self.valid, MARKET: self.market, DEAD: self.dead, DECISIONS: self.decisions,
         COMMANDS: self.commands}.get(out.topic, self.other).append(out)


def replay(records: Iterable[tuple[str, bytes, bytes]], *, now_ms: int, config: PipelineConfig | None = None,
           pipeline: Context | None = None, learn: bool = False, flush: bool = False) -> ReplayResult:
    """Run the steps over `records` ((topic, key, value) in upstream order); `now_ms` is the broker time ingest
    judges against. The model stays fixed unless `learn` (tests compare with live runs that may not learn).
    `flush`: one quiet window passes at the end (`OfflineDriver.flush`), as `riskstream replay` and the backtest do;
    a live run that saw the same records has not sent those yet."""
    res = ReplayResult()
    driver = OfflineDriver(pipeline, config=config, learn=learn, on_output=res.sort)
    for topic, _key, value in records:
        driver.feed(topic, value, timestamp_ms=now_ms)
    if flush:
        driver.flush()
    res.consumed = driver.counts["consumed"]
    res.accounts, res.lines, res.audit = driver.accounts, driver.lines, driver.audit
    res.model_versions = driver.published_versions
    return res


def read_events(path: Path):
    """Yield (topic, raw bytes, timestamp) from a replay file (docs/files.md); a bad line stops with its number."""
    from riskstream.offline.files import FileFormatError, iter_events

    with path.open("rb") as fh:
        try:
            for topic, event in iter_events(fh, str(path)):
                if topic not in FAMILY_OF_TOPIC:
                    raise FileFormatError(f"{path}: topic {topic!r} is not an upstream topic (use one of "
                                          + ", ".join(FAMILY_OF_TOPIC) + ")")
                ts = event.get("producer_time") or event.get("event_time") or 0
                yield topic, orjson.dumps(event), int(ts) if isinstance(ts, int) else 0
        except FileFormatError as exc:
            raise SystemExit(f"riskstream replay: {exc}") from None


def _run(args: argparse.Namespace) -> int:
    from riskstream.core.policy import PolicyError

    path = Path(args.file)
    if not path.is_file():
        print(f"riskstream replay: {path}: file not found. Fix: pass a JSON-lines replay file", file=sys.stderr)
        return 2
    try:
        cfg = PipelineConfig(**({"policy_path": Path(args.policy)} if args.policy else {}))
        ctx = Context(cfg)
    except (PolicyError, OSError) as exc:
        print(f"riskstream replay: {exc}", file=sys.stderr)
        return 2
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {"decisions": 0, "commands": 0, "dead": 0}
    actions: dict[str, int] = {}
    with (out_dir / "decisions.jsonl").open("wb") as dec, (out_dir / "commands.jsonl").open("wb") as com:
        def keep(o: Out) -> None:
            if o.topic == DECISIONS:
                dec.write(o.value + b"\n")
                counts["decisions"] += 1
            elif o.topic == COMMANDS:
                com.write(o.value + b"\n")
                counts["commands"] += 1
                actions[o.label] = actions.get(o.label, 0) + 1
            elif o.topic == DEAD:
                counts["dead"] += 1

        driver = OfflineDriver(ctx, learn=not args.no_learn, on_output=keep)
        started, last = time.monotonic(), 0.0
        for topic, raw, ts in read_events(path):
            driver.feed(topic, raw, timestamp_ms=ts)
            if sys.stderr.isatty() and time.monotonic() - last > 0.5:
                last = time.monotonic()
                print(f"\rreplay: {driver.counts['consumed']:,} events", end="", file=sys.stderr)
        # the end of the file is not the end of time: the CLOSE still waiting in a breaker leave
        released_at_end = driver.flush()
    elapsed = max(time.monotonic() - started, 1e-9)
    summary = {"events": driver.counts["consumed"], "valid": driver.counts["valid"],
               "dead_letters": counts["dead"], "decisions": counts["decisions"], "commands": counts["commands"],
               "commands_by_action": dict(sorted(actions.items())), "commands_after_the_last_event": released_at_end,
               "accounts": sum(
                   1 for k in driver.accounts if not k.startswith(b"\x00")),
               "model_versions_published": driver.published_versions, "model_version_final": ctx.model_version,
               "events_per_s": round(driver.counts["consumed"] / elapsed), "out": str(out_dir)}
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print(f"replayed {summary['events']:,} events in {elapsed:.1f} s ({summary['events_per_s']:,} ev/s): "
          f"{summary['decisions']:,} decisions, {summary['commands']:,} commands, {summary['dead_letters']:,} "
          f"dead letters; model versions published: {driver.published_versions or 'none'}")
    print(orjson.dumps(summary).decode())
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("replay", help="run the live pipeline's steps offline over a file of upstream events",
                              description="Feed a JSON-lines file of upstream records (docs/files.md) through the "
                                          "same steps the worker and the actuator run, learning from the delayed "
                                          "labels as the live trainer does. Writes decisions.jsonl and "
                                          "commands.jsonl to --out and prints a summary (last line: JSON).")
    p.add_argument("file", metavar="FILE", help="JSON lines: {\"topic\": ..., \"event\": {...}} in publication order")
    p.add_argument("--out", default="replay-out", metavar="DIR", help="where decisions/commands go (default %(default)s)")
    p.add_argument("--policy", metavar="FILE", help="champion policy file (default: the bundled one)")
    p.add_argument("--no-learn", action="store_true", help="keep the starting model (do not run the train step)")
    p.set_defaults(func=_run)
    return p
