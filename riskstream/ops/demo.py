"""`riskstream demo`: the whole pipeline on an embedded broker, with progress and a summary; stops what it starts."""

from __future__ import annotations

import collections
import socket
import sys
import tempfile
import time
from pathlib import Path

import orjson

from riskstream.ops.orchestrate import Cluster, Proc, decode_values, read_topic, scrape


def _port(preferred: int) -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_demo(args) -> int:
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="riskstream-demo-"))
    t_start = time.monotonic()
    summary: dict = {}
    with Cluster(work, kind=args.kind, progress=lambda m: say(f"[demo] {m}")) as cluster:
        try:
            say(f"[demo] work dir {work}")
            report = cluster.apply_topology()
            say(f"[demo] topology: {str(report).splitlines()[0]}")
            worker_ports = [_port(args.metrics_port + i) for i in range(args.workers)]
            act_port = _port(args.metrics_port + 50)
            workers = [cluster.start("worker", metrics_port=p, name=f"worker-{i}")
                       for i, p in enumerate(worker_ports)]
            actuator = cluster.start("actuator", metrics_port=act_port, name="actuator")
            for w in workers:
                say(f"[demo] {w.name} ready in {w.wait_ready():.1f}s, metrics on "
                    f"http://127.0.0.1:{worker_ports[workers.index(w)]}/metrics")
            say(f"[demo] actuator ready in {actuator.wait_ready():.1f}s, metrics on http://127.0.0.1:{act_port}/metrics")
            sim = Proc("simulator", ["simulate", "--bootstrap", cluster.bootstrap, "--events", str(args.events),
                                     "--rate", str(args.rate), "--accounts", str(args.accounts),
                                     "--malformed", str(args.malformed), "--step-ms", str(args.step_ms),
                                     "--quiet"], work)
            cluster.procs.append(sim)
            say(f"[demo] simulator publishing {args.events} events at {args.rate:g}/s "
                f"({args.malformed:.0%} malformed); running up to {args.duration}s")
            deadline = time.monotonic() + args.duration
            last_seen, idle_since = -1.0, None
            while time.monotonic() < deadline:
                time.sleep(2)
                w = [scrape(p) for p in worker_ports]
                a = scrape(act_port)
                consumed = sum(m.get("riskstream_events_consumed_total", 0) for m in w)
                dlq = sum(m.get("riskstream_dead_letters_total", 0) for m in w)
                decisions = sum(m.get("riskstream_decisions_total", 0) for m in w)
                commands = a.get("riskstream_commands_sent_total", 0)
                say(f"[demo] t={time.monotonic() - t_start:5.0f}s  events {consumed:8.0f}  dead-lettered {dlq:6.0f}  "
                    f"decisions {decisions:7.0f}  commands {commands:7.0f}")
                if not sim.alive():
                    progressed = consumed + decisions + commands
                    if progressed == last_seen:
                        idle_since = idle_since or time.monotonic()
                        if time.monotonic() - idle_since >= 4:
                            break
                    else:
                        idle_since = None
                    last_seen = progressed
                for p in workers + [actuator]:
                    if not p.alive():
                        raise RuntimeError(f"{p.name} died:\n{p.log_text()[-2000:]}")
            summary = collect_summary(cluster.bootstrap)
            summary["portfolio"] = str(write_portfolio(cluster.bootstrap, work / "portfolio.jsonl"))
        except KeyboardInterrupt:
            say("[demo] interrupted: stopping everything")
            return 130
        finally:
            say("[demo] stopping processes and broker")
    print_summary(summary, time.monotonic() - t_start)
    return 0 if summary.get("commands", 0) > 0 else 1


def collect_summary(bootstrap: str) -> dict:
    from riskstream.core import names

    decisions = decode_values(read_topic(bootstrap, names.DECISIONS))
    commands = decode_values(read_topic(bootstrap, names.COMMANDS))
    dead = decode_values(read_topic(bootstrap, names.DEAD))
    events = sum(len(read_topic(bootstrap, t)) for t in names.UPSTREAM)
    by_policy: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    cures = 0
    for d in decisions:
        if d.get("kind") == "cure":
            cures += 1  # cure notices share the topic so they stay ordered with the account's decisions
            continue
        by_policy[f"{d.get('policy_name')} ({d.get('mode', 'live')})"][d["action"]] += 1
    return {
        "events": events,
        "decisions": len(decisions) - cures,
        "cure_notices": cures,
        "decisions_by_policy": {k: dict(v) for k, v in by_policy.items()},
        "commands": len(commands),
        "distinct_command_ids": len({c["command_id"] for c in commands}),
        "commands_by_action": dict(collections.Counter(c["action"] for c in commands)),
        "dead_letters": len(dead),
        "dead_letters_by_reason": dict(collections.Counter(d["reason"] for d in dead)),
    }


def write_portfolio(bootstrap: str, path: Path, topic_prefix: str = "") -> Path:
    """A portfolio snapshot for `riskstream scenario`: every account's latest state from the table's changelog,
    its features (market as of its own event time) and exposure. Account ids are pseudonymised."""
    from riskstream.core.contracts import Rejected, parse_event
    from riskstream.core.account.features import compute_features
    from riskstream.core.market import apply_market, new_history
    from riskstream.core.account.record import AccountRecord
    from riskstream.core.privacy import Pseudonymizer
    from riskstream.core.account.codec import decode_state

    ps = Pseudonymizer.from_env()
    market = new_history()
    from riskstream.core.names import ACCOUNTS_CHANGELOG, MARKET

    for r in read_topic(bootstrap, topic_prefix + MARKET):
        ev = parse_event(r.value or b"", now_ms=r.timestamp, pseudonymizer=ps, family="market")
        if not isinstance(ev, Rejected):
            market = apply_market(market, ev)
    latest: dict[bytes, bytes] = {}
    for r in read_topic(bootstrap, topic_prefix + ACCOUNTS_CHANGELOG):
        if r.value is not None:
            latest[r.key] = r.value
    with open(path, "wb") as f:
        for key, record in sorted(latest.items()):
            if key.startswith(b"\x00"):  # per-partition records (portfolio count, versions), not accounts
                continue
            state = decode_state(AccountRecord.decode(record).state)
            features = compute_features(state, as_of=state.watermark, market=market)
            exposure = max(state.balance_amount, 0.0) or state.limit
            f.write(orjson.dumps({"entity_pseudonym": ps.pseudonym(key.decode()), "product": state.product,
                                  "segment": state.segment, "exposure": exposure, "features": features}) + b"\n")
    return path


def print_summary(s: dict, elapsed: float) -> None:
    print("\n==== riskstream demo summary ====")
    print(f"elapsed            {elapsed:.0f}s")
    print(f"events in          {s.get('events', 0)}")
    print(f"dead-lettered      {s.get('dead_letters', 0)}  {s.get('dead_letters_by_reason', {})}")
    print(f"decisions          {s.get('decisions', 0)}")
    pol = s.get("decisions_by_policy", {})
    if pol:
        actions = sorted({a for v in pol.values() for a in v})
        names = list(pol)
        print("  action         " + "".join(f"{n[:28]:>30}" for n in names))
        for a in actions:
            print(f"  {a:<15}" + "".join(f"{pol[n].get(a, 0):>30}" for n in names))
    print(f"commands           {s.get('commands', 0)} ({s.get('distinct_command_ids', 0)} distinct ids)  "
          f"{s.get('commands_by_action', {})}")
    if s.get("portfolio"):
        print(f"portfolio snapshot {s['portfolio']}  (stress it: riskstream scenario --portfolio FILE "
              f"--shock rate_bp=200 --shock sector_index_pct=-30 --out DIR)")


def register(sub) -> None:
    d = sub.add_parser("demo", help="run the whole pipeline on an embedded broker and print a summary",
                       description="Start a broker, apply the topology, start worker(s) and the actuator, publish "
                                   "simulated events, show progress, print a summary, and stop everything it "
                                   "started (also on Ctrl-C).")
    d.add_argument("--duration", type=float, default=90, help="stop after this many seconds at most (default 90)")
    d.add_argument("--events", type=int, default=12_000, help="simulated events to publish (default 12000)")
    d.add_argument("--rate", type=float, default=400, help="events per second (default 400)")
    d.add_argument("--accounts", type=int, default=500, help="simulated accounts (default 500)")
    d.add_argument("--malformed", type=float, default=0.02, help="share of malformed events (default 0.02)")
    d.add_argument("--step-ms", type=int, default=500,
                   help="mean event-time gap between simulated events (default 500 ms: 12k events span ~1.7 h)")
    d.add_argument("--workers", type=int, default=1, help="worker processes in the consumer group (default 1)")
    d.add_argument("--kind", choices=["auto", "kafka", "tansu"], default="auto", help="broker kind (default auto)")
    d.add_argument("--metrics-port", type=int, default=9100, help="first worker's /metrics port (default 9100; "
                                                                  "the actuator uses this + 50)")
    d.add_argument("--work-dir", help="logs and broker data (default: a new temp dir)")
    d.set_defaults(func=run_demo)
