"""The rules a channel team would use without an optimizer, on the same problem.

Every baseline works on the same :class:`~allocator.problem.AllocationProblem`
as the optimizer: the same eligible pairs and scores, the same capacity caps
(in effort units when ``pair_effort`` is set) and the same per-partner maximum
(``max_per_partner``).  They never break a cap; they do not try to meet floors,
tier shares or quotas, so :func:`allocator.verify.verify` may find them in
breach of those rules — that is part of the honest comparison.

Round-robin rules ignore scores and place every lead they can, as such rules do
in practice.  The score-aware rules (greedy, cascade) do not knowingly lose
value: they skip pairs with a negative score unless the round must place every
lead (``assign_all``).

Each function returns ``lead_partner``: per lead, the index of its partner in
``problem.partner_ids`` or ``-1`` when it is not placed.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from itertools import chain

import numpy as np

from allocator.problem import AllocationProblem

BASELINES = ("round_robin", "tier_weighted_round_robin", "greedy", "rule_cascade")

# Effort units are floats: a partner "has room" up to this slack above its cap.
_EPS = 1e-9


class _Room:
    """Remaining capacity (units) and lead count per partner, as plain lists for fast loops."""

    def __init__(self, problem: AllocationProblem) -> None:
        self.cap: list[float] = np.asarray(problem.capacity_units, dtype=float).tolist()
        self.used: list[float] = [0.0] * problem.n_partners
        self.count: list[int] = [0] * problem.n_partners
        self.max_per = (
            problem.max_per_partner if problem.max_per_partner is not None else problem.n_leads + 1
        )

    def fits(self, j: int, effort: float) -> bool:
        return self.count[j] < self.max_per and self.used[j] + effort <= self.cap[j] + _EPS

    def take(self, j: int, effort: float) -> None:
        self.used[j] += effort
        self.count[j] += 1


def _pair_effort(problem: AllocationProblem) -> np.ndarray:
    if problem.pair_effort is None:
        return np.ones(problem.n_pairs, dtype=float)
    return np.asarray(problem.pair_effort, dtype=float)


def _lead_starts(sorted_pair_lead: np.ndarray, n_leads: int) -> list[int]:
    """CSR offsets: pairs of lead ``i`` are ``[starts[i], starts[i + 1])``."""
    return np.searchsorted(sorted_pair_lead, np.arange(n_leads + 1)).tolist()


def _takes_negative(problem: AllocationProblem) -> bool:
    return bool(problem.assign_all)


def round_robin(problem: AllocationProblem) -> np.ndarray:
    """Leads in order, each to the next eligible partner in rotation that has room.

    One rotation pointer runs over the partners in index order; a lead goes to
    the first partner at or after the pointer (wrapping around) that is
    eligible for it and has room, and the pointer moves past that partner.

    Parameters
    ----------
    problem : AllocationProblem

    Returns
    -------
    ndarray of int64
        Per lead, the partner index or ``-1``.
    """
    n = problem.n_leads
    lead_partner = np.full(n, -1, dtype=np.int64)
    order = np.lexsort((problem.pair_partner, problem.pair_lead))
    partners: list[int] = problem.pair_partner[order].tolist()
    efforts: list[float] = _pair_effort(problem)[order].tolist()
    starts = _lead_starts(problem.pair_lead[order], n)
    room = _Room(problem)
    pointer = 0
    for i in range(n):
        s, e = starts[i], starts[i + 1]
        if s == e:
            continue
        k0 = bisect_left(partners, pointer, s, e)
        for k in chain(range(k0, e), range(s, k0)):
            j = partners[k]
            if room.fits(j, efforts[k]):
                room.take(j, efforts[k])
                lead_partner[i] = j
                pointer = j + 1
                break
    return lead_partner


def _tier_weights(problem: AllocationProblem) -> np.ndarray:
    weight = {t.name: float(t.weight) for t in problem.tiers}
    return np.array([weight.get(str(t), 1.0) for t in problem.partner_tier], dtype=float)


def tier_weighted_round_robin(problem: AllocationProblem) -> np.ndarray:
    """Round robin in which each partner's turn comes as often as its tier's weight.

    A lead goes to the eligible partner with room whose ``(received + 1) /
    weight`` is smallest (weighted fair queuing), ties to the partner served
    least recently, then to the lower index.  The weight is the policy's
    ``TierRule.weight`` for the partner's tier (1 for a tier the policy does
    not weigh); a gold partner of weight 3 gets three leads for each one of a
    bronze partner of weight 1 when both are eligible and have room.

    Parameters
    ----------
    problem : AllocationProblem

    Returns
    -------
    ndarray of int64
    """
    n = problem.n_leads
    lead_partner = np.full(n, -1, dtype=np.int64)
    order = np.lexsort((problem.pair_partner, problem.pair_lead))
    partners: list[int] = problem.pair_partner[order].tolist()
    efforts: list[float] = _pair_effort(problem)[order].tolist()
    starts = _lead_starts(problem.pair_lead[order], n)
    weights: list[float] = _tier_weights(problem).tolist()
    last_served = [-1] * problem.n_partners
    room = _Room(problem)
    for i in range(n):
        best_key: tuple[float, int, int] | None = None
        best_k = -1
        for k in range(starts[i], starts[i + 1]):
            j = partners[k]
            if not room.fits(j, efforts[k]):
                continue
            key = ((room.count[j] + 1) / weights[j], last_served[j], j)
            if best_key is None or key < best_key:
                best_key, best_k = key, k
        if best_k >= 0:
            j = partners[best_k]
            room.take(j, efforts[best_k])
            last_served[j] = i
            lead_partner[i] = j
    return lead_partner


def greedy(problem: AllocationProblem) -> np.ndarray:
    """Pairs by descending score; take a pair when its lead is free and its partner has room.

    Ties go to the lower lead index, then the lower partner index.  Pairs with
    a negative score are skipped unless ``problem.assign_all``.

    Parameters
    ----------
    problem : AllocationProblem

    Returns
    -------
    ndarray of int64
    """
    n = problem.n_leads
    lead_partner = np.full(n, -1, dtype=np.int64)
    score = np.asarray(problem.pair_score, dtype=float)
    keep = np.arange(problem.n_pairs) if _takes_negative(problem) else np.flatnonzero(score >= 0)
    order = keep[
        np.lexsort((problem.pair_partner[keep], problem.pair_lead[keep], -score[keep]))
    ]
    leads: list[int] = problem.pair_lead[order].tolist()
    partners: list[int] = problem.pair_partner[order].tolist()
    efforts: list[float] = _pair_effort(problem)[order].tolist()
    placed = [False] * n
    room = _Room(problem)
    # The hot loop over every pair: room checks inlined on local lists.
    cap, used, count, max_per = room.cap, room.used, room.count, room.max_per
    out: list[int] = [-1] * n
    for i, j, eff in zip(leads, partners, efforts, strict=True):
        if placed[i] or count[j] >= max_per or used[j] + eff > cap[j] + _EPS:
            continue
        used[j] += eff
        count[j] += 1
        placed[i] = True
        out[i] = j
    lead_partner[:] = out
    return lead_partner


def tier_ranks(problem: AllocationProblem, tier_order: Sequence[str] | None = None) -> np.ndarray:
    """Per partner, the rank of its tier (0 = highest).

    Parameters
    ----------
    problem : AllocationProblem
    tier_order : sequence of str, optional
        Tiers from highest to lowest, e.g. the policy's pool cascade.  Without
        it, tiers are ranked by ``TierRule.weight`` (highest first), then by
        the order the policy lists them.  Tiers not named come last, in
        alphabetical order.

    Returns
    -------
    ndarray of int64
    """
    if tier_order is None:
        listed = sorted(enumerate(problem.tiers), key=lambda it: (-it[1].weight, it[0]))
        tier_order = [t.name for _, t in listed]
    ranked = list(dict.fromkeys(tier_order))
    others = sorted({str(t) for t in problem.partner_tier} - set(ranked))
    rank = {name: r for r, name in enumerate([*ranked, *others])}
    return np.array([rank[str(t)] for t in problem.partner_tier], dtype=np.int64)


def rule_cascade(
    problem: AllocationProblem, tier_order: Sequence[str] | None = None
) -> np.ndarray:
    """Leads in order, each to the best-scoring partner of the highest tier that has room.

    For each lead, the eligible partners with room are grouped by tier; the
    lead goes to the best-scoring partner of the highest-ranked tier among
    them (ties to the lower partner index).  Pairs with a negative score are
    skipped unless ``problem.assign_all``.

    Parameters
    ----------
    problem : AllocationProblem
    tier_order : sequence of str, optional
        Tiers from highest to lowest; see :func:`tier_ranks`.

    Returns
    -------
    ndarray of int64
    """
    n = problem.n_leads
    lead_partner = np.full(n, -1, dtype=np.int64)
    score = np.asarray(problem.pair_score, dtype=float)
    keep = np.arange(problem.n_pairs) if _takes_negative(problem) else np.flatnonzero(score >= 0)
    rank = tier_ranks(problem, tier_order)
    pp, pl = problem.pair_partner[keep], problem.pair_lead[keep]
    order = keep[np.lexsort((pp, -score[keep], rank[pp], pl))]
    partners: list[int] = problem.pair_partner[order].tolist()
    efforts: list[float] = _pair_effort(problem)[order].tolist()
    starts = _lead_starts(problem.pair_lead[order], n)
    room = _Room(problem)
    cap, used, count, max_per = room.cap, room.used, room.count, room.max_per
    out: list[int] = [-1] * n
    for i in range(n):
        for k in range(starts[i], starts[i + 1]):
            j = partners[k]
            if count[j] < max_per and used[j] + efforts[k] <= cap[j] + _EPS:
                used[j] += efforts[k]
                count[j] += 1
                out[i] = j
                break
    lead_partner[:] = out
    return lead_partner


def run_baselines(
    problem: AllocationProblem, tier_order: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """Every baseline on ``problem``, by name (see :data:`BASELINES`).

    Parameters
    ----------
    problem : AllocationProblem
    tier_order : sequence of str, optional
        Tiers from highest to lowest for the rule cascade (see :func:`tier_ranks`).

    Returns
    -------
    dict of str to ndarray
        ``lead_partner`` of each baseline.
    """
    return {
        "round_robin": round_robin(problem),
        "tier_weighted_round_robin": tier_weighted_round_robin(problem),
        "greedy": greedy(problem),
        "rule_cascade": rule_cascade(problem, tier_order),
    }


def lead_pairs(problem: AllocationProblem, lead_partner: np.ndarray) -> np.ndarray:
    """Per lead, the index of its chosen pair (``-1`` when not placed).

    Raises
    ------
    ValueError
        When a lead is given a partner it is not eligible for.
    """
    lead_partner = np.asarray(lead_partner, dtype=np.int64)
    if lead_partner.shape != (problem.n_leads,):
        raise ValueError(
            f"lead_partner must have one entry per lead ({problem.n_leads}). "
            f"Got shape {lead_partner.shape} instead."
        )
    if np.any(lead_partner >= problem.n_partners) or np.any(lead_partner < -1):
        bad = int(np.flatnonzero((lead_partner >= problem.n_partners) | (lead_partner < -1))[0])
        raise ValueError(
            f"Lead '{problem.lead_ids[bad]}' has partner index {int(lead_partner[bad])}; "
            f"indices must be -1 or in [0, {problem.n_partners})."
        )
    m = max(problem.n_partners, 1)
    keys = problem.pair_lead.astype(np.int64) * m + problem.pair_partner.astype(np.int64)
    order = np.argsort(keys, kind="stable")
    placed = np.flatnonzero(lead_partner >= 0)
    want = placed * m + lead_partner[placed]
    pos = np.searchsorted(keys[order], want)
    pos_clipped = np.minimum(pos, max(len(keys) - 1, 0))
    found = (pos < len(keys)) & (keys[order][pos_clipped] == want) if len(keys) else pos < 0
    if not np.all(found):
        bad = placed[~found][0]
        raise ValueError(
            f"Lead '{problem.lead_ids[bad]}' is given partner "
            f"'{problem.partner_ids[lead_partner[bad]]}', which is not an eligible pair."
        )
    out = np.full(problem.n_leads, -1, dtype=np.int64)
    out[placed] = order[pos_clipped]
    return out


def allocation_objective(problem: AllocationProblem, lead_partner: np.ndarray) -> float:
    """Sum of ``pair_score`` over the pairs ``lead_partner`` chooses."""
    pairs = lead_pairs(problem, lead_partner)
    return float(np.asarray(problem.pair_score, dtype=float)[pairs[pairs >= 0]].sum())
