"""Running a round for the API: stored state -> ``service.pipeline.run_round`` -> a stored round.

:func:`plan_round` reads the partners and the leads without a live assignment,
validates them with the data contract (the policy's tiers included), scores and
solves; :func:`service.db.rounds.store_round` then stores the policy (when new),
the round, its assignments and their audit entries in one transaction.  A failed
round — bad data, an infeasible policy, a lead taken by a concurrent round —
leaves no trace but its error (its policy is not stored either).  Planning only
reads, so on SQLite no write lock is held while the solver runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from allocator.errors import InputError, InputProblem
from allocator.policy import Policy
from service.api.errors import ConflictError, NotFoundError
from service.api.model_state import ModelState
from service.api.schemas import RoundCreate
from service.contract import validate_leads, validate_partners
from service.db import leads as leads_repo
from service.db import partners as partners_repo
from service.db import policies as policies_repo
from service.db import rounds as rounds_repo
from service.db.records import jsonable, leads_frame, partners_frame
from service.db.tables import StoredPolicy
from service.pipeline import RoundResult, run_round

_EXPLANATION_COLUMNS = (
    "n_eligible", "best_partner_id", "best_score", "reason_kind", "stopped_by_rule",
    "stopped_by_partner", "price", "price_source", "excluded",
)


def resolve_policy(
    session: Session, body: RoundCreate
) -> tuple[int | None, str, Policy, rounds_repo.NewPolicy | None]:
    """The round's policy: ``(stored id or None, content hash, policy, policy to store)``.

    Only reads: a policy given inline is stored by :func:`~service.db.rounds.store_round`
    with the round, so a failed round stores no policy.
    """
    if body.policy_id is not None:
        row = session.get(StoredPolicy, body.policy_id)
        if row is None:
            raise NotFoundError("policy", body.policy_id)
        return row.id, row.content_hash, policies_repo.load_stored(row), None
    assert body.policy is not None  # RoundCreate requires one of the two
    policy, data = policies_repo.parse_policy(body.policy.body, body.policy.toml)
    content_hash = policies_repo.policy_hash(policy)
    stored = policies_repo.find_policy(session, content_hash)
    if stored is not None:
        return stored.id, content_hash, policy, None
    return None, content_hash, policy, rounds_repo.NewPolicy(policy, data, body.policy.toml)


def _round_leads(session: Session, requested: list[str] | None) -> list[Any]:
    if requested is None:
        leads = list(leads_repo.pending_leads(session))
        if not leads:
            raise ConflictError("No lead is waiting for allocation: every stored lead has a "
                                "live assignment (or none was ingested).")
        return leads
    wanted = list(dict.fromkeys(requested))
    stored = leads_repo.leads_by_id(session, wanted)
    unknown = [lid for lid in wanted if lid not in stored]
    if unknown:
        raise InputError([
            InputProblem("round request", None, "lead_ids", lid, f"lead {lid!r} was never "
                         "ingested") for lid in unknown[:20]
        ])
    held = rounds_repo.live_holders(session, wanted)
    if held:
        shown = ", ".join(f"{lid} (round {rid})" for lid, rid in list(held.items())[:20])
        raise ConflictError(f"{len(held)} requested lead(s) already have a live assignment: "
                            f"{shown}.", ids=sorted(held))
    return [stored[lid] for lid in sorted(wanted)]


def _planned(row: Mapping[Any, Any], units: float = 1.0) -> rounds_repo.PlannedAssignment:
    own = str(row["partner_id"])
    explanation = jsonable({k: row.get(k) for k in _EXPLANATION_COLUMNS})
    named = {str(row.get(k) or "") for k in ("best_partner_id", "stopped_by_partner")}
    rank = row.get("rank")
    return rounds_repo.PlannedAssignment(
        lead_id=str(row["lead_id"]), partner_id=own, score=float(row["score"]),
        rank=None if rank is None or pd.isna(rank) else int(rank),
        reason=str(row["reason"]), explanation=explanation,
        named_partners=tuple(sorted(n for n in named if n and n != own)),
        units=units,
    )


def _lead_units(result: RoundResult) -> dict[str, float]:
    """Capacity units per lead: its effort (1 when the round has no effort column)."""
    leads = result.scored.leads
    if "effort" not in leads.columns:
        return {}
    effort = pd.to_numeric(leads["effort"], errors="coerce").fillna(1.0)
    return dict(zip(leads["lead_id"].astype(str), effort.astype(float), strict=True))


def _round_partners(result: RoundResult) -> tuple[rounds_repo.PlannedPartner, ...]:
    problem, allocation = result.problem, result.allocation
    price = np.nan_to_num(np.asarray(allocation.partner_price, dtype=float), nan=0.0,
                          posinf=0.0, neginf=0.0)
    if price.shape != (problem.n_partners,):
        price = np.zeros(problem.n_partners)
    return tuple(
        rounds_repo.PlannedPartner(str(pid), float(price[j]),
                                   float(problem.capacity_units[j]))
        for j, pid in enumerate(problem.partner_ids))


def _candidates(result: RoundResult) -> tuple[rounds_repo.PlannedCandidates, ...]:
    """Each lead's eligible partners and scores, best first."""
    problem = result.problem
    order = np.lexsort((-problem.pair_score, problem.pair_lead))
    lead, partner = problem.pair_lead[order], problem.pair_partner[order]
    score = problem.pair_score[order].astype(float)
    bounds = np.searchsorted(lead, np.arange(problem.n_leads + 1))
    names = np.asarray(problem.partner_ids).astype(str)
    out = []
    for i in range(problem.n_leads):
        a, b = int(bounds[i]), int(bounds[i + 1])
        if a < b:
            out.append(rounds_repo.PlannedCandidates(
                str(problem.lead_ids[i]), tuple(names[partner[a:b]].tolist()),
                tuple(score[a:b].tolist())))
    return tuple(out)


def plan_round(session: Session, body: RoundCreate, model: ModelState,
               time_limit_s: float | None) -> rounds_repo.RoundPlan:
    """Score and solve a round over the stored leads without a live assignment.

    Raises
    ------
    InputError
        Stored data that breaks the contract under this policy (a tier the
        policy does not name, ...), unknown lead ids, a bad inline policy.
    InfeasiblePolicyError
        The policy cannot be met; names the rules in conflict.
    ConflictError
        No lead to allocate, no partner, or requested leads already assigned.
    NotFoundError
        An unknown ``policy_id``.
    """
    policy_id, policy_hash, policy, new_policy = resolve_policy(session, body)
    leads = _round_leads(session, body.lead_ids)
    partners = partners_repo.all_partners(session)
    if not partners:
        raise ConflictError("No partner is loaded: POST /partners first.")
    partners_df = validate_partners(partners_frame(partners), file="stored partners",
                                    policy=policy)
    leads_df = validate_leads(leads_frame(leads), file="stored leads")
    rejected = pd.DataFrame(rounds_repo.rejected_pairs(session),
                            columns=["lead_id", "partner_id"])
    limit = policy.time_limit_s if time_limit_s is None else min(policy.time_limit_s,
                                                                 time_limit_s)
    result = run_round(partners_df, leads_df, policy, scorer=model.model,
                       rejected=rejected if len(rejected) else None, time_limit_s=limit)
    return plan_result(result, policy_id, policy_hash, new_policy, model.version)


def plan_result(result: RoundResult, policy_id: int | None, policy_hash: str,
                new_policy: rounds_repo.NewPolicy | None,
                model_version: str | None) -> rounds_repo.RoundPlan:
    """The storable plan of a solved round: its assignments with reasons and its summary."""
    per_lead = result.explanation.leads
    assigned = per_lead[per_lead["status"] == "assigned"]
    unassigned = per_lead[per_lead["status"] == "unassigned"]
    summary = dict(result.summary)
    summary["policy"] = {"id": policy_id, "content_hash": policy_hash}
    summary["model_version"] = model_version
    summary["unassigned"] = [
        {"lead_id": str(r.lead_id), "reason": str(r.reason)}
        for r in unassigned.itertuples(index=False)
    ]
    units = _lead_units(result)
    return rounds_repo.RoundPlan(
        policy_id=policy_id,
        new_policy=new_policy,
        lead_ids=tuple(str(x) for x in result.scored.leads["lead_id"]),
        assignments=tuple(_planned(r, units.get(str(r["lead_id"]), 1.0))
                          for r in assigned.to_dict("records")),
        summary=jsonable(summary),
        status=str(result.allocation.status),
        n_held_back=len(result.scored.held_back),
        objective=_finite(result.allocation.objective),
        bound=_finite(result.allocation.bound),
        gap=_finite(result.allocation.gap),
        model_version=model_version,
        partners=_round_partners(result),
        candidates=_candidates(result),
        price_source=str(result.allocation.price_source or ""),
    )


def plan_from_result(session: Session, result: RoundResult, policy_toml: str,
                     model_version: str | None) -> rounds_repo.RoundPlan:
    """Plan a round solved outside the API (``fairlead demo``) with its policy given as TOML.

    The policy is looked up by content hash and stored with the round when new.
    """
    policy, data = policies_repo.parse_policy(toml=policy_toml)
    content_hash = policies_repo.policy_hash(policy)
    stored = policies_repo.find_policy(session, content_hash)
    if stored is not None:
        return plan_result(result, stored.id, content_hash, None, model_version)
    return plan_result(result, None, content_hash,
                       rounds_repo.NewPolicy(policy, data, policy_toml), model_version)


def _finite(x: float) -> float | None:
    value = float(x)
    return value if value == value and abs(value) != float("inf") else None
