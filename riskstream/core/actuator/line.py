"""Per-account credit-line state machine: warn before close, cure and reinstate, overrides, idempotency.

States (derived from a few flags, so every transition is a flag change)::

    OPEN ──WARN──> WARNED ──REDUCE_LIMIT / FREEZE──> LIMITED / FROZEN ──CLOSE (after grace)──> CLOSED
      ^               |                                   |
      └── REINSTATED <┴──── cure for N cycles ────────────┘      (CLOSED leaves only by a manual REINSTATE)

`step(line, inp, now_ms, config)` takes one input and returns `(line, commands, audit_records)`; it never
mutates its arguments and reads no clock. Inputs are dicts with a `kind`:

* `decision` (a `Decision.to_dict()`; `kind` may be omitted when `decision_id` is present)
* `cure` `{account_id, event_id, [cycles]}`: paid up and on time for one (or `cycles`) statement cycles
* `legal_hold` / `allow_list` `{account_id, control_id, on, [by, reason]}`: overrides from the control topic
* `manual` `{account_id, control_id, action, [params, by, reason]}`: a person's decision; beats the policy
* `review` `{account_id, control_id, decision_id, verdict, [note, by]}`: an analyst's verdict on a REVIEW decision:
  `fraud` closes the line at once and pins it (as a manual CLOSE), `clear` and `hold` are audited only
* `dropped` `{command}`: the breaker dropped a held CLOSE/FREEZE; undo its effect on the line

>>> cfg = ActuatorConfig()
>>> close = {"kind": "decision", "decision_id": "d1", "account_id": "a1", "action": "CLOSE", "params": {},
...          "immediate": False, "mode": "live", "policy_version": 1}
>>> line, cmds, audit = step(None, close, 0, cfg)
>>> line.state, [c["action"] for c in cmds]              # warned first, not closed
('WARNED', ['WARN'])
>>> step(line, close, 1, cfg)[1]                          # redelivery: no second command
[]
>>> line, cmds, _ = step(line, dict(close, decision_id="d2"), cfg.grace_ms + 1, cfg)
>>> line.state, [c["action"] for c in cmds]              # grace over, still bad: closed
('CLOSED', ['CLOSE'])
>>> review = {"kind": "review", "account_id": "a2", "control_id": "r1", "decision_id": "d9", "verdict": "fraud"}
>>> line, cmds, audit = step(None, review, 5, cfg)
>>> line.state, [(c["action"], c["decision_id"]) for c in cmds], audit[0]["payload"]["verdict"]
('CLOSED', [('CLOSE', 'review:r1')], 'fraud')
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import orjson

from riskstream.core.actuator.commands import COMMAND_ACTIONS, make_command

HOUR = 3_600_000
DAY = 24 * HOUR


@dataclass(frozen=True)
class ActuatorConfig:
    cure_cycles: int = 2                 # on-time cycles in a row that reinstate a restricted line
    grace_ms: int = 72 * HOUR            # warning period before a close, unless the decision says otherwise
    warn_valid_ms: int = 30 * DAY        # a warning older than this no longer counts as "warned before close"
    freeze_ms: int = 48 * HOUR           # freeze length when the decision gives none
    manual_pin_ms: int = 7 * DAY         # after a manual decision the policy is ignored this long
    handled_memory: int = 64             # decision/control ids remembered per account for idempotency


@dataclass(frozen=True)
class LineState:
    account_id: str
    state: str = "OPEN"
    warned_at: int | None = None
    grace_until: int | None = None       # a close is pending until this time; None = no close pending
    limited: bool = False
    frozen_until: int | None = None
    closed_at: int | None = None
    reinstated_at: int | None = None
    cure_streak: int = 0
    legal_hold: bool = False
    allow_listed: bool = False
    manual_until: int | None = None
    handled: tuple = field(default_factory=tuple)

    def to_dict(self) -> dict:
        """Small JSON-able form: fields at their default are left out."""
        out = {}
        for name, default in _DEFAULTS:
            v = getattr(self, name)
            if name == "account_id" or v != default:
                out[name] = list(v) if name == "handled" else v
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "LineState":
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        if "handled" in d:
            d["handled"] = tuple(d["handled"])
        return cls(**d)


_DEFAULTS = tuple((f.name, () if f.name == "handled" else f.default) for f in fields(LineState))
_NAMES = frozenset(n for n, _ in _DEFAULTS)


def _with(line: LineState, kw: dict) -> LineState:
    """`dataclasses.replace(line, **kw)` without the generic path (it runs for every actuator input): a copy of
    the fields with `kw` set. LineState has no __post_init__, so the result is the same object state."""
    if not _NAMES.issuperset(kw):
        raise TypeError(f"LineState has no field(s) {sorted(set(kw) - _NAMES)}")
    new = object.__new__(LineState)
    d = new.__dict__
    d.update(line.__dict__)
    d.update(kw)
    return new


def encode_line(line: LineState) -> bytes:
    return orjson.dumps(line.to_dict())


def decode_line(data, account_id: str | None = None) -> LineState:
    """Inverse of `encode_line`; `None`/empty gives a fresh OPEN line for `account_id`."""
    if not data:
        return LineState(account_id=account_id or "")
    d = orjson.loads(data) if isinstance(data, (bytes, bytearray, str)) else dict(data)
    return LineState.from_dict(d)


def _derive(s: LineState, now: int) -> str:
    if s.closed_at is not None:
        return "CLOSED"
    if s.frozen_until is not None and now < s.frozen_until:
        return "FROZEN"
    if s.limited:
        return "LIMITED"
    if s.warned_at is not None:
        return "WARNED"
    if s.reinstated_at is not None:
        return "REINSTATED"
    return "OPEN"


def _key(inp: dict, kind: str) -> str | None:
    if kind == "decision":
        did = inp.get("decision_id")
        return None if did is None else (("s:" if inp.get("mode") == "shadow" else "") + str(did))
    if kind == "cure":
        return f"cure:{inp.get('event_id')}"
    if kind == "dropped":
        return f"drop:{(inp.get('command') or {}).get('command_id')}"
    return f"ctl:{inp.get('control_id')}"


class _Step:
    """Accumulates the outputs of one step."""

    def __init__(self, line: LineState, now: int, cfg: ActuatorConfig):
        self.line, self.now, self.cfg = line, now, cfg
        self.before = line.state
        self.commands: list = []
        self.audit: list = []

    def set(self, **kw):
        self.line = _with(self.line, kw)

    def command(self, decision_id, action, params, policy_version):
        cmd = make_command(decision_id, self.line.account_id, action, params,
                           issued_at=self.now, policy_version=policy_version)
        self.commands.append(cmd)  # audited by the caller once the breaker lets it go (or holds it)

    def note(self, kind, **payload):
        payload.setdefault("account_id", self.line.account_id)
        self.audit.append({"kind": kind, "time": self.now, "payload": payload})


def step(line: LineState | None, inp: dict, now_ms: int, config: ActuatorConfig | None = None):
    """Apply one input to one account's line; return `(line, commands, audit_records)`."""
    cfg = config or ActuatorConfig()
    now = int(now_ms)
    kind = inp.get("kind") or ("decision" if "decision_id" in inp else None)
    account = inp.get("account_id") or (inp.get("command") or {}).get("account_id")
    if line is None:
        line = LineState(account_id=account or "")
    if kind == "decision" and inp.get("action") == "CURE":
        kind = "cure"
    key = _key(inp, kind)
    if key is not None and key in line.handled:
        return line, [], []  # redelivered: already handled, nothing new happens
    s = _Step(line, now, cfg)
    # a freeze with an end lapses by itself
    if s.line.frozen_until is not None and now >= s.line.frozen_until:
        s.set(frozen_until=None)
    handler = _HANDLERS.get(kind)
    if handler is None:
        s.note("override", event="ignored", reason=f"unknown input kind {kind!r}")
    else:
        handler(s, inp)
    handled = s.line.handled
    if key is not None:
        handled = (handled + (key,))[-cfg.handled_memory:]
    s.set(handled=handled, state=_derive(s.line, now))
    return s.line, s.commands, s.audit


def _policy_decision(s: _Step, d: dict):
    line, now, cfg = s.line, s.now, s.cfg
    action, did = d.get("action"), d.get("decision_id")
    base = {"decision_id": did, "action": action, "rule_id": d.get("rule_id"),
            "policy_name": d.get("policy_name"), "policy_version": d.get("policy_version"),
            "mode": d.get("mode", "live"), "reasons": d.get("reasons"), "state_before": line.state}

    def outcome(text, **more):
        s.note("decision", outcome=text, **base, **more)

    if d.get("mode", "live") == "shadow":
        return outcome("shadow: audit only, no command")
    if action not in COMMAND_ACTIONS or action == "REINSTATE":
        return outcome(f"unknown action {action!r}: ignored")
    if line.legal_hold:
        s.note("override", event="suppressed", override="legal_hold", decision_id=did, action=action)
        return outcome("suppressed by legal hold")
    if line.allow_listed:
        s.note("override", event="suppressed", override="allow_list", decision_id=did, action=action)
        return outcome("suppressed: account is allow-listed")
    if line.manual_until is not None and now < line.manual_until:
        s.note("override", event="suppressed", override="manual", decision_id=did, action=action,
               until=line.manual_until)
        return outcome("suppressed: a manual decision is in force")
    if line.closed_at is not None:
        return outcome("line already closed: no command")
    params, version = d.get("params") or {}, d.get("policy_version")
    if action != "REVIEW":
        s.set(cure_streak=0, reinstated_at=None)
    if action == "CLOSE":
        warning_counts = (line.grace_until is not None and line.warned_at is not None
                          and now - line.warned_at <= cfg.warn_valid_ms)
        if d.get("immediate"):
            s.set(closed_at=now)
            s.command(did, "CLOSE", params, version)
            return outcome("closed immediately")
        if not warning_counts:
            grace = int(params.get("grace_ms") or cfg.grace_ms)
            s.set(warned_at=now, grace_until=now + grace)
            s.command(did, "WARN", {"grace_ms": grace, "grace_until": now + grace, "close_pending": True}, version)
            return outcome("close deferred: warned first", grace_until=now + grace)
        if now < line.grace_until:
            return outcome("close pending: grace still running", grace_until=line.grace_until)
        s.set(closed_at=now, grace_until=None)
        s.command(did, "CLOSE", params, version)
        return outcome("closed after the warning grace")
    if action == "WARN":
        if line.grace_until is not None and now < line.grace_until:
            return outcome("already warned: grace still running")
        grace = int(params.get("grace_ms") or cfg.grace_ms)
        s.set(warned_at=now, grace_until=now + grace)
        s.command(did, "WARN", dict(params, grace_ms=grace, grace_until=now + grace), version)
        return outcome("warned")
    if action == "REDUCE_LIMIT":
        s.set(limited=True)
    elif action == "FREEZE":
        until = params.get("until") or now + int(params.get("duration_ms") or cfg.freeze_ms)
        s.set(frozen_until=max(int(until), line.frozen_until or 0))
    s.command(did, action, params, version)
    return outcome("command issued")


def _cure(s: _Step, inp: dict):
    line, cfg = s.line, s.cfg
    cycles = inp.get("cycles")
    streak = int(cycles) if isinstance(cycles, int) and not isinstance(cycles, bool) and cycles > line.cure_streak \
        else line.cure_streak + 1
    s.set(cure_streak=streak)
    event = {"event": "cure", "cure_streak": streak, "cure_id": inp.get("event_id")}
    if line.closed_at is not None:
        return s.note("decision", outcome="cure on a closed line: only a manual REINSTATE reopens it", **event)
    if line.grace_until is not None:
        s.set(grace_until=None)  # cured within the grace: the pending close is off
        event["close_cancelled"] = True
    restricted = line.warned_at is not None or line.limited or line.frozen_until is not None
    if not restricted or streak < cfg.cure_cycles:
        return s.note("decision", outcome="cure counted", **event)
    if line.legal_hold:
        s.note("override", event="suppressed", override="legal_hold", action="REINSTATE")
        return s.note("decision", outcome="cure: reinstatement held by legal hold", **event)
    params = {"restore_limit": line.limited, "unfreeze": line.frozen_until is not None}
    s.set(warned_at=None, grace_until=None, limited=False, frozen_until=None, reinstated_at=s.now)
    s.command(f"cure:{inp.get('event_id')}", "REINSTATE", params, inp.get("policy_version"))
    s.note("decision", outcome="reinstated after cure", **event)


def _flag(name):
    def handler(s: _Step, inp: dict):
        on = bool(inp.get("on", True))
        s.set(**{name: on})
        s.note("override", event="set", override=name, on=on, control_id=inp.get("control_id"),
               by=inp.get("by"), reason=inp.get("reason"))
    return handler


def _manual(s: _Step, inp: dict):
    action, params, cid = inp.get("action"), inp.get("params") or {}, inp.get("control_id")
    if action not in COMMAND_ACTIONS:
        return s.note("override", event="refused", override="manual", control_id=cid,
                      reason=f"unknown action {action!r}; use one of {', '.join(COMMAND_ACTIONS)}")
    now = s.now
    pin = inp.get("pin_ms", s.cfg.manual_pin_ms)
    s.set(manual_until=now + int(pin), cure_streak=0)
    if action == "REINSTATE":
        s.set(closed_at=None, warned_at=None, grace_until=None, limited=False, frozen_until=None, reinstated_at=now)
    elif action == "CLOSE":
        s.set(closed_at=now, grace_until=None)
    elif action == "WARN":
        grace = int(params.get("grace_ms") or s.cfg.grace_ms)
        s.set(warned_at=now, grace_until=now + grace)
    elif action == "REDUCE_LIMIT":
        s.set(limited=True)
    elif action == "FREEZE":
        s.set(frozen_until=params.get("until") or now + int(params.get("duration_ms") or s.cfg.freeze_ms))
    s.note("override", event="manual", override="manual", control_id=cid, action=action,
           by=inp.get("by"), reason=inp.get("reason"), until=now + int(pin))
    s.command(f"manual:{cid}", action, params, inp.get("policy_version", "manual"))


#: An analyst's verdicts on a REVIEW decision (`riskstream control review`, the console's review queue).
REVIEW_VERDICTS = ("fraud", "clear", "hold")


def _review(s: _Step, inp: dict):
    """fraud: a person's CLOSE, carried out at once like a manual CLOSE (beats holds, pins the line, command id
    `review:<control id>`); clear and hold: audited, no command (the line keeps no REVIEW flag to clear)."""
    verdict, cid, line = inp.get("verdict"), inp.get("control_id"), s.line

    def note(outcome, **more):
        s.note("override", event="review", override="review", control_id=cid, decision_id=inp.get("decision_id"),
               verdict=verdict, note=inp.get("note"), by=inp.get("by"), outcome=outcome, **more)

    if verdict not in REVIEW_VERDICTS:
        return note(f"refused: unknown verdict {verdict!r}; use one of {', '.join(REVIEW_VERDICTS)}")
    if verdict != "fraud":
        return note("cleared: no command" if verdict == "clear" else "held for more review: no command")
    if line.closed_at is not None:
        return note("line already closed: no command")
    pin = s.cfg.manual_pin_ms
    s.set(manual_until=s.now + pin, cure_streak=0, closed_at=s.now, grace_until=None)
    note("fraud confirmed: closed", until=s.now + pin, **({"legal_hold": True} if line.legal_hold else {}))
    s.command(f"review:{cid}", "CLOSE", {"reason": "fraud confirmed on review"}, inp.get("policy_version", "review"))


def _dropped(s: _Step, inp: dict):
    cmd = inp.get("command") or {}
    action = cmd.get("action")
    if action == "CLOSE" and s.line.closed_at == cmd.get("issued_at"):
        s.set(closed_at=None)
    elif action == "FREEZE" and s.line.frozen_until is not None:
        s.set(frozen_until=None)
    s.note("breaker", event="dropped", command_id=cmd.get("command_id"), action=action)


_HANDLERS = {
    "decision": _policy_decision,
    "cure": _cure,
    "legal_hold": _flag("legal_hold"),
    "allow_list": _flag("allow_listed"),
    "manual": _manual,
    "review": _review,
    "dropped": _dropped,
}
