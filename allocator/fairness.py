"""Fairness of an allocation, measured (DESIGN.md, "Fairness").

Every metric is computed over the partners that were *eligible for something*
(at least one eligible pair in the round): a partner that could not have
received a lead is neither treated unfairly nor fairly, and counting it would
make every allocation look unequal.

Definitions
-----------
Gini index
    Mean absolute difference over twice the mean, 0 for perfect equality and
    ``1 - 1/n`` when one partner takes everything.  ``nan`` when a value is
    negative (bring-your-own scores may be) and 0 when every value is 0.
Jain's index
    ``(sum x)^2 / (n * sum x^2)``, from ``1/n`` (one partner takes everything)
    to 1 (equal).  1 when every value is 0: nobody got more than anybody.
Entitlement
    A partner's *equal share of its eligible leads*: every lead with ``k``
    eligible partners gives ``1/k`` of a lead to each of them.  Entitlements add
    up to the number of leads that have an eligible partner.
Attainable entitlement
    The entitlement limited by what the partner can take: its capacity in
    leads (with effort weights, capacity over its smallest effort) and the
    per-partner maximum.  A partner with room for 3 leads is not "worse off"
    for receiving 3 of an equal share of 10.  Rounded down, this is exactly the
    frontier's floor at full strength (``alpha = 1``).
Worst-off share
    ``min_j leads_j / attainable_j`` over partners that can take a lead: how
    much of what it could fairly get the partner treated worst receives (1
    means everyone got at least its equal share, or all it has room for).
Partners below entitlement
    Partners receiving fewer leads than their attainable entitlement rounded
    down: the ones a full-strength floor would lift.
High-intent concentration
    Share of the assigned high-intent leads that go to the top 5% of partners
    (at least one partner), ranked by the high-intent leads they receive.

This module is pure numpy; it reads the problem and an assignment and never
solves anything.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from allocator.problem import AllocationProblem

TOP_SHARE = 0.05
_EPS = 1e-9


def _most(share: float, n: int) -> int:
    # The count rule of allocator.build.max_count: a maximum share allows floor(share × n).
    return math.floor(share * n + _EPS)


def _least(share: float, n: int) -> int:
    # allocator.build.min_count: a minimum share asks for ceil(share × n).
    return math.ceil(share * n - _EPS)


@dataclass(frozen=True)
class TierShare:
    """What one tier received, beside what the policy allows it.

    ``share`` is of the assigned leads; the policy's shares are counts of the
    round size ``N`` (``ceil(min_share × N)`` to ``floor(max_share × N)``, as
    the solver and the checker read them), and ``within_policy`` compares the
    tier's lead count with those counts (``None`` when the policy sets none).
    """

    tier: str
    partners: int
    leads: int
    share: float
    expected: float
    expected_share: float
    policy_min_share: float | None
    policy_max_share: float | None
    policy_min_leads: int | None
    policy_max_leads: int | None
    within_policy: bool | None


@dataclass(frozen=True)
class FairnessMetrics:
    """Fairness of one allocation (see the module docstring for definitions).

    Attributes
    ----------
    partners_eligible : int
        Partners with at least one eligible pair; every metric is over them.
    leads_assigned : int
    expected_total : float
        Sum of the expected conversions (or value) of the assigned pairs.
    gini_leads, jain_leads : float
        Inequality of leads received per partner.
    gini_expected, jain_expected : float
        Inequality of expected conversions per partner.
    worst_off_share : float
        Smallest ``leads / attainable entitlement`` over partners that can take
        a lead (``nan`` when none can).
    worst_off_partner : str or None
        The partner with that share.
    partners_below_entitlement : int
        Partners receiving fewer leads than their attainable entitlement,
        rounded down.
    partners_without_leads : int
        Eligible partners receiving nothing.
    high_intent_assigned : int
        High-intent leads assigned.
    high_intent_top_share : float
        Share of them going to the top 5% of partners; ``nan`` with none assigned.
    top_partners : int
        How many partners the top 5% is.
    tiers : tuple of TierShare
    """

    partners_eligible: int
    leads_assigned: int
    expected_total: float
    gini_leads: float
    jain_leads: float
    gini_expected: float
    jain_expected: float
    worst_off_share: float
    worst_off_partner: str | None
    partners_below_entitlement: int
    partners_without_leads: int
    high_intent_assigned: int
    high_intent_top_share: float
    top_partners: int
    tiers: tuple[TierShare, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``nan`` becomes ``None``, tiers a list of dicts."""
        return _json_ready(asdict(self))


def _json_ready(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_ready(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def gini(values: np.ndarray) -> float:
    """Gini index of non-negative values (0 equal; ``nan`` if any is negative).

    Parameters
    ----------
    values : ndarray of float
        One value per member; an empty array gives 0.

    Returns
    -------
    float
    """
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = x.shape[0]
    if n == 0:
        return 0.0
    if x[0] < 0:
        return math.nan
    total = float(x.sum())
    if total <= 0.0:
        return 0.0
    rank = np.arange(1, n + 1, dtype=np.float64)
    return float(2.0 * np.dot(rank, x) / (n * total) - (n + 1.0) / n)


def jain(values: np.ndarray) -> float:
    """Jain's fairness index ``(sum x)^2 / (n sum x^2)`` (1 when all are 0 or equal).

    Parameters
    ----------
    values : ndarray of float

    Returns
    -------
    float
    """
    x = np.asarray(values, dtype=np.float64)
    n = x.shape[0]
    squares = float(np.dot(x, x))
    if n == 0 or squares == 0.0:
        return 1.0
    return float(x.sum() ** 2 / (n * squares))


def entitlement(problem: AllocationProblem) -> np.ndarray:
    """Per partner, its equal share of its eligible leads.

    Every lead with ``k`` eligible partners gives ``1/k`` to each of them.

    Parameters
    ----------
    problem : AllocationProblem

    Returns
    -------
    ndarray of float, one per partner
    """
    k = np.bincount(problem.pair_lead, minlength=problem.n_leads).astype(np.float64)
    weight = 1.0 / k[problem.pair_lead]
    return np.bincount(problem.pair_partner, weights=weight, minlength=problem.n_partners)


def lead_capacity(problem: AllocationProblem) -> np.ndarray:
    """Per partner, the most leads it can take (capacity and per-partner maximum).

    With effort weights, capacity is in effort units and is divided by the
    partner's smallest eligible effort (the most leads that could fit).
    """
    cap = problem.capacity_units.astype(np.float64)
    if problem.pair_effort is not None:
        smallest = np.full(problem.n_partners, np.inf)
        np.minimum.at(smallest, problem.pair_partner, problem.pair_effort)
        cap = np.where(np.isfinite(smallest), cap / np.where(smallest > 0, smallest, 1.0), 0.0)
    leads = np.floor(cap + _EPS).astype(np.int64)
    if problem.max_per_partner is not None:
        leads = np.minimum(leads, problem.max_per_partner)
    return np.maximum(leads, 0)


def attainable_entitlement(problem: AllocationProblem) -> np.ndarray:
    """Per partner, its equal share limited by the leads it can take (see the module docstring)."""
    return np.minimum(entitlement(problem), lead_capacity(problem).astype(np.float64))


def assigned_pairs(problem: AllocationProblem, lead_partner: np.ndarray) -> np.ndarray:
    """Per lead, the index of its assigned pair (``-1`` when unassigned).

    Parameters
    ----------
    problem : AllocationProblem
    lead_partner : ndarray of int
        Per lead, the partner index or ``-1``.

    Returns
    -------
    ndarray of int64

    Raises
    ------
    ValueError
        When ``lead_partner`` has the wrong length, or assigns a lead to a
        partner it is not eligible for (the lead and partner are named).
    """
    lead_partner = np.asarray(lead_partner, dtype=np.int64)
    if lead_partner.shape != (problem.n_leads,):
        raise ValueError(
            f"'lead_partner' must hold one partner index per lead ({problem.n_leads}). "
            f"Got shape {lead_partner.shape} instead."
        )
    n_p = max(problem.n_partners, 1)
    pair_key = problem.pair_lead.astype(np.int64) * n_p + problem.pair_partner
    order = np.argsort(pair_key, kind="stable")
    sorted_key = pair_key[order]
    out = np.full(problem.n_leads, -1, dtype=np.int64)
    leads = np.flatnonzero(lead_partner >= 0)
    if leads.size == 0:
        return out
    out_of_range = lead_partner[leads] >= problem.n_partners
    if out_of_range.any():
        bad = leads[out_of_range][0]
        raise ValueError(
            f"Lead '{problem.lead_ids[bad]}' is assigned to partner index "
            f"{int(lead_partner[bad])}, but there are only {problem.n_partners} partners."
        )
    want = leads * n_p + lead_partner[leads]
    if sorted_key.size == 0:
        pos_c = np.zeros(leads.shape[0], dtype=np.int64)
        found = np.zeros(leads.shape[0], dtype=bool)
    else:
        pos_c = np.minimum(np.searchsorted(sorted_key, want), sorted_key.size - 1)
        found = sorted_key[pos_c] == want
    if not found.all():
        bad = leads[~found][0]
        raise ValueError(
            f"Lead '{problem.lead_ids[bad]}' is assigned to partner "
            f"'{problem.partner_ids[lead_partner[bad]]}', which is not one of its eligible "
            f"partners ({int((~found).sum())} such assignment(s) in all)."
        )
    out[leads] = order[pos_c]
    return out


def partner_totals(
    problem: AllocationProblem, lead_partner: np.ndarray, expected: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Leads and expected conversions received per partner.

    Parameters
    ----------
    problem : AllocationProblem
    lead_partner : ndarray of int
        Per lead, the partner index or ``-1``.
    expected : ndarray of float, optional
        Per pair, the expected conversions; defaults to ``problem.pair_score``.

    Returns
    -------
    leads : ndarray of int64, per partner
    expected : ndarray of float64, per partner
    """
    value = _expected(problem, expected)
    pair = assigned_pairs(problem, lead_partner)
    chosen = pair[pair >= 0]
    partner = problem.pair_partner[chosen]
    leads = np.bincount(partner, minlength=problem.n_partners).astype(np.int64)
    exp = np.bincount(partner, weights=value[chosen], minlength=problem.n_partners)
    return leads, exp


def _expected(problem: AllocationProblem, expected: np.ndarray | None) -> np.ndarray:
    if expected is None:
        return np.asarray(problem.pair_score, dtype=np.float64)
    value = np.asarray(expected, dtype=np.float64)
    if value.shape != (problem.n_pairs,):
        raise ValueError(
            f"'expected' must hold one value per eligible pair ({problem.n_pairs}). "
            f"Got shape {value.shape} instead."
        )
    if not np.isfinite(value).all():
        raise ValueError("'expected' must be finite for every pair. Got a nan or inf.")
    return value


def _tier_shares(
    problem: AllocationProblem,
    eligible: np.ndarray,
    leads: np.ndarray,
    exp: np.ndarray,
) -> tuple[TierShare, ...]:
    names = [t.name for t in problem.tiers]
    names += [str(t) for t in dict.fromkeys(problem.partner_tier.tolist()) if t not in names]
    total_exp = float(exp.sum())
    out = []
    for name in names:
        member = problem.partner_tier == name
        rule = next((t for t in problem.tiers if t.name == name), None)
        n = int(leads[member].sum())
        share = n / int(leads.sum()) if leads.sum() else 0.0
        lo = rule.min_share if rule else None
        hi = rule.max_share if rule else None
        lo_n = _least(lo, problem.round_size) if lo is not None else None
        hi_n = _most(hi, problem.round_size) if hi is not None else None
        within: bool | None = None
        if lo_n is not None or hi_n is not None:
            within = (lo_n is None or n >= lo_n) and (hi_n is None or n <= hi_n)
        out.append(
            TierShare(
                tier=name,
                partners=int((member & eligible).sum()),
                leads=n,
                share=share,
                expected=float(exp[member].sum()),
                expected_share=float(exp[member].sum()) / total_exp if total_exp > 0 else 0.0,
                policy_min_share=lo,
                policy_max_share=hi,
                policy_min_leads=lo_n,
                policy_max_leads=hi_n,
                within_policy=within,
            )
        )
    return tuple(out)


def fairness_metrics(
    problem: AllocationProblem,
    lead_partner: np.ndarray,
    expected: np.ndarray | None = None,
) -> FairnessMetrics:
    """Measure the fairness of an allocation.

    Parameters
    ----------
    problem : AllocationProblem
        The round (eligible pairs, partner tiers, the policy's tier shares).
    lead_partner : ndarray of int
        Per lead, the index of its partner, ``-1`` when not assigned (as
        ``Allocation.lead_partner`` and every baseline return it).
    expected : ndarray of float, optional
        Per eligible pair, the expected conversions of giving that lead to that
        partner; defaults to ``problem.pair_score``.

    Returns
    -------
    FairnessMetrics

    Raises
    ------
    ValueError
        When the arrays do not fit the problem or a lead is assigned to a
        partner it is not eligible for.
    """
    leads, exp = partner_totals(problem, lead_partner, expected)
    fair = attainable_entitlement(problem)
    eligible = np.bincount(problem.pair_partner, minlength=problem.n_partners) > 0
    el_leads = leads[eligible]
    el_exp = exp[eligible]

    ratio = np.divide(leads, fair, out=np.full(problem.n_partners, np.inf), where=fair > 0)
    if (fair > 0).any():
        worst = int(np.argmin(ratio))
        worst_share = float(ratio[worst])
        worst_partner: str | None = str(problem.partner_ids[worst])
    else:
        worst_share, worst_partner = math.nan, None
    below = int((leads < np.floor(fair + _EPS)).sum())

    pair = assigned_pairs(problem, lead_partner)
    high_lead = (pair >= 0) & (problem.lead_intent == "high")
    high_by_partner = np.bincount(
        problem.pair_partner[pair[high_lead]], minlength=problem.n_partners
    )[eligible]
    n_top = max(1, math.ceil(TOP_SHARE * int(eligible.sum())))
    n_high = int(high_lead.sum())
    top_share = (
        float(np.sort(high_by_partner)[::-1][:n_top].sum()) / n_high if n_high else math.nan
    )

    return FairnessMetrics(
        partners_eligible=int(eligible.sum()),
        leads_assigned=int(leads.sum()),
        expected_total=float(exp.sum()),
        gini_leads=gini(el_leads),
        jain_leads=jain(el_leads),
        gini_expected=gini(el_exp),
        jain_expected=jain(el_exp),
        worst_off_share=worst_share,
        worst_off_partner=worst_partner,
        partners_below_entitlement=below,
        partners_without_leads=int((el_leads == 0).sum()),
        high_intent_assigned=n_high,
        high_intent_top_share=top_share,
        top_partners=n_top,
        tiers=_tier_shares(problem, eligible, leads, exp),
    )
