"""Mixed-effects fit: exact gradient, sklearn's answer on binary data, the funnel's evidence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sparse
from scipy.optimize import approx_fprime
from scipy.special import expit
from sklearn.linear_model import LogisticRegression

from models import mixed_effects
from models.mixed_effects import fit_mixed, outcome_intervals

THETAS = np.array([3.0, 1.8, 0.9, 0.0])  # reaching stage 1..4 (4 = won) over the base logit


def _world(n: int, seed: int = 0, n_partners: int = 40, sd_cell: float = 0.6):
    rng = np.random.default_rng(seed)
    partner = rng.integers(0, n_partners, n)
    vertical = rng.integers(0, 4, n)
    u = rng.normal(0, 0.5, n_partners)
    w = rng.normal(0, sd_cell, (n_partners, 4))
    fixed = rng.normal(size=(n, 2))
    eta = -2.4 + fixed @ np.array([0.6, -0.3]) + u[partner] + w[partner, vertical]
    draw = rng.random(n)
    stage = (draw[:, None] < expit(eta[:, None] + THETAS[None, :])).sum(axis=1)
    keys_p = np.array([f"P{j}" for j in partner], dtype=object)
    keys_c = keys_p + "\x1f" + vertical.astype(str).astype(object)
    truth = pd.Series(w[partner, vertical] + u[partner], index=keys_c).groupby(level=0).first()
    return keys_p, keys_c, fixed, stage, truth


def test_gradient_is_exact():
    p, c, fixed, stage, _ = _world(300)
    stage[::4] = -1  # rows without a stage: interval outcomes
    lo, hi, k = outcome_intervals((stage == 4).astype(int), stage, 4)
    captured = {}
    original = mixed_effects.minimize

    def spy(fun, x0, **kwargs):
        captured["fun"], captured["x0"] = fun, x0
        return original(fun, x0, **kwargs)

    mixed_effects.minimize = spy
    try:
        fit_mixed(p, c, fixed, lo, hi, k, 4, 0.5, 0.4)
    finally:
        mixed_effects.minimize = original
    fun = captured["fun"]
    x = captured["x0"] + np.random.default_rng(1).normal(0, 0.3, len(captured["x0"]))
    numeric = approx_fprime(x, lambda v: fun(v)[0], 1e-6)
    np.testing.assert_allclose(fun(x)[1], numeric, rtol=1e-4, atol=1e-3)


def test_binary_fit_is_sklearns_penalized_logistic_regression():
    p, c, fixed, stage, _ = _world(3000)
    y = (stage == 4).astype(np.int64)
    lo, hi, k = outcome_intervals(y, None, 4)
    fit = fit_mixed(p, c, fixed, lo, hi, k, 1, 0.5, 0.4)
    pc, pk = pd.factorize(pd.Series(p, dtype=object))
    cc, ck = pd.factorize(pd.Series(c, dtype=object))
    rows = np.arange(len(y))
    design = sparse.hstack([
        sparse.csr_matrix(fixed),
        sparse.csr_matrix((np.full(len(y), 0.5), (rows, pc)), shape=(len(y), len(pk))),
        sparse.csr_matrix((np.full(len(y), 0.4), (rows, cc)), shape=(len(y), len(ck))),
    ]).tocsr()
    ref = LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000).fit(design, y)
    coef = ref.coef_.ravel()
    assert fit.converged
    np.testing.assert_allclose(fit.fixed_coef, coef[:2], atol=2e-4)
    assert fit.intercept == pytest.approx(ref.intercept_[0], abs=2e-4)
    np.testing.assert_allclose(fit.partner_effect, 0.5 * coef[2:2 + len(pk)], atol=2e-4)
    np.testing.assert_allclose(fit.cell_effect, 0.4 * coef[2 + len(pk):], atol=2e-4)


def test_funnel_stages_estimate_the_effects_better_than_conversions_alone():
    p, c, fixed, stage, truth = _world(8000, seed=3)
    y = (stage == 4).astype(np.int64)
    errors = {}
    for name, st in (("binary", None), ("funnel", stage)):
        lo, hi, k = outcome_intervals(y, st, 4)
        fit = fit_mixed(p, c, fixed, lo, hi, k, 1 if st is None else 4, 0.5, 0.6)
        pe, ce = fit.lookup(np.array([key.split("\x1f")[0] for key in truth.index], dtype=object),
                            truth.index.to_numpy(dtype=object))
        est = pe + ce
        errors[name] = np.sqrt(np.mean(((est - est.mean()) - (truth - truth.mean())) ** 2))
        if st is not None:
            # thresholds come back in funnel order, the conversion one last
            assert np.all(np.diff(fit.thresholds) < 0)
            assert fit.intercept == fit.thresholds[-1] == pytest.approx(-2.4, abs=0.15)
            np.testing.assert_allclose(fit.fixed_coef, [0.6, -0.3], atol=0.06)
    assert errors["funnel"] < 0.8 * errors["binary"]


def test_rows_without_a_stage_mix_with_rows_with_one():
    p, c, fixed, stage, _ = _world(4000, seed=5)
    y = (stage == 4).astype(np.int64)
    partial = stage.copy()
    partial[1::2] = -1
    lo, hi, k = outcome_intervals(y, partial, 4)
    assert np.all(lo[1::2] == np.where(y[1::2] == 1, 4, 0))
    assert np.all(hi[1::2] == np.where(y[1::2] == 1, 4, 3))
    fit = fit_mixed(p, c, fixed, lo, hi, k, 4, 0.5, 0.6)
    assert fit.converged and len(fit.thresholds) == 4
    # a funnel where nobody reached 'contacted' without qualifying: that threshold is left out
    merged = np.where(stage == 1, 2, stage)
    lo, hi, k = outcome_intervals(y, merged, 4)
    fit = fit_mixed(p, c, fixed, lo, hi, k, 4, 0.5, 0.6)
    assert len(fit.thresholds) == 3 and fit.intercept == fit.thresholds[-1]


def test_one_outcome_only_gives_the_prior():
    p, c, fixed, _, _ = _world(200)
    zeros = np.zeros(200, dtype=np.int64)
    lo, hi, k = outcome_intervals(zeros, None, 4)
    fit = fit_mixed(p, c, fixed, lo, hi, k, 1, 0.5, 0.5)
    assert not fit.partner_effect.any() and not fit.cell_effect.any()
    pe, ce = fit.lookup(np.array(["nobody"], dtype=object), np.array(["x"], dtype=object))
    assert pe[0] == 0.0 and ce[0] == 0.0
