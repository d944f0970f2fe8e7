"""policy_from_dict: every policy rule with its exact message, and the policy it builds."""

from __future__ import annotations

import math
import re
import tomllib
from typing import Any

import pytest

from allocator.errors import InputError, InputProblem
from allocator.policy import (
    DEFAULT_POLICY_TOML,
    Policy,
    PoolPolicy,
    Quota,
    SlaPolicy,
    TierRule,
    policy_from_dict,
)

KNOWN_TOP = ("objective, qualification, eligibility, round, capacity, fairness, sla, pool, "
             "tiers, quotas")


def problems(data: dict[str, Any], file: str = "policy.toml") -> list[InputProblem]:
    with pytest.raises(InputError) as excinfo:
        policy_from_dict(data, file=file)
    return excinfo.value.problems


def test_the_default_policy_builds_the_documented_values() -> None:
    policy = policy_from_dict(tomllib.loads(DEFAULT_POLICY_TOML))
    assert policy.objective_value == "conversions"
    assert policy.qualification_min_score == 40.0
    assert (policy.match_region, policy.require_certification, policy.honor_account_owner) == (
        True, True, True)
    assert policy.assign_all is False and policy.max_share_per_partner == 0.10
    assert (policy.partner_floor, policy.fairness_mode) == (2, "hard")
    assert policy.tier("gold") == TierRule("gold", min_share=0.15, max_share=0.60, weight=3.0)
    assert policy.tier("diamond") is None
    assert policy.quotas == (Quota(tier="gold", intent="high", max_share=0.60),)
    assert policy.sla == SlaPolicy(24.0, 48.0, 3)
    assert policy.pool == PoolPolicy(("platinum", "gold", "silver", "bronze"), 4.0)
    assert policy.tier_names == ("platinum", "gold", "silver", "bronze")


def test_an_empty_policy_is_all_defaults() -> None:
    assert policy_from_dict({}) == Policy()


def test_tier_names_list_tier_tables_first_then_the_rest_of_the_cascade() -> None:
    policy = policy_from_dict({"tiers": {"gold": {}, "zinc": {}},
                               "pool": {"cascade": ["platinum", "gold"]}})
    assert policy.tier_names == ("gold", "zinc", "platinum")
    assert Policy(pool=PoolPolicy(cascade=())).tier_names == ()


def test_stable_rule_names() -> None:
    assert TierRule("gold").rule_name == "tier_share[tier=gold]"
    assert Quota("gold", "high").rule_name == "quota[tier=gold,intent=high]"


@pytest.mark.parametrize(
    ("data", "column", "value", "rule"),
    [
        # unknown keys, with the closest known key or the list of known keys
        ({"objectve": {}}, "objectve", None,
         "unknown policy key 'objectve' (did you mean 'objective'?)"),
        ({"zzz": 1}, "zzz", None, f"unknown policy key 'zzz'; known keys: {KNOWN_TOP}"),
        ({"fairness": {"partner_flor": 2}}, "fairness.partner_flor", None,
         "unknown policy key 'fairness.partner_flor' (did you mean 'partner_floor'?)"),
        ({"tiers": {"gold": {"min_shar": 0.1}}}, "tiers.gold.min_shar", None,
         "unknown policy key 'tiers.gold.min_shar' (did you mean 'min_share'?)"),
        # sections must be tables
        ({"objective": "revenue"}, "objective", "revenue", "'objective' must be a table"),
        ({"tiers": 3}, "tiers", 3, "'tiers' must be a table of [tiers.NAME] tables"),
        ({"tiers": {"gold": 1}}, "tiers.gold", 1, "'tiers.gold' must be a table"),
        ({"quotas": {"tier": "gold"}}, "quotas", {"tier": "gold"},
         "'quotas' must be an array of [[quotas]] tables"),
        # kinds of values
        ({"eligibility": {"match_region": "yes"}}, "eligibility.match_region", "yes",
         "'eligibility.match_region' must be true or false"),
        ({"round": {"assign_all": 1}}, "round.assign_all", 1,
         "'round.assign_all' must be true or false"),
        ({"objective": {"value": "profit"}}, "objective.value", "profit",
         "'objective.value' must be one of 'conversions', 'revenue'"),
        ({"fairness": {"mode": "medium"}}, "fairness.mode", "medium",
         "'fairness.mode' must be one of 'hard', 'soft'"),
        ({"fairness": {"partner_floor": -1}}, "fairness.partner_floor", -1,
         "'fairness.partner_floor' must be a non-negative integer"),
        ({"fairness": {"partner_floor": 1.5}}, "fairness.partner_floor", 1.5,
         "'fairness.partner_floor' must be a non-negative integer"),
        ({"sla": {"max_reroutes": True}}, "sla.max_reroutes", True,
         "'sla.max_reroutes' must be a non-negative integer"),
        ({"capacity": {"max_share_per_partner": 1.5}}, "capacity.max_share_per_partner", 1.5,
         "'capacity.max_share_per_partner' must be a number between 0 and 1"),
        ({"capacity": {"max_share_per_partner": "10%"}}, "capacity.max_share_per_partner", "10%",
         "'capacity.max_share_per_partner' must be a number between 0 and 1"),
        ({"tiers": {"gold": {"max_share": -0.1}}}, "tiers.gold.max_share", -0.1,
         "'tiers.gold.max_share' must be a number between 0 and 1"),
        ({"round": {"time_limit_s": 0}}, "round.time_limit_s", 0,
         "'round.time_limit_s' must be a positive number"),
        ({"sla": {"accept_within_hours": math.inf}}, "sla.accept_within_hours", math.inf,
         "'sla.accept_within_hours' must be a positive number"),
        ({"fairness": {"floor_penalty": -2}}, "fairness.floor_penalty", -2,
         "'fairness.floor_penalty' must be a positive number"),
        ({"tiers": {"gold": {"weight": 0}}}, "tiers.gold.weight", 0,
         "'tiers.gold.weight' must be a positive number"),
        ({"qualification": {"min_score": 120}}, "qualification.min_score", 120,
         "'qualification.min_score' must be a number between 0 and 100"),
        ({"qualification": {"min_score": "40"}}, "qualification.min_score", "40",
         "'qualification.min_score' must be a number between 0 and 100"),
        ({"pool": {"cascade": "gold"}}, "pool.cascade", "gold",
         "'pool.cascade' must be a list of non-empty strings"),
        ({"pool": {"cascade": ["gold", ""]}}, "pool.cascade", ["gold", ""],
         "'pool.cascade' must be a list of non-empty strings"),
        ({"quotas": [{"tier": "", "intent": "high", "max_share": 0.5}]}, "quotas[0].tier", "",
         "'quotas[0].tier' must be a non-empty string"),
        ({"quotas": [{"tier": "gold", "intent": "urgent", "max_share": 0.5}]},
         "quotas[0].intent", "urgent", "'quotas[0].intent' must be one of 'high', 'medium', 'low'"),
        # rules across keys
        ({"quotas": [{"tier": "gold", "intent": "high"}]}, "quotas[0]", None,
         "'quotas[0]' needs 'max_share' or 'min_share'"),
        ({"tiers": {"gold": {"min_share": 0.7, "max_share": 0.6}}}, "tiers.gold",
         {"min_share": 0.7, "max_share": 0.6},
         "tier 'gold' has min_share 0.7 above max_share 0.6"),
        ({"tiers": {"a": {"min_share": 0.75}, "b": {"min_share": 0.5}}}, "tiers", 1.25,
         "tier min_share values add up to 1.25, above 1"),
        ({"quotas": [{"tier": "gold", "intent": "low", "min_share": 0.5, "max_share": 0.2}]},
         "quotas[0]", 0.2, "quota min_share is above its max_share"),
        ({"tiers": {"gold": {}}, "quotas": [{"tier": "silver", "intent": "low", "max_share": 1}]},
         "quotas[0].tier", "silver",
         "quota names tier 'silver', which the policy does not name (tiers: gold)"),
    ],
)
def test_each_policy_rule_has_its_exact_message(
    data: dict[str, Any], column: str, value: Any, rule: str
) -> None:
    with pytest.raises(InputError, match=re.escape(rule)) as excinfo:
        policy_from_dict(data)
    assert [(p.file, p.row, p.column, p.value, p.rule) for p in excinfo.value.problems] == [
        ("policy.toml", None, column, value, rule)
    ]


def test_a_quota_without_tier_and_intent_names_both() -> None:
    assert [(p.column, p.rule) for p in problems({"quotas": [{"max_share": 0.5}]})] == [
        ("quotas[0].tier", "'quotas[0]' needs a 'tier' key"),
        ("quotas[0].intent", "'quotas[0]' needs a 'intent' key"),
    ]


def test_a_misspelt_quota_key_is_unknown_and_the_real_key_missing() -> None:
    found = problems({"quotas": [{"tier": "gold", "intnt": "high", "max_share": 0.5}]})
    assert [(p.column, p.rule) for p in found] == [
        ("quotas[0].intnt", "unknown policy key 'quotas[0].intnt' (did you mean 'intent'?)"),
        ("quotas[0].intent", "'quotas[0]' needs a 'intent' key"),
    ]


def test_a_quota_tier_in_the_cascade_is_named() -> None:
    policy = policy_from_dict({
        "tiers": {"gold": {}},
        "pool": {"cascade": ["gold", "silver"]},
        "quotas": [{"tier": "silver", "intent": "low", "max_share": 1}],
    })
    assert policy.quotas[0].tier == "silver"


def test_every_problem_is_reported_at_once_with_the_file_and_key() -> None:
    data = {
        "objective": {"value": "profit"},
        "fairnes": {},
        "fairness": {"partner_floor": -1, "mode": "soft"},
        "tiers": {"gold": {"min_share": 2}},
    }
    found = problems(data, file="rules.toml")
    assert [p.column for p in found] == [
        "objective.value", "fairnes", "fairness.partner_floor", "tiers.gold.min_share"
    ]
    assert {p.file for p in found} == {"rules.toml"}
    text = str(InputError(found))
    assert text.startswith("4 problems in the input:\n")
    assert ("  - rules.toml, key 'fairness.partner_floor': value -1: "
            "'fairness.partner_floor' must be a non-negative integer") in text
