"""The replay file formats (docs/files.md): events and truth, both JSON lines.

* **events**: one upstream record per line, ``{"topic": "<upstream topic>", "event": {<the event as published>}}``,
  in publication order;
* **truth**: one entity per line, ``{"entity": "<account or facility id>", "outcome": "default" | "good" | "fraud",
  "time": <epoch ms or null>}`` (extra keys such as ``"synthetic": true`` are allowed and ignored).

>>> import io
>>> buf = io.BytesIO()
>>> write_truth(buf, [{"entity": "A1", "outcome": "default", "time": 5}])
1
>>> _ = buf.seek(0)
>>> read_truth(buf)["A1"]
{'entity': 'A1', 'outcome': 'default', 'time': 5}
"""

from __future__ import annotations

from typing import IO, Iterable, Iterator

import orjson

from riskstream.core.outcomes import OUTCOMES

UPSTREAM_TOPICS = ("riskstream.events.behaviour", "riskstream.events.repayment", "riskstream.events.credit",
                   "riskstream.events.market", "riskstream.events.project")


class FileFormatError(ValueError):
    """A line of an events or truth file that does not follow docs/files.md (names the file and line)."""


def entity_key(event: dict) -> str:
    """The Kafka key an upstream producer uses: account id, facility id, or ``indicator|segment``."""
    key = event.get("account_id") or event.get("facility_id")
    if key:
        return str(key)
    return f"{event.get('indicator')}|{event.get('segment')}"


def event_line(topic: str, event: dict) -> bytes:
    return orjson.dumps({"topic": topic, "event": event}) + b"\n"


def write_events(fh: IO[bytes], records: Iterable[tuple[str, dict]]) -> int:
    n = 0
    for topic, event in records:
        fh.write(event_line(topic, event))
        n += 1
    return n


def _json_lines(fh: IO[bytes], name: str) -> Iterator[tuple[int, object]]:
    """(line number, decoded JSON) per non-blank line; a line that is not JSON raises FileFormatError."""
    for no, line in enumerate(fh, 1):
        if not line.strip():
            continue
        try:
            yield no, orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise FileFormatError(f"{name}:{no}: not JSON ({exc})") from None


def iter_events(fh: IO[bytes], name: str = "events") -> Iterator[tuple[str, dict]]:
    """(topic, event dict) per line; blank lines are skipped; anything else malformed raises FileFormatError."""
    for no, rec in _json_lines(fh, name):
        if not isinstance(rec, dict) or not isinstance(rec.get("topic"), str) or not isinstance(rec.get("event"), dict):
            raise FileFormatError(f'{name}:{no}: expected {{"topic": "<upstream topic>", "event": {{...}}}}')
        yield rec["topic"], rec["event"]


def write_truth(fh: IO[bytes], records: Iterable[dict]) -> int:
    n = 0
    for r in records:
        fh.write(orjson.dumps(r) + b"\n")
        n += 1
    return n


def read_truth(fh: IO[bytes], name: str = "truth") -> dict[str, dict]:
    """entity -> truth record; checks the outcome vocabulary and that defaults and frauds carry a time."""
    out: dict[str, dict] = {}
    for no, rec in _json_lines(fh, name):
        if not isinstance(rec, dict) or not isinstance(rec.get("entity"), str):
            raise FileFormatError(f'{name}:{no}: expected {{"entity": ..., "outcome": ..., "time": ...}}')
        if rec.get("outcome") not in OUTCOMES:
            raise FileFormatError(f"{name}:{no}: outcome must be one of {', '.join(OUTCOMES)}, "
                                  f"got {rec.get('outcome')!r}")
        t = rec.get("time")
        if rec["outcome"] != "good" and (not isinstance(t, int) or isinstance(t, bool)):
            raise FileFormatError(f"{name}:{no}: a {rec['outcome']} needs its time in epoch ms")
        out[rec["entity"]] = rec
    return out
