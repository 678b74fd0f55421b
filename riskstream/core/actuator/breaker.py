"""Mass-close circuit breaker: no CLOSE/FREEZE leaves until one window has shown it is not part of a flood.

It counts the CLOSE and FREEZE commands the line state machine makes (intents, not sends) in a sliding window of
event time (one minute by default). A policy command waits `hold_ms` (by default one window) before it leaves:
it is released once the breaker's clock (the latest event time it has seen: decisions and ticks, never a wall
clock or a batch boundary) reaches its count time + `hold_ms`, if the breaker has not tripped by then. When the
count exceeds `max_count`, or the share of active accounts exceeds `max_share` (once at least
`min_count_for_share` commands are in the window, so one close among three accounts does not trip it), the
breaker trips: every command still waiting, that one and every later CLOSE/FREEZE are held, not sent. With
`hold_ms >= window_ms` every command counted in the tripping window is still waiting, so none of a flood that
trips the breaker has left: a poison policy (or model) that would close everyone sends 0 CLOSE. Other commands
pass at once; a person's command (`wait=False`) is counted and leaves at once while within the limits. Only an
explicit `reset("release")` sends the held commands, or `reset("drop")` discards them (the stream layer then
feeds each dropped command back to its line as `{"kind": "dropped", "command": ...}` to undo its effect).
`hold_ms=0` is the old pass-through: up to `max_count` leave before it trips.

>>> b = MassCloseBreaker(max_share=0.5, max_count=2, window_ms=60_000)
>>> close = lambda i: {"command_id": f"c{i}", "account_id": f"a{i}", "action": "CLOSE"}
>>> b.offer([close(1), close(2)], now_ms=0, active_accounts=1000)[0]          # within the limits: they wait
[]
>>> [c["command_id"] for c in b.advance(60_000)[0]]                         # a quiet window: they leave
['c1', 'c2']
>>> sent, audit = b.offer([close(3), close(4), close(5)], now_ms=70_000, active_accounts=1000)
>>> sent, b.tripped, [c["command_id"] for c in b.held]                      # a flood: none of it leaves
([], True, ['c3', 'c4', 'c5'])
>>> released, dropped, audit = b.reset("release", now_ms=75_000, by="ops")
>>> [c["command_id"] for c in released], b.tripped
(['c3', 'c4', 'c5'], False)
"""

from __future__ import annotations

import bisect

from riskstream.core.actuator.commands import BREAKER_ACTIONS


class MassCloseBreaker:
    def __init__(self, max_share: float, max_count: int, window_ms: int = 60_000, *, min_count_for_share: int = 10,
                 hold_ms: int | None = None):
        if not 0 < max_share <= 1:
            raise ValueError("max_share must be in (0, 1], e.g. 0.01 for 1 % of active accounts")
        if max_count < 1:
            raise ValueError("max_count must be at least 1")
        if hold_ms is not None and hold_ms < 0:
            raise ValueError("hold_ms must be 0 (no wait) or more, e.g. 60000 for one minute")
        self.max_share, self.max_count, self.window_ms = float(max_share), int(max_count), int(window_ms)
        self.min_count_for_share = int(min_count_for_share)
        self.hold_ms = self.window_ms if hold_ms is None else int(hold_ms)
        self.tripped = False
        self.tripped_at: int | None = None
        self.trips = 0
        self.clock: int | None = None  # latest event time seen: the window and the waits run on it, never backwards
        self.window: list = []   # count times of counted CLOSE/FREEZE commands, oldest first
        self.waiting: list = []  # [release time, command] not sent yet, in count order (so release times ascend)
        self.held: list = []     # commands kept back while tripped, in arrival order
        self.resets: list = []   # ids of the resets already applied (a reset reaches every partition once)

    def _tick(self, now_ms: int | None) -> int:
        if now_ms is not None and (self.clock is None or int(now_ms) > self.clock):
            self.clock = int(now_ms)
        if self.clock is None:
            return 0
        lo = self.clock - self.window_ms
        i = bisect.bisect_right(self.window, lo)
        if i:
            del self.window[:i]
        return self.clock

    def _due(self) -> list:
        """The waiting commands whose wait is over (none while tripped: a trip moves them all to `held`)."""
        if self.clock is None:
            return []
        i = 0
        while i < len(self.waiting) and self.waiting[i][0] <= self.clock:
            i += 1
        due, self.waiting[:i] = [c for _, c in self.waiting[:i]], []
        return due

    def advance(self, now_ms: int):
        """Move the clock to `now_ms` (a later decision or a tick); return `(commands_to_send, audit_records)`."""
        self._tick(now_ms)
        return self._due(), []

    def _known(self, cid) -> bool:
        return any(h.get("command_id") == cid for h in self.held) or any(
            c.get("command_id") == cid for _, c in self.waiting)

    def _hold(self, cmd: dict, now: int) -> dict:
        self.held.append(cmd)
        return {"kind": "breaker", "time": now, "payload": {
            "event": "held", "command_id": cmd.get("command_id"), "account_id": cmd.get("account_id"),
            "action": cmd.get("action")}}

    def offer(self, commands, now_ms: int | None, active_accounts: int, *, wait: bool = True):
        """Return `(commands_to_send, audit_records)`: the waiting commands now due, then the other commands.

        CLOSE/FREEZE wait `hold_ms` (or leave at once with `wait=False`, a person's command) and are held once the
        limits are exceeded. `now_ms` is an event time; `None` (an input stamped by a wall clock, such as a control
        message) leaves the clock where it is."""
        now = self._tick(now_ms)
        send, audit = self._due(), []
        for cmd in commands:
            if cmd.get("action") not in BREAKER_ACTIONS:
                send.append(cmd)
                continue
            if self._known(cmd.get("command_id")):
                continue  # redelivered while it waits or is held
            if not self.tripped:
                n = len(self.window) + 1
                share = n / active_accounts if active_accounts > 0 else 0.0
                over_count = n > self.max_count
                over_share = n >= self.min_count_for_share and share > self.max_share
                if not (over_count or over_share):
                    self.window.append(now)
                    if wait and self.hold_ms > 0:
                        self.waiting.append([now + self.hold_ms, cmd])
                    else:
                        send.append(cmd)
                    continue
                audit.extend(self._trip(now, {
                    "count_in_window": n, "window_ms": self.window_ms, "active_accounts": active_accounts,
                    "share": round(share, 6), "cause": "count" if over_count else "share"}))
            audit.append(self._hold(cmd, now))
        return send, audit

    def _trip(self, now: int, detail: dict) -> list:
        self.tripped, self.tripped_at = True, now
        self.trips += 1
        audit = [{"kind": "breaker", "time": now, "payload": {
            "event": "tripped", **detail, "max_count": self.max_count, "max_share": self.max_share,
            "waiting": len(self.waiting)}}]
        waiting, self.waiting = self.waiting, []
        audit.extend(self._hold(c, now) for _, c in waiting)  # they were in the flood's window: none leaves
        return audit

    def trip(self, now_ms: int, *, cause: str, control_id: str) -> list:
        """Trip from outside (another partition's breaker tripped); applied once per `control_id`.

        `now_ms` is the tripping partition's event time: it does not move this partition's clock."""
        if control_id in self.resets or self.tripped:
            self.resets = (self.resets + [control_id])[-32:] if control_id not in self.resets else self.resets
            return []
        self.resets = (self.resets + [control_id])[-32:]
        return self._trip(int(now_ms), {"cause": cause, "control_id": control_id})

    def reset(self, how: str, now_ms: int, by: str | None = None, reason: str | None = None,
              reset_id: str | None = None):
        """Close the breaker. `how="release"` returns the held commands to send, `"drop"` discards them.

        Returns `(released, dropped, audit_records)`; a reset whose `reset_id` was applied before does nothing.
        Commands still waiting (none after a trip) keep waiting.
        """
        if how not in ("release", "drop"):
            raise ValueError(f"unknown reset {how!r}: use 'release' or 'drop'")
        if reset_id is not None:
            if reset_id in self.resets:
                return [], [], []
            self.resets = (self.resets + [reset_id])[-32:]
        held, self.held = self.held, []
        was = self.tripped
        self.tripped, self.tripped_at = False, None
        self.window = [due - self.hold_ms for due, _ in self.waiting]  # the held ones no longer count
        audit = [{"kind": "breaker", "time": int(now_ms), "payload": {
            "event": "reset", "how": how, "was_tripped": was, "commands": len(held),
            "command_ids": [c.get("command_id") for c in held], "by": by, "reason": reason}}]
        return (held, [], audit) if how == "release" else ([], held, audit)

    def encode(self) -> dict:
        return {"max_share": self.max_share, "max_count": self.max_count, "window_ms": self.window_ms,
                "min_count_for_share": self.min_count_for_share, "hold_ms": self.hold_ms, "tripped": self.tripped,
                "tripped_at": self.tripped_at, "trips": self.trips, "clock": self.clock, "window": list(self.window),
                "waiting": [list(w) for w in self.waiting], "held": list(self.held), "resets": list(self.resets)}

    @classmethod
    def decode(cls, d: dict) -> "MassCloseBreaker":
        # a breaker saved before waits existed has none waiting: it waits one window from now on
        b = cls(d["max_share"], d["max_count"], d.get("window_ms", 60_000),
                min_count_for_share=d.get("min_count_for_share", 10), hold_ms=d.get("hold_ms"))
        b.tripped, b.tripped_at, b.trips = bool(d.get("tripped")), d.get("tripped_at"), int(d.get("trips", 0))
        b.clock = d.get("clock")
        b.window, b.held = list(d.get("window") or []), list(d.get("held") or [])
        b.waiting = [list(w) for w in d.get("waiting") or []]
        b.resets = list(d.get("resets") or [])
        return b
