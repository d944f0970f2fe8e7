"""Effort-weighted capacity (a generalized assignment problem): LP, rounding, exact moves.

When leads cost a partner different workload, ``Σ effort × x ≤ capacity`` is a
knapsack row per partner and the problem is NP-hard.  The method:

1. **LP relaxation** of the whole round, which gives the proven upper bound
   ``D(y)`` (:class:`allocator.colgen.BoundEvaluator`: weak duality, evaluated on
   the true scores for the duals found) and the rule prices (its row duals; the
   same solve serves both).  When every pair of a lead costs the lead's own
   effort (the leads' ``effort`` column), the LP without the count rows is one
   transportation flow (:mod:`allocator.transport`); otherwise, or when the
   flow breaks count rows on a round small enough, HiGHS solves the LP by column
   generation (:mod:`allocator.colgen`).
2. **Rounding.**  In a basic LP solution only a few leads are fractional.  Leads
   the LP assigns integrally are fixed; the fractional ones (and, per count row
   the flow broke, the leads cheapest to move onto or off it) are solved by
   CP-SAT on the residual problem (residual capacities, floors, tier shares,
   quotas; :func:`allocator.linear.fix_columns`), hinted with the LP.  When the
   residual has no solution, the free set is widened with the fixed leads the
   LP is most indifferent about (smallest regret at the LP duals) among those
   eligible for the partners involved, then more of them (on small rounds, at
   last the whole round: an infeasible answer there is a proof).
3. **Exact moves.**  Leads of one effort class are interchangeable in capacity,
   so with the rest fixed the best reassignment of a whole class is one
   min-cost flow (:func:`allocator.effort_moves.improve_by_classes`); the
   classes are swept while they gain.
4. **Last resort** (:func:`allocator.effort_moves.repair_allocation`): a flow
   in which each partner takes only leads up to an effort threshold and at most
   ``capacity / threshold`` of them keeps floors, tier shares, the max share
   and quotas exactly while no capacity can overflow.  Floors and tier
   minimums are never dropped.
5. **Small rounds** (at most :data:`SMALL_MIP_PAIRS` pairs): CP-SAT on the whole
   0–1 model, hinted with the allocation, proves optimality.

The status is "optimal" when the objective meets the bound within ``1e-9``
(relative) or CP-SAT proves it, else "feasible" with the bound and the gap.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from allocator.colgen import LeadIndex, Relaxation, solve_relaxation
from allocator.effort_moves import improve_by_classes, penalized_value, repair_allocation
from allocator.flow import network_spec
from allocator.linear import LinearModel, as_integral, fix_columns, linear_model, solve_mip
from allocator.prices import Outcome, Prices, lp_prices, zero_prices
from allocator.problem import AllocationProblem
from allocator.transport import transport_relaxation, violated_rows

SMALL_MIP_PAIRS = 2_000
SEEDED_LP_PAIRS = 400_000
RETRY_GAP = 1e-3
BROKEN_ROWS_FOR_LP = 20
RESIDUAL_SHARE = 0.05
NEAR_BEST = 0.05
IMPROVE_SHARE = 0.7
LP_SHARE = 0.75
OPTIMAL_REL = 1e-9
_ONE = 1e-6


def source_name(relax: Relaxation) -> str:
    """``price_source`` of prices read from ``relax``'s duals."""
    return f"LP relaxation dual ({relax.solver})"


def _lead_pair(problem: AllocationProblem, pair_flow: np.ndarray) -> np.ndarray:
    out = np.full(problem.n_leads, -1, dtype=np.int64)
    out[problem.pair_lead[pair_flow]] = np.flatnonzero(pair_flow)
    return out


def _shortfall(problem: AllocationProblem, pair_flow: np.ndarray) -> np.ndarray | None:
    if problem.floor_mode != "soft":
        return None
    count = np.bincount(problem.pair_partner[pair_flow], minlength=problem.n_partners)
    return np.maximum(np.asarray(problem.floor, dtype=np.int64) - count, 0)


def _near_best(problem: AllocationProblem, relax: Relaxation) -> np.ndarray:
    """Pairs worth moving leads onto: those that entered the LP, or within a small margin of
    their lead's best reduced profit at the LP duals."""
    if relax.useful is not None:
        return relax.useful
    best = LeadIndex.of(problem.pair_lead, problem.n_leads).max(relax.q)
    smax = float(np.max(np.abs(problem.pair_score))) if problem.n_pairs else 1.0
    return relax.q >= best[problem.pair_lead] - NEAR_BEST * max(smax, 1e-12)


def _regret(problem: AllocationProblem, leads: LeadIndex, q: np.ndarray, on_pair: np.ndarray,
            assign_all: bool) -> np.ndarray:
    """Per lead, what moving it costs at the LP duals (``inf`` for leads without pairs)."""
    own = np.full(problem.n_leads, np.nan)
    has = on_pair >= 0
    own[has] = q[on_pair[has]]
    masked = q.copy()
    masked[on_pair[has]] = -np.inf
    alt = leads.max(masked)
    if not assign_all:
        alt = np.maximum(alt, 0.0)
    best = leads.max(q)
    regret = np.where(has, own - alt, -np.where(np.isfinite(best), best, -np.inf))
    return np.where(np.isnan(regret), np.inf, np.maximum(regret, 0.0))


def _row_candidates(problem: AllocationProblem, model: LinearModel, values: np.ndarray,
                    rows: np.ndarray, on_pair: np.ndarray, regret: np.ndarray) -> np.ndarray:
    """Leads to free around rows the relaxation breaks: per row short of its minimum, the
    eligible leads cheapest to move onto it; per row over its maximum, its cheapest leads."""
    a = model.A.tocsr()
    act = a @ values
    out = np.zeros(problem.n_leads, dtype=bool)
    for r in rows.tolist():
        cols = a.indices[a.indptr[r]:a.indptr[r + 1]]
        pairs = cols[cols < problem.n_pairs]
        short = model.row_lo[r] - act[r]
        over = act[r] - model.row_hi[r]
        if short > 0:
            # Its own leads (to trade costly ones for cheap ones) and the cheapest to add.
            on = np.zeros(problem.n_pairs, dtype=bool)
            on[on_pair[on_pair >= 0]] = True
            out[problem.pair_lead[pairs[on[pairs]]]] = True
            leads = np.unique(problem.pair_lead[pairs])
            need = int(np.ceil(short))
        else:
            on = np.zeros(problem.n_pairs, dtype=bool)
            on[on_pair[on_pair >= 0]] = True
            leads = np.unique(problem.pair_lead[pairs[on[pairs]]])
            need = int(np.ceil(over))
        take = leads[np.argsort(regret[leads], kind="stable")[:max(10, 3 * need)]]
        out[take] = True
    return out


def round_relaxation(problem: AllocationProblem, integral: LinearModel, relax: Relaxation,
                     deadline: float, broken: np.ndarray | None = None,
                     residual_s: float = 2.0, widen: bool = True,
                     ) -> tuple[np.ndarray | None, list[str], bool]:
    """Fix the LP's integral leads and solve the rest exactly (module docstring, step 2).

    With ``widen`` false only the first free set is tried (the caller has a better
    relaxation to fall back on).

    Returns
    -------
    pair_flow : ndarray of bool or None
        The chosen pairs, ``None`` when no widening found an allocation in time.
    notes : list of str
    infeasible : bool
        CP-SAT proved that no allocation exists (every lead was free).
    """
    n_pairs, pl = problem.n_pairs, problem.pair_lead
    x = relax.values[:n_pairs]
    top = x >= 1.0 - _ONE
    on_pair = np.full(problem.n_leads, -1, dtype=np.int64)
    on_pair[pl[top]] = np.flatnonzero(top)
    total = np.bincount(pl, weights=x, minlength=problem.n_leads)
    free = (on_pair < 0) & (total > _ONE)
    n_free = int(free.sum())
    notes = [f"LP rounding: {n_free} of {problem.n_leads} leads fractional"]
    regret = _regret(problem, LeadIndex.of(pl, problem.n_leads), relax.q, on_pair,
                     problem.assign_all)
    if broken is not None and broken.size:
        around = _row_candidates(problem, integral, relax.values, broken, on_pair, regret)
        notes.append(f"{broken.size} count row(s) broken by the relaxation: "
                     f"{int((around & ~free).sum())} more leads freed around them")
        free |= around
        n_free = int(free.sum())
    nonpair = np.arange(n_pairs, integral.obj.shape[0])
    stages = [0, max(200, 4 * n_free), max(2000, 20 * n_free)]
    if n_pairs <= SMALL_MIP_PAIRS:
        stages.append(problem.n_leads)  # small: the last stage is the whole round
    if not widen:
        stages = stages[:1]
    for extra in stages:
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            notes.append("no time left for the residual problem")
            break
        chosen = free.copy()
        if extra:
            touched = np.zeros(problem.n_partners, dtype=bool)
            touched[problem.pair_partner[free[pl]]] = True
            near = np.zeros(problem.n_leads, dtype=bool)
            near[pl[touched[problem.pair_partner]]] = True
            if not touched.any() or extra >= problem.n_leads:
                near[:] = True
            cand = np.flatnonzero(near & ~free)
            chosen[cand[np.argsort(regret[cand], kind="stable")[:extra]]] = True
        free_pairs = np.flatnonzero(chosen[pl])
        fixed_pairs = on_pair[(on_pair >= 0) & ~chosen]
        sub, _, holds = fix_columns(integral, np.r_[free_pairs, nonpair], fixed_pairs)
        pair_flow = np.zeros(n_pairs, dtype=bool)
        pair_flow[fixed_pairs] = True
        if not holds:
            notes.append(f"residual with {int(chosen.sum())} free leads: fixed leads break a rule")
            continue
        if not sub.obj.shape[0]:
            return pair_flow, notes, False
        hint = np.zeros(sub.obj.shape[0])
        hint[:sub.n_pairs] = x[free_pairs] >= 0.5
        # A first allocation is what counts here: the class flows improve it afterwards.
        mip = solve_mip(sub, int(chosen.sum()), min(0.5 * remaining, residual_s), hint)
        notes.append(f"CP-SAT on the residual ({int(chosen.sum())} free leads, "
                     f"{free_pairs.size} pairs): {mip.status}")
        if mip.status in ("optimal", "feasible"):
            pair_flow[free_pairs[mip.values[:sub.n_pairs] > 0.5]] = True
            return pair_flow, notes, False
        if mip.status == "infeasible" and chosen.all():
            return None, notes, True
        if chosen.all():
            break
    return None, notes, False


def _allocate(problem: AllocationProblem, model: LinearModel, integral: LinearModel,
              relax: Relaxation, deadline: float, improve_until: float, residual_s: float,
              notes: list[str], widen: bool = True) -> tuple[np.ndarray | None, bool]:
    """Rounding then class flows from ``relax``; the allocation and whether CP-SAT proved
    that none exists."""
    broken = violated_rows(model, relax.values) if relax.status == "relaxed" else None
    if broken is not None and not widen and broken.size > BROKEN_ROWS_FOR_LP:
        notes.append(f"{broken.size} count rows broken by the flow: straight to the LP")
        return None, False
    t0 = time.perf_counter()
    pair_flow, more, infeasible = round_relaxation(problem, integral, relax, deadline, broken,
                                                   residual_s=residual_s, widen=widen)
    notes += more
    notes[-1] += f" ({time.perf_counter() - t0:.2f} s)"
    if pair_flow is None:
        return None, infeasible
    t0 = time.perf_counter()
    before = penalized_value(problem, pair_flow, integral.penalty)
    pair_flow, moves = improve_by_classes(problem, pair_flow, integral.penalty,
                                          min(deadline, improve_until),
                                          allowed=_near_best(problem, relax))
    notes.append(f"effort-class flows: {moves} improving move(s), "
                 f"{penalized_value(problem, pair_flow, integral.penalty) - before:+.6g} "
                 f"({time.perf_counter() - t0:.2f} s)")
    return pair_flow, False


def _gap(value: float, bound: float) -> float:
    return (bound - value) / max(abs(bound), 1e-9)


def solve_effort(problem: AllocationProblem, time_limit_s: float) -> Outcome:
    """Solve a round whose leads cost partners different effort (see module docstring)."""
    started = time.perf_counter()
    deadline = started + time_limit_s
    lp_deadline = started + LP_SHARE * time_limit_s
    improve_until = started + IMPROVE_SHARE * time_limit_s
    residual_s = max(1.0, RESIDUAL_SHARE * time_limit_s)
    model = linear_model(problem, network_spec(problem))
    integral = as_integral(model, problem)
    penalty = model.penalty
    notes: list[str] = []
    relax = transport_relaxation(problem, model, lp_deadline)
    pair_flow: np.ndarray | None = None
    if relax is not None:
        notes.append(f"effort-weighted capacity: LP relaxation without the count rows as one "
                     f"transportation flow (efforts are the leads' own; {relax.seconds:.2f} s), "
                     f"duals from its potentials: {relax.status}")
        lp_next = relax.status == "relaxed" and problem.n_pairs <= SEEDED_LP_PAIRS
        pair_flow, infeasible = _allocate(problem, model, integral, relax, deadline,
                                          improve_until, residual_s, notes, widen=not lp_next)
        if infeasible:
            return Outcome("infeasible", np.full(problem.n_leads, -1), 0.0, np.inf, "cp_sat",
                           lambda: zero_prices(problem, ""), notes=tuple(notes))
    good = pair_flow is not None and _gap(penalized_value(problem, pair_flow, penalty),
                                          relax.bound if relax else np.inf) <= RETRY_GAP
    if relax is None or (relax.status == "relaxed" and not good
                         and problem.n_pairs <= SEEDED_LP_PAIRS):
        # Count rows the flow breaks carry no duals there: the LP, started from its duals.
        lp = solve_relaxation(problem, model, lp_deadline,
                              None if relax is None else relax.duals)
        notes.append(f"LP relaxation by column generation ({lp.solver}, {lp.rounds} round(s), "
                     f"{lp.columns} of {problem.n_pairs} pairs, {lp.seconds:.2f} s): "
                     f"{lp.status}")
        if lp.status == "infeasible":
            return Outcome("infeasible", np.full(problem.n_leads, -1), 0.0, np.inf, "lp",
                           lambda: zero_prices(problem, ""), notes=tuple(notes))
        if relax is None or lp.status in ("optimal", "stopped"):
            flow_bound = np.inf if relax is None else relax.bound
            relax = replace(lp, bound=min(lp.bound, flow_bound))
            if lp.status in ("optimal", "stopped"):
                again, infeasible = _allocate(problem, model, integral, relax, deadline,
                                              improve_until, residual_s, notes)
                if infeasible:
                    return Outcome("infeasible", np.full(problem.n_leads, -1), 0.0, np.inf,
                                   "cp_sat", lambda: zero_prices(problem, ""),
                                   notes=tuple(notes))
                if again is not None and (pair_flow is None or penalized_value(
                        problem, again, penalty) > penalized_value(problem, pair_flow, penalty)):
                    pair_flow = again
    assert relax is not None
    duals, source = relax.duals, source_name(relax)

    def prices() -> Prices:
        if duals is None:
            return zero_prices(problem, "unavailable (LP relaxation not solved in time)")
        return lp_prices(problem, model, duals, source)

    bound = relax.bound
    method = "lp_rounding"
    if pair_flow is None:
        pair_flow = repair_allocation(problem, max(deadline - time.perf_counter(), 1.0))
        method = "flow_repair"
        notes.append("last resort: flow on effort-safe lead counts, then greedy fill: "
                     + ("found" if pair_flow is not None else "none found"))
    if pair_flow is None:
        return Outcome("time_limit", np.full(problem.n_leads, -1), 0.0, bound, method, prices,
                       notes=tuple(notes))
    value = penalized_value(problem, pair_flow, penalty)
    proven = value >= bound - OPTIMAL_REL * max(abs(bound), 1e-9)
    remaining = deadline - time.perf_counter()
    if not proven and problem.n_pairs <= SMALL_MIP_PAIRS and remaining > 0.05:
        remaining = min(remaining, 1.0 + 0.1 * time_limit_s)
        hint = np.zeros(integral.obj.shape[0])
        hint[:problem.n_pairs] = pair_flow
        short = _shortfall(problem, pair_flow)
        if short is not None and integral.shortfall_partner.size:
            hint[problem.n_pairs:] = np.minimum(short[integral.shortfall_partner],
                                                integral.var_hi[problem.n_pairs:])
        mip = solve_mip(integral, problem.n_leads, remaining, hint)
        notes.append(f"CP-SAT on the whole round ({remaining:.1f} s limit): {mip.status}")
        if mip.status in ("optimal", "feasible"):
            found = mip.values[:problem.n_pairs] > 0.5
            if penalized_value(problem, found, penalty) >= value - 1e-12:
                pair_flow, value, method = found, penalized_value(problem, found, penalty), \
                    "cp_sat"
            bound = min(bound, mip.bound)
            proven = proven or mip.status == "optimal"
    bound = max(bound, value) if proven else bound
    return Outcome("optimal" if proven else "feasible", _lead_pair(problem, pair_flow),
                   float(problem.pair_score[pair_flow].sum()), bound, method, prices,
                   shortfall=_shortfall(problem, pair_flow), penalty=penalty, notes=tuple(notes))
