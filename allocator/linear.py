"""The whole round as one sparse linear model: the LP (GLOP) and the 0–1 model (CP-SAT).

Used where the network alone does not hold the rules: quotas whose Lagrangian
leaves a gap (``side``) and effort-weighted capacity (``effort``).  The matrix is
built with numpy and handed to OR-Tools' model builder in one call
(``fill_model_from_sparse_data``), so no Python loop runs per pair.

Variables: ``x[p]`` in [0, 1] per pair, then in soft mode one shortfall
``s[j]`` in [0, floor] per partner with a floor.  Rows, in order:

* ``lead``: Σ x over the lead's pairs ≤ 1 (= 1 with ``assign_all``);
* ``count``: floor (hard) ≤ leads of partner ≤ most leads (capacity and max share;
  with effort only the max share);
* ``effort``: Σ effort × x ≤ capacity units (effort-weighted capacity only);
* ``soft_floor``: leads of partner + s ≥ floor (soft mode);
* ``tier``: least ≤ leads of tier ≤ most;
* ``quota``: least ≤ leads of the intent to the tier ≤ most.

Objective: maximize Σ score × x − penalty × Σ s.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import scipy.sparse as sp
from ortools.linear_solver.python import model_builder_helper as mbh

from allocator.build import quota_groups
from allocator.flow import NetworkSpec, default_floor_penalty
from allocator.problem import AllocationProblem

_MIP_ACTIVITY = 2.0**50


@dataclass(frozen=True, eq=False)
class LinearModel:
    """A sparse model ``row_lo ≤ A v ≤ row_hi``, ``var_lo ≤ v ≤ var_hi``, max ``obj · v``."""

    A: sp.csr_matrix
    row_lo: np.ndarray
    row_hi: np.ndarray
    var_lo: np.ndarray
    var_hi: np.ndarray
    obj: np.ndarray
    n_pairs: int
    shortfall_partner: np.ndarray
    rows: dict[str, np.ndarray] = field(default_factory=dict)
    penalty: float = 0.0
    effort_scale: float = 1.0


def effort_scale(effort: np.ndarray, capacity: np.ndarray) -> float:
    """Smallest power of ten that makes every effort an integer, else 10 000."""
    return _effort_scale(effort, capacity)


def _effort_scale(effort: np.ndarray, capacity: np.ndarray) -> float:
    """Smallest power of ten that makes every effort an integer, else 10 000."""
    for k in (1.0, 10.0, 100.0, 1000.0, 10000.0):
        scaled = effort * k
        if np.all(np.abs(scaled - np.rint(scaled)) < 1e-9 * np.maximum(1.0, scaled)):
            return k
    return 10000.0


def linear_model(problem: AllocationProblem, spec: NetworkSpec, *, quotas: bool = True,
                 integral: bool = False) -> LinearModel:
    """Build the model of ``problem`` under ``spec``'s (possibly relaxed) network rules.

    Parameters
    ----------
    quotas : bool
        Include the quota rows.
    integral : bool
        For CP-SAT: effort rows scaled to integers (efforts rounded up, capacity
        down, so a solution is always feasible for the true rule).
    """
    n, m, np_ = problem.n_leads, problem.n_partners, problem.n_pairs
    pl, pp = problem.pair_lead, problem.pair_partner
    r_idx: list[np.ndarray] = []
    c_idx: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    lo: list[np.ndarray] = []
    hi: list[np.ndarray] = []
    rows: dict[str, np.ndarray] = {}
    n_rows = 0
    ones = np.ones(np_)
    pair_col = np.arange(np_)

    def add(name: str, count: int, r: np.ndarray, c: np.ndarray, v: np.ndarray,
            lo_: np.ndarray, hi_: np.ndarray) -> None:
        nonlocal n_rows
        r_idx.append(r + n_rows)
        c_idx.append(c)
        vals.append(v)
        lo.append(np.asarray(lo_, dtype=float))
        hi.append(np.asarray(hi_, dtype=float))
        rows[name] = np.arange(n_rows, n_rows + count)
        n_rows += count

    inf = np.inf
    add("lead", n, pl, pair_col, ones, np.full(n, 1.0 if spec.assign_all else -inf),
        np.ones(n))
    effort = problem.pair_effort
    hard = not spec.soft
    floor = spec.floor.astype(float)
    if effort is None:
        most = spec.cap.astype(float)
    else:
        mpp = problem.max_per_partner
        most = np.full(m, inf) if mpp is None or "max_share" in spec.relaxed \
            else np.full(m, float(mpp))
    add("count", m, pp, pair_col, ones, floor if hard else np.full(m, -inf), most)
    k_eff = 1.0
    if effort is not None:
        cap_units = np.asarray(problem.capacity_units, dtype=float)
        if integral:
            k_eff = _effort_scale(effort, cap_units)
            coef = np.ceil(effort * k_eff - 1e-9)
            rhs = np.floor(cap_units * k_eff + 1e-9)
        else:
            coef, rhs = effort, cap_units
        add("effort", m, pp, pair_col, coef, np.full(m, -inf), rhs)
    short_partner = np.flatnonzero(floor > 0) if spec.soft else np.zeros(0, dtype=np.int64)
    n_s = short_partner.shape[0]
    if n_s:
        pos = np.full(m, -1)
        pos[short_partner] = np.arange(n_s)
        has = pos[pp] >= 0
        add("soft_floor", n_s, np.r_[pos[pp[has]], np.arange(n_s)],
            np.r_[pair_col[has], np_ + np.arange(n_s)], np.ones(int(has.sum()) + n_s),
            floor[short_partner], np.full(n_s, inf))
    t = spec.tier_names.shape[0]
    add("tier", t, spec.partner_tier[pp], pair_col, ones, spec.tier_lo.astype(float),
        spec.tier_hi.astype(float))
    if quotas:
        _, qlo, qhi, group = quota_groups(problem)
        g = qlo.shape[0]
        inq = group >= 0
        add("quota", g, group[inq], pair_col[inq], np.ones(int(inq.sum())), qlo.astype(float),
            np.where(qhi >= 0, qhi, inf).astype(float))
    a = sp.csr_matrix((np.concatenate(vals), (np.concatenate(r_idx), np.concatenate(c_idx))),
                      shape=(n_rows, np_ + n_s))
    penalty = 0.0
    if n_s:
        penalty = float(problem.floor_penalty) if problem.floor_penalty is not None \
            else default_floor_penalty(problem)
    return LinearModel(
        A=a, row_lo=np.concatenate(lo), row_hi=np.concatenate(hi),
        var_lo=np.zeros(np_ + n_s), var_hi=np.r_[np.ones(np_), floor[short_partner]],
        obj=np.r_[problem.pair_score, np.full(n_s, -penalty)], n_pairs=np_,
        shortfall_partner=short_partner, rows=rows, penalty=penalty, effort_scale=k_eff)


@dataclass(frozen=True, eq=False)
class LinearResult:
    """Solution of a linear model; ``status`` is "optimal", "feasible", "infeasible" or
    "time_limit" (no solution in time)."""

    status: str
    values: np.ndarray
    objective: float
    bound: float
    duals: np.ndarray | None = None


def _builder(model: LinearModel, obj: np.ndarray) -> mbh.ModelBuilderHelper:
    helper = mbh.ModelBuilderHelper()
    # The binding's stubs spell the array type oddly; the call takes float64 arrays.
    fill: Any = helper.fill_model_from_sparse_data
    fill(model.var_lo, model.var_hi, obj, model.row_lo, model.row_hi, model.A)
    helper.set_maximize(True)
    return helper


def _status(solver: mbh.ModelSolverHelper, has_solution: bool) -> str:
    st = solver.status()
    if st == mbh.SolveStatus.OPTIMAL:
        return "optimal"
    if st == mbh.SolveStatus.INFEASIBLE:
        return "infeasible"
    if st == mbh.SolveStatus.FEASIBLE or has_solution:
        return "feasible"
    if st in (mbh.SolveStatus.NOT_SOLVED, mbh.SolveStatus.UNKNOWN_STATUS):
        return "time_limit"
    raise RuntimeError(f"The linear solver returned status {st!r}.")


def solve_lp(model: LinearModel, time_limit_s: float) -> LinearResult:
    """LP relaxation with GLOP: values, objective and row duals (∂objective/∂bound)."""
    helper = _builder(model, model.obj)
    solver = mbh.ModelSolverHelper("glop")
    solver.set_time_limit_in_seconds(max(time_limit_s, 0.01))
    solver.solve(helper)
    status = _status(solver, False)
    if status != "optimal":
        return LinearResult(status, np.zeros(model.obj.shape[0]), np.nan, np.inf)
    obj = float(solver.objective_value())
    return LinearResult(status, np.asarray(solver.variable_values()), obj, obj,
                        np.asarray(solver.dual_values()))


def mip_objective(model: LinearModel, n_leads: int) -> tuple[np.ndarray, float]:
    """Integer objective coefficients for CP-SAT and their scale.

    The scale keeps the largest possible objective activity below ``2**50``
    (CP-SAT's exact range) and the largest score near ``1e9``.
    """
    vmax = float(np.max(np.abs(model.obj))) if model.obj.size else 1.0
    vmax = max(vmax, 1e-12)
    smax = float(np.max(np.abs(model.obj[:model.n_pairs]))) if model.n_pairs else 1.0
    smax = max(smax, 1e-12)
    activity = smax * max(n_leads, 1) + float(np.sum(np.abs(model.obj[model.n_pairs:]) *
                                                      model.var_hi[model.n_pairs:]))
    k = min(1e9 / smax, _MIP_ACTIVITY / max(activity, vmax))
    return np.rint(model.obj * k), k


def solve_mip(model: LinearModel, n_leads: int, time_limit_s: float,
              hint: np.ndarray | None = None, workers: int = 2) -> LinearResult:
    """The 0–1 model with CP-SAT (through the model builder), hinted, under a time limit.

    ``objective`` and ``bound`` are in the model's units; the bound is widened by the
    largest rounding error of the integer objective, so it stays a proven bound.
    """
    obj_int, k = mip_objective(model, n_leads)
    helper = _builder(model, obj_int)
    for v in range(model.obj.shape[0]):
        helper.set_var_integrality(v, True)
    if hint is not None:
        nz = np.flatnonzero(hint > 0.5)
        dense = model.obj.shape[0] <= 500_000
        for v in (np.arange(model.obj.shape[0]) if dense else nz).tolist():
            helper.add_hint(v, float(round(hint[v])))
    solver = mbh.ModelSolverHelper("sat")
    solver.set_time_limit_in_seconds(max(time_limit_s, 0.05))
    solver.set_solver_specific_parameters(f"num_workers:{workers}")
    solver.solve(helper)
    has = solver.has_solution()
    status = _status(solver, has)
    if status in ("infeasible", "time_limit"):
        return LinearResult(status, np.zeros(model.obj.shape[0]), np.nan, np.inf)
    values = np.rint(np.asarray(solver.variable_values()))
    objective = float(model.obj @ values)
    slack = (n_leads + model.obj.shape[0] - model.n_pairs) * 0.5 / k
    bound = float(solver.best_objective_bound()) / k + slack
    if status == "optimal":
        bound = max(objective, float(solver.objective_value()) / k + slack)
    return LinearResult(status, values, objective, max(bound, objective))


def as_integral(model: LinearModel, problem: AllocationProblem) -> LinearModel:
    """``model`` (continuous) with its effort rows made integral as ``integral=True`` does.

    Efforts are scaled by :func:`_effort_scale` and rounded up, capacities rounded
    down, so every integer solution of the result meets the true capacities;
    without effort rows the model is returned as is.
    """
    if "effort" not in model.rows or problem.pair_effort is None:
        return model
    rows = model.rows["effort"]
    cap_units = np.asarray(problem.capacity_units, dtype=float)
    k = _effort_scale(problem.pair_effort, cap_units)
    a = model.A.tocsr(copy=True)
    if rows.size:  # the effort rows are one contiguous block
        lo_ptr, hi_ptr = a.indptr[int(rows[0])], a.indptr[int(rows[-1]) + 1]
        a.data[lo_ptr:hi_ptr] = np.ceil(a.data[lo_ptr:hi_ptr] * k - 1e-9)
    row_hi = model.row_hi.copy()
    row_hi[rows] = np.floor(cap_units * k + 1e-9)
    return replace(model, A=a, row_hi=row_hi, effort_scale=k)


def fix_columns(model: LinearModel, free: np.ndarray,
                fixed: np.ndarray) -> tuple[LinearModel, np.ndarray, bool]:
    """The model over the columns ``free`` once the columns ``fixed`` are set to one.

    Parameters
    ----------
    free : ndarray of int
        Columns left to decide, pairs first (ascending) then non-pair columns.
    fixed : ndarray of int
        Columns set to one; every other column is zero.

    Returns
    -------
    sub : LinearModel
        Rows that no free column touches are dropped; the others' bounds are
        shifted by the fixed columns' activity.  ``n_pairs`` counts the free pairs.
    rows : ndarray of int
        The original row of each kept row.
    holds : bool
        Whether the dropped rows are met by the fixed columns alone.
    """
    a = model.A.tocsc()
    fixed_activity = np.asarray(a[:, fixed].sum(axis=1)).ravel() if fixed.size else \
        np.zeros(a.shape[0])
    lo = model.row_lo - fixed_activity
    hi = model.row_hi - fixed_activity
    sub = a[:, free]
    touched = np.diff(sub.tocsr().indptr) > 0
    dropped = ~touched
    tol = 1e-6
    holds = bool(np.all(lo[dropped] <= tol) and np.all(hi[dropped] >= -tol))
    rows = np.flatnonzero(touched)
    n_free_pairs = int(np.count_nonzero(free < model.n_pairs))
    nonpair = free[free >= model.n_pairs]
    short = model.shortfall_partner[nonpair - model.n_pairs] if nonpair.size else \
        np.zeros(0, dtype=np.int64)
    return LinearModel(
        A=sub.tocsr()[rows], row_lo=lo[rows], row_hi=hi[rows], var_lo=model.var_lo[free],
        var_hi=model.var_hi[free], obj=model.obj[free], n_pairs=n_free_pairs,
        shortfall_partner=short, penalty=model.penalty,
        effort_scale=model.effort_scale), rows, holds
