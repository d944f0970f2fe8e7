"""Random and hand-made allocation problems for the allocator-core tests (not a test module)."""

from __future__ import annotations

import numpy as np

from allocator.build import max_count, round_size
from allocator.policy import Quota, TierRule
from allocator.problem import AllocationProblem

TIERS = ("gold", "silver", "bronze")
INTENTS = ("high", "medium", "low", "")


def random_problem(seed: int, n_leads: int, n_partners: int, *, density: float = 0.6,
                   quotas: bool = False, effort: bool = False, soft: bool = False,
                   assign_all: bool | None = None, clamp_floors: bool = True,
                   floor_penalty: float | None = None) -> AllocationProblem:
    """A small random round with every kind of rule, built from ``seed``."""
    rng = np.random.default_rng(seed)
    mask = rng.random((n_leads, n_partners)) < density
    pair_lead, pair_partner = np.nonzero(mask)
    pair_score = np.round(rng.uniform(-0.3, 1.0, pair_lead.shape[0]), 2)
    capacity = rng.integers(0, 4, n_partners).astype(float)
    pair_effort = None
    if effort:
        pair_effort = rng.choice([0.5, 1.0, 1.5, 2.0], pair_lead.shape[0])
        capacity = rng.choice([0.0, 1.0, 1.5, 2.0, 3.0, 4.5], n_partners)
    partner_tier = rng.choice(TIERS, n_partners).astype(object)
    tiers = []
    present = set(partner_tier.tolist())
    for name in TIERS:
        if name not in present and rng.random() < 0.8:
            continue
        lo = rng.choice([None, None, None, 0.1, 0.2, 0.3])
        hi = rng.choice([None, None, 0.5, 0.7, 0.9])
        if lo is not None and hi is not None and lo > hi:
            lo, hi = hi, lo
        if lo is not None or hi is not None:
            tiers.append(TierRule(name=name, min_share=lo, max_share=hi))
    share = rng.choice([None, None, 0.3, 0.5])
    # With effort, the round size is the number of leads (as build_problem does).
    n = n_leads if pair_effort is not None else round_size(pair_lead, pair_partner, n_leads,
                                                             capacity)
    mpp = None if share is None else max_count(float(share), n)
    partner_floor = int(rng.integers(0, 3))
    floor = np.full(n_partners, partner_floor, dtype=np.int64)
    if clamp_floors:
        elig = np.bincount(pair_partner, minlength=n_partners)
        room = np.floor(capacity).astype(np.int64) if pair_effort is None else \
            np.floor(capacity / 2.0).astype(np.int64)
        floor = np.minimum(floor, np.minimum(room, elig))
        if mpp is not None:
            floor = np.minimum(floor, mpp)
    qs: list[Quota] = []
    if quotas:
        for _ in range(int(rng.integers(1, 3))):
            lo = rng.choice([None, None, 0.2, 0.4])
            hi = rng.choice([None, 0.3, 0.5]) if lo is not None else rng.choice([0.2, 0.3, 0.5])
            if lo is not None and hi is not None and lo > hi:
                lo, hi = hi, lo
            qs.append(Quota(tier=str(rng.choice(TIERS)), intent=str(rng.choice(INTENTS[:3])),
                            max_share=None if hi is None else float(hi),
                            min_share=None if lo is None else float(lo)))
    return AllocationProblem(
        lead_ids=np.array([f"L{i}" for i in range(n_leads)], dtype=object),
        lead_intent=rng.choice(INTENTS, n_leads).astype(object),
        partner_ids=np.array([f"P{j}" for j in range(n_partners)], dtype=object),
        partner_tier=partner_tier,
        capacity_units=capacity,
        floor=floor,
        pair_lead=pair_lead.astype(np.int64),
        pair_partner=pair_partner.astype(np.int64),
        pair_score=pair_score,
        pair_effort=pair_effort,
        round_size=int(n),
        max_per_partner=mpp,
        tiers=tuple(tiers),
        quotas=tuple(qs),
        assign_all=bool(rng.random() < 0.15) if assign_all is None else assign_all,
        floor_mode="soft" if soft else "hard",
        floor_penalty=floor_penalty,
    )


def tiny(scores: dict[tuple[int, int], float], capacity: list[float], *, tiers: list[str] | None
         = None, floor: list[int] | None = None, **kw: object) -> AllocationProblem:
    """A hand-checkable round: ``scores[(lead, partner)]`` lists the eligible pairs."""
    keys = sorted(scores)
    n_leads = max(i for i, _ in keys) + 1
    m = len(capacity)
    pl = np.array([i for i, _ in keys], dtype=np.int64)
    pp = np.array([j for _, j in keys], dtype=np.int64)
    cap = np.asarray(capacity, dtype=float)
    args: dict[str, object] = dict(
        lead_ids=np.array([f"L{i}" for i in range(n_leads)], dtype=object),
        lead_intent=np.array(["high"] * n_leads, dtype=object),
        partner_ids=np.array([f"P{j}" for j in range(m)], dtype=object),
        partner_tier=np.array(tiers or ["gold"] * m, dtype=object),
        capacity_units=cap,
        floor=np.array(floor or [0] * m, dtype=np.int64),
        pair_lead=pl, pair_partner=pp,
        pair_score=np.array([scores[k] for k in keys], dtype=float),
        round_size=round_size(pl, pp, n_leads, cap),
    )
    args.update(kw)
    return AllocationProblem(**args)  # type: ignore[arg-type]
