"""Small hand-made and random rounds shared by the fairness, frontier and rule-price tests."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from allocator.policy import Quota, TierRule
from allocator.problem import AllocationProblem


def make_problem(
    pairs: Sequence[tuple[str, str, float]],
    partners: Sequence[tuple[str, str, int]],
    intents: dict[str, str] | None = None,
    tiers: tuple[TierRule, ...] = (),
    quotas: tuple[Quota, ...] = (),
    floor: Sequence[int] | None = None,
    max_per_partner: int | None = None,
    assign_all: bool = False,
) -> AllocationProblem:
    """A round from ``(lead, partner, score)`` pairs and ``(partner, tier, capacity)`` rows."""
    lead_ids = list(dict.fromkeys(lead for lead, _, _ in pairs))
    partner_ids = [p for p, _, _ in partners]
    li = {lead: k for k, lead in enumerate(lead_ids)}
    pi = {p: k for k, p in enumerate(partner_ids)}
    intents = intents or {}
    return AllocationProblem(
        lead_ids=np.array(lead_ids, dtype=object),
        lead_intent=np.array([intents.get(lead, "") for lead in lead_ids], dtype=object),
        partner_ids=np.array(partner_ids, dtype=object),
        partner_tier=np.array([t for _, t, _ in partners], dtype=object),
        capacity_units=np.array([c for _, _, c in partners], dtype=np.float64),
        floor=np.array(floor if floor is not None else [0] * len(partners), dtype=np.int64),
        pair_lead=np.array([li[lead] for lead, _, _ in pairs], dtype=np.int64),
        pair_partner=np.array([pi[p] for _, p, _ in pairs], dtype=np.int64),
        pair_score=np.array([s for _, _, s in pairs], dtype=np.float64),
        round_size=len(lead_ids),
        max_per_partner=max_per_partner,
        tiers=tiers,
        quotas=quotas,
        assign_all=assign_all,
    )


def random_problem(
    seed: int,
    n_leads: int,
    n_partners: int,
    max_eligible: int = 3,
    tiers: tuple[TierRule, ...] = (),
    quotas: tuple[Quota, ...] = (),
) -> AllocationProblem:
    """A random round: each lead eligible for 1..max_eligible partners, scores in (0, 1)."""
    rng = np.random.default_rng(seed)
    tier_names = ["gold", "silver", "bronze"]
    pairs = []
    for i in range(n_leads):
        k = int(rng.integers(1, min(max_eligible, n_partners) + 1))
        for j in rng.choice(n_partners, size=k, replace=False):
            pairs.append((f"L{i}", f"P{j}", float(np.round(rng.uniform(0.01, 1.0), 3))))
    partners = [
        (f"P{j}", tier_names[j % 3], int(rng.integers(0, max(2, n_leads // 2))))
        for j in range(n_partners)
    ]
    intents = {f"L{i}": str(rng.choice(["high", "medium", "low"])) for i in range(n_leads)}
    return make_problem(pairs, partners, intents, tiers=tiers, quotas=quotas)
