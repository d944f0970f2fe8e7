"""The residual graph of a round's flow, collapsed onto partners, tiers and the sink.

Leads are many and partners few.  In the residual graph of a flow every lead
node has exactly one way in: the reverse of the arc its unit leaves by (from
its partner, or from the sink when unassigned).  So a path through a lead is
``a(i) → i → k``: take lead ``i`` from ``a(i)`` and give it to ``k`` (or to
the sink: leave it unassigned), at cost ``c[i,k] − c[i,a(i)]``.  Collapsing
every lead into such edges, keeping the cheapest of parallel ones, gives a
graph on ``partners + tiers + 1`` nodes with the same cycles and path costs
between those nodes.  Node ids: partner ``j`` is ``j``, tier ``t`` is
``n_partners + t``, the sink is last.

Used for the prices (:mod:`allocator.prices`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from allocator.problem import AllocationProblem

if TYPE_CHECKING:
    from allocator.flow import FlowSolution

INF = np.int64(1) << np.int64(62)
_DENSE_CELLS = 32_000_000


def lead_edges(problem: AllocationProblem, sol: FlowSolution,
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edges through leads (before collapsing): move a lead, or place an unassigned one."""
    m, t = problem.n_partners, sol.spec.tier_names.shape[0]
    sink = m + t
    pl, pp, pc = problem.pair_lead, problem.pair_partner, sol.pair_cost
    at = sol.lead_pair[pl]
    chosen = sol.pair_flow
    moves = (at >= 0) & ~chosen
    a = at[moves]
    tails = [problem.pair_partner[a]]
    heads = [pp[moves]]
    costs = [pc[moves] - sol.pair_cost[a]]
    if not sol.spec.assign_all:
        free = at < 0
        tails.append(np.full(int(free.sum()), sink))
        heads.append(pp[free])
        costs.append(pc[free])
    return np.concatenate(tails), np.concatenate(heads), np.concatenate(costs)


def structure_edges(problem: AllocationProblem, sol: FlowSolution,
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Residual partner → tier → sink edges, and leads released to the sink."""
    spec = sol.spec
    m, t = problem.n_partners, spec.tier_names.shape[0]
    sink = m + t
    idx = np.arange(m)
    tier_node = m + spec.partner_tier
    count = sol.partner_count
    tails: list[np.ndarray] = []
    heads: list[np.ndarray] = []
    costs: list[np.ndarray] = []
    if not spec.assign_all:
        chosen = np.flatnonzero(sol.pair_flow)
        tails.append(problem.pair_partner[chosen])
        heads.append(np.full(chosen.shape[0], sink))
        costs.append(-sol.pair_cost[chosen])
    arcs: tuple[tuple[np.ndarray, np.ndarray, np.ndarray, int], ...]
    if spec.soft:
        floor_cap = np.minimum(spec.floor, spec.cap)
        met = spec.floor - (sol.shortfall if sol.shortfall is not None else 0)
        rest_used = count - met
        arcs = ((met < floor_cap, idx, tier_node, -sol.scale.penalty),
                (met > 0, tier_node, idx, sol.scale.penalty),
                (rest_used < spec.cap - floor_cap, idx, tier_node, 0),
                (rest_used > 0, tier_node, idx, 0))
    else:
        arcs = ((count < spec.cap, idx, tier_node, 0), (count > spec.floor, tier_node, idx, 0))
    for mask, a, b, c in arcs:
        tails.append(a[mask])
        heads.append(b[mask])
        costs.append(np.full(int(mask.sum()), c, dtype=np.int64))
    tier_count = np.bincount(spec.partner_tier, weights=count, minlength=t).astype(np.int64)
    tiers = np.arange(m, m + t)
    up, down = tier_count < spec.tier_hi, tier_count > spec.tier_lo
    tails += [tiers[up], np.full(int(down.sum()), sink)]
    heads += [np.full(int(up.sum()), sink), tiers[down]]
    costs += [np.zeros(int(up.sum()), np.int64), np.zeros(int(down.sum()), np.int64)]
    return np.concatenate(tails), np.concatenate(heads), np.concatenate(costs)


def collapse(tail: np.ndarray, head: np.ndarray, cost: np.ndarray,
             n_nodes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep the cheapest of parallel edges and drop self-loops."""
    keep = tail != head
    key = tail[keep].astype(np.int64) * n_nodes + head[keep]
    if n_nodes * n_nodes <= _DENSE_CELLS:
        # A dense node × node table is cheaper than hashing tens of millions of keys.
        table = np.full(n_nodes * n_nodes, INF, dtype=np.int64)
        np.minimum.at(table, key, cost[keep])
        k = np.flatnonzero(table < INF)
        return k // n_nodes, k % n_nodes, table[k]
    best = pd.Series(cost[keep]).groupby(key, sort=False).min()
    k = best.index.to_numpy(dtype=np.int64)
    return k // n_nodes, k % n_nodes, best.to_numpy(dtype=np.int64)


def partner_graph(problem: AllocationProblem, sol: FlowSolution,
                  ) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """The collapsed residual graph: ``(n_nodes, tail, head, cost)``, integer costs."""
    n_nodes = problem.n_partners + sol.spec.tier_names.shape[0] + 1
    parts = [lead_edges(problem, sol), structure_edges(problem, sol)]
    tail, head, cost = (np.concatenate([p[k] for p in parts]).astype(np.int64) for k in range(3))
    t, h, c = collapse(tail, head, cost, n_nodes)
    return n_nodes, t, h, c


def bellman_ford(n_nodes: int, tail: np.ndarray, head: np.ndarray, cost: np.ndarray,
                 sources: np.ndarray) -> np.ndarray:
    """Shortest distances from each source, on integer costs that may be negative.

    Vectorized: each pass relaxes only the edges leaving nodes whose distance
    changed in the previous pass.

    Returns
    -------
    ndarray of int64, shape (n_nodes, len(sources))
        :data:`INF` where a node is unreachable.

    Raises
    ------
    RuntimeError
        When a negative cycle is reachable (the flow was not optimal).
    """
    s = len(sources)
    dist = np.full((n_nodes, s), INF, dtype=np.int64)
    dist[sources, np.arange(s)] = 0
    changed = np.zeros(n_nodes, dtype=bool)
    changed[sources] = True
    order = np.argsort(head, kind="stable")
    tail, head, cost = tail[order], head[order], cost[order]
    for _ in range(n_nodes + 1):
        live = changed[tail]
        if not live.any():
            return dist
        t, h, c = tail[live], head[live], cost[live]
        from_tail = dist[t]
        cand = np.where(from_tail >= INF, INF, from_tail + c[:, None])
        starts = np.flatnonzero(np.r_[True, h[1:] != h[:-1]])
        best = np.minimum.reduceat(cand, starts, axis=0)
        nodes = h[starts]
        better = best < dist[nodes]
        changed = np.zeros(n_nodes, dtype=bool)
        changed[nodes[better.any(axis=1)]] = True
        dist[nodes] = np.minimum(dist[nodes], best)
    raise RuntimeError("Negative cycle in the residual graph: the flow is not optimal.")
