"""One lead scored on its own (real-time routing) gets exactly what a round gives it.

``LeadScoring`` holds the partner side once and answers a lead in microseconds;
these tests put every lead of a simulated channel through it and through
``score_round`` over all the leads at once, under policies that hold leads at
the qualification gate, leave leads with no eligible partner, send owned leads
to their owner, exclude declined partners and inactive ones, and under the
heuristic prior, a logistic model and a gradient-boosting model.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from allocator.policy import Policy
from models.estimator import ConversionModel
from models.features import FeatureBuilder
from models.scoring import TrainedModel
from models.simulate import simulate_channel
from service.contract import validate_leads, validate_partners
from service.lead_scoring import LeadScoring
from service.pipeline import score_round
from service.route_scoring import typed_record
from tests.service.api_support import rows

GATED = Policy(qualification_min_score=45.0)
OPEN = replace(Policy(), objective_value="revenue", match_region=False,
               require_certification=False, honor_account_owner=False)


@pytest.fixture(scope="module")
def world() -> dict[str, Any]:
    ch = simulate_channel(30, 240, 2500, 11)
    partners = ch.partners.copy()
    partners.loc[[2, 9], "active"] = False
    ids = partners["partner_id"].tolist()
    leads = ch.leads.copy()
    owner = leads["account_owner_partner_id"].astype(object)
    for k, i in enumerate(range(0, 240, 6)):  # owners: eligible or not, inactive, unknown
        owner.iat[i] = ids[k % len(ids)] if k % 5 else "P9999"
    owner.iat[12] = ids[2]
    leads["account_owner_partner_id"] = owner
    leads.loc[leads.index[::7], "qualification_score"] = np.nan
    leads.loc[leads.index[::11], "product"] = "quantum"  # nobody holds this certification
    leads.loc[leads.index[::13], "country"] = np.nan
    leads.loc[leads.index[5::17], "region"] = "ZZ"  # nobody covers it
    leads.loc[leads.index[3::19], "product"] = np.nan
    records = rows(leads)
    history = ch.history
    y = history["converted"].to_numpy()
    # the outcome and what follows it (a funnel stage) are not features
    features = history.drop(columns=["converted", "stage"], errors="ignore")
    models = {}
    for kind in ("logistic", "gbm"):
        builder = FeatureBuilder()
        X = builder.fit_transform(features, y, partners)
        categorical = [builder.schema_.features.index(c) for c in builder.schema_.categorical]
        estimator = ConversionModel(kind=kind, categorical_features=categorical or None,
                                    random_state=0)
        if kind == "gbm":
            estimator.set_params(max_iter=20)
        models[kind] = TrainedModel(builder, estimator.fit(X, y))
    return {"partners": partners, "records": records, "models": models}


def _declined(scoring: LeadScoring, records: list[dict[str, Any]]) -> list[list[str]]:
    """Some leads declined by some, all, or their owner among their eligible partners."""
    out: list[list[str]] = []
    for i, record in enumerate(records):
        eligible = [scoring.rules.partner_ids[j]
                    for j in scoring.pairs(typed_record(record)).partners.tolist()]
        if i % 9 == 1:
            out.append(eligible)  # every eligible partner declined: held
        elif i % 4 == 2:
            out.append([*eligible[:2], "P9999"])  # an unknown id is ignored
        else:
            out.append([])
    return out


def _round(partners: pd.DataFrame, records: list[dict[str, Any]], policy: Policy, scorer: Any,
           declined: list[list[str]]) -> tuple[dict[str, str], dict[str, tuple[list[str],
                                                                              np.ndarray]]]:
    leads = validate_leads(pd.DataFrame.from_records(records), file="leads")
    rejected = pd.DataFrame([(r["lead_id"], p) for r, ps in zip(records, declined, strict=True)
                             for p in ps], columns=["lead_id", "partner_id"])
    scored = score_round(partners, leads, policy, scorer=scorer, rejected=rejected)
    held = dict(zip(scored.held_back["lead_id"], scored.held_back["reason"], strict=True))
    pairs = scored.pairs.assign(value=scored.values)
    given = {str(lid): (g["partner_id"].tolist(), g["value"].to_numpy())
             for lid, g in pairs.groupby("lead_id", sort=False)}
    return held, given


@pytest.mark.parametrize("policy", [GATED, OPEN], ids=["gated", "open-revenue"])
@pytest.mark.parametrize("kind", ["heuristic", "logistic", "gbm"])
def test_each_lead_gets_the_rounds_pairs_values_and_held_reasons(
        world: dict[str, Any], policy: Policy, kind: str) -> None:
    partners = validate_partners(world["partners"], file="partners", policy=policy)
    scorer = None if kind == "heuristic" else world["models"][kind]
    records = world["records"]
    scoring = LeadScoring(partners, policy, scorer)
    declined = _declined(scoring, records)
    held, given = _round(partners, records, policy, scorer, declined)
    typed = [typed_record(r) for r in records]
    if scorer is None:
        got = [scoring.score([t], [d], [r])[0]
               for t, r, d in zip(typed, records, declined, strict=True)]
    else:  # a batch, as the batcher serves them; and a few alone, the same
        got = scoring.score(typed, declined, records)
        for i in range(0, len(records), 40):
            alone, = scoring.score([typed[i]], [declined[i]], [records[i]])
            assert alone.held == got[i].held and alone.partner_ids == got[i].partner_ids
            batch_values = got[i].values
            if alone.values is not None:
                assert batch_values is not None
                np.testing.assert_allclose(alone.values, batch_values, rtol=1e-12, atol=1e-12)
    n_held = n_owned = 0
    for record, answer in zip(records, got, strict=True):
        lid = record["lead_id"]
        if lid in held:
            n_held += 1
            assert answer.held == held[lid] and answer.values is None
            continue
        want_ids, want_values = given[lid]
        assert answer.held is None and list(answer.partner_ids) == want_ids
        assert answer.values is not None
        np.testing.assert_allclose(answer.values, want_values, rtol=1e-12, atol=1e-12)
        n_owned += len(want_ids) == 1 and record.get("account_owner_partner_id") == want_ids[0]
    # the channel exercised what it is meant to
    assert 0 < n_held < len(records) and (n_owned > 0 or not policy.honor_account_owner)
    reasons = set(held.values())
    if policy.qualification_min_score is not None:
        assert any(r.startswith("qualification score") for r in reasons)
        assert any("missing" in r for r in reasons)
        assert any("none holds certification" in r for r in reasons)
        assert any("no active partner covers region ZZ" in r for r in reasons)
    assert any("rejected this lead before" in r for r in reasons)


def test_a_lead_without_deal_size_under_revenue_is_refused_as_alone(
        world: dict[str, Any]) -> None:
    partners = validate_partners(world["partners"], file="partners", policy=OPEN)
    record = {k: v for k, v in world["records"][0].items() if k != "deal_size"}
    scoring = LeadScoring(partners, OPEN, None)
    with pytest.raises(ValueError, match="deal_size"):
        score_round(partners, validate_leads(pd.DataFrame([record])), OPEN)
    with pytest.raises(ValueError, match="deal_size"):
        scoring.score([typed_record(record)], [[]], [record])


def test_heuristic_matches_to_the_last_bit(world: dict[str, Any]) -> None:
    """Same operations in the same order: not merely close."""
    partners = validate_partners(world["partners"], file="partners", policy=GATED)
    records = world["records"][:60]
    scoring = LeadScoring(partners, GATED, None)
    held, given = _round(partners, records, GATED, None, [[] for _ in records])
    for record in records:
        if record["lead_id"] in held:
            continue
        got, = scoring.score([typed_record(record)], [[]], [record])
        assert got.values is not None
        assert got.values.tobytes() == given[record["lead_id"]][1].tobytes()
        assert not math.isnan(float(got.values.sum()))
