"""The simulated channel: determinism, the data contract's dtypes, and its documented properties."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from allocator.eligibility import find_eligible_pairs
from models import simulate_world as world
from models.funnel import STAGES
from models.simulate import (
    B_CERTIFIED,
    B_LOAD,
    B_QUALITY,
    B_SKILL,
    FUNNEL_OFFSETS,
    INTERCEPT,
    PAIR_EFFECT_SD,
    TIER_EFFECT,
    Channel,
    describe_channel,
    funnel_stage,
    pair_effect,
    simulate_channel,
    true_probability,
)


@pytest.fixture(scope="module")
def channel() -> Channel:
    return simulate_channel(200, 5000, 20_000, seed=7, with_truth=True)


def test_same_seed_same_channel_other_seed_other_channel():
    a = simulate_channel(60, 800, 1500, seed=3, with_truth=True)
    b = simulate_channel(60, 800, 1500, seed=3, with_truth=True)
    for name in ("partners", "leads", "history", "truth"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(a.latent.quality, b.latent.quality)
    c = simulate_channel(60, 800, 1500, seed=4)
    assert not c.leads["qualification_score"].equals(a.leads["qualification_score"])
    assert c.truth is None


def test_frames_follow_the_data_contract(channel):
    p, leads, h = channel.partners, channel.leads, channel.history
    assert {c: str(t) for c, t in p.dtypes.items()} == {
        "partner_id": "str", "name": "str", "tier": "str", "regions": "object",
        "verticals": "object", "certifications": "object", "capacity": "int64",
        "open_leads": "int64", "active": "bool"}
    for col in ("regions", "verticals", "certifications"):
        assert all(isinstance(c, tuple) and all(isinstance(x, str) for x in c) for c in p[col])
    assert p["regions"].map(len).min() >= 1 and p["certifications"].map(len).min() >= 1
    lead_types = {"lead_id": "str", "created_at": "datetime64[ns, UTC]", "region": "str",
                  "country": "str", "vertical": "str", "product": "str", "company_size": "Int64",
                  "deal_size": "float64", "intent": "str", "qualification_score": "float64",
                  "account_owner_partner_id": "str", "effort": "float64", "contact_name": "str",
                  "contact_email": "str", "contact_phone": "str"}
    assert {c: str(t) for c, t in leads.dtypes.items()} == lead_types
    assert {c: str(t) for c, t in h.dtypes.items()} == {
        **lead_types, "partner_id": "str", "assigned_at": "datetime64[ns, UTC]",
        "converted": "int64", "stage": "str"}
    assert p["partner_id"].is_unique and leads["lead_id"].is_unique and h["lead_id"].is_unique
    assert not set(h["lead_id"]) & set(leads["lead_id"])
    assert set(leads["intent"].dropna()) == {"high", "medium", "low"}
    assert leads["qualification_score"].between(0, 100).sum() == leads[
        "qualification_score"].notna().sum()
    assert (h["assigned_at"] >= h["created_at"]).all()
    assert leads["created_at"].is_monotonic_increasing  # ids in order of arrival
    assert leads["created_at"].max() - leads["created_at"].min() > pd.Timedelta(days=5)
    assert h["created_at"].max() < leads["created_at"].min()
    assert list(channel.truth.columns) == ["lead_id", "partner_id", "p_true"]


def test_tiers_capacity_and_backlog(channel):
    p = channel.partners
    shares = p["tier"].value_counts(normalize=True)
    assert shares.to_dict() == {"bronze": 0.5, "silver": 0.3, "gold": 0.15, "platinum": 0.05}
    mean_cap = p.groupby("tier")["capacity"].mean()
    assert mean_cap["platinum"] > mean_cap["gold"] > mean_cap["silver"] > mean_cap["bronze"]
    assert 0.6 * len(channel.leads) <= p["capacity"].sum() <= 0.9 * len(channel.leads)
    load = p["open_leads"] / p["capacity"]
    assert load.std() > 0.2 and (p["open_leads"] >= 0).all()
    assert 0.9 < p["active"].mean() < 1.0


def test_leads_have_the_documented_mix(channel):
    leads = channel.leads
    assert set(leads["region"]) == {"NA", "EMEA", "APAC", "LATAM"}
    assert leads["country"].nunique() > 30
    assert leads["vertical"].nunique() == 8 and leads["product"].nunique() == 6
    below = (leads["qualification_score"] < 40).mean()
    assert 0.10 < below < 0.30
    assert 0.01 < leads["qualification_score"].isna().mean() < 0.04
    assert 0.03 < leads["account_owner_partner_id"].notna().mean() < 0.07
    assert set(leads["account_owner_partner_id"].dropna()) <= set(channel.partners["partner_id"])
    assert (leads["effort"] == 1.0).mean() > 0.8 and leads["effort"].max() > 1.0
    deal = leads["deal_size"].dropna()
    assert deal.mean() > 1.5 * deal.median()  # heavy right tail
    assert deal.nlargest(len(deal) // 100).sum() > 0.10 * deal.sum()  # top 1 % hold > 10 %
    assert leads["contact_email"].dropna().str.fullmatch(r"[a-z.0-9]+@example\.com").all()


def test_coverage_has_overlaps_and_gaps(channel):
    p = channel.partners
    wide = p["regions"].map(lambda r: any(t in world.REGIONS for t in r))
    assert 0 < wide.sum() < len(p) / 2  # some partners cover whole regions, most do not
    listed = {t for r in p["regions"] for t in r}
    assert not listed & set(world.UNCOVERED_COUNTRIES + world.THIN_COUNTRIES)
    assert "LATAM" not in listed
    truth_leads = set(channel.truth["lead_id"])
    gap = channel.leads[channel.leads["country"].isin(world.UNCOVERED_COUNTRIES)]
    assert len(gap) > 0 and not set(gap["lead_id"]) & truth_leads
    per_lead = channel.truth.groupby("lead_id").size()
    assert per_lead.max() > 5 and (per_lead > 1).mean() > 0.8  # leads share partners


def test_history_is_round_robin_over_eligible_partners(channel):
    h = channel.history
    assert len(h) == 20_000
    assert (h["qualification_score"] >= 40).all()  # only qualified leads were given out
    elig = find_eligible_pairs(channel.partners, h, world.default_policy(False))
    eligible = set(zip(elig.pairs["lead_id"], elig.pairs["partner_id"], strict=True))
    assert all(pair in eligible for pair in zip(h["lead_id"], h["partner_id"], strict=True))
    # within a queue (same eligible set) each eligible partner got n/k leads, give or take one
    queue = [h["region"], h["country"], h["product"].fillna("")]
    size = elig.pairs.groupby("lead_id").size()
    checked = 0
    for _, rows in h.groupby(queue):
        k = int(size[rows["lead_id"].iloc[0]])
        counts = rows["partner_id"].value_counts()
        if len(rows) >= k:
            assert len(counts) == k and counts.max() - counts.min() <= 1
            checked += 1
    assert checked > 20


def test_conversion_rate_and_the_value_of_choosing(channel):
    facts = describe_channel(channel)
    assert 0.05 <= facts["history_conversion_rate"] <= 0.15
    assert 0.05 <= facts["mean_p_true"] <= 0.15
    assert facts["best_to_mean_p"] >= 1.7  # the best eligible partner is worth ~2x the average
    # observed tier alone does not find the best partner: the truth is not given away
    t = channel.truth.merge(channel.partners[["partner_id", "tier"]], on="partner_id")
    rank = t["tier"].map({"platinum": 0, "gold": 1, "silver": 2, "bronze": 3})
    by_tier = t.assign(rank=rank).sort_values(["lead_id", "rank"]).groupby("lead_id").first()
    best = t.groupby("lead_id")["p_true"].max()
    assert by_tier["p_true"].mean() < 0.8 * best.mean()
    assert by_tier["p_true"].mean() > t.groupby("lead_id")["p_true"].mean().mean()


def test_truth_is_the_stated_formula_of_the_stated_inputs(channel):
    """Rebuild p for sampled pairs, one by one, from frames, latent and the formula."""
    lat, p = channel.latent, channel.partners.set_index("partner_id")
    leads = channel.leads.set_index("lead_id")
    sample = channel.truth.sample(300, random_state=0)
    for lead_id, partner_id, p_true in sample.itertuples(index=False):
        i = lat.lead_ids.get_loc(lead_id)
        j = channel.partners.index[channel.partners["partner_id"] == partner_id][0]
        lead, partner = leads.loc[lead_id], p.loc[partner_id]
        skill = lat.skill[j, world.VERTICALS.index(lead["vertical"])]
        certified = isinstance(lead["product"], str) and lead["product"] in partner[
            "certifications"]
        load = min(partner["open_leads"] / partner["capacity"], 3.0)
        eps = pair_effect(lat.noise_seed, np.array([lat.lead_key[i]]), np.array([j]))[0]
        logit = (INTERCEPT + B_QUALITY * lat.quality[i] + B_SKILL * skill
                 + B_CERTIFIED * certified + TIER_EFFECT[partner["tier"]] - B_LOAD * load + eps)
        assert p_true == pytest.approx(expit(logit), rel=1e-12)
    again = channel.true_p(sample["lead_id"], sample["partner_id"])
    np.testing.assert_array_equal(again, sample["p_true"].to_numpy())
    # the history's outcomes were drawn from the same function
    h = channel.history
    p_hist = channel.true_p(h["lead_id"], h["partner_id"])
    assert abs(h["converted"].mean() - p_hist.mean()) < 4 * np.sqrt(p_hist.mean() / len(h))


def test_truth_uses_the_allocation_eligibility(channel):
    elig = find_eligible_pairs(channel.partners, channel.leads, world.default_policy())
    pd.testing.assert_frame_equal(channel.truth[["lead_id", "partner_id"]],
                                  elig.pairs[["lead_id", "partner_id"]])


def test_true_probability_formula_and_its_inputs():
    base = true_probability(np.zeros(1), np.zeros(1), np.zeros(1, bool), ["bronze"], np.zeros(1),
                            np.zeros(1))
    assert base[0] == pytest.approx(expit(INTERCEPT))
    args = (np.array([0.5, -1.0]), np.array([1.0, 0.2]), np.array([True, False]),
            np.array(["platinum", "silver"]), np.array([0.5, 9.0]), np.array([0.1, -0.2]))
    by_name = true_probability(*args)
    by_code = true_probability(*args[:3], np.array([0, 2]), *args[4:])
    np.testing.assert_array_equal(by_name, by_code)
    expected = expit(INTERCEPT + B_QUALITY * 0.5 + B_SKILL + B_CERTIFIED + 0.35 - B_LOAD * 0.5
                     + 0.1)
    assert by_name[0] == pytest.approx(expected)
    capped = true_probability(*args[:4], np.array([0.5, np.inf]), args[5])
    assert capped[1] == by_name[1]  # load counts up to 3 only
    with pytest.raises(ValueError, match="Unknown tier in 'tier'"):
        true_probability(*args[:3], np.array(["gold", "diamond"]), *args[4:])


def test_pair_effect_is_a_fixed_normal_per_pair():
    keys = np.arange(200_000)
    eps = pair_effect(5, keys, keys % 97)
    assert abs(eps.mean()) < 0.01 and eps.std() == pytest.approx(PAIR_EFFECT_SD, rel=0.02)
    assert PAIR_EFFECT_SD == 0.15  # the stated function in the module docstring
    np.testing.assert_array_equal(eps[1000:1010], pair_effect(5, keys[1000:1010], keys[1000:1010]
                                                              % 97))
    assert not np.array_equal(eps[:10], pair_effect(6, keys[:10], keys[:10] % 97))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"n_partners": 0}, "'n_partners' must be an integer of at least 1. Got 0 instead."),
    ({"n_leads": -1}, "'n_leads' must be an integer of at least 0. Got -1 instead."),
    ({"n_history": 2.5}, "'n_history' must be an integer of at least 0. Got 2.5 instead."),
])
def test_sizes_are_checked(kwargs, message):
    sizes = {"n_partners": 5, "n_leads": 10, "n_history": 0, **kwargs}
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        simulate_channel(**sizes, seed=1)


def test_tiny_channels_work():
    ch = simulate_channel(1, 10, 5, seed=0, with_truth=True)
    assert ch.partners["active"].all() and len(ch.history) == 5
    empty = simulate_channel(3, 0, 0, seed=0, with_truth=True)
    assert empty.truth is not None and len(empty.truth) == 0
    assert len(empty.leads) == 0 and len(empty.history) == 0


def test_history_stage_is_the_funnel_reached_and_agrees_with_converted(channel):
    h = channel.history
    level = h["stage"].map({s: i for i, s in enumerate(STAGES)}).to_numpy()
    assert not np.isnan(level).any()
    np.testing.assert_array_equal(level == STAGES.index("won"), h["converted"].to_numpy() == 1)
    reached = [(level >= k).mean() for k in range(len(STAGES))]
    assert reached[0] == 1.0 and all(a > b for a, b in itertools.pairwise(reached))
    assert 0.5 < reached[1] < 0.85 and 0.05 < reached[-1] < 0.15  # a plausible funnel
    # stages follow the same odds as conversion: better pairs get further
    p = channel.true_p(h["lead_id"], h["partner_id"])
    means = pd.Series(p).groupby(level).mean()
    assert means.is_monotonic_increasing


def test_funnel_stage_is_the_proportional_odds_of_the_stated_offsets():
    p = np.full(200_000, 0.08)
    draw = np.random.default_rng(0).random(len(p))
    stage = funnel_stage(p, draw)
    logit = np.log(0.08 / 0.92)
    for k, offset in enumerate((*FUNNEL_OFFSETS, 0.0), start=1):
        assert abs((stage >= k).mean() - expit(logit + offset)) < 0.005
    np.testing.assert_array_equal(stage == 4, draw < p)
