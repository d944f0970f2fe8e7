"""Real-time routing between rounds, replayed on a simulated day.

Yesterday's arrivals are solved offline (the last round) and their capacity
duals become today's starting prices; today's arrivals are then routed one by
one.  Each rule's expected conversions (sum of the true conversion
probabilities of the pairs it chose) is compared with the offline optimum over
the same arrivals in hindsight (OR-Tools ``SimpleMinCostFlow``, integral):

- ``realtime``: primal-dual routing, yesterday's prices, re-priced on today's
  arrivals at geometric checkpoints (``allocator.realtime``);
- ``fixed prices``: the same rule with yesterday's prices never refreshed
  (Devanur & Hayes's learn-then-fix);
- ``greedy``: argmax score among partners with room.

Scenarios vary today's volume against the forecast (yesterday's count), where
fixed prices go wrong and re-pricing earns its keep.  Scores are the true
probabilities, so the comparison measures routing, not the model.

Usage: ``.venv/bin/python bench/bench_realtime.py [--leads 3000] [--partners 60] [--seeds 3]``
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np
from ortools.graph.python import min_cost_flow

from allocator.realtime import RealtimeRouter, dual_prices

COST_SCALE = 1_000_000


@dataclass(frozen=True)
class Day:
    """One day's arrivals as sparse pairs (``pair_lead`` sorted, true probability as score)."""

    n_leads: int
    pair_lead: np.ndarray
    pair_partner: np.ndarray
    pair_score: np.ndarray
    starts: np.ndarray  # pair offsets per lead (n_leads + 1)


@dataclass(frozen=True)
class Channel:
    regions: list[np.ndarray]  # per region: the partners covering it
    region_weight: np.ndarray
    skill: np.ndarray
    specialty: np.ndarray  # partner × vertical, bool
    capacity: np.ndarray


def make_channel(n_partners: int, n_leads: int, rng: np.random.Generator,
                 capacity_share: float = 0.45) -> Channel:
    n_regions, n_verticals = 8, 6
    cover = np.zeros((n_partners, n_regions), dtype=bool)
    for j in range(n_partners):
        cover[j, rng.choice(n_regions, size=rng.integers(1, 4), replace=False)] = True
    for r in range(n_regions):  # every region has at least three partners
        if cover[:, r].sum() < 3:
            cover[rng.choice(n_partners, size=3, replace=False), r] = True
    skill = rng.normal(0.0, 0.6, n_partners)
    specialty = rng.random((n_partners, n_verticals)) < 0.3
    # capacity_share of the day's arrivals in total; the best partners are not the biggest
    weight = rng.gamma(2.0, 1.0, n_partners) * np.exp(-0.4 * skill)
    capacity = np.maximum(1, np.round(capacity_share * n_leads * weight / weight.sum()))
    region_weight = rng.dirichlet(np.full(n_regions, 3.0))
    return Channel([np.flatnonzero(cover[:, r]) for r in range(n_regions)], region_weight,
                   skill, specialty, capacity.astype(float))


def make_day(ch: Channel, n_leads: int, rng: np.random.Generator) -> Day:
    region = rng.choice(len(ch.regions), size=n_leads, p=ch.region_weight)
    vertical = rng.integers(0, ch.specialty.shape[1], n_leads)
    quality = rng.normal(-1.6, 0.9, n_leads)
    parts = [ch.regions[r] for r in region]
    lens = np.fromiter((len(p) for p in parts), dtype=np.int64, count=n_leads)
    pair_lead = np.repeat(np.arange(n_leads), lens)
    pair_partner = np.concatenate(parts)
    logit = (quality[pair_lead] + ch.skill[pair_partner]
             + 0.8 * ch.specialty[pair_partner, vertical[pair_lead]]
             + rng.normal(0.0, 0.35, pair_lead.shape[0]))
    p = 1.0 / (1.0 + np.exp(-logit))
    starts = np.concatenate([[0], np.cumsum(lens)])
    return Day(n_leads, pair_lead, pair_partner, p, starts)


def offline_optimum(day: Day, capacity: np.ndarray) -> float:
    """Best expected conversions over the whole day in hindsight (integral min-cost flow)."""
    n, m = day.n_leads, capacity.shape[0]
    src, sink = n + m, n + m + 1
    smcf = min_cost_flow.SimpleMinCostFlow()
    tails = np.concatenate([np.full(n, src), day.pair_lead, n + np.arange(m), np.arange(n)])
    heads = np.concatenate([np.arange(n), n + day.pair_partner, np.full(m, sink),
                            np.full(n, sink)])
    caps = np.concatenate([np.ones(n), np.ones(day.pair_lead.shape[0]), capacity,
                           np.ones(n)]).astype(np.int64)
    costs = np.concatenate([np.zeros(n), -np.round(day.pair_score * COST_SCALE),
                            np.zeros(m), np.zeros(n)]).astype(np.int64)
    smcf.add_arcs_with_capacity_and_unit_cost(tails, heads, caps, costs)
    smcf.set_nodes_supplies(np.array([src, sink]), np.array([n, -n]))
    status = smcf.solve()
    if status != smcf.OPTIMAL:
        raise RuntimeError(f"min-cost flow status {status}")
    k = day.pair_lead.shape[0]
    flows = smcf.flows(np.arange(n, n + k))
    return float(day.pair_score[flows > 0].sum())


def yesterday_prices(day: Day, capacity: np.ndarray) -> tuple[np.ndarray, str]:
    """Capacity prices of yesterday's round: ``allocator.solve`` when present, else the LP."""
    try:
        from allocator.solve import solve  # type: ignore[import-not-found,unused-ignore]

        from allocator.problem import AllocationProblem
    except ImportError:
        d = dual_prices(day.pair_lead, day.pair_partner, day.pair_score, capacity)
        return d.price, d.price_source
    m = capacity.shape[0]
    problem = AllocationProblem(
        lead_ids=np.array([f"L{i}" for i in range(day.n_leads)]),
        lead_intent=np.full(day.n_leads, ""), partner_ids=np.array([f"P{j}" for j in range(m)]),
        partner_tier=np.full(m, "gold"), capacity_units=capacity, floor=np.zeros(m, dtype=int),
        pair_lead=day.pair_lead, pair_partner=day.pair_partner, pair_score=day.pair_score,
        round_size=day.n_leads)
    alloc = solve(problem)
    return np.asarray(alloc.partner_price, dtype=float), f"allocator.solve ({alloc.price_source})"


def replay(day: Day, router: RealtimeRouter) -> tuple[float, np.ndarray]:
    """Route the day's leads in arrival order; expected conversions and per-call latency (ns).

    Arrivals are a Poisson process over the day: arrival times are sorted uniforms,
    and the router is told the fraction of the day elapsed at each arrival.
    """
    elapsed = np.sort(np.random.default_rng(day.n_leads).random(day.n_leads))
    total = 0.0
    lat = np.empty(day.n_leads, dtype=np.int64)
    clock = time.perf_counter_ns
    for i in range(day.n_leads):
        a, b = day.starts[i], day.starts[i + 1]
        parts, sc = day.pair_partner[a:b], day.pair_score[a:b]
        t0 = clock()
        d = router.route(parts, sc, elapsed=elapsed[i])
        lat[i] = clock() - t0
        if d.score is not None and d.partner is not None:
            total += d.score
    return total, lat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--leads", type=int, default=3000, help="forecast arrivals per day")
    ap.add_argument("--partners", type=int, default=60)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    scenarios = {"volume as forecast": (1.0, 0.45), "volume +25%": (1.25, 0.45),
                 "volume -25%": (0.75, 0.45), "ample capacity": (1.0, 0.9)}
    rows: list[tuple[str, str, float, float, float]] = []
    lat_rt: list[np.ndarray] = []
    lat_gr: list[np.ndarray] = []
    source = ""
    n_reprices: list[int] = []
    reprice_s: list[float] = []
    for name, (factor, share) in scenarios.items():
        ratios: dict[str, list[float]] = {"realtime": [], "fixed prices": [], "greedy": []}
        for seed in range(args.seeds):
            rng = np.random.default_rng(1000 + seed)
            ch = make_channel(args.partners, args.leads, rng, share)
            yesterday = make_day(ch, args.leads, rng)
            price, source = yesterday_prices(yesterday, ch.capacity)
            today = make_day(ch, round(args.leads * factor), rng)
            best = offline_optimum(today, ch.capacity)
            rt = RealtimeRouter([f"P{j}" for j in range(args.partners)], ch.capacity, price,
                                expected_arrivals=args.leads)
            v, lat = replay(today, rt)
            ratios["realtime"].append(v / best)
            lat_rt.append(lat)
            n_reprices.append(len(rt.reprices))
            reprice_s += [r.solve_s for r in rt.reprices]
            fx = RealtimeRouter(rt.partner_ids, ch.capacity, price)
            ratios["fixed prices"].append(replay(today, fx)[0] / best)
            gr = RealtimeRouter(rt.partner_ids, ch.capacity, rule="greedy")
            v, lat = replay(today, gr)
            ratios["greedy"].append(v / best)
            lat_gr.append(lat)
        for rule, r in ratios.items():
            rows.append((name, rule, float(np.mean(r)), float(np.min(r)), float(np.max(r))))

    print(f"Real-time routing replay: {args.partners} partners, {args.leads} forecast arrivals, "
          f"capacity 45% of forecast arrivals (ample: 90%), {args.seeds} seeds per scenario")
    print(f"yesterday's prices from: {source}; re-solves per day: "
          f"{min(n_reprices)}-{max(n_reprices)}, {np.mean(reprice_s) * 1e3:.1f} ms each (mean)")
    print()
    print(f"{'scenario':<20} {'rule':<14} {'% of offline':>13} {'min':>7} {'max':>7}")
    for name, rule, mean, lo, hi in rows:
        print(f"{name:<20} {rule:<14} {100 * mean:>12.1f}% {100 * lo:>6.1f}% {100 * hi:>6.1f}%")
    print()
    print(f"{'per-decision latency (in process)':<36} {'p50':>9} {'p99':>9} {'max':>9}")
    for label, lats in (("realtime (incl. re-solves)", lat_rt), ("greedy", lat_gr)):
        a = np.concatenate(lats) / 1e3
        print(f"{label:<36} {np.percentile(a, 50):>7.1f}us {np.percentile(a, 99):>7.1f}us "
              f"{a.max():>7.0f}us")
    overall = np.mean([r[2] for r in rows if r[1] == "realtime"])
    greedy = np.mean([r[2] for r in rows if r[1] == "greedy"])
    print(f"\nrealtime / offline = {100 * overall:.1f}% (target >= 95%), "
          f"greedy / offline = {100 * greedy:.1f}%, realtime / greedy = {overall / greedy:.3f}")


if __name__ == "__main__":
    main()
