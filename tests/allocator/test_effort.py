"""Effort-weighted capacity: brute force on small rounds; bound, gap and fallbacks on larger."""

from __future__ import annotations

import itertools
import time
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocator.build import max_count, min_count
from allocator.colgen import BoundEvaluator, solve_relaxation
from allocator.effort import round_relaxation, solve_effort
from allocator.effort_moves import (
    effort_classes,
    improve_by_classes,
    penalized_value,
    reoptimize_class,
    repair_allocation,
)
from allocator.errors import InfeasiblePolicyError
from allocator.flow import network_spec
from allocator.linear import as_integral, fix_columns, linear_model, solve_mip
from allocator.policy import Quota, TierRule
from allocator.problem import AllocationProblem
from allocator.solve import solve
from allocator.transport import _longest_paths, lead_effort, transport_relaxation, violated_rows
from allocator.verify import verify
from tests.allocator.core_instances import random_problem, tiny


def brute_force(problem: AllocationProblem) -> float | None:
    """Best objective over every assignment the checker accepts (None: none is valid)."""
    value = {(int(i), int(j)): s for i, j, s in
             zip(problem.pair_lead, problem.pair_partner, problem.pair_score, strict=True)}
    options = [[-1, *sorted(problem.pair_partner[problem.pair_lead == i].tolist())]
               for i in range(problem.n_leads)]
    best = None
    for combo in itertools.product(*options):
        if verify(problem, np.array(combo)).ok:
            total = sum(value[(i, j)] for i, j in enumerate(combo) if j >= 0)
            best = total if best is None else max(best, total)
    return best


def channel_round(seed: int, n_leads: int, n_partners: int, *, density: float = 0.12,
                  floor: int = 2, soft: bool = False) -> AllocationProblem:
    """A round shaped like the synthetic channel: 15% of leads cost 2, 3 or 5 effort units,
    scores are a lead factor times a match bonus, floors, tier minimums and a quota."""
    rng = np.random.default_rng(seed)
    mask = rng.random((n_leads, n_partners)) < density
    mask[np.arange(n_leads), rng.integers(0, n_partners, n_leads)] = True
    pl, pp = np.nonzero(mask)
    base = rng.uniform(0.05, 0.3, n_leads)
    score = np.round(base[pl] * rng.choice([1.0, 1.2, 1.3, 1.56], pl.size), 6)
    lead_effort = rng.choice([1.0, 2.0, 3.0, 5.0], n_leads, p=[0.85, 0.09, 0.045, 0.015])
    capacity = np.maximum(2.0, np.round(rng.lognormal(2.5, 0.9, n_partners)))
    capacity *= 0.8 * n_leads / capacity.sum()
    capacity = np.maximum(np.round(capacity), 2.0)
    # Largest partner first to the tier with the least capacity: about a quarter each.
    names = ["platinum", "gold", "silver", "bronze"]
    tiers = np.empty(n_partners, dtype=object)
    held = np.zeros(4)
    for j in np.argsort(-capacity, kind="stable"):
        k = int(np.argmin(held))
        tiers[j], held[k] = names[k], held[k] + capacity[j]
    intent = rng.choice(["high", "medium", "low", ""], n_leads).astype(object)
    n = n_leads
    mpp = max_count(0.1, n)
    elig = np.bincount(pp, minlength=n_partners)
    floors = np.minimum(np.minimum(floor, elig), np.floor(capacity / 5.0)).astype(np.int64)
    return AllocationProblem(
        lead_ids=np.array([f"L{i}" for i in range(n_leads)], dtype=object), lead_intent=intent,
        partner_ids=np.array([f"P{j}" for j in range(n_partners)], dtype=object),
        partner_tier=tiers, capacity_units=capacity, floor=floors,
        pair_lead=pl.astype(np.int64), pair_partner=pp.astype(np.int64), pair_score=score,
        pair_effort=lead_effort[pl], round_size=n, max_per_partner=mpp,
        tiers=(TierRule("gold", min_share=0.15, max_share=0.6), TierRule("bronze", min_share=0.1)),
        quotas=(Quota(tier="gold", intent="high", max_share=0.6),),
        floor_mode="soft" if soft else "hard")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 6), m=st.integers(1, 3),
       quotas=st.booleans(), per_lead=st.booleans())
def test_small_effort_rounds_match_brute_force(seed: int, n: int, m: int, quotas: bool,
                                               per_lead: bool) -> None:
    problem = random_problem(seed, n, m, effort=True, quotas=quotas)
    if per_lead:  # the leads' own efforts: the transportation-flow relaxation applies
        own = np.random.default_rng(seed).choice([0.5, 1.0, 1.5, 2.0], n)
        problem = replace(problem, pair_effort=own[problem.pair_lead])
    expected = brute_force(problem)
    if expected is None:
        with pytest.raises(InfeasiblePolicyError):
            solve(problem, time_limit_s=10)
        return
    alloc = solve(problem, time_limit_s=10)
    assert alloc.verification.ok, alloc.verification.violations
    assert alloc.status == "optimal"
    assert alloc.objective == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert alloc.bound >= alloc.objective - 1e-9


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 6), m=st.integers(1, 3),
       soft=st.booleans(), scale=st.floats(0.0, 3.0))
def test_dual_bound_holds_for_any_duals(seed: int, n: int, m: int, soft: bool,
                                         scale: float) -> None:
    # Weak duality: D(y) bounds the best allocation whatever the duals, even random ones.
    problem = random_problem(seed, n, m, effort=True, soft=soft)
    model = linear_model(problem, network_spec(problem))
    ev = BoundEvaluator(model, problem.pair_lead, problem.n_leads)
    duals = np.random.default_rng(seed).normal(0.0, scale, model.A.shape[0])
    best = brute_force(problem) if not soft else None
    if best is not None:
        assert ev(duals).bound >= best - 1e-9
    relax = solve_relaxation(problem, model, time.perf_counter() + 10)
    if relax.status == "optimal":
        assert relax.bound == pytest.approx(relax.objective, rel=1e-7, abs=1e-9)
        if best is not None:
            assert relax.bound >= best - 1e-9


def test_knapsack_by_hand() -> None:
    # P0 holds 3 effort units: L0 (2 units, 0.9) or L1 + L2 (1 unit each, 0.5 + 0.5).
    base = tiny({(0, 0): 0.9, (1, 0): 0.5, (2, 0): 0.5}, [3.0])
    problem = replace(base, pair_effort=np.array([2.0, 1.0, 1.0]))
    alloc = solve(problem)
    assert alloc.lead_partner.tolist() == [0, 0, -1] or alloc.lead_partner.tolist() == [0, -1, 0]
    assert alloc.objective == pytest.approx(1.4) and alloc.status == "optimal"
    cap = next(r for r in alloc.rules if r.rule == "cap[partner=P0]")
    assert cap.binding and cap.used == 3.0 and "effort units" in cap.description
    # The LP puts half of L1 or L2 in; the last unit of capacity is worth 0.9/2 or 0.5.
    assert cap.price_source.startswith("LP relaxation dual")
    assert cap.price == pytest.approx(0.45) or cap.price == pytest.approx(0.5)
    # Four units: everything fits, the LP is integral and proves it.
    roomy = solve(replace(problem, capacity_units=np.array([4.0])))
    assert roomy.objective == pytest.approx(1.9) and roomy.status == "optimal"
    assert roomy.gap == 0.0


def test_channel_round_is_near_optimal_and_never_empty() -> None:
    problem = channel_round(3, 2000, 60)
    started = time.perf_counter()
    alloc = solve(problem, time_limit_s=20)
    assert time.perf_counter() - started < 15
    assert alloc.verification.ok, alloc.verification.violations
    assert alloc.status in ("optimal", "feasible")
    assert (alloc.lead_partner >= 0).sum() > 0.5 * problem.n_leads
    assert alloc.objective <= alloc.bound + 1e-9
    assert alloc.gap < 5e-3
    assert alloc.price_source.startswith("LP relaxation dual")
    assert alloc.method in ("lp_rounding", "cp_sat")


def test_soft_channel_round_reports_penalized_bound() -> None:
    problem = replace(channel_round(8, 600, 30, floor=3, soft=True),
                      floor=np.full(30, 3, dtype=np.int64))
    alloc = solve(problem, time_limit_s=20)
    assert alloc.verification.ok
    assert alloc.floor_shortfall is not None
    assert alloc.objective <= alloc.bound + 1e-9 and alloc.gap < 5e-3


def test_column_generation_matches_the_full_lp(monkeypatch: pytest.MonkeyPatch) -> None:
    # The same round with every pair in the first LP and with priced-in columns.
    import allocator.colgen as colgen

    problem = channel_round(5, 1500, 40)
    model = linear_model(problem, network_spec(problem))
    full = solve_relaxation(problem, model, time.perf_counter() + 20)
    monkeypatch.setattr(colgen, "FULL_LP_PAIRS", 0)
    priced = solve_relaxation(problem, model, time.perf_counter() + 20)
    assert full.status == priced.status == "optimal"
    assert priced.columns < problem.n_pairs and priced.rounds >= 1
    assert priced.bound == pytest.approx(full.bound, rel=1e-7)
    assert priced.objective == pytest.approx(full.objective, rel=1e-7)


def test_residual_model_shifts_the_rows_by_fixed_columns() -> None:
    base = tiny({(0, 0): 0.9, (1, 0): 0.5, (2, 0): 0.5}, [3.0])
    problem = replace(base, pair_effort=np.array([2.0, 1.0, 1.0]))
    model = as_integral(linear_model(problem, network_spec(problem)), problem)
    sub, rows, holds = fix_columns(model, np.array([1, 2]), np.array([0]))
    assert holds and sub.n_pairs == 2
    effort_row = int(np.flatnonzero(rows == model.rows["effort"][0])[0])
    assert sub.row_hi[effort_row] == 1.0  # 3 units minus L0's 2
    over = replace(problem, capacity_units=np.array([1.0]))
    model = as_integral(linear_model(over, network_spec(over)), over)
    assert not fix_columns(model, np.zeros(0, dtype=np.int64), np.array([0, 1, 2]))[2]


def test_class_move_is_the_exact_optimum_of_its_class() -> None:
    # Every other lead fixed, the flow over one effort class matches CP-SAT on that residual.
    problem = channel_round(11, 200, 10)
    lead_effort, classes = effort_classes(problem)
    assert classes[0] == 1.0 and not np.isnan(lead_effort).any()
    start = repair_allocation(problem, 10.0)
    assert start is not None
    model = as_integral(linear_model(problem, network_spec(problem)), problem)
    for effort in classes:
        moved = reoptimize_class(problem, start, float(effort), lead_effort)
        assert moved is not None
        lead_partner = np.full(problem.n_leads, -1)
        lead_partner[problem.pair_lead[moved]] = problem.pair_partner[moved]
        assert verify(problem, lead_partner).ok
        in_class = lead_effort[problem.pair_lead] == effort
        sub, _, holds = fix_columns(model, np.flatnonzero(in_class),
                                    np.flatnonzero(start & ~in_class))
        mip = solve_mip(sub, int(np.sum(lead_effort == effort)), 1.0)
        assert holds and mip.status in ("optimal", "feasible")
        fixed_value = float(problem.pair_score[start & ~in_class].sum())
        value = penalized_value(problem, moved, 0.0)
        # As good as anything CP-SAT finds, and within its proven bound.
        assert fixed_value + mip.objective - 1e-6 <= value <= fixed_value + mip.bound + 1e-6


def test_class_sweeps_never_lose_value() -> None:
    problem = channel_round(12, 800, 25)
    model = linear_model(problem, network_spec(problem))
    relax = solve_relaxation(problem, model, time.perf_counter() + 10)
    start, _, infeasible = round_relaxation(problem, as_integral(model, problem), relax,
                                            time.perf_counter() + 10)
    assert start is not None and not infeasible
    before = penalized_value(problem, start, 0.0)
    best, gains = improve_by_classes(problem, start, 0.0, time.perf_counter() + 10)
    lead_partner = np.full(problem.n_leads, -1)
    lead_partner[problem.pair_lead[best]] = problem.pair_partner[best]
    assert verify(problem, lead_partner).ok
    assert penalized_value(problem, best, 0.0) >= before - 1e-12
    assert penalized_value(problem, best, 0.0) <= relax.bound + 1e-9
    assert gains >= 0


def test_fallback_repair_keeps_floors_and_tier_minimums() -> None:
    problem = channel_round(21, 1200, 40, floor=3)
    problem = replace(problem, floor=np.minimum(problem.floor + 1, 3))
    pair_flow = repair_allocation(problem, 10.0)
    assert pair_flow is not None
    lead_partner = np.full(problem.n_leads, -1)
    lead_partner[problem.pair_lead[pair_flow]] = problem.pair_partner[pair_flow]
    assert verify(problem, lead_partner).ok
    count = np.bincount(lead_partner[lead_partner >= 0], minlength=problem.n_partners)
    assert np.all(count >= problem.floor)
    gold = int(count[problem.partner_tier == "gold"].sum())
    assert gold >= min_count(0.15, problem.round_size)
    with pytest.raises(ValueError, match="effort-weighted"):
        repair_allocation(replace(problem, pair_effort=None), 1.0)


def test_solve_falls_back_to_the_repair_when_the_lp_has_no_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import allocator.effort as effort

    problem = channel_round(4, 900, 30)
    monkeypatch.setattr(effort, "LP_SHARE", 1e-9)
    outcome = solve_effort(problem, time_limit_s=10.0)
    assert outcome.status in ("optimal", "feasible")
    assert (outcome.lead_pair >= 0).any()
    assert outcome.method in ("flow_repair", "lp_rounding")
    lead_partner = np.where(outcome.lead_pair >= 0,
                            problem.pair_partner[np.maximum(outcome.lead_pair, 0)], -1)
    assert verify(problem, lead_partner).ok
    assert outcome.penalized_bound >= outcome.objective - 1e-9


def test_transportation_flow_is_the_lp_when_no_count_row_binds() -> None:
    problem = replace(channel_round(6, 1500, 40), floor=np.zeros(40, dtype=np.int64), tiers=(),
                      quotas=(), max_per_partner=None)
    model = linear_model(problem, network_spec(problem))
    flow = transport_relaxation(problem, model, time.perf_counter() + 20)
    lp = solve_relaxation(problem, model, time.perf_counter() + 20)
    # "stopped": values feasible and the bound proven, equal up to the flow's integer costs.
    assert flow is not None and flow.status in ("optimal", "stopped") and lp.status == "optimal"
    assert flow.objective == pytest.approx(lp.objective, rel=1e-6)
    assert flow.bound == pytest.approx(lp.bound, rel=1e-6)
    assert flow.bound >= flow.objective - 1e-9
    assert flow.duals is not None and np.all(flow.duals[model.rows["effort"]] >= 0)


def test_transportation_flow_bound_holds_with_binding_rules() -> None:
    problem = channel_round(7, 1500, 40, floor=3)
    model = linear_model(problem, network_spec(problem))
    flow = transport_relaxation(problem, model, time.perf_counter() + 20)
    lp = solve_relaxation(problem, model, time.perf_counter() + 20)
    assert flow is not None and lp.status == "optimal"
    assert flow.bound >= lp.objective - 1e-7  # a bound on the LP, hence on every allocation
    if flow.status == "relaxed":
        assert violated_rows(model, flow.values).size > 0


def test_per_pair_efforts_take_the_column_generation_path() -> None:
    problem = channel_round(9, 800, 30)
    assert lead_effort(problem) is not None
    mixed = problem.pair_effort.copy()  # type: ignore[union-attr]
    mixed[::7] += 1.0
    problem = replace(problem, pair_effort=mixed)
    assert lead_effort(problem) is None
    alloc = solve(problem, time_limit_s=20)
    assert alloc.verification.ok and alloc.objective <= alloc.bound + 1e-9
    assert any("column generation" in n for n in alloc.notes)
    assert alloc.gap < 5e-3


def test_longest_paths_find_the_smallest_prices_or_a_positive_cycle() -> None:
    tail, head = np.array([0, 1, 2]), np.array([1, 2, 0])
    dist = _longest_paths(3, tail, head, np.array([2, -1, -1]), np.zeros(3, dtype=np.int64))
    assert dist is not None and dist.tolist() == [0, 2, 1]
    assert _longest_paths(3, tail, head, np.array([2, -1, 0]), np.zeros(3, np.int64)) is None


def test_class_moves_keep_binding_quotas() -> None:
    # A tight quota on both sides: class flows (which do not hold quotas) must not break it.
    base = channel_round(14, 900, 30)
    for quota in (Quota(tier="gold", intent="high", max_share=0.15),
                  Quota(tier="bronze", intent="high", min_share=0.3)):
        problem = replace(base, quotas=(quota,))
        alloc = solve(problem, time_limit_s=20)
        assert alloc.verification.ok, alloc.verification.violations
        assert alloc.objective <= alloc.bound + 1e-9 and alloc.gap < 1e-2
        assert any(r.rule.startswith("quota") and r.binding for r in alloc.rules)
        lead_effort, classes = effort_classes(problem)
        start = np.zeros(problem.n_pairs, dtype=bool)
        start[alloc.lead_pair[alloc.lead_pair >= 0]] = True
        # The largest class still moves (guarded), and what it returns keeps the quota.
        moved = reoptimize_class(problem, start, float(classes[0]), lead_effort)
        assert moved is not None
        lead_partner = np.full(problem.n_leads, -1)
        lead_partner[problem.pair_lead[moved]] = problem.pair_partner[moved]
        assert verify(problem, lead_partner).ok
