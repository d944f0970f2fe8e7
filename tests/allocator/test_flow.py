"""Hand-checkable rounds (2–4 leads) for the network core and its prices."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy.optimize import linprog

from allocator.flow import network_spec, solve_network
from allocator.policy import Quota, TierRule
from allocator.prices import FLOW_SOURCE, bellman_ford
from allocator.solve import solve
from tests.allocator.core_instances import random_problem, tiny


def _rule(alloc, name, kind=None):
    found = [r for r in alloc.rules if r.rule == name and (kind is None or r.kind == kind)]
    assert len(found) == 1, [r.rule for r in alloc.rules]
    return found[0]


def test_a_full_cap_stops_the_better_partner_and_has_a_price() -> None:
    # L0 prefers P0 (0.9 vs 0.5) but P0 takes one lead, and L1 loses more without it.
    problem = tiny({(0, 0): 0.9, (0, 1): 0.5, (1, 0): 0.8, (1, 1): 0.1}, [1, 5])
    alloc = solve(problem)
    assert alloc.status == "optimal" and alloc.method == "min_cost_flow"
    assert alloc.lead_partner.tolist() == [1, 0]
    assert alloc.objective == pytest.approx(1.3)
    cap = _rule(alloc, "cap[partner=P0]")
    assert cap.binding and cap.used == 1 and cap.limit == 1
    # One more slot: L0 back to P0 (0.9 - 0.5): 0.4 expected conversions.
    assert cap.price == pytest.approx(0.4)
    assert cap.price_source == FLOW_SOURCE
    assert "capacity of 1 leads was full" in cap.description and "0.4" in cap.description
    assert not _rule(alloc, "cap[partner=P1]").binding
    assert alloc.partner_price.tolist() == pytest.approx([0.4, 0.0])
    assert alloc.verification.ok
    assert set(alloc.timings_s) == {"build", "solve", "prices", "verify"}


def test_a_floor_pulls_a_lead_down_and_prices_the_loss() -> None:
    # P1's floor of 1 takes L1 from P0 (0.6) to P1 (0.5): the floor costs 0.1.
    problem = tiny({(0, 0): 0.9, (0, 1): 0.2, (1, 0): 0.6, (1, 1): 0.5}, [5, 1], floor=[0, 1])
    alloc = solve(problem)
    assert alloc.lead_partner.tolist() == [0, 1]
    assert alloc.objective == pytest.approx(1.4)
    floor = _rule(alloc, "floor[partner=P1]")
    assert floor.binding and floor.price == pytest.approx(0.1)
    assert "floor of 1 bound" in floor.description
    assert alloc.partner_price[1] == pytest.approx(-0.1)


def test_soft_floor_reports_the_shortfall_and_its_price() -> None:
    # P1's floor asks for 2 leads, but only L0 is eligible for it: short by one.
    problem = tiny({(0, 0): 0.9, (0, 1): 0.2, (1, 0): 0.6}, [5, 2], floor=[0, 2],
                   floor_mode="soft", floor_penalty=1.5)
    alloc = solve(problem)
    assert alloc.status == "optimal"
    assert alloc.floor_shortfall is not None and alloc.floor_shortfall.tolist() == [0, 1]
    assert alloc.lead_partner.tolist() == [1, 0]  # the floor lead is met at a cost of 0.7
    floor = _rule(alloc, "floor[partner=P1]")
    assert floor.price == pytest.approx(1.5) and "missed by 1" in floor.description
    assert alloc.verification.ok


def test_soft_floor_is_missed_when_meeting_it_costs_more_than_its_penalty() -> None:
    problem = tiny({(0, 0): 0.9, (0, 1): 0.2}, [5, 1], floor=[0, 1], floor_mode="soft",
                   floor_penalty=0.5)
    alloc = solve(problem)
    assert alloc.lead_partner.tolist() == [0]
    assert alloc.floor_shortfall.tolist() == [0, 1]


def test_assign_all_places_leads_with_negative_scores() -> None:
    scores = {(0, 0): -0.2, (1, 0): 0.5, (1, 1): -0.1}
    free = solve(tiny(scores, [1, 1]))
    assert free.lead_partner.tolist() == [-1, 0] and free.objective == pytest.approx(0.5)
    forced = solve(tiny(scores, [1, 1], assign_all=True))
    assert forced.lead_partner.tolist() == [0, 1]
    assert forced.objective == pytest.approx(-0.3)
    rule = _rule(forced, "assign_all")
    # Letting L0 go frees P0 for L1: -0.3 -> 0.5.
    assert rule.binding and rule.price == pytest.approx(0.8)


def test_tier_max_share_binds_with_its_price() -> None:
    # Two gold partners would take both leads; gold may take floor(0.5 × 2) = 1.
    base = tiny({(0, 0): 0.9, (0, 2): 0.3, (1, 1): 0.8, (1, 2): 0.6}, [1, 1, 2],
                tiers=["gold", "gold", "silver"])
    problem = replace(base, tiers=(TierRule("gold", max_share=0.5),))
    alloc = solve(problem)
    assert alloc.lead_partner.tolist() == [0, 2]
    rule = _rule(alloc, "tier_share[tier=gold]", "tier_max_share")
    # One more gold lead: L1 back to P1 (0.8 instead of 0.6).
    assert rule.binding and rule.limit == 1 and rule.price == pytest.approx(0.2)


def test_a_quota_caps_high_intent_leads_for_a_tier() -> None:
    # Three high-intent leads; gold may take floor(0.34 × 3) = 1 of them.
    base = tiny({(0, 0): 0.9, (0, 1): 0.5, (1, 0): 0.8, (1, 1): 0.6, (2, 0): 0.7, (2, 1): 0.1},
                [3, 3], tiers=["gold", "silver"])
    problem = replace(base, quotas=(Quota("gold", "high", max_share=0.34),))
    alloc = solve(problem)
    # Giving gold the lead that gains most over silver: L2 (+0.6).
    assert alloc.lead_partner.tolist() == [1, 1, 0]
    assert alloc.objective == pytest.approx(1.8) and alloc.status == "optimal"
    rule = _rule(alloc, "quota[tier=gold,intent=high]")
    assert rule.binding and rule.used == 1
    # A multiplier between the last gain taken (0.6) and the next one (0.4).
    assert 0.4 - 1e-9 <= rule.price <= 0.6 + 1e-9
    assert rule.price_source == "Lagrange multiplier"


def test_network_optimum_equals_the_lp_on_a_mid_size_round() -> None:
    base = random_problem(11, 80, 8, density=0.4)
    problem = replace(base, floor=np.zeros(8, dtype=np.int64), tiers=(), assign_all=False,
                      max_per_partner=None)
    sol = solve_network(problem)
    assert sol.status == "optimal"
    m = problem.n_partners
    a = np.zeros((problem.n_leads + m, problem.n_pairs))
    a[problem.pair_lead, np.arange(problem.n_pairs)] = 1
    a[problem.n_leads + problem.pair_partner, np.arange(problem.n_pairs)] = 1
    res = linprog(-problem.pair_score, A_ub=a,
                  b_ub=np.r_[np.ones(problem.n_leads), np.floor(problem.capacity_units)],
                  bounds=(0, 1), method="highs")
    assert sol.value == pytest.approx(-res.fun, rel=1e-9)
    assert np.all(sol.partner_count <= network_spec(problem).cap)


def test_bellman_ford_finds_shortest_paths_with_negative_edges() -> None:
    tail = np.array([0, 0, 1, 2, 3])
    head = np.array([1, 2, 3, 3, 1])
    cost = np.array([4, 1, -2, 5, 3], dtype=np.int64)
    dist = bellman_ford(4, tail, head, cost, np.array([0]))
    assert dist[:, 0].tolist() == [0, 4, 1, 2]
    with pytest.raises(RuntimeError, match="Negative cycle"):
        bellman_ford(2, np.array([0, 1]), np.array([1, 0]), np.array([-1, -1]), np.array([0]))
