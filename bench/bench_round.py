"""Benchmark: one allocation round, min-cost flow (OR-Tools) against the HiGHS LP.

Builds a synthetic round (leads, partners, eligible partners per lead, capacity
caps, floors, tier shares, a max share per partner), solves it with
``allocator.solve.solve`` (min-cost flow + residual-graph prices + independent
verification) and with HiGHS on the LP of the same network problem
(``scipy.optimize.linprog(method="highs")``), and prints the two side by side:
time, objective, their ratio, and the peak memory of the process.

    .venv/bin/python bench/bench_round.py                 # 100k leads x 2k partners x 30
    .venv/bin/python bench/bench_round.py --big           # 1M x 5k x 30, flow only
    .venv/bin/python bench/bench_round.py --leads 20000 --partners 500 --eligible 20

The network is totally unimodular, so the two objectives must agree; the
target is the same objective at least 20x faster, and under 60 s and 8 GB at
1M x 5k x 30.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from allocator.build import max_count, min_count, round_size
from allocator.policy import TierRule
from allocator.problem import AllocationProblem
from allocator.solve import solve

TIERS = ("platinum", "gold", "silver", "bronze")


def make_round(n_leads: int, n_partners: int, eligible: int, seed: int) -> AllocationProblem:
    """A synthetic round; partners near each other in index share leads (like territories)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, n_partners, n_leads)
    steps = rng.integers(1, 4, (n_leads, eligible))
    steps[:, 0] = 0
    offsets = np.cumsum(steps, axis=1)  # strictly increasing: distinct partners per lead
    pair_partner = ((base[:, None] + offsets) % n_partners).reshape(-1).astype(np.int64)
    pair_lead = np.repeat(np.arange(n_leads, dtype=np.int64), eligible)
    skill = rng.normal(0.0, 0.5, n_partners)
    quality = rng.normal(-1.5, 0.7, n_leads)
    logit = quality[pair_lead] + skill[pair_partner] + rng.normal(0.0, 0.4, pair_lead.shape[0])
    pair_score = np.round(1.0 / (1.0 + np.exp(-logit)), 6)
    mean_cap = 0.8 * n_leads / n_partners  # the round is short of capacity: caps bind
    capacity = rng.integers(max(int(mean_cap * 0.25), 1), int(mean_cap * 1.75) + 2,
                            n_partners).astype(float)
    tier = rng.choice(np.array(TIERS, dtype=object), n_partners, p=[0.1, 0.2, 0.3, 0.4])
    n = round_size(pair_lead, pair_partner, n_leads, capacity)
    tiers = (TierRule("gold", min_share=0.15, max_share=0.45), TierRule("bronze", min_share=0.10))
    elig = np.bincount(pair_partner, minlength=n_partners)
    mpp = max_count(0.01, n)
    floor = np.minimum(np.minimum(2, capacity.astype(np.int64)), np.minimum(elig, mpp))
    return AllocationProblem(
        lead_ids=np.array([f"L{i}" for i in range(n_leads)], dtype=object),
        lead_intent=rng.choice(np.array(["high", "medium", "low"], dtype=object), n_leads),
        partner_ids=np.array([f"P{j}" for j in range(n_partners)], dtype=object),
        partner_tier=tier, capacity_units=capacity, floor=floor.astype(np.int64),
        pair_lead=pair_lead, pair_partner=pair_partner, pair_score=pair_score,
        round_size=int(n), max_per_partner=mpp, tiers=tiers)


def highs_lp(problem: AllocationProblem) -> tuple[float, float, float, str]:
    """The LP of the same network problem with HiGHS: (objective, wall s, CPU s, message)."""
    n, m, p = problem.n_leads, problem.n_partners, problem.n_pairs
    cols = np.arange(p)
    ones = np.ones(p)
    lead = sp.csr_matrix((ones, (problem.pair_lead, cols)), shape=(n, p))
    part = sp.csr_matrix((ones, (problem.pair_partner, cols)), shape=(m, p))
    cap = np.minimum(np.floor(problem.capacity_units), problem.max_per_partner or np.inf)
    tier_names = np.asarray(problem.partner_tier).astype(str)
    rows, b = [lead, part], [np.ones(n), cap]
    has_floor = problem.floor > 0
    rows.append(-part[has_floor])
    b.append(-problem.floor[has_floor].astype(float))
    for rule in problem.tiers:
        member = (tier_names[problem.pair_partner] == rule.name).astype(float)[None, :]
        if rule.max_share is not None:
            rows.append(sp.csr_matrix(member))
            b.append(np.array([max_count(rule.max_share, problem.round_size)], dtype=float))
        if rule.min_share is not None:
            rows.append(sp.csr_matrix(-member))
            b.append(np.array([-min_count(rule.min_share, problem.round_size)], dtype=float))
    a_ub = sp.vstack(rows).tocsr()
    started, cpu = time.perf_counter(), time.process_time()
    res = linprog(-problem.pair_score, A_ub=a_ub, b_ub=np.concatenate(b), bounds=(0, 1),
                  method="highs")
    return (-float(res.fun) if res.status == 0 else float("nan"),
            time.perf_counter() - started, time.process_time() - cpu, res.message)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--leads", type=int, default=100_000)
    ap.add_argument("--partners", type=int, default=2_000)
    ap.add_argument("--eligible", type=int, default=30, help="eligible partners per lead")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--big", action="store_true", help="1M leads x 5k partners x 30 (no LP)")
    ap.add_argument("--no-lp", action="store_true", help="skip the HiGHS LP")
    ap.add_argument("--lp", action="store_true", help="run the LP even with --big")
    args = ap.parse_args(argv)
    if args.big:
        args.leads, args.partners = 1_000_000, 5_000
    run_lp = not args.no_lp and (not args.big or args.lp)

    t0 = time.perf_counter()
    problem = make_round(args.leads, args.partners, args.eligible, args.seed)
    make_s = time.perf_counter() - t0
    print(f"round: {problem.n_leads:,} leads x {problem.n_partners:,} partners, "
          f"{problem.n_pairs:,} eligible pairs (generated in {make_s:.1f} s); round size "
          f"{problem.round_size:,}, total capacity {int(problem.capacity_units.sum()):,}")
    t0, cpu0 = time.perf_counter(), time.process_time()
    alloc = solve(problem)
    flow_s, flow_cpu = time.perf_counter() - t0, time.process_time() - cpu0
    rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    t = alloc.timings_s
    print(f"min-cost flow: status {alloc.status}, verified {alloc.verification.ok}, "
          f"{int((alloc.lead_partner >= 0).sum()):,} leads placed, "
          f"{sum(r.binding for r in alloc.rules):,} binding rules")
    print(f"  wall: solve {t['solve']:.2f} s (checks + flow), prices {t['prices']:.2f} s, "
          f"verify {t['verify']:.2f} s, total {flow_s:.2f} s (CPU {flow_cpu:.2f} s); "
          f"peak memory {rss_gb:.2f} GB")
    with open("/proc/loadavg") as fh:
        print(f"  load average: {fh.read().split()[0]} (wall times stretch on a shared machine; "
              "CPU times do not)")

    rows = [("min-cost flow (OR-Tools)", t["solve"], flow_cpu, alloc.objective)]
    if run_lp:
        lp_obj, lp_s, lp_cpu, msg = highs_lp(problem)
        print(f"HiGHS LP: {msg}")
        rows.append(("HiGHS LP (scipy linprog)", lp_s, lp_cpu, lp_obj))
    rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print()
    print(f"{'method':<28}{'wall s':>10}{'CPU s':>10}{'objective':>22}")
    for name, secs, cpu, obj in rows:
        print(f"{name:<28}{secs:>10.2f}{cpu:>10.2f}{obj:>22.9f}")
    print("(flow CPU covers the whole solve(): checks, flow, prices and verification)")
    if run_lp:
        flow_obj, lp_obj = rows[0][3], rows[1][3]
        rel = abs(flow_obj - lp_obj) / max(abs(lp_obj), 1e-9)
        print(f"\nspeed-up: {rows[1][1] / rows[0][1]:.1f}x wall, {rows[1][2] / rows[0][2]:.1f}x "
              f"CPU (target >= 20x); objective relative difference {rel:.2e} "
              "(target: identical, <= 1e-6)")
    print(f"peak memory (ru_maxrss): {rss_gb:.2f} GB (target < 8 GB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
