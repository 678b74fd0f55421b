"""`riskstream control`: operator messages on the control topic (policy versions, overrides, breaker resets).

Rules as data pushed to running operators: workers read every control message, validate a policy and swap it in
(or refuse it and keep the old one); the actuator applies overrides and resets to the accounts they name. Every
message carries an id and a time, so each is applied once and audited.
"""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path

import orjson

from riskstream.core.names import CONTROL as T_CONTROL


def message(kind: str, **fields) -> dict:
    """A control message: `kind` plus fields, with a unique `control_id` and the time it was issued."""
    return {"kind": kind, "control_id": fields.pop("control_id", None) or uuid.uuid4().hex,
            "time": fields.pop("time", None) or int(time.time() * 1000), **fields}


def publish(bootstrap: str, msg: dict, topic: str = T_CONTROL) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=2 * 1024 * 1024)
    try:
        producer.send(topic, key=msg["kind"].encode(), value=orjson.dumps(msg)).get(timeout=30)
    finally:
        producer.close()


def cmd_control(args) -> int:
    from riskstream.ops.cli import _resolve_bootstrap, _wait_for_broker

    by = args.by or "cli"
    if args.what == "policy":
        text = Path(args.target).read_text()
        if not args.no_check:
            from riskstream.core.policy import PolicyError, load_policy
            try:
                load_policy(text, source=args.target)
            except PolicyError as exc:
                print(f"riskstream control: refusing to publish: {exc}", file=sys.stderr)
                return 2
        msg = message("policy", text=text, source=args.target, by=by)
    elif args.what in ("hold", "release-hold"):
        msg = message("legal_hold", account_id=args.target, on=args.what == "hold", by=by, reason=args.reason)
    elif args.what in ("allow", "disallow"):
        msg = message("allow_list", account_id=args.target, on=args.what == "allow", by=by, reason=args.reason)
    elif args.what == "manual":
        msg = message("manual", account_id=args.target, action=args.action, params={}, by=by, reason=args.reason)
    else:  # breaker-reset
        msg = message("breaker_reset", how=args.target or "release", by=by, reason=args.reason)
    bootstrap = _resolve_bootstrap(args)
    if not _wait_for_broker(bootstrap, attempts=4):
        return 2
    publish(bootstrap, msg, args.topic)
    print(f"published {msg['kind']} control message {msg['control_id']}")
    return 0


def register(sub) -> None:
    c = sub.add_parser("control", help="publish policy versions, overrides and breaker resets",
                       description="Publish an operator message to the control topic. Examples:\n"
                                   "  riskstream control policy my-policy.yaml      # hot reload (validated first)\n"
                                   "  riskstream control hold ACC000123 --reason 'court order 17'\n"
                                   "  riskstream control allow ACC000123\n"
                                   "  riskstream control manual ACC000123 --action REINSTATE\n"
                                   "  riskstream control breaker-reset release     # or: drop",
                       formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    c.add_argument("what", choices=["policy", "hold", "release-hold", "allow", "disallow", "manual",
                                    "breaker-reset"])
    c.add_argument("target", nargs="?", help="policy file, account id, or release|drop for breaker-reset")
    c.add_argument("--action", default="REVIEW", help="with manual: the action (e.g. CLOSE, REINSTATE, WARN)")
    c.add_argument("--reason", default="", help="free text kept in the audit log")
    c.add_argument("--by", help="operator name for the audit log")
    c.add_argument("--no-check", action="store_true", help="publish a policy without validating it locally")
    c.add_argument("--topic", default=T_CONTROL, help=f"control topic (default {T_CONTROL})")
    c.add_argument("--bootstrap", default=__import__("os").environ.get("RISKSTREAM_BOOTSTRAP"), metavar="HOST:PORT")
    c.set_defaults(func=cmd_control)
