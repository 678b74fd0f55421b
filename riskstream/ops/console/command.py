"""`riskstream console`: serve the risk console (sign-in, overview, account, review queue, breaker, backtest)."""

from __future__ import annotations

import argparse
import os
import sys

DESCRIPTION = """\
Serve the risk console, a web application for analysts and operators, at http://HOST:PORT/. It follows the
decisions, commands, control and dead-letter topics (and the actuator's audit file with --audit) from the start:

  Overview      events/s, decisions and commands by action over time, champion beside challenger, dead letters
                by reason, breaker state, model and policy versions in force (refreshes every 2 s)
  Account       look a line up by id (pseudonymised on input: URLs and logs carry only the pseudonym): its state,
                timeline with rule, reasons, PD and versions, a PD chart and each decision's audit record
  Review queue  REVIEW decisions waiting, oldest first: confirm fraud (CLOSE), clear or hold, with a note
  Breaker       held commands with counts and reasons: release or drop them, with a reason
  Backtest      open a `riskstream backtest` backtest.json: its chart, champion and challenger side by side

Sign-in is required. Users: $RISKSTREAM_CONSOLE_USERS (or a file named by $RISKSTREAM_CONSOLE_USERS_FILE), one
name:role:hash a line (or ;-separated), role viewer or operator; make a hash with `riskstream console
--hash-password`. Actions need the operator role and are published as control messages signed with this
console's key (RISKSTREAM_CONTROL_KEY_ID and RISKSTREAM_CONTROL_KEY, as `riskstream control`).
With no users in development mode a dev-operator and a dev-viewer are made and their passwords printed; production
(--env production) refuses that and every built-in development secret.

examples:
  riskstream console --bootstrap 127.0.0.1:9092 --audit var/audit/actuator.jsonl
  RISKSTREAM_CONSOLE_USERS="ana:operator:$(riskstream console --hash-password)" riskstream console --env production
"""


def cmd_console(args) -> int:
    from riskstream.core.errors import OperatorError
    from riskstream.ops.console import auth

    if args.hash_password:
        import getpass
        password = getpass.getpass("password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
        if len(password) < 8:
            print("riskstream console: <stdin>: password: shorter than 8 characters. Fix: choose a longer one",
                  file=sys.stderr)
            return 2
        print(auth.hash_password(password))
        return 0

    from riskstream.ops.cli import _resolve_bootstrap, refuse_dev_secrets

    if refuse_dev_secrets(args, "console"):
        return 2
    from riskstream.core import secrets
    from riskstream.core.durations import parse_duration
    from riskstream.core.topology import load_topology
    from riskstream.core.names import CONTROL
    from riskstream.core.privacy import Pseudonymizer
    from riskstream.core.signing import control_signer
    from riskstream.stream.security import KafkaSecurity

    try:
        ttl_ms = parse_duration(args.session_ttl, file="--session-ttl", field="value", positive=True)
        if args.max_accounts < 1:
            raise OperatorError("--max-accounts", "value", f"{args.max_accounts} is not a positive number",
                                "pass how many accounts keep a timeline, e.g. --max-accounts 100000")
        users = auth.load_users()
        topology = load_topology(args.topology)
        signer = control_signer()
        security = KafkaSecurity.from_env()
        backtest = _load_backtest(args.backtest) if args.backtest else None
    except OperatorError as exc:
        print(f"riskstream console: {exc}", file=sys.stderr)
        return 2
    dev_passwords = {}
    if not users:
        if secrets.is_production(os.environ):
            print(f"riskstream console: environment: {auth.USERS_ENV}: no console users in production mode. Fix: "
                  f"set {auth.USERS_ENV} or {auth.USERS_FILE_ENV} to name:role:hash lines (hash from `riskstream "
                  f"console --hash-password`)", file=sys.stderr)
            return 2
        users, dev_passwords = auth.dev_users()
    bootstrap = _resolve_bootstrap(args)

    import logging
    import threading

    from aiohttp import web

    from riskstream.ops import control
    from riskstream.ops.console.model import ReadModel
    from riskstream.ops.console.reader import Reader
    from riskstream.ops.console.server import ConsoleState, make_app

    logging.basicConfig(level=getattr(logging, args.log_level), format="%(asctime)s %(levelname)s %(name)s: "
                                                                       "%(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)  # its clients log every connection at INFO
    control_topic = topology.name(CONTROL)
    lock = threading.Lock()
    model = ReadModel(Pseudonymizer.from_env(), max_accounts=args.max_accounts)
    reader = Reader(bootstrap, topology, model, lock, security=security, audit_paths=args.audit or ())
    state = ConsoleState(model=model, users=users, sessions=auth.Sessions(ttl_ms=ttl_ms), lock=lock,
                         publish=lambda msg: control.publish(bootstrap, msg, control_topic, signer=signer,
                                                             security=security),
                         signer_id=signer.key_id, health=lambda: reader.error)
    reader.start()
    app = make_app(state, backtest=backtest)
    url = f"http://{args.host}:{args.port}/"

    def announce(_=None):  # the sign-in first: whoever waits for "serving" has it then
        for name, pw in dev_passwords.items():
            print(f"riskstream console: development sign-in {name} / {pw} ({users[name].role}); never in "
                  f"production", file=sys.stderr, flush=True)
        print(f"riskstream console: serving {url} (reading {bootstrap}; {len(users)} user(s), sessions end after "
              f"{args.session_ttl} idle)", file=sys.stderr, flush=True)
    try:
        web.run_app(app, host=args.host, port=args.port, print=announce, access_log=None,
                    handle_signals=True)
    except OSError as exc:
        print(f"riskstream console: --port: cannot listen on {args.host}:{args.port} ({exc.strerror}). Fix: pass "
              f"a free port with --port", file=sys.stderr)
        return 2
    finally:
        reader.stop()
    return 0


def _load_backtest(path: str) -> tuple:
    import orjson

    from riskstream.core.errors import OperatorError
    try:
        report = orjson.loads(open(path, "rb").read())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise OperatorError(path, "<file>", f"not a readable backtest report ({exc})",
                            "pass the backtest.json that `riskstream backtest --out DIR` wrote") from exc
    if not isinstance(report, dict) or not isinstance(report.get("policies"), list):
        raise OperatorError(path, "policies", "missing", "pass the backtest.json that `riskstream backtest` wrote")
    return (os.path.basename(path), report)


def register(sub) -> None:
    c = sub.add_parser("console", help="serve the risk console (web): overview, account, review, breaker, backtest",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("--bootstrap", default=os.environ.get("RISKSTREAM_BOOTSTRAP"), metavar="HOST:PORT",
                   help="Kafka bootstrap server (default: $RISKSTREAM_BOOTSTRAP, else the local broker)")
    c.add_argument("--port", type=int, default=8080, help="listen port (default %(default)s)")
    c.add_argument("--host", default="127.0.0.1", help="listen address (default %(default)s; put a TLS proxy in "
                                                       "front of anything but loopback)")
    c.add_argument("--topology", metavar="FILE", help="topology file (default: the bundled topology.yaml)")
    c.add_argument("--audit", action="append", metavar="FILE",
                   help="the actuator's hash-chained audit file, verified as it grows (repeat for several)")
    c.add_argument("--session-ttl", default="30m", metavar="DURATION",
                   help="a session idle this long ends (default %(default)s; 90s, 15m, 1h...)")
    c.add_argument("--max-accounts", type=int, default=100_000, metavar="N",
                   help="keep the timeline, line state and valid events of at most N accounts, the least recently "
                        "updated dropped first (default %(default)s; counts and the review queue are kept whole)")
    c.add_argument("--backtest", metavar="FILE", help="a backtest.json shown on the Backtest page until a user "
                                                      "opens another")
    c.add_argument("--env", choices=["development", "production"], default=None,
                   help="production: refuse development secrets and made-up users (default: $RISKSTREAM_ENV, "
                        "else development)")
    c.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    c.add_argument("--hash-password", action="store_true",
                   help="read a password (prompt, or one line of stdin) and print its hash for "
                        "RISKSTREAM_CONSOLE_USERS, then exit")
    c.set_defaults(func=cmd_console)
