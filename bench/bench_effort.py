"""Benchmark: effort-weighted rounds, LP relaxation + rounding against CP-SAT alone.

Simulates the synthetic channel (``models.simulate.simulate_channel``, 15% of
leads cost 2, 3 or 5 effort units), scores it with the pipeline's heuristic and
builds the round under the default policy (floors 2, tier minimum shares, the
gold/high-intent quota), then solves it twice with the same time limit:

* **ours**: ``allocator.solve.solve`` (LP relaxation: one transportation flow
  here, the leads' own efforts, or HiGHS by column generation; rounding with
  CP-SAT on the residual; effort-class flows; prices from the same relaxation;
  independent verification);
* **baseline**: CP-SAT alone on the whole 0–1 model (the previous method's
  core: ``allocator.linear.solve_mip``, 2 workers, hinted with nothing).

It prints wall and CPU seconds, objective, proven bound and gap of each, and the
ratios (the machine is shared: compare ratios, not absolute times).

    .venv/bin/python bench/bench_effort.py                  # 20k and 100k leads
    .venv/bin/python bench/bench_effort.py --sizes 20000    # one size
    .venv/bin/python bench/bench_effort.py --no-baseline    # ours only

Targets: the 20k round (300 partners) under 5 s wall with a gap under 0.1%;
the 100k round (2000 partners) under 30 s.
"""

from __future__ import annotations

import argparse
import sys
import time
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from allocator.build import build_problem
from allocator.flow import network_spec
from allocator.linear import linear_model, solve_mip
from allocator.policy import DEFAULT_POLICY_TOML, policy_from_dict
from allocator.problem import AllocationProblem
from allocator.solve import solve
from models.simulate import simulate_channel
from service.pipeline import score_round

SIZES = {20000: (300, 7), 100000: (2000, 1)}


def make_round(n_leads: int) -> AllocationProblem:
    """The simulated round of ``n_leads`` leads under the default policy."""
    n_partners, seed = SIZES.get(n_leads, (max(n_leads // 60, 10), 1))
    policy = policy_from_dict(tomllib.loads(DEFAULT_POLICY_TOML))
    channel = simulate_channel(n_partners, n_leads, 0, seed=seed)
    scored = score_round(channel.partners, channel.leads, policy)
    return build_problem(scored.pairs, scored.values, scored.leads, channel.partners, policy,
                         effort=scored.effort)


def run_ours(problem: AllocationProblem, limit: float) -> dict[str, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    alloc = solve(problem, time_limit_s=limit)
    return {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu,
            "status": alloc.status, "objective": alloc.objective, "bound": alloc.bound,
            "gap": alloc.gap, "assigned": int((alloc.lead_partner >= 0).sum()),
            "ok": alloc.verification.ok, "method": alloc.method}


def run_baseline(problem: AllocationProblem, limit: float) -> dict[str, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    model = linear_model(problem, network_spec(problem), integral=True)
    mip = solve_mip(model, problem.n_leads, limit)
    found = mip.status in ("optimal", "feasible")
    objective = float(problem.pair_score[mip.values[:problem.n_pairs] > 0.5].sum()) if found \
        else 0.0
    bound = float(mip.bound)
    gap = (bound - objective) / abs(bound) if found and bound != float("inf") else float("inf")
    return {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu,
            "status": mip.status, "objective": objective, "bound": bound, "gap": gap,
            "assigned": int((mip.values[:problem.n_pairs] > 0.5).sum()) if found else 0,
            "ok": found, "method": "cp_sat"}


def show(name: str, r: dict[str, object]) -> None:
    print(f"  {name:<9} wall {r['wall']:7.2f} s  cpu {r['cpu']:7.2f} s  {r['status']:<10} "
          f"objective {r['objective']:12.4f}  bound {r['bound']:12.4f}  gap {r['gap']:.2e}  "
          f"assigned {r['assigned']}  verified {r['ok']}  ({r['method']})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=sorted(SIZES))
    parser.add_argument("--time-limit", type=float, default=30.0)
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args()
    for n_leads in args.sizes:
        started = time.perf_counter()
        problem = make_round(n_leads)
        print(f"{n_leads} simulated leads -> {problem.n_leads} in the round, "
              f"{problem.n_partners} partners, {problem.n_pairs} pairs "
              f"(built in {time.perf_counter() - started:.1f} s), time limit {args.time_limit} s")
        ours = run_ours(problem, args.time_limit)
        show("ours", ours)
        if args.no_baseline:
            continue
        base = run_baseline(problem, args.time_limit)
        show("baseline", base)
        ratio = float(base["wall"]) / max(float(ours["wall"]), 1e-9)  # type: ignore[arg-type]
        better = float(ours["objective"]) - float(base["objective"])  # type: ignore[arg-type]
        print(f"  ratio    baseline/ours wall {ratio:.1f}x; objective ours - baseline "
              f"{better:+.4f}; bound ours {ours['bound']:.4f} vs baseline {base['bound']:.4f}")


if __name__ == "__main__":
    main()
