"""An independent checker of an allocation against the rules of the round.

Written from the rules (SPEC.md and :class:`~allocator.problem.AllocationProblem`),
not from the solvers: it shares no code with them, recomputes every count from
the problem's shares itself, and reports every violated rule in words.

Counts of shares: a maximum share ``s`` of ``n`` allows ``floor(s·n)`` leads, a
minimum share asks for ``ceil(s·n)``; tier shares and the per-partner maximum
use the round size ``N``; quotas use the number of the round's leads with the
quota's intent.
"""

from __future__ import annotations

import math

import numpy as np

from allocator.problem import AllocationProblem, Verification

_TOL = 1e-9
_SHOWN = 5


def _most(share: float, n: int) -> int:
    return math.floor(share * n + 1e-9)


def _least(share: float, n: int) -> int:
    return math.ceil(share * n - 1e-9)


def _names(ids: np.ndarray, idx: np.ndarray) -> str:
    shown = ", ".join(str(ids[k]) for k in idx[:_SHOWN])
    more = f" and {len(idx) - _SHOWN} more" if len(idx) > _SHOWN else ""
    return shown + more


def verify(problem: AllocationProblem, lead_partner: np.ndarray) -> Verification:
    """Check ``lead_partner`` against every rule of ``problem``.

    Parameters
    ----------
    problem : AllocationProblem
    lead_partner : ndarray of int
        Per lead, the index of its partner or ``-1``.

    Returns
    -------
    Verification
        ``ok`` and the violations, each naming the rule, the thing and the numbers.
    """
    out: list[str] = []
    n, m = problem.n_leads, problem.n_partners
    lp = np.asarray(lead_partner)
    if lp.shape != (n,):
        return Verification(False, (f"the allocation must give one partner (or -1) per lead: "
                                     f"expected shape ({n},), got {lp.shape}",))
    lp = lp.astype(np.int64)
    bad = (lp < -1) | (lp >= m)
    if bad.any():
        out.append(f"{int(bad.sum())} lead(s) point at no partner of the round "
                   f"(leads {_names(problem.lead_ids, np.flatnonzero(bad))})")
        lp = np.where(bad, -1, lp)
    assigned = np.flatnonzero(lp >= 0)

    # Eligibility: every (lead, partner) must be a listed pair.  A pair matches when its
    # partner is its lead's partner; one pass over the pairs, no sort.
    match = np.flatnonzero(lp[problem.pair_lead] == problem.pair_partner) if n else \
        np.zeros(0, dtype=np.int64)
    pair_of = np.full(n, -1, dtype=np.int64)
    pair_of[problem.pair_lead[match][::-1]] = match[::-1]  # first listed pair wins
    found = pair_of[assigned] >= 0
    if not found.all():
        off = assigned[~found]
        out.append(f"{len(off)} lead(s) went to a partner they are not eligible for "
                   f"(leads {_names(problem.lead_ids, off)})")
    ok_leads = assigned[found]
    ok_pairs = pair_of[ok_leads]

    all_count = np.bincount(lp[assigned], minlength=m)
    # Capacity, in effort units when leads cost different effort.
    if problem.pair_effort is not None:
        load = np.bincount(lp[ok_leads], weights=problem.pair_effort[ok_pairs], minlength=m)
        unit = "effort units"
    else:
        load = all_count.astype(float)
        unit = "leads"
    cap = np.asarray(problem.capacity_units, dtype=float)
    over = np.flatnonzero(load > cap + _TOL * np.maximum(1.0, np.abs(cap)))
    for j in over:
        out.append(f"cap[partner={problem.partner_ids[j]}]: partner received {load[j]:g} "
                   f"{unit}, above its capacity of {cap[j]:g}")
    if problem.max_per_partner is not None:
        for j in np.flatnonzero(all_count > problem.max_per_partner):
            out.append(f"max_share_per_partner[partner={problem.partner_ids[j]}]: partner "
                       f"received {all_count[j]} leads, above the most one partner may get "
                       f"({problem.max_per_partner})")
    if problem.floor_mode == "hard":
        floor = np.asarray(problem.floor, dtype=np.int64)
        for j in np.flatnonzero(all_count < floor):
            out.append(f"floor[partner={problem.partner_ids[j]}]: partner received "
                       f"{all_count[j]} leads, below its floor of {floor[j]}")

    # Tier shares, as counts of the round size.
    tier_of = np.asarray(problem.partner_tier).astype(str)
    for rule in problem.tiers:
        got = int(all_count[tier_of == rule.name].sum())
        if rule.max_share is not None and got > _most(rule.max_share, problem.round_size):
            out.append(f"tier_share[tier={rule.name}]: tier received {got} leads, above its "
                       f"max_share {rule.max_share:g} of {problem.round_size} = "
                       f"{_most(rule.max_share, problem.round_size)}")
        if rule.min_share is not None and got < _least(rule.min_share, problem.round_size):
            out.append(f"tier_share[tier={rule.name}]: tier received {got} leads, below its "
                       f"min_share {rule.min_share:g} of {problem.round_size} = "
                       f"{_least(rule.min_share, problem.round_size)}")

    # Quotas: a tier's share of the leads of one intent.
    intent = np.asarray(problem.lead_intent).astype(str)
    lead_tier = np.where(lp >= 0, tier_of[np.maximum(lp, 0)] if m else "", "")
    for q in problem.quotas:
        n_intent = int(np.count_nonzero(intent == q.intent))
        got = int(np.count_nonzero((intent == q.intent) & (lp >= 0) & (lead_tier == q.tier)))
        if q.max_share is not None and got > _most(q.max_share, n_intent):
            out.append(f"quota[tier={q.tier},intent={q.intent}]: tier received {got} "
                       f"{q.intent}-intent leads, above max_share {q.max_share:g} of "
                       f"{n_intent} = {_most(q.max_share, n_intent)}")
        if q.min_share is not None and got < _least(q.min_share, n_intent):
            out.append(f"quota[tier={q.tier},intent={q.intent}]: tier received {got} "
                       f"{q.intent}-intent leads, below min_share {q.min_share:g} of "
                       f"{n_intent} = {_least(q.min_share, n_intent)}")

    if problem.assign_all:
        left = np.flatnonzero(lp < 0)
        if len(left):
            out.append(f"assign_all: {len(left)} lead(s) left unassigned "
                       f"(leads {_names(problem.lead_ids, left)})")
    return Verification(ok=not out, violations=tuple(out))
