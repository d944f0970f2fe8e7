"""The fairness-versus-yield frontier: what each step of fairness costs.

Fairness strength ``alpha`` in [0, 1] sets a hard floor for every partner of
``alpha`` times its *entitlement* (its equal share of its eligible leads, see
:mod:`allocator.fairness`), rounded down and limited by what it can take
(capacity and the per-partner maximum).  Every other rule of the round
(caps, tier shares, quotas) is kept.  Each point is solved to optimality and
compared with the optimum without floors (``alpha = 0``): the objective lost
is the *price of fairness* (Bertsimas, Farias & Trichakis 2011).

Rounds whose rules all live in the network are solved point by point with
the min-cost flow on one shared integer cost scale, without the rule prices a
frontier point does not need; others (quotas, effort) with
:func:`allocator.solve.solve` under the time limit, so their points may be
"feasible" with a gap rather than proven optimal.  Every point's assignment is
checked by :func:`allocator.verify.verify`.

What rises with ``alpha`` by construction is the *guarantee*: each floor, and
so ``floor_total``, never falls.  The realised metrics (worst-off share, Gini)
usually improve too but need not at every step: rounding a floor down can
leave a partner with a small entitlement less than it happened to get before.

The frontier is data with a status per point; points that are infeasible or
hit the time limit are kept, never skipped (plotting is the shell's job:
``service.report.plots``).  Besides the sweep, the round as the policy states
it (its own floors) is solved once and marked as the current policy.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from allocator.errors import InfeasiblePolicyError
from allocator.fairness import FairnessMetrics, entitlement, fairness_metrics, lead_capacity
from allocator.problem import Allocation, AllocationProblem

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_ALPHAS = tuple(np.round(np.linspace(0.0, 1.0, 11), 10).tolist())
CURRENT_LABEL = "current policy"
_EPS = 1e-9


@dataclass(frozen=True)
class FrontierPoint:
    """One point of the frontier.

    Attributes
    ----------
    alpha : float
        Fairness strength; ``nan`` for the current-policy point when it is not
        one of the swept strengths.
    label : str
        ``"alpha=0.3"`` or ``"current policy"``.
    is_current : bool
        The point of the policy in force.
    status : str
        The solver's status (``optimal``, ``feasible``, ``time_limit``,
        ``infeasible``).
    objective, bound, gap : float
        ``nan`` when no allocation was found.
    yield_lost : float
        Objective of the optimum without floors minus this point's objective
        (the price of fairness, in expected conversions or value).
    yield_lost_pct : float
        ``yield_lost`` as a percentage of the optimum without floors.
    floor_total : int
        Leads the floors reserve in all.
    floor_partners : int
        Partners with a floor of at least one lead.
    verified : bool or None
        Independent check of the assignment (``None``: nothing to check).
    violations : tuple of str
    fairness : FairnessMetrics or None
    solve_s : float
    message : str
        Why a point has no allocation, in words.
    lead_partner : ndarray or None
        The assignment (per lead, partner index or -1).
    """

    alpha: float
    label: str
    is_current: bool
    status: str
    objective: float
    bound: float
    gap: float
    yield_lost: float
    yield_lost_pct: float
    floor_total: int
    floor_partners: int
    verified: bool | None
    violations: tuple[str, ...]
    fairness: FairnessMetrics | None
    solve_s: float
    message: str = ""
    lead_partner: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def has_allocation(self) -> bool:
        return self.lead_partner is not None

    def to_row(self) -> dict[str, Any]:
        """One flat row: the point, its fairness metrics and its share per tier."""
        row: dict[str, Any] = {
            "alpha": self.alpha,
            "label": self.label,
            "is_current": self.is_current,
            "status": self.status,
            "objective": self.objective,
            "bound": self.bound,
            "gap": self.gap,
            "yield_lost": self.yield_lost,
            "yield_lost_pct": self.yield_lost_pct,
            "floor_total": self.floor_total,
            "floor_partners": self.floor_partners,
            "verified": self.verified,
            "violations": "; ".join(self.violations),
            "solve_s": self.solve_s,
            "message": self.message,
        }
        f = self.fairness
        for key in (
            "expected_total",
            "leads_assigned",
            "gini_leads",
            "jain_leads",
            "gini_expected",
            "jain_expected",
            "worst_off_share",
            "partners_below_entitlement",
            "partners_without_leads",
            "high_intent_top_share",
        ):
            row[key] = getattr(f, key) if f is not None else math.nan
        if f is not None:
            for t in f.tiers:
                row[f"tier_share[{t.tier}]"] = t.share
                row[f"tier_expected[{t.tier}]"] = t.expected
        return row


@dataclass(frozen=True)
class Frontier:
    """The swept points (by increasing ``alpha``) and the current policy's point."""

    points: tuple[FrontierPoint, ...]
    reference_objective: float
    reference_status: str
    entitlement: np.ndarray = field(repr=False)
    time_s: float = 0.0
    solver: str = ""

    @property
    def current(self) -> FrontierPoint | None:
        """The point marked as the current policy, if any."""
        return next((p for p in self.points if p.is_current), None)

    def to_frame(self) -> pd.DataFrame:
        """One row per point (see :meth:`FrontierPoint.to_row`), sweep order kept."""
        import pandas as pd

        return pd.DataFrame([p.to_row() for p in self.points])


def alpha_floor(problem: AllocationProblem, alpha: float) -> np.ndarray:
    """Per partner, the floor of fairness strength ``alpha``.

    ``floor(alpha × entitlement)``, limited by capacity (in leads; with effort
    weights, capacity over the partner's smallest effort) and by the
    per-partner maximum.

    Parameters
    ----------
    problem : AllocationProblem
    alpha : float
        In [0, 1].

    Returns
    -------
    ndarray of int64, one per partner

    Raises
    ------
    ValueError
        When ``alpha`` is outside [0, 1].
    """
    if not (0.0 <= alpha <= 1.0):
        raise ValueError(f"The fairness strength 'alpha' must be between 0 and 1. Got {alpha!r}.")
    want = np.floor(alpha * entitlement(problem) + _EPS).astype(np.int64)
    return np.minimum(want, lead_capacity(problem))


SolveFn = Callable[[AllocationProblem, float], Allocation]
VerifyFn = Callable[[AllocationProblem, np.ndarray], Any]


def network_only(problem: AllocationProblem) -> bool:
    """Whether every rule of ``problem`` lives in the flow network (no quotas, no effort)."""
    return problem.pair_effort is None and not problem.quotas


class _PointSolver:
    """Solves one point of the sweep and checks it.

    A round whose rules all live in the network (caps, hard floors, tier
    shares, the per-partner maximum) is solved with the min-cost flow directly,
    on one integer cost scale shared by every point, skipping what a frontier
    point does not need (rule prices, the pre-solve diagnosis, which runs only
    when a point turns out infeasible).  Any other round, or an explicit
    ``solve_fn``, goes through :func:`allocator.solve.solve`.
    """

    def __init__(self, problem: AllocationProblem, time_limit_s: float,
                 solve_fn: SolveFn | None, verify_fn: VerifyFn | None,
                 expected: np.ndarray | None) -> None:
        from allocator.verify import verify

        self.time_limit_s = time_limit_s
        self.verify_fn = verify_fn or verify
        self.expected = expected
        self.solve_fn = solve_fn
        self.direct = solve_fn is None and network_only(problem)
        if self.direct:
            from allocator.flow import choose_scale, network_spec, rounding_slack

            hard = replace(problem, floor_mode="hard")
            self.scale = choose_scale(hard, network_spec(hard))
            self.slack = rounding_slack(hard, self.scale)
        elif solve_fn is None:
            from allocator.solve import solve

            self.solve_fn = solve
        self.method = ("min-cost flow per point, shared cost scale" if self.direct
                       else "allocator.solve per point")

    def _network(self, problem: AllocationProblem) -> Allocation:
        from allocator.diagnose import diagnose
        from allocator.flow import network_spec, solve_network

        sol = solve_network(problem, network_spec(problem), scale=self.scale)
        if sol.status != "optimal":
            raise diagnose(problem, self.time_limit_s)
        lead_pair = sol.lead_pair.astype(np.int64)
        lead_partner = np.where(lead_pair >= 0,
                                problem.pair_partner[np.maximum(lead_pair, 0)], -1)
        bound = sol.value + self.slack
        gap = max(0.0, (bound - sol.value) / max(abs(bound), 1e-9))
        return Allocation(status="optimal", lead_partner=lead_partner.astype(np.int64),
                          lead_pair=lead_pair, objective=sol.value, bound=bound, gap=gap,
                          method="min_cost_flow",
                          partner_price=np.zeros(problem.n_partners))

    def __call__(self, problem: AllocationProblem) -> dict[str, Any]:
        start = time.perf_counter()
        try:
            if self.direct and problem.floor_mode == "hard":
                alloc = self._network(problem)
            else:
                if self.solve_fn is None:
                    from allocator.solve import solve

                    self.solve_fn = solve
                alloc = self.solve_fn(problem, self.time_limit_s)
        except InfeasiblePolicyError as exc:
            return {"status": "infeasible", "message": "; ".join(exc.conflicts) or str(exc),
                    "solve_s": time.perf_counter() - start}
        elapsed = time.perf_counter() - start
        if alloc.status == "infeasible" or alloc.lead_partner is None:
            return {"status": alloc.status, "message": "; ".join(alloc.notes),
                    "solve_s": elapsed}
        check = self.verify_fn(problem, alloc.lead_partner)
        return {
            "status": alloc.status,
            "objective": float(alloc.objective),
            "bound": float(alloc.bound),
            "gap": float(alloc.gap),
            "verified": bool(check.ok),
            "violations": tuple(check.violations),
            "fairness": fairness_metrics(problem, alloc.lead_partner, self.expected),
            "lead_partner": alloc.lead_partner,
            "message": "; ".join(alloc.notes),
            "solve_s": elapsed,
        }


def _point(
    alpha: float,
    label: str,
    is_current: bool,
    floor: np.ndarray,
    solved: dict[str, Any],
    reference: float,
) -> FrontierPoint:
    objective = solved.get("objective", math.nan)
    lost = reference - objective if math.isfinite(reference) else math.nan
    pct = math.nan
    if math.isfinite(lost) and abs(reference) > _EPS:
        pct = 100.0 * lost / abs(reference)
    return FrontierPoint(
        alpha=alpha,
        label=label,
        is_current=is_current,
        status=solved["status"],
        objective=objective,
        bound=solved.get("bound", math.nan),
        gap=solved.get("gap", math.nan),
        yield_lost=lost,
        yield_lost_pct=pct,
        floor_total=int(floor.sum()),
        floor_partners=int((floor > 0).sum()),
        verified=solved.get("verified"),
        violations=solved.get("violations", ()),
        fairness=solved.get("fairness"),
        solve_s=float(solved["solve_s"]),
        message=solved.get("message", ""),
        lead_partner=solved.get("lead_partner"),
    )


def _share_along_the_sweep(hard: AllocationProblem, grid: list[float],
                          floors: dict[float, np.ndarray], solved: dict[float, dict[str, Any]],
                          point: _PointSolver) -> None:
    """Use what the points prove about each other (only matters when not all are optimal).

    Floors only grow with alpha and every other rule stays, so an assignment
    found at a stronger alpha is feasible at every weaker one, and a bound
    proven at a weaker alpha holds at every stronger one.  A point the solver
    left short of optimal in its time limit takes the better assignment of a
    stronger point, and the tighter bound of a weaker one.
    """
    best: dict[str, Any] | None = None
    best_alpha = math.nan
    for a in reversed(grid):
        s = solved[a]
        if "objective" in s and (best is None or s["objective"] >= best["objective"]):
            best, best_alpha = s, a
        elif best is not None and s["status"] != "optimal":
            check = point.verify_fn(replace(hard, floor=floors[a]), best["lead_partner"])
            if check.ok:
                note = (f"assignment of alpha={best_alpha:g}: better than the solver found "
                        "here within the time limit")
                solved[a] = {**best, "status": "feasible", "verified": True, "violations": (),
                             "message": note, "solve_s": s["solve_s"],
                             "bound": s.get("bound", math.inf)}
    bound = math.inf
    for a in grid:
        s = solved[a]
        bound = min(bound, s.get("bound", math.inf))
        if "objective" in s and bound < s["bound"]:
            s["bound"] = bound
            s["gap"] = max(0.0, (bound - s["objective"]) / max(abs(bound), 1e-9))


def compute_frontier(
    problem: AllocationProblem,
    alphas: Sequence[float] | np.ndarray = DEFAULT_ALPHAS,
    current_alpha: float | None = None,
    time_limit_s: float = 30.0,
    expected: np.ndarray | None = None,
    include_policy: bool = True,
    solve_fn: SolveFn | None = None,
    verify_fn: VerifyFn | None = None,
    progress: Callable[[str], None] | None = None,
) -> Frontier:
    """Sweep fairness strength and record what each step costs.

    Parameters
    ----------
    problem : AllocationProblem
        The round as the policy states it; its own floors are replaced by the
        alpha floors at each point (in hard mode), every other rule is kept.
    alphas : sequence of float
        Fairness strengths in [0, 1]; sorted, duplicates dropped.
    current_alpha : float, optional
        The strength in force: that point is marked as the current policy (and
        added to the sweep when missing).  When ``None`` and
        ``include_policy``, the round with its own floors is solved once more
        and marked instead.
    time_limit_s : float
        Per point.
    expected : ndarray of float, optional
        Per pair, expected conversions for the fairness metrics (defaults to
        ``problem.pair_score``).
    include_policy : bool
        Add the current-policy point (see ``current_alpha``).
    solve_fn : callable, optional
        ``solve(problem, time_limit_s) -> Allocation`` for every point.  By
        default a round whose rules all live in the network is solved with the
        min-cost flow directly (exact; one cost scale for all points; no rule
        prices), any other with :func:`allocator.solve.solve`.
    verify_fn : callable, optional
        The checker, default :func:`allocator.verify.verify`.
    progress : callable, optional
        Called with a line of text after each point.

    Returns
    -------
    Frontier
        Points by increasing alpha, the current-policy point last when it is
        not an alpha point.  The reference (``alpha = 0``) objective is the
        optimum without floors.

    Raises
    ------
    ValueError
        When an alpha is outside [0, 1] or no alpha is given.
    """
    started = time.perf_counter()
    grid = sorted({round(float(a), 10) for a in alphas})
    if current_alpha is not None:
        grid = sorted({*grid, round(float(current_alpha), 10)})
    if not grid:
        raise ValueError("'alphas' must hold at least one fairness strength. Got none.")
    floors = {a: alpha_floor(problem, a) for a in grid}
    hard = replace(problem, floor_mode="hard")
    point = _PointSolver(hard, time_limit_s, solve_fn, verify_fn, expected)

    def say(label: str, s: dict[str, Any]) -> None:
        if progress is not None:
            progress(f"{label}: {s['status']}, objective {s.get('objective', math.nan):.6g}, "
                     f"{s['solve_s']:.2f} s")

    solved: dict[float, dict[str, Any]] = {}
    for a in grid:
        solved[a] = point(replace(hard, floor=floors[a]))
        say(f"alpha={a:g}", solved[a])
    _share_along_the_sweep(hard, grid, floors, solved, point)
    if 0.0 in solved:
        ref = solved[0.0]
    else:
        ref = point(replace(hard, floor=np.zeros(problem.n_partners, dtype=np.int64)))
        say("no floors (reference)", ref)
    reference = ref.get("objective", math.nan)

    points = [
        _point(a, f"alpha={a:g}", current_alpha is not None and a == round(current_alpha, 10),
               floors[a], solved[a], reference)
        for a in grid
    ]
    if current_alpha is None and include_policy:
        policy_solved = point(problem)
        say(CURRENT_LABEL, policy_solved)
        points.append(
            _point(math.nan, CURRENT_LABEL, True, problem.floor, policy_solved, reference)
        )
    return Frontier(
        points=tuple(points),
        reference_objective=reference,
        reference_status=ref["status"],
        entitlement=entitlement(problem),
        time_s=time.perf_counter() - started,
        solver=point.method,
    )
