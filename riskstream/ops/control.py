"""`riskstream control`: operator messages on the control topic (policy versions, overrides, breaker resets).

Rules as data pushed to running operators: workers read every control message, validate a policy and swap it in
(or refuse it and keep the old one); the actuator applies overrides and resets to the accounts they name. Every
message carries an id and a time, so each is applied once and audited, and is signed with this operator's key
(`RISKSTREAM_CONTROL_KEY_ID` and `RISKSTREAM_CONTROL_KEY` or `_FILE`; `riskstream.core.signing`): an unsigned
or altered one is refused by every reader.

Maker-checker (workers run with `--policy-signers 2`): the maker writes a signed proposal instead of publishing
it, the checker reviews it, co-signs it with their own key and publishes it::

    riskstream control policy new.yaml --out proposal.json      # maker
    riskstream control cosign proposal.json                      # checker: shows it, signs, publishes

Review verdicts (`review_message`): an analyst's answer to a REVIEW decision, `fraud` (the actuator closes the
line at once, command id from the control id), `clear` or `hold` (audited only). A fraud or clear verdict is also
a label for the trainer, so the message carries what the trainer learns from: the decision's point-in-time
`features` and its `event_time` as `snapshot_time`, copied by the sender from the REVIEW decision record (which
carries its features for this; the console has the record, the CLI reads it with `--decision-from FILE`). The
control step turns it into the label; nothing has to be looked up or kept for it elsewhere::

    riskstream control review ACC000123 --decision-from d.json --verdict fraud --note 'card testing, called'
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


def review_message(account_id: str, decision_id: str, verdict: str, note: str = "", by: str = "", *,
                   decision: dict | None = None, source: str = "command line") -> dict:
    """The control message of an analyst's `verdict` (fraud | clear | hold) on REVIEW decision `decision_id`.
    `decision`: the decision record, whose `features` and `event_time` the message carries for the label.

    >>> m = review_message("A1", "d1", "clear", "known customer", "ann",
    ...                    decision={"decision_id": "d1", "account_id": "A1", "event_time": 5, "features": {"utilisation": 0.9}})
    >>> m["kind"], m["verdict"], m["snapshot_time"], m["features"]
    ('review', 'clear', 5, {'utilisation': 0.9})
    >>> review_message("A1", "d1", "maybe")
    Traceback (most recent call last):
    ...
    riskstream.core.errors.OperatorError: command line: --verdict: 'maybe' is not a review verdict. Fix: use fraud (confirm fraud: close the line), clear or hold
    """
    from riskstream.core.actuator.line import REVIEW_VERDICTS
    from riskstream.core.errors import OperatorError

    if verdict not in REVIEW_VERDICTS:
        raise OperatorError(source, "--verdict", f"{verdict!r} is not a review verdict" if verdict else "missing",
                            "use fraud (confirm fraud: close the line), clear or hold")
    if not account_id or not decision_id:
        raise OperatorError(source, "--decision" if account_id else "ACCOUNT", "missing",
                            "name the account and the REVIEW decision's decision_id")
    fields = {}
    if decision is not None:
        for name, want in (("decision_id", decision_id), ("account_id", account_id)):
            if decision.get(name) != want:
                raise OperatorError(source, name, f"the decision record has {decision.get(name)!r}, not {want!r}",
                                    "pass the record of this account's REVIEW decision")
        if decision.get("action", "REVIEW") != "REVIEW":
            raise OperatorError(source, "action", f"{decision.get('action')!r} is not a REVIEW decision",
                                "a verdict answers a REVIEW decision")
        features = decision.get("features")
        if not isinstance(features, dict) or not isinstance(decision.get("event_time"), int):
            raise OperatorError(source, "features", "the decision record carries no point-in-time features and "
                                "event_time", "pass the REVIEW decision as published on the decisions topic")
        fields = {"features": features, "snapshot_time": decision["event_time"],
                  "feature_hash": decision.get("feature_hash"), "pd": decision.get("pd")}
    return message("review", account_id=account_id, decision_id=decision_id, verdict=verdict, note=note, by=by,
                   **fields)


def read_decision(path: str) -> dict:
    """One decision record from `path`: a JSON object as published on the decisions topic (e.g. from kcat)."""
    from riskstream.core.errors import FILE, OperatorError

    try:
        rec = orjson.loads(Path(path).read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise OperatorError(path, FILE, f"not a readable decision record ({exc})",
                            "pass one REVIEW decision as published on riskstream.decisions (a JSON object)")
    if not isinstance(rec, dict):
        raise OperatorError(path, "<top>", "not a JSON object", "pass one decision record")
    return rec


def publish(bootstrap: str, msg: dict, topic: str = T_CONTROL, *, signer=None, security=None) -> None:
    """Publish `msg`, signed by `signer` (default: this environment's control key) unless it is signed already.
    `security`: TLS/SASL settings (default: from the environment)."""
    from kafka import KafkaProducer

    from riskstream.core.signing import control_signer
    from riskstream.stream.security import KafkaSecurity

    if not msg.get("signatures"):
        msg = (signer or control_signer()).sign(msg)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=2 * 1024 * 1024,
                             **(security or KafkaSecurity.from_env()).kafka_python())
    try:
        producer.send(topic, key=msg["kind"].encode(), value=orjson.dumps(msg)).get(timeout=30)
    finally:
        producer.close()


def describe(msg: dict) -> str:
    """What a checker reads before co-signing: kind, id, who signed, and for a policy its name, version, digest."""
    import hashlib

    signed = ", ".join(s.get("key_id", "?") for s in msg.get("signatures") or ()) or "nobody"
    line = f"{msg.get('kind')} control message {msg.get('control_id')} by {msg.get('by')!r}, signed by {signed}"
    if msg.get("kind") == "policy":
        from riskstream.core.policy import PolicyError, load_policy
        text = msg.get("text", "")
        try:
            p = load_policy(text, source=str(msg.get("source") or "proposal"))
            what = f"policy {p.name} v{p.version}"
        except PolicyError as exc:
            what = f"an INVALID policy ({exc})"
        line += f"\n  {what}, text sha256 {hashlib.sha256(text.encode()).hexdigest()[:16]}, from {msg.get('source')}"
    return line


def cmd_control(args) -> int:
    from riskstream.core.errors import OperatorError
    from riskstream.core.signing import control_signer
    from riskstream.ops.cli import _resolve_bootstrap, _wait_for_broker, refuse_dev_secrets

    if refuse_dev_secrets(args, "control"):
        return 2
    try:
        signer = control_signer()
    except OperatorError as exc:
        print(f"riskstream control: {exc}", file=sys.stderr)
        return 2
    by = args.by or signer.key_id
    if args.what == "cosign":
        try:
            msg = orjson.loads(Path(args.target).read_bytes())
        except (OSError, orjson.JSONDecodeError, TypeError) as exc:
            print(f"riskstream control: {args.target}: <file>: not a readable proposal ({exc}). Fix: pass the file "
                  f"`riskstream control ... --out FILE` wrote", file=sys.stderr)
            return 2
        if signer.key_id in {s.get("key_id") for s in msg.get("signatures") or ()}:
            print(f"riskstream control: {args.target}: signatures: already signed by {signer.key_id!r}. Fix: a "
                  f"checker co-signs with another key (RISKSTREAM_CONTROL_KEY_ID and RISKSTREAM_CONTROL_KEY)",
                  file=sys.stderr)
            return 2
        print(describe(msg), file=sys.stderr)
        msg = signer.sign(msg)
    elif args.what == "policy":
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
    elif args.what == "review":
        try:
            decision = read_decision(args.decision_from) if args.decision_from else None
            did = args.decision or (decision or {}).get("decision_id")
            msg = review_message(args.target, did, args.verdict, args.note, by, decision=decision,
                                 source=args.decision_from or "command line")
        except OperatorError as exc:
            print(f"riskstream control: {exc}", file=sys.stderr)
            return 2
        if decision is None:
            print("riskstream control: no --decision-from: the verdict is applied but teaches the trainer nothing "
                  "(a label needs the decision's point-in-time features)", file=sys.stderr)
    else:  # breaker-reset
        msg = message("breaker_reset", how=args.target or "release", by=by, reason=args.reason)
    if args.what != "cosign":
        msg = signer.sign(msg)
    if args.out:
        Path(args.out).write_bytes(orjson.dumps(msg, option=orjson.OPT_INDENT_2))
        print(f"wrote {msg['kind']} control message {msg['control_id']} signed by {signer.key_id} to {args.out}; "
              f"a checker publishes it with: riskstream control cosign {args.out}")
        return 0
    bootstrap = _resolve_bootstrap(args)
    if not _wait_for_broker(bootstrap, attempts=4):
        return 2
    publish(bootstrap, msg, args.topic)
    signed = ", ".join(s["key_id"] for s in msg["signatures"])
    print(f"published {msg['kind']} control message {msg['control_id']} signed by {signed}")
    return 0


def register(sub) -> None:
    c = sub.add_parser("control", help="publish policy versions, overrides and breaker resets",
                       description="Publish an operator message to the control topic. Examples:\n"
                                   "  riskstream control policy my-policy.yaml      # hot reload (validated first)\n"
                                   "  riskstream control hold ACC000123 --reason 'court order 17'\n"
                                   "  riskstream control allow ACC000123\n"
                                   "  riskstream control manual ACC000123 --action REINSTATE\n"
                                   "  riskstream control review ACC000123 --decision-from d.json --verdict fraud "
                                   "--note 'called, not the customer'\n"
                                   "      # a REVIEW decision's verdict: fraud (close now), clear or hold; fraud and\n"
                                   "      # clear become labels (d.json: the decision record, with its features)\n"
                                   "  riskstream control breaker-reset release     # or: drop\n"
                                   "  riskstream control policy new.yaml --out p.json  # maker: sign, do not publish\n"
                                   "  riskstream control cosign p.json             # checker: co-sign and publish\n"
                                   "Signed with RISKSTREAM_CONTROL_KEY_ID and RISKSTREAM_CONTROL_KEY (or _FILE); "
                                   "docs/operations.md, Security.",
                       formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    c.add_argument("what", choices=["policy", "hold", "release-hold", "allow", "disallow", "manual", "review",
                                    "breaker-reset", "cosign"])
    c.add_argument("target", nargs="?", help="policy file, account id, release|drop for breaker-reset, or the "
                                             "proposal file to cosign")
    c.add_argument("--action", default="REVIEW", help="with manual: the action (e.g. CLOSE, REINSTATE, WARN)")
    c.add_argument("--reason", default="", help="free text kept in the audit log")
    c.add_argument("--decision", metavar="ID", help="with review: the REVIEW decision's decision_id (default: the "
                                                    "one in --decision-from)")
    c.add_argument("--decision-from", metavar="FILE", help="with review: the REVIEW decision record (JSON, as on "
                                                           "riskstream.decisions); its features make the label")
    c.add_argument("--verdict", help="with review: fraud (confirm fraud: the line is closed), clear or hold")
    c.add_argument("--note", default="", help="with review: the analyst's note, kept in the audit log")
    c.add_argument("--by", help="operator name for the audit log")
    c.add_argument("--no-check", action="store_true", help="publish a policy without validating it locally")
    c.add_argument("--out", metavar="FILE", help="write the signed message here instead of publishing it (the maker "
                                                 "of a maker-checker change)")
    c.add_argument("--env", choices=["development", "production"], default=None,
                   help="production: refuse the built-in development key (default: $RISKSTREAM_ENV)")
    c.add_argument("--topic", default=T_CONTROL, help=f"control topic (default {T_CONTROL})")
    c.add_argument("--bootstrap", default=__import__("os").environ.get("RISKSTREAM_BOOTSTRAP"), metavar="HOST:PORT")
    c.set_defaults(func=cmd_control)
