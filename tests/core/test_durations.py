"""The one duration grammar: examples, a format/parse round trip, and junk refused (hypothesis)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from riskstream.core.durations import DAY, HOUR, MINUTE, SECOND, UNITS, WEEK, format_duration, parse_duration
from riskstream.core.errors import FORMAT, OperatorError

# The grammar, written independently of the implementation: parts "<digits><unit>", units largest first, each once.
_ORDER = list(UNITS)
_GRAMMAR = re.compile(r"\s*(?:[0-9]+\s*(?:ms|w|d|h|m|s)\s*)+")


def reference(text: str) -> int | None:
    """Milliseconds of ``text`` per the grammar, or None if it is not a duration."""
    if not _GRAMMAR.fullmatch(text):
        return None
    parts = re.findall(r"([0-9]+)\s*(ms|w|d|h|m|s)", text)
    ranks = [_ORDER.index(u) for _, u in parts]
    if ranks != sorted(set(ranks)):
        return None
    return sum(int(n) * UNITS[u] for n, u in parts)


@pytest.mark.parametrize("text, ms", [
    ("90s", 90 * SECOND), ("15m", 15 * MINUTE), ("24h", DAY), ("7d", WEEK), ("1w", WEEK), ("2w", 2 * WEEK),
    ("1d12h", 36 * HOUR), ("1d 12h", 36 * HOUR), (" 5 m ", 5 * MINUTE), ("250ms", 250), ("1m30s", 90 * SECOND),
    ("0s", 0), (1500, 1500), (0, 0),
])
def test_examples(text, ms):
    assert parse_duration(text) == ms


@pytest.mark.parametrize("junk", [
    "", " ", "soon", "1 hour", "1.5h", "-5m", "5", "h", "1h1h", "12h1d", "30s1m", "5mm", "1d12", "١h", True, None,
    1.5, -1, [1], "1e3ms",
])
def test_junk_is_refused_in_the_operator_format(junk):
    with pytest.raises(OperatorError) as err:
        parse_duration(junk, file="f.yaml", field="a.b")
    assert FORMAT.fullmatch(str(err.value)) and str(err.value).startswith("f.yaml: a.b: ")


def test_positive_refuses_zero():
    assert parse_duration("0s") == 0
    with pytest.raises(OperatorError, match="above zero"):
        parse_duration("0s", positive=True)


@given(st.integers(min_value=0, max_value=10 * 365 * DAY))
def test_format_then_parse_is_the_identity(ms):
    text = format_duration(ms)
    assert parse_duration(text) == ms
    assert reference(text) == ms


@given(st.lists(st.integers(0, 10_000), min_size=len(UNITS), max_size=len(UNITS)),
       st.lists(st.booleans(), min_size=len(UNITS), max_size=len(UNITS)), st.sampled_from(["", " "]))
def test_parse_then_format_is_canonical(counts, used, sep):
    parts = [f"{n}{u}" for n, u, keep in zip(counts, UNITS, used) if keep]
    if not parts:
        return
    text = sep.join(parts)
    ms = parse_duration(text)
    assert ms == sum(n * UNITS[u] for n, u, keep in zip(counts, UNITS, used) if keep)
    assert parse_duration(format_duration(ms)) == ms
    assert format_duration(ms) == format_duration(parse_duration(format_duration(ms)))


@given(st.text(alphabet="0123456789 wdhms.-xk1", max_size=12) | st.text(max_size=8))
def test_anything_outside_the_grammar_is_refused(text):
    want = reference(text)
    if want is None:
        with pytest.raises(OperatorError):
            parse_duration(text)
    else:
        assert parse_duration(text) == want
