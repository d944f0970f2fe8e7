"""From eligible pairs, scores and the policy to an :class:`AllocationProblem` (pure).

Rules made concrete here, once, so every solver and report agrees on them:

* **Round size** ``N`` is the number of leads the round can place: the maximum
  flow from leads to partners under eligibility and capacity (OR-Tools
  ``SimpleMaxFlow``).  With effort-weighted capacity the flow has no meaning in
  leads, so ``N`` is the number of leads in the round.
* **Shares are counts of N**: a maximum share becomes ``floor(share × N)``, a
  minimum share ``ceil(share × N)`` (tier shares and ``max_share_per_partner``).
* **Quota shares** count leads of the quota's intent in the round (qualified,
  with at least one eligible partner): same floor/ceil rule on that number.
* **Floors** are ``partner_floor`` limited by the partner's capacity, by
  ``max_per_partner`` and by the number of leads it is eligible for (with effort:
  by how many of its eligible leads fit in its capacity, smallest first).
* **Effort** is per pair when given, else the leads' ``effort`` column when any
  value differs from 1, else unit (``pair_effort = None``).
* **Revenue objective**: :func:`pair_values` turns probabilities into
  ``p × deal_size``; a missing deal size counts as 0 (a note says how many).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import pandas as pd
from ortools.graph.python import max_flow

from allocator.errors import InputError, InputProblem
from allocator.policy import Policy
from allocator.problem import AllocationProblem

_EPS = 1e-9


def max_count(share: float, n: int) -> int:
    """Most leads a maximum ``share`` of ``n`` allows: ``floor(share × n)``."""
    return math.floor(share * n + _EPS)


def min_count(share: float, n: int) -> int:
    """Fewest leads a minimum ``share`` of ``n`` asks for: ``ceil(share × n)``."""
    return math.ceil(share * n - _EPS)


def tier_limits(
    problem: AllocationProblem,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Tiers of the round and their lead counts.

    Returns
    -------
    names : ndarray of str
        Distinct partner tiers, then policy tiers no partner has.
    partner_tier : ndarray of int64
        Per partner, its position in ``names``.
    lo, hi : ndarray of int64
        Per tier, the least and most leads it may take (``0`` and ``n_leads``
        when the policy sets no share).
    """
    names = list(dict.fromkeys(str(t) for t in problem.partner_tier))
    names += [t.name for t in problem.tiers if t.name not in names]
    index = {name: k for k, name in enumerate(names)}
    partner_tier = np.fromiter((index[str(t)] for t in problem.partner_tier), dtype=np.int64,
                               count=problem.n_partners)
    lo = np.zeros(len(names), dtype=np.int64)
    hi = np.full(len(names), problem.n_leads, dtype=np.int64)
    for rule in problem.tiers:
        k = index[rule.name]
        if rule.min_share is not None:
            lo[k] = max(lo[k], min_count(rule.min_share, problem.round_size))
        if rule.max_share is not None:
            hi[k] = min(hi[k], max_count(rule.max_share, problem.round_size))
    return np.asarray(names, dtype=object), partner_tier, lo, hi


def quota_groups(problem: AllocationProblem) -> tuple[list[tuple[str, str]], np.ndarray,
                                                      np.ndarray, np.ndarray]:
    """Quotas merged by (tier, intent), with their lead counts and member pairs.

    Returns
    -------
    keys : list of (tier, intent)
    lo, hi : ndarray of int64
        Per group, least and most leads of that intent the tier may take
        (``-1`` for no upper limit).
    pair_group : ndarray of int64
        Per pair, its group or ``-1``.
    """
    keys: list[tuple[str, str]] = []
    lo_list: list[int] = []
    hi_list: list[int] = []
    intents = problem.lead_intent.astype(str)
    for q in problem.quotas:
        n_intent = int(np.count_nonzero(intents == q.intent))
        key = (q.tier, q.intent)
        if key not in keys:
            keys.append(key)
            lo_list.append(0)
            hi_list.append(-1)
        g = keys.index(key)
        if q.min_share is not None:
            lo_list[g] = max(lo_list[g], min_count(q.min_share, n_intent))
        if q.max_share is not None:
            m = max_count(q.max_share, n_intent)
            hi_list[g] = m if hi_list[g] < 0 else min(hi_list[g], m)
    pair_group = np.full(problem.n_pairs, -1, dtype=np.int64)
    if keys:
        pair_intent = intents[problem.pair_lead]
        pair_tier = problem.partner_tier.astype(str)[problem.pair_partner]
        for g, (tier, intent) in enumerate(keys):
            pair_group[(pair_intent == intent) & (pair_tier == tier)] = g
    return keys, np.asarray(lo_list, dtype=np.int64), np.asarray(hi_list, dtype=np.int64), \
        pair_group


def pair_values(scores: np.ndarray, pairs: pd.DataFrame, leads: pd.DataFrame,
                policy: Policy) -> np.ndarray:
    """Value of each pair under the policy's objective.

    Parameters
    ----------
    scores : ndarray of float
        Per pair, the conversion probability (or any score).
    pairs : DataFrame
        With ``lead_index`` (positions in ``leads``).
    leads : DataFrame
        With ``deal_size`` when the objective is revenue.
    policy : Policy

    Returns
    -------
    ndarray of float64
        ``scores`` for ``objective.value = "conversions"``; ``scores × deal_size``
        for ``"revenue"``, where a missing deal size counts as 0.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if policy.objective_value != "revenue":
        return scores
    if "deal_size" not in leads.columns:
        raise ValueError("The revenue objective needs a 'deal_size' column in the leads. "
                         f"Got columns {list(leads.columns)} instead.")
    deal = pd.to_numeric(leads["deal_size"], errors="coerce").to_numpy(dtype=np.float64,
                                                                       na_value=np.nan)
    per_pair = deal[np.asarray(pairs["lead_index"], dtype=np.int64)]
    return scores * np.nan_to_num(per_pair, nan=0.0)


def round_size(pair_lead: np.ndarray, pair_partner: np.ndarray, n_leads: int,
               capacity: np.ndarray) -> int:
    """Most leads the round can place under eligibility and capacity (maximum flow)."""
    if pair_lead.size == 0 or n_leads == 0:
        return 0
    n_partners = capacity.shape[0]
    source, sink = n_leads + n_partners, n_leads + n_partners + 1
    mf = max_flow.SimpleMaxFlow()
    lead_nodes = np.arange(n_leads, dtype=np.int32)
    partner_nodes = np.arange(n_leads, n_leads + n_partners, dtype=np.int32)
    tails = np.concatenate([np.full(n_leads, source, np.int32), pair_lead.astype(np.int32),
                            partner_nodes])
    heads = np.concatenate([lead_nodes, (pair_partner + n_leads).astype(np.int32),
                            np.full(n_partners, sink, np.int32)])
    caps = np.concatenate([np.ones(n_leads + pair_lead.size, np.int64),
                           np.maximum(capacity, 0).astype(np.int64)])
    mf.add_arcs_with_capacity(tails, heads, caps)
    status = mf.solve(source, sink)
    if status != mf.OPTIMAL:  # pragma: no cover - only on int64 overflow
        raise RuntimeError(f"Max flow for the round size failed with status {status}.")
    return int(mf.optimal_flow())


def _floors(policy: Policy, pair_partner: np.ndarray, pair_eff: np.ndarray | None,
            capacity: np.ndarray, max_per_partner: int | None, active: np.ndarray) -> np.ndarray:
    n_partners = capacity.shape[0]
    if policy.partner_floor <= 0:
        return np.zeros(n_partners, dtype=np.int64)
    n_eligible = np.bincount(pair_partner, minlength=n_partners)
    floor = np.minimum(policy.partner_floor, n_eligible).astype(np.int64)
    if pair_eff is None:
        floor = np.minimum(floor, np.floor(capacity + _EPS).astype(np.int64))
    else:
        # Leads that fit, cheapest first: rank of each pair within its partner by effort.
        order = np.lexsort((pair_eff, pair_partner))
        eff_sorted = pair_eff[order]
        part_sorted = pair_partner[order]
        cum = np.cumsum(eff_sorted)
        starts = np.searchsorted(part_sorted, np.arange(n_partners))
        before = np.where(starts > 0, cum[np.maximum(starts - 1, 0)], 0.0)
        within = cum - before[part_sorted]
        fits = np.bincount(part_sorted[within <= capacity[part_sorted] + _EPS],
                           minlength=n_partners)
        floor = np.minimum(floor, fits)
    if max_per_partner is not None:
        floor = np.minimum(floor, max_per_partner)
    floor[~active] = 0
    return np.maximum(floor, 0)


def _column(frame: pd.DataFrame, name: str, default: Any) -> pd.Series:
    if name in frame.columns:
        return frame[name]
    return pd.Series([default] * len(frame), index=frame.index)


def build_problem(pairs: Any, scores: np.ndarray, leads: pd.DataFrame, partners: pd.DataFrame,
                  policy: Policy, effort: np.ndarray | None = None) -> AllocationProblem:
    """Assemble one round's :class:`AllocationProblem` from its eligible pairs.

    Parameters
    ----------
    pairs : DataFrame or Eligibility
        ``lead_id``, ``partner_id``, ``lead_index``, ``partner_index`` (positions
        in ``leads`` and ``partners``); an object with a ``pairs`` attribute
        (``allocator.eligibility.Eligibility``) is accepted too.
    scores : ndarray of float
        Per pair, its final value (see :func:`pair_values` for revenue).
    leads, partners : DataFrame
        Data-contract frames (``intent``, ``effort``, ``deal_size``; ``tier``,
        ``capacity``, ``active``).
    policy : Policy
    effort : ndarray of float, optional
        Per pair workload units (from ``pairs.csv``); overrides ``leads.effort``.

    Returns
    -------
    AllocationProblem
        Leads are those with at least one pair, in the order of ``leads``;
        partners are all rows of ``partners``.

    Raises
    ------
    InputError
        When a score is not finite, an effort is not positive, a capacity is
        negative, or a pair points outside the frames.
    """
    started = time.perf_counter()
    frame = pairs.pairs if hasattr(pairs, "pairs") else pairs
    lead_index = np.asarray(frame["lead_index"], dtype=np.int64)
    partner_index = np.asarray(frame["partner_index"], dtype=np.int64)
    values = np.asarray(scores, dtype=np.float64).reshape(-1)
    problems: list[InputProblem] = []
    if values.shape[0] != lead_index.shape[0]:
        raise ValueError(f"'scores' must hold one value per pair ({lead_index.shape[0]}). "
                         f"Got {values.shape[0]} instead.")
    for row in np.flatnonzero(~np.isfinite(values))[:50]:
        problems.append(InputProblem("pairs", int(row) + 1, "score", float(values[row]),
                                     "a pair's score must be a finite number"))
    bad_index = (lead_index < 0) | (lead_index >= len(leads)) | (partner_index < 0) | \
        (partner_index >= len(partners))
    for row in np.flatnonzero(bad_index)[:50]:
        problems.append(InputProblem("pairs", int(row) + 1, "lead_index/partner_index",
                                     (int(lead_index[row]), int(partner_index[row])),
                                     "a pair must point at a lead and a partner of the round"))
    capacity = pd.to_numeric(partners["capacity"], errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan)
    for row in np.flatnonzero(~(capacity >= 0))[:50]:
        problems.append(InputProblem("partners", int(row) + 1, "capacity", float(capacity[row]),
                                     "capacity must be a non-negative number"))
    pair_eff_all: np.ndarray | None = None
    if effort is not None:
        pair_eff_all = np.asarray(effort, dtype=np.float64).reshape(-1)
        if pair_eff_all.shape[0] != lead_index.shape[0]:
            raise ValueError(f"'effort' must hold one value per pair ({lead_index.shape[0]}). "
                             f"Got {pair_eff_all.shape[0]} instead.")
        for row in np.flatnonzero(~(pair_eff_all > 0) | ~np.isfinite(pair_eff_all))[:50]:
            problems.append(InputProblem("pairs", int(row) + 1, "effort",
                                         float(pair_eff_all[row]),
                                         "effort must be a positive finite number"))
    elif "effort" in leads.columns and len(lead_index):
        lead_eff = pd.to_numeric(leads["effort"], errors="coerce").to_numpy(
            dtype=np.float64, na_value=1.0)
        used = lead_eff[np.unique(lead_index[~bad_index])] if len(leads) else lead_eff
        if np.any(used != 1.0):
            bad_rows = np.unique(lead_index[~bad_index])
            bad_rows = bad_rows[~(lead_eff[bad_rows] > 0) | ~np.isfinite(lead_eff[bad_rows])]
            for row in bad_rows[:50]:
                problems.append(InputProblem("leads", int(row) + 1, "effort",
                                             float(lead_eff[row]),
                                             "effort must be a positive finite number"))
            pair_eff_all = lead_eff[np.where(bad_index, 0, lead_index)]
    if problems:
        raise InputError(problems)

    round_leads, pair_lead = np.unique(lead_index, return_inverse=True)
    pair_lead = pair_lead.astype(np.int64)
    n_leads = round_leads.shape[0]
    lead_ids = leads["lead_id"].to_numpy()[round_leads].astype(str).astype(object)
    intent_col = _column(leads, "intent", None)
    intent = np.array(["" if pd.isna(v) else str(v) for v in intent_col.to_numpy()[round_leads]],
                      dtype=object)
    partner_ids = partners["partner_id"].to_numpy().astype(str).astype(object)
    partner_tier = _column(partners, "tier", "").astype(str).to_numpy().astype(object)
    active = _column(partners, "active", True).fillna(True).to_numpy(dtype=bool)

    if pair_eff_all is None:
        n = round_size(pair_lead, partner_index, n_leads, np.floor(capacity + _EPS))
    else:
        n = n_leads
    mpp = None if policy.max_share_per_partner is None else \
        max_count(policy.max_share_per_partner, n)
    floor = _floors(policy, partner_index, pair_eff_all, capacity, mpp, active)

    notes: list[str] = []
    if policy.objective_value == "revenue" and "deal_size" in leads.columns:
        deal = pd.to_numeric(leads["deal_size"], errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan)[round_leads]
        missing = int(np.count_nonzero(np.isnan(deal)))
        if missing:
            notes.append(f"{missing} lead{'s' if missing != 1 else ''} in the round "
                         f"{'have' if missing != 1 else 'has'} no deal_size; under the revenue "
                         "objective their value counts as 0.")
    if pair_eff_all is not None:
        notes.append("capacity is in effort units (lead effort differs from 1).")
    return AllocationProblem(
        lead_ids=lead_ids,
        lead_intent=intent,
        partner_ids=partner_ids,
        partner_tier=partner_tier,
        capacity_units=capacity,
        floor=floor,
        pair_lead=pair_lead,
        pair_partner=partner_index.copy(),
        pair_score=values,
        pair_effort=pair_eff_all,
        round_size=int(n),
        max_per_partner=mpp,
        tiers=policy.tiers,
        quotas=policy.quotas,
        assign_all=policy.assign_all,
        floor_mode=policy.fairness_mode,
        floor_penalty=policy.floor_penalty,
        lead_row=round_leads,
        objective=policy.objective_value,
        notes=tuple(notes),
        build_time_s=time.perf_counter() - started,
    )
