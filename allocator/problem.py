"""Problem and result specs of one allocation round (frozen dataclasses).

The problem is sparse: one entry per *eligible* lead–partner pair, never an
N×M matrix.  Arrays are numpy; indices are positions in ``lead_ids`` and
``partner_ids``.  Rules have stable names (``cap[partner=P3]``,
``floor[partner=P3]``, ``tier_share[tier=gold]``,
``quota[tier=gold,intent=high]``, ``max_share_per_partner``, ``assign_all``) so
explanations, summaries and API answers can point at them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from allocator.policy import Quota, TierRule

Status = Literal["optimal", "feasible", "infeasible", "time_limit"]


@dataclass(frozen=True, eq=False)
class AllocationProblem:
    """One round to solve.

    Attributes
    ----------
    lead_ids, partner_ids : ndarray of str
    lead_intent : ndarray of str
        ``"high"``, ``"medium"``, ``"low"`` or ``""`` (unknown), per lead.
    partner_tier : ndarray of str
    capacity_units : ndarray of float
        Per partner: most leads (or effort units when ``pair_effort`` is set) this round.
    floor : ndarray of int
        Per partner: fairness floor already limited by eligibility and capacity
        (SPEC: "limited by what it is eligible for and its capacity").
    pair_lead, pair_partner : ndarray of int64
        The eligible pairs.
    pair_score : ndarray of float64
        Value of giving the lead to the partner (p, p × deal_size, or any finite number).
    pair_effort : ndarray of float64 or None
        Workload units per pair; ``None`` means every lead costs one unit.
    round_size : int
        N, the number of leads the round can place; tier shares, quotas and the
        per-partner max share are counts of N (see ``allocator.build.max_count``).
    max_per_partner : int or None
        ``floor(max_share_per_partner × round_size)``.
    tiers : tuple of TierRule
    quotas : tuple of Quota
    assign_all : bool
    floor_mode : "hard" or "soft"
    floor_penalty : float or None
        Soft mode: value lost per lead a floor is short; ``None`` picks a
        penalty above any score so floors are met whenever they can be.
    lead_row : ndarray of int64 or None
        Per lead, its row in the leads frame the problem was built from.
    objective : str
        ``"conversions"`` or ``"revenue"``: what ``pair_score`` measures.
    notes : tuple of str
        Rules applied while building (e.g. missing deal sizes counted as 0).
    build_time_s : float
        Seconds spent building the problem (reported in ``Allocation.timings_s``).
    """

    lead_ids: np.ndarray
    lead_intent: np.ndarray
    partner_ids: np.ndarray
    partner_tier: np.ndarray
    capacity_units: np.ndarray
    floor: np.ndarray
    pair_lead: np.ndarray
    pair_partner: np.ndarray
    pair_score: np.ndarray
    pair_effort: np.ndarray | None = None
    round_size: int = 0
    max_per_partner: int | None = None
    tiers: tuple[TierRule, ...] = ()
    quotas: tuple[Quota, ...] = ()
    assign_all: bool = False
    floor_mode: Literal["hard", "soft"] = "hard"
    floor_penalty: float | None = None
    lead_row: np.ndarray | None = None
    objective: str = "conversions"
    notes: tuple[str, ...] = ()
    build_time_s: float = 0.0

    @property
    def n_leads(self) -> int:
        return int(self.lead_ids.shape[0])

    @property
    def n_partners(self) -> int:
        return int(self.partner_ids.shape[0])

    @property
    def n_pairs(self) -> int:
        return int(self.pair_lead.shape[0])


@dataclass(frozen=True)
class RulePrice:
    """A rule of the round, whether it binds, and what it costs.

    ``price`` is the objective gained by relaxing the rule one step (one more
    unit of capacity, one lead less of floor, one more lead of share), and
    ``price_source`` says how it was obtained ("flow potentials",
    "LP dual", "Lagrange multiplier", "re-solve").
    """

    rule: str
    kind: str
    binding: bool
    limit: float
    used: float
    price: float
    price_source: str
    description: str


@dataclass(frozen=True)
class Verification:
    """Verdict of the independent checker: ``ok`` and every violated rule, in words."""

    ok: bool
    violations: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class Allocation:
    """The solved round.

    Attributes
    ----------
    status : Status
    lead_partner : ndarray of int64
        Per lead: index of its partner, ``-1`` when not assigned.
    lead_pair : ndarray of int64
        Per lead: index of the chosen pair, ``-1`` when not assigned.
    objective : float
        Sum of ``pair_score`` over the chosen pairs (soft-floor penalties excluded).
    bound : float
        Proven upper bound on the objective.
    gap : float
        ``(bound - objective) / max(|bound|, 1e-9)``; 0 when proven optimal.
    method : str
        "min_cost_flow", "lagrangian+min_cost_flow", "lp", "cp_sat", ...
    partner_price : ndarray of float
        Per partner: marginal value of one more unit of capacity (≥ 0; negative
        when a floor forces the partner to take leads), from ``price_source``.
    rules : tuple of RulePrice
    verification : Verification
    timings_s : dict of str to float
    floor_shortfall : ndarray of int or None
        Soft mode: per partner, how many leads its floor was missed by.
    notes : tuple of str
    """

    status: Status
    lead_partner: np.ndarray
    lead_pair: np.ndarray
    objective: float
    bound: float
    gap: float
    method: str
    partner_price: np.ndarray
    rules: tuple[RulePrice, ...] = ()
    verification: Verification = field(default_factory=lambda: Verification(ok=True))
    timings_s: dict[str, float] = field(default_factory=dict)
    floor_shortfall: np.ndarray | None = None
    price_source: str = ""
    notes: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
