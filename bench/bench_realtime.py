"""Real-time routing between rounds, replayed on a simulated day.

Yesterday's arrivals are solved offline (the last round) and their capacity
duals become today's starting prices; today's arrivals are then routed one by
one.  Each rule's expected conversions (sum of the true conversion
probabilities of the pairs it chose) is compared with the offline optimum over
the same arrivals in hindsight (OR-Tools ``SimpleMinCostFlow``, integral):

- ``realtime``: primal-dual routing, yesterday's prices, re-priced at geometric
  checkpoints on today's arrivals pooled with yesterday's (``allocator.realtime``);
- ``today only``: the same, re-solving on today's arrivals alone (Li & Ye as
  published);
- ``fixed prices``: yesterday's prices never refreshed (Devanur & Hayes's
  learn-then-fix);
- ``greedy``: argmax score among partners with room.

Two worlds:

- ``simulator``: ``models.simulate.simulate_channel`` (partners, territories,
  certifications, owners, true probabilities) with the default policy's
  eligibility; today = the round's eligible leads in ``created_at`` order,
  yesterday = as many of the most recent history leads;
- ``numpy``: a lighter generator in this file (regions, partner skill, vertical
  specialties), where today's volume can also differ from the forecast
  (yesterday's count) — where fixed prices go wrong and re-pricing earns its keep.

Capacity is scaled to a share of the forecast arrivals (scarce: 45%).  Scores
are the true probabilities, so the comparison measures routing, not the model.

Usage: ``.venv/bin/python bench/bench_realtime.py [--leads 3000] [--partners 60] [--seeds 3]``
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass

import numpy as np
from ortools.graph.python import min_cost_flow

from allocator.realtime import PriorSample, RealtimeRouter, dual_prices

COST_SCALE = 1_000_000


@dataclass(frozen=True)
class Day:
    """One day's arrivals as sparse pairs (``pair_lead`` sorted, true probability as score)."""

    n_leads: int
    pair_lead: np.ndarray
    pair_partner: np.ndarray
    pair_score: np.ndarray
    starts: np.ndarray  # pair offsets per lead (n_leads + 1)
    elapsed: np.ndarray | None = None  # fraction of the day gone at each arrival


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


def _day_from_pairs(pair_lead: np.ndarray, pair_partner: np.ndarray, score: np.ndarray,
                    n_leads: int, elapsed: np.ndarray | None) -> Day:
    order = np.argsort(pair_lead, kind="stable")
    pl, pp, ps = pair_lead[order], pair_partner[order], score[order]
    starts = np.searchsorted(pl, np.arange(n_leads + 1))
    return Day(n_leads, pl, pp, ps, starts, elapsed)


def simulator_days(n_partners: int, n_leads: int, seed: int,
                   capacity_share: float) -> tuple[np.ndarray, Day, Day]:
    """Capacity, yesterday and today from ``models.simulate`` under the default policy."""
    import tomllib

    import pandas as pd

    from allocator.eligibility import find_eligible_pairs
    from allocator.policy import DEFAULT_POLICY_TOML, policy_from_dict
    from models.simulate import simulate_channel

    policy = policy_from_dict(tomllib.loads(DEFAULT_POLICY_TOML))
    ch = simulate_channel(n_partners, n_leads, 2 * n_leads, seed)
    pid = pd.Index(ch.partners["partner_id"])

    def day(leads: pd.DataFrame) -> Day:
        pairs = find_eligible_pairs(ch.partners, leads, policy).pairs
        arrival = leads.set_index("lead_id")["created_at"]
        t = arrival.loc[pd.Index(pairs["lead_id"].unique())].sort_values()
        rank = pd.Series(np.arange(len(t)), index=t.index)
        span = (t.iloc[-1] - t.iloc[0]) / pd.Timedelta(seconds=1) or 1.0
        elapsed = ((t - t.iloc[0]) / pd.Timedelta(seconds=1)).to_numpy() / span
        return _day_from_pairs(rank.loc[pairs["lead_id"]].to_numpy(),
                               pid.get_indexer(pairs["partner_id"]),
                               ch.true_p(pairs["lead_id"], pairs["partner_id"]), len(t), elapsed)

    today = day(ch.leads)
    history = ch.history.drop(columns=["partner_id", "assigned_at", "converted"])
    recent = history.sort_values("created_at").tail(today.n_leads)
    yesterday = day(recent)
    raw = ch.partners["capacity"].to_numpy(dtype=float)
    raw = np.where(ch.partners["active"].to_numpy(dtype=bool), raw, 0.0)
    capacity = np.maximum(1.0, np.round(capacity_share * today.n_leads * raw / raw.sum()))
    return capacity, yesterday, today


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
        from allocator.problem import AllocationProblem
        from allocator.solve import solve  # type: ignore[import-not-found,unused-ignore]
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


def replay(day: Day, router: RealtimeRouter) -> tuple[float, np.ndarray, np.ndarray]:
    """Route the day's leads in arrival order.

    Returns expected conversions, per-call latency (ns), and which calls ran a re-solve.

    Arrivals are a Poisson process over the day: arrival times are sorted uniforms,
    and the router is told the fraction of the day elapsed at each arrival.
    """
    elapsed = (day.elapsed if day.elapsed is not None
               else np.sort(np.random.default_rng(day.n_leads).random(day.n_leads)))
    total = 0.0
    lat = np.empty(day.n_leads, dtype=np.int64)
    resolved = np.zeros(day.n_leads, dtype=bool)
    clock = time.perf_counter_ns
    for i in range(day.n_leads):
        a, b = day.starts[i], day.starts[i + 1]
        parts, sc = day.pair_partner[a:b], day.pair_score[a:b]
        before = len(router.reprices)
        t0 = clock()
        d = router.route(parts, sc, elapsed=elapsed[i])
        lat[i] = clock() - t0
        resolved[i] = len(router.reprices) > before
        if d.score is not None and d.partner is not None:
            total += d.score
    return total, lat, resolved


RULES = ("realtime", "today only", "fixed prices", "greedy")


def run_scenario(capacity: np.ndarray, yesterday: Day, today: Day,
                 stats: dict[str, list]) -> dict[str, float]:
    """Ratios to the hindsight optimum of each rule on one day."""
    m = capacity.shape[0]
    price, source = yesterday_prices(yesterday, capacity)
    stats["source"] = [source]
    best = offline_optimum(today, capacity)
    ids = [f"P{j}" for j in range(m)]
    prior = PriorSample(yesterday.pair_lead, yesterday.pair_partner, yesterday.pair_score)
    rt = RealtimeRouter(ids, capacity, price, expected_arrivals=yesterday.n_leads, prior=prior)
    v, lat, resolved = replay(today, rt)
    stats["lat"].append(lat)
    stats["resolved"].append(resolved)
    stats["n_reprices"].append(len(rt.reprices))
    stats["reprice_s"] += [r.solve_s for r in rt.reprices]
    out = {"realtime": v / best}
    alone = RealtimeRouter(ids, capacity, price, expected_arrivals=yesterday.n_leads)
    out["today only"] = replay(today, alone)[0] / best
    out["fixed prices"] = replay(today, RealtimeRouter(ids, capacity, price))[0] / best
    v, lat, _ = replay(today, RealtimeRouter(ids, capacity, rule="greedy"))
    stats["lat_gr"].append(lat)
    out["greedy"] = v / best
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--leads", type=int, default=3000, help="forecast arrivals per day")
    ap.add_argument("--partners", type=int, default=60)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    scenarios = [("simulator", "as forecast", 1.0, 0.45), ("simulator", "ample capacity", 1.0, 0.9),
                 ("numpy", "as forecast", 1.0, 0.45), ("numpy", "volume +25%", 1.25, 0.45),
                 ("numpy", "volume -25%", 0.75, 0.45), ("numpy", "ample capacity", 1.0, 0.9)]
    stats: dict[str, list] = {"lat": [], "resolved": [], "lat_gr": [], "n_reprices": [],
                              "reprice_s": [], "source": []}
    rows: list[tuple[str, str, str, list[float]]] = []
    sizes: dict[str, list[int]] = {"simulator": [], "numpy": []}
    for world, name, factor, share in scenarios:
        ratios: dict[str, list[float]] = {rule: [] for rule in RULES}
        for seed in range(args.seeds):
            if world == "simulator":
                capacity, yesterday, today = simulator_days(args.partners, args.leads, seed, share)
            else:
                rng = np.random.default_rng(1000 + seed)
                ch = make_channel(args.partners, args.leads, rng, share)
                yesterday = make_day(ch, args.leads, rng)
                today = make_day(ch, round(args.leads * factor), rng)
                capacity = ch.capacity
            sizes[world].append(today.n_leads)
            for rule, ratio in run_scenario(capacity, yesterday, today, stats).items():
                ratios[rule].append(ratio)
        rows += [(world, name, rule, r) for rule, r in ratios.items()]

    print(f"Real-time routing replay: {args.partners} partners, {args.seeds} seeds per scenario; "
          f"today's routable leads: simulator {min(sizes['simulator'])}-"
          f"{max(sizes['simulator'])}, numpy {min(sizes['numpy'])}-{max(sizes['numpy'])}")
    print(f"capacity = 45% of forecast arrivals (ample: 90%); yesterday's prices from "
          f"{stats['source'][0]}; re-solves per day {min(stats['n_reprices'])}-"
          f"{max(stats['n_reprices'])}, {np.mean(stats['reprice_s']) * 1e3:.0f} ms each (mean), "
          f"{np.max(stats['reprice_s']) * 1e3:.0f} ms (max)")
    print()
    print(f"{'world':<10} {'scenario':<16} {'rule':<14} {'% of offline':>13} {'min':>7} {'max':>7}")
    for world, name, rule, vals in rows:
        print(f"{world:<10} {name:<16} {rule:<14} {100 * np.mean(vals):>12.1f}% "
              f"{100 * np.min(vals):>6.1f}% {100 * np.max(vals):>6.1f}%")
    print()
    print(f"{'per-decision latency (in process)':<40} {'p50':>9} {'p99':>9} {'max':>9}")
    lat, resolved = np.concatenate(stats["lat"]) / 1e3, np.concatenate(stats["resolved"])
    for label, a in (("realtime, decision only", lat[~resolved]),
                     ("realtime, incl. inline re-solves", lat),
                     ("greedy", np.concatenate(stats["lat_gr"]) / 1e3)):
        print(f"{label:<40} {np.percentile(a, 50):>7.1f}us {np.percentile(a, 99):>7.1f}us "
              f"{a.max():>7.0f}us")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"({100 * resolved.mean():.2f}% of realtime decisions ran a re-solve inline; "
          f"load average {load} on {os.cpu_count()} cores: tails include preemption)")
    overall = float(np.mean([np.mean(r) for _, _, rule, r in rows if rule == "realtime"]))
    greedy = float(np.mean([np.mean(r) for _, _, rule, r in rows if rule == "greedy"]))
    print(f"\nrealtime / offline = {100 * overall:.1f}% (target >= 95%), "
          f"greedy / offline = {100 * greedy:.1f}%, realtime / greedy = {overall / greedy:.3f}")


if __name__ == "__main__":
    main()
