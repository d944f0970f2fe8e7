"""Exact flow moves for effort-weighted rounds: re-optimizing one effort class, and a repair.

Leads of one *effort class* (every eligible pair of the lead costs the same
effort ``e``) are interchangeable in capacity: once every other lead is fixed, a
partner with ``room`` effort units left takes at most ``floor(room / e)`` of
them, and floors, tier shares and the max share become counts shifted by the
fixed leads.  That is a min-cost flow (:func:`allocator.flow.solve_network`),
solved exactly: the best reassignment of the whole class, chains of moves
through ties included, in one flow.  Sweeping the classes in turn is a block
coordinate ascent that never loses value.  The flow does not hold quotas: a
quota at its maximum gets no new pair, one at its minimum loses none, and a
move that still breaks one is discarded.

:func:`repair_allocation` is the last resort of :mod:`allocator.effort`: each
partner takes only leads up to an effort threshold and at most
``capacity / threshold`` of them, so no capacity can overflow, and the flow
(with quotas, :func:`allocator.side.solve_with_quotas`) keeps floors, tier
shares and the max share exactly; leftover capacity is filled greedily.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from allocator.build import quota_groups, tier_limits
from allocator.flow import network_spec, solve_network
from allocator.problem import AllocationProblem
from allocator.verify import verify

LARGE_CLASS_PAIRS = 300_000


def effort_load(problem: AllocationProblem, pair_flow: np.ndarray) -> np.ndarray:
    """Per partner, the effort units of the chosen pairs."""
    eff = problem.pair_effort if problem.pair_effort is not None else np.ones(problem.n_pairs)
    return np.bincount(problem.pair_partner[pair_flow], weights=eff[pair_flow],
                       minlength=problem.n_partners)


def penalized_value(problem: AllocationProblem, pair_flow: np.ndarray, penalty: float) -> float:
    """Sum of scores minus ``penalty`` per missed floor lead (soft floors only)."""
    value = float(problem.pair_score[pair_flow].sum())
    if problem.floor_mode != "soft":
        return value
    count = np.bincount(problem.pair_partner[pair_flow], minlength=problem.n_partners)
    return value - penalty * float(np.maximum(np.asarray(problem.floor) - count, 0).sum())


def effort_classes(problem: AllocationProblem) -> tuple[np.ndarray, np.ndarray]:
    """The effort of each lead's class (``nan`` when its pairs' efforts differ) and the classes.

    Returns
    -------
    lead_effort : ndarray of float
    classes : ndarray of float
        Distinct class efforts, most leads first.
    """
    assert problem.pair_effort is not None
    n = problem.n_leads
    lo = np.full(n, np.inf)
    hi = np.full(n, -np.inf)
    np.minimum.at(lo, problem.pair_lead, problem.pair_effort)
    np.maximum.at(hi, problem.pair_lead, problem.pair_effort)
    lead_effort = np.where((lo == hi) & np.isfinite(lo), lo, np.nan)
    known = lead_effort[~np.isnan(lead_effort)]
    values, counts = np.unique(known, return_counts=True)
    return lead_effort, values[np.argsort(-counts, kind="stable")]


def _quotas_hold(problem: AllocationProblem, pair_flow: np.ndarray) -> bool:
    _, lo, hi, group = quota_groups(problem)
    if not lo.size:
        return True
    count = np.bincount(group[pair_flow & (group >= 0)], minlength=lo.shape[0])
    return bool(np.all(count >= lo) and np.all((hi < 0) | (count <= hi)))


def _quota_guard(problem: AllocationProblem, pair_flow: np.ndarray,
                 in_class: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs the class may not use, and chosen pairs to keep, so that quotas at their limit
    stay met: no new pair of a group at its maximum, no chosen pair of a group at its minimum
    leaves (the flow itself does not hold quotas)."""
    _, lo, hi, group = quota_groups(problem)
    forbid = np.zeros(problem.n_pairs, dtype=bool)
    keep = np.zeros(problem.n_pairs, dtype=bool)
    if not lo.size:
        return forbid, keep
    count = np.bincount(group[pair_flow & (group >= 0)], minlength=lo.shape[0])
    at_max = (hi >= 0) & (count >= hi)
    at_min = (lo > 0) & (count <= lo)
    grouped = group >= 0
    g = np.maximum(group, 0)
    forbid = grouped & at_max[g] & in_class & ~pair_flow
    keep = grouped & at_min[g] & in_class & pair_flow
    return forbid, keep


def reoptimize_class(problem: AllocationProblem, pair_flow: np.ndarray, effort: float,
                     lead_effort: np.ndarray, allowed: np.ndarray | None = None,
                     ) -> np.ndarray | None:
    """Best reassignment of the leads of one effort class, every other lead fixed.

    Parameters
    ----------
    pair_flow : ndarray of bool
        The current allocation (chosen pairs).
    effort : float
        The class.
    lead_effort : ndarray of float
        From :func:`effort_classes`.
    allowed : ndarray of bool, optional
        Pairs the class may use (the current ones always may); all by default.

    Returns
    -------
    ndarray of bool or None
        The new allocation, ``None`` when the flow has none (or it breaks a quota).
    """
    assert problem.pair_effort is not None
    pl, pp, m = problem.pair_lead, problem.pair_partner, problem.n_partners
    in_class = lead_effort[pl] == effort
    forbid, keep = _quota_guard(problem, pair_flow, in_class)
    if keep.any():  # leads of a group at its minimum stay where they are
        kept_lead = np.zeros(problem.n_leads, dtype=bool)
        kept_lead[pl[keep]] = True
        in_class &= ~kept_lead[pl]
    usable = in_class & ~forbid
    pairs = np.flatnonzero(usable if allowed is None else usable & (allowed | pair_flow))
    fixed = pair_flow & ~in_class
    load = effort_load(problem, fixed)
    count = np.bincount(pp[fixed], minlength=m)
    room = np.floor((np.asarray(problem.capacity_units, dtype=float) - load) / effort + 1e-9)
    leads = np.unique(pl[pairs])
    index = np.full(problem.n_leads, -1, dtype=np.int64)
    index[leads] = np.arange(leads.size)
    cap = np.maximum(room, 0.0)
    sub = replace(problem, lead_ids=problem.lead_ids[leads],
                  lead_intent=problem.lead_intent[leads], pair_lead=index[pl[pairs]],
                  pair_partner=pp[pairs], pair_score=problem.pair_score[pairs], pair_effort=None,
                  capacity_units=cap, lead_row=None)
    full = network_spec(problem)
    spec = network_spec(sub)
    most = cap.astype(np.int64)
    if problem.max_per_partner is not None:
        most = np.minimum(most, np.maximum(int(problem.max_per_partner) - count, 0))
    t = full.tier_names.shape[0]
    tier_count = np.bincount(full.partner_tier, weights=count, minlength=t).astype(np.int64)
    spec = replace(spec, cap=most, capacity_leads=cap.astype(np.int64),
                   floor=np.maximum(full.floor - count, 0),
                   tier_lo=np.maximum(full.tier_lo - tier_count, 0),
                   tier_hi=full.tier_hi - tier_count)
    sol = solve_network(sub, spec)
    if sol.status != "optimal":
        return None
    out = fixed.copy()
    out[pairs[sol.pair_flow]] = True
    return out if _quotas_hold(problem, out) else None


def improve_by_classes(problem: AllocationProblem, pair_flow: np.ndarray, penalty: float,
                       deadline: float, allowed: np.ndarray | None = None,
                       sweeps: int = 4) -> tuple[np.ndarray, int]:
    """Sweep :func:`reoptimize_class` over the effort classes while it gains.

    A class is re-solved only when another class moved since its last flow (its
    optimum cannot have changed otherwise); a class with more than
    :data:`LARGE_CLASS_PAIRS` usable pairs, a costly flow, only once.  Returns the
    best allocation and how many class moves improved it.
    """
    lead_effort, classes = effort_classes(problem)
    best, value, gains = pair_flow, penalized_value(problem, pair_flow, penalty), 0
    dirty = {float(e): True for e in classes}
    runs = {float(e): 0 for e in classes}
    usable = lead_effort[problem.pair_lead]
    if allowed is not None:
        usable = np.where(allowed | pair_flow, usable, np.nan)
    most = {float(e): 1 if np.count_nonzero(usable == e) > LARGE_CLASS_PAIRS else sweeps
            for e in classes}
    for _ in range(sweeps):
        # The small classes first: they cost little and open room for the large one.
        for effort in (float(e) for e in classes[::-1]):
            if not dirty[effort] or runs[effort] >= most[effort]:
                continue
            if time.perf_counter() > deadline:
                return best, gains
            runs[effort] += 1
            dirty[effort] = False
            new = reoptimize_class(problem, best, effort, lead_effort, allowed)
            if new is None:
                continue
            new_value = penalized_value(problem, new, penalty)
            if new_value > value + 1e-12 * max(abs(value), 1.0):
                best, value, gains = new, new_value, gains + 1
                for other in dirty:
                    dirty[other] = other != effort
        if not any(dirty.values()):
            break
    return best, gains


def _thresholds(problem: AllocationProblem) -> tuple[np.ndarray, np.ndarray]:
    """Per partner an effort threshold and how many leads up to it surely fit."""
    assert problem.pair_effort is not None
    m, eff, pp = problem.n_partners, problem.pair_effort, problem.pair_partner
    cap = np.asarray(problem.capacity_units, dtype=float)
    floor = np.asarray(problem.floor, dtype=np.int64)
    levels = np.unique(eff)
    if levels.size > 32:
        levels = np.unique(np.quantile(eff, np.linspace(0.0, 1.0, 32), method="higher"))
    best_e = np.full(m, levels[0])
    best_k = np.full(m, -1.0)
    best_ok = np.zeros(m, dtype=bool)
    for e in levels:
        k = np.floor(cap / e + 1e-9)
        useful = np.minimum(k, np.bincount(pp[eff <= e], minlength=m))
        ok = (k >= floor) & (np.bincount(pp[eff <= e], minlength=m) >= floor)
        better = (ok & ~best_ok) | ((ok == best_ok) & (useful > best_k))
        best_e = np.where(better, e, best_e)
        best_k = np.where(better, useful, best_k)
        best_ok |= ok
    return best_e, np.floor(cap / best_e + 1e-9)


def fill_capacity(problem: AllocationProblem, pair_flow: np.ndarray) -> np.ndarray:
    """Give unassigned leads to partners with effort left, best score first, within every
    maximum (capacity, max share, tier maximum, quota maximum)."""
    eff = problem.pair_effort if problem.pair_effort is not None else np.ones(problem.n_pairs)
    pp, pl = problem.pair_partner, problem.pair_lead
    room = np.asarray(problem.capacity_units, dtype=float) - effort_load(problem, pair_flow)
    count = np.bincount(pp[pair_flow], minlength=problem.n_partners)
    mpp = problem.max_per_partner
    names, tier_of, _, tier_hi = tier_limits(problem)
    tier_count = np.bincount(tier_of, weights=count, minlength=names.shape[0])
    _, _, qhi, group = quota_groups(problem)
    qcount = np.bincount(group[pair_flow & (group >= 0)], minlength=qhi.shape[0])
    taken = np.zeros(problem.n_leads, dtype=bool)
    taken[pl[pair_flow]] = True
    cand = np.flatnonzero(~taken[pl] & (problem.pair_score > 0))
    out = pair_flow.copy()
    for p in cand[np.argsort(-problem.pair_score[cand], kind="stable")].tolist():
        i, j, t, g = pl[p], pp[p], tier_of[pp[p]], group[p]
        if taken[i] or eff[p] > room[j] + 1e-9 or (mpp is not None and count[j] >= mpp) \
                or tier_count[t] >= tier_hi[t] or (g >= 0 and 0 <= qhi[g] <= qcount[g]):
            continue
        out[p], taken[i] = True, True
        room[j] -= eff[p]
        count[j] += 1
        tier_count[t] += 1
        if g >= 0:
            qcount[g] += 1
    return out


def repair_allocation(problem: AllocationProblem, time_limit_s: float) -> np.ndarray | None:
    """An allocation that meets every rule, from a flow on effort-safe lead counts.

    Returns
    -------
    ndarray of bool or None
        Chosen pairs; ``None`` when even this network has no allocation.
    """
    from allocator.side import solve_with_quotas

    if problem.pair_effort is None:
        raise ValueError("repair_allocation needs a problem with effort-weighted capacity.")
    if not problem.n_pairs:
        empty = np.zeros(0, dtype=bool)
        return empty if verify(problem, np.full(problem.n_leads, -1)).ok else None
    threshold, count = _thresholds(problem)
    keep = np.flatnonzero(problem.pair_effort <= threshold[problem.pair_partner] + 1e-12)
    unit = replace(problem, pair_lead=problem.pair_lead[keep],
                   pair_partner=problem.pair_partner[keep], pair_score=problem.pair_score[keep],
                   pair_effort=None, capacity_units=count.astype(float))
    if unit.quotas:
        out = solve_with_quotas(unit, time_limit_s)
        if out.status not in ("optimal", "feasible"):
            return None
        lead_pair = np.asarray(out.lead_pair, dtype=np.int64)
    else:
        sol = solve_network(unit)
        if sol.status != "optimal":
            return None
        lead_pair = sol.lead_pair
    pair_flow = np.zeros(problem.n_pairs, dtype=bool)
    pair_flow[keep[lead_pair[lead_pair >= 0]]] = True
    pair_flow = fill_capacity(problem, pair_flow)
    lead_partner = np.full(problem.n_leads, -1, dtype=np.int64)
    lead_partner[problem.pair_lead[pair_flow]] = problem.pair_partner[pair_flow]
    return pair_flow if verify(problem, lead_partner).ok else None
