"""The console's read model: what the pages show, folded from topic records and audit lines (no I/O here).

`ReadModel.apply(topic, key, value, timestamp_ms, offset)` takes one record of the decisions, commands, control,
dead-letter, actuator-lines changelog, valid or market topic (logical names, `riskstream.core.names`) and updates
counts, a time series, the review queue, the breaker, the versions in force and each account's timeline; an
account's valid events rebuild the point-in-time features of its decisions that carry none. Accounts are kept by their pseudonym
(`riskstream.core.privacy`): no view of the model carries a raw account id. At most `max_accounts` accounts keep
a timeline, line state and valid events, the least recently updated dropped first (docs/console.md says what is kept). `apply_audit` takes the actuator's
hash-chained audit lines (`riskstream.core.audit`) and checks the chain as it grows.

>>> from riskstream.core import names
>>> from riskstream.core.privacy import Pseudonymizer
>>> m = ReadModel(Pseudonymizer(b"doc-secret-123"))
>>> d = {"decision_id": "d1", "account_id": "ACC1", "action": "REVIEW", "rule_id": "spike", "reasons": ["r"],
...      "policy_name": "champ", "policy_version": 2, "model_version": 7, "event_time": 5, "mode": "live",
...      "role": "champion", "pd": 0.3}
>>> m.apply(names.DECISIONS, b"ACC1", orjson.dumps(d), 1_000)
>>> m.apply(names.DECISIONS, b"ACC1", orjson.dumps({**d, "decision_id": "d2", "policy_name": "chall",
...         "role": "challenger", "mode": "shadow", "action": "WARN"}), 1_000)
>>> m.apply(names.COMMANDS, b"ACC1", orjson.dumps({"command_id": "c1", "decision_id": "d1", "account_id": "ACC1",
...         "action": "REVIEW", "issued_at": 5, "params": {}}), 1_100)
>>> o = m.overview(now_ms=2_000)
>>> o["decisions"], o["commands"], o["by_policy"]
(2, 1, {'chall (challenger, shadow)': {'WARN': 1}, 'champ (champion, live)': {'REVIEW': 1}})
>>> o["versions"]["champion"]
{'policy': 'champ', 'version': 2, 'model_version': 7}
>>> [q["decision_id"] for q in m.review_queue()], "ACC1" in orjson.dumps(m.review_queue()).decode()
(['d1'], False)
>>> m.apply(names.CONTROL, b"review", orjson.dumps({"kind": "review", "control_id": "k1", "account_id": "ACC1",
...         "decision_id": "d1", "verdict": "clear", "note": "ok", "by": "ana", "time": 9}), 1_200)
>>> m.review_queue(), m.account(m.pseudonym("ACC1"))["timeline"][-1]["kind"]
([], 'control')
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

import orjson

from riskstream.core import names
from riskstream.core.audit import GENESIS, check_record

__all__ = ["AuditChain", "ReadModel", "Rate"]

#: Time-series bucket (record timestamps, wall clock) and how many buckets the overview keeps.
BUCKET_MS = 5_000
BUCKETS = 72
#: Per-account timeline bound (newest kept): the console is a window on the topics, not an archive.
TIMELINE_MAX = 500
#: Per-account bound on the valid events kept to rebuild point-in-time features (beyond it: no rebuild).
VALID_MAX = 5000
#: How many accounts keep a timeline, line state and valid events (least recently updated dropped first).
MAX_ACCOUNTS = 100_000
#: The review verdicts; "hold" leaves the decision in the queue.
VERDICTS = ("fraud", "clear", "hold")
_BREAKER_PREFIX = b"\x00breaker/"


class Rate:
    """Events per second from a growing total sampled now and then (e.g. the upstream topics' end offsets).

    >>> r = Rate()
    >>> r.sample(0, 100), r.sample(2_000, 300), r.sample(4_000, 300)
    (0.0, 100.0, 0.0)
    """

    def __init__(self):
        self.last: tuple[int, int] | None = None
        self.per_s = 0.0
        self.total = 0

    def sample(self, now_ms: int, total: int) -> float:
        if self.last is not None and now_ms > self.last[0]:
            self.per_s = max(0, total - self.last[1]) * 1000.0 / (now_ms - self.last[0])
        self.last, self.total = (now_ms, total), total
        return self.per_s


class AuditChain:
    """An audit file's chain checked line by line as it grows, with the records of each decision and command.

    >>> from riskstream.core.audit import AuditLog
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a.jsonl")
    >>> log = AuditLog(path); _ = log.append("decision", {"decision_id": "d1"}); _ = log.append("command",
    ...     {"command_id": "c1", "decision_id": "d1"}); log.close()
    >>> chain = AuditChain(path)
    >>> for line in open(path, "rb"): chain.add(line.rstrip(b"\\n"))
    >>> chain.ok, chain.n, [r["seq"] for r in chain.for_decision("d1")]
    (True, 2, [1, 2])
    >>> chain.add(b'{"hash":"y","kind":"command","payload":{},"prev":"x","seq":3}'); chain.ok, chain.problem
    (False, "record 3: 'prev' does not match the hash of record 2")
    """

    def __init__(self, path: str):
        self.path = path
        self.n, self.prev, self.ok, self.problem = 0, GENESIS, True, None
        self._by_decision: dict[str, list] = collections.defaultdict(list)

    def add(self, raw: bytes) -> None:
        if not raw.strip() or not self.ok:
            return
        i = self.n + 1
        rec, problem = check_record(raw, i, self.prev)
        if problem:
            return self._bad(problem)
        self.n, self.prev = i, rec["hash"]
        payload = rec.get("payload") or {}
        did = payload.get("decision_id") or (payload.get("command") or {}).get("decision_id")
        if did:
            self._by_decision[did].append({"seq": rec["seq"], "kind": rec["kind"], "hash": rec["hash"],
                                           "prev": rec["prev"], "time": rec.get("time"),
                                           "event": payload.get("event")})

    def _bad(self, problem: str) -> None:
        self.ok, self.problem = False, problem

    def for_decision(self, decision_id: str) -> list:
        return list(self._by_decision.get(decision_id, ()))


@dataclass
class Account:
    line: dict | None = None
    timeline: list = field(default_factory=list)


def _strip(d: dict, pseudonym: str) -> dict:
    """`d` without its raw account id (the pseudonym instead)."""
    out = {k: v for k, v in d.items() if k != "account_id"}
    out["account"] = pseudonym
    return out


class ReadModel:
    """Everything the pages show, from topic records (see the module docstring)."""

    def __init__(self, pseudonymizer, *, bucket_ms: int = BUCKET_MS, buckets: int = BUCKETS,
                 max_accounts: int = MAX_ACCOUNTS):
        if max_accounts < 1:
            raise ValueError("max_accounts must be at least 1")
        self.pseudonym = pseudonymizer.pseudonym
        self.bucket_ms, self.buckets, self.max_accounts = bucket_ms, buckets, max_accounts
        self.accounts_dropped = 0
        self.decisions = self.commands = self.records = 0
        self.by_policy: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.commands_by_action = collections.Counter()
        self.dead_by_reason = collections.Counter()
        self.control_by_kind = collections.Counter()
        self.series: dict[int, collections.Counter] = {}
        self.versions: dict = {"champion": None, "challengers": {}, "policy_messages": []}
        self.breakers: dict[int, dict] = {}
        self.breaker_log: list = []
        #: pseudonym -> Account, least recently updated first (the bound drops from the front)
        self.accounts: collections.OrderedDict[str, Account] = collections.OrderedDict()
        self._queued = collections.Counter()  # pseudonym -> its decisions in the review queue (kept past the bound)
        self._raw_id: dict[str, str] = {}  # pseudonym -> account id, for the control messages an action publishes
        self._decision: dict[str, dict] = {}  # decision id -> stripped decision (review queue, breaker reasons)
        self._queue: dict[str, dict] = {}     # REVIEW decisions of the live policy waiting for a verdict
        self.verdicts: list = []
        self.events = Rate()
        self.audit: dict[str, AuditChain] = {}
        #: pseudonym -> [(offset, valid event bytes)], least recently updated first, bounded like the accounts
        self._valid: collections.OrderedDict[str, list] = collections.OrderedDict()
        #: accounts whose first valid events were dropped (a bound): no replay; remembered for 4 x max_accounts
        self._valid_cut: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._market_events: list = []
        self._pseudonymizer = pseudonymizer

    # -- folding records ------------------------------------------------------------------------------------------
    def apply(self, topic: str, key: bytes | None, value: bytes | None, timestamp_ms: int, offset: int = 0) -> None:
        """Fold one record of `topic` (a logical name); a record that is not JSON is counted and skipped."""
        self.records += 1
        if topic == names.LINES_CHANGELOG:
            return self._line(key or b"", value)
        if topic == names.VALID:
            return self._valid_event(key, value, offset)
        if topic == names.MARKET:
            if value:
                self._market_events.append((value, timestamp_ms))
            return
        try:
            rec = orjson.loads(value) if value else None
        except orjson.JSONDecodeError:
            return
        if not isinstance(rec, dict):
            return
        if topic == names.DECISIONS:
            self._decision_record(rec, timestamp_ms)
        elif topic == names.COMMANDS:
            self._command(rec, timestamp_ms)
        elif topic == names.CONTROL:
            self._control(rec)
        elif topic == names.DEAD:
            self.dead_by_reason[str(rec.get("reason") or "unknown")] += 1

    def _bucket(self, timestamp_ms: int) -> collections.Counter:
        b = timestamp_ms // self.bucket_ms
        if b not in self.series:
            self.series[b] = collections.Counter()
            for old in sorted(self.series)[:-self.buckets]:
                del self.series[old]
        return self.series[b]

    def _account(self, account_id: str) -> tuple[str, Account]:
        p = self.pseudonym(account_id)
        self._raw_id[p] = account_id
        acc = self.accounts.get(p)
        if acc is None:
            acc = self.accounts[p] = Account()
            self._bound_accounts()
        else:
            self.accounts.move_to_end(p)
        return p, acc

    def _bound_accounts(self) -> None:
        """Drop the least recently updated accounts beyond `max_accounts`: timeline, line state, raw id, valid
        events and their decisions; an account with a decision waiting for review is kept (the verdict needs it)."""
        spared = 0
        while len(self.accounts) > self.max_accounts and spared < len(self.accounts):
            p, acc = next(iter(self.accounts.items()))
            if self._queued[p]:
                self.accounts.move_to_end(p)
                spared += 1
                continue
            del self.accounts[p]
            self._raw_id.pop(p, None)
            if self._valid.pop(p, None) is not None:
                self._cut(p)
            self._forget([i for i in acc.timeline if i["kind"] == "decision"])
            self.accounts_dropped += 1

    def _forget(self, items: list) -> None:
        for i in items:
            if i.get("decision_id") not in self._queue:
                self._decision.pop(i.get("decision_id"), None)

    def _timeline(self, acc: Account, item: dict) -> None:
        acc.timeline.append(item)
        if len(acc.timeline) > TIMELINE_MAX:
            cut = len(acc.timeline) - TIMELINE_MAX
            self._forget([i for i in acc.timeline[:cut] if i["kind"] == "decision"])
            del acc.timeline[:cut]

    def _decision_record(self, d: dict, ts: int) -> None:
        kind = d.get("kind")
        if kind and kind != "cure":  # a control input routed to the actuator (reset, override): on the control topic
            return
        if not d.get("account_id"):
            return
        p, acc = self._account(str(d["account_id"]))
        if kind == "cure":
            self._timeline(acc, {"kind": "cure", "time": d.get("event_time"), "event_id": d.get("event_id")})
            return
        self.decisions += 1
        role = d.get("role") or ("champion" if d.get("mode", "live") == "live" else "challenger")
        mode = d.get("mode", "live")
        self.by_policy[f"{d.get('policy_name')} ({role}, {mode})"][d.get("action")] += 1
        if role == "champion":
            self._bucket(ts)[f"decision/{d.get('action')}"] += 1
            self.versions["champion"] = {"policy": d.get("policy_name"), "version": d.get("policy_version"),
                                         "model_version": d.get("model_version")}
        else:
            self.versions["challengers"][d.get("policy_name")] = {"version": d.get("policy_version"), "mode": mode}
        item = _strip(d, p)
        item["kind"], item["role"] = "decision", role
        item["time"] = d.get("event_time")
        self._decision[d["decision_id"]] = item
        self._timeline(acc, item)
        live_review = role == "champion" and mode == "live" and d.get("action") == "REVIEW"
        if live_review and d["decision_id"] not in self._queue:
            self._queue[d["decision_id"]] = item
            self._queued[p] += 1

    def _command(self, c: dict, ts: int) -> None:
        self.commands += 1
        self.commands_by_action[c.get("action")] += 1
        self._bucket(ts)[f"command/{c.get('action')}"] += 1
        if c.get("account_id"):
            p, acc = self._account(str(c["account_id"]))
            item = _strip(c, p)
            item["kind"], item["time"] = "command", c.get("issued_at")
            self._timeline(acc, item)

    def _control(self, m: dict) -> None:
        kind = str(m.get("kind"))
        self.control_by_kind[kind] += 1
        signed = ", ".join(s.get("key_id", "?") for s in m.get("signatures") or ()) or "unsigned"
        entry = {"kind": kind, "control_id": m.get("control_id"), "time": m.get("time"), "by": m.get("by"),
                 "signed_by": signed}
        if kind == "policy":
            entry["source"] = m.get("source")
            self.versions["policy_messages"] = (self.versions["policy_messages"] + [entry])[-5:]
        if kind in ("breaker_reset", "breaker_trip"):
            entry.update(how=m.get("how"), reason=m.get("reason"), partition=m.get("partition"))
            self.breaker_log = (self.breaker_log + [entry])[-50:]
        if m.get("account_id"):
            p, acc = self._account(str(m["account_id"]))
            item = {"kind": "control", "control": kind, "time": m.get("time"), "by": m.get("by"),
                    "verdict": m.get("verdict"), "note": m.get("note") or m.get("reason"),
                    "action": m.get("action"), "decision_id": m.get("decision_id"), "signed_by": signed,
                    "control_id": m.get("control_id"), "account": p}
            self._timeline(acc, item)
        if kind == "review" and m.get("decision_id"):
            verdict = m.get("verdict")
            self.verdicts = (self.verdicts + [{**entry, "verdict": verdict, "decision_id": m["decision_id"]}])[-200:]
            if verdict in ("fraud", "clear") and m["decision_id"] in self._queue:
                done = self._queue.pop(m["decision_id"])
                self._queued[done["account"]] -= 1
                if not self._queued[done["account"]]:
                    del self._queued[done["account"]]
            elif verdict == "hold" and m["decision_id"] in self._queue:
                self._queue[m["decision_id"]] = {**self._queue[m["decision_id"]], "held_by": m.get("by"),
                                                  "hold_note": m.get("note")}

    def _line(self, key: bytes, value: bytes | None) -> None:
        if key.startswith(_BREAKER_PREFIX):
            try:
                part = int(key[len(_BREAKER_PREFIX):])
            except ValueError:
                return
            if value is None:
                self.breakers.pop(part, None)
                return
            try:
                self.breakers[part] = _json(value)
            except ValueError:
                pass
            return
        if key.startswith(b"\x00") or not key:
            return
        p, acc = self._account(key.decode("utf-8", "replace"))
        try:
            line = _json(value) if value is not None else None
        except ValueError:
            return
        acc.line = {k: v for k, v in line.items() if k not in ("account_id", "handled")} if line else None

    def _valid_event(self, key: bytes | None, value: bytes | None, offset: int) -> None:
        """A validated event of a credit line (valid topic, keyed by entity): kept to rebuild the point-in-time
        features of its decisions."""
        if not key or not value:
            return
        p = self.pseudonym(key.decode("utf-8", "replace"))
        events = self._valid.get(p)
        if events is None:
            events = self._valid[p] = []
            if len(self._valid) > self.max_accounts:
                gone, _ = self._valid.popitem(last=False)
                self._cut(gone)  # should it come back, its first events are missing: no rebuild
        else:
            self._valid.move_to_end(p)
        events.append((offset, value))
        if len(events) > VALID_MAX:
            del events[:len(events) - VALID_MAX]
            self._cut(p)

    def _cut(self, p: str) -> None:
        self._valid_cut[p] = None
        self._valid_cut.move_to_end(p)
        if len(self._valid_cut) > 4 * self.max_accounts:
            self._valid_cut.popitem(last=False)

    def replayed_features(self, pseudonym: str, decisions: list) -> dict:
        """decision id -> (features, hash matches?) rebuilt from the account's valid events, for decisions that
        carry none (pure core functions: `apply_event`, `compute_features`, the market history as of event time).
        Empty when the account's first events are no longer kept."""
        if pseudonym in self._valid_cut or not self._valid.get(pseudonym):
            return {}
        want = {d.get("event_id"): [] for d in decisions}
        for d in decisions:
            want[d.get("event_id")].append(d)
        return replay_features(self._valid[pseudonym], self._market(), want)

    def _market(self):
        from riskstream.core.contracts import Rejected, parse_event
        from riskstream.core.market import apply_market, new_history

        market = new_history()
        for value, ts in self._market_events:
            ev = parse_event(value, now_ms=ts, pseudonymizer=self._pseudonymizer, family="market")
            if not isinstance(ev, Rejected):
                market = apply_market(market, ev)
        return market

    def apply_audit(self, path: str, raw: bytes) -> None:
        """One line of the audit file `path` (lines in file order)."""
        self.audit.setdefault(path, AuditChain(path)).add(raw)

    # -- views ----------------------------------------------------------------------------------------------------
    def raw_account_id(self, pseudonym: str) -> str | None:
        """The account id behind `pseudonym`, for a control message only (never rendered)."""
        return self._raw_id.get(pseudonym)

    def overview(self, now_ms: int) -> dict:
        series = {k: [(b * self.bucket_ms, self.series.get(b, {}).get(k, 0)) for b in self.span(now_ms)]
                  for k in sorted({k for c in self.series.values() for k in c})}
        return {"events_per_s": round(self.events.per_s, 1), "events": self.events.total,
                "decisions": self.decisions, "commands": self.commands,
                "by_policy": {k: dict(v) for k, v in sorted(self.by_policy.items())},
                "commands_by_action": dict(self.commands_by_action.most_common()),
                "dead_letters": sum(self.dead_by_reason.values()),
                "dead_by_reason": dict(self.dead_by_reason.most_common()),
                "control_by_kind": dict(self.control_by_kind), "series": series, "bucket_ms": self.bucket_ms,
                "breaker": self.breaker(), "versions": self.versions, "review_waiting": len(self._queue),
                "accounts": len(self.accounts), "accounts_dropped": self.accounts_dropped,
                "max_accounts": self.max_accounts}

    def span(self, now_ms: int, lead: int = 2) -> range:
        """The buckets the time charts draw: from `lead` buckets before the first one with data (at most
        `buckets` back) to the bucket of `now_ms` (or the last with data, if later); empty with no data."""
        if not self.series:
            return range(0)
        top = max(now_ms // self.bucket_ms, max(self.series))
        return range(max(min(self.series) - lead, top - self.buckets + 1), top + 1)

    def breaker(self) -> dict:
        """Every decisions partition's breaker: tripped or not, the commands it holds (with the decision's rule
        and reasons) and those waiting out their hold."""
        held = []
        for part, b in sorted(self.breakers.items()):
            for c in b.get("held") or ():
                d = self._decision.get(c.get("decision_id"), {})
                held.append({"partition": part, "command_id": c.get("command_id"), "action": c.get("action"),
                             "account": self.pseudonym(str(c.get("account_id", ""))),
                             "rule_id": d.get("rule_id"), "reasons": d.get("reasons") or [],
                             "issued_at": c.get("issued_at")})
        reasons = collections.Counter(r for h in held for r in (h["reasons"][:1] or ["(no decision seen)"]))
        return {"partitions": len(self.breakers),
                "tripped": sorted(p for p, b in self.breakers.items() if b.get("tripped")),
                "trips": sum(int(b.get("trips") or 0) for b in self.breakers.values()),
                "held": held, "held_by_action": dict(collections.Counter(h["action"] for h in held)),
                "held_by_reason": dict(reasons.most_common()),
                "waiting": sum(len(b.get("waiting") or ()) for b in self.breakers.values()),
                "log": list(reversed(self.breaker_log[-20:]))}

    def review_queue(self) -> list:
        """REVIEW decisions of the live policy with no fraud/clear verdict yet, oldest first."""
        return sorted(self._queue.values(), key=lambda d: (d.get("time") or 0, d["decision_id"]))

    def decision(self, decision_id: str) -> dict | None:
        return self._decision.get(decision_id)

    def account(self, pseudonym: str) -> dict | None:
        """Line state, timeline (oldest first) with the audit records of each decision, and the PD series."""
        if pseudonym not in self.accounts:
            return None
        acc = self.accounts[pseudonym]
        timeline = sorted(acc.timeline, key=lambda i: (i.get("time") or 0, _ORDER.get(i["kind"], 9)))
        replayed = self.replayed_features(pseudonym, [i for i in timeline if i["kind"] == "decision"
                                                      and not isinstance(i.get("features"), dict)])
        out = []
        for item in timeline:
            item = dict(item)
            if item["kind"] == "decision":
                item["features_checked"] = decision_features(item) or replayed.get(item["decision_id"])
                item["audit"] = [{**r, "file": path, "chain_ok": chain.ok, "chain_records": chain.n}
                                 for path, chain in self.audit.items() for r in chain.for_decision(item["decision_id"])]
            out.append(item)
        pd = sorted({i.get("event_id") or i["decision_id"]: (i["time"], i["pd"]) for i in out
                     if i["kind"] == "decision" and i.get("pd") is not None}.values())  # one point an event
        pd_by_role = {}
        for role in ("champion", "challenger"):  # one line a role: their PDs are different models' scores
            pts = sorted({i.get("event_id") or i["decision_id"]: (i["time"], i["pd"]) for i in out
                          if i["kind"] == "decision" and i.get("pd") is not None and i.get("role") == role}.values())
            if pts:
                pd_by_role[role] = pts
        return {"account": pseudonym, "line": acc.line, "timeline": out, "pd": pd, "pd_by_role": pd_by_role,
                "audit_files": {p: {"ok": c.ok, "records": c.n, "problem": c.problem} for p, c in self.audit.items()}}


def decision_features(d: dict):
    """The point-in-time features a decision carries (REVIEW decisions do, zeros left out) and whether they hash to
    its `feature_hash`; None when it carries none.

    >>> from riskstream.core.account.features import FEATURE_NAMES, feature_hash
    >>> full = {n: 0.0 for n in FEATURE_NAMES}; full["utilisation"] = 0.9
    >>> decision_features({"features": {"utilisation": 0.9}, "feature_hash": feature_hash(full)})
    ({'utilisation': 0.9}, True)
    >>> decision_features({"features": {"utilisation": 0.8}, "feature_hash": feature_hash(full)})[1]
    False
    """
    from riskstream.core.account.features import FEATURE_NAMES, feature_hash

    feats = d.get("features")
    if not isinstance(feats, dict):
        return None
    full = {n: float(feats.get(n, 0.0)) for n in FEATURE_NAMES}
    return feats, feature_hash(full) == d.get("feature_hash")


def replay_features(events: list, market, want: dict) -> dict:
    """Fold one account's valid events `[(offset, bytes)]` (offset order) through the core's `apply_event` and, at
    each event in `want` (event id -> its decisions), compute the features as the account step does; return
    decision id -> (features without zeros, hash equal to the decision's `feature_hash`?, how they were got)."""
    from riskstream.core.account.features import compute_features, feature_hash
    from riskstream.core.account.state import apply_event

    state, out = None, {}
    for offset, raw in sorted(events, key=lambda e: e[0]):
        try:
            event = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        state, outcome = apply_event(state, event, offset=offset)
        if outcome != "applied" or event.get("event_id") not in want:
            continue
        features = compute_features(state, as_of=state.watermark, market=market)
        digest = feature_hash(features)
        for d in want[event["event_id"]]:
            out[d["decision_id"]] = ({k: v for k, v in features.items() if v}, digest == d.get("feature_hash"),
                                     "rebuilt from the valid events")
    return out


_ORDER = {"decision": 0, "command": 1, "control": 2, "cure": 3}


def _json(value: bytes):
    """A changelog value: JSON bytes, or (Faust's json codec around raw bytes) a JSON string of JSON."""
    v = orjson.loads(value)
    if isinstance(v, str):
        v = orjson.loads(v)
    return v
