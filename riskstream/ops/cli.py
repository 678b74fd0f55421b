"""The `riskstream` command line. Run `riskstream --help`, or `riskstream COMMAND --help` for one command."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from pathlib import Path

EPILOG = """\
typical session:
  riskstream broker start                 # Apache Kafka (KRaft) if Java 17 + Maven, else Tansu
  riskstream topology apply --bootstrap "$(riskstream broker status --bootstrap)"
  riskstream worker   --bootstrap HOST:PORT --metrics-port 9100
  riskstream actuator --bootstrap HOST:PORT --metrics-port 9101
  riskstream simulate --bootstrap HOST:PORT --events 20000
  riskstream broker stop
or all of it at once: ./scripts/demo
"""

# Commands contributed by core modules (each has register(subparsers)). They are imported only when their command
# runs: some pull in River, numpy and matplotlib, and a worker must start in well under 5 s.
PLUGINS = {
    "demo": ("riskstream.ops.demo", "run the whole pipeline on an embedded broker and print a summary"),
    "evaluate": ("riskstream.offline.evaluate", "replay a labelled CSV as a stream: prequential vs batch AUC"),
    "scenario": ("riskstream.offline.scenario", "stress a portfolio snapshot with market shocks (no commands)"),
    "policy": ("riskstream.ops.policy_cli", "check policy files"),
    "audit": ("riskstream.core.audit", "verify the tamper-evident audit log"),
    "control": ("riskstream.ops.control", "publish policy versions, overrides and breaker resets"),
    "replay": ("riskstream.offline.replay", "run the steps offline over a file of upstream events"),
    "backtest": ("riskstream.offline.backtest", "run policies over events with known outcomes: catch rate, harm"),
    "console": ("riskstream.ops.console.command",
                "serve the risk console (web): overview, account, review queue, breaker, backtest"),
}


def _bootstrap_arg(p: argparse.ArgumentParser, required: bool = False) -> None:
    p.add_argument("--bootstrap", required=required, default=os.environ.get("RISKSTREAM_BOOTSTRAP"),
                   metavar="HOST:PORT", help="Kafka bootstrap server (default: $RISKSTREAM_BOOTSTRAP, "
                                              "else the broker started by `riskstream broker start`)")


def _resolve_bootstrap(args) -> str:
    if getattr(args, "bootstrap", None):
        return args.bootstrap
    from riskstream.ops.broker import manager
    info = manager.status()
    if info is None:
        sys.exit("riskstream: no --bootstrap given and no local broker running; start one with "
                 "`riskstream broker start` or pass --bootstrap HOST:PORT")
    return info.bootstrap


def _wait_for_broker(bootstrap: str, attempts: int | None = None, say=None) -> bool:
    """Wait for the broker with backoff (one readable line a try, on stderr or to `say`); False, with the line
    printed, once `attempts` are spent. Long-running commands wait for ever."""
    from riskstream.core.errors import OperatorError
    from riskstream.stream.reach import BrokerUnreachable, diagnose, wait_for_broker
    from riskstream.stream.security import KafkaSecurity
    from riskstream.stream.reach import authenticate
    try:
        security = KafkaSecurity.from_env()
        tls = security.ssl_context()
    except OperatorError as exc:
        print(f"riskstream: {exc}", file=sys.stderr)
        sys.exit(2)

    def probe(b: str) -> str | None:  # the port, then a Kafka bootstrap (protocol and credentials)
        return diagnose(b, tls=tls) or authenticate(b, security.aiokafka())
    try:
        wait_for_broker(bootstrap, attempts=attempts, probe=probe,
                        say=say or (lambda line: print(f"riskstream: {line}", file=sys.stderr, flush=True)))
        return True
    except BrokerUnreachable as exc:
        print(f"riskstream: {exc}", file=sys.stderr)
        return False


# -- broker ---------------------------------------------------------------------------------------------------------
def _broker_sasl():
    """`broker start --sasl`: the listener's user from the same variables the clients read."""
    from riskstream.ops.broker.manager import Sasl
    from riskstream.stream.security import KafkaSecurity
    sec = KafkaSecurity.from_env({**os.environ, "RISKSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                                  "RISKSTREAM_KAFKA_SASL_MECHANISM":
                                      os.environ.get("RISKSTREAM_KAFKA_SASL_MECHANISM") or "SCRAM-SHA-256"})
    return Sasl(sec.sasl_mechanism, sec.sasl_username, sec.sasl_password)


def cmd_broker(args) -> int:
    from riskstream.core.errors import OperatorError
    from riskstream.ops.broker import manager
    state_dir = Path(args.state_dir) if args.state_dir else None
    if args.action == "start":
        try:
            sasl = _broker_sasl() if args.sasl else None
            info = manager.start(args.kind, state_dir=state_dir, port=args.port, sasl=sasl,
                                 progress=lambda m: print(m, file=sys.stderr))
        except OperatorError as exc:
            print(f"riskstream broker: {exc}", file=sys.stderr)
            return 2
        except manager.BrokerError as exc:
            print(f"riskstream broker: {exc}", file=sys.stderr)
            return 2
        print(info.bootstrap)
        return 0
    if args.action == "status":
        info = manager.status(state_dir)
        if info is None:
            print("no broker running", file=sys.stderr)
            return 1
        print(info.bootstrap if args.bootstrap_only else
              f"{info.kind} broker at {info.bootstrap} (pid {info.pid}); {info.reason}; log {info.log_file}")
        return 0
    info = manager.stop(state_dir)
    print(f"stopped {info.kind} broker (pid {info.pid})" if info else "no broker running", file=sys.stderr)
    return 0


# -- topology -------------------------------------------------------------------------------------------------------
def cmd_topology(args) -> int:
    from riskstream.core.topology import TopologyError, load_topology
    from riskstream.ops.topology_apply import apply_topology
    try:
        topo = load_topology(args.file)
    except TopologyError as exc:
        print(f"riskstream topology: {exc}", file=sys.stderr)
        return 2
    if args.action == "check":
        print(f"{topo.path}: ok ({len(topo.topics)} topics, {len(topo.agents)} agents)")
        return 0
    bootstrap = _resolve_bootstrap(args)
    if not _wait_for_broker(bootstrap, attempts=4):
        return 2
    report = apply_topology(topo, bootstrap)
    print(report)
    return 1 if report.drift else 0


# -- production mode ------------------------------------------------------------------------------------------------
ROLE_SECRETS = {
    "worker": ("RISKSTREAM_MODEL_KEY", "RISKSTREAM_PSEUDONYM_SECRET", "RISKSTREAM_CONTROL_KEYS"),
    "actuator": ("RISKSTREAM_PSEUDONYM_SECRET", "RISKSTREAM_CONTROL_KEYS", "RISKSTREAM_CONTROL_KEY"),
    "control": ("RISKSTREAM_CONTROL_KEY",),
    "console": ("RISKSTREAM_PSEUDONYM_SECRET", "RISKSTREAM_CONTROL_KEY"),
}


def _env_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", choices=["development", "production"], default=None,
                   help="production: refuse to start with a built-in development key (default: $RISKSTREAM_ENV, "
                        "else development)")


def refuse_dev_secrets(args, role: str) -> bool:
    """Production mode with a development secret (or an unreadable one): print why, one operator error a line.
    True when the command must stop."""
    from riskstream.core import secrets
    if getattr(args, "env", None):
        os.environ[secrets.ENV_MODE] = args.env  # children and lazily read secrets see the same mode
    problems = secrets.production_problems(needed=ROLE_SECRETS[role])
    for exc in problems:
        print(f"riskstream {role}: refusing to start in production mode: {exc}", file=sys.stderr)
    return bool(problems)


def _policy_signers(args) -> int:
    """--policy-signers, else $RISKSTREAM_POLICY_SIGNERS (1, 2 or 3), else 1."""
    from riskstream.core.errors import OperatorError
    if args.policy_signers:
        return args.policy_signers
    value = os.environ.get("RISKSTREAM_POLICY_SIGNERS", "").strip() or "1"
    if value not in ("1", "2", "3"):
        raise OperatorError("environment", "RISKSTREAM_POLICY_SIGNERS", f"{value!r} is not 1, 2 or 3",
                            "set it to 2 for maker-checker, or unset it")
    return int(value)


# -- worker / actuator ----------------------------------------------------------------------------------------------
def _serve(args, build) -> int:
    if refuse_dev_secrets(args, args.command):
        return 2
    from riskstream.stream import logs, metrics
    from riskstream.stream.app import StreamSettings, run
    from riskstream.core.topology import load_topology
    logs.setup_logging(args.log_level)
    if args.metrics_port:
        metrics.start_metrics_server(args.metrics_port)
    from riskstream.core.names import VALID
    from riskstream.core.steps import PipelineConfig

    topology = load_topology(args.topology)
    from riskstream.core.durations import parse_duration
    from riskstream.core.errors import OperatorError
    try:  # the keyring and keys are read here: a bad one is an operator error, not a traceback
        config = PipelineConfig(partitions=topology.topic(VALID).partitions,
                                model_config_path=Path(args.model_config) if args.model_config else None,
                                breaker_max_count=args.breaker_max_count, breaker_max_share=args.breaker_max_share,
                                breaker_hold_ms=parse_duration(args.breaker_hold, file="--breaker-hold",
                                                               field="value"),
                                policy_signers=_policy_signers(args))
        from riskstream.stream.security import KafkaSecurity
        security = KafkaSecurity.from_env()
    except OperatorError as exc:
        print(f"riskstream {args.command}: {exc}", file=sys.stderr)
        return 2
    bootstrap = _resolve_bootstrap(args)
    # Before Faust, which would exit with a traceback; the worker's lines go to its JSON log.
    _wait_for_broker(bootstrap, say=__import__("logging").getLogger("riskstream.stream").warning)
    settings = StreamSettings(bootstrap=bootstrap, topology=topology,
                              web_port=args.web_port, data_dir=args.data_dir,
                              policy_file=getattr(args, "policy", None), audit_log=args.audit_log,
                              pipeline_config=config, security=security)
    app = build(settings)
    run(app, loglevel=args.log_level.lower())
    return 0


def cmd_worker(args) -> int:
    from riskstream.stream.worker import build_worker
    return _serve(args, build_worker)


def cmd_actuator(args) -> int:
    from riskstream.stream.actuator import build_actuator
    return _serve(args, build_actuator)


# -- simulate -------------------------------------------------------------------------------------------------------
def cmd_simulate(args) -> int:
    if args.population or args.out_events or args.out_truth:
        return _simulate_population(args)
    from riskstream.ops.simulator import SimConfig, Simulator
    from riskstream.stream.produce import produce
    # Default: the simulated clock ends about now, so producer-to-decision latency is meaningful.
    start = args.start_ms or int(time.time() * 1000) - args.events * args.step_ms
    sim = Simulator(SimConfig(accounts=200 if args.accounts is None else args.accounts,
                              facilities=20 if args.facilities is None else args.facilities, seed=args.seed,
                              start_ms=start, malformed_share=args.malformed, step_ms=args.step_ms),
                    producer_clock=lambda: int(time.time() * 1000))
    bootstrap = _resolve_bootstrap(args)
    _wait_for_broker(bootstrap)
    sent = produce(bootstrap, sim.wire(args.events), rate=args.rate,
                   progress=not args.quiet)
    print(f"sent {sent} events", file=sys.stderr)
    return 0


def _simulate_population(args) -> int:
    """The population with ground truth (riskstream.ops.population) to files and/or Kafka."""
    import json

    from riskstream.offline.files import write_events, write_truth
    from riskstream.ops import population as popmod

    to_kafka = args.kafka or not args.out_events  # --out-events: files only, unless --kafka; else to Kafka
    if to_kafka and not args.out_truth:
        print("riskstream simulate: a population sent to Kafka needs --out-truth FILE for its outcomes",
              file=sys.stderr)
        return 2
    # Files: a fixed start, so the same flags write the same bytes. Kafka: the history ends about now, as live
    # workers refuse event times far from their clock.
    start = args.start_ms or (int(time.time() * 1000) - args.days * popmod.DAY if to_kafka
                              else popmod.DEFAULT_START_MS)
    try:
        cfg = popmod.PopulationConfig(
            accounts=10_000 if args.accounts is None else args.accounts,
            facilities=200 if args.facilities is None else args.facilities, days=args.days, seed=args.seed,
            start_ms=start, bad_share=args.bad_share, cure_rate=args.cure_rate, fraud_share=args.fraud_share,
            lead_strength=args.lead_strength, noise=args.noise, facility_bad_share=args.facility_bad_share,
            shock_day=args.shock_day, shock_segment=args.shock_segment, shock_size=args.shock_size,
            shock_default_share=args.shock_default_share)
        cfg.check()
    except ValueError as exc:
        print(f"riskstream simulate: {exc}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    pop = popmod.generate(cfg)
    if not args.quiet:
        print(f"generated {len(pop.records):,} events for {cfg.accounts:,} accounts and {cfg.facilities:,} "
              f"facilities in {time.perf_counter() - t0:.1f} s (SYNTHETIC)", file=sys.stderr)
    if args.out_events:
        with open(args.out_events, "wb") as fh:
            write_events(fh, pop.records)
    if args.out_truth:
        with open(args.out_truth, "wb") as fh:
            write_truth(fh, pop.truth)
    if to_kafka:
        from riskstream.stream.produce import produce
        bootstrap = _resolve_bootstrap(args)
        _wait_for_broker(bootstrap)
        sent = produce(bootstrap, popmod.wire(pop.records), rate=args.rate, progress=not args.quiet)
        print(f"sent {sent} events", file=sys.stderr)
    print(json.dumps(pop.summary, indent=1), file=sys.stderr)
    return 0


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The full parser; only the plugin for `command` (if any) is imported, the others are listed by name."""
    p = argparse.ArgumentParser(prog="riskstream", description="Streaming risk control for credit lines and "
                                "project-finance facilities (Kafka + Faust + River).",
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"riskstream {__import__('riskstream').__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    b = sub.add_parser("broker", help="start, stop or inspect a local single-node broker",
                       description="Start/stop/inspect a local broker. Apache Kafka 4.x (KRaft) when Java >= 17 and "
                                   "Maven are present (jars fetched once from Maven Central), else Tansu.")
    b.add_argument("action", choices=["start", "stop", "status"])
    b.add_argument("--kind", choices=["auto", "kafka", "tansu"], default="auto",
                   help="which broker (default: auto, prints the choice and why)")
    b.add_argument("--port", type=int, help="listen port (default: a free loopback port)")
    b.add_argument("--state-dir", help="where broker.json, logs and data live (default: $RISKSTREAM_HOME/broker "
                                       "or ./var/broker)")
    b.add_argument("--sasl", action="store_true",
                   help="with start (Apache Kafka): serve clients on a SASL_PLAINTEXT listener for the user "
                        "$RISKSTREAM_KAFKA_SASL_USERNAME with $RISKSTREAM_KAFKA_SASL_PASSWORD (or _FILE), mechanism "
                        "$RISKSTREAM_KAFKA_SASL_MECHANISM (default SCRAM-SHA-256); export "
                        "RISKSTREAM_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT for the clients")
    b.add_argument("--bootstrap", dest="bootstrap_only", action="store_true",
                   help="with status: print only HOST:PORT")
    b.set_defaults(func=cmd_broker)

    t = sub.add_parser("topology", help="validate topology.yaml or create/verify its topics",
                       description="check: validate the file (errors name the field and the fix). "
                                   "apply: create missing topics and report drift of existing ones (idempotent).")
    t.add_argument("action", choices=["check", "apply"])
    t.add_argument("--file", default=None,
                   help="topology file (default: the topology.yaml shipped in the package)")
    _bootstrap_arg(t)
    t.set_defaults(func=cmd_topology)

    for name, func, port, help_ in (
        ("worker", cmd_worker, 9100, "run a stream worker: ingest, state, features, scores, decisions"),
        ("actuator", cmd_actuator, 9101, "run the auto-close actuator: decisions -> commands"),
    ):
        w = sub.add_parser(name, help=help_, description=help_ + ". Run more processes with the same topology "
                           "to scale out; they share the consumer group.")
        _bootstrap_arg(w)
        w.add_argument("--metrics-port", type=int, default=port, help=f"serve /metrics here (default {port}; 0 = off)")
        w.add_argument("--web-port", type=int, default=0, help="Faust web port (default: a free port)")
        w.add_argument("--topology", default=None, metavar="FILE",
                       help="topology file (default: the topology.yaml shipped in the package)")
        w.add_argument("--data-dir", default="var/faust", help="Faust data directory")
        w.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
        _env_arg(w)
        w.add_argument("--audit-log", help=f"hash-chained audit file (default var/audit/{name}.jsonl)")
        w.add_argument("--model-config", metavar="FILE",
                       help="models.yaml overlay, key by key (default: the bundled riskstream/data/models.yaml)")
        if name == "worker":
            w.add_argument("--policy", help="champion policy file, watched for changes and hot-reloaded "
                                            "(default: the bundled riskstream/data/policies/default.yaml)")
        w.add_argument("--policy-signers", type=int, choices=[1, 2, 3], default=None, metavar="N",
                       help="distinct signers a policy version on the control topic needs before it goes live; 2 = "
                            "maker-checker (default: $RISKSTREAM_POLICY_SIGNERS, else 1). Give workers and "
                            "actuators the same N")
        w.add_argument("--breaker-max-count", type=int, default=200, metavar="N",
                       help="mass-close breaker: CLOSE+FREEZE in a sliding minute over all partitions that trip it "
                            "(default %(default)s; each decisions partition holds its share)")
        w.add_argument("--breaker-max-share", type=float, default=0.2, metavar="F",
                       help="mass-close breaker: the same as a share of active accounts (default %(default)s)")
        w.add_argument("--breaker-hold", default="1m", metavar="DURATION",
                       help="mass-close breaker: a policy's CLOSE waits this long in event time before it "
                            "leaves, so a flood that trips the breaker sends none (default %(default)s = its window; "
                            "0s sends at once, and up to the limit leaves before a trip)")
        w.set_defaults(func=func)

    s = sub.add_parser("simulate", help="publish simulated upstream events, or a population with ground truth",
                       description="Publish a deterministic stream of account, repayment, credit, market and "
                                   "project-finance events (same seed, same events). With --population (implied "
                                   "by --out-events/--out-truth): a SYNTHETIC population with ground truth "
                                   "(riskstream.ops.population, file formats in docs/files.md), written to files "
                                   "and/or sent to Kafka.")
    _bootstrap_arg(s)
    s.add_argument("--events", type=int, default=10_000, help="how many events (demo stream only; default 10000)")
    s.add_argument("--accounts", type=int, default=None,
                   help="credit lines (default 200; with --population 10000)")
    s.add_argument("--facilities", type=int, default=None,
                   help="project-finance facilities (default 20; with --population 200)")
    s.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    g = s.add_argument_group("population with ground truth (SYNTHETIC; docs/files.md)")
    g.add_argument("--population", action="store_true", help="generate the population with ground truth")
    g.add_argument("--out-events", metavar="FILE", help="write the events (JSON lines) here")
    g.add_argument("--out-truth", metavar="FILE", help="write the outcomes (JSON lines) here")
    g.add_argument("--kafka", action="store_true",
                   help="with --out-events: also send the events to Kafka (the file then holds what was sent)")
    g.add_argument("--days", type=int, default=300, help="length of the history (default %(default)s)")
    g.add_argument("--bad-share", type=float, default=0.06,
                   help="share of credit lines that default (default %(default)s)")
    g.add_argument("--cure-rate", type=float, default=0.4,
                   help="share of distress episodes that cure (default %(default)s)")
    g.add_argument("--fraud-share", type=float, default=0.003,
                   help="share of lines hit by an account takeover (default %(default)s)")
    g.add_argument("--lead-strength", type=float, default=1.0,
                   help="how often lead signals precede a default (0 = never, 1 = as documented; default "
                        "%(default)s)")
    g.add_argument("--noise", type=float, default=1.0,
                   help="scale of benign noise in good accounts (default %(default)s)")
    g.add_argument("--facility-bad-share", type=float, default=0.08,
                   help="share of facilities that default (default %(default)s)")
    g.add_argument("--shock-day", type=int, default=None, help="day of a market shock (default: none)")
    g.add_argument("--shock-segment", default="transport", help="segment the shock hits (default %(default)s)")
    g.add_argument("--shock-size", type=float, default=0.25,
                   help="fall of the segment's sector index (default %(default)s)")
    g.add_argument("--shock-default-share", type=float, default=0.06,
                   help="extra defaults among the shocked segment's accounts and facilities (default %(default)s)")
    s.add_argument("--rate", type=float, default=0, help="events per second (0 = as fast as possible)")
    s.add_argument("--malformed", type=float, default=0.0, help="share of events corrupted on the wire (0..1)")
    s.add_argument("--start-ms", type=int, default=0,
                   help="event time of the first event (default: so that the last event is about now; population files: "
                        "a fixed time, so the same flags write the same files)")
    s.add_argument("--step-ms", type=int, default=500,
                   help="mean event-time gap between events (default 500). Events of one account arrive on several "
                        "topics, so a big gap at a high rate turns normal cross-topic reordering into late events")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_simulate)

    for name, (mod, help_) in PLUGINS.items():
        if name == command:
            importlib.import_module(mod).register(sub)
        else:
            sub.add_parser(name, help=help_, add_help=False)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
