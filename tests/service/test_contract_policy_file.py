"""Reading the policy file: TOML syntax errors with their line, then the policy rules."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from allocator.errors import InputError
from allocator.policy import DEFAULT_POLICY_TOML, policy_from_dict
from service.contract import load_partners, load_policy, load_policy_text
from tests.service.contract_support import problems_of


def test_the_default_policy_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(DEFAULT_POLICY_TOML, encoding="utf-8")
    policy = load_policy(path)
    assert policy == policy_from_dict(tomllib.loads(DEFAULT_POLICY_TOML))
    assert policy.tier_names == ("platinum", "gold", "silver", "bronze")
    assert policy.max_share_per_partner == 0.10 and policy.partner_floor == 2


def test_a_toml_syntax_error_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('[objective]\nvalue = "revenue"\nmin_score = \n', encoding="utf-8")
    with pytest.raises(InputError, match=r"row 3: invalid TOML at line 3, column 13: "
                                         r"Invalid value") as ei:
        load_policy(path)
    (problem,) = problems_of(ei)
    assert (problem.file, problem.row, problem.column) == (str(path), 3, None)


def test_text_without_a_file_uses_the_given_name() -> None:
    with pytest.raises(InputError) as ei:
        load_policy_text("[fairness\n", file="uploaded policy.toml")
    (problem,) = problems_of(ei)
    assert problem.file == "uploaded policy.toml" and problem.row == 1
    assert problem.rule.startswith("invalid TOML at line 1, column 10: ")


def test_policy_rules_are_reported_with_the_file_name() -> None:
    text = '[objective]\nvalu = "revenue"\n[fairness]\npartner_floor = -1\n'
    with pytest.raises(InputError, match=r"key 'objective\.valu': unknown policy key "
                                         r"'objective\.valu' \(did you mean 'value'\?\)") as ei:
        load_policy_text(text, file="p.toml")
    assert [(p.file, p.column, p.rule) for p in problems_of(ei)] == [
        ("p.toml", "objective.valu", "unknown policy key 'objective.valu' (did you mean 'value'?)"),
        ("p.toml", "fairness.partner_floor", "'fairness.partner_floor' must be a non-negative "
                                             "integer"),
    ]


def test_a_policy_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_bytes(b'[objective]\nvalue = "\xff"\n')
    with pytest.raises(InputError, match="the file is not UTF-8 text"):
        load_policy(path)


def test_a_missing_policy_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_policy(tmp_path / "absent.toml")


def test_the_tiers_of_the_loaded_policy_check_partners(tmp_path: Path) -> None:
    policy = load_policy_text('[tiers.gold]\nmin_share = 0.1\n[pool]\ncascade = ["gold"]\n')
    path = tmp_path / "partners.csv"
    path.write_text("partner_id,tier,regions,capacity\nP1,gold,NA,1\nP2,silver,NA,1\n",
                    encoding="utf-8")
    with pytest.raises(InputError, match="tier 'silver' is not named in the policy "
                                         r"\(tiers: gold\)"):
        load_partners(path, policy=policy)
