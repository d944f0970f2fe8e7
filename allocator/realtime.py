"""Real-time routing of single leads between rounds (primal-dual online allocation).

A lead that arrives alone goes to ``argmax_j (score_ij − λ_j · units)`` over its
eligible partners that still have room, where ``λ_j`` is the price of one unit
of partner ``j``'s capacity (negative when a floor is still owed).  A lead whose
best adjusted value is not positive is held for the next round: every partner's
remaining capacity is worth more to the leads expected later in the day.

Prices
------
*Start*: the last round's capacity and floor duals (``Allocation.partner_price``).
Devanur & Hayes (2009, "The AdWords problem: online keyword matching with
budgeted bidders under random permutations", EC '09) show that prices learned
on a sample of the arrivals and then held fixed are within ``1 − ε`` of the
offline optimum when arrivals are in random order; yesterday's round is that
sample.

*Refresh*: the adaptive re-solving rule of Li & Ye (2022, "Online linear
programming: dual convergence, new algorithms, and regret bounds", Operations
Research 70(5)): re-solve the dual LP on the arrivals seen so far with each
partner's *remaining* capacity scaled to the sample — ``remaining_j × s / m``
for a sample of ``s`` leads and ``m`` arrivals still expected — so prices rise
when consumption runs ahead of plan and fall when it lags.  Two additions:

- the sample pools today's arrivals with a prior sample of past arrivals when
  one is given (:class:`PriorSample`, by default the last round's eligible
  pairs), so early re-solves are not made on a handful of leads; the sample
  holds at most ``max_sample_leads``, today's first, so the prior fades out as
  the day fills it (and each LP stays a fraction of a second);
- when callers say how much of the routing window has elapsed (``elapsed`` in
  [0, 1]), ``m`` comes from the arrival rate: arrivals are a Poisson process
  whose daily volume has a gamma prior centred on the forecast ``n`` and worth
  ``forecast_weight`` of a day of observations, so the posterior mean volume is
  ``(n·w + t) / (w + elapsed)`` after ``t`` arrivals and
  ``m = volume × (1 − elapsed)``; without it, ``m = n − t``.

Re-solves happen at geometric checkpoints ``t = ε·n, g·ε·n, g²·ε·n, ...``
(Agrawal, Wang & Ye 2014, "A dynamic near-optimal algorithm for online linear
programming", Operations Research 62(4), use ``g = 2``), so a day costs
``log_g(1/ε)`` LP solves and per-decision work stays ``O(eligible partners)``.
The default ``g = 1.25`` (about 14 re-solves a day at ``ε = 0.05``) sits
between their doubling and Li & Ye's re-solve-every-arrival: on the bench
replay it gains about a point of yield over doubling while re-solves stay under
1% of decisions.  A service should run them off the request path
(``auto_reprice=False``, then :meth:`RealtimeRouter.reprice` from a background
job when :attr:`RealtimeRouter.reprice_due`).  The LP is solved with HiGHS
(``scipy.optimize.linprog``); its row duals are the prices
(``price_source = "LP dual (HiGHS)"``).

The ``greedy`` rule (argmax score among partners with room, prices zero, never
held) is the baseline the bench compares against.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

from allocator.problem import Allocation, AllocationProblem

Rule = Literal["primal_dual", "greedy"]
PRICE_SOURCE = "LP dual (HiGHS)"


@dataclass(frozen=True)
class RouteDecision:
    """Where one lead went (or why it was held), with the price that decided it.

    ``partner`` and ``runner_up`` are partner indices (``None`` when absent);
    ``adjusted_value = score − price × units``.  ``reason`` says it in words, e.g.
    ``"routed to P3: score 0.21 − price 0.05 = 0.16 beats P7: 0.25 − 0.12 = 0.13"``.
    """

    partner: int | None
    partner_id: str | None
    score: float | None
    price: float | None
    adjusted_value: float | None
    runner_up: int | None
    runner_up_id: str | None
    runner_up_score: float | None
    runner_up_price: float | None
    runner_up_adjusted_value: float | None
    rule: Rule
    reason: str
    n_eligible: int
    n_with_room: int

    @property
    def routed(self) -> bool:
        return self.partner is not None


@dataclass(frozen=True)
class DualPrices:
    """Prices from one LP solve: ``price`` per partner, the LP value, and how long it took."""

    price: np.ndarray
    objective: float
    n_leads: int
    n_pairs: int
    solve_s: float
    price_source: str = PRICE_SOURCE


@dataclass(frozen=True, eq=False)
class PriorSample:
    """Arrivals of a past day (e.g. the last round's eligible pairs) standing in for today's.

    ``pair_lead`` indexes leads ``0..n-1``; ``pair_partner`` the router's partners.
    """

    pair_lead: np.ndarray
    pair_partner: np.ndarray
    pair_score: np.ndarray
    lead_units: np.ndarray | None = None

    @property
    def n_leads(self) -> int:
        """Leads with at least one pair (the ones that count as arrivals)."""
        return int(np.unique(self.pair_lead).shape[0])


def _num(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.4g}"


def _term(pid: str, score: float, price: float, adj: float, greedy: bool) -> str:
    if greedy:
        return f"{pid}: {_num(score)}"
    return f"{pid}: {_num(score)} − {_num(price)} = {_num(adj)}"


def choose(
    partners: np.ndarray,
    scores: np.ndarray,
    price: np.ndarray,
    has_room: np.ndarray,
    partner_ids: Sequence[str],
    *,
    units: float = 1.0,
    rule: Rule = "primal_dual",
    hold_below: float | None = 0.0,
) -> RouteDecision:
    """Pick the partner for one lead: best ``score − price × units`` among partners with room.

    Pure: nothing is committed.

    Parameters
    ----------
    partners : ndarray of int
        Indices of the lead's eligible partners.
    scores : ndarray of float
        Score of each of those partners for the lead.
    price : ndarray of float
        Per partner (all partners): price of one unit of capacity.
    has_room : ndarray of bool
        Per partner of ``partners``: whether it can still take ``units``.
    partner_ids : sequence of str
        Names used in the reason.
    units : float
        Capacity units the lead costs.
    rule : {"primal_dual", "greedy"}
        ``"greedy"`` ignores prices and never holds a lead.
    hold_below : float or None
        Hold the lead when the best adjusted value is at or below this; ``None`` never holds.

    Returns
    -------
    RouteDecision
    """
    greedy = rule == "greedy"
    n_eligible = int(partners.shape[0])
    cand = partners[has_room]
    n_room = int(cand.shape[0])
    if n_room == 0:
        if n_eligible == 0:
            why = "held for the next round: the lead has no eligible partner"
        else:
            full = ", ".join(partner_ids[int(j)] for j in partners[:5])
            more = f" and {n_eligible - 5} more" if n_eligible > 5 else ""
            why = (f"held for the next round: none of its {n_eligible} eligible partners has "
                   f"room left ({full}{more})")
        return RouteDecision(None, None, None, None, None, None, None, None, None, None,
                             rule, why, n_eligible, 0)
    s = scores[has_room]
    p = np.zeros(n_room) if greedy else price[cand]
    adj = s - p * units
    # ties in adjusted value (common right after a re-solve, up to the LP's tolerance)
    # go to the higher score
    order = (np.lexsort((-s, -np.round(adj, 9)))[:2] if n_room > 1
             else np.zeros(1, dtype=np.int64))
    b = int(order[0])
    best = int(cand[b])
    bs, bp, ba = float(s[b]), float(p[b]), float(adj[b])
    bid = partner_ids[best]
    if not greedy and hold_below is not None and ba <= hold_below:
        why = (f"held for the next round: best is {_term(bid, bs, bp, ba, False)}, not above "
               f"{_num(hold_below)}; the capacity is worth more to leads expected later today")
        return RouteDecision(None, None, bs, bp, ba, best, bid, bs, bp, ba, rule, why,
                             n_eligible, n_room)
    head = (f"routed to {bid}: score {_num(bs)}" if greedy else
            f"routed to {bid}: score {_num(bs)} − price {_num(bp)} = {_num(ba)}")
    if n_room == 1:
        tail = ("; the only eligible partner with room" if n_eligible == 1 else
                f"; the only one of its {n_eligible} eligible partners with room")
        why = head + tail + (" (greedy)" if greedy else "")
        return RouteDecision(best, bid, bs, bp, ba, None, None, None, None, None, rule, why,
                             n_eligible, n_room)
    r = int(order[1])
    ru = int(cand[r])
    rs, rp, ra = float(s[r]), float(p[r]), float(adj[r])
    why = f"{head} beats {_term(partner_ids[ru], rs, rp, ra, greedy)}"
    if greedy:
        why += " (greedy: highest score among partners with room)"
    return RouteDecision(best, bid, bs, bp, ba, ru, partner_ids[ru], rs, rp, ra, rule, why,
                         n_eligible, n_room)


def dual_prices(
    pair_lead: np.ndarray,
    pair_partner: np.ndarray,
    pair_score: np.ndarray,
    capacity: np.ndarray,
    *,
    floor: np.ndarray | None = None,
    lead_units: np.ndarray | None = None,
    floor_penalty: float | None = None,
) -> DualPrices:
    """Capacity and floor prices of the LP relaxation of one round.

    ``max Σ s·x`` s.t. each lead placed at most once, ``Σ units·x ≤ capacity_j``,
    ``Σ units·x ≥ floor_j`` (soft: a missed unit costs ``floor_penalty``).

    Parameters
    ----------
    pair_lead, pair_partner : ndarray of int
        Eligible pairs (lead indices ``0..n-1``, partner indices ``0..m-1``).
    pair_score : ndarray of float
    capacity : ndarray of float
        Per partner, capacity units (``m`` entries).
    floor : ndarray of float, optional
        Per partner, units still owed.
    lead_units : ndarray of float, optional
        Per lead, capacity units it costs (default 1).
    floor_penalty : float, optional
        Default ``1 + 2 × max |score|``, above any score so floors are met when they can be.

    Returns
    -------
    DualPrices
        ``price[j] = capacity dual − floor dual``: the value of one more unit of
        ``j``'s capacity, negative when a floor still pulls leads towards ``j``.
    """
    t0 = time.perf_counter()
    m = int(capacity.shape[0])
    n_pairs = int(pair_lead.shape[0])
    if n_pairs == 0:
        return DualPrices(np.zeros(m), 0.0, 0, 0, time.perf_counter() - t0)
    leads, lead_row = np.unique(pair_lead, return_inverse=True)
    n = int(leads.shape[0])
    u = np.ones(n) if lead_units is None else np.asarray(lead_units, dtype=float)[leads]
    pu = u[lead_row]
    has_floor = np.zeros(m, dtype=bool) if floor is None else np.asarray(floor) > 0
    f_idx = np.flatnonzero(has_floor)
    k = int(f_idx.shape[0])
    f_row = np.full(m, -1, dtype=np.int64)
    f_row[f_idx] = np.arange(k)
    pf = f_row[pair_partner]
    on_f = pf >= 0
    cols = np.arange(n_pairs)
    rows = np.concatenate([lead_row, n + pair_partner, n + m + pf[on_f], n + m + np.arange(k)])
    vals = np.concatenate([np.ones(n_pairs), pu, -pu[on_f], -np.ones(k)])
    cidx = np.concatenate([cols, cols, cols[on_f], n_pairs + np.arange(k)])
    a_ub = sp.csr_matrix((vals, (rows, cidx)), shape=(n + m + k, n_pairs + k))
    fl = np.zeros(0) if floor is None else np.asarray(floor, dtype=float)[f_idx]
    b_ub = np.concatenate([np.ones(n), np.asarray(capacity, dtype=float), -fl])
    pen = floor_penalty if floor_penalty is not None else 1.0 + 2.0 * float(
        np.max(np.abs(pair_score)))
    c = np.concatenate([-np.asarray(pair_score, dtype=float), np.full(k, pen)])
    bounds = np.column_stack([np.zeros(n_pairs + k), np.concatenate([np.ones(n_pairs), fl])])
    res = linprog(c, A_ub=a_ub, b_ub=b_ub, bounds=bounds, method="highs")
    if res.status != 0:  # pragma: no cover - the LP is always feasible and bounded
        raise RuntimeError(f"dual price LP failed: {res.message}")
    marg = np.asarray(res.ineqlin.marginals)
    price = -marg[n:n + m]
    price[f_idx] += marg[n + m:]
    price[np.abs(price) < 1e-12] = 0.0
    return DualPrices(price, float(-res.fun), n, n_pairs, time.perf_counter() - t0)


@dataclass(frozen=True, eq=False)
class _RepriceState:
    """A re-solve's inputs, copied from the router so the LP runs without its lock."""

    sample: list[tuple[np.ndarray, np.ndarray, float]]
    expected_remaining: float
    remaining: np.ndarray
    floor_owed: np.ndarray
    price: np.ndarray


class RealtimeRouter:
    """Routes leads one at a time between rounds; holds prices, room and floors owed.

    Parameters
    ----------
    partner_ids : sequence of str
    capacity : array-like of float
        Per partner, capacity units left for today (≥ 0).
    price : array-like of float, optional
        Starting prices (the last round's ``Allocation.partner_price``); zeros by default.
    floor_owed : array-like of float, optional
        Per partner, units of floor still owed today.
    expected_arrivals : int, optional
        Forecast of today's arrivals ``n``; needed to re-price (``None`` keeps prices fixed).
    rule : {"primal_dual", "greedy"}
    first_reprice_fraction : float
        ``ε``: first re-solve after ``ε·n`` arrivals.
    reprice_growth : float
        ``g``: each later re-solve after ``g`` times as many arrivals as the last.
    prior : PriorSample, optional
        A past day's arrivals, pooled with today's in every re-solve (see the module notes).
    auto_reprice : bool
        Re-solve inside :meth:`route` at checkpoints; a service may set ``False`` and
        call :meth:`reprice` from a background job when :attr:`reprice_due`.
    hold_when_negative : bool
        Hold a lead whose best adjusted value is not positive (primal-dual only).
    max_sample_leads : int
        Re-solve on at most this many leads: today's most recent arrivals, topped
        up with an evenly spread subset of the prior sample (which so fades out as
        today's arrivals fill the sample).
    forecast_weight : float
        With ``elapsed`` known, the forecast counts as this fraction of a day of arrivals.
    """

    def __init__(
        self,
        partner_ids: Iterable[str],
        capacity: Iterable[float],
        price: Iterable[float] | None = None,
        floor_owed: Iterable[float] | None = None,
        *,
        expected_arrivals: int | None = None,
        rule: Rule = "primal_dual",
        first_reprice_fraction: float = 0.05,
        auto_reprice: bool = True,
        hold_when_negative: bool = True,
        max_sample_leads: int = 3000,
        forecast_weight: float = 0.1,
        reprice_growth: float = 1.25,
        prior: PriorSample | None = None,
    ) -> None:
        self.partner_ids = tuple(str(p) for p in partner_ids)
        m = len(self.partner_ids)
        self._index = {p: j for j, p in enumerate(self.partner_ids)}
        self.remaining = self._vector("capacity", capacity, m, nonneg=True)
        self.price = (np.zeros(m) if price is None or rule == "greedy"
                      else self._vector("price", price, m, nonneg=False))
        self.floor = (np.zeros(m) if floor_owed is None
                      else self._vector("floor_owed", floor_owed, m, nonneg=True))
        self.received = np.zeros(m)
        if rule not in ("primal_dual", "greedy"):
            raise ValueError(f"The 'rule' must be 'primal_dual' or 'greedy'. Got {rule!r} instead.")
        if not 0.0 < first_reprice_fraction <= 1.0:
            raise ValueError("The 'first_reprice_fraction' must be in (0, 1]. "
                             f"Got {first_reprice_fraction!r} instead.")
        if expected_arrivals is not None and expected_arrivals < 1:
            raise ValueError("The 'expected_arrivals' must be a positive integer. "
                             f"Got {expected_arrivals!r} instead.")
        self.rule: Rule = rule
        self.expected_arrivals = expected_arrivals
        self.auto_reprice = auto_reprice
        self.hold_below: float | None = 0.0 if hold_when_negative else None
        self.max_sample_leads = max_sample_leads
        self.forecast_weight = forecast_weight
        self.reprice_growth = reprice_growth
        if prior is not None and prior.pair_partner.size and (
                prior.pair_partner.min() < 0 or prior.pair_partner.max() >= m):
            raise ValueError("The prior sample names partner indices outside 0.."
                             f"{m - 1}.")
        self.prior = prior
        self.elapsed: float | None = None
        self._first = (None if expected_arrivals is None or rule == "greedy"
                       else max(1, math.ceil(first_reprice_fraction * expected_arrivals)))
        self._next_checkpoint = self._first
        self.n_seen = 0
        self.n_routed = 0
        self.reprices: list[DualPrices] = []
        self._sample: list[tuple[np.ndarray, np.ndarray, float]] = []
        self._lock = threading.Lock()
        self._reprice_lock = threading.Lock()  # one re-solve at a time, decisions go on

    @staticmethod
    def _vector(name: str, values: Iterable[float], m: int, *, nonneg: bool) -> np.ndarray:
        arr = np.array(list(values) if not isinstance(values, np.ndarray) else values,
                       dtype=float)
        if arr.shape != (m,):
            raise ValueError(f"The '{name}' must have one value per partner ({m}). "
                             f"Got shape {arr.shape} instead.")
        bad = ~np.isfinite(arr) | ((arr < 0) if nonneg else False)
        if bad.any():
            j = int(np.flatnonzero(bad)[0])
            rule = "a finite number ≥ 0" if nonneg else "a finite number"
            raise ValueError(f"The '{name}' of partner index {j} must be {rule}. "
                             f"Got {float(arr[j])!r} instead.")
        return arr

    @classmethod
    def from_allocation(
        cls,
        problem: AllocationProblem,
        allocation: Allocation,
        *,
        capacity: Iterable[float] | None = None,
        floor_owed: Iterable[float] | None = None,
        expected_arrivals: int | None = None,
        round_as_prior: bool = True,
        **kwargs: object,
    ) -> RealtimeRouter:
        """A router priced by the last round: ``allocation.partner_price`` as starting prices.

        ``capacity`` defaults to the round's ``capacity_units`` (a fresh day of the
        same size).  With ``round_as_prior`` the round's eligible pairs are the
        :class:`PriorSample` of re-solves, and ``expected_arrivals`` defaults to
        the round's number of leads with a pair.
        """
        cap = problem.capacity_units if capacity is None else capacity
        prior = None
        if round_as_prior and problem.n_pairs:
            units = None
            if problem.pair_effort is not None:
                count = np.bincount(problem.pair_lead, minlength=problem.n_leads)
                total = np.bincount(problem.pair_lead, weights=problem.pair_effort,
                                    minlength=problem.n_leads)
                units = np.where(count > 0, total / np.maximum(count, 1), 1.0)
            prior = PriorSample(problem.pair_lead, problem.pair_partner, problem.pair_score,
                                units)
            if expected_arrivals is None:
                expected_arrivals = prior.n_leads
        return cls(problem.partner_ids, cap, allocation.partner_price, floor_owed,
                   expected_arrivals=expected_arrivals, prior=prior,
                   **kwargs)  # type: ignore[arg-type]

    def index_of(self, partner_id: str) -> int:
        """Partner index of ``partner_id``."""
        try:
            return self._index[partner_id]
        except KeyError:
            raise KeyError(f"Unknown partner '{partner_id}'; the router knows "
                           f"{len(self.partner_ids)} partners.") from None

    def _as_arrays(
        self, lead_scores: Mapping[int, float] | Mapping[str, float] | np.ndarray | Sequence[int],
        scores: np.ndarray | Sequence[float] | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        if isinstance(lead_scores, Mapping):
            idx = [k if isinstance(k, int | np.integer) else self.index_of(str(k))
                   for k in lead_scores]
            parts = np.fromiter(idx, dtype=np.int64, count=len(idx))
            sc = np.fromiter(lead_scores.values(), dtype=float, count=len(idx))
        else:
            if scores is None:
                raise ValueError("route() needs 'scores' when partners are given as an array.")
            parts = np.asarray(lead_scores, dtype=np.int64)
            sc = np.asarray(scores, dtype=float)
        if parts.shape != sc.shape or parts.ndim != 1:
            raise ValueError(f"The partners and scores of a lead must be 1-D of equal length. "
                             f"Got shapes {parts.shape} and {sc.shape} instead.")
        if parts.size:
            lo, hi = int(parts.min()), int(parts.max())
            if lo < 0 or hi >= len(self.partner_ids):
                bad = lo if lo < 0 else hi
                raise ValueError(f"Partner index {bad} is out of range: the router knows "
                                 f"{len(self.partner_ids)} partners.")
            if not np.isfinite(sc).all():
                raise ValueError("Every score of a lead must be finite. Got "
                                 f"{float(sc[~np.isfinite(sc)][0])!r} instead.")
        return parts, sc

    def route(
        self,
        lead_scores: Mapping[int, float] | Mapping[str, float] | np.ndarray | Sequence[int],
        scores: np.ndarray | Sequence[float] | None = None,
        *,
        units: float = 1.0,
        exclude: Iterable[int] = (),
        commit: bool = True,
        elapsed: float | None = None,
    ) -> RouteDecision:
        """Route one lead.

        Parameters
        ----------
        lead_scores : mapping or array of int
            ``{partner index or id: score}``, or the partner indices with ``scores``.
        scores : array of float, optional
        units : float
            Capacity units the lead costs.
        exclude : iterable of int
            Partners never to route this lead to (they rejected it or let it expire).
        commit : bool
            Take the capacity (and count the arrival) now; ``False`` only previews.
        elapsed : float, optional
            Fraction of today's routing window gone when the lead arrived (0–1); lets
            re-pricing estimate the arrivals still to come from the observed rate.

        Returns
        -------
        RouteDecision
        """
        parts, sc = self._as_arrays(lead_scores, scores)
        with self._lock:
            room = self.remaining[parts] >= units - 1e-12
            ex = list(exclude)
            if ex:
                room &= ~np.isin(parts, ex)
            d = choose(parts, sc, self.price, room, self.partner_ids, units=units,
                       rule=self.rule, hold_below=self.hold_below)
            if not commit:
                return d
            self.n_seen += 1 if parts.size else 0
            if elapsed is not None:
                self.elapsed = min(max(float(elapsed), 0.0), 1.0)
            if self._first is not None and parts.size:
                self._sample.append((parts, sc, units))
                if len(self._sample) > 2 * self.max_sample_leads:
                    del self._sample[: len(self._sample) - self.max_sample_leads]
            if d.partner is not None:
                self._take(d.partner, units)
            if self.auto_reprice and self.reprice_due:
                self._reprice_locked(None)
            return d

    def _take(self, j: int, units: float) -> None:
        self.remaining[j] = max(0.0, self.remaining[j] - units)
        self.received[j] += units
        self.n_routed += 1

    @property
    def floor_owed(self) -> np.ndarray:
        """Per partner, floor units still owed today."""
        return np.maximum(self.floor - self.received, 0.0)

    def take(self, partner: int, units: float = 1.0) -> None:
        """Commit ``units`` of ``partner``'s capacity (after a ``commit=False`` preview)."""
        with self._lock:
            self._take(partner, units)

    def release(self, partner: int, units: float = 1.0) -> None:
        """Give back capacity when an offer is rejected, expires or is reclaimed."""
        with self._lock:
            self.remaining[partner] += units
            self.received[partner] = max(0.0, self.received[partner] - units)
            self.n_routed -= 1

    @property
    def reprice_due(self) -> bool:
        return self._next_checkpoint is not None and self.n_seen >= self._next_checkpoint

    def expected_remaining(self) -> float:
        """Arrivals still expected today (see :meth:`reprice`)."""
        if self.expected_arrivals is None or self._first is None:
            raise ValueError("The router was built without 'expected_arrivals', so it cannot "
                             "estimate the arrivals still to come; pass 'expected_remaining'.")
        n, t = float(self.expected_arrivals), float(self.n_seen)
        if self.elapsed is None:
            rest = n - t
        else:
            w = self.forecast_weight
            rest = (n * w + t) / (w + self.elapsed) * (1.0 - self.elapsed)
        return max(rest, float(self._first))

    def reprice(self, expected_remaining: float | None = None) -> DualPrices:
        """Re-solve the prices on today's arrivals so far and the remaining capacity.

        The LP is solved outside the lock that decisions take: routing goes on at
        the old prices meanwhile (a service calls this from a background job), and
        the new prices apply from the first decision after the solve.

        Parameters
        ----------
        expected_remaining : float, optional
            Arrivals still expected today.  Default: from the arrival rate when the
            last ``elapsed`` is known (see the module notes), else
            ``expected_arrivals − seen``; at least ``ε·expected_arrivals`` either way.
        """
        with self._reprice_lock:
            with self._lock:
                state = self._reprice_state(expected_remaining)
            result = self._solve(state)
            with self._lock:
                self._apply(result)
            return result

    def _prior_subset(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """At most ``k`` prior leads, evenly spread; leads renumbered ``0..k-1``."""
        pr = self.prior
        assert pr is not None
        leads = np.unique(pr.pair_lead)
        if leads.shape[0] > k:
            leads = leads[np.linspace(0, leads.shape[0] - 1, k).round().astype(np.int64)]
        keep = np.isin(pr.pair_lead, leads)
        pl = np.searchsorted(leads, pr.pair_lead[keep])
        units = (np.ones(leads.shape[0]) if pr.lead_units is None
                 else np.asarray(pr.lead_units, dtype=float)[leads])
        return pl, pr.pair_partner[keep], pr.pair_score[keep], units

    def _reprice_locked(self, expected_remaining: float | None) -> DualPrices:
        result = self._solve(self._reprice_state(expected_remaining))
        self._apply(result)
        return result

    def _reprice_state(self, expected_remaining: float | None) -> _RepriceState:
        """What a re-solve reads, copied (under the lock) so the solve can run without it."""
        if self._next_checkpoint is not None:
            while self._next_checkpoint <= self.n_seen:
                self._next_checkpoint = max(math.ceil(self._next_checkpoint * self.reprice_growth),
                                            self._next_checkpoint + 1)
        if expected_remaining is None:
            expected_remaining = self.expected_remaining()
        return _RepriceState(self._sample[-self.max_sample_leads:], float(expected_remaining),
                             self.remaining.copy(), self.floor_owed, self.price.copy())

    def _solve(self, state: _RepriceState) -> DualPrices:
        sample, expected_remaining = state.sample, state.expected_remaining
        if not sample or expected_remaining <= 0:
            return DualPrices(state.price.copy(), 0.0, 0, 0, 0.0)
        lens = np.fromiter((len(p) for p, _, _ in sample), dtype=np.int64, count=len(sample))
        pair_lead = np.repeat(np.arange(len(sample)), lens)
        pair_partner = np.concatenate([p for p, _, _ in sample])
        pair_score = np.concatenate([s for _, s, _ in sample])
        lead_units = np.fromiter((u for _, _, u in sample), dtype=float, count=len(sample))
        n_sample = len(sample)
        room_for_prior = self.max_sample_leads - n_sample
        if self.prior is not None and self.prior.n_leads and room_for_prior > 0:
            pl, pp, ps, pu = self._prior_subset(room_for_prior)
            pair_lead = np.concatenate([pair_lead, n_sample + pl])
            pair_partner = np.concatenate([pair_partner, pp])
            pair_score = np.concatenate([pair_score, ps])
            lead_units = np.concatenate([lead_units, pu])
            n_sample += pu.shape[0]
        scale = n_sample / expected_remaining
        owed = state.floor_owed
        return dual_prices(pair_lead, pair_partner, pair_score, state.remaining * scale,
                           floor=owed * scale if owed.any() else None, lead_units=lead_units)

    def _apply(self, result: DualPrices) -> None:
        if result.price.shape == (len(self.partner_ids),):
            self.price = result.price
        self.reprices.append(result)
