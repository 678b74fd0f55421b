"""`riskstream policy check FILE`: validate a policy file before it is deployed."""

from __future__ import annotations

import sys

from riskstream.core.policy.loader import PolicyError, load_policy


def _check(args) -> int:
    try:
        policy = load_policy(args.file, source=args.file)
    except PolicyError as e:
        print(f"policy error: {e}", file=sys.stderr)
        return 2
    print(policy.summary())
    print(f"ok: {len(policy.rules)} rules")
    return 0


def register(subparsers) -> None:
    """Add `policy check FILE` to an argparse sub-parser set; `args.func(args)` returns the exit code."""
    p = subparsers.add_parser("policy", help="policy files")
    sub = p.add_subparsers(dest="policy_command", required=True)
    c = sub.add_parser("check", help="validate a policy file (exit 0 with a summary, exit 2 with the error)")
    c.add_argument("file", help="path of the policy YAML file")
    c.set_defaults(func=_check)
