"""The life of a lead after allocation: a pure state machine, SLA deadlines, pool and re-routing.

States and what moves a lead between them::

    offered ──accept──▶ accepted ──contact──▶ contacted ──qualify──▶ qualified
       │                   │  (or claimed)                 ──open_opportunity──▶ opportunity
       ├─reject─▶ rejected  └─reclaim─▶ reclaimed          ──win──▶ won / ──lose──▶ lost
       └─expire─▶ expired
    rejected / expired / reclaimed ──reoffer──▶ offered (next partner)  or ──pool──▶ pooled
    pooled ──claim──▶ claimed (then as accepted) or ──reoffer──▶ offered (a later round)

Partners do not always report every step of the funnel, so a disposition may
skip ahead (accepted → qualified, contacted → won) but never go back; won and
lost are final.  No I/O and no clock here: callers pass the times in, the
service stores the result and writes the audit log.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal, TypeVar

import numpy as np

from allocator.errors import InputError, InputProblem
from allocator.policy import PoolPolicy, SlaPolicy
from allocator.realtime import choose
from service.lifecycle.clock import require_aware


class LeadState(StrEnum):
    OFFERED = "offered"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    EXPIRED = "expired"
    RECLAIMED = "reclaimed"
    CONTACTED = "contacted"
    QUALIFIED = "qualified"
    OPPORTUNITY = "opportunity"
    WON = "won"
    LOST = "lost"
    POOLED = "pooled"
    CLAIMED = "claimed"


class LeadEvent(StrEnum):
    ACCEPT = "accept"
    REJECT = "reject"
    EXPIRE = "expire"
    RECLAIM = "reclaim"
    CONTACT = "contact"
    QUALIFY = "qualify"
    OPEN_OPPORTUNITY = "open_opportunity"
    WIN = "win"
    LOSE = "lose"
    REOFFER = "reoffer"
    POOL = "pool"
    CLAIM = "claim"


S, E = LeadState, LeadEvent
_E = TypeVar("_E", LeadState, LeadEvent)
_WORKING = {E.CONTACT: S.CONTACTED, E.QUALIFY: S.QUALIFIED,
            E.OPEN_OPPORTUNITY: S.OPPORTUNITY, E.WIN: S.WON, E.LOSE: S.LOST}
_AFTER_FAILED_OFFER = {E.REOFFER: S.OFFERED, E.POOL: S.POOLED}

TRANSITIONS: dict[LeadState, dict[LeadEvent, LeadState]] = {
    S.OFFERED: {E.ACCEPT: S.ACCEPTED, E.REJECT: S.REJECTED, E.EXPIRE: S.EXPIRED,
                E.RECLAIM: S.RECLAIMED},
    S.ACCEPTED: {**_WORKING, E.RECLAIM: S.RECLAIMED},
    S.CLAIMED: {**_WORKING, E.RECLAIM: S.RECLAIMED},
    S.CONTACTED: {k: v for k, v in _WORKING.items() if k != E.CONTACT},
    S.QUALIFIED: {E.OPEN_OPPORTUNITY: S.OPPORTUNITY, E.WIN: S.WON, E.LOSE: S.LOST},
    S.OPPORTUNITY: {E.WIN: S.WON, E.LOSE: S.LOST},
    S.REJECTED: dict(_AFTER_FAILED_OFFER),
    S.EXPIRED: dict(_AFTER_FAILED_OFFER),
    S.RECLAIMED: dict(_AFTER_FAILED_OFFER),
    S.POOLED: {E.CLAIM: S.CLAIMED, E.REOFFER: S.OFFERED},
    S.WON: {},
    S.LOST: {},
}
"""Allowed moves: ``TRANSITIONS[state][event] -> next state``."""

TERMINAL = frozenset(s for s, moves in TRANSITIONS.items() if not moves)
# states in which a partner holds the lead and owes the contact SLA
HELD_BY_PARTNER = frozenset({S.ACCEPTED, S.CLAIMED})


class UnknownNameError(ValueError):
    """A state or event name that does not exist (an input error, not a conflict)."""


class IllegalTransition(ValueError):  # noqa: N818 - the name the API and brief use
    """An event that is not allowed from the current state (the API answers 409).

    Attributes
    ----------
    current : LeadState
    event : LeadEvent
    allowed : tuple of LeadEvent
    """

    def __init__(self, current: LeadState, event: LeadEvent) -> None:
        self.current = current
        self.event = event
        self.allowed = allowed_events(current)
        options = (", ".join(f"'{e}'" for e in self.allowed) if self.allowed
                   else "none (it is final)")
        super().__init__(f"Cannot '{event}' a lead that is '{current}': the events allowed "
                         f"from '{current}' are {options}.")


def _parse(kind: str, cls: type[_E], value: str) -> _E:
    try:
        return cls(value)
    except ValueError:
        names = [m.value for m in cls]
        close = difflib.get_close_matches(str(value), names, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise UnknownNameError(f"Unknown lead {kind} {value!r}{hint}; known {kind}s: "
                          f"{', '.join(names)}.") from None


def allowed_events(current: LeadState | str) -> tuple[LeadEvent, ...]:
    """Events allowed from ``current``, in a stable order."""
    return tuple(TRANSITIONS[_parse("state", LeadState, current)])


def transition(current: LeadState | str, event: LeadEvent | str) -> LeadState:
    """The state after ``event`` happens to a lead in ``current``.

    Raises
    ------
    UnknownNameError
        ``current`` or ``event`` is not a known name.
    IllegalTransition
        The event is not allowed from ``current``.
    """
    state = _parse("state", LeadState, current)
    ev = _parse("event", LeadEvent, event)
    try:
        return TRANSITIONS[state][ev]
    except KeyError:
        raise IllegalTransition(state, ev) from None


# -- reasons -------------------------------------------------------------------------------

REJECT_REASONS = ("out_of_territory", "no_capacity", "not_a_fit", "duplicate",
                  "bad_contact_data", "other")
LOST_REASONS = ("no_budget", "no_response", "chose_competitor", "not_a_fit", "bad_timing",
                "duplicate", "bad_contact_data", "other")
MAX_REASON_TEXT = 500


@dataclass(frozen=True)
class Reason:
    """A coded reason (from a fixed list) with optional free text; ``other`` needs text."""

    code: str
    text: str | None = None

    def __str__(self) -> str:
        return f"{self.code}: {self.text}" if self.text else self.code


def _reason(kind: str, codes: tuple[str, ...], code: str, text: str | None) -> Reason:
    problems: list[InputProblem] = []
    if code not in codes:
        close = difflib.get_close_matches(str(code), codes, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        problems.append(InputProblem(kind, None, "reason", code,
                                     f"the {kind} reason must be one of "
                                     f"{', '.join(codes)}{hint}"))
    clean = text.strip() if isinstance(text, str) else None
    if text is not None and not isinstance(text, str):
        problems.append(InputProblem(kind, None, "text", text, "the reason text must be text"))
    elif clean and len(clean) > MAX_REASON_TEXT:
        problems.append(InputProblem(kind, None, "text", f"{clean[:40]}...",
                                     f"the reason text must be at most {MAX_REASON_TEXT} "
                                     f"characters (got {len(clean)})"))
    if code == "other" and not clean:
        problems.append(InputProblem(kind, None, "text", text,
                                     f"a {kind} reason of 'other' needs a text saying why"))
    if problems:
        raise InputError(problems)
    return Reason(code, clean or None)


def reject_reason(code: str, text: str | None = None) -> Reason:
    """A validated reason for rejecting an offer (``REJECT_REASONS`` plus free text).

    Raises
    ------
    InputError
        Every problem at once: unknown code, text too long, ``other`` without text.
    """
    return _reason("reject", REJECT_REASONS, code, text)


def lost_reason(code: str, text: str | None = None) -> Reason:
    """A validated reason for a lost lead (``LOST_REASONS`` plus free text)."""
    return _reason("lost", LOST_REASONS, code, text)


# -- SLA deadlines -----------------------------------------------------------------------------

def accept_deadline(offered_at: datetime, sla: SlaPolicy) -> datetime:
    """When an unaccepted offer expires: ``offered_at + accept_within_hours``."""
    return require_aware("offered_at", offered_at) + timedelta(hours=sla.accept_within_hours)


def contact_deadline(accepted_at: datetime, sla: SlaPolicy) -> datetime:
    """When an accepted (or claimed) lead not yet contacted is reclaimed."""
    return require_aware("accepted_at", accepted_at) + timedelta(hours=sla.contact_within_hours)


def due_event(state: LeadState | str, entered_at: datetime, now: datetime,
              sla: SlaPolicy) -> LeadEvent | None:
    """The SLA event the periodic job owes a lead, or ``None``.

    ``expire`` for an offer past its accept deadline; ``reclaim`` for a lead held
    by a partner (accepted or claimed) and not contacted by its contact deadline.
    """
    st = _parse("state", LeadState, state)
    now = require_aware("now", now)
    if st is S.OFFERED and now >= accept_deadline(entered_at, sla):
        return E.EXPIRE
    if st in HELD_BY_PARTNER and now >= contact_deadline(entered_at, sla):
        return E.RECLAIM
    return None


# -- claim pool cascade ------------------------------------------------------------------------

def visible_tiers(pooled_at: datetime, now: datetime, pool: PoolPolicy) -> tuple[str, ...]:
    """Tiers of the cascade that can see (and claim) a pooled lead at ``now``.

    The first tier from ``pooled_at``, one more every ``step_hours``; nothing
    before ``pooled_at``.  An empty cascade opens the pool to every tier at once
    (see :func:`can_claim`); this function then returns ``()``.
    """
    pooled_at, now = require_aware("pooled_at", pooled_at), require_aware("now", now)
    if now < pooled_at:
        return ()
    steps = (now - pooled_at) / timedelta(hours=pool.step_hours)
    return tuple(pool.cascade[: min(len(pool.cascade), 1 + math.floor(steps))])


def tier_visible_at(tier: str, pooled_at: datetime, pool: PoolPolicy) -> datetime:
    """When ``tier`` first sees a lead pooled at ``pooled_at``.

    Tiers the cascade does not name see it after every named tier has had its turn.
    """
    pooled_at = require_aware("pooled_at", pooled_at)
    step = (pool.cascade.index(tier) if tier in pool.cascade else len(pool.cascade))
    return pooled_at + step * timedelta(hours=pool.step_hours)


def can_claim(tier: str, pooled_at: datetime, now: datetime, pool: PoolPolicy) -> bool:
    """Whether a partner of ``tier`` may claim a lead pooled at ``pooled_at`` now."""
    return require_aware("now", now) >= tier_visible_at(tier, pooled_at, pool)


# -- re-routing --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Reroute:
    """Where a rejected, expired or reclaimed lead goes next: another offer or the pool."""

    action: Literal["offer", "pool"]
    partner_id: str | None
    score: float | None
    price: float | None
    adjusted_value: float | None
    reroutes_done: int
    reason: str


def next_partner(
    candidates: Mapping[str, float],
    prices: Mapping[str, float],
    excluded: Collection[str],
    room: Mapping[str, float] | Collection[str],
    *,
    reroutes_done: int,
    sla: SlaPolicy,
    units: float = 1.0,
) -> Reroute:
    """Choose the next partner for a lead whose offer failed, or send it to the pool.

    The same rule as real-time routing (best ``score − price``), never back to a
    partner in ``excluded``, and no hold: a lead already in the channel is
    offered even when its adjusted value is negative.  After
    ``sla.max_reroutes`` re-routes, or with nobody left, it goes to the pool.

    Parameters
    ----------
    candidates : mapping of str to float
        Eligible partner id → score for this lead.
    prices : mapping of str to float
        Partner id → capacity price (missing means 0).
    excluded : collection of str
        Partners that rejected the lead, let it expire or had it reclaimed.
    room : mapping of str to float, or collection of str
        Remaining capacity units per partner, or the ids of partners with room.
    reroutes_done : int
        Re-routes already made for this lead (the first offer is not one).
    sla : SlaPolicy
    units : float
        Capacity units the lead costs.

    Returns
    -------
    Reroute
    """
    if reroutes_done >= sla.max_reroutes:
        return Reroute("pool", None, None, None, None, reroutes_done,
                       f"pooled: {reroutes_done} re-routes already made "
                       f"(sla.max_reroutes = {sla.max_reroutes})")
    ids = list(candidates)
    scores = np.fromiter((candidates[p] for p in ids), dtype=float, count=len(ids))
    bad = [p for p, s in zip(ids, scores, strict=True) if not math.isfinite(s)]
    if bad:
        raise ValueError(f"The score of partner '{bad[0]}' must be finite. "
                         f"Got {candidates[bad[0]]!r} instead.")
    price = np.fromiter((prices.get(p, 0.0) for p in ids), dtype=float, count=len(ids))
    ex = set(excluded)
    if isinstance(room, Mapping):
        has_room = [room.get(p, 0.0) >= units - 1e-12 for p in ids]
    else:
        roomy = set(room)
        has_room = [p in roomy for p in ids]
    ok = np.array([r and p not in ex for p, r in zip(ids, has_room, strict=True)], dtype=bool)
    d = choose(np.arange(len(ids)), scores, price, ok, ids, units=units, hold_below=None)
    gone = [p for p in ids if p in ex]
    not_back = f"; not back to {', '.join(gone)} (rejected, expired or reclaimed)" if gone else ""
    if d.partner_id is None:
        full = [p for p, r in zip(ids, has_room, strict=True) if not r and p not in ex]
        parts = []
        if gone:
            parts.append(f"{', '.join(gone)} rejected it, let it expire or had it reclaimed")
        if full:
            parts.append(f"{', '.join(full)} {'has' if len(full) == 1 else 'have'} no room")
        detail = "; ".join(parts) if parts else "the lead has no eligible partner"
        return Reroute("pool", None, None, None, None, reroutes_done,
                       f"pooled: no eligible partner left to offer it to ({detail})")
    n = reroutes_done + 1
    why = (d.reason.replace("routed to", f"re-offered (re-route {n} of {sla.max_reroutes}) to",
                            1) + not_back)
    return Reroute("offer", d.partner_id, d.score, d.price, d.adjusted_value, n, why)
