"""Quotas (a tier's share of one intent class): Lagrangian relaxation around the flow.

A quota ``lo_q ≤ Σ x over (lead of intent I → partner of tier T) ≤ hi_q`` cuts
across the network, so it leaves it: each quota gets a multiplier ``θ_q``
(positive: a charge on its arcs when the maximum binds; negative: a bonus when
the minimum binds) and the flow is re-solved with the adjusted costs.  For any
``θ`` the dual function

    g(θ) = max_x [value(x) − Σ θ_q·count_q(x)] + Σ θ_q·(hi_q if θ_q > 0 else lo_q)

is a proven upper bound on the optimum (weak duality), and every flow that
meets all quotas is a feasible allocation.  One quota: the dual is piecewise
linear in ``θ``, and the multiplier is found by intersecting the lines of the
last violating and the last feasible flow (a cutting-plane / Newton search; a
handful of flows).  Several quotas: projected subgradient with Polyak steps.
Multipliers live on the integer cost scale of the flow, so every flow is exact.

When the best feasible flow is more than ``1e-6`` (relative) below the best
bound, the LP of the whole round is solved (GLOP); an integral LP optimum is
optimal, otherwise CP-SAT solves the 0–1 model under the time limit, hinted with
the best flow, and reports its proven bound and gap.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from allocator.build import quota_groups
from allocator.flow import FlowSolution, choose_scale, network_spec, rounding_slack, solve_network
from allocator.linear import linear_model, solve_lp, solve_mip
from allocator.prices import LP_SOURCE, Outcome, Prices, lp_prices, network_prices
from allocator.problem import AllocationProblem

GAP_TOL = 1e-6
_HEADROOM = 16.0
MAX_FLOWS = 60
LAGRANGE_SOURCE = "Lagrange multiplier"


@dataclass(frozen=True, eq=False)
class _Point:
    """One flow at multipliers ``theta`` (scaled integer units)."""

    theta: np.ndarray
    sol: FlowSolution
    counts: np.ndarray
    cost: int  # flow cost with soft-floor penalties as charges for missed leads, scaled
    dual: int  # g(theta), scaled

    @property
    def value(self) -> int:
        """Scaled penalized value of the flow without multipliers: −cost + Σ θ·count."""
        return int(-self.cost + int(self.theta @ self.counts))


class _Lagrangian:
    def __init__(self, problem: AllocationProblem, deadline: float, max_flows: int) -> None:
        self.problem = problem
        self.spec = network_spec(problem)
        self.scale = choose_scale(problem, self.spec, headroom=_HEADROOM)
        _, self.lo, self.hi, self.group = quota_groups(problem)
        self.in_group = self.group >= 0
        self.deadline = deadline
        self.points: list[_Point] = []
        self.max_flows = max_flows
        smax = float(np.max(np.abs(problem.pair_score))) if problem.n_pairs else 1.0
        self.theta_max = int((_HEADROOM - 2.0) * max(smax, 1e-12) * self.scale.factor)

    def rhs(self, theta: np.ndarray) -> np.ndarray:
        return np.where(theta > 0, self.hi, np.where(theta < 0, self.lo, 0))

    def evaluate(self, theta: np.ndarray) -> _Point | None:
        offset = np.where(self.in_group, theta[np.maximum(self.group, 0)], 0).astype(np.int64)
        sol = solve_network(self.problem, self.spec, scale=self.scale, cost_offset=offset)
        if sol.status != "optimal":
            return None
        counts = np.bincount(self.group[sol.pair_flow & self.in_group],
                             minlength=self.lo.shape[0]).astype(np.int64)
        # The flow earns the penalty on each floor lead met; charging each missed one
        # instead differs by the constant penalty × Σ floor.
        cost = int(sol.cost) + self.scale.penalty * int(self.spec.floor.sum())
        point = _Point(theta.copy(), sol, counts, cost, -cost + int(theta @ self.rhs(theta)))
        self.points.append(point)
        return point

    def feasible(self, point: _Point) -> bool:
        c = point.counts
        return bool(np.all(c >= self.lo) and np.all((self.hi < 0) | (c <= self.hi)))

    def out_of_time(self) -> bool:
        return time.perf_counter() > self.deadline or len(self.points) >= self.max_flows

    def search_one(self, start: _Point) -> None:
        """Cutting-plane search on the single multiplier."""
        c0 = int(start.counts[0])
        sign = 1 if self.hi[0] >= 0 and c0 > self.hi[0] else -1
        target = int(self.hi[0] if sign > 0 else self.lo[0])

        def ok(p: _Point) -> bool:
            return bool(sign * (int(p.counts[0]) - target) <= 0)

        bad, good = start, None
        step = max(int(np.max(np.abs(self.problem.pair_score)) * self.scale.factor), 1)
        while good is None and not self.out_of_time():
            theta = min(abs(int(bad.theta[0])) + step, self.theta_max) * sign
            p = self.evaluate(np.array([theta], dtype=np.int64))
            if p is None:
                return
            if ok(p):
                good = p
            else:
                bad = p
                if abs(theta) >= self.theta_max:
                    return
                step *= 4
        while good is not None and not self.out_of_time():
            dc = int(bad.counts[0]) - int(good.counts[0])
            if dc == 0:
                return
            cross = (bad.value - good.value) / dc
            theta = round(cross)
            lo_t, hi_t = sorted((int(bad.theta[0]), int(good.theta[0])))
            if not lo_t < theta < hi_t:
                theta = (lo_t + hi_t) // 2
                if not lo_t < theta < hi_t:
                    return
            p = self.evaluate(np.array([theta], dtype=np.int64))
            if p is None:
                return
            lines = max(bad.value - theta * int(bad.counts[0]),
                        good.value - theta * int(good.counts[0]))
            if p.value - theta * int(p.counts[0]) <= lines:
                return  # no new line above the two: the dual minimum is at their crossing
            if ok(p):
                good = p
            else:
                bad = p

    def search_many(self, start: _Point) -> None:
        """Projected subgradient with Polyak steps on several multipliers."""
        theta = start.theta.astype(np.float64)
        lam, stall, best = 1.0, 0, start.dual
        point = start
        lower = np.where(self.lo > 0, -self.theta_max, 0)
        upper = np.where(self.hi >= 0, self.theta_max, 0)
        while not self.out_of_time():
            c, th = point.counts, point.theta
            sub = np.where(th > 0, self.hi - c, np.where(th < 0, self.lo - c, 0)).astype(float)
            at_zero = th == 0
            over = at_zero & (self.hi >= 0) & (c > self.hi)
            under = at_zero & (c < self.lo)
            sub[over] = (self.hi - c)[over]
            sub[under] = (self.lo - c)[under]
            norm = float(sub @ sub)
            if norm == 0.0:
                return
            feasible_vals = [q.value for q in self.points if self.feasible(q)]
            aim = max(feasible_vals) if feasible_vals else point.dual - 0.05 * abs(point.dual) - 1
            t = lam * max(point.dual - aim, 1.0) / norm
            theta = np.clip(theta - t * sub, lower, upper)
            nxt = self.evaluate(np.rint(theta).astype(np.int64))
            if nxt is None:
                return
            if nxt.dual < best:
                best, stall = nxt.dual, 0
            else:
                stall += 1
                if stall >= 4:
                    lam, stall = lam / 2.0, 0
                    if lam < 1e-3:
                        return
            point = nxt


def _integral(values: np.ndarray) -> bool:
    return bool(np.all(np.abs(values - np.rint(values)) <= 1e-6))


def _lead_pair(problem: AllocationProblem, x: np.ndarray) -> np.ndarray:
    chosen = x[:problem.n_pairs] > 0.5
    out = np.full(problem.n_leads, -1, dtype=np.int64)
    out[problem.pair_lead[chosen]] = np.flatnonzero(chosen)
    return out


def _shortfall(problem: AllocationProblem, lead_pair: np.ndarray) -> np.ndarray | None:
    if problem.floor_mode != "soft":
        return None
    on = lead_pair >= 0
    count = np.bincount(problem.pair_partner[lead_pair[on]], minlength=problem.n_partners)
    return np.maximum(np.asarray(problem.floor, dtype=np.int64) - count, 0)


def solve_with_quotas(problem: AllocationProblem, time_limit_s: float,
                      max_flows: int = MAX_FLOWS) -> Outcome:
    """Solve a round with quotas (see the module docstring for the method).

    Parameters
    ----------
    problem : AllocationProblem
    time_limit_s : float
        Half goes to the Lagrangian search, the rest to the LP and CP-SAT.
    max_flows : int
        Most flows the Lagrangian search solves before falling back.

    Returns
    -------
    Outcome
        ``status`` "infeasible" when no allocation meets the hard rules.
    """
    started = time.perf_counter()
    deadline = started + 0.5 * time_limit_s
    lag = _Lagrangian(problem, deadline, max_flows)
    start = lag.evaluate(np.zeros(lag.lo.shape[0], dtype=np.int64))
    if start is None:
        return Outcome("infeasible", np.full(problem.n_leads, -1), 0.0, np.inf, "min_cost_flow",
                       lambda: Prices(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0),
                                      np.zeros(0), np.zeros(0), 0.0, ""))
    if not lag.feasible(start):
        if lag.lo.shape[0] == 1:
            lag.search_one(start)
        else:
            lag.search_many(start)
    f = lag.scale.factor
    slack = rounding_slack(problem, lag.scale) + int(lag.spec.floor.sum()) * abs(
        lag.scale.penalty - lag.scale.penalty_value * f) / f
    penalty = lag.scale.penalty_value
    bound = min(p.dual for p in lag.points) / f + slack
    feasible = [p for p in lag.points if lag.feasible(p)]
    best = max(feasible, key=lambda p: p.value) if feasible else None
    notes: list[str] = [f"Lagrangian relaxation of the quotas: {len(lag.points)} flow(s)"]

    def penalized(sol: FlowSolution) -> float:
        short = 0 if sol.shortfall is None else int(sol.shortfall.sum())
        return sol.value - penalty * short

    if best is not None:
        gap = (bound - penalized(best.sol)) / max(abs(bound), 1e-9)
        if gap <= GAP_TOL:
            chosen = best

            def flow_prices() -> Prices:
                pr = network_prices(problem, chosen.sol)
                th = chosen.theta / f
                return Prices(pr.cap, pr.floor, pr.tier_max, pr.tier_min,
                              np.maximum(th, 0.0), np.maximum(-th, 0.0), pr.assign_all,
                              pr.source + ", at the quota multipliers",
                              quota_source=LAGRANGE_SOURCE)

            return Outcome("optimal", chosen.sol.lead_pair, chosen.sol.value, bound,
                           "lagrangian+min_cost_flow", flow_prices,
                           shortfall=chosen.sol.shortfall, penalty=penalty, notes=tuple(notes))

    # The Lagrangian left a gap: the LP of the whole round, then CP-SAT.
    spec = lag.spec
    remaining = max(started + time_limit_s - time.perf_counter(), 0.5)
    model = linear_model(problem, spec)
    lp = solve_lp(model, remaining)
    if lp.status == "infeasible":
        return Outcome("infeasible", np.full(problem.n_leads, -1), 0.0, np.inf, "lp",
                       lambda: lp_prices(problem, model, np.zeros(model.A.shape[0])))
    duals = lp.duals if lp.duals is not None else np.zeros(model.A.shape[0])
    if lp.status == "optimal":
        bound = min(bound, lp.objective + 1e-9 * max(1.0, abs(lp.objective)))
        if _integral(lp.values):
            lead_pair = _lead_pair(problem, lp.values)
            notes.append("the LP optimum was integral")
            return Outcome("optimal", lead_pair, float(problem.pair_score @ np.rint(
                lp.values[:problem.n_pairs])), bound, "lp",
                lambda: lp_prices(problem, model, duals), shortfall=_shortfall(problem, lead_pair),
                penalty=model.penalty, notes=tuple(notes))
    hint = None
    if best is not None:
        hint = np.zeros(model.obj.shape[0])
        hint[:problem.n_pairs] = best.sol.pair_flow
        if model.shortfall_partner.size and best.sol.shortfall is not None:
            hint[problem.n_pairs:] = best.sol.shortfall[model.shortfall_partner]
    remaining = max(started + time_limit_s - time.perf_counter(), 0.5)
    mip = solve_mip(linear_model(problem, spec, integral=True), problem.n_leads, remaining, hint)
    notes.append(f"CP-SAT on the 0–1 model: {mip.status}")
    if mip.status == "infeasible":
        return Outcome("infeasible", np.full(problem.n_leads, -1), 0.0, np.inf, "cp_sat",
                       lambda: lp_prices(problem, model, duals))
    if mip.status == "time_limit":
        if best is None:
            return Outcome("time_limit", np.full(problem.n_leads, -1), 0.0, bound, "cp_sat",
                           lambda: lp_prices(problem, model, duals), notes=tuple(notes))
        return Outcome("feasible", best.sol.lead_pair, best.sol.value, bound,
                       "lagrangian+min_cost_flow", lambda: lp_prices(problem, model, duals),
                       shortfall=best.sol.shortfall, penalty=penalty, notes=tuple(notes))
    lead_pair = _lead_pair(problem, mip.values)
    value = float(problem.pair_score @ mip.values[:problem.n_pairs])
    bound = min(bound, mip.bound)
    source = LP_SOURCE.replace("LP dual", "LP relaxation dual")
    return Outcome("optimal" if mip.status == "optimal" else "feasible", lead_pair, value, bound,
                   "cp_sat", lambda: lp_prices(problem, model, duals, source),
                   shortfall=_shortfall(problem, lead_pair), penalty=model.penalty,
                   notes=tuple(notes))
