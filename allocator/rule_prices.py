"""The price of a rule by re-solving: relax it one step and compare the optima.

Where the solver's own prices are exact (flow potentials, LP duals) the
``Allocation.rules`` carry them; this module is the slower, always-available
check: for each rule it builds the round with that rule relaxed by one step
and solves it again.  The steps, by ``RulePrice.kind``:

* ``cap``: the partner's capacity +1 unit (one lead, or one effort unit);
* ``max_share_per_partner``: the per-partner maximum +1 lead for that partner
  only (the others keep their old limit folded into their capacity; with
  effort-weighted capacity that cannot be expressed, so every partner gets +1
  and the source says so);
* ``floor``: the partner's floor −1 lead;
* ``tier_max_share`` / ``tier_min_share``: the tier's most leads +1 / least −1
  (a share of ``(count ± 1) / N``, N the round size);
* ``quota_max`` / ``quota_min``: the quota's most leads +1 / least −1, on the
  number of the round's leads of that intent;
* ``assign_all``: leads may be left unassigned.

The price is the relaxed optimum minus the allocation's objective.  With an
exact solver it is never negative: the relaxed round allows everything the
original did.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from allocator.errors import InfeasiblePolicyError
from allocator.problem import Allocation, AllocationProblem, RulePrice

RESOLVE_SOURCE = "re-solve"
_EPS = 1e-9
_NAME = re.compile(r"^(?P<family>\w+)(?:\[(?P<args>[^\]]*)\])?$")

SolveFn = Callable[[AllocationProblem, float], Allocation]


def _args(rule: str) -> dict[str, str]:
    match = _NAME.match(rule)
    if match is None or not match.group("args"):
        return {}
    return dict(part.split("=", 1) for part in match.group("args").split(",") if "=" in part)


def _partner_index(problem: AllocationProblem, rule: RulePrice) -> int:
    pid = _args(rule.rule).get("partner")
    hits = np.flatnonzero(problem.partner_ids.astype(str) == pid)
    if pid is None or hits.size == 0:
        raise ValueError(f"Rule '{rule.rule}' must name a partner of the round. Got {pid!r}.")
    return int(hits[0])


def relax_rule(problem: AllocationProblem, rule: RulePrice) -> tuple[AllocationProblem, str]:
    """The round with ``rule`` relaxed by one step, and a note on how.

    Parameters
    ----------
    problem : AllocationProblem
    rule : RulePrice
        Its ``kind`` picks the step (see the module docstring); its ``rule``
        name points at the partner, tier or quota.

    Returns
    -------
    AllocationProblem
    str
        What was relaxed, in words.

    Raises
    ------
    ValueError
        For an unknown kind, or a name that points at nothing in the round.
    """
    kind = rule.kind
    if kind == "cap":
        j = _partner_index(problem, rule)
        cap = problem.capacity_units.astype(np.float64).copy()
        cap[j] += 1.0
        return replace(problem, capacity_units=cap), f"capacity of {problem.partner_ids[j]} +1"
    if kind == "max_share_per_partner":
        mpp = problem.max_per_partner
        if mpp is None:
            raise ValueError(f"Rule '{rule.rule}' relaxes the per-partner maximum, "
                             "but the round sets none.")
        if problem.pair_effort is not None or "partner" not in _args(rule.rule):
            return replace(problem, max_per_partner=mpp + 1), "most leads per partner +1 for all"
        j = _partner_index(problem, rule)
        # Others keep their old limit, folded into their capacity.
        cap = np.minimum(problem.capacity_units.astype(np.float64), float(mpp))
        cap[j] = problem.capacity_units[j]
        return (replace(problem, capacity_units=cap, max_per_partner=mpp + 1),
                f"most leads for {problem.partner_ids[j]} +1")
    if kind == "floor":
        j = _partner_index(problem, rule)
        floor = problem.floor.astype(np.int64).copy()
        floor[j] = max(int(floor[j]) - 1, 0)
        return replace(problem, floor=floor), f"floor of {problem.partner_ids[j]} −1"
    if kind in ("tier_max_share", "tier_min_share"):
        tier = _args(rule.rule).get("tier")
        n = problem.round_size
        if n <= 0 or not any(t.name == tier for t in problem.tiers):
            raise ValueError(f"Rule '{rule.rule}' must name a tier with a share in a round of "
                             f"at least one lead. Got tier {tier!r} and round size {n}.")
        tiers = tuple(_relax_share(t, kind == "tier_max_share", n) if t.name == tier else t
                      for t in problem.tiers)
        how = "most leads +1" if kind == "tier_max_share" else "least leads −1"
        return replace(problem, tiers=tiers), f"tier {tier}: {how}"
    if kind in ("quota_max", "quota_min"):
        a = _args(rule.rule)
        tier, intent = a.get("tier"), a.get("intent")
        n_intent = int(np.count_nonzero(problem.lead_intent.astype(str) == intent))
        if not any(q.tier == tier and q.intent == intent for q in problem.quotas):
            raise ValueError(f"Rule '{rule.rule}' must name a quota of the round. Got tier "
                             f"{tier!r}, intent {intent!r}.")
        if n_intent == 0:
            return problem, f"no {intent}-intent lead in the round: nothing to relax"
        quotas = tuple(_relax_share(q, kind == "quota_max", n_intent)
                       if q.tier == tier and q.intent == intent else q for q in problem.quotas)
        how = "most leads +1" if kind == "quota_max" else "least leads −1"
        return replace(problem, quotas=quotas), f"tier {tier}, {intent} intent: {how}"
    if kind == "assign_all":
        return replace(problem, assign_all=False), "leads may be left unassigned"
    raise ValueError(f"Rule kind {kind!r} of '{rule.rule}' has no one-step relaxation; known "
                     "kinds: cap, max_share_per_partner, floor, tier_max_share, tier_min_share, "
                     "quota_max, quota_min, assign_all.")


def _relax_share(rule, upper: bool, n: int):  # type: ignore[no-untyped-def]
    """``rule`` (TierRule or Quota) with its count limit moved one lead outwards."""
    if upper:
        if rule.max_share is None:
            return rule
        most = math.floor(rule.max_share * n + _EPS)
        return replace(rule, max_share=(most + 1) / n)
    if rule.min_share is None:
        return rule
    least = math.ceil(rule.min_share * n - _EPS)
    return replace(rule, min_share=max(least - 1, 0) / n)


def round_rules(problem: AllocationProblem, allocation: Allocation) -> tuple[RulePrice, ...]:
    """The round's rules with their use: ``allocation.rules`` or, when empty, recounted."""
    if allocation.rules:
        return allocation.rules
    from allocator.prices import rule_prices, zero_prices

    return rule_prices(problem, allocation.lead_partner, zero_prices(problem, ""))


def price_rules_by_resolve(
    problem: AllocationProblem,
    allocation: Allocation,
    rules: Sequence[RulePrice | str] | None = None,
    time_limit_s: float = 30.0,
    solve_fn: SolveFn | None = None,
) -> list[RulePrice]:
    """Price rules by relaxing each one step and solving the round again.

    Parameters
    ----------
    problem : AllocationProblem
        The round ``allocation`` solves.
    allocation : Allocation
        Its optimum (the objective to compare with).
    rules : sequence of RulePrice or str, optional
        The rules to price, as :class:`RulePrice` or by stable name (looked up
        in the round's rules).  Defaults to the binding rules of the round.
    time_limit_s : float
        Per re-solve.
    solve_fn : callable, optional
        ``solve(problem, time_limit_s) -> Allocation``; defaults to
        :func:`allocator.solve.solve`.

    Returns
    -------
    list of RulePrice
        One per rule, with ``price`` = relaxed objective − ``allocation.objective``
        and ``price_source = "re-solve"``; a relaxation that is still infeasible
        or not proven optimal gives ``nan`` and says why in the description.

    Raises
    ------
    ValueError
        When a rule name is not a rule of the round.
    """
    if solve_fn is None:
        from allocator.solve import solve

        solve_fn = solve
    known = round_rules(problem, allocation)
    by_name: dict[str, list[RulePrice]] = {}
    for r in known:
        by_name.setdefault(r.rule, []).append(r)
    if rules is None:
        chosen = [r for r in known if r.binding]
    else:
        chosen = []
        for item in rules:
            if isinstance(item, RulePrice):
                chosen.append(item)
            elif item in by_name:
                chosen.extend(by_name[item])
            else:
                shown = ", ".join(sorted(by_name)[:8]) + (", ..." if len(by_name) > 8 else "")
                raise ValueError(f"'{item}' is not a rule of this round. Known rules: {shown}.")
    out = []
    for rule in chosen:
        relaxed, how = relax_rule(problem, rule)
        try:
            res = solve_fn(relaxed, time_limit_s)
        except InfeasiblePolicyError as exc:
            out.append(replace(rule, price=math.nan, price_source=RESOLVE_SOURCE,
                               description=f"{how}: still infeasible ({exc})"))
            continue
        if res.status not in ("optimal", "feasible"):
            out.append(replace(rule, price=math.nan, price_source=RESOLVE_SOURCE,
                               description=f"{how}: re-solve ended {res.status}"))
            continue
        gain = float(res.objective) - float(allocation.objective)
        exact = res.status == "optimal" and allocation.status == "optimal"
        note = "" if exact else f" (not proven optimal: gap {res.gap:.2g})"
        out.append(replace(rule, price=gain, price_source=RESOLVE_SOURCE,
                           description=f"{how}: objective {'+' if gain >= 0 else ''}"
                                       f"{gain:.4g}{note}"))
    return out
