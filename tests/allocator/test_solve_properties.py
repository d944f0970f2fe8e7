"""Property tests: random rounds against an independent LP / MILP (scipy HiGHS).

The reference models are written here from the rules, sharing nothing with the
solver: one variable per pair, rows for leads, partners (floor ≤ count ≤
min(capacity, max share)), tiers and quotas with the shares turned into counts
by this file's own floor/ceil.  Without quotas and effort the problem is
totally unimodular, so the LP optimum is the integer optimum.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

from allocator.errors import InfeasiblePolicyError
from allocator.problem import AllocationProblem
from allocator.solve import solve
from tests.allocator.core_instances import random_problem

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _most(share: float, n: int) -> int:
    return math.floor(share * n + 1e-9)


def _least(share: float, n: int) -> int:
    return math.ceil(share * n - 1e-9)


def reference(problem: AllocationProblem, integral: bool, penalty: float = 0.0):
    """Optimum of the round by HiGHS: (objective incl. soft penalties, or None if infeasible)."""
    n, m, p = problem.n_leads, problem.n_partners, problem.n_pairs
    soft = problem.floor_mode == "soft"
    n_s = m if soft else 0
    cols = np.arange(p)
    blocks, lo, hi = [], [], []

    def row_block(rows, n_rows, lo_, hi_, extra=None):
        a = sp.csr_matrix((np.ones(p), (rows, cols)), shape=(n_rows, p + n_s))
        if extra is not None:
            a = a + extra
        blocks.append(a)
        lo.extend(lo_)
        hi.extend(hi_)

    row_block(problem.pair_lead, n, [1.0 if problem.assign_all else 0.0] * n, [1.0] * n)
    cap = np.floor(problem.capacity_units + 1e-9)
    if problem.max_per_partner is not None:
        cap = np.minimum(cap, problem.max_per_partner)
    if soft:
        row_block(problem.pair_partner, m, [0.0] * m, list(cap))
        eye = sp.csr_matrix((np.ones(m), (np.arange(m), p + np.arange(m))), shape=(m, p + n_s))
        row_block(problem.pair_partner, m, list(problem.floor.astype(float)), [np.inf] * m,
                  extra=eye)
    else:
        row_block(problem.pair_partner, m, list(problem.floor.astype(float)), list(cap))
    tiers = np.asarray(problem.partner_tier).astype(str)
    for rule in problem.tiers:
        member = (tiers[problem.pair_partner] == rule.name).astype(float)
        a = sp.csr_matrix(np.r_[member, np.zeros(n_s)][None, :])
        blocks.append(a)
        lo.append(_least(rule.min_share, problem.round_size) if rule.min_share else 0.0)
        hi.append(_most(rule.max_share, problem.round_size) if rule.max_share is not None
                  else np.inf)
    intents = np.asarray(problem.lead_intent).astype(str)
    for q in problem.quotas:
        n_int = int(np.count_nonzero(intents == q.intent))
        member = ((tiers[problem.pair_partner] == q.tier) &
                  (intents[problem.pair_lead] == q.intent)).astype(float)
        blocks.append(sp.csr_matrix(np.r_[member, np.zeros(n_s)][None, :]))
        lo.append(_least(q.min_share, n_int) if q.min_share is not None else 0.0)
        hi.append(_most(q.max_share, n_int) if q.max_share is not None else np.inf)
    a = sp.vstack(blocks).tocsr()
    if p + n_s == 0:  # nothing to choose: feasible when zero meets every row
        return 0.0 if all(lo_ <= 0 <= hi_ for lo_, hi_ in zip(lo, hi, strict=True)) else None
    c = -np.r_[problem.pair_score, -penalty * np.ones(n_s)]
    ub = np.r_[np.ones(p), problem.floor.astype(float) if soft else np.zeros(0)]
    if integral:
        res = milp(c, constraints=LinearConstraint(a, lo, hi), integrality=np.ones(p + n_s),
                   bounds=Bounds(np.zeros(p + n_s), ub))
        return None if res.status == 2 else -res.fun
    lo_a, hi_a = np.asarray(lo, float), np.asarray(hi, float)
    a_ub = sp.vstack([a[np.isfinite(hi_a)], -a[np.isfinite(lo_a) & (lo_a > -np.inf)]])
    b_ub = np.r_[hi_a[np.isfinite(hi_a)], -lo_a[np.isfinite(lo_a)]]
    res = linprog(c, A_ub=a_ub, b_ub=b_ub, bounds=list(zip(np.zeros(p + n_s), ub, strict=True)),
                  method="highs")
    return None if res.status == 2 else -res.fun


def _check(problem: AllocationProblem, integral: bool, penalty: float = 0.0) -> None:
    expected = reference(problem, integral, penalty)
    if expected is None:
        with pytest.raises(InfeasiblePolicyError) as info:
            solve(problem, time_limit_s=20)
        assert info.value.conflicts and all(isinstance(c, str) and c for c in info.value.conflicts)
        return
    alloc = solve(problem, time_limit_s=20)
    assert alloc.verification.ok, alloc.verification.violations
    assert alloc.status == "optimal"
    got = alloc.objective
    if alloc.floor_shortfall is not None:
        got -= penalty * float(alloc.floor_shortfall.sum())
    assert got == pytest.approx(expected, rel=1e-6, abs=1e-6)
    assert alloc.bound >= alloc.objective - 1e-9
    assert 0.0 <= alloc.gap <= 1e-6


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 9), m=st.integers(1, 5),
       density=st.sampled_from([0.3, 0.6, 0.9]))
def test_network_rounds_match_the_lp(seed: int, n: int, m: int, density: float) -> None:
    _check(random_problem(seed, n, m, density=density), integral=False)


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 9), m=st.integers(1, 5))
def test_soft_floor_rounds_match_the_lp_with_their_penalty(seed: int, n: int, m: int) -> None:
    quotas = seed % 2 == 1  # with quotas: against the MILP
    problem = random_problem(seed, n, m, soft=True, clamp_floors=False, floor_penalty=0.7,
                             quotas=quotas)
    _check(problem, integral=quotas, penalty=0.7)


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 10), m=st.integers(1, 5))
def test_quota_rounds_match_the_milp(seed: int, n: int, m: int) -> None:
    _check(random_problem(seed, n, m, quotas=True), integral=True)


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 8), m=st.integers(1, 4))
def test_unclamped_floors_are_solved_or_diagnosed(seed: int, n: int, m: int) -> None:
    # Floors not limited by capacity or eligibility: often infeasible, never a crash.
    _check(random_problem(seed, n, m, clamp_floors=False, quotas=bool(seed % 2)),
           integral=bool(seed % 2))


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 9), m=st.integers(1, 5))
def test_default_soft_penalty_misses_as_few_floor_leads_as_possible(seed: int, n: int,
                                                                     m: int) -> None:
    from dataclasses import replace

    problem = random_problem(seed, n, m, soft=True, clamp_floors=False)
    # Fewest floor leads that must be missed: the same LP with scores 0 and penalty 1.
    least = reference(replace(problem, pair_score=np.zeros(problem.n_pairs)), False, 1.0)
    if least is None:
        with pytest.raises(InfeasiblePolicyError):
            solve(problem)
        return
    alloc = solve(problem)
    assert alloc.verification.ok and alloc.floor_shortfall is not None
    assert int(alloc.floor_shortfall.sum()) == round(-least)
