"""Features: extra columns, leak-free partner rates, pair features by hand, lead-only models."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.features import FeatureBuilder
from models.partner_rate import (
    MAX_STRENGTH,
    RateTable,
    estimate_strength,
    fit_effects,
    fit_strengths,
    leak_free_effects,
    leak_free_rates,
    level_keys,
    strength_to_sd,
)
from tests.models.model_support import toy_history


def _fit(history: pd.DataFrame, partners: pd.DataFrame | None, time: bool = True):
    y = history["converted"].to_numpy()
    frame = history.drop(columns=["converted"])
    stamps = frame["assigned_at"].dt.tz_localize(None).to_numpy().astype("datetime64[ns]")
    times = stamps.astype(np.int64) if time else None
    builder = FeatureBuilder()
    X = builder.fit_transform(frame, y, partners, time=times)
    return builder, X


def test_extra_columns_are_detected_and_encoded_by_rule():
    history, partners = toy_history(400)
    rng = np.random.default_rng(1)
    history = history.assign(
        seats=rng.integers(1, 50, 400).astype(float),
        source=rng.choice(["web", "event", "referral", "ads"], 400),
        campaign=[f"c{k}" for k in rng.integers(0, 120, 400)],
        crm_ref=[f"REF-{i:05d}" for i in range(400)],
        row_no=np.arange(400),
        last_touch=pd.date_range("2023-01-01", periods=400, freq="D", tz="UTC"),
        channel="partner",
    )
    builder, X = _fit(history, partners)
    rules = {r.column: (r.kind, r.rule) for r in builder.schema_.extras}
    assert rules["seats"][0] == "numeric"
    assert rules["source"][0] == "categorical"
    assert rules["campaign"][0] == "frequency"
    assert rules["crm_ref"][0] == "dropped" and "identifier" in rules["crm_ref"][1]
    assert rules["row_no"][0] == "dropped" and "identifier" in rules["row_no"][1]
    assert rules["last_touch"][0] == "dropped" and "timestamp" in rules["last_touch"][1]
    assert rules["channel"][0] == "dropped" and "constant" in rules["channel"][1]
    features = builder.schema_.features
    assert {"lead.seats", "lead.source", "lead.campaign"} <= set(features)
    assert not {"lead.crm_ref", "lead.row_no", "lead.last_touch", "lead.channel"} & set(features)
    assert "lead.source" in builder.schema_.categorical
    inputs = {(c.source, c.name) for c in builder.schema_.inputs}
    assert ("leads", "seats") in inputs and ("leads", "crm_ref") not in inputs
    assert X.shape == (400, len(features))
    # the frequency code is the share of training rows holding the value
    col = features.index("lead.campaign")
    share = history["campaign"].map(history["campaign"].value_counts(normalize=True))
    np.testing.assert_allclose(X[:, col], share.to_numpy())


def test_time_ordered_rate_of_a_row_ignores_its_own_and_later_outcomes():
    history, _ = toy_history(300)
    keys = level_keys(history["partner_id"].to_numpy(), None, history["vertical"].to_numpy())
    y = history["converted"].to_numpy()
    t = np.arange(300) // 2  # pairs of rows share a timestamp: ties see neither
    strengths = fit_strengths(keys, y)
    rates, counts = leak_free_rates(keys, y, strengths, time=t)
    i = 201  # shares its timestamp with row 200
    flipped = y.copy()
    flipped[i] = 1 - flipped[i]
    rates2, _ = leak_free_rates(keys, flipped, strengths, time=t)
    for level in (0, 1):
        assert rates2[level][i] == rates[level][i]
        np.testing.assert_array_equal(rates2[level][: i + 1], rates[level][: i + 1])
    same = keys[1] == keys[1][i]
    later = same & (t > t[i])
    assert later.any() and np.all(rates2[1][later] != rates[1][later])
    first = history.groupby("partner_id").head(1).index
    assert np.all(counts[1][first] == 0.0)  # the first row of a partner rests on nothing


def test_builder_counts_only_earlier_rows():
    history, partners = toy_history(300)
    builder, X = _fit(history, partners)
    count = builder.schema_.features.index("partner_history_log")
    earlier = history.groupby("partner_id").cumcount().to_numpy()
    np.testing.assert_allclose(X[:, count], np.log1p(earlier))


def test_partner_rate_without_time_is_out_of_fold():
    history, partners = toy_history(300)
    builder, X = _fit(history, partners, time=False)
    rate = builder.schema_.features.index("partner_rate")
    for i in (0, 57, 299):
        flipped = history.copy()
        flipped.loc[i, "converted"] = 1 - flipped.loc[i, "converted"]
        _, X2 = _fit(flipped, partners, time=False)
        assert X2[i, rate] == X[i, rate]


def test_empirical_bayes_shrinks_toward_tier_and_overall():
    # no spread beyond binomial noise: infinite-like prior strength
    assert estimate_strength(np.array([10.0, 10.0]), np.array([100.0, 100.0]),
                             np.array([0.1, 0.1])) == MAX_STRENGTH
    partner = np.array(["A"] * 200 + ["B"] * 200 + ["C"] * 5)
    tier = np.array(["gold"] * 400 + ["silver"] * 5)
    y = np.concatenate([np.ones(60), np.zeros(140), np.ones(10), np.zeros(190), np.ones(5)])
    keys = level_keys(partner, tier, None)
    strengths = fit_strengths(keys, y)
    table = RateTable.from_history(keys, y, strengths)
    rates, counts = table.lookup(level_keys(np.array(["A", "B", "Z"]),
                                            np.array(["gold", "gold", "gold"]), None))
    tier_rate = rates[0][2]
    assert counts[1].tolist() == [200.0, 200.0, 0.0]
    assert rates[1][2] == pytest.approx(tier_rate)  # unknown partner: its tier's rate
    assert 0.05 < rates[1][1] < tier_rate < rates[1][0] < 0.30  # shrunk, order kept
    # partner C converted 5 of 5: smoothed well below 1
    rates_c, _ = table.lookup(level_keys(np.array(["C"]), np.array(["silver"]), None))
    assert rates_c[1][0] < 0.9


def test_pair_features_by_hand():
    history, partners = toy_history(300)
    history["account_owner_partner_id"] = pd.Series([np.nan] * 299 + ["B"], dtype="str")
    builder, _ = _fit(history, partners)
    leads = pd.DataFrame({
        "lead_id": ["L1", "L2", "L3"],
        "region": ["EMEA", "NA", "APAC"],
        "vertical": ["retail", "health", None],
        "product": ["crm", None, "erp"],
        "qualification_score": [50.0, 60.0, 70.0],
        "account_owner_partner_id": pd.Series(["B", None, "Q"], dtype="str"),
        "created_at": pd.Timestamp("2024-06-01", tz="UTC"),
    })
    lead_index = np.array([0, 0, 0, 1, 1, 2])
    partner_index = np.array([0, 1, 2, 0, 3, 2])
    X = builder.matrix(builder.prepare(leads, partners), lead_index, partner_index)
    f = builder.schema_.features

    def col(name: str) -> list[float]:
        return X[:, f.index(name)].tolist()

    assert col("region_match") == [0, 1, 1, 1, 1, 0]
    assert col("vertical_match")[:5] == [1, 0, 1, 0, 0]
    assert np.isnan(col("vertical_match")[5])  # L3 names no vertical
    assert col("certification_match")[:3] == [1, 0, 1]
    assert np.isnan(col("certification_match")[3:5]).all()  # L2 names no product
    assert col("certification_match")[5] == 1
    assert col("is_owner") == [0, 1, 0, 0, 0, 0]
    assert col("owned_by_other") == [1, 0, 1, 0, 0, 1]
    assert col("tier")[:3] == [0, 0, 1]  # codes of gold, gold, silver


def test_partner_columns_inside_history_are_not_read_from_it():
    history, partners = toy_history(200)
    history["tier"] = "gold"
    builder, _ = _fit(history, partners)
    dropped = {d.name: d.reason for d in builder.schema_.dropped}
    assert "partners frame" in dropped["tier"]
    assert ("partners", "tier") in {(c.source, c.name) for c in builder.schema_.inputs}


def test_history_without_partner_id_builds_lead_only_features():
    history, partners = toy_history(200)
    builder, X = _fit(history.drop(columns=["partner_id"]), partners)
    schema = builder.schema_
    assert not schema.partner_aware
    assert {c.source for c in schema.inputs} == {"leads"}
    assert "partner_rate" not in schema.features and "tier" not in schema.features
    assert X.shape == (200, len(schema.features))


def test_partner_missing_from_partners_frame_gets_missing_attributes():
    history, partners = toy_history(200)
    history.loc[:9, "partner_id"] = "GHOST"
    builder, X = _fit(history, partners)
    tier = builder.schema_.features.index("tier")
    assert np.isnan(X[:10, tier]).all() and not np.isnan(X[10:, tier]).any()


def _effect_data(n: int = 6000, seed: int = 3):
    """Rows with a known partner effect and a known partner x vertical effect (log-odds)."""
    rng = np.random.default_rng(seed)
    partner = rng.choice(np.array(["A", "B", "C"], dtype=object), n)
    vertical = rng.choice(np.array(["retail", "health"], dtype=object), n)
    quality = rng.standard_normal(n)
    p_effect = {"A": 0.8, "B": 0.0, "C": -0.8}
    cell_effect = {("A", "retail"): 0.0, ("A", "health"): 0.0, ("B", "retail"): 0.7,
                   ("B", "health"): -0.7, ("C", "retail"): 0.0, ("C", "health"): 0.0}
    logit = (-2.0 + 0.5 * quality + np.array([p_effect[p] for p in partner])
             + np.array([cell_effect[(p, v)] for p, v in zip(partner, vertical, strict=True)]))
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    keys = level_keys(partner, None, vertical)
    return keys, quality[:, None], y


def test_effects_recover_partner_and_partner_vertical_log_odds():
    keys, fixed, y = _effect_data(20_000)
    table = fit_effects(keys[1], keys[2], fixed, y, sd_partner=1.0, sd_cell=1.0)
    partner, cell = table.lookup(
        np.array(["A", "C", "B", "B", "Z"], dtype=object),
        np.array(["A\x1fretail", "C\x1fretail", "B\x1fretail", "B\x1fhealth", "Z\x1fretail"],
                 dtype=object))
    total = partner + cell  # a partner's effect is shared between its two levels
    # effects are relative to the intercept: compare differences, within sampling error
    assert total[0] - total[1] == pytest.approx(1.6, abs=0.3)
    assert total[2] - total[3] == pytest.approx(1.4, abs=0.3)
    assert partner[4] == 0.0 and cell[4] == 0.0  # an unknown partner gets the prior mean
    # a tight prior shrinks every effect toward 0
    tight = fit_effects(keys[1], keys[2], fixed, y, sd_partner=0.01, sd_cell=0.01)
    assert np.abs(tight.partner_effect).max() < 0.1 * np.abs(table.partner_effect).max()


def test_time_blocked_effects_never_see_their_own_or_later_outcomes():
    keys, fixed, y = _effect_data(2000)
    t = np.arange(len(y))
    pe, ce = leak_free_effects(keys[1], keys[2], fixed, y, 0.5, 0.5, time=t, n_blocks=4)
    assert np.all(pe[:500] == 0.0) and np.all(ce[:500] == 0.0)  # the first block has no past
    assert np.all(pe[500:] != 0.0)
    flipped = y.copy()
    flipped[1200:] = 1 - flipped[1200:]  # rows of block 2 onward change outcome
    pe2, ce2 = leak_free_effects(keys[1], keys[2], fixed, flipped, 0.5, 0.5, time=t, n_blocks=4)
    np.testing.assert_array_equal(pe2[:1500], pe[:1500])  # blocks 0-2 rest on rows < 1000
    np.testing.assert_array_equal(ce2[:1500], ce[:1500])
    assert not np.array_equal(pe2[1500:], pe[1500:])
    # without time: out of fold, so a row's own outcome never moves its value
    pe3, _ = leak_free_effects(keys[1], keys[2], fixed, y, 0.5, 0.5, n_blocks=4)
    one = y.copy()
    one[7] = 1 - one[7]
    pe4, _ = leak_free_effects(keys[1], keys[2], fixed, one, 0.5, 0.5, n_blocks=4)
    assert pe4[7] == pe3[7]


def test_strength_becomes_a_log_odds_spread():
    # beta prior variance mu(1-mu)/(m+1), divided by the logistic slope mu(1-mu)
    assert strength_to_sd(99.0, 0.1) == pytest.approx(np.sqrt(0.09 / 100) / 0.09)
    assert strength_to_sd(10.0, 0.1) > strength_to_sd(1000.0, 0.1)


def test_builder_effect_features_are_leak_free_in_training_and_full_at_scoring():
    history, partners = toy_history(400)
    builder, X = _fit(history, partners)
    features = builder.schema_.features
    pe, ce = features.index("partner_effect"), features.index("partner_vertical_effect")
    assert np.all(X[:, pe] != 0.0) and np.all(X[:, ce] != 0.0)  # cross-fitted: all have one
    # out of fold: a row's own outcome moves its training value only through the two prior
    # SDs, estimated once on all rows (O(1/n))
    y = history["converted"].to_numpy().copy()
    y[17] = 1 - y[17]
    _, flipped = _fit(history.assign(converted=y), partners)
    moved = np.abs(flipped[:, pe] - X[:, pe])
    assert moved.max() > 50 * moved[17]  # rows of other folds move, its own barely
    assert abs(flipped[17, ce] - X[17, ce]) < 1e-5
    rows = builder.transform_history(history, partners)
    table = builder.effect_table_
    assert table is not None
    expected, _ = table.lookup(history["partner_id"].to_numpy(dtype=object),
                               (history["partner_id"] + "\x1f" + history["vertical"]).to_numpy(
                                   dtype=object))
    np.testing.assert_allclose(rows[:, pe], expected)
