"""The LP relaxation of an effort round whose efforts are the leads' own, as one min-cost flow.

When every eligible pair of a lead costs the same effort ``e_i`` (the leads'
``effort`` column), substituting ``y = e_i × x`` turns the lead rows and the
effort rows into a transportation problem: lead ``i`` supplies ``e_i`` effort
units, partner ``j`` absorbs at most ``capacity_j``, a unit sent on pair ``p``
earns ``score_p / e_i``, and unsent units go to the sink for nothing.  Its
optimum is the LP optimum of the round *without* the count rows (floors, max
share, tier shares, quotas), solved exactly by OR-Tools' ``SimpleMinCostFlow``
on integers (efforts and capacities scaled to integers, values scaled to
integers as in :mod:`allocator.flow`).

**Duals.**  The flow does not return node potentials, so they are rebuilt from
complementary slackness: a lead that sends units on pair ``(i, j)`` values each
unit at ``v_i = s_ij/e_i − λ_j``, and ``v_i ≥ s_ik/e_i − λ_k`` on its other pairs,
so ``λ_k ≥ λ_j + (s_ik − s_ij)/e_i``; ``v_i ≥ 0`` gives ``λ_j ≤ s_ij/e_i``, a
lead with units left over gives ``λ_k ≥ s_ik/e_i``, a partner with room left
gives ``λ_j ≤ 0``.  These are difference constraints; the smallest solution is
a longest-path problem from the sink, solved by Bellman–Ford on the partner
graph (vectorized over its edges).  ``λ_j`` is the price of one effort unit of
partner ``j``; the count rows get zero duals, and the bound
:class:`allocator.colgen.BoundEvaluator` reads from them is proven whatever
they are.  When the flow meets every count row too, it is the LP optimum of
the whole round and the bound meets it.
"""

from __future__ import annotations

import math
import time

import numpy as np
from ortools.graph.python import min_cost_flow

from allocator.colgen import BoundEvaluator, Relaxation
from allocator.effort_moves import effort_classes
from allocator.flow import INT64_MAX
from allocator.linear import LinearModel, effort_scale
from allocator.problem import AllocationProblem

SOURCE = "transportation flow potentials"
_MAX_ROUNDS = 10_000


def lead_effort(problem: AllocationProblem) -> np.ndarray | None:
    """Per lead its effort when every pair of every lead costs the lead's own effort, else None."""
    if problem.pair_effort is None or not problem.n_pairs:
        return None
    effort, _ = effort_classes(problem)
    has = np.bincount(problem.pair_lead, minlength=problem.n_leads) > 0
    if np.isnan(effort[has]).any():
        return None
    return np.where(has, effort, 1.0)


def _longest_paths(n_nodes: int, tail: np.ndarray, head: np.ndarray, weight: np.ndarray,
                   start: np.ndarray) -> np.ndarray | None:
    """Smallest ``d ≥ start`` with ``d[head] ≥ d[tail] + weight`` (None on a positive cycle)."""
    dist = start.astype(np.int64).copy()
    for _ in range(min(n_nodes + 1, _MAX_ROUNDS)):
        cand = dist[tail] + weight
        new = dist.copy()
        np.maximum.at(new, head, cand)
        if np.array_equal(new, dist):
            return dist
        dist = new
    return None


def _edges(pair_lead: np.ndarray, node: np.ndarray, cost: np.ndarray, on: np.ndarray,
           n_leads: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edges ``j → k`` of weight ``c_ik − c_ij`` for every pair ``(i, j)`` carrying flow and
    every other pair ``(i, k)`` of the same lead, merged by their largest weight."""
    order = np.argsort(pair_lead, kind="stable")
    counts = np.bincount(pair_lead, minlength=n_leads)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    used = np.flatnonzero(on)
    deg = counts[pair_lead[used]]
    rep_used = np.repeat(used, deg)
    offset = np.arange(int(deg.sum())) - np.repeat(np.cumsum(deg) - deg, deg)
    other = order[np.repeat(starts[pair_lead[used]], deg) + offset]
    keep = other != rep_used
    tail, head = node[rep_used[keep]], node[other[keep]]
    weight = cost[other[keep]] - cost[rep_used[keep]]
    keep2 = tail != head
    tail, head, weight = tail[keep2], head[keep2], weight[keep2]
    n_nodes = int(node.max()) + 2 if node.size else 1
    key = tail.astype(np.int64) * n_nodes + head
    uniq, inv = np.unique(key, return_inverse=True)
    best = np.full(uniq.shape[0], np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(best, inv, weight)
    return uniq // n_nodes, uniq % n_nodes, best


def transport_relaxation(problem: AllocationProblem, model: LinearModel, deadline: float,
                         ) -> Relaxation | None:
    """The relaxation by one flow (module docstring); None when efforts differ within a lead.

    ``values`` may break count rows (floors, max share, tier shares, quotas); the
    rounding in :mod:`allocator.effort` frees leads around them.
    """
    effort = lead_effort(problem)
    if effort is None or time.perf_counter() > deadline:
        return None
    started = time.perf_counter()
    n, m, pl, pp = problem.n_leads, problem.n_partners, problem.pair_lead, problem.pair_partner
    cap_units = np.asarray(problem.capacity_units, dtype=float)
    k = effort_scale(effort, cap_units)
    supply = np.rint(effort * k).astype(np.int64)
    capacity = np.floor(cap_units * k + 1e-9).astype(np.int64)
    if np.any(np.abs(effort * k - supply) > 1e-9 * np.maximum(1.0, effort * k)):
        return None  # efforts not integral at any scale: the LP path handles them
    per_unit = problem.pair_score / (effort[pl] * k)
    vmax = max(float(np.max(np.abs(per_unit))), 1e-12)
    units = int(supply.sum())
    limit = INT64_MAX // (8 * (n + m + 3) * max(units, 1))
    # About six significant digits per unit value: the bound is read from true scores.
    scale = 10.0 ** math.floor(math.log10(max(min(2.0**20 / vmax, limit / vmax), 1.0)))
    cost = np.rint(per_unit * scale).astype(np.int64)
    src, sink = n + m, n + m + 1
    tails = [pl.astype(np.int32), np.full(n, src, np.int32), (n + np.arange(m)).astype(np.int32)]
    heads = [(n + pp).astype(np.int32), np.arange(n, dtype=np.int32),
             np.full(m, sink, np.int32)]
    caps = [supply[pl], supply, capacity]
    costs = [-cost, np.zeros(n, np.int64), np.zeros(m, np.int64)]
    if not problem.assign_all:
        tails.append(np.arange(n, dtype=np.int32))
        heads.append(np.full(n, sink, np.int32))
        caps.append(supply)
        costs.append(np.zeros(n, np.int64))
    mcf = min_cost_flow.SimpleMinCostFlow()
    mcf.add_arcs_with_capacity_and_unit_cost(np.concatenate(tails), np.concatenate(heads),
                                             np.concatenate(caps), np.concatenate(costs))
    supplies = np.zeros(n + m + 2, np.int64)
    supplies[src], supplies[sink] = units, -units
    mcf.set_nodes_supplies(np.arange(n + m + 2, dtype=np.int32), supplies)
    if mcf.solve() != mcf.OPTIMAL:
        return None
    flow = np.asarray(mcf.flows(np.arange(problem.n_pairs, dtype=np.int32)))
    on = flow > 0
    load = np.bincount(pp[on], weights=flow[on], minlength=m)
    sent = np.bincount(pl[on], weights=flow[on], minlength=n)
    # Difference constraints on the partners' unit prices; node m is the sink (price 0).
    tail, head, weight = _edges(pl, pp, cost, on, n)
    t_list, h_list, w_list = [tail], [head], [weight]
    if not problem.assign_all:
        t_list.append(pp[on])
        h_list.append(np.full(int(on.sum()), m))
        w_list.append(-cost[on])  # v_i ≥ 0
        left = (sent < supply)[pl]
        t_list.append(np.full(int(left.sum()), m))
        h_list.append(pp[left])
        w_list.append(cost[left])  # leads with units left over value them at 0
    room = np.flatnonzero(load < capacity)
    t_list.append(room)
    h_list.append(np.full(room.size, m))
    w_list.append(np.zeros(room.size, np.int64))  # partners with room: price 0
    dist = _longest_paths(m + 1, np.concatenate(t_list), np.concatenate(h_list),
                          np.concatenate(w_list), np.zeros(m + 1, np.int64))
    if dist is None or dist[m] > 0:
        return None
    price = np.maximum(dist[:m], 0) / scale * k  # per true effort unit
    duals = np.zeros(model.A.shape[0])
    if "effort" in model.rows:
        duals[model.rows["effort"]] = price
    ev = BoundEvaluator(model, pl, n)
    db = ev(duals)
    duals[:n] = db.lead_best if problem.assign_all else np.maximum(db.lead_best, 0.0)
    duals[:n] = np.where(np.isfinite(duals[:n]), duals[:n], 0.0)
    values = np.zeros(model.obj.shape[0])
    values[:problem.n_pairs] = flow / supply[pl]
    objective = float(model.obj @ values)
    status = "relaxed" if violated_rows(model, values).size else (
        "optimal" if db.bound - objective <= 1e-9 * max(abs(db.bound), 1e-9) else "stopped")
    return Relaxation(status, values, duals, objective, db.bound, db.q, SOURCE, None, 1,
                      problem.n_pairs, time.perf_counter() - started)


def violated_rows(model: LinearModel, values: np.ndarray, tol: float = 1e-7) -> np.ndarray:
    """Rows of ``model`` that ``values`` break (beyond ``tol``)."""
    act = model.A @ values
    return np.flatnonzero((act < model.row_lo - tol) | (act > model.row_hi + tol))
