"""Pictures for the report and the ``frontier`` command (matplotlib, Agg, no pyplot state).

Each ``*_figure`` function takes plain data (a frontier table, the summary's
dictionaries) and returns a :class:`~matplotlib.figure.Figure`; ``save_png`` and
``png_bytes`` write it to a file or to bytes for embedding.  Nothing here
solves anything: the frontier is computed in :mod:`allocator.frontier`.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

if TYPE_CHECKING:
    from allocator.frontier import Frontier

OPTIMIZER = "#1f5f8b"
BASELINE = "#b8c4cc"
CURRENT = "#d1495b"
MUTED = "#6c7a89"
TIER_COLORS = ("#1f5f8b", "#edae49", "#00798c", "#d1495b", "#66a182", "#8d6a9f")
# Tiers named after metals get their metal's colour; others take TIER_COLORS in turn.
METAL_COLORS = {"platinum": "#4b5d6b", "gold": "#e0a100", "silver": "#9aa5ae",
                "bronze": "#b5651d"}


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _style(ax: Any) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", color="#e5e8eb", linewidth=0.8)
    ax.set_axisbelow(True)


def save_png(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as PNG to ``path`` and return the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out


def png_bytes(fig: Figure) -> bytes:
    """The PNG bytes of ``fig``."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def frontier_table(frontier: Frontier | pd.DataFrame) -> pd.DataFrame:
    """The frontier as a table (a :class:`Frontier` or what ``frontier.csv`` holds)."""
    if isinstance(frontier, pd.DataFrame):
        return frontier
    return frontier.to_frame()


def _as_bool(col: pd.Series) -> pd.Series:
    return col.astype(str).str.lower().isin(["true", "1"])


def _honest_ylim(ax: Any, df: pd.DataFrame) -> None:
    """Show at least 5% of the best objective, so a 0.1% loss does not look like a cliff."""
    values = df["objective"].dropna()
    if values.empty:
        return
    if "bound" in df and "status" in df:
        unproven = df["objective"].notna() & (df["status"].astype(str) != "optimal")
        values = pd.concat([values, df.loc[unproven, "bound"].dropna()])
    top, low = float(values.max()), float(values.min())
    span = max(top - low, 0.05 * abs(top), 1e-9)
    ax.set_ylim(top - 1.1 * span, top + 0.1 * span)


def frontier_figure(frontier: Frontier | pd.DataFrame) -> Figure:
    """Expected conversions against fairness strength, and against Jain's index of leads.

    Points without an allocation are drawn as crosses on the axis with their
    status; the current policy is the red star.
    """
    df = frontier_table(frontier)
    current = _as_bool(df["is_current"]) if "is_current" in df else pd.Series(False, df.index)
    sweep = df[~current | df["alpha"].notna()].sort_values("alpha")
    sweep = sweep[sweep["alpha"].notna()]
    ok = sweep["objective"].notna()
    fig = _new_figure(11.0, 4.2)
    ax1, ax2 = fig.subplots(1, 2)

    proven = ok & (sweep["status"].astype(str) == "optimal")
    ax1.plot(sweep.loc[ok, "alpha"], sweep.loc[ok, "objective"], "-", color=OPTIMIZER)
    ax1.plot(sweep.loc[proven, "alpha"], sweep.loc[proven, "objective"], "o", color=OPTIMIZER,
             label="best allocation at this fairness")
    unproven = ok & ~proven
    if unproven.any():
        # Not proven optimal in the time limit: the best found, and how high it could go.
        ax1.plot(sweep.loc[unproven, "alpha"], sweep.loc[unproven, "objective"], "o",
                 markerfacecolor="white", color=OPTIMIZER,
                 label="best found in the time limit (bar: proven bound)")
        if "bound" in sweep:
            rows = sweep[unproven & sweep["bound"].notna()]
            ax1.vlines(rows["alpha"], rows["objective"], rows["bound"], color=OPTIMIZER,
                       alpha=0.35, linewidth=2)
    if (~ok).any():
        base = float(sweep.loc[ok, "objective"].min()) if ok.any() else 0.0
        ax1.plot(sweep.loc[~ok, "alpha"], [base] * int((~ok).sum()), "x", color=MUTED,
                 markersize=9, label="no allocation (" + ", ".join(
                     sorted(set(sweep.loc[~ok, "status"].astype(str)))) + ")")
    for _, row in sweep[ok].iterrows():
        pct = row.get("yield_lost_pct")
        if pct is not None and not pd.isna(pct) and row["alpha"] > 0 and pct >= 0.05:
            ax1.annotate(f"−{pct:.1f}%", (row["alpha"], row["objective"]),
                         textcoords="offset points", xytext=(0, -14), ha="center",
                         fontsize=8, color=MUTED)
    cur = df[current]
    for _, row in cur.iterrows():
        if pd.isna(row["objective"]):
            continue
        if pd.isna(row["alpha"]):
            ax1.axhline(row["objective"], color=CURRENT, linestyle="--", linewidth=1)
            ax1.annotate("current policy", (1.0, row["objective"]), xytext=(0, 4),
                         textcoords="offset points", color=CURRENT, fontsize=9, ha="right")
        else:
            ax1.plot([row["alpha"]], [row["objective"]], "*", color=CURRENT, markersize=16,
                     label="current policy")
    _honest_ylim(ax1, df)
    ax1.set_xlabel("fairness floor: share of each partner's equal share guaranteed")
    ax1.set_ylabel("expected conversions")
    ax1.set_title("What fairness costs", loc="left", fontsize=11)
    ax1.set_xlim(-0.05, 1.05)
    ax1.legend(fontsize=8, frameon=False, loc="lower left")
    _style(ax1)

    if "jain_leads" in df:
        good = df[df["objective"].notna() & df["jain_leads"].notna()]
        pts = good[~_as_bool(good["is_current"])] if "is_current" in good else good
        ax2.plot(pts["jain_leads"], pts["objective"], "o", color=OPTIMIZER,
                 label="frontier points")
        # Points that coincide get one label ("α 0–0.8"); a label that would overprint
        # one already drawn is left out (the table has every point).
        _honest_ylim(ax2, df)
        (x0, x1), (y0, y1) = ax2.get_xlim(), ax2.get_ylim()
        placed: list[tuple[float, float]] = []
        groups = pts.groupby([pts["jain_leads"].round(4), pts["objective"].round(6)], sort=False)
        for (_, _), grp in groups:
            a = grp["alpha"].dropna()
            if a.empty:
                continue
            x = (float(grp["jain_leads"].iloc[0]) - x0) / ((x1 - x0) or 1.0)
            y = (float(grp["objective"].iloc[0]) - y0) / ((y1 - y0) or 1.0)
            if any(abs(x - px) < 0.09 and abs(y - py) < 0.05 for px, py in placed):
                continue
            text = f"α {a.min():g}" if a.size == 1 else f"α {a.min():g}–{a.max():g}"
            ax2.annotate(text, (grp["jain_leads"].iloc[0], grp["objective"].iloc[0]),
                         textcoords="offset points", xytext=(5, 3), fontsize=7, color=MUTED)
            placed.append((x, y))
        now = good[_as_bool(good["is_current"])] if "is_current" in good else good.iloc[:0]
        ax2.plot(now["jain_leads"], now["objective"], "*", color=CURRENT, markersize=16,
                 label="current policy")
        _honest_ylim(ax2, df)
        ax2.set_xlabel("evenness of leads across partners (Jain's index, 1 = equal)")
        ax2.set_ylabel("expected conversions")
        ax2.set_title("Yield against evenness", loc="left", fontsize=11)
        ax2.legend(fontsize=8, frameon=False, loc="lower left")
    _style(ax2)
    return fig


def plot_frontier(frontier: Frontier | pd.DataFrame, path: str | Path) -> Path:
    """Draw the frontier (see :func:`frontier_figure`) to a PNG file.

    Parameters
    ----------
    frontier : Frontier or DataFrame
        A computed frontier, or the table ``frontier.csv`` holds.
    path : str or Path

    Returns
    -------
    Path
    """
    return save_png(frontier_figure(frontier), path)


def tier_shares_figure(frontier: Frontier | pd.DataFrame) -> Figure | None:
    """Each tier's share of the leads as fairness strength rises (``None`` without tiers)."""
    df = frontier_table(frontier)
    cols = [c for c in df.columns if c.startswith("tier_share[")]
    sweep = df[df["alpha"].notna() & df["objective"].notna()].sort_values("alpha")
    if not cols or sweep.empty:
        return None
    fig = _new_figure(6.0, 3.6)
    ax = fig.subplots()
    for k, col in enumerate(cols):
        tier = col[len("tier_share["):-1]
        ax.plot(sweep["alpha"], 100 * sweep[col], "-o", markersize=3,
                color=METAL_COLORS.get(tier.lower(), TIER_COLORS[k % len(TIER_COLORS)]),
                label=tier)
    ax.set_xlabel("fairness floor (share of equal share)")
    ax.set_ylabel("% of assigned leads")
    ax.set_ylim(0, min(100.0, 100 * float(sweep[cols].max().max()) * 1.15 + 1))
    ax.set_title("Share of leads per tier", loc="left", fontsize=11)
    ax.legend(fontsize=8, frameon=False)
    _style(ax)
    return fig


def methods_figure(methods: Mapping[str, float | None], unit: str = "expected conversions"
                   ) -> Figure:
    """The objective per method (``unit``), the optimizer first and highlighted."""
    names = list(methods)
    values = [math.nan if (v := methods[n]) is None else float(v) for n in names]
    fig = _new_figure(7.0, 0.5 + 0.45 * len(names))
    ax = fig.subplots()
    colors = [OPTIMIZER if k == 0 else BASELINE for k in range(len(names))]
    y = np.arange(len(names))[::-1]
    ax.barh(y, values, color=colors)
    top = np.nanmax(values) if np.isfinite(values).any() else 1.0
    for yy, v in zip(y, values, strict=True):
        if math.isfinite(v):
            ax.text(v + 0.01 * top, yy, f"{v:,.1f}", va="center", fontsize=9)
    ax.set_yticks(y, [n.replace("_", " ") for n in names])
    ax.set_xlabel(unit)
    ax.set_xlim(0, top * 1.15 if top > 0 else 1)
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def partner_distribution_figure(
    leads: Sequence[float] | np.ndarray,
    expected: Sequence[float] | np.ndarray,
    entitlement: Sequence[float] | np.ndarray | None = None,
    floor: Sequence[float] | np.ndarray | None = None,
) -> Figure:
    """Leads and expected conversions per partner, largest first, and their Lorenz curves.

    The equal share of its eligible leads (``entitlement``) and the floor are
    drawn over each partner's bar when given.
    """
    lead_arr = np.asarray(leads, dtype=float)
    exp_arr = np.asarray(expected, dtype=float)
    order = np.argsort(-lead_arr, kind="stable")
    fig = _new_figure(11.0, 3.8)
    ax1, ax2 = fig.subplots(1, 2, width_ratios=[1.6, 1])
    x = np.arange(lead_arr.size)
    ax1.bar(x, lead_arr[order], color=OPTIMIZER, width=1.0, label="leads received")
    if entitlement is not None:
        ent = np.asarray(entitlement, dtype=float)[order]
        ax1.step(x, ent, where="mid", color=CURRENT, linewidth=1,
                 label="equal share of its eligible leads")
    if floor is not None and np.asarray(floor, dtype=float).any():
        ax1.step(x, np.asarray(floor, dtype=float)[order], where="mid", color="#edae49",
                 linewidth=1.2, label="floor")
    ax1.set_xlabel(f"partners, most leads first ({lead_arr.size})")
    ax1.set_ylabel("leads")
    ax1.set_title("Leads per partner", loc="left", fontsize=11)
    ax1.legend(fontsize=8, frameon=False)
    _style(ax1)

    for values, label, color in ((lead_arr, "leads", OPTIMIZER),
                                 (exp_arr, "expected conversions", "#edae49")):
        v = np.sort(np.clip(values, 0, None))
        if v.sum() > 0:
            cum = np.concatenate([[0.0], np.cumsum(v) / v.sum()])
            ax2.plot(np.linspace(0, 1, cum.size), cum, color=color, label=label)
    ax2.plot([0, 1], [0, 1], color=MUTED, linestyle=":", linewidth=1, label="perfectly even")
    ax2.set_xlabel("share of partners (fewest first)")
    ax2.set_ylabel("share received")
    ax2.set_title("How evenly it is spread", loc="left", fontsize=11)
    ax2.legend(fontsize=8, frameon=False)
    _style(ax2)
    return fig


def tier_figure(tiers: Sequence[Mapping[str, Any]]) -> Figure:
    """Each tier's share of leads and of expected conversions, with the policy's range."""
    names = [str(t["tier"]) for t in tiers]
    fig = _new_figure(7.0, 0.8 + 0.6 * len(names))
    ax = fig.subplots()
    y = np.arange(len(names))[::-1].astype(float)
    share = [100 * float(t.get("share") or 0.0) for t in tiers]
    exp = [100 * float(t.get("expected_share") or 0.0) for t in tiers]
    ax.barh(y + 0.2, share, height=0.38, color=OPTIMIZER, label="share of leads")
    ax.barh(y - 0.2, exp, height=0.38, color="#edae49", label="share of expected conversions")
    for yy, t in zip(y, tiers, strict=True):
        lo, hi = t.get("policy_min_share"), t.get("policy_max_share")
        if lo is not None or hi is not None:
            lo_v = 100 * float(lo or 0.0)
            hi_v = 100 * float(hi if hi is not None else 1.0)
            ax.barh(yy, hi_v - lo_v, left=lo_v, height=0.95, color=CURRENT, alpha=0.13,
                    zorder=0)
    handles, _ = ax.get_legend_handles_labels()
    handles.append(Patch(facecolor=CURRENT, alpha=0.13, label="range the policy allows"))
    ax.set_yticks(y, names)
    ax.set_xlabel("% of the round")
    ax.set_xlim(0, 100)
    ax.legend(handles=handles, fontsize=8, frameon=False, loc="lower right")
    ax.spines[["top", "right"]].set_visible(False)
    return fig
