"""Partner and partner × vertical effects: a mixed-effects logistic model, binary or on the funnel.

The model of a history row *r* (lead *i* worked by partner *j* in vertical *v*)::

    η_r = x_r·β + u_j + w_jv,       u_j ~ N(0, σ_p²),  w_jv ~ N(0, σ_c²),  β ~ N(0, I)

with ``x_r`` standardized fixed-effect columns.  With a binary outcome,
``P(converted) = σ(θ + η)``.  With the funnel stage (:mod:`models.funnel`)
it is a cumulative-logit (proportional-odds) model::

    P(stage ≥ k) = σ(θ_k + η),   k = 1 … K−1,   θ_1 > … > θ_{K−1}

so every threshold crossed — contacted, qualified, opportunity, won — is
evidence about the same ``η``, and ``P(converted) = σ(θ_won + η)``.  A
converted row with no stage is the interval "won"; a lost row with no stage
is the interval "accepted … opportunity"; so rows with and without a stage
mix in one likelihood (each row's probability is that of its interval of
stages).  Thresholds no row's interval touches are not identified and are left
out; two that no row lies between are one.

The fit is the posterior mode (a penalized likelihood, ridge on ``β`` and on
the standardized effects ``u/σ_p``, ``w/σ_c``), found by L-BFGS with the
exact gradient; every row costs two logistic evaluations per step whatever
the number of stages.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import expit, log_expit

MAX_ITER = 2000


def outcome_intervals(y: np.ndarray, stage: np.ndarray | None, won: int
                      ) -> tuple[np.ndarray, np.ndarray, int]:
    """Per row, the lowest and highest stage level its outcome allows, and the number of levels.

    Parameters
    ----------
    y : ndarray of 0/1
        Converted.
    stage : ndarray of int or None
        Stage level per row (``won`` is the converted level), ``-1`` where unknown;
        ``None``: a binary outcome (two levels, lost 0 and won 1).
    won : int
        Level of a conversion when ``stage`` is given.

    Returns
    -------
    lo, hi : ndarray of int64
    n_levels : int
    """
    y = np.asarray(y, dtype=np.int64)
    if stage is None:
        return y.copy(), y.copy(), 2
    stage = np.asarray(stage, dtype=np.int64)
    known = stage >= 0
    lo = np.where(known, stage, np.where(y == 1, won, 0))
    hi = np.where(known, stage, np.where(y == 1, won, won - 1))
    return lo, hi, won + 1


@dataclass(frozen=True, eq=False)
class MixedFit:
    """A fitted mixed-effects model (unknown partners and cells: effect 0).

    Attributes
    ----------
    partner_keys, cell_keys : Index
    partner_effect, cell_effect : ndarray
        ``u_j`` and ``w_jv`` (log-odds).
    fixed_coef : ndarray
        ``β`` on the standardized fixed columns.
    intercept : float
        ``θ`` of conversion: ``P(converted) = σ(intercept + η)``.
    thresholds : ndarray
        Every identified ``θ_k`` (one for a binary outcome).
    converged : bool
    """

    partner_keys: pd.Index
    partner_effect: np.ndarray
    cell_keys: pd.Index
    cell_effect: np.ndarray
    fixed_coef: np.ndarray
    intercept: float
    thresholds: np.ndarray
    converged: bool = True

    def lookup(self, partner: np.ndarray, cell: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Effect of each row's partner and of its partner × vertical cell."""
        p = self.partner_keys.get_indexer(pd.Index(np.asarray(partner, dtype=object)))
        c = self.cell_keys.get_indexer(pd.Index(np.asarray(cell, dtype=object)))
        return (np.append(self.partner_effect, 0.0)[p], np.append(self.cell_effect, 0.0)[c])


def fit_mixed(partner: np.ndarray, cell: np.ndarray, fixed: np.ndarray, lo: np.ndarray,
              hi: np.ndarray, n_levels: int, conversion_level: int, sd_partner: float,
              sd_cell: float) -> MixedFit:
    """Posterior mode of the mixed-effects model (module docstring) on interval outcomes.

    Parameters
    ----------
    partner, cell : ndarray of str
        Partner key and partner × vertical key of each row.
    fixed : ndarray of shape (n_rows, k)
        Standardized fixed-effect columns without missing values.
    lo, hi : ndarray of int
        Each row's interval of stage levels (:func:`outcome_intervals`).
    n_levels : int
    conversion_level : int
        The level that is a conversion (its threshold is the intercept).
    sd_partner, sd_cell : float
        Prior SDs of the effects (log-odds).

    Returns
    -------
    MixedFit
        All zero effects when no threshold is identified (one outcome only).
    """
    fixed = np.ascontiguousarray(fixed, dtype=np.float64)
    lo, hi = np.asarray(lo, dtype=np.int64), np.asarray(hi, dtype=np.int64)
    n, k = fixed.shape
    p_codes, p_keys = pd.factorize(pd.Series(partner, dtype=object))
    c_codes, c_keys = pd.factorize(pd.Series(cell, dtype=object))
    n_p, n_c = len(p_keys), len(c_keys)
    # a row's probability is P(S ≥ lo) − P(S ≥ hi + 1): cut lo above, cut hi + 1 below
    cuts = np.unique(np.concatenate([lo[lo > 0], hi[hi + 1 < n_levels] + 1]))
    empty = MixedFit(pd.Index(p_keys, dtype=object), np.zeros(n_p),
                     pd.Index(c_keys, dtype=object), np.zeros(n_c), np.zeros(k), 0.0,
                     np.zeros(0), True)
    if conversion_level not in cuts or n == 0:
        return empty
    # two cuts are one threshold unless some row lies between them (else they would drift
    # apart without bound: nothing in the data tells them apart)
    apart = [bool(np.any((lo >= a) & (hi < b))) for a, b in itertools.pairwise(cuts)]
    group = np.concatenate([[0], np.cumsum(apart)]).astype(np.int64)
    upper = group[np.minimum(np.searchsorted(cuts, lo), len(cuts) - 1)]  # θ_lo where lo > 0
    lower = group[np.minimum(np.searchsorted(cuts, hi + 1), len(cuts) - 1)]  # θ_{hi+1}
    has_upper, has_lower = lo > 0, hi + 1 < n_levels
    if not (has_upper.any() and has_lower.any()):  # every row on one side: nothing to fit
        return empty
    n_t = int(group[-1]) + 1
    first = np.searchsorted(group, np.arange(n_t))
    share = np.array([(lo >= cuts[i]).mean() for i in first])
    theta0 = np.log(np.clip(share, 1e-4, 1 - 1e-4) / np.clip(1 - share, 1e-4, 1.0))
    x0 = np.concatenate([theta0, np.zeros(k + n_p + n_c)])
    s_t, s_b, s_p = slice(0, n_t), slice(n_t, n_t + k), slice(n_t + k, n_t + k + n_p)
    s_c = slice(n_t + k + n_p, None)
    up_rows, low_rows = np.flatnonzero(has_upper), np.flatnonzero(has_lower)
    up_idx, low_idx = upper[has_upper], lower[has_lower]
    only_up, only_low = has_upper & ~has_lower, has_lower & ~has_upper

    def objective(x: np.ndarray) -> tuple[float, np.ndarray]:
        theta, beta, zp, zc = x[s_t], x[s_b], x[s_p], x[s_c]
        eta = fixed @ beta + sd_partner * zp[p_codes] + sd_cell * zc[c_codes]
        a = np.ones(n)
        b = np.zeros(n)
        a[up_rows] = expit(eta[up_rows] + theta[up_idx])
        b[low_rows] = expit(eta[low_rows] + theta[low_idx])
        prob = a - b
        # log(a − b) without cancellation: for a binary row one side is exact (1 or 0)
        with np.errstate(divide="ignore"):
            logp = np.log(np.maximum(prob, 1e-300))
        logp[only_up] = log_expit(eta[only_up] + theta[upper[only_up]])
        logp[only_low] = log_expit(-(eta[only_low] + theta[lower[only_low]]))
        prob = np.maximum(prob, 1e-300)
        da, db = a * (1.0 - a), b * (1.0 - b)
        g_eta = -(da - db) / prob
        g_theta = (-np.bincount(up_idx, da[up_rows] / prob[up_rows], minlength=n_t)
                   + np.bincount(low_idx, db[low_rows] / prob[low_rows], minlength=n_t))
        value = -float(logp.sum()) + 0.5 * float(beta @ beta + zp @ zp + zc @ zc)
        grad = np.concatenate([
            g_theta, fixed.T @ g_eta + beta,
            sd_partner * np.bincount(p_codes, g_eta, minlength=n_p) + zp,
            sd_cell * np.bincount(c_codes, g_eta, minlength=n_c) + zc,
        ])
        return value, grad

    # L-BFGS on variables scaled by the square root of the Hessian's diagonal at the
    # start: effects resting on thousands of rows and on a handful are then alike, and it
    # takes several times fewer steps than on the raw variables
    info = np.full(n, 0.25 * max(min(float(share[0]), 0.5), 0.05))
    diag = np.concatenate([
        np.bincount(up_idx, info[up_rows], minlength=n_t)
        + np.bincount(low_idx, info[low_rows], minlength=n_t),
        (fixed ** 2).T @ info + 1.0,
        sd_partner ** 2 * np.bincount(p_codes, info, minlength=n_p) + 1.0,
        sd_cell ** 2 * np.bincount(c_codes, info, minlength=n_c) + 1.0,
    ])
    scale = np.sqrt(np.maximum(diag, 1e-6))

    def scaled(u: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = objective(u / scale)
        return value, grad / scale

    result = minimize(scaled, x0 * scale, jac=True, method="L-BFGS-B",
                      options={"maxiter": MAX_ITER, "gtol": 1e-5, "ftol": 1e-12})
    x = result.x / scale
    return MixedFit(
        pd.Index(p_keys, dtype=object), sd_partner * x[s_p],
        pd.Index(c_keys, dtype=object), sd_cell * x[s_c], x[s_b].copy(),
        float(x[s_t][group[int(np.searchsorted(cuts, conversion_level))]]), x[s_t].copy(),
        bool(result.success))
