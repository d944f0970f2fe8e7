"""The round pipeline end to end: simulated channels, hand-made pairs, files written."""

from __future__ import annotations

import json
import tomllib
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from allocator.errors import InfeasiblePolicyError, InputError
from allocator.policy import DEFAULT_POLICY_TOML, Policy, policy_from_dict
from allocator.verify import verify
from models.simulate import simulate_channel
from service.pipeline import (
    ASSIGNMENT_COLUMNS,
    HEURISTIC_SOURCE,
    PAIRS_SOURCE,
    exclusion_table,
    heuristic_probability,
    run_round,
    score_round,
    write_round,
)

SUMMARY_KEYS = {
    "status", "objective", "objective_kind", "expected_conversions", "bound", "gap", "method",
    "price_source", "verification", "fairness", "baselines", "partners", "rules", "held_back",
    "held_back_by_reason", "scores_source", "notes", "timings", "counts"}
PARTNER_KEYS = {"partner_id", "tier", "received", "expected_value", "expected_conversions",
                "floor", "cap", "floor_binding", "cap_binding", "floor_shortfall", "price",
                "entitlement"}
BASELINE_KEYS = {"objective", "vs_optimizer_pct", "assigned", "verification", "fairness"}


@pytest.fixture(scope="module")
def policy() -> Policy:
    return policy_from_dict(tomllib.loads(DEFAULT_POLICY_TOML))


@pytest.fixture(scope="module")
def channel():
    ch = simulate_channel(n_partners=14, n_leads=320, n_history=40, seed=11)
    return ch


@pytest.fixture(scope="module")
def unit_round(channel, policy):
    leads = channel.leads.assign(effort=1.0)
    stages: list[str] = []
    result = run_round(channel.partners, leads, policy, progress=stages.append)
    return result, leads, stages


def test_summary_carries_every_documented_key(unit_round):
    result, _, stages = unit_round
    s = result.summary
    assert set(s) == SUMMARY_KEYS
    assert s["status"] == "optimal" and s["objective_kind"] == "conversions"
    assert s["scores_source"] == HEURISTIC_SOURCE
    assert s["verification"] == {"ok": True, "violations": []}
    assert set(s["baselines"]) == {"round_robin", "tier_weighted_round_robin", "greedy",
                                   "rule_cascade"}
    for b in s["baselines"].values():
        assert set(b) == BASELINE_KEYS
    assert all(set(p) == PARTNER_KEYS for p in s["partners"])
    assert {"gini_leads", "jain_leads", "worst_off_share"} <= set(s["fairness"])
    assert stages == ["eligibility", "scores", "problem", "solve", "explain", "rule prices",
                      "baselines", "fairness"]
    assert set(stages) <= set(s["timings"])
    json.dumps(s, allow_nan=False)  # strict JSON: no NaN, no numpy values


def test_counts_add_up_and_every_lead_has_a_row(unit_round):
    result, leads, _ = unit_round
    c = result.summary["counts"]
    assert c["leads"] == len(leads) == c["in_round"] + c["held_back"]
    assert c["assigned"] + c["unassigned"] == c["in_round"]
    assert sum(result.summary["held_back_by_reason"].values()) == c["held_back"]
    a = result.assignments
    assert list(a.columns) == list(ASSIGNMENT_COLUMNS)
    assert sorted(a["lead_id"]) == sorted(leads["lead_id"])
    assigned = a[a["status"] == "assigned"]
    assert len(assigned) == c["assigned"] and (assigned["partner_id"] != "").all()
    assert (assigned["rank"] >= 1).all()
    assert a.loc[a["status"] == "held_back", "reason"].str.startswith("held back: ").all()
    assert (a["reason"] != "").all()
    received = sum(p["received"] for p in result.summary["partners"])
    assert received == c["assigned"]


def test_optimizer_beats_every_baseline_that_keeps_the_rules(unit_round):
    result, _, _ = unit_round
    s = result.summary
    feasible = [n for n, b in s["baselines"].items() if b["verification"]["ok"]]
    assert feasible, "no baseline kept the rules: the comparison would be empty"
    for name, b in s["baselines"].items():
        assert b["verification"]["ok"] == verify(result.problem,
                                                 result.baselines[name].lead_partner).ok
        if b["verification"]["ok"]:
            assert s["objective"] >= b["objective"] - 1e-9, name
            assert b["vs_optimizer_pct"] <= 1e-9
        else:
            assert b["verification"]["violations"]


def test_exclusion_groups_match_asking_lead_by_lead(channel, policy):
    leads = channel.leads
    rejected = pd.DataFrame({"lead_id": leads["lead_id"].iloc[:30:3],
                             "partner_id": channel.partners["partner_id"].iloc[:10]})
    elig = score_round(channel.partners, leads, policy, rejected=rejected).eligibility
    assert elig is not None
    rows = np.asarray(elig.leads_in_round)
    table = exclusion_table(elig, leads, rows, rejected)
    for k, i in enumerate(rows.tolist()):
        lead = str(leads["lead_id"].iat[i])
        want = elig.excluded_counts(lead)
        got = {rule: int(table[rule].to_numpy()[k]) for rule in want}
        assert got == want, lead


def test_a_given_scorer_is_used_and_named(channel, policy):
    leads = channel.leads.assign(effort=1.0)

    def truth(pairs: pd.DataFrame, lds: pd.DataFrame, parts: pd.DataFrame) -> np.ndarray:
        return channel.true_p(pairs["lead_id"], pairs["partner_id"])

    result = run_round(channel.partners, leads, policy, scorer=truth)
    assert result.summary["scores_source"] == "scores: scorer given"
    a = result.assignments[result.assignments["status"] == "assigned"]
    np.testing.assert_allclose(a["score"], channel.true_p(a["lead_id"], a["partner_id"]))
    assert result.summary["expected_conversions"] == pytest.approx(result.summary["objective"])


def test_revenue_objective_reports_value_and_conversions_apart(channel, policy):
    leads = channel.leads.assign(effort=1.0)
    result = run_round(channel.partners, leads, replace(policy, objective_value="revenue"))
    s = result.summary
    assert s["objective_kind"] == "revenue"
    chosen = result.allocation.lead_pair[result.allocation.lead_pair >= 0]
    p = result.scored.probability
    assert p is not None
    assert s["expected_conversions"] == pytest.approx(float(p[chosen].sum()))
    assert s["objective"] > s["expected_conversions"]  # deal sizes are in the thousands


def test_effort_weighted_round_is_solved_and_verified(channel, policy):
    result = run_round(channel.partners, channel.leads, policy, time_limit_s=2)
    assert result.problem.pair_effort is not None
    assert result.summary["verification"]["ok"]
    assert result.summary["status"] in ("optimal", "feasible", "time_limit")


# -- bring your own pairs ----------------------------------------------------------------------

def _partners(active: tuple[bool, ...] = (True, True, True)) -> pd.DataFrame:
    return pd.DataFrame({
        "partner_id": ["A", "B", "C"], "name": ["a", "b", "c"],
        "tier": ["gold", "silver", "bronze"], "regions": [("EU",)] * 3,
        "verticals": [(), (), ()], "certifications": [(), (), ()],
        "capacity": np.array([1, 5, 5], dtype=np.int64),
        "open_leads": np.zeros(3, dtype=np.int64), "active": list(active)})


def _pairs() -> pd.DataFrame:
    return pd.DataFrame({"lead_id": ["x", "x", "y", "y", "z"],
                         "partner_id": ["A", "B", "A", "C", "C"],
                         "score": [0.9, 0.5, 0.8, 0.6, 2.5]})


def test_given_pairs_are_all_eligible_and_valued_as_given():
    result = run_round(_partners(), None, Policy(), pairs=_pairs())
    s = result.summary
    assert s["scores_source"] == PAIRS_SOURCE
    assert s["objective"] == pytest.approx(0.9 + 0.6 + 2.5)
    a = result.assignments.set_index("lead_id")
    assert str(a.loc["y", "reason"]).startswith(
        "given to C (score 0.6, rank 2 of 2): partner A had a higher score (0.8 vs 0.6) but its "
        "capacity of 1 was full; one more unit of that cap is worth 0.2 of score")
    assert s["counts"]["held_back"] == 0


def test_given_pairs_hold_back_leads_without_a_pair_and_drop_inactive_partners():
    leads = pd.DataFrame({"lead_id": ["x", "y", "z", "w"]})
    result = run_round(_partners(active=(True, True, False)), leads, Policy(), pairs=_pairs())
    s = result.summary
    assert s["held_back"] == [
        {"lead_id": "z", "reason": "every pair listed for this lead names an inactive partner"},
        {"lead_id": "w", "reason": "no pair lists this lead in the pairs file"}]
    assert s["held_back_by_reason"] == {"inactive": 1, "no_pair": 1}
    assert "2 pairs name an inactive partner and were left out" in s["notes"][0]
    a = result.assignments.set_index("lead_id")
    assert a.loc["w", "status"] == "held_back" and a.loc["z", "status"] == "held_back"
    assert a.loc["w", "reason"] == "held back: no pair lists this lead in the pairs file"
    assert len(a) == 4


def test_every_problem_of_a_pairs_frame_is_reported_at_once():
    bad = pd.DataFrame({"lead_id": ["x", "x", "q", "y"], "partner_id": ["A", "A", "B", "Z"],
                        "score": [0.1, 0.2, float("nan"), float("inf")],
                        "effort": [1.0, 0.0, 1.0, 1.0]})
    leads = pd.DataFrame({"lead_id": ["x", "y"]})
    with pytest.raises(InputError) as caught:
        score_round(_partners(), leads, Policy(), pairs=bad)
    text = str(caught.value)
    for needle in ("row 4, column 'partner_id': value 'Z': partner_id 'Z' is not in partners",
                   "row 3, column 'lead_id': value 'q': lead_id 'q' is not in leads",
                   "row 2, column 'lead_id,partner_id'", "duplicate (lead_id, partner_id)",
                   "row 3, column 'score'", "row 4, column 'score'",
                   "score must be a finite number",
                   "row 2, column 'effort': value 0.0: effort must be a positive finite number"):
        assert needle in text
    assert len(caught.value.problems) == 6


def test_an_infeasible_policy_raises_with_the_rules_in_words():
    strict = Policy(assign_all=True)
    pairs = pd.DataFrame({"lead_id": ["x", "y"], "partner_id": ["A", "A"], "score": [0.5, 0.4]})
    with pytest.raises(InfeasiblePolicyError, match="infeasible"):
        run_round(_partners(), None, strict, pairs=pairs)


def test_write_round_writes_both_files_and_leaves_nothing_else(tmp_path):
    result = run_round(_partners(), None, Policy(), pairs=_pairs())
    out = tmp_path / "round"
    paths = write_round(result, out)
    assert sorted(p.name for p in out.iterdir()) == ["assignments.csv", "summary.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["round"]
    summary = json.loads(paths["summary"].read_text())
    assert summary["objective"] == pytest.approx(4.0)
    csv = pd.read_csv(paths["assignments"], keep_default_na=False)
    assert list(csv.columns) == list(ASSIGNMENT_COLUMNS)
    assert sorted(csv["lead_id"]) == ["x", "y", "z"]
    write_round(result, out)  # a second round replaces the files
    assert sorted(p.name for p in out.iterdir()) == ["assignments.csv", "summary.json"]


def test_heuristic_prior_is_the_stated_formula():
    partners = pd.DataFrame({"partner_id": ["A", "B"], "verticals": [("retail",), ()],
                             "certifications": [("cloud",), ()]})
    leads = pd.DataFrame({"lead_id": ["x", "y"], "qualification_score": [50.0, np.nan],
                          "intent": ["high", None], "vertical": ["retail", "retail"],
                          "product": ["cloud", None]})
    pairs = pd.DataFrame({"lead_index": [0, 0, 1], "partner_index": [0, 1, 0]})
    p = heuristic_probability(pairs, leads, partners)
    base = 0.04 + 0.16 * 0.5
    np.testing.assert_allclose(p, [base * 1.5 * 1.3 * 1.2, base * 1.5, base * 1.3])


def test_a_round_with_every_lead_held_back_still_answers(channel, policy, tmp_path):
    leads = channel.leads.assign(effort=1.0, qualification_score=10.0)
    result = run_round(channel.partners, leads, policy)
    s = result.summary
    assert s["counts"]["in_round"] == 0 and s["counts"]["held_back"] == len(leads)
    assert s["held_back_by_reason"] == {"qualification": len(leads)}
    assert s["objective"] == 0 and s["baselines"]["greedy"]["vs_optimizer_pct"] is None
    write_round(result, tmp_path / "out")
    rows = pd.read_csv(tmp_path / "out" / "assignments.csv", keep_default_na=False)
    assert len(rows) == len(leads) and (rows["status"] == "held_back").all()


def test_inexact_prices_of_binding_rules_are_checked_by_re_solving(channel):
    """A binding quota is priced by its Lagrange multiplier or an LP dual; the round also
    re-solves it relaxed one step and reports that price beside the solver's."""
    import tomllib

    from allocator.policy import policy_from_dict

    policy = policy_from_dict(tomllib.loads(
        '[[quotas]]\ntier = "gold"\nintent = "high"\nmax_share = 0.0\n'))
    leads = channel.leads.assign(effort=1.0)
    result = run_round(channel.partners, leads, policy)
    quota = [r for r in result.summary["rules"] if r["rule"].startswith("quota[")]
    assert quota and quota[0]["binding"]
    assert "resolve_price" in quota[0]
    assert quota[0]["resolve_price"] >= -1e-9  # relaxing a rule never lowers the objective
