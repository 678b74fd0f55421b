"""HTML of the console's pages and their inline SVG charts, from read-model views (pure functions, no web framework).

Every value is escaped (`html.escape`); account ids never reach a page (the model carries pseudonyms), except the
one the signed-in user typed, shown back to them as `entered`.

>>> svg = line_chart({"decision/WARN": [(0, 1), (5000, 3)]}, title="t")
>>> svg.startswith("<svg") and "polyline" in svg and "decision/WARN" in svg
True
>>> "<h1><script>" in page("<script>", "", user=None, csrf="")  # text is escaped, bodies are built escaped
False
"""

from __future__ import annotations

import datetime as _dt
import html
import zlib

__all__ = ["account_page", "backtest_page", "breaker_page", "line_chart", "login_page", "overview_fragments",
           "overview_page", "page", "review_page", "bar_chart", "time_bars", "action_colour",
           "role_colours"]

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")
#: One colour an action in every chart (an action not listed takes a stable one from the rest of the palette).
ACTION_COLOURS = {"WARN": "#e6b400", "REVIEW": "#8e5ea2", "REDUCE_LIMIT": "#ff7f0e", "FREEZE": "#17becf",
                  "CLOSE": "#d62728", "REINSTATE": "#2ca02c"}
_OTHER = ("#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#1f77b4", "#393b79")
#: One colour a policy role in every chart: the champion dark blue, challengers light blue (shades when several).
ROLE_COLOURS = {"champion": "#1d4e89", "challenger": ("#6baed6", "#9ecae1", "#3d8fc6", "#c6dbef")}
NAV = (("/", "Overview"), ("/account", "Account"), ("/review", "Review queue"), ("/breaker", "Breaker"),
       ("/backtest", "Backtest"))

e = html.escape


def _t(ms) -> str:
    """A time in ms as UTC text."""
    if ms is None:
        return "-"
    try:
        return _dt.datetime.fromtimestamp(int(ms) / 1000, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    except (ValueError, OverflowError, OSError):
        return str(ms)


def _n(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.4f}".rstrip("0").rstrip(".") if abs(v) < 1 else f"{v:,.1f}"
    return f"{v:,}" if isinstance(v, int) else e(str(v))


# -- charts -----------------------------------------------------------------------------------------------------------
def action_colour(name: str) -> str:
    """The colour of an action, or of a series named `kind/ACTION`, the same in every chart.

    >>> action_colour("CLOSE") == action_colour("command/CLOSE") == action_colour("decision/CLOSE")
    True
    """
    action = name.rsplit("/", 1)[-1]
    if action in ACTION_COLOURS:
        return ACTION_COLOURS[action]
    return _OTHER[zlib.crc32(action.encode()) % len(_OTHER)]


def role_colours(groups) -> dict:
    """Group name -> colour for groups named `policy (role, mode)`: the champion's colour, or a challenger shade.

    >>> role_colours(["a (challenger, shadow)", "b (champion, live)"]) == {
    ...     "a (challenger, shadow)": ROLE_COLOURS["challenger"][0], "b (champion, live)": ROLE_COLOURS["champion"]}
    True
    """
    out, shades = {}, iter(ROLE_COLOURS["challenger"] * 8)
    for g in groups:
        out[g] = ROLE_COLOURS["champion"] if "(champion" in g else next(shades)
    return out


_STEPS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)


def _time_ticks(t0: int, t1: int, most: int = 6) -> list:
    """Round clock times (ms) between t0 and t1, at most `most` of them, on a 1-2-5-10-15-30 s/min/h step.

    >>> [_t(t)[11:] for t in _time_ticks(1_000_003_000, 1_000_180_000)]
    ['13:47:00', '13:47:30', '13:48:00', '13:48:30', '13:49:00', '13:49:30']
    """
    span = max(1, t1 - t0)
    step = next((s * 1000 for s in _STEPS_S if span / (s * 1000) <= most), 86_400_000 * max(1, span // 86_400_000))
    first = -(-t0 // step) * step
    return list(range(first, t1 + 1, step))


def time_bars(series: dict, *, bucket_ms: int, width: int = 620, height: int = 220, title: str = "",
              chart_id: str = "", empty: str = "no data yet") -> str:
    """Stacked bars over clock time: one bar a bucket, one segment an action (`action_colour`), x from the first
    bucket of the series to the last, round clock-time ticks; the legend gives each series' total.

    `series`: name -> [(bucket start ms, count)], all on the same buckets.

    >>> svg = time_bars({"decision/WARN": [(0, 1), (5000, 3)], "decision/CLOSE": [(0, 0), (5000, 1)]},
    ...                 bucket_ms=5000, chart_id="c")
    >>> svg.count('data-series="decision/WARN"'), 'data-value="3"' in svg, "decision/CLOSE (1)" in svg
    (2, True, True)
    """
    names = sorted(series, key=lambda n: (list(ACTION_COLOURS).index(n.rsplit("/", 1)[-1])
                                          if n.rsplit("/", 1)[-1] in ACTION_COLOURS else 99, n))
    xs = sorted({t for s in series.values() for t, _ in s})
    pad_l, pad_r, pad_t, pad_b = 40, 16, 22, 26
    legend_at, full = height, height + 14 * len(names) + 4
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{e(chart_id)}" width="{width}" '
           f'height="{full}" viewBox="0 0 {width} {full}" role="img" aria-label="{e(title)}">',
           f'<text x="{pad_l}" y="14" class="ct">{e(title)}</text>']
    if not xs:
        out.append(f'<text x="{width / 2}" y="{height / 2}" class="tl" text-anchor="middle">{e(empty)}</text>'
                   f'</svg>')
        return "".join(out)
    w, h = width - pad_l - pad_r, legend_at - pad_t - pad_b
    t0, t1 = xs[0], xs[-1] + bucket_ms
    sx = lambda t: pad_l + (t - t0) / (t1 - t0) * w  # noqa: E731
    by_t = {n: dict(series[n]) for n in names}
    totals = {t: sum(by_t[n].get(t, 0) for n in names) for t in xs}
    ymax = max(max(totals.values()), 1)
    sy = lambda y: pad_t + h - (y / ymax) * h  # noqa: E731
    out += [f'<line x1="{pad_l}" y1="{pad_t + h}" x2="{pad_l + w}" y2="{pad_t + h}" class="ax"/>',
            f'<line x1="{pad_l}" y1="{pad_t}" x2="{pad_l}" y2="{pad_t + h}" class="ax"/>']
    for yv in sorted({0, (ymax + 1) // 2 if ymax > 1 else 0, ymax}):
        out.append(f'<text x="{pad_l - 4}" y="{sy(yv) + 4:.1f}" class="tl" text-anchor="end">{_n(yv)}</text>'
                   f'<line x1="{pad_l}" y1="{sy(yv):.1f}" x2="{pad_l + w}" y2="{sy(yv):.1f}" stroke="#eee"/>')
    for tv in _time_ticks(t0, t1):
        anchor = "end" if sx(tv) > pad_l + w - 25 else "middle"  # the last label inside the frame
        out.append(f'<line x1="{sx(tv):.1f}" y1="{pad_t + h}" x2="{sx(tv):.1f}" y2="{pad_t + h + 4}" class="ax"/>'
                   f'<text x="{sx(tv):.1f}" y="{legend_at - 8}" class="tl" text-anchor="{anchor}">'
                   f'{e(_t(tv)[11:] if t1 - t0 < 86_400_000 else _t(tv)[:10])}</text>')
    bw = max(1.0, w * bucket_ms / (t1 - t0) - 1)
    for t in xs:
        base = 0
        for n in names:
            v = by_t[n].get(t, 0)
            if not v:
                continue
            out.append(f'<rect x="{sx(t):.1f}" y="{sy(base + v):.1f}" width="{bw:.1f}" '
                       f'height="{sy(base) - sy(base + v):.1f}" fill="{action_colour(n)}" data-series="{e(n)}" '
                       f'data-t="{t}" data-value="{v}"><title>{e(_t(t)[11:])} {e(n)}: {v}</title></rect>')
            base += v
    for i, n in enumerate(names):
        out.append(f'<rect x="{pad_l}" y="{legend_at + 14 * i}" width="10" height="10" fill="{action_colour(n)}"/>'
                   f'<text x="{pad_l + 14}" y="{legend_at + 9 + 14 * i}" class="tl">{e(n)} '
                   f'({_n(sum(y for _, y in series[n]))})</text>')
    out.append("</svg>")
    return "".join(out)


def line_chart(series: dict, *, width: int = 760, height: int = 220, title: str = "", x_time: bool = True,
               y_label: str = "", x_label: str = "", chart_id: str = "", totals: bool = True,
               colours: dict | None = None) -> str:
    """An SVG line chart: one polyline a series of `(x, y)` points, y from 0, x as UTC clock times if `x_time`;
    the legend gives each series' total (`totals`, for counts) or its last value; `colours`: name -> colour."""
    pad_l, pad_r, pad_t, pad_b = 48 + (14 if y_label else 0), 16, 22, 26
    legend_at, height = height, height + 14 * len(series) + 4  # the legend under the axis, each name in full
    pts = [p for s in series.values() for p in s]
    xs = [p[0] for p in pts] or [0, 1]
    x0, x1 = min(xs), max(xs)
    single = x1 == x0  # one x (e.g. one scored event): centred, its value written beside it, one x label
    if single:
        half = 60_000 if x_time else max(abs(x0) * 0.1, 1)
        x0, x1 = x0 - half, x1 + half
    ymax = max([p[1] for p in pts] + [1e-9]) if pts else 1
    ymax = ymax if ymax > 0 else 1
    w, h = width - pad_l - pad_r, legend_at - pad_t - pad_b
    sx = lambda x: pad_l + (x - x0) / (x1 - x0) * w  # noqa: E731
    sy = lambda y: pad_t + h - (y / ymax) * h  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{e(chart_id)}" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{e(title)}">',
           f'<text x="{pad_l}" y="14" class="ct">{e(title)}</text>',
           f'<line x1="{pad_l}" y1="{pad_t + h}" x2="{pad_l + w}" y2="{pad_t + h}" class="ax"/>',
           f'<line x1="{pad_l}" y1="{pad_t}" x2="{pad_l}" y2="{pad_t + h}" class="ax"/>']
    for frac in (0, 0.5, 1):
        yv = ymax * frac
        out.append(f'<text x="{pad_l - 4}" y="{sy(yv) + 4:.1f}" class="tl" text-anchor="end">'
                   f'{_n(round(yv, 3) if ymax < 10 else int(round(yv)))}</text>')
    for frac in ((0.5,) if single else (0, 0.5, 1)):
        xv = x0 + (x1 - x0) * frac
        label = (_t(xv)[11:] if x_time and (x1 - x0) < 86_400_000 else (_t(xv)[:10] if x_time else _n(xv)))
        if single and x_time:
            label = _t(xv)  # the one event's date and time
        anchor = {0: "start", 1: "end"}.get(frac, "middle")
        out.append(f'<text x="{sx(xv):.1f}" y="{legend_at - 8}" class="tl" text-anchor="{anchor}">{e(label)}</text>')
    if x_label:
        out.append(f'<text x="{pad_l + w}" y="{legend_at - 8}" class="tl" text-anchor="end" dy="-12">'
                   f'{e(x_label)}</text>')
    if y_label:
        out.append(f'<text x="12" y="{pad_t + h / 2}" class="tl" transform="rotate(-90 12 {pad_t + h / 2})" '
                   f'text-anchor="middle">{e(y_label)}</text>')
    for i, (name, s) in enumerate(series.items()):
        col = (colours or {}).get(name) or COLOURS[i % len(COLOURS)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in s)
        if len(s) == 1 or single:
            for x, y in s:
                left = sx(x) > pad_l + 0.6 * w  # near the right edge the value goes on the point's left
                out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="4" fill="{col}" data-series="{e(name)}" '
                           f'data-value="{y}"/><text x="{sx(x) + (-8 if left else 8):.1f}" y="{sy(y) + 4:.1f}" '
                           f'class="tl" text-anchor="{"end" if left else "start"}">{e(name)} {_n(y)}</text>')
        out.append(f'<polyline points="{path}" fill="none" stroke="{col}" stroke-width="1.6" '
                   f'data-series="{e(name)}"/>')
        out.append(f'<rect x="{pad_l}" y="{legend_at + 14 * i}" width="10" height="10" fill="{col}"/>'
                   f'<text x="{pad_l + 14}" y="{legend_at + 9 + 14 * i}" class="tl">{e(name)} '
                   f'({_n(sum(y for _, y in s)) if totals else "last " + _n(s[-1][1] if s else 0)})</text>')
    out.append("</svg>")
    return "".join(out)


def bar_chart(groups: dict, *, width: int = 760, title: str = "", chart_id: str = "",
              colours: dict | None = None) -> str:
    """Horizontal bars, side by side: for each category one bar a group (e.g. champion beside challenger).

    `groups`: group name -> {category: value}; `colours`: group name -> colour (else the palette in order).

    >>> "champ" in bar_chart({"champ": {"WARN": 3}, "chall": {"WARN": 1, "CLOSE": 2}})
    True
    """
    cats = sorted({c for g in groups.values() for c in g})
    n = max(1, len(groups))
    bar_h, gap, pad_l, pad_t = 11, 8, 130, 22
    height = pad_t + len(cats) * (n * bar_h + gap) + 14 * n + 10
    vmax = max([v for g in groups.values() for v in g.values()] + [1e-9])
    w = width - pad_l - 80
    colour = {g: (colours or {}).get(g) or COLOURS[i % len(COLOURS)] for i, g in enumerate(groups)}
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{e(chart_id)}" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{e(title)}">',
           f'<text x="{pad_l}" y="14" class="ct">{e(title)}</text>']
    y = pad_t
    for c in cats:
        out.append(f'<text x="{pad_l - 6}" y="{y + n * bar_h / 2 + 4}" class="tl" text-anchor="end">{e(str(c))}</text>')
        for i, (g, vals) in enumerate(groups.items()):
            v = vals.get(c, 0) or 0
            bw = max(0.0, v / vmax * w)
            out.append(f'<rect x="{pad_l}" y="{y + i * bar_h}" width="{bw:.1f}" height="{bar_h - 2}" '
                       f'fill="{colour[g]}" data-group="{e(g)}" data-cat="{e(str(c))}" '
                       f'data-value="{v}"/><text x="{pad_l + bw + 4:.1f}" y="{y + i * bar_h + 9}" class="tl">'
                       f'{_n(v)}</text>')
        y += n * bar_h + gap
    for i, g in enumerate(groups):
        out.append(f'<rect x="{pad_l}" y="{y + 14 * i}" width="10" height="10" fill="{colour[g]}"/>'
                   f'<text x="{pad_l + 14}" y="{y + 9 + 14 * i}" class="tl">{e(g)}</text>')
    out.append("</svg>")
    return "".join(out)


# -- frame ------------------------------------------------------------------------------------------------------------
def page(title: str, body: str, *, user, csrf: str, active: str = "", refresh: str = "") -> str:
    """The frame of every page: navigation, who is signed in, sign-out (a POST with the CSRF token)."""
    nav = "".join(f'<a href="{href}" class="{"on" if href == active else ""}">{e(label)}</a>' for href, label in NAV)
    who = ""
    if user is not None:
        who = (f'<span class="who" id="who">{e(user.user)} ({e(user.role)})</span>'
               f'<form method="post" action="/logout" class="inline"><input type="hidden" name="csrf" '
               f'value="{e(csrf)}"><button type="submit">Sign out</button></form>')
    data = f' data-refresh="{e(refresh)}"' if refresh else ""
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{e(title)} · riskstream console'
            f'</title><link rel="stylesheet" href="/static/console.css"></head><body{data}>'
            f'<header><b>riskstream</b> console {nav if user is not None else ""}<span class="sp"></span>{who}'
            f'</header><main><h1>{e(title)}</h1>{body}</main>'
            f'<script src="/static/console.js"></script></body></html>')


def _table(head, rows, *, table_id: str = "", empty: str = "none") -> str:
    if not rows:
        return f'<p class="empty" id="{e(table_id)}">{e(empty)}</p>'
    th = "".join(f"<th>{e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table id="{e(table_id)}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def _flash(msg: str | None) -> str:
    return f'<p class="flash" id="flash">{e(msg)}</p>' if msg else ""


def login_page(error: str | None = None, next_url: str = "/") -> str:
    err = f'<p class="err" id="login-error">{e(error)}</p>' if error else ""
    body = (f'{err}<form method="post" action="/login" class="box"><input type="hidden" name="next" '
            f'value="{e(next_url)}"><label>User <input name="user" id="user" autocomplete="username" required>'
            f'</label><label>Password <input name="password" id="password" type="password" '
            f'autocomplete="current-password" required></label><button type="submit" id="signin">Sign in</button>'
            f'</form>')
    return page("Sign in", body, user=None, csrf="")


# -- overview ---------------------------------------------------------------------------------------------------------
def overview_fragments(o: dict) -> dict:
    """The live parts of the overview (the page's script swaps each into its element `f-<key>` every 2 s)."""
    ver = o["versions"]
    champ = ver.get("champion") or {}
    vrows = [["champion (live)", e(str(champ.get("policy", "-"))), _n(champ.get("version")),
              _n(champ.get("model_version"))]]
    vrows += [[f"challenger ({e(str(v.get('mode')))})", e(str(k)), _n(v.get("version")), ""]
              for k, v in sorted(ver.get("challengers", {}).items())]
    vrows += [[f"policy control message {e(_t(m.get('time')))}", e(str(m.get("source") or "")),
               f"by {e(str(m.get('by')))}", f"signed by {e(str(m.get('signed_by')))}"]
              for m in reversed(ver.get("policy_messages") or [])]
    b = o["breaker"]
    state = (f'<b class="bad">TRIPPED</b> on partition(s) {e(", ".join(map(str, b["tripped"])))}' if b["tripped"]
             else '<b class="ok">closed</b> (commands flow)')
    series = {k: v for k, v in o["series"].items()}
    dec = {k: v for k, v in series.items() if k.startswith("decision/")}
    cmd = {k: v for k, v in series.items() if k.startswith("command/")}
    by_role = dict(sorted(o["by_policy"].items(), key=lambda kv: "(champion" not in kv[0]))  # the champion first
    return {
        "kpis": ((f'<p class="err" id="reader-error">{e(o["reader_error"])}</p>' if o.get("reader_error") else "")
                 + f'<div class="kpi"><span id="kpi-eps">{_n(o["events_per_s"])}</span>events/s</div>'
                 f'<div class="kpi"><span id="kpi-events">{_n(o["events"])}</span>events in</div>'
                 f'<div class="kpi"><span id="kpi-decisions">{_n(o["decisions"])}</span>decisions</div>'
                 f'<div class="kpi"><span id="kpi-commands">{_n(o["commands"])}</span>commands</div>'
                 f'<div class="kpi"><span id="kpi-dead">{_n(o["dead_letters"])}</span>dead letters</div>'
                 f'<div class="kpi"><span id="kpi-review">{_n(o["review_waiting"])}</span>waiting for review</div>'),
        "charts": ('<div class="cols">'
                   + time_bars(dec, title=f"champion decisions by action, per {o['bucket_ms'] // 1000} s",
                               chart_id="chart-decisions", bucket_ms=o["bucket_ms"], empty="no decisions yet")
                   + time_bars(cmd, title=f"commands by action, per {o['bucket_ms'] // 1000} s",
                               chart_id="chart-commands", bucket_ms=o["bucket_ms"], empty="no commands yet")
                   + "</div>"),
        "policies": bar_chart(by_role, title="decisions by action: champion beside challenger",
                              chart_id="chart-policies", width=620, colours=role_colours(by_role))
        + _table(["policy (role, mode)", "action", "decisions"],
                 [[e(p), e(str(a)), f'<span class="n">{n}</span>'] for p, acts in o["by_policy"].items()
                  for a, n in sorted(acts.items(), key=lambda kv: str(kv[0]))], table_id="by-policy"),
        "dead": _table(["reason", "dead letters"], [[e(r), f'<span class="n">{n}</span>']
                                                    for r, n in o["dead_by_reason"].items()],
                       table_id="dead-by-reason", empty="no dead letters"),
        "breaker-state": (f'<p id="breaker-state">Breaker {state}; {b["trips"]} trip(s), '
                          f'<span id="breaker-held-n">{len(b["held"])}</span> command(s) held, {b["waiting"]} '
                          f'waiting out their hold, over {b["partitions"]} partition(s). '
                          f'<a href="/breaker">Breaker page</a></p>'),
        "versions": _table(["in force", "policy", "version", "model version"], vrows, table_id="versions"),
        "commands-by-action": _table(["action", "commands"], [[e(str(a)), f'<span class="n">{n}</span>']
                                                              for a, n in o["commands_by_action"].items()],
                                     table_id="commands-by-action", empty="no commands yet"),
    }


def overview_page(o: dict, *, user, csrf: str) -> str:
    f = {k: f'<div id="f-{k}">{v}</div>' for k, v in overview_fragments(o).items()}
    body = (f'<section class="kpis">{f["kpis"]}</section>'
            f'<section>{f["charts"]}</section>'
            f'<div class="cols"><section><h2>Champion beside challenger</h2>{f["policies"]}'
            f'</section><section><h2>Commands</h2>{f["commands-by-action"]}'
            f'<h2>Dead letters by reason</h2>{f["dead"]}'
            f'<h2>Breaker</h2>{f["breaker-state"]}'
            f'<h2>Versions in force</h2>{f["versions"]}</section></div>'
            f'<p class="note">Refreshes every 2 s from /api/overview.</p>')
    return page("Overview", body, user=user, csrf=csrf, active="/", refresh="/api/overview")


# -- account ----------------------------------------------------------------------------------------------------------
def _lookup_form(csrf: str) -> str:
    return (f'<form method="post" action="/account" class="box" id="lookup"><input type="hidden" name="csrf" '
            f'value="{e(csrf)}"><label>Account id <input name="account_id" id="account_id" required '
            f'autocomplete="off"></label><button type="submit" id="lookup-go">Look up</button>'
            f'<span class="note">The id is pseudonymised here; URLs and logs carry only the pseudonym.</span></form>')


def account_page(a: dict | None, *, user, csrf: str, entered: str | None = None, pseudonym: str = "",
                 features: dict | None = None, msg: str | None = None) -> str:
    """`a`: `ReadModel.account(...)`; `features`: decision id -> (features, hash ok?) when they could be rebuilt."""
    if a is None:
        body = _flash(msg) + _lookup_form(csrf)
        if pseudonym:
            body += f'<p class="empty" id="not-found">No records for pseudonym {e(pseudonym)}.</p>'
        return page("Account", body, user=user, csrf=csrf, active="/account")
    features = features or {}
    line = a["line"] or {}
    state = e(str(line.get("state", "OPEN (no actuator record)")))
    extras = ", ".join(f"{e(k)} {e(_t(v) if k.endswith(('_at', '_until')) else str(v))}"
                       for k, v in line.items() if k != "state")
    decisions = [i for i in a["timeline"] if i["kind"] == "decision"]
    closes = [i for i in a["timeline"] if i["kind"] == "command" and i.get("action") == "CLOSE"]
    why = ""
    if closes:
        c = closes[-1]
        d = next((i for i in decisions if i["decision_id"] == c.get("decision_id")), None)
        if d:
            why = (f'<p class="why" id="why-closed">Closed {e(_t(c.get("time")))} by decision '
                   f'{e(d["decision_id"])}: rule <b>{e(str(d.get("rule_id")))}</b>, reasons '
                   f'{e("; ".join(map(str, d.get("reasons") or [])))}, PD {_n(d.get("pd"))}, policy '
                   f'{e(str(d.get("policy_name")))} v{_n(d.get("policy_version"))}, model v'
                   f'{_n(d.get("model_version"))}.</p>')
        else:
            cid = str(c.get("decision_id") or "").split(":", 1)[-1]
            ctl = next((i for i in a["timeline"] if i["kind"] == "control" and i.get("control_id") == cid), {})
            reviewed = next((i for i in decisions if i["decision_id"] == ctl.get("decision_id")), None)
            why = (f'<p class="why" id="why-closed">Closed {e(_t(c.get("time")))} by a person: '
                   f'{e(str(ctl.get("control") or "control"))} {e(str(ctl.get("verdict") or ctl.get("action") or ""))}'
                   f' by <b>{e(str(ctl.get("by")))}</b> ("{e(str(ctl.get("note") or ""))}"), signed control message '
                   f'{e(cid)} signed by {e(str(ctl.get("signed_by")))}'
                   + (f', on REVIEW decision {e(reviewed["decision_id"])} (rule {e(str(reviewed.get("rule_id")))}, '
                      f'PD {_n(reviewed.get("pd"))})' if reviewed else "") + '.</p>')
    rows = []
    for i in a["timeline"]:
        kind = i["kind"]
        if kind == "decision":
            audit = i.get("audit") or []
            aud = "; ".join(f'#{r["seq"]} {e(r["kind"])}{" " + e(r["event"]) if r.get("event") else ""} '
                            f'{r["hash"][:12]}… {"✓ chain verified" if r["chain_ok"] else "✗ chain broken"} '
                            f'({r["chain_records"]} records)' for r in audit) or "not in the audit file(s)"
            feats = features.get(i["decision_id"]) or i.get("features_checked")
            fcell = ('<div class="note">point-in-time features: not carried by this decision and its account\'s '
                     'first valid events are no longer kept; it is identified by its feature hash</div>')
            if feats:
                vals, ok = feats[0], feats[1]
                how = feats[2] if len(feats) > 2 else "carried by the decision"
                nz = {k: v for k, v in vals.items() if v}
                fcell = (f'<details class="features"><summary>{len(nz)} non-zero point-in-time features ({e(how)}), '
                         f'feature hash {"matches ✓" if ok else "differs ✗"}</summary>'
                         + "".join(f"<div>{e(k)} = {_n(v)}</div>" for k, v in sorted(nz.items())) + "</details>")
            what = (f'{e(str(i.get("action")))} <span class="role">{e(i.get("role", ""))}</span>')
            detail = (f'rule <b>{e(str(i.get("rule_id")))}</b><br>{e("; ".join(map(str, i.get("reasons") or [])))}'
                      f'<br>PD {_n(i.get("pd"))} · policy {e(str(i.get("policy_name")))} v'
                      f'{_n(i.get("policy_version"))} ({e(str(i.get("mode")))}) · model v'
                      f'{_n(i.get("model_version"))} · feature hash {e(str(i.get("feature_hash")))}{fcell}')
            rows.append([e(_t(i.get("time"))), "decision", what, detail, f'<span class="audit">{aud}</span>'])
        elif kind == "command":
            p = i.get("params") or {}
            rows.append([e(_t(i.get("time"))), "command", e(str(i.get("action"))),
                         f'id {e(str(i.get("command_id")))} for decision {e(str(i.get("decision_id")))}'
                         + (f' · {e(", ".join(f"{k}={v}" for k, v in p.items()))}' if p else ""), ""])
        elif kind == "control":
            rows.append([e(_t(i.get("time"))), "control", e(str(i.get("control"))) + (
                f' {e(str(i.get("verdict")))}' if i.get("verdict") else "") + (
                f' {e(str(i.get("action")))}' if i.get("action") else ""),
                f'by {e(str(i.get("by")))}, signed by {e(str(i.get("signed_by")))}: {e(str(i.get("note") or ""))}',
                ""])
        else:
            rows.append([e(_t(i.get("time"))), e(kind), "", e(str(i.get("event_id", ""))), ""])
    by_role = {f"PD ({role})": pts for role, pts in (a.get("pd_by_role") or {"champion": a["pd"]}).items() if pts}
    chart = (line_chart(by_role, title="PD over event time (each scored event with a decision)",
                        chart_id="chart-pd", x_time=True, y_label="PD", totals=False,
                        colours={n: ROLE_COLOURS["champion"] if "champion" in n else ROLE_COLOURS["challenger"][0]
                                 for n in by_role})
             if by_role else '<p class="empty">no scored decisions</p>')
    audit_files = "; ".join(f'{e(p)}: {"✓ verified" if v["ok"] else "✗ " + e(str(v["problem"]))}, {v["records"]} '
                            f'records' for p, v in a["audit_files"].items()) or "no audit file given (--audit)"
    shown = f' (entered as <b id="entered">{e(entered)}</b>)' if entered else ""
    body = (_flash(msg) + _lookup_form(csrf)
            + f'<h2>Line <span class="mono" id="pseudonym">{e(a["account"])}</span>{shown}</h2>'
            f'<p id="line-state">State <b>{state}</b>{"; " + extras if extras else ""}</p>{why}'
            f'<p class="note" id="audit-files">Audit chain: {audit_files}</p>{chart}'
            f'<h2>Timeline (<span id="timeline-n">{len(a["timeline"])}</span> entries, '
            f'<span id="timeline-decisions">{len(decisions)}</span> decisions)</h2>'
            + _table(["time (UTC, event time)", "kind", "what", "why", "audit record"], rows, table_id="timeline"))
    return page("Account", body, user=user, csrf=csrf, active="/account")


# -- review queue -----------------------------------------------------------------------------------------------------
def review_page(queue: list, verdicts: list, *, user, csrf: str, can_act: bool, msg: str | None = None) -> str:
    rows = []
    for d in queue:
        form = ""
        if can_act:
            form = (f'<form method="post" action="/review" class="act"><input type="hidden" name="csrf" '
                    f'value="{e(csrf)}"><input type="hidden" name="decision_id" value="{e(d["decision_id"])}">'
                    f'<input name="note" placeholder="note" required class="note-in">'
                    f'<button name="verdict" value="fraud" class="bad">Confirm fraud (CLOSE)</button>'
                    f'<button name="verdict" value="clear">Clear</button>'
                    f'<button name="verdict" value="hold">Hold</button></form>')
        held = (f'<br><i>on hold by {e(str(d.get("held_by")))}: {e(str(d.get("hold_note") or ""))}</i>'
                if d.get("held_by") else "")
        rows.append([e(_t(d.get("time"))), f'<a href="/account/{e(d["account"])}" class="mono">{e(d["account"])}</a>',
                     f'<span class="mono">{e(d["decision_id"])}</span>',
                     f'rule <b>{e(str(d.get("rule_id")))}</b>: {e("; ".join(map(str, d.get("reasons") or [])))}'
                     f' · PD {_n(d.get("pd"))}{held}', form])
    vrows = [[e(_t(v.get("time"))), e(str(v.get("verdict"))), f'<span class="mono">{e(str(v.get("decision_id")))}'
              f'</span>', e(str(v.get("by"))), e(str(v.get("signed_by")))] for v in reversed(verdicts[-20:])]
    body = (_flash(msg) + f'<p>REVIEW decisions of the live policy waiting for a verdict, oldest first: '
            f'<b id="queue-n">{len(queue)}</b>. Each verdict is a signed control message; confirm fraud closes the '
            f'line, and fraud and clear become labels for the trainer.</p>'
            + _table(["decided (event time)", "account (pseudonym)", "decision", "why", "verdict"], rows,
                     table_id="queue", empty="nothing waiting")
            + "<h2>Recent verdicts</h2>" + _table(["time", "verdict", "decision", "by", "signed by"], vrows,
                                                 table_id="verdicts", empty="no verdicts yet"))
    return page("Review queue", body, user=user, csrf=csrf, active="/review")


# -- breaker ----------------------------------------------------------------------------------------------------------
def breaker_page(b: dict, *, user, csrf: str, can_act: bool, msg: str | None = None) -> str:
    state = (f'<b class="bad" id="breaker-open">TRIPPED</b> on partition(s) {e(", ".join(map(str, b["tripped"])))}'
             if b["tripped"] else '<b class="ok" id="breaker-closed">closed</b>')
    held = [[str(h["partition"]), f'<a href="/account/{e(h["account"])}" class="mono">{e(h["account"])}</a>',
             e(str(h["action"])), e(str(h.get("rule_id"))), e("; ".join(map(str, h["reasons"]))),
             e(_t(h.get("issued_at")))] for h in b["held"]]
    counts = _table(["action", "held"], [[e(a), f'<span class="n">{n}</span>'] for a, n in b["held_by_action"].items()],
                    table_id="held-by-action", empty="nothing held")
    reasons = _table(["reason", "held"], [[e(r), str(n)] for r, n in b["held_by_reason"].items()],
                     table_id="held-by-reason", empty="-")
    form = ""
    if can_act:
        form = (f'<form method="post" action="/breaker" class="box" id="breaker-form"><input type="hidden" '
                f'name="csrf" value="{e(csrf)}"><label>Reason <input name="reason" id="breaker-reason" required>'
                f'</label><button name="how" value="release" id="breaker-release">Release held commands</button>'
                f'<button name="how" value="drop" class="bad" id="breaker-drop">Drop held commands</button>'
                f'<span class="note">The same signed control message as <code>riskstream control breaker-reset'
                f'</code>, audited by the actuator.</span></form>')
    log = _table(["time", "event", "how", "by", "reason", "signed by"],
                 [[e(_t(x.get("time"))), e(x["kind"]) + (f' (partition {e(str(x["partition"]))})'
                                                           if x.get("partition") is not None else ""),
                   e(str(x.get("how") or "")), e(str(x.get("by") or "")),
                   e(str(x.get("reason") or "")), e(str(x.get("signed_by")))] for x in b["log"]],
                 table_id="breaker-log", empty="no trips or resets yet")
    body = (_flash(msg) + f'<p>Breaker {state}: {b["trips"]} trip(s), <b id="held-n">{len(b["held"])}</b> command(s) '
            f'held, {b["waiting"]} waiting out their hold, over {b["partitions"]} partition(s).</p>'
            f'<div class="cols"><section>{counts}</section><section>{reasons}</section></div>{form}'
            f'<h2>Held commands</h2>' + _table(["partition", "account (pseudonym)", "action", "rule", "reasons",
                                                "issued"], held, table_id="held", empty="nothing held")
            + f'<h2>Trips and resets (control topic)</h2>{log}')
    return page("Breaker", body, user=user, csrf=csrf, active="/breaker")


# -- backtest ---------------------------------------------------------------------------------------------------------
BACKTEST_ROWS = (("catch_rate_60d", "caught >= 60 d before default", "pct"),
                 ("catch_rate_30d", "caught >= 30 d before default", "pct"),
                 ("good_closed_share", "good accounts closed", "pct"),
                 ("good_restricted_share", "good accounts restricted", "pct"),
                 ("exposure_saved", "exposure saved", "num"), ("fraud_frozen_share", "takeovers frozen", "pct"),
                 ("lead_days_median", "lead days (median)", "num"), ("decisions", "decisions", "num"),
                 ("commands", "commands", "num"))


def backtest_page(report: dict | None, *, user, csrf: str, name: str = "", msg: str | None = None) -> str:
    form = (f'<form method="post" action="/backtest" enctype="multipart/form-data" class="box" id="bt-form">'
            f'<input type="hidden" name="csrf" value="{e(csrf)}"><label>backtest.json <input type="file" '
            f'name="file" id="bt-file" accept=".json,application/json" required></label>'
            f'<button type="submit" id="bt-open">Open</button><span class="note">written by <code>riskstream '
            f'backtest --out DIR</code> (docs/backtest.md)</span></form>')
    if not report:
        return page("Backtest", _flash(msg) + form, user=user, csrf=csrf, active="/backtest")
    pols = report.get("policies") or []
    head = ["", *[f'{p.get("policy")} v{p.get("version")}' for p in pols]]

    def fmt(v, kind):
        if v is None:
            return "-"
        return f"{100 * v:.1f} %" if kind == "pct" else _n(v)
    rows = [[e(label), *[fmt(p.get(key), kind) for p in pols]] for key, label, kind in BACKTEST_ROWS]
    sweep = {}
    for p in pols:
        pts = sorted(p.get("sweep") or [], key=lambda s: s.get("good_restricted_share") or 0)
        if pts:
            sweep[f'{p.get("policy")}: caught >= 60 d'] = [(100 * (s.get("good_restricted_share") or 0),
                                                            100 * (s.get("catch_rate_60d") or 0)) for s in pts]
    chart = (line_chart(sweep, title="PD sweep: caught >= 60 d (%) against good accounts restricted (%)",
                        x_time=False, chart_id="chart-sweep", y_label="caught %", totals=False,
                        x_label="good accounts restricted %") if sweep
             else '<p class="empty">no PD sweep in this report</p>')
    bars = bar_chart({f'{p.get("policy")}': p.get("commands_by_action") or {} for p in pols},
                     title="commands by action", chart_id="chart-bt-actions")
    body = (_flash(msg) + form + f'<h2 id="bt-name">{e(name)}</h2><p class="note">{e(str(report.get("note", "")))}'
            f'</p>' + _table(head, rows, table_id="bt-table") + chart + bars)
    return page("Backtest", body, user=user, csrf=csrf, active="/backtest")


CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{display:flex;gap:14px;align-items:center;padding:8px 16px;background:#1d2b3a;color:#fff}
header a{color:#cfe3ff;text-decoration:none;padding:2px 6px;border-radius:3px}header a.on{background:#3b5776;color:#fff}
.sp{flex:1}.who{opacity:.85}main{padding:8px 20px}h1{font-size:20px;margin:8px 0}h2{font-size:15px;margin:14px 0 6px}
table{border-collapse:collapse;background:#fff;margin:4px 0}td,th{border:1px solid #ddd;padding:3px 7px;
vertical-align:top;text-align:left}th{background:#eef2f6}.kpis>div{display:flex;gap:10px;flex-wrap:wrap}
.kpi{background:#fff;border:1px solid #ddd;padding:6px 12px;min-width:110px}.kpi span{display:block;font-size:22px;
font-weight:600}.cols{display:flex;gap:18px;flex-wrap:wrap}.chart{background:#fff;border:1px solid #ddd;margin:4px 0;
display:block}.ct{font-weight:600;font-size:12px}.tl{font-size:11px;fill:#444}.ax{stroke:#888}.bad{color:#b00}
.ok{color:#070}.mono{font-family:ui-monospace,monospace}.note{color:#666;font-size:12px}.empty{color:#888}
.box{background:#fff;border:1px solid #ddd;padding:8px;display:flex;gap:10px;align-items:center;flex-wrap:wrap}
.flash{background:#e8f4e8;border:1px solid #9c9;padding:6px}.err{background:#fbeaea;border:1px solid #d99;padding:6px}
form.inline{display:inline}.act{display:flex;gap:4px}.note-in{width:120px}button.bad{color:#fff;background:#b33;
border:1px solid #922}.role{color:#666;font-size:11px}.audit{font-size:11px}.why{background:#fff7e0;
border:1px solid #e6c66b;padding:6px}
"""

JS = """
(function(){
  var url = document.body.getAttribute('data-refresh');
  if (!url) return;
  function tick(){
    fetch(url, {credentials: 'same-origin', headers: {'Accept': 'application/json', 'X-Console-Refresh': '1'}})
      .then(function(r){ if (r.status === 401) { location.href = '/login'; return null; } return r.json(); })
      .then(function(d){ if (!d) return; Object.keys(d.html).forEach(function(id){
        var el = document.getElementById(id); if (el) el.innerHTML = d.html[id]; });
        document.body.setAttribute('data-updated', String(Date.now())); })
      .catch(function(){});
  }
  setInterval(tick, 2000);
})();
"""
