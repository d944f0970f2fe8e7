"""The LP relaxation of a round by column generation, and a proven bound from any row duals.

The model is :func:`allocator.linear.linear_model`'s: one column per eligible pair
(then soft-floor shortfalls), the ``lead`` rows first.  On large rounds most
pairs never matter, and a simplex pays for every lead row it has to pivot, so:

1. **Prices first.**  A few hundred vectorized steps of price adjustment on the
   effort rows (a subgradient method on the Lagrangian: every lead picks its
   best pair at ``score − price × effort``, overloaded partners get dearer)
   give approximate capacity prices.
2. **Restricted LP.**  Per lead, its pairs within a small margin of its best
   reduced profit under those prices (at most three), plus, per partner with a
   floor, its cheapest pairs; elastic columns (a penalty per unit) keep the
   lower-bounded rows (floors, tier and quota minimums, ``assign_all``)
   feasible while pairs are missing.  Rounds of up to :data:`FULL_LP_PAIRS`
   pairs start with every pair.
3. **Pricing.**  The restricted LP is solved with HiGHS' dual simplex; every
   pair's reduced cost comes from the row duals in one sparse product, and per
   lead the best pair with a positive one is added.  HiGHS keeps its basis, so
   the next solve starts where the last stopped (dual simplex after large
   additions, primal after small ones).  It ends when no pair prices out: the
   restricted optimum is then the LP optimum.

**The bound.**  For row duals ``y`` of the partner-side rows (count, effort,
soft floor, tier, quota), the best lead duals are ``max(0, max_p q_p)`` per
lead (``max_p q_p`` with ``assign_all``), where ``q_p`` is the pair's score
minus its partner-side duals; weak duality then gives

    D(y) = Σ_rows (y⁺·hi − y⁻·lo) + Σ_leads max(0, max_p q_p) + Σ_shortfalls max(0, q)·u

a proven upper bound for *any* ``y`` (signs clipped to the rows' finite sides),
evaluated in float64 on the true scores, independent of the solver's
tolerances.  At the LP optimum it equals the LP value; when the time runs out
first, the smallest ``D`` seen is still a bound.

HiGHS comes from the ``highspy`` package when installed, else from the binding
SciPy ships (``scipy.optimize._highspy``, the same API); without either, GLOP
solves the whole LP once.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from allocator.linear import LinearModel, solve_lp
from allocator.problem import AllocationProblem

FULL_LP_PAIRS = 60_000
PRICE_STEPS = 150
_MARGIN = 0.005
_PER_LEAD = 3
_PRIMAL_SHARE = 0.02
_TOL = 1e-9
_ART = 1e-7


def highs_module() -> Any | None:
    """The HiGHS Python binding: ``highspy`` or SciPy's bundled copy, ``None`` without either."""
    for name in ("highspy", "scipy.optimize._highspy._core"):
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(mod, "HighsLp") and (hasattr(mod, "Highs") or hasattr(mod, "_Highs")):
            return mod
    return None


@dataclass(frozen=True, eq=False)
class LeadIndex:
    """Pairs grouped by lead, for per-lead maxima without a sort per call."""

    order: np.ndarray
    starts: np.ndarray
    has_pairs: np.ndarray
    n_leads: int

    @classmethod
    def of(cls, pair_lead: np.ndarray, n_leads: int) -> LeadIndex:
        order = np.argsort(pair_lead, kind="stable")
        sorted_lead = pair_lead[order]
        counts = np.bincount(sorted_lead, minlength=n_leads)
        starts = np.r_[0, np.cumsum(counts)[:-1]].astype(np.int64)
        return cls(order=order, starts=starts, has_pairs=counts > 0, n_leads=n_leads)

    def max(self, values: np.ndarray) -> np.ndarray:
        """Per lead, the largest of ``values`` over its pairs (``-inf`` without pairs)."""
        out = np.full(self.n_leads, -np.inf)
        if self.order.size:
            red = np.maximum.reduceat(values[self.order], self.starts[self.has_pairs])
            out[self.has_pairs] = red
        return out

    def lead_of_pair(self) -> np.ndarray:
        """Per pair, its lead."""
        lead = np.empty(self.order.size, dtype=np.int64)
        lead[self.order] = np.repeat(np.arange(self.n_leads),
                                     np.diff(np.r_[self.starts, self.order.size]))
        return lead

    def rank(self, key: np.ndarray) -> np.ndarray:
        """Per pair, its rank within its lead by ascending ``key`` (ties by position)."""
        lead = self.lead_of_pair()
        order = np.lexsort((key, lead))
        pos = np.empty(order.size, dtype=np.int64)
        pos[order] = np.arange(order.size) - self.starts[lead[order]]
        return pos


@dataclass(frozen=True, eq=False)
class DualBound:
    """``D(y)`` and the pairs' reduced profits ``q`` (score minus partner-side duals)."""

    bound: float
    q: np.ndarray
    lead_best: np.ndarray


class BoundEvaluator:
    """Evaluates :math:`D(y)` (module docstring) for one model."""

    def __init__(self, model: LinearModel, pair_lead: np.ndarray, n_leads: int) -> None:
        lead_rows = model.rows["lead"]
        if lead_rows.shape[0] != n_leads or (n_leads and lead_rows[0] != 0):
            raise ValueError("The model's lead rows must come first, one per lead.")
        self.model = model
        self.n_leads = n_leads
        self.other = model.A[n_leads:].tocsr()
        self.lo = model.row_lo[n_leads:]
        self.hi = model.row_hi[n_leads:]
        self.assign_all = bool(n_leads and np.isfinite(model.row_lo[0]))
        self.leads = LeadIndex.of(pair_lead, n_leads)

    def clip(self, y_other: np.ndarray) -> np.ndarray:
        w = np.where(np.isfinite(self.hi), y_other, np.minimum(y_other, 0.0))
        return np.where(np.isfinite(self.lo), w, np.maximum(w, 0.0))

    def __call__(self, duals: np.ndarray) -> DualBound:
        """``D`` at the partner-side part of ``duals`` (a full row-dual vector)."""
        m = self.model
        w = self.clip(np.asarray(duals, dtype=float)[self.n_leads:])
        q = m.obj - self.other.T @ w
        rows = float(np.sum(np.where(w > 0, w * np.where(np.isfinite(self.hi), self.hi, 0.0),
                                     w * np.where(np.isfinite(self.lo), self.lo, 0.0))))
        qp = q[:m.n_pairs]
        best = self.leads.max(qp)
        # With assign_all a lead without pairs makes the sum -inf: the LP has no solution.
        leads = float(np.sum(best if self.assign_all else np.maximum(best, 0.0)))
        rest = float(np.sum(np.maximum(q[m.n_pairs:], 0.0) * m.var_hi[m.n_pairs:]))
        return DualBound(rows + leads + rest, qp, best)


def capacity_prices(problem: AllocationProblem, leads: LeadIndex, steps: int = PRICE_STEPS,
                    deadline: float = np.inf) -> np.ndarray:
    """Approximate per-effort-unit capacity prices by price adjustment (module docstring)."""
    m = problem.n_partners
    lam = np.zeros(m)
    if problem.pair_effort is None or not problem.n_pairs:
        return lam
    eff, score, pp = problem.pair_effort, problem.pair_score, problem.pair_partner
    cap = np.asarray(problem.capacity_units, dtype=float)
    order, starts = leads.order, leads.starts[leads.has_pairs]
    eff_o, score_o, pp_o = eff[order], score[order], pp[order]
    seg_len = np.diff(np.r_[starts, order.size])
    smax = float(np.max(np.abs(score))) or 1.0
    emax = float(np.max(eff))
    is_first = np.zeros(order.size, dtype=bool)
    for step in range(steps):
        if time.perf_counter() > deadline:
            break
        q = score_o - lam[pp_o] * eff_o
        best = np.maximum.reduceat(q, starts)
        hit = (q >= np.repeat(best, seg_len)) & (np.repeat(best, seg_len) > 0)
        # One pick per lead: the first pair attaining the maximum.
        cum = np.cumsum(hit)
        before = np.repeat(np.r_[0, cum[starts[1:] - 1]] if starts.size else cum[:0], seg_len)
        is_first[:] = hit & (cum - before == 1)
        load = np.bincount(pp_o[is_first], weights=eff_o[is_first], minlength=m)
        grad = (load - cap) / np.maximum(cap, 1.0)
        lam = np.maximum(0.0, lam + 0.3 * smax / np.sqrt(1.0 + step) * grad / emax)
    return lam


@dataclass(frozen=True, eq=False)
class Relaxation:
    """The LP relaxation as solved.

    Attributes
    ----------
    status : str
        "optimal" (no pair prices out), "stopped" (time ran out; ``bound`` is
        still proven, ``values`` feasible for the LP), "relaxed" (``values``
        break some count rows: :mod:`allocator.transport`), "infeasible",
        "unsolved" (no LP solution in time).
    values : ndarray
        Per model column, its LP value (0 for pairs never added).
    duals : ndarray or None
        Row duals of the last restricted LP (``∂objective/∂bound``).
    objective : float
        LP objective of ``values``.
    bound : float
        Smallest ``D(y)`` over the duals seen: a proven upper bound.
    q : ndarray
        Per pair, its reduced profit at the bound's duals.
    useful : ndarray of bool or None
        Pairs that entered the restricted LP (``None``: every pair did).
    solver, rounds, columns, seconds : diagnostics for the notes.
    """

    status: str
    values: np.ndarray
    duals: np.ndarray | None
    objective: float
    bound: float
    q: np.ndarray
    solver: str
    useful: np.ndarray | None = None
    rounds: int = 0
    columns: int = 0
    seconds: float = 0.0


def _initial_columns(problem: AllocationProblem, ev: BoundEvaluator, model: LinearModel,
                     deadline: float, start: np.ndarray | None,
                     ) -> tuple[np.ndarray, DualBound | None, np.ndarray | None]:
    """First columns, and the bound at the duals that chose them (if any)."""
    if problem.n_pairs <= FULL_LP_PAIRS:
        return np.arange(problem.n_pairs), None, None
    if start is None:
        duals = np.zeros(model.A.shape[0])
        if "effort" in model.rows:
            duals[model.rows["effort"]] = capacity_prices(problem, ev.leads, deadline=deadline)
    else:
        duals = start
    db = ev(duals)
    q = db.q
    best = ev.leads.max(q)
    smax = float(np.max(np.abs(problem.pair_score))) or 1.0
    keep = (q >= best[problem.pair_lead] - _MARGIN * smax) & (ev.leads.rank(-q) < _PER_LEAD)
    floor = np.asarray(problem.floor, dtype=np.int64)
    if np.any(floor > 0):
        eff = problem.pair_effort if problem.pair_effort is not None else np.ones(problem.n_pairs)
        order = np.lexsort((-problem.pair_score, eff, problem.pair_partner))
        part = problem.pair_partner[order]
        starts = np.searchsorted(part, np.arange(problem.n_partners))
        rank = np.empty(order.size, dtype=np.int64)
        rank[order] = np.arange(order.size) - starts[part]
        keep |= rank < floor[problem.pair_partner]
    return np.flatnonzero(keep), db, duals


class _Restricted:
    """The restricted LP held by HiGHS: chosen pairs, every non-pair column, elastic columns."""

    def __init__(self, hs: Any, model: LinearModel, cols: np.ndarray, penalty: float) -> None:
        self.hs = hs
        self.model = model
        a = model.A.tocsc()
        self.a = a
        n_rows = a.shape[0]
        soft = model.rows.get("soft_floor", np.zeros(0, dtype=np.int64))
        need = np.flatnonzero(model.row_lo > 0)
        self.need = np.setdiff1d(need, soft)
        nonpair = np.arange(model.n_pairs, a.shape[1])
        self.cols = np.r_[cols, nonpair].astype(np.int64)
        art = sp.csc_matrix((np.ones(self.need.size), (self.need, np.arange(self.need.size))),
                            shape=(n_rows, self.need.size))
        mat = sp.hstack([a[:, self.cols], art], format="csc")
        mat.sort_indices()
        self.n_base = self.cols.size
        self.penalty = penalty
        cost = np.r_[model.obj[self.cols], np.full(self.need.size, -penalty)]
        upper = np.r_[model.var_hi[self.cols], model.row_lo[self.need]]
        inf = 1e30
        lp = hs.HighsLp()
        lp.num_col_ = mat.shape[1]
        lp.num_row_ = n_rows
        lp.col_cost_ = cost
        lp.col_lower_ = np.zeros(mat.shape[1])
        lp.col_upper_ = upper
        lp.row_lower_ = np.where(np.isfinite(model.row_lo), model.row_lo, -inf)
        lp.row_upper_ = np.where(np.isfinite(model.row_hi), model.row_hi, inf)
        lp.a_matrix_.format_ = hs.MatrixFormat.kColwise
        lp.a_matrix_.start_ = mat.indptr.astype(np.int32)
        lp.a_matrix_.index_ = mat.indices.astype(np.int32)
        lp.a_matrix_.value_ = mat.data.astype(np.float64)
        lp.sense_ = hs.ObjSense.kMaximize
        cls = getattr(hs, "Highs", None) or hs._Highs
        self.h = cls()
        self.h.setOptionValue("output_flag", False)
        self.h.passModel(lp)
        self.extra: list[np.ndarray] = []

    def add(self, new: np.ndarray, primal: bool) -> None:
        sub = self.a[:, new].tocsc()
        sub.sort_indices()
        self.h.addCols(int(new.size), self.model.obj[new], np.zeros(new.size),
                       self.model.var_hi[new], int(sub.nnz), sub.indptr[:-1].astype(np.int32),
                       sub.indices.astype(np.int32), sub.data.astype(np.float64))
        self.extra.append(new.astype(np.int64))
        self.h.setOptionValue("simplex_strategy", 4 if primal else 1)

    def raise_penalty(self, factor: float) -> None:
        self.penalty *= factor
        idx = np.arange(self.n_base, self.n_base + self.need.size, dtype=np.int32)
        self.h.changeColsCost(int(idx.size), idx, np.full(idx.size, -self.penalty))

    def run(self, seconds: float) -> tuple[str, np.ndarray, np.ndarray, float, float]:
        """Solve; status, model-column values, row duals, objective, elastic total."""
        # HiGHS' clock runs across calls on one instance: the limit is on the total.
        self.h.setOptionValue("time_limit", float(self.h.getRunTime()) + max(seconds, 0.01))
        self.h.run()
        st = self.h.getModelStatus()
        name = str(st).rsplit(".", 1)[-1]
        if name != "kOptimal":
            return name, np.zeros(0), np.zeros(0), np.nan, np.nan
        sol = self.h.getSolution()
        col = np.asarray(sol.col_value)
        values = np.zeros(self.model.obj.shape[0])
        values[self.cols] = col[:self.n_base]
        start = self.n_base + self.need.size
        if self.extra:
            values[np.concatenate(self.extra)] = col[start:]
        elastic = float(col[self.n_base:start].sum())
        objective = float(self.model.obj @ values)
        return "optimal", values, np.asarray(sol.row_dual), objective, elastic


def _glop(model: LinearModel, ev: BoundEvaluator, deadline: float, started: float) -> Relaxation:
    lp = solve_lp(model, max(deadline - time.perf_counter(), 0.5))
    zero = np.zeros(model.n_pairs)
    if lp.status == "infeasible":
        return Relaxation("infeasible", lp.values, None, np.nan, np.inf, zero, "GLOP")
    if lp.status != "optimal" or lp.duals is None:
        return Relaxation("unsolved", lp.values, None, np.nan, np.inf, zero, "GLOP")
    db = ev(lp.duals)
    return Relaxation("optimal", lp.values, lp.duals, lp.objective, db.bound, db.q, "GLOP", None,
                      1, model.n_pairs, time.perf_counter() - started)


def solve_relaxation(problem: AllocationProblem, model: LinearModel, deadline: float,
                     start_duals: np.ndarray | None = None) -> Relaxation:
    """Solve the LP relaxation of ``model`` by column generation (module docstring).

    Parameters
    ----------
    problem : AllocationProblem
    model : LinearModel
        From :func:`allocator.linear.linear_model` (continuous).
    deadline : float
        ``time.perf_counter()`` value by which to stop; the bound stays proven.
    start_duals : ndarray, optional
        Row duals to choose the first columns with (instead of price adjustment),
        e.g. those of :mod:`allocator.transport`.
    """
    started = time.perf_counter()
    ev = BoundEvaluator(model, problem.pair_lead, problem.n_leads)
    hs = highs_module()
    if hs is None:
        return _glop(model, ev, deadline, started)
    smax = float(np.max(np.abs(problem.pair_score))) if problem.n_pairs else 1.0
    cols, priced, price_duals = _initial_columns(problem, ev, model,
                                                 started + 0.1 * (deadline - started),
                                                 start_duals)
    lp = _Restricted(hs, model, cols, penalty=10.0 * max(smax, 1e-12) + 2.0 * model.penalty)
    inside = np.zeros(problem.n_pairs, dtype=bool)
    inside[cols] = True
    # D at zero duals (each lead at its best score) bounds the round even without an LP.
    best: DualBound = ev(np.zeros(model.A.shape[0]))
    best_duals: np.ndarray | None = None
    if priced is not None and priced.bound < best.bound:
        best, best_duals = priced, price_duals
    last: tuple[np.ndarray, np.ndarray, float] | None = None
    status, rounds, escalations, last_elastic = "unsolved", 0, 0, 0.0
    while True:
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            status = "stopped" if last is not None else "unsolved"
            break
        st, values, duals, objective, elastic = lp.run(remaining)
        rounds += 1
        if st != "optimal":
            status = "stopped" if last is not None else ("infeasible" if st == "kInfeasible"
                                                         else "unsolved")
            break
        last, last_elastic = (values, duals, objective), elastic
        db = ev(duals)
        if db.bound < best.bound:
            best, best_duals = db, duals
        lead_dual = np.maximum(duals[:problem.n_leads], -np.inf if ev.assign_all else 0.0)
        red = db.q - lead_dual[problem.pair_lead]
        red[inside] = -np.inf
        positive = red > _TOL * max(smax, 1e-12)
        if positive.any():
            new = np.flatnonzero(positive & (ev.leads.rank(-red) < 1))
        else:
            new = np.zeros(0, dtype=np.int64)
        if elastic > _ART and not new.size:
            if escalations >= 3:
                status = "infeasible"
                break
            escalations += 1
            lp.raise_penalty(100.0)
            continue
        if not new.size or (elastic <= _ART and best.bound <= objective + _TOL * abs(objective)):
            status = "optimal" if elastic <= _ART else "infeasible"
            break
        inside[new] = True
        lp.add(new, primal=new.size < _PRIMAL_SHARE * max(problem.n_leads, 1))
    seconds = time.perf_counter() - started
    useful = inside if problem.n_pairs > FULL_LP_PAIRS else None
    if last is None:
        return Relaxation(status, np.zeros(model.obj.shape[0]), None, np.nan, best.bound,
                          best.q, "HiGHS", useful, rounds, int(inside.sum()), seconds)
    values, duals, objective = last
    if status == "stopped" and last_elastic > _ART:
        status = "unsolved"
    return Relaxation(status, values, duals if status == "optimal" else best_duals, objective,
                      best.bound, best.q, "HiGHS", useful, rounds, int(inside.sum()), seconds)
