"""Stress scenarios: shock the market features of a portfolio, re-score it, and count threshold crossings.

Shocks (all optional, per portfolio or per segment) and how they move the features (config section `scenario`):

* ``rate_bp``           -> ``market_rate_change_30d_bp += rate_bp``; where present, ``dscr *= 1 + dscr_rel_per_100bp
  * rate_bp/100``, ``covenant_headroom += covenant_headroom_per_100bp * rate_bp/100``, ``utilisation +=
  utilisation_per_100bp * rate_bp/100`` (clipped to 0..1.5)
* ``sector_index_pct``  -> ``market_index_change_7d += sector_index_pct`` (percent); where present, ``dscr *= 1 +
  dscr_rel_per_10pct_index * sector_index_pct/10``
* ``unemployment_pts``  -> ``market_unemployment += unemployment_pts``; where present, ``days_past_due +=
  days_past_due_per_unemployment_pt * unemployment_pts``
* ``market_shock`` becomes 1 when any shock reaches its `shock_flag_*` size.

Shocks for one segment are given as ``{"segments": {"energy": {"sector_index_pct": -40}}}`` (or the flat key
``"energy.sector_index_pct"``) and replace the portfolio-wide value for that segment. A row is over a threshold
when its PD >= the cutoff.

>>> from riskstream.core.models.scorer import make_scorer
>>> row = {"entity_pseudonym": "p1", "product": "credit_line", "segment": "retail", "exposure": 1000.0,
...        "features": {"market_rate_change_30d_bp": 0.0}}
>>> apply_shocks(row["features"], {"rate_bp": 200}, "retail")["market_rate_change_30d_bp"]
200.0
>>> res = run_scenario([row], {"rate_bp": 200}, {"watch": 0.01}, make_scorer({}))
>>> res["thresholds"]["watch"]["after"]["accounts"]
1

"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import yaml

from riskstream.core.errors import OperatorError
from riskstream.core.models.config import load_config
from riskstream.core.models.scorer import Scorer, make_scorer
from riskstream.core.models.synthetic import default_scorer

__all__ = ["SHOCK_NAMES", "apply_shocks", "normalise_thresholds", "run_scenario", "default_scorer", "register"]

SHOCK_NAMES = ("rate_bp", "sector_index_pct", "unemployment_pts")
DEFAULT_THRESHOLDS = {"watch": 0.05, "review": 0.10, "decline": 0.20}


def _segment_shocks(shocks: dict, segment: str | None) -> dict[str, float]:
    out = {k: float(v) for k, v in shocks.items() if k in SHOCK_NAMES}
    per = dict((shocks.get("segments") or {}).get(segment, {})) if segment is not None else {}
    for k, v in shocks.items():
        if "." in k and segment is not None:
            seg, name = k.split(".", 1)
            if seg == segment:
                per[name] = v
    out.update({k: float(v) for k, v in per.items() if k in SHOCK_NAMES})
    return out


def apply_shocks(features: dict, shocks: dict, segment: str | None = None, config: dict | None = None) -> dict:
    """A shocked COPY of `features` (see the module docstring for the rules)."""
    cfg = (config or load_config())["scenario"]
    s = _segment_shocks(shocks, segment)
    rate, index, unemp = s.get("rate_bp", 0.0), s.get("sector_index_pct", 0.0), s.get("unemployment_pts", 0.0)
    x = {k: float(v) for k, v in features.items()}
    x["market_rate_change_30d_bp"] = x.get("market_rate_change_30d_bp", 0.0) + rate
    x["market_index_change_7d"] = x.get("market_index_change_7d", 0.0) + index
    x["market_unemployment"] = x.get("market_unemployment", 0.0) + unemp
    if "dscr" in x:
        factor = 1 + cfg["dscr_rel_per_100bp"] * rate / 100 + cfg["dscr_rel_per_10pct_index"] * index / 10
        x["dscr"] = max(0.0, x["dscr"] * factor)
    if "covenant_headroom" in x:
        x["covenant_headroom"] += cfg["covenant_headroom_per_100bp"] * rate / 100
    if "utilisation" in x:
        x["utilisation"] = min(1.5, max(0.0, x["utilisation"] + cfg["utilisation_per_100bp"] * rate / 100))
    if "days_past_due" in x:
        x["days_past_due"] = max(0.0, x["days_past_due"] + cfg["days_past_due_per_unemployment_pt"] * unemp)
    if (abs(rate) >= cfg["shock_flag_rate_bp"] or abs(index) >= cfg["shock_flag_index_pct"]
            or unemp >= cfg["shock_flag_unemployment_pts"]):
        x["market_shock"] = 1.0
    return x


def normalise_thresholds(policy: dict) -> dict[str, dict[str, float]]:
    """-> {product or "*": {threshold name: PD cutoff}} from a policy (``segments: {product: {thresholds: ..}}``),
    a ``{product: {thresholds: ..}}`` mapping, or a plain ``{name: cutoff}`` mapping (applies to every product)."""
    if not isinstance(policy, dict):
        raise ValueError("thresholds must be a mapping")
    body = policy.get("segments", policy) if isinstance(policy.get("segments"), dict) else policy
    out: dict[str, dict[str, float]] = {}
    for key, value in body.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out.setdefault("*", {})[str(key)] = float(value)
        elif isinstance(value, dict):
            inner = value.get("thresholds", value)
            cut = {str(n): float(c) for n, c in inner.items() if isinstance(c, (int, float)) and not isinstance(c, bool)}
            if cut:
                out[str(key)] = cut
    if not out:
        raise ValueError("no numeric PD cutoffs found (expected segments: {<product>: {thresholds: {<name>: <pd>}}})")
    return out


def _cutoffs(table: dict[str, dict[str, float]], product: str) -> dict[str, float]:
    return {**table.get("*", {}), **table.get("default", {}), **table.get(product, {})}


def run_scenario(portfolio: list[dict], shocks: dict, thresholds: dict, scorer: Scorer,
                 config: dict | None = None) -> dict:
    """Re-score every row before and after the shocks; count accounts and exposure over each threshold."""
    cfg = config or load_config()
    table = normalise_thresholds(thresholds)
    names = sorted({n for cut in table.values() for n in cut})
    empty = {"accounts": 0, "exposure": 0.0}
    report = {n: {"before": dict(empty), "after": dict(empty), "newly_over": dict(empty)} for n in names}
    segments: dict[str, dict] = {}
    rows_out = []
    for row in portfolio:
        product, segment = str(row.get("product", "")), str(row.get("segment", ""))
        exposure = float(row.get("exposure", 0.0) or 0.0)
        features = row.get("features") or {}
        pd_before = scorer.predict_pd(features) if scorer.n_learned else 0.5
        pd_after = scorer.predict_pd(apply_shocks(features, shocks, segment, cfg)) if scorer.n_learned else 0.5
        rows_out.append((pd_before, pd_after))
        for name, cutoff in _cutoffs(table, product).items():
            r = report[name]
            for when, pd in (("before", pd_before), ("after", pd_after)):
                if pd >= cutoff:
                    r[when]["accounts"] += 1
                    r[when]["exposure"] += exposure
            if pd_after >= cutoff > pd_before:
                r["newly_over"]["accounts"] += 1
                r["newly_over"]["exposure"] += exposure
        seg = segments.setdefault(segment, {"accounts": 0, "exposure": 0.0, "pd_before": 0.0, "pd_after": 0.0})
        seg["accounts"] += 1
        seg["exposure"] += exposure
        seg["pd_before"] += pd_before
        seg["pd_after"] += pd_after
    for seg in segments.values():
        seg["mean_pd_before"] = round(seg.pop("pd_before") / seg["accounts"], 6)
        seg["mean_pd_after"] = round(seg.pop("pd_after") / seg["accounts"], 6)
    n = len(rows_out)
    return {
        "shocks": shocks,
        "model_version": scorer.model_version,
        "accounts": n,
        "exposure": sum(float(r.get("exposure", 0.0) or 0.0) for r in portfolio),
        "mean_pd_before": round(sum(b for b, _ in rows_out) / n, 6) if n else None,
        "mean_pd_after": round(sum(a for _, a in rows_out) / n, 6) if n else None,
        "thresholds": report,
        "cutoffs": table,
        "by_segment": segments,
        "pds": rows_out,
    }


def _plot(result: dict, path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    names = list(result["thresholds"])
    before = [result["thresholds"][n]["before"]["exposure"] for n in names]
    after = [result["thresholds"][n]["after"]["exposure"] for n in names]
    pos = range(len(names))
    ax1.bar([p - 0.2 for p in pos], before, width=0.4, label="before")
    ax1.bar([p + 0.2 for p in pos], after, width=0.4, label="after shocks")
    ax1.set_xticks(list(pos), names)
    ax1.set_ylabel("exposure over threshold")
    ax1.set_title("Exposure at or above each PD threshold")
    ax1.legend()
    pds = result["pds"]
    ax2.hist([b for b, _ in pds], bins=30, range=(0, 1), alpha=0.6, label="before")
    ax2.hist([a for _, a in pds], bins=30, range=(0, 1), alpha=0.6, label="after shocks")
    ax2.set_xlabel("PD")
    ax2.set_ylabel("accounts")
    ax2.set_title("PD distribution")
    ax2.legend()
    parts = [f"{k}={v:g}" for k, v in result["shocks"].items() if k != "segments"]
    for seg, values in (result["shocks"].get("segments") or {}).items():
        parts += [f"{seg}.{k}={v:g}" for k, v in values.items()]
    fig.suptitle(f"Scenario: {', '.join(parts) or 'no shock'}  (model {result.get('model_source', result['model_version'])})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _parse_shock(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    base = name.split(".", 1)[-1]
    if not sep or base not in SHOCK_NAMES:
        raise ValueError(f"--shock {text!r}: expected NAME=VALUE or SEGMENT.NAME=VALUE with NAME one of "
                         f"{', '.join(SHOCK_NAMES)}")
    try:
        return name, float(value)
    except ValueError:
        raise ValueError(f"--shock {text!r}: VALUE must be a number") from None


def _run(args: argparse.Namespace) -> int:
    from riskstream.core.models.snapshot import TamperedSnapshot, load_snapshot, model_key

    try:
        cfg = load_config(args.config)
        shocks: dict = {}
        for text in args.shock or []:
            name, value = _parse_shock(text)
            if "." in name:
                seg, base = name.split(".", 1)
                shocks.setdefault("segments", {}).setdefault(seg, {})[base] = value
            else:
                shocks[name] = value
        if args.policy:
            try:
                policy = yaml.safe_load(pathlib.Path(args.policy).read_text()) or {}
                thresholds = normalise_thresholds(policy)
            except (yaml.YAMLError, ValueError) as exc:
                raise OperatorError(args.policy, "segments.<product>.thresholds", str(exc),
                                    "give PD cutoffs in 0..1, e.g. segments: {credit_line: {thresholds: "
                                    "{watch: 0.05}}}") from None
        else:
            thresholds = DEFAULT_THRESHOLDS
        portfolio = []
        with open(args.portfolio, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        portfolio.append(json.loads(line))
                    except json.JSONDecodeError:
                        raise OperatorError(args.portfolio, f"line {lineno}", "not a JSON object",
                                            "write one JSON object per line (riskstream demo writes this file)") from None
        if args.model_snapshot:
            _, scorer = load_snapshot(pathlib.Path(args.model_snapshot).read_bytes(), key=model_key())
        else:
            scorer = default_scorer(config=cfg)
        result = run_scenario(portfolio, shocks, thresholds, scorer, cfg)
        result["model_source"] = (f"snapshot {scorer.model_version}" if args.model_snapshot
                                  else "synthetic warm-up, no snapshot")
    except (OSError, ValueError, TamperedSnapshot) as exc:
        print(f"riskstream scenario: {exc}", file=sys.stderr)
        return 2
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _plot(result, out / "scenario.png")
    summary = {k: v for k, v in result.items() if k != "pds"}
    (out / "scenario.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    for name, r in result["thresholds"].items():
        print(f"{name}: {r['before']['accounts']} -> {r['after']['accounts']} accounts, "
              f"exposure {r['before']['exposure']:.2f} -> {r['after']['exposure']:.2f}")
    print(f"wrote {out / 'scenario.json'} and {out / 'scenario.png'}")
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    """Add `scenario` to an argparse subparsers object; sets `func` (args.func(args) -> int)."""
    p = subparsers.add_parser(
        "scenario",
        help="stress a portfolio: shock market features, re-score, count PD threshold crossings (sends no commands)",
        description=__doc__.split("\n\n>>>")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--portfolio", required=True, metavar="FILE.jsonl",
                   help='one JSON object per line: {"entity_pseudonym", "product", "segment", "exposure", "features"}')
    p.add_argument("--shock", action="append", metavar="NAME=VALUE",
                   help="repeatable; NAME is rate_bp, sector_index_pct or unemployment_pts, optionally SEGMENT.NAME "
                        "for one segment, e.g. --shock rate_bp=200 --shock energy.sector_index_pct=-30")
    p.add_argument("--policy", metavar="FILE",
                   help="policy YAML with segments: {<product>: {thresholds: {<name>: <PD cutoff>}}} or a plain "
                        f"{{name: cutoff}} mapping (default {DEFAULT_THRESHOLDS})")
    p.add_argument("--model-snapshot", metavar="FILE",
                   help="signed model snapshot (verified with RISKSTREAM_MODEL_KEY); default: a scorer warmed on the "
                        "deterministic synthetic stream, see docs/models.md")
    p.add_argument("--config", metavar="FILE", help="models.yaml overlay (shock elasticities live in `scenario`)")
    p.add_argument("--out", required=True, metavar="DIR", help="writes DIR/scenario.json and DIR/scenario.png")
    p.set_defaults(func=_run)
    return p
