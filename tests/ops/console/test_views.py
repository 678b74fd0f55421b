"""The console's charts: time bars span the buckets given, one colour an action and a policy role in every chart."""

from __future__ import annotations

import re

from riskstream.ops.console import views


def fills(svg: str) -> dict:
    return {name: colour for colour, name in re.findall(r'fill="(#\w+)" data-series="([^"]+)"', svg)}


def test_time_bars_stack_each_bucket_and_keep_one_colour_an_action():
    dec = views.time_bars({"decision/WARN": [(0, 2), (5000, 0)], "decision/CLOSE": [(0, 1), (5000, 4)]},
                          bucket_ms=5000)
    cmd = views.time_bars({"command/REINSTATE": [(0, 1), (5000, 1)], "command/CLOSE": [(0, 1), (5000, 4)]},
                          bucket_ms=5000)
    assert fills(dec)["decision/CLOSE"] == fills(cmd)["command/CLOSE"] == views.ACTION_COLOURS["CLOSE"]
    assert len(set(fills(dec).values()) | set(fills(cmd).values())) == 3
    assert re.findall(r'data-t="(\d+)" data-value="(\d+)"', dec) == [("0", "2"), ("0", "1"), ("5000", "4")]
    assert "no decisions yet" in views.time_bars({}, bucket_ms=5000, empty="no decisions yet")


def test_time_ticks_are_round_clock_times_inside_the_span():
    ticks = views._time_ticks(61_000, 361_000)
    assert 2 <= len(ticks) <= 6 and all(61_000 <= t <= 361_000 and t % 60_000 == 0 for t in ticks)


def test_overview_policies_chart_colours_by_role_champion_first():
    colours = views.role_colours(["c (challenger, shadow)", "a (champion, live)", "b (challenger, shadow)"])
    assert colours["a (champion, live)"] == views.ROLE_COLOURS["champion"]
    assert colours["c (challenger, shadow)"] != colours["a (champion, live)"]
    assert colours["b (challenger, shadow)"] in views.ROLE_COLOURS["challenger"]
    svg = views.bar_chart({"a (champion, live)": {"WARN": 1}}, colours=colours)
    assert f'fill="{views.ROLE_COLOURS["champion"]}" data-group="a (champion, live)"' in svg


def test_a_line_chart_of_one_point_shows_the_point_its_value_and_its_time_centred():
    svg = views.line_chart({"PD": [(1_700_000_000_000, 0.137)]}, x_time=True, y_label="PD", totals=False)
    cx = float(re.search(r'<circle cx="([\d.]+)"', svg).group(1))
    assert 'data-value="0.137"' in svg and ">PD 0.137</text>" in svg
    assert svg.count(views._t(1_700_000_000_000)) == 1 and abs(cx - (62 + (760 - 62 - 16) / 2)) < 1
    two = views.line_chart({"PD": [(0, 0.1), (5000, 0.2)]}, x_time=True, totals=False)
    assert "<circle" not in two and "polyline" in two


def test_the_pd_chart_colours_its_lines_by_policy_role():
    a = {"account": "p1", "line": None, "timeline": [], "pd": [(0, 0.1)], "audit_files": {},
         "pd_by_role": {"champion": [(0, 0.1), (5000, 0.2)], "challenger": [(2000, 0.7)]}}
    page = views.account_page(a, user=None, csrf="c")
    assert f'stroke="{views.ROLE_COLOURS["champion"]}" stroke-width="1.6" data-series="PD (champion)"' in page
    assert f'fill="{views.ROLE_COLOURS["challenger"][0]}" data-series="PD (challenger)"' in page
