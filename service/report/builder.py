"""``report.html`` for one round: a single self-contained page for a non-technical reader.

:func:`build_report` reads what ``fairlead allocate --out DIR`` writes
(``summary.json``, ``assignments.csv``) and, when present, what ``fairlead
frontier`` writes (``frontier.csv``, ``frontier.png``), and writes
``report.html`` beside them: pictures embedded as base64 PNG, inline CSS, no
script, no server.  Parts that are missing are shown as "not computed" rather
than failing the page.
"""

from __future__ import annotations

import base64
import json
import math
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd

from allocator.errors import InputError, InputProblem
from service.report import plots

TEMPLATE = "report.html"
RULES_SHOWN = 15
_HELD_BACK_WORDS = {
    "qualification": "below the qualification minimum (or no score)",
    "no_eligible_partner": "no partner is eligible (territory, certification, activity)",
    "no_pair": "no pair lists the lead in the pairs file",
    "inactive": "only inactive partners were listed for it",
}
_KIND_WORDS = {
    "cap": "capacity caps", "floor": "partner floors", "tier_max_share": "tier maximums",
    "tier_min_share": "tier minimums", "quota_max": "quota maximums", "quota_min": "quota minimums",
    "max_share_per_partner": "per-partner maximums", "assign_all": "place-every-lead rule",
}
_UNITS = {"conversions": "expected conversions", "revenue": "expected revenue"}
OPTIMIZER_NAME = "optimizer"
_FAIRNESS_KEYS = ("gini_leads", "jain_leads", "worst_off_share", "expected_total")


def _num(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _first(mapping: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if key in mapping and mapping[key] is not None:
            return mapping[key]
    return None


def _img(fig: Any) -> str:
    return "data:image/png;base64," + base64.b64encode(plots.png_bytes(fig)).decode("ascii")


def _img_file(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _read_summary(round_dir: Path) -> dict[str, Any]:
    path = round_dir / "summary.json"
    if not path.is_file():
        raise InputError([InputProblem(
            str(path), None, None, None,
            "the round directory has no summary.json; run `fairlead allocate --out DIR` first",
        )])
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError([InputProblem(str(path), exc.lineno, None, None,
                                       f"summary.json is not valid JSON: {exc.msg}")]) from None
    if not isinstance(data, dict):
        raise InputError([InputProblem(str(path), None, None, type(data).__name__,
                                       "summary.json must hold a JSON object")])
    return data


def _fairness_by_method(summary: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Fairness per method: accepts one metrics dict (the optimizer's) or one per method."""
    raw = summary.get("fairness")
    out: dict[str, dict[str, Any]] = {}
    if isinstance(raw, Mapping):
        if any(k in raw for k in _FAIRNESS_KEYS):
            out[OPTIMIZER_NAME] = dict(raw)
        else:
            out.update({str(k): dict(v) for k, v in raw.items() if isinstance(v, Mapping)})
    for name, base in (summary.get("baselines") or {}).items():
        if isinstance(base, Mapping) and isinstance(base.get("fairness"), Mapping):
            out.setdefault(str(name), dict(base["fairness"]))
    return out


def _methods(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per method, the optimizer first: objective, expected conversions, fairness.

    The objective is what each method achieves in the round's unit (expected
    conversions, expected revenue, or the score brought in); ``expected`` is the
    expected conversions the fairness metrics measured.
    """
    fair = _fairness_by_method(summary)
    opt_key = next((k for k in fair if k in (OPTIMIZER_NAME, "optimal", "optimized")), None)
    opt_fair = fair.get(opt_key, {}) if opt_key else {}
    opt_obj = _num(_first(summary, "objective", "expected_conversions"))
    rows = [{"name": OPTIMIZER_NAME, "objective": opt_obj,
             "expected": _num(opt_fair.get("expected_total")),
             "assigned": (summary.get("counts") or {}).get("assigned"), **_fair_cols(opt_fair)}]
    for name, base in (summary.get("baselines") or {}).items():
        if not isinstance(base, Mapping):
            continue
        bf = fair.get(str(name), {})
        obj = _num(_first(base, "objective", "expected_conversions", "expected"))
        rows.append({"name": str(name), "objective": obj,
                     "expected": _num(bf.get("expected_total")),
                     "assigned": base.get("assigned"), **_fair_cols(bf)})
    for row in rows:
        row["vs_optimizer_pct"] = (
            100.0 * (row["objective"] - opt_obj) / abs(opt_obj)
            if row["objective"] is not None and opt_obj not in (None, 0.0)
            else None
        )
    return rows


def _fair_cols(f: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "gini_leads": _num(f.get("gini_leads")),
        "jain_leads": _num(f.get("jain_leads")),
        "worst_off_share": _num(f.get("worst_off_share")),
        "partners_without_leads": f.get("partners_without_leads"),
        "high_intent_top_share": _num(f.get("high_intent_top_share")),
    }


def _partners(summary: Mapping[str, Any], assignments: pd.DataFrame | None) -> pd.DataFrame | None:
    rows = summary.get("partners")
    if isinstance(rows, list) and rows and isinstance(rows[0], Mapping):
        df = pd.DataFrame(rows)
        if "leads" not in df:
            for alt in ("received", "leads_received", "n_leads", "assigned"):
                if alt in df:
                    df["leads"] = df[alt]
                    break
        if "expected" not in df:
            for alt in ("expected_conversions", "expected_value", "expected_total"):
                if alt in df and df[alt].notna().any():
                    df["expected"] = df[alt]
                    break
        if "leads" in df:
            if "expected" not in df:
                df["expected"] = np.nan
            return df
    if assignments is not None and {"partner_id", "score"} <= set(assignments.columns):
        placed = assignments[assignments["partner_id"].notna()]
        grouped = placed.groupby("partner_id")["score"].agg(["size", "sum"])
        return pd.DataFrame({"partner_id": grouped.index, "leads": grouped["size"].to_numpy(),
                             "expected": grouped["sum"].to_numpy()})
    return None


def _held_back(summary: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """Held-back leads counted by reason (the rule when the summary groups them)."""
    grouped = summary.get("held_back_by_reason")
    if isinstance(grouped, Mapping):
        rows = [{"reason": _HELD_BACK_WORDS.get(str(k), str(k).replace("_", " ")),
                 "count": int(v)} for k, v in grouped.items()]
        return sorted(rows, key=lambda r: -r["count"])
    raw = summary.get("held_back")
    if raw is None:
        return None
    counts: Counter[str] = Counter()
    if isinstance(raw, Mapping):  # {reason: count} or {reason: [lead ids]}
        for reason, v in raw.items():
            counts[str(reason)] += len(v) if isinstance(v, list) else int(v)
    elif isinstance(raw, list):
        for item in raw:
            if isinstance(item, Mapping):
                n = item.get("count", 1)
                counts[str(item.get("reason", "unknown"))] += n if isinstance(n, int) else 1
            else:
                counts[str(item)] += 1
    return [{"reason": r, "count": n} for r, n in counts.most_common()]


def _rules(summary: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    raw = summary.get("rules")
    if not isinstance(raw, list):
        return None
    rows = [dict(r) for r in raw if isinstance(r, Mapping)]
    for r in rows:
        r["price"] = _num(r.get("price"))
        r["resolve_price"] = _num(r.get("resolve_price"))
    rows.sort(key=lambda r: (not r.get("binding", False), -abs(r["price"] or 0.0)))
    return rows


def _binding_by_kind(rules: list[dict[str, Any]] | None) -> list[tuple[str, int]]:
    if not rules:
        return []
    kinds = Counter(_KIND_WORDS.get(str(r.get("kind")), str(r.get("kind")).replace("_", " "))
                    for r in rules if r.get("binding"))
    return kinds.most_common()


def _frontier(round_dir: Path) -> dict[str, Any] | None:
    csv = round_dir / "frontier.csv"
    png = round_dir / "frontier.png"
    if not csv.is_file() and not png.is_file():
        return None
    out: dict[str, Any] = {"rows": [], "image": None, "tiers_image": None, "current": None}
    if csv.is_file():
        df = pd.read_csv(csv)
        out["image"] = _img(plots.frontier_figure(df))
        tier_fig = plots.tier_shares_figure(df)
        out["tiers_image"] = _img(tier_fig) if tier_fig is not None else None
        for rec in df.to_dict("records"):
            row = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                   for k, v in rec.items()}
            row["is_current"] = str(row.get("is_current")).lower() in ("true", "1")
            out["rows"].append(row)
            if row["is_current"]:
                out["current"] = row
    elif png.is_file():
        out["image"] = _img_file(png)
    return out


def _headline(summary: Mapping[str, Any], methods: list[dict[str, Any]]) -> dict[str, Any]:
    rr = next((m for m in methods if m["name"] == "round_robin"), None)
    opt = methods[0]
    verification = summary.get("verification")
    ok = verification.get("ok") if isinstance(verification, Mapping) else None
    counts = summary.get("counts") if isinstance(summary.get("counts"), Mapping) else {}
    return {
        "unit": _UNITS.get(str(summary.get("objective_kind")), "objective"),
        "counts": counts,
        "scores_source": str(summary.get("scores_source") or "").removeprefix("scores: "),
        "notes": list(dict.fromkeys(str(n) for n in summary.get("notes") or [])),
        "status": summary.get("status", "not recorded"),
        "objective": _num(summary.get("objective")),
        "bound": _num(summary.get("bound")),
        "gap": _num(summary.get("gap")),
        "expected": opt["objective"],
        "round_robin": rr["objective"] if rr else None,
        "gain_pct": (100.0 * (opt["objective"] - rr["objective"]) / abs(rr["objective"])
                     if rr and rr["objective"] and opt["objective"] is not None else None),
        "verified": ok,
        "violations": list(verification.get("violations", []))
        if isinstance(verification, Mapping) else [],
    }


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("service.report", "."),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _fmt_num
    env.filters["pct"] = _fmt_pct
    env.filters["signed_pct"] = _fmt_signed_pct
    return env


def _fmt_num(value: Any, digits: int = 1) -> str:
    v = _num(value)
    return "—" if v is None else f"{v:,.{digits}f}"


def _fmt_pct(value: Any, digits: int = 0) -> str:
    v = _num(value)
    return "—" if v is None else f"{100 * v:.{digits}f}%"


def _fmt_signed_pct(value: Any) -> str:
    """A percentage change: ``+36.9%``, ``−26.5%``, and ``0.0%`` for what rounds to zero."""
    v = _num(value)
    if v is None:
        return "—"
    if abs(v) < 0.05:
        return "0.0%"
    return f"{'+' if v > 0 else '−'}{abs(v):.1f}%"


def _assigned(summary: Mapping[str, Any], assignments: pd.DataFrame | None) -> int | None:
    counts = summary.get("counts")
    if isinstance(counts, Mapping) and isinstance(counts.get("assigned"), int):
        return int(counts["assigned"])
    if assignments is None or "partner_id" not in assignments:
        return None
    pid = assignments["partner_id"]
    return int((pid.notna() & (pid.astype(str).str.strip() != "")).sum())


def report_context(round_dir: Path) -> dict[str, Any]:
    """Everything the template shows, from the files of one round."""
    summary = _read_summary(round_dir)
    assign_path = round_dir / "assignments.csv"
    assignments = pd.read_csv(assign_path) if assign_path.is_file() else None
    methods = _methods(summary)
    partners = _partners(summary, assignments)
    fair = _fairness_by_method(summary)
    opt_fair = next((fair[k] for k in (OPTIMIZER_NAME, "optimal") if k in fair), None)

    ctx: dict[str, Any] = {
        "title": f"Lead allocation round — {round_dir.resolve().name}",
        "rules_shown": RULES_SHOWN,
        "headline": _headline(summary, methods),
        "methods": methods,
        "methods_image": None,
        "partners_image": None,
        "partners_summary": None,
        "tiers": None,
        "tiers_image": None,
        "rules": _rules(summary),
        "binding_by_kind": _binding_by_kind(_rules(summary)),
        "held_back": _held_back(summary),
        "frontier": _frontier(round_dir),
        "fairness": opt_fair,
        "timings": summary.get("timings") if isinstance(summary.get("timings"), Mapping) else None,
        "n_assignments": _assigned(summary, assignments),
    }
    if any(m["objective"] is not None for m in methods) and len(methods) > 1:
        ctx["methods_image"] = _img(plots.methods_figure(
            {m["name"]: m["objective"] for m in methods}, ctx["headline"]["unit"]))
    if partners is not None and len(partners):
        ent = partners.get("entitlement")
        floor = partners.get("floor")
        ctx["partners_image"] = _img(plots.partner_distribution_figure(
            partners["leads"].fillna(0).to_numpy(float),
            partners["expected"].fillna(0).to_numpy(float),
            ent.fillna(0).to_numpy(float) if ent is not None else None,
            floor.fillna(0).to_numpy(float) if floor is not None else None,
        ))
        top = partners.sort_values("leads", ascending=False)
        ctx["partners_summary"] = {
            "count": len(partners),
            "with_leads": int((partners["leads"] > 0).sum()),
            "max_leads": int(top["leads"].iloc[0]),
            "median_leads": float(partners["leads"].median()),
        }
    tiers = (opt_fair or {}).get("tiers")
    if isinstance(tiers, list) and tiers:
        ctx["tiers"] = tiers
        ctx["tiers_image"] = _img(plots.tier_figure(tiers))
    return ctx


def build_report(round_dir: str | Path) -> Path:
    """Write ``report.html`` for the round in ``round_dir``.

    Parameters
    ----------
    round_dir : str or Path
        What ``fairlead allocate --out DIR`` wrote (``summary.json`` required;
        ``assignments.csv``, ``frontier.csv`` and ``frontier.png`` used when present).

    Returns
    -------
    Path
        ``round_dir / "report.html"``.

    Raises
    ------
    InputError
        When ``summary.json`` is missing or is not a JSON object.
    """
    root = Path(round_dir)
    html = _environment().get_template(TEMPLATE).render(**report_context(root))
    out = root / "report.html"
    out.write_text(html, encoding="utf-8")
    return out
