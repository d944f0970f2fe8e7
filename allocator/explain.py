"""Why each lead went where it went (SPEC.md, "What every answer carries").

:func:`explain_allocation` reads a solved round and answers, for every lead,
which partner got it, its score and rank among the eligible partners, how many
partners were eligible, and — when a better-scoring partner did not get it —
the one rule that stopped that partner, with the rule's price.  It also gives,
per partner, what it received and whether its floor and cap bound, and, per
rule, whether it binds and what it costs.

How the stopping rule is found
------------------------------
Let ``j*`` be the lead's best-scoring eligible partner and ``j`` the partner it
got.  Moving the lead from ``j`` to ``j*`` is checked against the round's
rules in this order; the first rule the move would break is the one named:

1. ``cap[partner=j*]`` — ``j*`` has no room left for this lead's effort;
2. ``max_share_per_partner[partner=j*]`` — ``j*`` already has the most leads one partner may get;
3. ``tier_share[tier=T*]`` — ``j*``'s tier is at its max share (tiers differ);
4. ``quota[tier=T*,intent=q]`` — the quota of ``j*``'s tier on this lead's intent is full;
5. ``floor[partner=j]`` — ``j`` is at (or under) its floor: the lead was pulled down to meet it;
6. ``tier_share[tier=T]`` / ``quota[tier=T,intent=q]`` — ``j``'s tier is at a min share or quota;
7. otherwise a price trade-off (``j*``'s price is above the score gain), or,
   when no price explains it, the solver's gap or score resolution.

A lead left unassigned is explained by its best score (not positive while the
round need not place every lead) or by what blocked each of its eligible
partners.  Prices come from the :class:`~allocator.problem.Allocation`
(``rules`` and ``partner_price``) with their ``price_source``; this module
computes none.  Everything is vectorized over pairs; only the final sentence
is formatted per lead.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from allocator.problem import Allocation, AllocationProblem, RulePrice

_EPS = 1e-9
# How many blocked partners an unassigned lead's reason names before "and N more".
_NAMED = 3

KIND_BEST = "best"
KIND_OWNER = "account_owner"
STOP_KINDS = ("cap", "max_share_per_partner", "tier_max", "quota_max", "floor", "tier_min",
              "quota_min", "price", "unexplained")


class EligibilityLike(Protocol):
    """What :func:`explain_allocation` reads from :class:`allocator.eligibility.Eligibility`."""

    @property
    def held_back(self) -> pd.DataFrame: ...

    @property
    def owner_notes(self) -> pd.DataFrame: ...

    def excluded_counts(self, lead_id: str) -> dict[str, int]: ...


@dataclass(frozen=True, eq=False)
class Explanation:
    """The reasons of one round.

    Attributes
    ----------
    leads : DataFrame
        One row per lead of the problem, then one per held-back lead:
        ``lead_id``, ``status`` ("assigned", "unassigned", "held_back"),
        ``partner_id`` (empty when none), ``score``, ``rank`` (1 = best score
        among its eligible partners, ties share a rank), ``n_eligible``,
        ``best_partner_id``, ``best_score``, ``reason_kind``, ``reason`` (in
        words), ``stopped_by_rule`` (stable rule name or empty),
        ``stopped_by_partner``, ``price`` and ``price_source`` of that rule,
        ``excluded`` (rules that made other partners ineligible, with counts).
    partners : DataFrame
        ``partner_id``, ``tier``, ``received``, ``units_used``, ``capacity``,
        ``expected_value``, ``floor``, ``floor_binding``, ``cap_binding``,
        ``floor_shortfall``, ``price``, ``cap_price``, ``floor_price``.
    rules : list of dict
        Every :class:`~allocator.problem.RulePrice` of the round as a dict.
    """

    leads: pd.DataFrame
    partners: pd.DataFrame
    rules: list[dict[str, Any]]


def fmt(x: float) -> str:
    """A number as a person reads it: 0.312, 4.25, 12,500."""
    if x is None or not math.isfinite(x):
        return "n/a"
    a = abs(x)
    if a >= 1000 or float(x).is_integer():
        return f"{x:,.0f}"
    if a >= 10:
        return f"{x:.1f}"
    if a >= 1:
        return f"{x:.2f}".rstrip("0").rstrip(".")
    return f"{x:.3g}"


def _source(source: str) -> str:
    """Where a price comes from, as a trailing clause: " (flow potentials)"."""
    if not source:
        return ""
    return f", from {source}" if "(" in source else f" ({source})"


def _leads(x: float) -> str:
    return f"{fmt(x)} lead" if x == 1 else f"{fmt(x)} leads"


@dataclass(frozen=True)
class _Limit:
    limit: float
    used: float
    price: float
    source: str


class _RuleBook:
    """The round's rules by name; limits fall back to the problem when the solver gave none."""

    def __init__(self, problem: AllocationProblem, allocation: Allocation) -> None:
        self.by_name: dict[str, list[RulePrice]] = {}
        for r in allocation.rules:
            self.by_name.setdefault(r.rule, []).append(r)
        self.default_source = allocation.price_source or "solver"
        self.problem = problem

    def find(self, name: str, direction: str | None = None) -> RulePrice | None:
        found = self.by_name.get(name, [])
        if direction is not None and len(found) > 1:
            pick = [r for r in found if direction in r.kind]
            found = pick or found
        return found[0] if found else None

    def price(self, name: str, direction: str | None = None) -> tuple[float, str]:
        r = self.find(name, direction)
        if r is None:
            return math.nan, ""
        return float(r.price), r.price_source or self.default_source


def _directed(r: RulePrice | None, direction: str) -> RulePrice | None:
    """``r`` unless its kind names the other direction (a max rule is no min limit)."""
    if r is None:
        return None
    other = "min" if direction == "max" else "max"
    return None if other in r.kind and direction not in r.kind else r


def _tier_limits(problem: AllocationProblem, book: _RuleBook, tier_used: dict[str, int]
                 ) -> tuple[dict[str, _Limit], dict[str, _Limit]]:
    """Per tier, the max-share and min-share limits in leads (counts of the round size)."""
    at_max: dict[str, _Limit] = {}
    at_min: dict[str, _Limit] = {}
    n = problem.round_size or problem.n_leads
    for t in problem.tiers:
        name = t.rule_name
        for share, direction, out in ((t.max_share, "max", at_max), (t.min_share, "min", at_min)):
            if share is None:
                continue
            r = _directed(book.find(name, direction), direction)
            default = math.floor(share * n + _EPS) if direction == "max" else math.ceil(
                share * n - _EPS)
            limit = float(r.limit) if r is not None else float(default)
            price, source = (float(r.price), r.price_source) if r is not None else (math.nan, "")
            out[t.name] = _Limit(limit, tier_used.get(t.name, 0), price, source)
    return at_max, at_min


def _quota_limits(problem: AllocationProblem, book: _RuleBook,
                  used: dict[tuple[str, str], int], intent_total: dict[str, int]
                  ) -> tuple[dict[tuple[str, str], _Limit], dict[tuple[str, str], _Limit]]:
    at_max: dict[tuple[str, str], _Limit] = {}
    at_min: dict[tuple[str, str], _Limit] = {}
    for q in problem.quotas:
        key = (q.tier, q.intent)
        total = intent_total.get(q.intent, 0)
        for share, direction, out in ((q.max_share, "max", at_max), (q.min_share, "min", at_min)):
            if share is None:
                continue
            r = _directed(book.find(q.rule_name, direction), direction)
            default = math.floor(share * total + _EPS) if direction == "max" else math.ceil(
                share * total - _EPS)
            limit = float(r.limit) if r is not None else float(default)
            price, source = (float(r.price), r.price_source) if r is not None else (math.nan, "")
            out[key] = _Limit(limit, used.get(key, 0), price, source)
    return at_max, at_min


@dataclass
class _Round:
    """Per-partner and per-lead state of the solved round, as arrays."""

    lead_partner: np.ndarray
    lead_pair: np.ndarray
    effort: np.ndarray
    units: np.ndarray
    count: np.ndarray
    chosen_score: np.ndarray
    best_pair: np.ndarray
    n_eligible: np.ndarray
    rank: np.ndarray
    by_lead: np.ndarray
    starts: np.ndarray


def _round_state(problem: AllocationProblem, allocation: Allocation) -> _Round:
    n, m = problem.n_leads, problem.n_partners
    lp = np.asarray(allocation.lead_partner, dtype=np.int64)
    pair = np.asarray(allocation.lead_pair, dtype=np.int64)
    score = np.asarray(problem.pair_score, dtype=float)
    bad = (lp >= 0) & ((pair < 0) | (problem.pair_partner[np.maximum(pair, 0)] != lp)
                       | (problem.pair_lead[np.maximum(pair, 0)] != np.arange(n)))
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"Allocation.lead_pair of lead '{problem.lead_ids[i]}' does not match "
                         f"its lead_partner {int(lp[i])}.")
    effort = (np.ones(problem.n_pairs) if problem.pair_effort is None
              else np.asarray(problem.pair_effort, dtype=float))
    assigned = lp >= 0
    units = np.bincount(lp[assigned], weights=effort[pair[assigned]], minlength=m)
    count = np.bincount(lp[assigned], minlength=m)
    chosen_score = np.full(n, np.nan)
    chosen_score[assigned] = score[pair[assigned]]
    n_eligible = np.bincount(problem.pair_lead, minlength=n)
    order = np.lexsort((problem.pair_partner, -score, problem.pair_lead))
    first = np.searchsorted(problem.pair_lead[order], np.arange(n))
    best_pair = np.full(n, -1, dtype=np.int64)
    has = n_eligible > 0
    best_pair[has] = order[first[has]]
    above = score > chosen_score[problem.pair_lead] + _EPS  # NaN (unassigned) compares False
    rank = np.where(assigned, 1 + np.bincount(problem.pair_lead[above], minlength=n), 0)
    return _Round(lp, pair, effort, units, count, chosen_score, best_pair, n_eligible, rank,
                  order, np.searchsorted(problem.pair_lead[order], np.arange(n + 1)))


def _excluded_text(eligibility: EligibilityLike | None, lead_ids: Sequence[str],
                   table: pd.DataFrame | None = None) -> list[str]:
    """Per lead, "territory 12, certification 3": partners each rule made ineligible."""
    if table is None and eligibility is not None:
        table_of = getattr(eligibility, "excluded_counts_table", None)
        if callable(table_of):  # one vectorized pass when eligibility offers it
            table = table_of(list(lead_ids))
    if table is not None:
        rules = [c for c in table.columns if c not in ("lead_id", "eligible")]
        counts = table[rules].to_numpy(dtype=np.int64)
        names = [r.replace("_", " ") for r in rules]
        return [", ".join(f"{names[k]} {c}" for k, c in enumerate(row) if c > 0)
                for row in counts.tolist()]
    if eligibility is None:
        return [""] * len(lead_ids)
    out = []
    for lead in lead_ids:
        found = eligibility.excluded_counts(str(lead))
        parts = [f"{rule.replace('_', ' ')} {c}" for rule, c in found.items()
                 if rule != "eligible" and c > 0]
        out.append(", ".join(parts))
    return out


def explain_allocation(problem: AllocationProblem, allocation: Allocation,
                       eligibility: EligibilityLike | None = None, *,
                       value_unit: str | None = None,
                       excluded: pd.DataFrame | None = None) -> Explanation:
    """Explain every lead, partner and rule of a solved round.

    Parameters
    ----------
    problem : AllocationProblem
    allocation : Allocation
        The solver's answer for ``problem``; its ``rules`` and
        ``partner_price`` supply the prices quoted.
    eligibility : Eligibility, optional
        When given, each lead's reason counts the partners each eligibility
        rule excluded, account owners are named, and the held-back leads are
        appended with their reasons.
    value_unit : str, optional
        What a score measures, used in the sentences; by default "expected
        revenue" when ``problem.objective`` is revenue, else "expected conversions".
    excluded : DataFrame, optional
        Per lead of the problem (same order), how many partners each
        eligibility rule excluded: one column per rule as
        ``Eligibility.excluded_counts`` names them (``eligible`` is ignored).
        Without it the counts are asked of ``eligibility`` lead by lead.

    Returns
    -------
    Explanation

    Raises
    ------
    ValueError
        If the allocation's pairs do not match the problem.
    """
    if value_unit is None:
        revenue = getattr(problem, "objective", "conversions") == "revenue"
        value_unit = "expected revenue" if revenue else "expected conversions"
    st = _round_state(problem, allocation)
    book = _RuleBook(problem, allocation)
    n = problem.n_leads
    score = np.asarray(problem.pair_score, dtype=float)
    tiers = np.asarray(problem.partner_tier).astype(str)
    intents = np.asarray(problem.lead_intent).astype(str)
    pids = np.asarray(problem.partner_ids).astype(str)
    assigned = st.lead_partner >= 0

    t_of = tiers[st.lead_partner[assigned]].tolist()
    tier_used: dict[str, int] = dict(Counter(t_of))
    quota_used: dict[tuple[str, str], int] = dict(
        Counter(zip(t_of, intents[assigned].tolist(), strict=True)))
    intent_total: dict[str, int] = dict(Counter(intents.tolist()))
    tier_max, tier_min = _tier_limits(problem, book, tier_used)
    quota_max, quota_min = _quota_limits(problem, book, quota_used, intent_total)
    max_per = problem.max_per_partner

    # --- what blocks each pair, given everyone else stays where they are --------------------
    pl, pp = problem.pair_lead, problem.pair_partner
    own = st.lead_partner[pl]
    cur_tier = np.where(own >= 0, tiers[np.maximum(own, 0)], "\0none")
    other_tier = tiers[pp] != cur_tier
    cap_block = (pp != own) & (st.units[pp] + st.effort > problem.capacity_units[pp] + _EPS)
    per_block = (pp != own) & (max_per is not None) & (st.count[pp] >= (max_per or 0))
    full_tiers = [t for t, lim in tier_max.items() if lim.used >= lim.limit - _EPS]
    tier_block = other_tier & np.isin(tiers[pp], full_tiers)
    full_quotas = {k for k, lim in quota_max.items() if lim.used >= lim.limit - _EPS}
    quota_block = other_tier & _in_pairs(tiers[pp], intents[pl], full_quotas)
    blocked = cap_block | per_block | tier_block | quota_block

    # Pull on the lead from where it sits (floors, min shares) — per lead.
    lp_safe = np.maximum(st.lead_partner, 0)
    floor_pull = assigned & (st.count[lp_safe] <= np.asarray(problem.floor)[lp_safe]) & (
        np.asarray(problem.floor)[lp_safe] > 0)
    low_tiers = [t for t, lim in tier_min.items() if lim.used <= lim.limit + _EPS]
    low_quotas = {k for k, lim in quota_min.items() if lim.used <= lim.limit + _EPS}

    # --- per-lead classification ----------------------------------------------------------------
    bp = st.best_pair
    bp_safe = np.maximum(bp, 0)
    best_score = np.where(bp >= 0, score[bp_safe], np.nan)
    best_partner = np.where(bp >= 0, pp[bp_safe], -1)
    better = assigned & (best_score > st.chosen_score + _EPS)
    moves_tier = tiers[best_partner.clip(0)] != tiers[lp_safe]
    tier_pull = better & moves_tier & np.isin(tiers[lp_safe], low_tiers)
    quota_pull = better & moves_tier & _in_pairs(tiers[lp_safe], intents, low_quotas)
    kind = np.full(n, "", dtype=object)
    kind[assigned & ~better] = KIND_BEST
    checks = (("cap", cap_block), ("max_share_per_partner", per_block),
              ("tier_max", tier_block), ("quota_max", quota_block))
    for name, block in checks:
        hit = better & (kind == "") & block[bp_safe]
        kind[hit] = name
    kind[better & (kind == "") & floor_pull] = "floor"
    kind[tier_pull & (kind == "")] = "tier_min"
    kind[quota_pull & (kind == "")] = "quota_min"
    kind[better & (kind == "")] = "price"

    unassigned = ~assigned & (st.n_eligible > 0)
    open_pairs = np.bincount(pl[~blocked], minlength=n)
    nonpositive = unassigned & (best_score <= 0) & (not problem.assign_all)
    kind[nonpositive] = "unassigned_nonpositive"
    kind[unassigned & (kind == "") & (open_pairs == 0)] = "unassigned_blocked"
    kind[unassigned & (kind == "")] = "unassigned_price"
    kind[st.n_eligible == 0] = "no_eligible_partner"

    owner_of = _owner_map(eligibility)
    lead_ids = np.asarray(problem.lead_ids).astype(str)
    excluded_words = _excluded_text(eligibility, lead_ids.tolist(), excluded)
    prices = np.asarray(allocation.partner_price, dtype=float)
    ctx = _Context(problem, allocation, book, st, pids, tiers, intents, prices, tier_max,
                   tier_min, quota_max, quota_min, value_unit, blocked, cap_block, per_block,
                   tier_block, quota_block, st.by_lead, st.starts)

    rows_rule: list[str] = [""] * n
    rows_partner: list[str] = [""] * n
    rows_price = np.full(n, np.nan)
    rows_source: list[str] = [""] * n
    reasons: list[str] = [""] * n
    for i in range(n):
        k = kind[i]
        if k == KIND_BEST and owner_of.get(lead_ids[i]) == pids[st.lead_partner[i]]:
            kind[i] = k = KIND_OWNER
        text, rule, partner, price, source = ctx.sentence(i, k, int(best_partner[i]),
                                                          float(best_score[i]))
        if excluded_words[i]:
            text += f"; partners excluded by rule: {excluded_words[i]}"
        reasons[i], rows_rule[i], rows_partner[i] = text, rule, partner
        rows_price[i], rows_source[i] = price, source

    leads = pd.DataFrame({
        "lead_id": lead_ids,
        "status": np.where(assigned, "assigned", "unassigned"),
        "partner_id": np.where(assigned, pids[lp_safe], ""),
        "score": st.chosen_score,
        "rank": pd.array(np.where(assigned, st.rank, 0), dtype="Int64"),
        "n_eligible": st.n_eligible.astype(np.int64),
        "best_partner_id": np.where(best_partner >= 0, pids[best_partner.clip(0)], ""),
        "best_score": best_score,
        "reason_kind": kind.astype(str),
        "reason": reasons,
        "stopped_by_rule": rows_rule,
        "stopped_by_partner": rows_partner,
        "price": rows_price,
        "price_source": rows_source,
        "excluded": excluded_words,
    })
    leads.loc[~assigned, "rank"] = pd.NA
    leads = pd.concat([leads, _held_back_rows(eligibility)], ignore_index=True)
    return Explanation(leads=leads, partners=_partner_frame(problem, allocation, st, book, score),
                       rules=[asdict(r) for r in allocation.rules])


def _in_pairs(a: np.ndarray, b: np.ndarray, keys: set[tuple[str, str]]) -> np.ndarray:
    if not keys:
        return np.zeros(len(a), dtype=bool)
    out = np.zeros(len(a), dtype=bool)
    for t, q in keys:
        out |= (a == t) & (b == q)
    return out


def _owner_map(eligibility: EligibilityLike | None) -> dict[str, str]:
    notes = getattr(eligibility, "owner_notes", None)
    if notes is None or len(notes) == 0:
        return {}
    ok = notes[notes["owner_eligible"].astype(bool)]
    return dict(zip(ok["lead_id"].astype(str), ok["owner_partner_id"].astype(str), strict=True))


def _held_back_rows(eligibility: EligibilityLike | None) -> pd.DataFrame:
    held = getattr(eligibility, "held_back", None)
    if held is None or len(held) == 0:
        return pd.DataFrame()
    k = len(held)
    return pd.DataFrame({
        "lead_id": held["lead_id"].astype(str).to_numpy(),
        "status": ["held_back"] * k, "partner_id": [""] * k, "score": np.full(k, np.nan),
        "rank": pd.array([pd.NA] * k, dtype="Int64"), "n_eligible": np.zeros(k, dtype=np.int64),
        "best_partner_id": [""] * k, "best_score": np.full(k, np.nan),
        "reason_kind": ["held_back"] * k,
        "reason": ["held back: " + str(r) for r in held["reason"]],
        "stopped_by_rule": [str(r) for r in held.get("rule", pd.Series([""] * k))],
        "stopped_by_partner": [""] * k, "price": np.full(k, np.nan), "price_source": [""] * k,
        "excluded": [""] * k,
    })


@dataclass
class _Context:
    """Everything a sentence needs; one method per kind of reason."""

    problem: AllocationProblem
    allocation: Allocation
    book: _RuleBook
    st: _Round
    pids: np.ndarray
    tiers: np.ndarray
    intents: np.ndarray
    prices: np.ndarray
    tier_max: dict[str, _Limit]
    tier_min: dict[str, _Limit]
    quota_max: dict[tuple[str, str], _Limit]
    quota_min: dict[tuple[str, str], _Limit]
    unit: str
    blocked: np.ndarray
    cap_block: np.ndarray
    per_block: np.ndarray
    tier_block: np.ndarray
    quota_block: np.ndarray
    by_lead: np.ndarray  # pair indices grouped by lead, best score first
    starts: np.ndarray  # pairs of lead i: by_lead[starts[i]:starts[i + 1]]

    def sentence(self, i: int, kind: str, jb: int, best: float
                 ) -> tuple[str, str, str, float, str]:
        """(reason, stopped_by_rule, stopped_by_partner, price, price_source) of lead ``i``."""
        st = self.st
        j = int(st.lead_partner[i])
        if kind in (KIND_BEST, KIND_OWNER):
            s = fmt(float(st.chosen_score[i]))
            if kind == KIND_OWNER:
                return f"{self.pids[j]} is its account owner (score {s})", "", "", math.nan, ""
            ne = int(st.n_eligible[i])
            if ne == 1:
                return f"{self.pids[j]} is its only eligible partner (score {s})", "", "", \
                    math.nan, ""
            return (f"{self.pids[j]} has the best score of its {ne} eligible partners ({s})",
                    "", "", math.nan, "")
        if kind.startswith("unassigned") or kind == "no_eligible_partner":
            return self._unassigned(i, kind, jb, best)
        head = (f"given to {self.pids[j]} (score {fmt(float(st.chosen_score[i]))}, rank "
                f"{int(st.rank[i])} of {int(st.n_eligible[i])})")
        pb = self.pids[jb]
        mine = fmt(float(st.chosen_score[i]))
        better = f"partner {pb} had a higher score ({fmt(best)} vs {mine})"
        method: Callable[..., tuple[str, str, str, float, str]] = getattr(self, f"_{kind}")
        text, rule, partner, price, source = method(i, j, jb, best)
        if kind in ("floor", "tier_min", "quota_min"):
            return f"{head} {text}; {better}", rule, partner, price, source
        return f"{head}: {better} but {text}", rule, partner, price, source

    # -- a better partner stopped by its own limit ------------------------------------------
    def _worth(self, price: float, source: str, what: str) -> str:
        if not math.isfinite(price):
            return ""
        return f"; {what} is worth {fmt(price)} {self.unit}{_source(source)}"

    def _cap(self, i: int, j: int, jb: int, best: float) -> tuple[str, str, str, float, str]:
        st, p = self.st, self.problem
        rule = f"cap[partner={self.pids[jb]}]"
        found = self.book.find(rule)
        if found is not None and found.binding:
            price, source = float(found.price), found.price_source or self.book.default_source
        elif self.prices[jb] > 0:  # full for this lead's effort, not for a unit lead
            price, source = float(self.prices[jb]), self.book.default_source
        else:
            price, source = math.nan, ""
        cap = float(p.capacity_units[jb])
        k = int(st.best_pair[i])
        if p.pair_effort is None:
            text = f"its capacity of {fmt(cap)} was full"
        else:
            left = max(cap - float(st.units[jb]), 0.0)
            text = (f"its capacity of {fmt(cap)} units had {fmt(left)} left, less than this "
                    f"lead's effort of {fmt(float(st.effort[k]))}")
        text += self._worth(price, source, "one more unit of that cap")
        return text, rule, self.pids[jb], price, source

    def _max_share_per_partner(self, i: int, j: int, jb: int, best: float
                               ) -> tuple[str, str, str, float, str]:
        rule = f"max_share_per_partner[partner={self.pids[jb]}]"
        price, source = self.book.price(rule)
        if not math.isfinite(price):
            price, source = self.book.price("max_share_per_partner")
        text = (f"it already had {self.problem.max_per_partner} leads, the most one partner may "
                f"get in this round") + self._worth(price, source, "one more lead of that limit")
        return text, rule, self.pids[jb], price, source

    def _tier_max(self, i: int, j: int, jb: int, best: float) -> tuple[str, str, str, float, str]:
        t = self.tiers[jb]
        lim = self.tier_max[t]
        rule = f"tier_share[tier={t}]"
        text = (f"tier {t} was at its max share ({_leads(lim.limit)})"
                + self._worth(lim.price, lim.source, "one more lead of that share"))
        return text, rule, self.pids[jb], lim.price, lim.source

    def _quota_max(self, i: int, j: int, jb: int, best: float
                   ) -> tuple[str, str, str, float, str]:
        t, q = self.tiers[jb], self.intents[i]
        lim = self.quota_max[(t, q)]
        rule = f"quota[tier={t},intent={q}]"
        text = (f"the quota of tier {t} on {q}-intent leads was full ({_leads(lim.limit)})"
                + self._worth(lim.price, lim.source, "one more lead of that quota"))
        return text, rule, self.pids[jb], lim.price, lim.source

    # -- pulled down by a rule on the receiving side -----------------------------------------
    def _floor(self, i: int, j: int, jb: int, best: float) -> tuple[str, str, str, float, str]:
        rule = f"floor[partner={self.pids[j]}]"
        price, source = self.book.price(rule)
        if not math.isfinite(price) and self.prices[j] < 0:
            price, source = -float(self.prices[j]), self.book.default_source
        fl = int(self.problem.floor[j])
        text = f"to meet {self.pids[j]}'s floor of {fl} lead{'s' if fl != 1 else ''}"
        if math.isfinite(price):
            text += f"; floor price {fmt(price)}{_source(source)}"
        return text, rule, self.pids[j], price, source

    def _tier_min(self, i: int, j: int, jb: int, best: float) -> tuple[str, str, str, float, str]:
        t = self.tiers[j]
        lim = self.tier_min[t]
        text = f"to meet tier {t}'s min share ({_leads(lim.limit)})"
        if math.isfinite(lim.price):
            text += f"; price {fmt(lim.price)}{_source(lim.source)}"
        return text, f"tier_share[tier={t}]", self.pids[j], lim.price, lim.source

    def _quota_min(self, i: int, j: int, jb: int, best: float
                   ) -> tuple[str, str, str, float, str]:
        t, q = self.tiers[j], self.intents[i]
        lim = self.quota_min[(t, q)]
        text = f"to meet the quota of tier {t} on {q}-intent leads ({_leads(lim.limit)})"
        if math.isfinite(lim.price):
            text += f"; price {fmt(lim.price)}{_source(lim.source)}"
        return text, f"quota[tier={t},intent={q}]", self.pids[j], lim.price, lim.source

    # -- nothing binds on the move: prices or the solver's tolerance -------------------------
    def _price(self, i: int, j: int, jb: int, best: float) -> tuple[str, str, str, float, str]:
        gain = best - float(self.st.chosen_score[i])
        lam = float(self.prices[jb]) - (float(self.prices[j]) if j >= 0 else 0.0)
        source = self.book.default_source
        if math.isfinite(lam) and lam >= gain - _EPS and lam > 0:
            return (f"its remaining room was worth more on other leads: its price {fmt(lam)} "
                    f"exceeds the score gain {fmt(gain)}{_source(source)}", "", self.pids[jb], lam,
                    source)
        return self._unexplained(gain), "", self.pids[jb], math.nan, ""

    def _unexplained(self, gain: float) -> str:
        a = self.allocation
        if a.status != "optimal" or a.gap > 1e-6:
            return (f"the solver stopped before proving this round optimal (status {a.status}, "
                    f"gap {100 * a.gap:.2g}%); moving the lead would gain {fmt(gain)}")
        return (f"no single rule stopped it: the gain of {fmt(gain)} is within the solver's "
                "score resolution")

    def _unassigned(self, i: int, kind: str, jb: int, best: float
                    ) -> tuple[str, str, str, float, str]:
        if kind == "no_eligible_partner":
            return "not assigned: no partner is eligible", "", "", math.nan, ""
        if kind == "unassigned_nonpositive":
            return (f"not assigned: its best score ({fmt(best)}, partner {self.pids[jb]}) is not "
                    "positive and the round need not place every lead (assign_all is off)",
                    "", self.pids[jb], math.nan, "")
        p = self.problem
        ks = self.by_lead[self.starts[i]:self.starts[i + 1]]  # best score first
        if kind == "unassigned_blocked":
            parts, first = [], None
            for k in ks[:_NAMED]:
                jj = int(p.pair_partner[k])
                what, rule, price, source = self._block_words(i, int(k), jj)
                parts.append(what)
                if first is None:
                    first = (rule, self.pids[jj], price, source)
            more = f" and {len(ks) - _NAMED} more" if len(ks) > _NAMED else ""
            n_el = int(self.st.n_eligible[i])
            who = ("its only eligible partner was" if n_el == 1
                   else f"all {n_el} eligible partners were")
            text = f"not assigned: {who} full or at a limit: {'; '.join(parts)}{more}"
            assert first is not None
            return (text, *first)
        open_k = [int(k) for k in ks if not self.blocked[k]]
        k = open_k[0]
        jj = int(p.pair_partner[k])
        sc = float(p.pair_score[k])
        lam = float(self.prices[jj])
        if math.isfinite(lam) and lam >= sc - _EPS and lam > 0:
            return (f"not assigned: partner {self.pids[jj]} had room, but its price {fmt(lam)} "
                    f"{_source(self.book.default_source)} exceeds this lead's score there "
                    f"({fmt(sc)}); "
                    "its room is worth more on other leads", "", self.pids[jj], lam,
                    self.book.default_source)
        return ("not assigned: " + self._unexplained(sc), "", self.pids[jj], math.nan, "")

    def _block_words(self, i: int, k: int, j: int) -> tuple[str, str, float, str]:
        pid = self.pids[j]
        if self.cap_block[k]:
            rule = f"cap[partner={pid}]"
            price, source = self.book.price(rule)
            if not math.isfinite(price):
                price, source = float(self.prices[j]), self.book.default_source
            words = f"{pid} capacity {fmt(float(self.problem.capacity_units[j]))} full"
        elif self.per_block[k]:
            rule = f"max_share_per_partner[partner={pid}]"
            price, source = self.book.price(rule)
            words = f"{pid} at the most leads one partner may get ({self.problem.max_per_partner})"
        elif self.tier_block[k]:
            t = str(self.tiers[j])
            lim = self.tier_max[t]
            rule, price, source = f"tier_share[tier={t}]", lim.price, lim.source
            words = f"{pid}'s tier {t} at its max share"
        else:
            t, q = str(self.tiers[j]), str(self.intents[i])
            lim = self.quota_max[(t, q)]
            rule, price, source = f"quota[tier={t},intent={q}]", lim.price, lim.source
            words = f"{pid}'s tier {t} at its quota on {q}-intent leads"
        if math.isfinite(price):
            words += f" (price {fmt(price)})"
        return words, rule, price, source


def _partner_frame(problem: AllocationProblem, allocation: Allocation, st: _Round,
                   book: _RuleBook, score: np.ndarray) -> pd.DataFrame:
    m = problem.n_partners
    pids = np.asarray(problem.partner_ids).astype(str)
    assigned = st.lead_partner >= 0
    value = np.bincount(st.lead_partner[assigned], weights=score[st.lead_pair[assigned]],
                        minlength=m)
    cap = np.asarray(problem.capacity_units, dtype=float)
    floor = np.asarray(problem.floor, dtype=np.int64)
    cap_binding = st.units >= cap - _EPS
    floor_binding = (floor > 0) & (st.count <= floor)
    cap_price = np.full(m, np.nan)
    floor_price = np.full(m, np.nan)
    for j, pid in enumerate(pids):
        r = book.find(f"cap[partner={pid}]")
        if r is not None:
            cap_binding[j] = bool(r.binding)
            cap_price[j] = r.price
        f = book.find(f"floor[partner={pid}]")
        if f is not None:
            floor_binding[j] = bool(f.binding)
            floor_price[j] = f.price
    shortfall = (np.zeros(m, dtype=np.int64) if allocation.floor_shortfall is None
                 else np.asarray(allocation.floor_shortfall, dtype=np.int64))
    return pd.DataFrame({
        "partner_id": pids,
        "tier": np.asarray(problem.partner_tier).astype(str),
        "received": st.count.astype(np.int64),
        "units_used": st.units,
        "capacity": cap,
        "expected_value": value,
        "floor": floor,
        "floor_binding": floor_binding,
        "cap_binding": cap_binding,
        "floor_shortfall": shortfall,
        "price": np.asarray(allocation.partner_price, dtype=float),
        "cap_price": cap_price,
        "floor_price": floor_price,
    })
