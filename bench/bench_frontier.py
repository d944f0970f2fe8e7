"""Bench: the fairness frontier (10 points) against cold solves of the same rounds.

Usage::

    .venv/bin/python bench/bench_frontier.py [--leads 100000] [--partners 200] [--eligible 15]
                                             [--points 10] [--baseline-solves 1]

A synthetic round (each lead eligible for ``--eligible`` partners, four tiers
with shares, a per-partner maximum, a floor of 2) is swept over ``--points``
fairness strengths with :func:`allocator.frontier.compute_frontier` (verify
and fairness metrics included), and compared in the same run with the
baseline: ``allocator.solve.solve`` cold, once per point (``--baseline-solves``
of them are timed and scaled to the number of points; give the number of
points to time every one).  Wall-clock and CPU seconds are both printed: the
machine may be shared, and CPU time is what load does not inflate.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np

from allocator.frontier import alpha_floor, compute_frontier
from allocator.policy import TierRule
from allocator.problem import AllocationProblem
from allocator.solve import solve

TIERS = np.array(["platinum", "gold", "silver", "bronze"], dtype=object)


def synthetic_round(n_leads: int, n_partners: int, eligible: int, seed: int = 0
                    ) -> AllocationProblem:
    """A round with ``eligible`` distinct partners per lead and partner-driven scores."""
    rng = np.random.default_rng(seed)
    k = min(eligible, n_partners)
    first = rng.integers(0, n_partners, n_leads)
    offsets = rng.permutation(n_partners)[:k]
    pair_partner = ((first[:, None] + offsets[None, :]) % n_partners).ravel()
    pair_lead = np.repeat(np.arange(n_leads), k)
    quality = rng.beta(2, 5, n_partners)
    score = np.clip(quality[pair_partner] * rng.lognormal(0, 0.3, pair_lead.size), 0, 1)
    capacity = rng.integers(max(1, n_leads // (2 * n_partners)),
                            max(2, 3 * n_leads // n_partners), n_partners).astype(float)
    return AllocationProblem(
        lead_ids=np.array([f"L{i}" for i in range(n_leads)], dtype=object),
        lead_intent=rng.choice(np.array(["high", "medium", "low"], dtype=object), n_leads),
        partner_ids=np.array([f"P{j}" for j in range(n_partners)], dtype=object),
        partner_tier=TIERS[rng.choice(4, n_partners, p=[0.1, 0.2, 0.3, 0.4])],
        capacity_units=capacity,
        floor=np.minimum(2, capacity).astype(np.int64),
        pair_lead=pair_lead.astype(np.int64),
        pair_partner=pair_partner.astype(np.int64),
        pair_score=score,
        round_size=n_leads,
        max_per_partner=int(0.1 * n_leads),
        tiers=(TierRule("gold", 0.15, 0.6), TierRule("bronze", 0.1, None)),
    )


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--partners", type=int, default=200)
    parser.add_argument("--eligible", type=int, default=15)
    parser.add_argument("--points", type=int, default=10)
    parser.add_argument("--baseline-solves", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    problem = synthetic_round(args.leads, args.partners, args.eligible, args.seed)
    alphas = np.round(np.linspace(0.0, 1.0, args.points), 10)
    print(f"round: {problem.n_leads} leads, {problem.n_partners} partners, "
          f"{problem.n_pairs} eligible pairs; {args.points} fairness strengths")

    wall, cpu = _clock()
    frontier = compute_frontier(problem, alphas, include_policy=False)
    f_wall, f_cpu = time.perf_counter() - wall, time.process_time() - cpu
    for p in frontier.points:
        print(f"  alpha={p.alpha:<4g} {p.status:<10} objective {p.objective:>12.3f}  "
              f"lost {p.yield_lost_pct:6.2f}%  floors {p.floor_total:>6}  "
              f"verified {p.verified}  {p.solve_s:5.2f} s")
    print(f"frontier ({frontier.solver}): {f_wall:.2f} s wall, {f_cpu:.2f} s CPU")

    n = max(1, min(args.baseline_solves, args.points))
    picks = np.linspace(0, args.points - 1, n).round().astype(int)
    wall, cpu = _clock()
    for k in picks:
        alloc = solve(replace(problem, floor=alpha_floor(problem, float(alphas[k]))),
                      time_limit_s=60.0)
        print(f"  baseline solve at alpha={alphas[k]:g}: {alloc.status}, "
              f"objective {alloc.objective:.3f}")
    b_wall = (time.perf_counter() - wall) * args.points / n
    b_cpu = (time.process_time() - cpu) * args.points / n
    scaled = "" if n == args.points else f" ({n} timed, scaled to {args.points})"
    print(f"baseline: {args.points} cold solve() calls{scaled}: {b_wall:.2f} s wall, "
          f"{b_cpu:.2f} s CPU")
    print(f"ratio baseline / frontier: {b_wall / f_wall:.2f}x wall, {b_cpu / f_cpu:.2f}x CPU")
    print(f"target: {args.points} points in 20 s -> "
          f"{'met' if f_wall <= 20.0 else 'missed'} on wall clock "
          f"({'met' if f_cpu <= 20.0 else 'missed'} on CPU time)")


if __name__ == "__main__":
    main()
