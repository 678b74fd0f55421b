"""Mass-close circuit breaker: stop a flood of CLOSE/FREEZE commands until a person looks.

It counts CLOSE and FREEZE commands in a sliding window (one minute by default). When the count exceeds
`max_count`, or the share of active accounts exceeds `max_share` (once at least `min_count_for_share`
commands are in the window, so one close among three accounts does not trip it), the breaker trips:
that command and every later CLOSE/FREEZE is held, not sent. Other commands still pass. Only an explicit
`reset("release")` sends the held commands, or `reset("drop")` discards them (the stream layer then feeds
each dropped command back to its line as `{"kind": "dropped", "command": ...}` to undo its effect).

>>> b = MassCloseBreaker(max_share=0.5, max_count=2)
>>> close = lambda i: {"command_id": f"c{i}", "account_id": f"a{i}", "action": "CLOSE"}
>>> sent, audit = b.offer([close(1), close(2), close(3)], now_ms=0, active_accounts=1000)
>>> [c["command_id"] for c in sent], b.tripped, len(b.held)
(['c1', 'c2'], True, 1)
>>> released, dropped, audit = b.reset("release", now_ms=5, by="ops")
>>> [c["command_id"] for c in released], b.tripped
(['c3'], False)
"""

from __future__ import annotations

from riskstream.core.actuator.commands import BREAKER_ACTIONS


class MassCloseBreaker:
    def __init__(self, max_share: float, max_count: int, window_ms: int = 60_000, *, min_count_for_share: int = 10):
        if not 0 < max_share <= 1:
            raise ValueError("max_share must be in (0, 1], e.g. 0.01 for 1 % of active accounts")
        if max_count < 1:
            raise ValueError("max_count must be at least 1")
        self.max_share, self.max_count, self.window_ms = float(max_share), int(max_count), int(window_ms)
        self.min_count_for_share = int(min_count_for_share)
        self.tripped = False
        self.tripped_at: int | None = None
        self.trips = 0
        self.window: list = []   # issue times of counted CLOSE/FREEZE commands, oldest first
        self.held: list = []     # commands kept back while tripped, in arrival order
        self.resets: list = []   # ids of the resets already applied (a reset reaches every partition once)

    def _prune(self, now: int) -> None:
        lo = now - self.window_ms
        i = 0
        while i < len(self.window) and self.window[i] <= lo:
            i += 1
        if i:
            del self.window[:i]

    def offer(self, commands, now_ms: int, active_accounts: int):
        """Return `(commands_to_send, audit_records)`; CLOSE/FREEZE beyond the limits are held."""
        now = int(now_ms)
        send, audit = [], []
        for cmd in commands:
            if cmd.get("action") not in BREAKER_ACTIONS:
                send.append(cmd)
                continue
            self._prune(now)
            if not self.tripped:
                n = len(self.window) + 1
                share = n / active_accounts if active_accounts > 0 else 0.0
                over_count = n > self.max_count
                over_share = n >= self.min_count_for_share and share > self.max_share
                if not (over_count or over_share):
                    self.window.append(now)
                    send.append(cmd)
                    continue
                self.tripped, self.tripped_at = True, now
                self.trips += 1
                audit.append({"kind": "breaker", "time": now, "payload": {
                    "event": "tripped", "count_in_window": n, "window_ms": self.window_ms,
                    "active_accounts": active_accounts, "share": round(share, 6),
                    "max_count": self.max_count, "max_share": self.max_share,
                    "cause": "count" if over_count else "share"}})
            if any(h.get("command_id") == cmd.get("command_id") for h in self.held):
                continue  # redelivered while held
            self.held.append(cmd)
            audit.append({"kind": "breaker", "time": now, "payload": {
                "event": "held", "command_id": cmd.get("command_id"), "account_id": cmd.get("account_id"),
                "action": cmd.get("action")}})
        return send, audit

    def trip(self, now_ms: int, *, cause: str, control_id: str) -> list:
        """Trip from outside (another partition's breaker tripped); applied once per `control_id`."""
        if control_id in self.resets or self.tripped:
            self.resets = (self.resets + [control_id])[-32:] if control_id not in self.resets else self.resets
            return []
        self.resets = (self.resets + [control_id])[-32:]
        self.tripped, self.tripped_at = True, int(now_ms)
        self.trips += 1
        return [{"kind": "breaker", "time": int(now_ms), "payload": {
            "event": "tripped", "cause": cause, "control_id": control_id, "max_count": self.max_count,
            "max_share": self.max_share}}]

    def reset(self, how: str, now_ms: int, by: str | None = None, reason: str | None = None,
              reset_id: str | None = None):
        """Close the breaker. `how="release"` returns the held commands to send, `"drop"` discards them.

        Returns `(released, dropped, audit_records)`; a reset whose `reset_id` was applied before does nothing.
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
        self.window = []
        audit = [{"kind": "breaker", "time": int(now_ms), "payload": {
            "event": "reset", "how": how, "was_tripped": was, "commands": len(held),
            "command_ids": [c.get("command_id") for c in held], "by": by, "reason": reason}}]
        return (held, [], audit) if how == "release" else ([], held, audit)

    def encode(self) -> dict:
        return {"max_share": self.max_share, "max_count": self.max_count, "window_ms": self.window_ms,
                "min_count_for_share": self.min_count_for_share, "tripped": self.tripped,
                "tripped_at": self.tripped_at, "trips": self.trips, "window": list(self.window),
                "held": list(self.held), "resets": list(self.resets)}

    @classmethod
    def decode(cls, d: dict) -> "MassCloseBreaker":
        b = cls(d["max_share"], d["max_count"], d.get("window_ms", 60_000),
                min_count_for_share=d.get("min_count_for_share", 10))
        b.tripped, b.tripped_at, b.trips = bool(d.get("tripped")), d.get("tripped_at"), int(d.get("trips", 0))
        b.window, b.held = list(d.get("window") or []), list(d.get("held") or [])
        b.resets = list(d.get("resets") or [])
        return b
