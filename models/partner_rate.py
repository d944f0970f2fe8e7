"""A partner's historical conversion rate, smoothed by empirical Bayes, without leakage.

Rates form a chain of levels, each shrunk toward the one above it::

    tier_rate      = (c_tier + m_tier · overall)      / (n_tier + m_tier)
    partner_rate   = (c_p    + m_p    · tier_rate)    / (n_p    + m_p)
    vertical_rate  = (c_pv   + m_pv   · partner_rate) / (n_pv   + m_pv)

with ``c`` conversions and ``n`` assignments of the group (tier; partner;
partner within the lead's vertical).  The prior strengths ``m`` are estimated
by the method of moments (beta-binomial): the spread of the raw rates around
their prior means beyond what binomial noise explains is the between-group
variance τ², and ``m = μ(1 − μ) / τ² − 1``.

For training rows the counts must not contain the row's own outcome (nor
outcomes not known yet): :func:`leak_free_rates` uses only rows with an
*earlier* timestamp when times are given (ties excluded), and the other folds
otherwise — there, as in scikit-learn's ``TargetEncoder``, the overall rate
and the prior strengths are also estimated on the other folds, so a row's
value does not depend on its outcome at all.  With times, those two global
numbers are estimated once on all training rows (one row moves them by
O(1/n)).  At scoring time :class:`RateTable` uses the whole history.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.funnel import WON
from models.mixed_effects import MixedFit, fit_mixed, outcome_intervals

MIN_STRENGTH = 1.0
MAX_STRENGTH = 10_000.0
LEVELS = ("tier", "partner", "partner_vertical")


def estimate_strength(conversions: np.ndarray, counts: np.ndarray, prior: np.ndarray) -> float:
    """Method-of-moments prior strength ``m`` of a beta-binomial around ``prior``.

    Parameters
    ----------
    conversions, counts : ndarray
        Conversions and assignments per group (groups with no assignment are ignored).
    prior : ndarray
        Prior mean of each group's rate.

    Returns
    -------
    float
        ``m`` in [1, 10000]; large when groups differ no more than noise explains.
    """
    keep = counts > 0
    c, n, mu = conversions[keep], counts[keep], np.clip(prior[keep], 1e-6, 1 - 1e-6)
    if len(n) < 2:
        return MAX_STRENGTH
    spread = float(np.sum(n * (c / n - mu) ** 2))
    noise = float(np.sum(mu * (1 - mu)))
    tau2 = (spread - noise) / float(n.sum())
    if tau2 <= 0:
        return MAX_STRENGTH
    m = float(np.mean(mu * (1 - mu))) / tau2 - 1.0
    return float(np.clip(m, MIN_STRENGTH, MAX_STRENGTH))


def _codes(values: np.ndarray) -> np.ndarray:
    codes, _ = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=False)
    return codes.astype(np.int64)


def level_keys(
    partner: np.ndarray, tier: np.ndarray | None, vertical: np.ndarray | None
) -> list[np.ndarray]:
    """Group key of each row at each level (tier, partner, partner within vertical)."""
    n = len(partner)
    partner = pd.Series(partner, dtype=object).astype(str).to_numpy(dtype=object)
    tiers = np.full(n, "", dtype=object) if tier is None else pd.Series(
        tier, dtype=object).fillna("").astype(str).to_numpy(dtype=object)
    keys = [tiers, partner]
    if vertical is not None:
        vert = pd.Series(vertical, dtype=object).fillna("").astype(str).to_numpy(dtype=object)
        keys.append(partner + "\x1f" + vert)
    return keys


@dataclass(frozen=True)
class RateStrengths:
    """Overall rate and the prior strength of each level, estimated on the training rows."""

    overall: float
    strengths: tuple[float, ...]


def _chain(sums: list[tuple[np.ndarray, np.ndarray]], s: RateStrengths) -> list[np.ndarray]:
    """Smoothed rate at each level from per-row (conversions, count) of each level."""
    prior: np.ndarray | float = s.overall
    rates = []
    for (c, n), m in zip(sums, s.strengths[: len(sums)], strict=True):
        prior = (c + m * prior) / (n + m)
        rates.append(np.asarray(prior, dtype=np.float64))
    return rates


def fit_strengths(keys: list[np.ndarray], y: np.ndarray) -> RateStrengths:
    """Estimate the overall rate and each level's prior strength from ``y``."""
    y = np.asarray(y, dtype=np.float64)
    overall = float(y.mean())
    prior = np.full(len(y), overall)
    strengths: list[float] = []
    for key in keys:
        codes = _codes(key)
        c = np.bincount(codes, weights=y)
        n = np.bincount(codes).astype(np.float64)
        first = np.full(len(n), -1, dtype=np.int64)
        first[codes[::-1]] = np.arange(len(y))[::-1]
        m = estimate_strength(c, n, prior[first])
        strengths.append(m)
        prior = (c[codes] + m * prior) / (n[codes] + m)
    return RateStrengths(overall, tuple(strengths))


def _prior_sums(
    group: np.ndarray, time: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per row: conversions and count of the same group at strictly earlier times."""
    frame = pd.DataFrame({"g": group, "t": time, "y": y})
    agg = frame.groupby(["g", "t"], sort=True)["y"].agg(["sum", "count"])
    inclusive = agg.groupby(level=0).cumsum()
    before_c = (inclusive["sum"] - agg["sum"]).to_numpy()
    before_n = (inclusive["count"] - agg["count"]).to_numpy()
    pos = agg.index.get_indexer(pd.MultiIndex.from_arrays([group, time]))
    return before_c[pos].astype(np.float64), before_n[pos].astype(np.float64)


def leak_free_rates(
    keys: list[np.ndarray],
    y: np.ndarray,
    strengths: RateStrengths | None = None,
    time: np.ndarray | None = None,
    n_folds: int = 5,
    random_state: int | None = 0,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Smoothed rate and prior count at each level for each training row, free of its outcome.

    Parameters
    ----------
    keys : list of ndarray
        Group key per row at each level (:func:`level_keys`).
    y : ndarray of 0/1
    strengths : RateStrengths, optional
        Used with ``time`` (default: :func:`fit_strengths` on all rows).
    time : ndarray of int64, optional
        Row timestamps: each row sees only rows with an earlier time.  Without
        it, each row sees only the rows of the other ``n_folds`` random folds,
        with strengths estimated on them.
    n_folds, random_state
        Fold count and seed of the out-of-fold split.

    Returns
    -------
    rates, counts : list of ndarray
        Per level, the smoothed rate and the number of rows it rests on.
    """
    y = np.asarray(y, dtype=np.float64)
    codes = [_codes(k) for k in keys]
    if time is not None:
        strengths = strengths or fit_strengths(keys, y)
        sums = [_prior_sums(c, time, y) for c in codes]
        return _chain(sums, strengths), [n for _, n in sums]
    fold = np.random.default_rng(random_state).permutation(np.arange(len(y)) % n_folds)
    rates = [np.empty(len(y)) for _ in keys]
    counts = [np.empty(len(y)) for _ in keys]
    for k in range(n_folds):
        rows, rest = fold == k, fold != k
        fold_strengths = fit_strengths([key[rest] for key in keys], y[rest])
        sums = []
        for level, code in enumerate(codes):
            size = int(code.max(initial=0)) + 1
            c = np.bincount(code[rest], weights=y[rest], minlength=size)[code[rows]]
            n = np.bincount(code[rest], minlength=size)[code[rows]].astype(np.float64)
            sums.append((c, n))
            counts[level][rows] = n
        for level, rate in enumerate(_chain(sums, fold_strengths)):
            rates[level][rows] = rate
    return rates, counts


@dataclass(frozen=True)
class RateTable:
    """Serving-time counts: conversions and assignments per group key at each level."""

    strengths: RateStrengths
    keys: tuple[tuple[str, ...], ...]
    conversions: tuple[tuple[float, ...], ...]
    counts: tuple[tuple[float, ...], ...]

    @classmethod
    def from_history(cls, keys: list[np.ndarray], y: np.ndarray,
                     strengths: RateStrengths) -> RateTable:
        """Sum the outcomes of every history row per group at each level."""
        y_series = pd.Series(np.asarray(y, dtype=np.float64))
        names, conv, cnt = [], [], []
        for key in keys:
            agg = y_series.groupby(np.asarray(key, dtype=object)).agg(["sum", "count"])
            names.append(tuple(str(k) for k in agg.index))
            conv.append(tuple(float(v) for v in agg["sum"]))
            cnt.append(tuple(float(v) for v in agg["count"]))
        return cls(strengths, tuple(names), tuple(conv), tuple(cnt))

    def lookup(self, keys: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Smoothed rate and count at each level for the given keys (unknown keys count 0)."""
        sums = []
        for level, key in enumerate(keys):
            pos = pd.Index(self.keys[level], dtype=object).get_indexer(
                pd.Index(np.asarray(key, dtype=object)))
            c = np.append(np.asarray(self.conversions[level]), 0.0)[pos]
            n = np.append(np.asarray(self.counts[level]), 0.0)[pos]
            sums.append((c, n))
        return _chain(sums, self.strengths), [n for _, n in sums]


# --------------------------------------------------------------------------------------
# Partner and partner × vertical effects on the log-odds scale (a ridge-penalized GLMM).
#
# Counts alone shrink a partner's vertical rate toward its overall rate whatever the
# vertical; a penalized logistic regression estimates the partner effect and the
# partner × vertical effect jointly with the fixed effects that explain part of them
# (vertical listed, certification, tier, backlog, lead quality), so a cell is shrunk
# toward what those predict (the model and its solver: :mod:`models.mixed_effects`; with
# the funnel stage it is fitted on every stage reached, not only on conversions).

EFFECT_BLOCKS = 4


def strength_to_sd(strength: float, overall: float) -> float:
    """Log-odds SD of group effects implied by a beta prior of strength ``m`` around ``overall``.

    The beta prior's variance is ``μ(1 − μ) / (m + 1)``; divided by the slope
    ``μ(1 − μ)`` of the logistic function at ``μ`` it is a log-odds spread.
    """
    mu = float(np.clip(overall, 1e-6, 1 - 1e-6))
    return float(np.sqrt(1.0 / (mu * (1.0 - mu) * (strength + 1.0))))


EffectTable = MixedFit


def fit_effects(partner: np.ndarray, cell: np.ndarray, fixed: np.ndarray, y: np.ndarray,
                sd_partner: float, sd_cell: float,
                stage: np.ndarray | None = None) -> EffectTable:
    """Penalized fit of partner and cell effects beside fixed effects (a mixed-effects model).

    Parameters
    ----------
    partner, cell : ndarray of str
        Partner key and partner × vertical key of each row.
    fixed : ndarray of shape (n_rows, k)
        Standardized fixed-effect columns without missing values.
    y : ndarray of 0/1
    sd_partner, sd_cell : float
        Prior SDs of the effects (log-odds).
    stage : ndarray of int, optional
        Funnel stage level per row (:data:`models.funnel.STAGES`, ``-1`` unknown):
        the effects are then fitted on the stages reached, not only on conversions
        (:mod:`models.mixed_effects`).
    """
    lo, hi, n_levels = outcome_intervals(y, stage, WON)
    return fit_mixed(partner, cell, fixed, lo, hi, n_levels, 1 if stage is None else WON,
                     sd_partner, sd_cell)


def leak_free_effects(partner: np.ndarray, cell: np.ndarray, fixed: np.ndarray, y: np.ndarray,
                      sd_partner: float, sd_cell: float, time: np.ndarray | None = None,
                      n_blocks: int = EFFECT_BLOCKS, random_state: int | None = 0,
                      stage: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Partner and cell effects of each training row, estimated without its outcome.

    With ``time``, rows are cut into ``n_blocks`` consecutive time blocks and
    a block's rows get effects fitted on the earlier blocks only (the first
    block gets 0, the prior mean); without it, each of ``n_blocks`` random
    folds gets effects fitted on the other folds.
    """
    n = len(y)
    pe, ce = np.zeros(n), np.zeros(n)
    if time is not None:
        order = np.argsort(time, kind="stable")
        cuts = np.searchsorted(time[order], np.quantile(time, np.arange(1, n_blocks) / n_blocks),
                               side="left")
        block = np.empty(n, dtype=np.int64)
        block[order] = np.searchsorted(cuts, np.arange(n), side="right")
        splits = [(block < b, block == b) for b in range(1, n_blocks)]
    else:
        fold = np.random.default_rng(random_state).permutation(np.arange(n) % n_blocks)
        splits = [(fold != b, fold == b) for b in range(n_blocks)]
    for fit_rows, rows in splits:
        if not fit_rows.any() or not rows.any():
            continue
        table = fit_effects(partner[fit_rows], cell[fit_rows], fixed[fit_rows], y[fit_rows],
                            sd_partner, sd_cell, None if stage is None else stage[fit_rows])
        pe[rows], ce[rows] = table.lookup(partner[rows], cell[rows])
    return pe, ce
