"""One allocation round from frames to an explained, compared answer.

:func:`run_round` chains the pure pieces — eligibility → scores → problem →
solve → reasons → baselines → fairness — and returns a :class:`RoundResult`
whose ``summary`` is the JSON the CLI prints and writes; :func:`write_round`
writes ``assignments.csv`` and ``summary.json``.  :func:`score_round` is the
first half alone (eligible pairs and their values), reused by the frontier and
the service.  Nothing here prints: progress goes to an optional callback.

Where the scores come from, in order:

1. ``pairs`` (bring your own): every listed pair is eligible and its ``score``
   is its value as given; a lead id or partner id the frames do not hold, a
   duplicate pair, a score that is not a finite number and an effort that is
   not positive are input errors, all reported at once.  Pairs naming an
   inactive partner are left out (inactive partners receive nothing) and a
   note says how many.  Leads of ``leads`` with no pair are held back.
2. ``scorer``: a trained model (:class:`models.scoring.TrainedModel`, scored
   with :func:`models.scoring.score_pairs`) or any callable
   ``(pairs, leads, partners) -> probabilities``.
3. Neither: the heuristic prior of :func:`heuristic_probability`, a stated
   rule of thumb, flagged in the summary as ``"scores: heuristic prior (no
   model given)"``.

Probabilities become values with :func:`allocator.build.pair_values`
(``p × deal_size`` under the revenue objective).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from allocator.baselines import allocation_objective, lead_pairs, run_baselines
from allocator.build import build_problem, pair_values
from allocator.eligibility import Eligibility, find_eligible_pairs
from allocator.errors import InputError, InputProblem
from allocator.explain import Explanation, explain_allocation
from allocator.fairness import attainable_entitlement, fairness_metrics
from allocator.policy import Policy
from allocator.prices import FLOW_SOURCE
from allocator.problem import Allocation, AllocationProblem, RulePrice, Verification
from allocator.rule_prices import RESOLVE_SOURCE, price_rules_by_resolve
from allocator.solve import solve
from allocator.verify import verify

HEURISTIC_SOURCE = "scores: heuristic prior (no model given)"
PAIRS_SOURCE = "scores: pairs file (values as given)"
ASSIGNMENT_COLUMNS = ("lead_id", "partner_id", "score", "rank", "reason", "status",
                      "stopped_by_rule", "stopped_by_partner", "price")
# Problems spelled out per kind of mistake in a pairs frame before "... and N more".
_SHOWN = 20

Progress = Callable[[str], None]


class Scorer(Protocol):
    """Anything that gives each eligible pair a conversion probability."""

    def __call__(self, pairs: pd.DataFrame, leads: pd.DataFrame,
                 partners: pd.DataFrame) -> np.ndarray: ...


@dataclass(frozen=True, eq=False)
class ScoredRound:
    """The eligible pairs of a round and what each is worth.

    Attributes
    ----------
    partners, leads : DataFrame
        The round's frames (``leads`` holds only ``lead_id`` when pairs came
        without a leads frame).
    pairs : DataFrame
        ``lead_id``, ``partner_id``, ``lead_index``, ``partner_index``.
    probability : ndarray or None
        Per pair, the conversion probability; ``None`` when values were given.
    values : ndarray
        Per pair, its value in the objective's unit (what the optimizer maximizes).
    effort : ndarray or None
        Per pair workload units from a pairs frame's ``effort`` column.
    held_back : DataFrame
        ``lead_id``, ``rule``, ``reason``: leads that are not in the round.
    eligibility : Eligibility or None
        ``None`` for bring-your-own pairs.
    scores_source : str
    notes : tuple of str
    timings_s : dict of str to float
    """

    partners: pd.DataFrame
    leads: pd.DataFrame
    pairs: pd.DataFrame
    probability: np.ndarray | None
    values: np.ndarray
    effort: np.ndarray | None
    held_back: pd.DataFrame
    eligibility: Eligibility | None
    scores_source: str
    notes: tuple[str, ...] = ()
    timings_s: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class BaselineResult:
    """A baseline rule's allocation, its objective, the rules it breaks and its fairness."""

    name: str
    lead_partner: np.ndarray
    objective: float
    verification: Verification
    fairness: dict[str, Any]


@dataclass(frozen=True, eq=False)
class RoundResult:
    """Everything one round produced; ``summary`` is JSON-ready."""

    scored: ScoredRound
    problem: AllocationProblem
    allocation: Allocation
    explanation: Explanation
    baselines: dict[str, BaselineResult]
    fairness: dict[str, Any]
    assignments: pd.DataFrame
    summary: dict[str, Any]


class _Clock:
    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.timings: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if self.progress is not None:
            self.progress(name)
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - started


# -- scores -----------------------------------------------------------------------------------

INTENT_FACTOR = {"high": 1.5, "medium": 1.0, "low": 0.6}


def heuristic_probability(pairs: pd.DataFrame, leads: pd.DataFrame,
                          partners: pd.DataFrame) -> np.ndarray:
    """A stated rule of thumb used when no model is given (flagged in the summary).

    ``p = (0.04 + 0.16 × q) × intent × vertical × certified``, clipped to
    [0.001, 0.95], where ``q`` is ``qualification_score / 100`` (0.5 when
    missing), ``intent`` is 1.5 / 1.0 / 0.6 for high / medium / low (1.0 when
    missing), ``vertical`` is 1.3 when the partner lists the lead's vertical
    and ``certified`` 1.2 when the partner holds the lead's product
    certification (1.0 otherwise).  Nothing is learned: it ranks partners
    only by vertical and certification match.

    Parameters
    ----------
    pairs : DataFrame
        ``lead_index`` and ``partner_index`` (positions in the frames).
    leads, partners : DataFrame
        Data-contract frames.

    Returns
    -------
    ndarray of float64
    """
    li = np.asarray(pairs["lead_index"], dtype=np.int64)
    pj = np.asarray(pairs["partner_index"], dtype=np.int64)

    def lead_col(name: str) -> pd.Series:
        if name in leads.columns:
            return leads[name].reset_index(drop=True)
        return pd.Series([np.nan] * len(leads))

    q = pd.to_numeric(lead_col("qualification_score"), errors="coerce").to_numpy(
        dtype=float, na_value=np.nan) / 100.0
    q = np.where(np.isnan(q), 0.5, q)
    intent = lead_col("intent").map(INTENT_FACTOR).fillna(1.0).to_numpy(dtype=float)
    p = (0.04 + 0.16 * q[li]) * intent[li]
    p = p * np.where(_listed(partners, "verticals", pj, lead_col("vertical"), li), 1.3, 1.0)
    p = p * np.where(_listed(partners, "certifications", pj, lead_col("product"), li), 1.2, 1.0)
    return np.clip(p, 0.001, 0.95)


def _listed(partners: pd.DataFrame, column: str, pj: np.ndarray, lead_value: pd.Series,
            li: np.ndarray) -> np.ndarray:
    """Per pair: the lead's value is in the partner's list column."""
    if column not in partners.columns or len(pj) == 0:
        return np.zeros(len(pj), dtype=bool)
    cells = partners[column].reset_index(drop=True)
    owners = np.repeat(np.arange(len(cells)), [len(c) if isinstance(c, tuple) else 0
                                               for c in cells])
    items = [str(t) for c in cells if isinstance(c, tuple) for t in c]
    if not items:
        return np.zeros(len(pj), dtype=bool)
    known = pd.MultiIndex.from_arrays([owners, np.asarray(items, dtype=object)])
    values = lead_value.astype(object).where(lead_value.notna(), None).to_numpy()[li]
    asked = pd.MultiIndex.from_arrays([pj, values])
    return np.asarray(asked.isin(known), dtype=bool)


def _model_probability(scorer: Any, pairs: pd.DataFrame, leads: pd.DataFrame,
                       partners: pd.DataFrame) -> tuple[np.ndarray, str]:
    if hasattr(scorer, "features") and hasattr(scorer, "estimator"):
        from models.scoring import score_pairs

        name = getattr(scorer, "name", "the model")
        return score_pairs(scorer, pairs, leads, partners), f"scores: {name}"
    return np.asarray(scorer(pairs, leads, partners), dtype=float), "scores: scorer given"


def _check_probabilities(p: np.ndarray, n_pairs: int, source: str) -> np.ndarray:
    p = np.asarray(p, dtype=float).reshape(-1)
    if p.shape[0] != n_pairs:
        raise ValueError(f"The scorer must return one probability per pair ({n_pairs}). "
                         f"Got {p.shape[0]} instead.")
    bad = ~np.isfinite(p)
    if bad.any():
        raise ValueError(f"{source} gave {int(bad.sum())} score(s) that are not finite numbers.")
    return p


def pair_scores(partners: pd.DataFrame, leads: pd.DataFrame, pairs: pd.DataFrame,
                policy: Policy, scorer: Scorer | Any | None = None
                ) -> tuple[np.ndarray, np.ndarray, str]:
    """Probability and value of eligible pairs, and where the scores came from.

    Parameters
    ----------
    partners, leads : DataFrame
        Data-contract frames.
    pairs : DataFrame
        ``lead_id``, ``partner_id``, ``lead_index``, ``partner_index`` (eligible pairs).
    policy : Policy
    scorer : TrainedModel or callable, optional
        ``None``: the heuristic prior (:func:`heuristic_probability`).

    Returns
    -------
    probability, values : ndarray of float64
    source : str

    Raises
    ------
    InputError
        Features a model needs that are missing.
    ValueError
        A scorer that gives the wrong number of scores or scores that are not finite.
    """
    if scorer is None:
        probability, source = heuristic_probability(pairs, leads, partners), HEURISTIC_SOURCE
    else:
        probability, source = _model_probability(scorer, pairs, leads, partners)
    probability = _check_probabilities(probability, len(pairs), source)
    return probability, pair_values(probability, pairs, leads, policy), source


# -- bring-your-own pairs ---------------------------------------------------------------------

def _rows(problems: list[InputProblem], mask: np.ndarray, column: str, values: np.ndarray,
          rule: Callable[[Any], str], file: str) -> None:
    rows = np.flatnonzero(mask)
    for r in rows[:_SHOWN]:
        problems.append(InputProblem(file, int(r) + 1, column, values[r], rule(values[r])))
    if len(rows) > _SHOWN:
        problems.append(InputProblem(file, None, column, None,
                                     f"... and {len(rows) - _SHOWN} more rows"))


def _given_pairs(pairs: pd.DataFrame, partners: pd.DataFrame, leads: pd.DataFrame | None,
                 file: str = "pairs.csv") -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray,
                                                   np.ndarray | None, list[str], np.ndarray]:
    """Map a pairs frame onto the partners and leads; every mistake at once."""
    missing = [c for c in ("lead_id", "partner_id", "score") if c not in pairs.columns]
    if missing:
        raise InputError([InputProblem(file, None, c, None, f"required column '{c}' is missing")
                          for c in missing])
    lead_ids = pairs["lead_id"].astype(str).to_numpy(dtype=object)
    partner_ids = pairs["partner_id"].astype(str).to_numpy(dtype=object)
    problems: list[InputProblem] = []
    pj = pd.Index(partners["partner_id"].astype(str)).get_indexer(pd.Index(partner_ids))
    _rules_unknown = "is not in partners"
    _rows(problems, pj < 0, "partner_id", partner_ids,
          lambda v: f"partner_id {v!r} {_rules_unknown}", file)
    if leads is None:
        leads = pd.DataFrame({"lead_id": pd.unique(lead_ids).astype(str)})
    li = pd.Index(leads["lead_id"].astype(str)).get_indexer(pd.Index(lead_ids))
    _rows(problems, li < 0, "lead_id", lead_ids, lambda v: f"lead_id {v!r} is not in leads", file)
    key = pd.MultiIndex.from_arrays([lead_ids, partner_ids])
    dup = np.asarray(key.duplicated(keep="first"), dtype=bool)
    _rows(problems, dup, "lead_id,partner_id",
          np.array([f"{a}/{b}" for a, b in zip(lead_ids, partner_ids, strict=True)], dtype=object),
          lambda v: f"duplicate (lead_id, partner_id) pair {v}", file)
    score = pd.to_numeric(pairs["score"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    _rows(problems, ~np.isfinite(score), "score", pairs["score"].to_numpy(dtype=object),
          lambda v: "score must be a finite number", file)
    effort = None
    if "effort" in pairs.columns:
        effort = pd.to_numeric(pairs["effort"], errors="coerce").to_numpy(dtype=float,
                                                                          na_value=1.0)
        _rows(problems, ~(np.isfinite(effort) & (effort > 0)), "effort",
              pairs["effort"].to_numpy(dtype=object),
              lambda v: "effort must be a positive finite number", file)
    if problems:
        raise InputError(problems)
    notes: list[str] = []
    keep = np.ones(len(pairs), dtype=bool)
    if "active" in partners.columns:
        active = partners["active"].fillna(True).to_numpy(dtype=bool)
        keep = active[pj]
        if not keep.all():
            n_off = int((~keep).sum())
            notes.append(f"{n_off} pair{'s' if n_off != 1 else ''} name an inactive partner "
                         "and were left out (inactive partners receive nothing).")
    order = np.flatnonzero(keep)
    order = order[np.argsort(li[order], kind="stable")]  # grouped by lead, in lead order
    frame = pd.DataFrame({"lead_id": lead_ids[order].astype(str),
                          "partner_id": partner_ids[order].astype(str),
                          "lead_index": li[order].astype(np.int64),
                          "partner_index": pj[order].astype(np.int64)})
    return (frame, leads, score[order], (None if effort is None else effort[order]), notes,
            li[~keep])


def _no_pair_held_back(leads: pd.DataFrame, pairs: pd.DataFrame,
                       inactive_leads: np.ndarray) -> pd.DataFrame:
    has = np.zeros(len(leads), dtype=bool)
    has[pairs["lead_index"].to_numpy(dtype=np.int64)] = True
    listed = np.zeros(len(leads), dtype=bool)
    listed[inactive_leads] = True
    held = np.flatnonzero(~has)
    only_inactive = listed[held]
    return pd.DataFrame({
        "lead_id": leads["lead_id"].astype(str).to_numpy()[held],
        "rule": np.where(only_inactive, "inactive", "no_pair").astype(object),
        "reason": np.where(only_inactive, "every pair listed for this lead names an inactive "
                           "partner", "no pair lists this lead in the pairs file").astype(object)})


def score_round(partners: pd.DataFrame, leads: pd.DataFrame | None, policy: Policy, *,
                scorer: Scorer | Any | None = None, pairs: pd.DataFrame | None = None,
                rejected: pd.DataFrame | None = None,
                progress: Progress | None = None) -> ScoredRound:
    """Eligible pairs of a round and their values (see the module docstring for the sources).

    Parameters
    ----------
    partners : DataFrame
        Data-contract partners.
    leads : DataFrame or None
        Data-contract leads; may be ``None`` only with ``pairs``.
    policy : Policy
    scorer : TrainedModel or callable, optional
        ``(pairs, leads, partners) -> probabilities`` or a trained model.
    pairs : DataFrame, optional
        ``lead_id``, ``partner_id``, ``score`` and optional ``effort``: scores you bring.
    rejected : DataFrame, optional
        ``lead_id``, ``partner_id`` pairs rejected before (eligibility rule).
    progress : callable, optional
        Called with each stage's name as it starts.

    Returns
    -------
    ScoredRound

    Raises
    ------
    InputError
        Every problem of a pairs frame, or features a model needs that are missing.
    """
    clock = _Clock(progress)
    if pairs is not None:
        with clock.stage("eligibility"):
            frame, leads, values, effort, notes, dropped = _given_pairs(pairs, partners, leads)
            held = _no_pair_held_back(leads, frame, dropped)
        return ScoredRound(partners, leads, frame, None, values, effort, held, None,
                           PAIRS_SOURCE, tuple(notes), clock.timings)
    if leads is None:
        raise ValueError("score_round needs the leads frame unless pairs are given.")
    with clock.stage("eligibility"):
        elig = find_eligible_pairs(partners, leads, policy, rejected)
    with clock.stage("scores"):
        frame = elig.pairs
        probability, values, source = pair_scores(partners, leads, frame, policy, scorer)
    held = elig.held_back[["lead_id", "rule", "reason"]]
    return ScoredRound(partners, leads, frame, probability, values, None, held, elig, source,
                       (), clock.timings)


# -- reasons ----------------------------------------------------------------------------------

# The lead columns eligibility reads (allocator.eligibility, rules 1-6): leads that agree on
# all of them and have no rejection on record have the same partners excluded by each rule.
EXCLUSION_KEY = ("region", "country", "product", "account_owner_partner_id")


def exclusion_table(eligibility: Eligibility, leads: pd.DataFrame, rows: np.ndarray,
                    rejected: pd.DataFrame | None = None) -> pd.DataFrame:
    """How many partners each eligibility rule excluded, for the leads at ``rows``.

    ``Eligibility.excluded_counts`` answers one lead at a time; here it is
    asked once per group of leads that agree on :data:`EXCLUSION_KEY` (leads
    with a rejection on record each form their own group), and the answer is
    shared within the group.

    Parameters
    ----------
    eligibility : Eligibility
    leads : DataFrame
        The frame eligibility was computed on.
    rows : ndarray of int
        Positions in ``leads`` (e.g. ``AllocationProblem.lead_row``).
    rejected : DataFrame, optional
        The rejected pairs given to eligibility.

    Returns
    -------
    DataFrame
        One row per entry of ``rows``: ``lead_id`` and one count column per rule.
    """
    rows = np.asarray(rows, dtype=np.int64)
    sub = leads.iloc[rows]
    lead_ids = sub["lead_id"].astype(str).to_numpy()
    if len(rows) == 0:
        return pd.DataFrame({"lead_id": lead_ids})
    parts = {c: sub[c].astype(object).where(sub[c].notna(), "\0").to_numpy()
             for c in EXCLUSION_KEY if c in sub.columns}
    own = np.zeros(len(rows), dtype=bool)
    if rejected is not None and len(rejected):
        own = np.isin(lead_ids, rejected["lead_id"].astype(str).to_numpy())
    parts["_alone"] = np.where(own, lead_ids, "").astype(object)
    codes = pd.MultiIndex.from_arrays(list(parts.values())).factorize()[0]
    _, first = np.unique(codes, return_index=True)  # first lead of group 0, 1, ...
    answers = [eligibility.excluded_counts(str(lead_ids[k])) for k in first.tolist()]
    out = pd.DataFrame(answers).iloc[codes].reset_index(drop=True)
    out.insert(0, "lead_id", lead_ids)
    return out


# -- the round --------------------------------------------------------------------------------

def run_round(partners: pd.DataFrame, leads: pd.DataFrame | None, policy: Policy, *,
              scorer: Scorer | Any | None = None, pairs: pd.DataFrame | None = None,
              rejected: pd.DataFrame | None = None, time_limit_s: float | None = None,
              progress: Progress | None = None) -> RoundResult:
    """Allocate one round, explain it, and compare it with the baseline rules.

    Parameters
    ----------
    partners : DataFrame
    leads : DataFrame or None
        ``None`` only with ``pairs``.
    policy : Policy
    scorer : TrainedModel or callable, optional
    pairs : DataFrame, optional
        Scores you bring (every listed pair is eligible).
    rejected : DataFrame, optional
    time_limit_s : float, optional
        Solver time limit; defaults to the policy's ``round.time_limit_s``.
    progress : callable, optional
        Called with each stage's name as it starts ("eligibility", "scores",
        "problem", "solve", "explain", "baselines", "fairness").

    Returns
    -------
    RoundResult

    Raises
    ------
    InputError
        Bad input (every problem at once).
    InfeasiblePolicyError
        A hard policy no allocation can satisfy, with the rules in conflict.
    """
    clock = _Clock(progress)
    scored = score_round(partners, leads, policy, scorer=scorer, pairs=pairs,
                         rejected=rejected, progress=progress)
    clock.timings.update(scored.timings_s)
    with clock.stage("problem"):
        problem = build_problem(scored.pairs, scored.values, scored.leads, partners, policy,
                                effort=scored.effort)
    with clock.stage("solve"):
        allocation = solve(problem, time_limit_s=time_limit_s or policy.time_limit_s)
    unit = "of score" if scored.probability is None else None
    with clock.stage("explain"):
        excluded = None
        if scored.eligibility is not None:
            rows = getattr(problem, "lead_row", None)
            if rows is None:
                rows = np.unique(scored.pairs["lead_index"].to_numpy())
            excluded = exclusion_table(scored.eligibility, scored.leads, rows, rejected)
        explanation = explain_allocation(problem, allocation, scored.eligibility,
                                         value_unit=unit, excluded=excluded)
    with clock.stage("rule prices"):
        resolved = _resolve_rule_prices(problem, allocation,
                                        time_limit_s or policy.time_limit_s)
        explanation.rules[:] = _with_resolved(explanation.rules, resolved)
    expected = _expected_per_pair(problem, scored)
    with clock.stage("baselines"):
        raw = run_baselines(problem, tier_order=_tier_order(policy))
    with clock.stage("fairness"):
        fairness = fairness_metrics(problem, allocation.lead_partner, expected).to_dict()
        baselines = {
            name: BaselineResult(name, lp, allocation_objective(problem, lp),
                                 verify(problem, lp),
                                 fairness_metrics(problem, lp, expected).to_dict())
            for name, lp in raw.items()}
    assignments = _assignments(explanation, scored)
    summary = _summary(problem, allocation, explanation, baselines, fairness, scored, expected,
                       policy, clock.timings)
    return RoundResult(scored, problem, allocation, explanation, baselines, fairness,
                       assignments, summary)


# Binding rules whose price is not exact (Lagrange multipliers, LP duals) are priced again by
# re-solving with the rule relaxed one step; a round pays for at most this many re-solves,
# and for no more than this share of its solver time limit.
RESOLVE_MAX_RULES = 8
RESOLVE_BUDGET_SHARE = 0.25


def _resolve_rule_prices(problem: AllocationProblem, allocation: Allocation,
                         time_limit_s: float) -> dict[str, RulePrice]:
    """Re-solve prices of the binding rules whose dual price is not exact (bounded)."""
    if allocation.status not in ("optimal", "feasible") or problem.round_size <= 0:
        return {}
    inexact = [r for r in allocation.rules
               if r.binding and r.price_source not in (FLOW_SOURCE, RESOLVE_SOURCE)]
    # quotas and tier shares first (few, and what executives ask about), then the dearest
    inexact.sort(key=lambda r: (r.kind not in ("quota", "tier_share"), -abs(r.price)))
    chosen = inexact[:RESOLVE_MAX_RULES]
    if not chosen:
        return {}
    deadline = time.perf_counter() + RESOLVE_BUDGET_SHARE * time_limit_s
    out: dict[str, RulePrice] = {}
    for rule in chosen:
        left = deadline - time.perf_counter()
        if left <= 0:
            break
        try:
            priced_rules = price_rules_by_resolve(problem, allocation, [rule], time_limit_s=left)
        except ValueError:  # a rule with no one-step relaxation keeps its dual price
            continue
        out.update((priced.rule, priced) for priced in priced_rules)
    return out


def _with_resolved(rules: list[dict[str, Any]],
                   resolved: dict[str, RulePrice]) -> list[dict[str, Any]]:
    """The round's rules with each re-solved price beside the solver's own."""
    out = []
    for rule in rules:
        priced = resolved.get(str(rule.get("rule")))
        if priced is not None:
            rule = {**rule, "resolve_price": priced.price,
                    "resolve_description": priced.description}
        out.append(rule)
    return out


def _tier_order(policy: Policy) -> list[str]:
    return [*policy.pool.cascade, *(t.name for t in policy.tiers)]


def _expected_per_pair(problem: AllocationProblem, scored: ScoredRound) -> np.ndarray | None:
    """Expected conversions per pair of the problem, when the scores say it.

    ``None`` for bring-your-own values: fairness then measures the values themselves.
    """
    if scored.probability is None:
        return None
    # build_problem keeps the pairs in the order given.
    p = np.asarray(scored.probability, dtype=float)
    if p.shape != (problem.n_pairs,):
        raise ValueError(f"Expected one probability per pair of the problem ({problem.n_pairs}). "
                         f"Got {p.shape[0]} instead.")
    return p


def _assignments(explanation: Explanation, scored: ScoredRound) -> pd.DataFrame:
    leads = explanation.leads
    if scored.eligibility is None and len(scored.held_back):
        held = scored.held_back
        extra = pd.DataFrame({"lead_id": held["lead_id"].astype(str).to_numpy(),
                              "partner_id": "", "status": "held_back",
                              "reason": ["held back: " + str(r) for r in held["reason"]],
                              "stopped_by_rule": held["rule"].astype(str).to_numpy(),
                              "stopped_by_partner": ""})
        leads = pd.concat([leads, extra], ignore_index=True)
    out = leads.reindex(columns=list(ASSIGNMENT_COLUMNS))
    out["rank"] = out["rank"].astype("Int64")
    for col in ("partner_id", "reason", "status", "stopped_by_rule", "stopped_by_partner"):
        out[col] = out[col].fillna("").astype(str)
    return out


def _verdict(v: Verification) -> dict[str, Any]:
    return {"ok": bool(v.ok), "violations": list(v.violations)}


def _summary(problem: AllocationProblem, allocation: Allocation, explanation: Explanation,
             baselines: dict[str, BaselineResult], fairness: dict[str, Any],
             scored: ScoredRound, expected: np.ndarray | None, policy: Policy,
             timings: dict[str, float]) -> dict[str, Any]:
    opt = float(allocation.objective)
    partners = explanation.partners
    lp = np.asarray(allocation.lead_partner, dtype=np.int64)
    on = lp >= 0
    conv_per_partner: np.ndarray | None = None
    if expected is not None:
        chosen = lead_pairs(problem, lp)
        conv_per_partner = np.bincount(lp[on], weights=expected[chosen[on]],
                                       minlength=problem.n_partners)
    elif policy.objective_value == "conversions":
        conv_per_partner = partners["expected_value"].to_numpy(dtype=float)
    conv: list[float | None] = ([None] * len(partners) if conv_per_partner is None
                                else conv_per_partner.tolist())
    entitled = attainable_entitlement(problem).tolist()
    rows = [{"partner_id": r["partner_id"], "tier": r["tier"], "received": r["received"],
             "expected_value": r["expected_value"], "expected_conversions": conv[j],
             "floor": r["floor"], "cap": r["capacity"], "floor_binding": r["floor_binding"],
             "cap_binding": r["cap_binding"], "floor_shortfall": r["floor_shortfall"],
             "price": r["price"], "entitlement": entitled[j]}
            for j, r in enumerate(partners.to_dict("records"))]
    held = scored.held_back
    by_reason = held["rule"].astype(str).value_counts().to_dict() if len(held) else {}
    qualified = len(scored.leads) - int(by_reason.get("qualification", 0))
    summary: dict[str, Any] = {
        "status": allocation.status,
        "objective": opt,
        "objective_kind": policy.objective_value,
        "expected_conversions": (None if conv_per_partner is None
                                 else float(conv_per_partner.sum())),
        "bound": float(allocation.bound),
        "gap": float(allocation.gap),
        "method": allocation.method,
        "price_source": allocation.price_source,
        "verification": _verdict(allocation.verification),
        "fairness": fairness,
        "baselines": {
            name: {"objective": b.objective,
                   "vs_optimizer_pct": (100.0 * (b.objective - opt) / abs(opt)
                                        if abs(opt) > 1e-12 else None),
                   "assigned": int((b.lead_partner >= 0).sum()),
                   "verification": _verdict(b.verification),
                   "fairness": b.fairness}
            for name, b in baselines.items()},
        "partners": rows,
        "rules": explanation.rules,
        "held_back": [{"lead_id": str(a), "reason": str(b)}
                      for a, b in zip(held["lead_id"], held["reason"], strict=True)],
        "held_back_by_reason": {str(k): int(v) for k, v in by_reason.items()},
        "scores_source": scored.scores_source,
        "notes": [*scored.notes, *getattr(problem, "notes", ()), *allocation.notes],
        "timings": {**{k: float(v) for k, v in timings.items()},
                    **{f"solver.{k}": float(v) for k, v in allocation.timings_s.items()}},
        "counts": {"leads": len(scored.leads), "qualified": qualified,
                   "in_round": problem.n_leads, "assigned": int(on.sum()),
                   "unassigned": int(problem.n_leads - on.sum()),
                   "held_back": len(held), "pairs": problem.n_pairs,
                   "partners": problem.n_partners, "round_size": int(problem.round_size)},
    }
    return json_ready(summary)


def json_ready(obj: Any) -> Any:
    """``obj`` with numpy values as Python ones and NaN / infinity as ``None``."""
    if isinstance(obj, dict):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_ready(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [json_ready(v) for v in obj.tolist()]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is pd.NA or obj is pd.NaT:
        return None
    return obj


# -- output -----------------------------------------------------------------------------------

def write_round(result: RoundResult, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``assignments.csv`` and ``summary.json`` into ``out_dir``.

    The files are written into a temporary folder beside ``out_dir`` and moved
    into place only when both are complete, so a failure leaves no partial
    output.

    Returns
    -------
    dict of str to Path
        ``{"assignments": ..., "summary": ...}``.
    """
    out = Path(out_dir)
    parent = out.parent if str(out.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=parent))
    try:
        result.assignments.to_csv(tmp / "assignments.csv", index=False, float_format="%.10g")
        (tmp / "summary.json").write_text(
            json.dumps(result.summary, indent=2, allow_nan=False) + "\n", encoding="utf-8")
        out.mkdir(parents=True, exist_ok=True)
        paths = {}
        for key, name in (("assignments", "assignments.csv"), ("summary", "summary.json")):
            os.replace(tmp / name, out / name)
            paths[key] = out / name
        return paths
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
