"""Eligibility rules on hand-built frames: each rule, its message, and the vectorized pairs."""

from __future__ import annotations

import tomllib
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from allocator.eligibility import find_eligible_pairs
from allocator.policy import DEFAULT_POLICY_TOML, Policy, policy_from_dict

POLICY = policy_from_dict(tomllib.loads(DEFAULT_POLICY_TOML))


def _partners(rows: list[tuple]) -> pd.DataFrame:
    """rows: (partner_id, regions, certifications, active)."""
    return pd.DataFrame({
        "partner_id": [r[0] for r in rows],
        "tier": "gold",
        "regions": pd.Series([r[1] for r in rows], dtype=object),
        "certifications": pd.Series([r[2] for r in rows], dtype=object),
        "capacity": np.full(len(rows), 10, dtype=np.int64),
        "active": [r[3] for r in rows],
    })


def _leads(rows: list[dict]) -> pd.DataFrame:
    base = {"region": "EMEA", "country": "DE", "product": "security",
            "qualification_score": 80.0, "account_owner_partner_id": None}
    return pd.DataFrame([{**base, **r} for r in rows]).astype(
        {"qualification_score": float, "account_owner_partner_id": "str"})


@pytest.fixture
def partners() -> pd.DataFrame:
    return _partners([
        ("P1", ("EMEA",), ("security", "cloud"), True),   # whole region, certified
        ("P2", ("DE", "FR"), ("security",), True),        # countries, certified
        ("P3", ("EMEA",), ("cloud",), True),              # region, lacks security
        ("P4", ("NA",), ("security",), True),             # wrong territory
        ("P5", ("EMEA", "DE"), ("security",), False),     # inactive
        ("P6", ("EMEA", "DE"), ("security",), True),      # region and country: one pair only
    ])


def _pairs_of(elig, lead_id: str) -> list[str]:
    return sorted(elig.pairs.loc[elig.pairs["lead_id"] == lead_id, "partner_id"])


def test_territory_certification_and_activity(partners):
    leads = _leads([{"lead_id": "L1"}])
    elig = find_eligible_pairs(partners, leads, POLICY)
    assert _pairs_of(elig, "L1") == ["P1", "P2", "P6"]
    assert sorted(elig.pairs["partner_index"]) == [0, 1, 5]
    assert elig.pairs["lead_index"].tolist() == [0, 0, 0]
    assert elig.pairs["lead_index"].dtype == np.int64
    assert elig.pairs["partner_index"].dtype == np.int64
    assert elig.leads_in_round.tolist() == [0]
    assert elig.explain_exclusion("L1", "P3") == "partner P3 lacks certification 'security'"
    assert elig.explain_exclusion("L1", "P4") == (
        "partner P4 does not cover region EMEA or country DE")
    assert elig.explain_exclusion("L1", "P5") == "partner P5 is inactive"
    assert elig.excluded_counts("L1") == {
        "qualification": 0, "inactive": 1, "territory": 1, "certification": 1,
        "rejected": 0, "account_owner": 0, "eligible": 3}
    with pytest.raises(ValueError, match="Partner 'P1' is eligible for lead 'L1'"):
        elig.explain_exclusion("L1", "P1")


def test_country_alone_matches_and_lead_without_country(partners):
    leads = _leads([{"lead_id": "L1", "country": "FR", "region": "APAC"},
                    {"lead_id": "L2", "country": None}])
    elig = find_eligible_pairs(partners, leads, POLICY)
    assert _pairs_of(elig, "L1") == ["P2"]
    assert _pairs_of(elig, "L2") == ["P1", "P6"]
    assert elig.explain_exclusion("L2", "P2") == "partner P2 does not cover region EMEA"


def test_rules_switched_off(partners):
    leads = _leads([{"lead_id": "L1"}])
    loose = replace(POLICY, match_region=False, require_certification=False)
    assert _pairs_of(find_eligible_pairs(partners, leads, loose), "L1") == [
        "P1", "P2", "P3", "P4", "P6"]
    no_product = _leads([{"lead_id": "L1", "product": None}])
    assert _pairs_of(find_eligible_pairs(partners, no_product, POLICY), "L1") == [
        "P1", "P2", "P3", "P6"]


def test_qualification_gate_holds_back_with_reason(partners):
    leads = _leads([{"lead_id": "L1", "qualification_score": 32.0},
                    {"lead_id": "L2", "qualification_score": np.nan},
                    {"lead_id": "L3", "qualification_score": 40.0}])
    elig = find_eligible_pairs(partners, leads, POLICY)
    held = dict(zip(elig.held_back["lead_id"], elig.held_back["reason"], strict=True))
    assert held == {"L1": "qualification score 32 is below the minimum of 40",
                    "L2": "qualification score is missing and the minimum is 40"}
    assert set(elig.held_back["rule"]) == {"qualification"}
    assert elig.leads_in_round.tolist() == [2]
    assert set(elig.pairs["lead_id"]) == {"L3"}
    assert elig.explain_exclusion("L1", "P1") == (
        "lead L1 is held back: qualification score 32 is below the minimum of 40")
    assert elig.excluded_counts("L1")["qualification"] == 6
    ungated = find_eligible_pairs(partners, leads, replace(POLICY, qualification_min_score=None))
    assert ungated.leads_in_round.tolist() == [0, 1, 2]


def test_no_eligible_partner_summaries(partners):
    leads = _leads([{"lead_id": "L1", "region": "LATAM", "country": "CO"},
                    {"lead_id": "L2", "product": "storage"},
                    {"lead_id": "L3", "country": None, "product": "cloud"}])
    rejected = pd.DataFrame({"lead_id": ["L3", "L3"], "partner_id": ["P1", "P3"]})
    elig = find_eligible_pairs(partners, leads, POLICY, rejected=rejected)
    held = dict(zip(elig.held_back["lead_id"], elig.held_back["reason"], strict=True))
    assert held["L1"] == "no eligible partner: no active partner covers region LATAM or country CO"
    assert held["L2"] == ("no eligible partner: 4 partners cover region EMEA or country DE, "
                          "none holds certification 'storage'")
    assert held["L3"] == ("no eligible partner: 3 partners cover region EMEA and 2 of them hold "
                          "certification 'cloud'; all of those rejected this lead before")
    assert set(elig.held_back["rule"]) == {"no_eligible_partner"}
    assert len(elig.pairs) == 0 and len(elig.leads_in_round) == 0


def test_rejected_pairs_are_excluded(partners):
    leads = _leads([{"lead_id": "L1"}, {"lead_id": "L2"}])
    rejected = pd.DataFrame({"lead_id": ["L1", "L9"], "partner_id": ["P2", "P1"]})
    elig = find_eligible_pairs(partners, leads, POLICY, rejected=rejected)
    assert _pairs_of(elig, "L1") == ["P1", "P6"]
    assert _pairs_of(elig, "L2") == ["P1", "P2", "P6"]
    assert elig.explain_exclusion("L1", "P2") == "partner P2 rejected this lead before"
    assert elig.excluded_counts("L1")["rejected"] == 1
    assert not elig.is_eligible("L1", "P2") and elig.is_eligible("L2", "P2")
    with pytest.raises(ValueError, match="'rejected' frame must have columns"):
        find_eligible_pairs(partners, leads, POLICY, rejected=pd.DataFrame({"lead": ["L1"]}))


def test_account_owner_takes_the_lead_when_eligible(partners):
    leads = _leads([{"lead_id": "L1", "account_owner_partner_id": "P2"}])
    elig = find_eligible_pairs(partners, leads, POLICY)
    assert _pairs_of(elig, "L1") == ["P2"]
    assert elig.explain_exclusion("L1", "P1") == "lead L1 goes to its account owner P2"
    assert elig.explain_exclusion("L1", "P3") == "partner P3 lacks certification 'security'"
    assert elig.excluded_counts("L1")["account_owner"] == 2
    note = elig.owner_notes.iloc[0]
    assert bool(note["owner_eligible"]) and note["note"] == "lead L1 goes to its account owner P2"
    off = find_eligible_pairs(partners, leads, replace(POLICY, honor_account_owner=False))
    assert _pairs_of(off, "L1") == ["P1", "P2", "P6"] and len(off.owner_notes) == 0


@pytest.mark.parametrize(("owner", "why"), [
    ("P3", "partner P3 lacks certification 'security'"),
    ("P5", "partner P5 is inactive"),
    ("P99", "P99 is not a known partner"),
])
def test_ineligible_account_owner_falls_back_with_a_note(partners, owner, why):
    leads = _leads([{"lead_id": "L1", "account_owner_partner_id": owner}])
    elig = find_eligible_pairs(partners, leads, POLICY)
    assert _pairs_of(elig, "L1") == ["P1", "P2", "P6"]
    note = elig.owner_notes.iloc[0]
    assert not bool(note["owner_eligible"])
    assert note["note"] == (f"account owner {owner} of lead L1 is not eligible ({why}); "
                            "offered to the 3 other eligible partners")


def test_owner_who_rejected_is_not_forced(partners):
    leads = _leads([{"lead_id": "L1", "account_owner_partner_id": "P2"}])
    rejected = pd.DataFrame({"lead_id": ["L1"], "partner_id": ["P2"]})
    elig = find_eligible_pairs(partners, leads, POLICY, rejected=rejected)
    assert _pairs_of(elig, "L1") == ["P1", "P6"]
    assert "partner P2 rejected this lead before" in elig.owner_notes["note"].iloc[0]


def test_unknown_ids_are_named(partners):
    elig = find_eligible_pairs(partners, _leads([{"lead_id": "L1"}]), POLICY)
    with pytest.raises(ValueError, match="Unknown lead_id 'L7'"):
        elig.explain_exclusion("L7", "P1")
    with pytest.raises(ValueError, match="Unknown partner_id 'P7'"):
        elig.explain_exclusion("L1", "P7")


def _brute_force(partners: pd.DataFrame, leads: pd.DataFrame, policy: Policy,
                 rejected: set) -> set:
    gate = policy.qualification_min_score
    plist = partners.to_dict("records")
    out = set()
    for i, lead in enumerate(leads.to_dict("records")):
        if gate is not None and not lead["qualification_score"] >= gate:
            continue
        ok = [j for j, p in enumerate(plist)
              if p["active"]
              and (not policy.match_region or lead["region"] in p["regions"]
                   or lead["country"] in p["regions"])
              and (not policy.require_certification or not isinstance(lead["product"], str)
                   or lead["product"] in p["certifications"])
              and (lead["lead_id"], p["partner_id"]) not in rejected]
        owner = [j for j in ok if policy.honor_account_owner
                 and plist[j]["partner_id"] == lead["account_owner_partner_id"]]
        out |= {(i, j) for j in (owner or ok)}
    return out


@pytest.mark.parametrize("policy", [
    POLICY,
    replace(POLICY, match_region=False),
    replace(POLICY, require_certification=False, honor_account_owner=False),
    replace(POLICY, qualification_min_score=None),
], ids=["default", "no_territory", "no_cert_no_owner", "no_gate"])
def test_vectorized_pairs_match_a_per_pair_loop(policy):
    rng = np.random.default_rng(3)
    terr = ["NA", "EMEA", "US", "CA", "DE", "FR", "GB"]
    prods = ["security", "cloud", "storage"]
    partners = _partners([
        (f"P{j}", tuple(rng.choice(terr, rng.integers(0, 4), replace=False)),
         tuple(rng.choice(prods, rng.integers(0, 3), replace=False)), bool(rng.random() < 0.9))
        for j in range(40)])
    region_of = {"US": "NA", "CA": "NA", "DE": "EMEA", "FR": "EMEA", "GB": "EMEA", "MX": "NA"}
    countries = rng.choice(list(region_of), 300)
    leads = pd.DataFrame({
        "lead_id": [f"L{i}" for i in range(300)],
        "region": [region_of[c] for c in countries], "country": countries,
        "product": pd.Series(rng.choice(np.array([*prods, None], dtype=object), 300), dtype="str"),
        "qualification_score": rng.uniform(0, 100, 300),
        "account_owner_partner_id": pd.Series(
            [f"P{rng.integers(42)}" if rng.random() < 0.2 else None for _ in range(300)],
            dtype="str"),
    })
    rejected = pd.DataFrame({"lead_id": [f"L{i}" for i in rng.integers(300, size=400)],
                             "partner_id": [f"P{j}" for j in rng.integers(40, size=400)]})
    elig = find_eligible_pairs(partners, leads, policy, rejected=rejected)
    got = set(zip(elig.pairs["lead_index"], elig.pairs["partner_index"], strict=True))
    expected = _brute_force(partners, leads, policy,
                            set(zip(rejected["lead_id"], rejected["partner_id"], strict=True)))
    assert got == expected
    assert len(got) == len(elig.pairs)  # no duplicate pairs
    assert (np.diff(elig.pairs["lead_index"]) >= 0).all()  # grouped by lead
    n_pairs = elig.pairs.groupby("lead_index").size()
    assert elig.leads_in_round.tolist() == n_pairs.index.tolist()
    # the vectorized per-lead table agrees with the per-partner count of each lead
    table = elig.excluded_counts_table()
    for i in range(300):
        counts = elig.excluded_counts(f"L{i}")
        assert table.iloc[i, 1:].to_dict() == counts
        assert sum(counts.values()) == len(partners)
        assert counts["eligible"] == n_pairs.get(i, 0) or counts["qualification"] == 40
    for i, j in [(5, 1), (17, 30), (100, 2), (200, 7), (250, 39)]:
        assert elig.is_eligible(f"L{i}", f"P{j}") == ((i, j) in expected)
        if (i, j) not in expected:
            assert elig.explain_exclusion(f"L{i}", f"P{j}")
    assert elig.excluded_counts_table(["L7", "L3"])["lead_id"].tolist() == ["L7", "L3"]
    with pytest.raises(ValueError, match=r"Unknown lead_id values \['L999'\]"):
        elig.excluded_counts_table(["L1", "L999"])
