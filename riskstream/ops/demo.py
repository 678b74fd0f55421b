"""`riskstream demo`: the whole pipeline on an embedded broker, with progress and a summary; stops what it starts.

It streams a small synthetic population with ground truth (`riskstream simulate --population`: 180 days of event
time, the shortest history in which a defaulter reaches 90 days past due, so warnings turn into closes), shows the CLOSE commands with the warn-then-close path of one pseudonymous
account and the closes still pending in their grace, then backtests the events it published against their truth.
"""

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
    work.mkdir(parents=True, exist_ok=True)
    events_file, truth_file = work / "events.jsonl", work / "truth.jsonl"
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
            if args.console:
                start_console(cluster, _port(args.console_port), work / "audit" / "actuator.jsonl")
            sim = Proc("simulator", ["simulate", "--population", "--kafka", "--bootstrap", cluster.bootstrap,
                                     "--out-events", str(events_file), "--out-truth", str(truth_file),
                                     "--accounts", str(args.accounts), "--facilities", str(args.facilities),
                                     "--days", str(args.days), "--seed", str(args.seed), "--rate", str(args.rate),
                                     "--quiet"], work)
            cluster.procs.append(sim)
            say(f"[demo] simulator publishing a SYNTHETIC population ({args.accounts} credit lines, "
                f"{args.facilities} facilities, {args.days} days of event time) at {args.rate:g} events/s; "
                f"running up to {args.duration:g}s")
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
            t_read = time.monotonic()
            say("[demo] reading the decisions, commands and dead letters back from the broker")
            summary = collect_summary(cluster.bootstrap)
            summary["portfolio"] = str(write_portfolio(cluster.bootstrap, work / "portfolio.jsonl"))
            say(f"[demo] summary read in {time.monotonic() - t_read:.0f}s")
        except KeyboardInterrupt:
            say("[demo] interrupted: stopping everything")
            return 130
        finally:
            say("[demo] stopping processes and broker")
    if args.backtest and events_file.exists() and truth_file.exists():
        try:
            summary["backtest"] = backtest(events_file, truth_file, work / "backtest")
        except KeyboardInterrupt:
            say("[demo] interrupted during the backtest")
            return 130
    print_summary(summary, time.monotonic() - t_start)
    return 0 if summary.get("commands", 0) > 0 else 1


def start_console(cluster: Cluster, port: int, audit: Path) -> Proc | None:
    """`riskstream console` on the demo's broker, up until the demo stops; prints its address and the development
    sign-in (made-up users with fresh passwords: the demo runs in development mode)."""
    console = Proc("console", ["console", "--bootstrap", cluster.bootstrap, "--port", str(port), "--audit", str(audit),
                               "--env", "development"], cluster.work_dir)
    cluster.procs.append(console)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and console.alive() and "riskstream console: serving" not in console.log_text():
        time.sleep(0.2)
    log = console.log_text()
    if "riskstream console: serving" not in log:
        say(f"[demo] the console did not start (see {console.log_path}); the demo goes on without it")
        return None
    say(f"[demo] console at http://127.0.0.1:{port}/ (up while the demo runs)")
    for line in log.splitlines():
        if "development sign-in" in line:
            say("[demo]   " + line.split("riskstream console: ", 1)[1])
    return console


def backtest(events: Path, truth: Path, out: Path) -> dict:
    """The backtest of the population the demo just streamed: the same events, their truth, both bundled
    policies (no PD sweep, to keep the demo short; `riskstream backtest` draws it)."""
    from riskstream.data import CHALLENGER_POLICY, DEFAULT_POLICY
    from riskstream.offline.backtest import run_backtest

    say(f"[demo] backtest of the streamed population ({events.name} + {truth.name}), champion and challenger")
    report = run_backtest(events, truth, [DEFAULT_POLICY, CHALLENGER_POLICY], out=out, sweep=(),
                          show_progress=True)
    report["out"] = str(out)
    return report


def collect_summary(bootstrap: str) -> dict:
    from riskstream.core import names

    decisions = decode_values(read_topic(bootstrap, names.DECISIONS))
    commands = decode_values(read_topic(bootstrap, names.COMMANDS))
    dead = decode_values(read_topic(bootstrap, names.DEAD))
    events = sum(topic_size(bootstrap, t) for t in names.UPSTREAM)
    by_policy: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    cures = 0
    for d in decisions:
        if d.get("kind") == "cure":
            cures += 1  # cure notices share the topic so they stay ordered with the account's decisions
            continue
        by_policy[f"{d.get('policy_name')} ({d.get('mode', 'live')})"][d["action"]] += 1
    return {
        "events": events,
        "close_mechanism": close_mechanism(decisions, commands),
        "decisions": len(decisions) - cures,
        "cure_notices": cures,
        "decisions_by_policy": {k: dict(v) for k, v in by_policy.items()},
        "commands": len(commands),
        "distinct_command_ids": len({c["command_id"] for c in commands}),
        "commands_by_action": dict(collections.Counter(c["action"] for c in commands)),
        "dead_letters": len(dead),
        "dead_letters_by_reason": dict(collections.Counter(d["reason"] for d in dead)),
    }


def topic_size(bootstrap: str, topic: str, *, security=None) -> int:
    """Records in `topic` (end minus beginning offsets), without reading them."""
    from kafka import KafkaConsumer, TopicPartition

    from riskstream.stream.security import KafkaSecurity

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                             **(security or KafkaSecurity.from_env()).kafka_python())
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not tps:
            return 0
        end, begin = consumer.end_offsets(tps), consumer.beginning_offsets(tps)
        return sum(end[tp] - begin[tp] for tp in tps)
    finally:
        consumer.close()


def close_mechanism(decisions: list[dict], commands: list[dict]) -> dict:
    """What the actuator did with the champion's closes, and the warn-then-close path of one example account.

    A non-immediate close is sent only after a WARN whose grace has run out (the CLOSE decision itself sends that
    WARN, `close_pending`, when the line had none). `pending_in_grace`: lines with a live CLOSE decision and no
    CLOSE command whose last warning's grace runs past the end of the stream (the latest decision's event time);
    `grace_over`: the grace is over but no CLOSE came (the line got no later CLOSE decision: no longer bad enough,
    or no event since). Account ids are shown as pseudonyms only.

    >>> dec = [{"decision_id": "d1", "account_id": "A1", "event_time": 0, "action": "CLOSE", "rule_id": "pd-close",
    ...         "reasons": ["r"]},
    ...        {"decision_id": "d2", "account_id": "A1", "event_time": 80, "action": "CLOSE", "rule_id": "pd-close",
    ...         "reasons": ["r"]},
    ...        {"decision_id": "d3", "account_id": "A2", "event_time": 90, "action": "CLOSE", "rule_id": "pd-close",
    ...         "reasons": ["r"]}]
    >>> cmd = [{"decision_id": "d1", "account_id": "A1", "action": "WARN", "issued_at": 0,
    ...         "params": {"close_pending": True, "grace_until": 72}},
    ...        {"decision_id": "d2", "account_id": "A1", "action": "CLOSE", "issued_at": 80, "params": {}},
    ...        {"decision_id": "d3", "account_id": "A2", "action": "WARN", "issued_at": 90,
    ...         "params": {"close_pending": True, "grace_until": 162}}]
    >>> m = close_mechanism(dec, cmd)
    >>> m["closed"], m["closed_after_warning"], m["close_warnings"], m["pending_in_grace"], m["grace_over"]
    (1, 1, 2, 1, 0)
    >>> [step["action"] for step in m["example"]["path"]]
    ['WARN', 'CLOSE']
    """
    from riskstream.core.privacy import Pseudonymizer
    from riskstream.offline.backtest import reason_code

    live = [d for d in decisions if d.get("kind") != "cure" and d.get("mode", "live") == "live"]
    by_id = {d["decision_id"]: d for d in live if "decision_id" in d}
    end = max((d.get("event_time") or 0 for d in live), default=0)
    close_decided = {d["account_id"] for d in live if d.get("action") == "CLOSE" and not d.get("immediate")}
    per_account: dict[str, list[dict]] = collections.defaultdict(list)
    for c in commands:
        per_account[c["account_id"]].append(c)
    close_warnings = closed = after_warning = pending = grace_over = 0
    example = None
    for account, cmds in per_account.items():
        cmds.sort(key=lambda c: c["issued_at"])
        last_warn, was_closed = None, False
        for c in cmds:
            if c["action"] == "WARN":
                close_warnings += bool(c.get("params", {}).get("close_pending"))
                last_warn = c
            elif c["action"] == "CLOSE":
                closed += 1
                was_closed = True
                if last_warn is not None:
                    after_warning += 1
                    if example is None or (c["issued_at"], account) < (example[0], example[1]):
                        example = (c["issued_at"], account, cmds)
        if account in close_decided and not was_closed and last_warn is not None:
            if (last_warn.get("params") or {}).get("grace_until", 0) > end:
                pending += 1
            else:
                grace_over += 1
    out = {"closed": closed, "closed_after_warning": after_warning, "close_warnings": close_warnings,
           "pending_in_grace": pending, "grace_over": grace_over, "end_ms": end, "example": None}
    if example:
        _, account, cmds = example
        first = cmds[0]["issued_at"]
        path = []
        for c in cmds:
            d = by_id.get(c["decision_id"], {})
            path.append({"day": round((c["issued_at"] - first) / 86_400_000, 1), "action": c["action"],
                         "close_pending": bool(c.get("params", {}).get("close_pending")),
                         "rule": d.get("rule_id", "cure" if c["action"] == "REINSTATE" else "?"),
                         "reason": (d.get("reasons") or [""])[0], "reason_code": reason_code(d) if d else None})
            if c["action"] == "CLOSE":
                break
        out["example"] = {"account_pseudonym": Pseudonymizer.from_env().pseudonym(account), "path": path}
    return out


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
    if s.get("dead_letters_by_reason", {}).get("late"):
        print("  (late: the demo plays months of event time in under a minute, so the 1 h allowed lateness is under a millisecond "
              "of skew between the upstream topics; README 'Reading a backlog across upstream topics'. The backtest "
              "below reads the published file in order.)")
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
    m = s.get("close_mechanism")
    if m:
        print(f"CLOSE commands     {m['closed']} ({m['closed_after_warning']} after a warning and its grace, the "
              f"rest immediate; {m['close_warnings']} WARNs sent by a deferred close)")
        print(f"closes pending     {m['pending_in_grace']} still in their warning grace at the end of the stream "
              f"(no CLOSE yet); {m['grace_over']} with the grace over but no CLOSE (no longer bad, or no event since)")
        ex = m.get("example")
        if ex:
            print(f"example account    {ex['account_pseudonym']} (pseudonym), warn-then-close path "
                  f"(days since its first command):")
            for step in ex["path"]:
                note = " (close pending: warning grace)" if step["close_pending"] else ""
                print(f"  day {step['day']:>6}  {step['action']:<13} rule {step['rule']:<28} "
                      f"reason code {step['reason_code'] or '-':<24} {step['reason']}{note}")
    bt = s.get("backtest")
    if bt:
        from riskstream.offline.backtest import format_table

        print(f"\nbacktest of the streamed population ({bt['events']} events, {bt['entities_in_truth']} entities "
              f"in the truth; {bt['out']}/backtest.json and backtest.png):")
        print(format_table(bt))
    if s.get("portfolio"):
        print(f"portfolio snapshot {s['portfolio']}  (stress it: riskstream scenario --portfolio FILE "
              f"--shock rate_bp=200 --shock sector_index_pct=-30 --out DIR)")


def register(sub) -> None:
    d = sub.add_parser("demo", help="run the whole pipeline on an embedded broker and print a summary",
                       description="Start a broker, apply the topology, start worker(s), the actuator and the risk "
                                   "console (its address and development sign-in are printed), stream "
                                   "a SYNTHETIC population with ground truth (riskstream simulate --population), "
                                   "show progress, print a summary (commands, CLOSE commands with one example "
                                   "account's warn-then-close path, closes pending in their grace), backtest the "
                                   "streamed events against their truth, and stop everything it started (also on "
                                   "Ctrl-C).")
    d.add_argument("--duration", type=float, default=150, help="stop streaming after this many seconds at most "
                                                                 "(default 150)")
    d.add_argument("--accounts", type=int, default=200, help="simulated credit lines (default 200)")
    d.add_argument("--facilities", type=int, default=6, help="simulated project-finance facilities (default 6)")
    d.add_argument("--days", type=int, default=180,
                   help="days of event time the population spans (default 180, the least the simulator allows: "
                        "defaulters reach 45 days past due, so warnings turn into closes)")
    d.add_argument("--seed", type=int, default=7, help="population seed (default 7)")
    d.add_argument("--rate", type=float, default=200,
                   help="events per second (default 200: ~6,700 events in ~35 s; a rate the worker cannot keep up "
                        "with dead-letters more events as late, since one account's events come on several topics)")
    d.add_argument("--no-backtest", dest="backtest", action="store_false",
                   help="skip the backtest of the streamed population at the end")
    d.add_argument("--workers", type=int, default=1, help="worker processes in the consumer group (default 1)")
    d.add_argument("--kind", choices=["auto", "kafka", "tansu"], default="auto", help="broker kind (default auto)")
    d.add_argument("--metrics-port", type=int, default=9100, help="first worker's /metrics port (default 9100; "
                                                                  "the actuator uses this + 50)")
    d.add_argument("--work-dir", help="logs and broker data (default: a new temp dir)")
    d.add_argument("--console-port", type=int, default=8080,
                   help="port of the risk console (`riskstream console`) the demo serves while it runs (default "
                        "%(default)s, else a free one)")
    d.add_argument("--no-console", dest="console", action="store_false", help="do not start the console")
    d.set_defaults(func=run_demo)
