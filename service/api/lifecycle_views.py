"""Offers and pooled leads as the caller may see them (blind until accepted, no rival named)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.orm import Session

from service.api.deps import PARTNER
from service.api.errors import ConflictError
from service.api.lifecycle_schemas import NextStep, OfferLead, OfferPublic, PooledPublic
from service.api.schemas import Contact
from service.api.views import contact_visibility, redact_partners
from service.db.keys import Principal
from service.db.offers import DISPOSITIONS, LifecycleConflictError
from service.db.pool import Pooled
from service.db.reroute import Actor, Rerouted
from service.db.tables import Assignment, Lead
from service.lifecycle.states import LeadEvent, allowed_events

_ACTIONS = {LeadEvent.ACCEPT: "accept", LeadEvent.REJECT: "reject",
            **{event: name for name, event in DISPOSITIONS.items()}}


def actor(caller: Principal) -> Actor:
    return Actor(caller.actor, caller.role)


def offer_lead(lead: Lead, caller: Principal, state: str | None) -> OfferLead:
    withheld = contact_visibility(caller, state)
    body = OfferLead.model_validate(lead, from_attributes=True)
    if withheld is None:
        body.contact = Contact(contact_name=lead.contact_name, contact_email=lead.contact_email,
                               contact_phone=lead.contact_phone)
    else:
        body.contact_withheld = withheld
    return body


def named(a: Assignment) -> list[str]:
    """Partners an assignment's reason may name besides its own."""
    expl = a.explanation or {}
    out = [str(expl[k]) for k in ("best_partner_id", "stopped_by_partner") if expl.get(k)]
    return out + [str(p) for p in expl.get("named_partners", []) or []]


def shown_reason(text: str, caller: Principal, own: str, others: Iterable[str]) -> str:
    return redact_partners(text, own, others) if caller.role == PARTNER else text


def offer_public(a: Assignment, lead: Lead, caller: Principal) -> OfferPublic:
    allowed = [_ACTIONS[e] for e in allowed_events(a.state) if e in _ACTIONS] if a.live else []
    waiting = a.state == "offered"
    return OfferPublic(
        id=a.id, round_id=a.round_id, lead_id=a.lead_id, partner_id=a.partner_id,
        state=a.state, origin=a.origin, live=a.live, score=a.score, rank=a.rank,
        reason=shown_reason(a.reason, caller, a.partner_id, named(a)),
        offered_at=a.created_at, state_at=a.state_at,
        accept_by=a.due_at if waiting else None,
        contact_by=a.due_at if a.state in ("accepted", "claimed") else None,
        accepted_at=a.accepted_at, contacted_at=a.contacted_at, closed_at=a.closed_at,
        reroutes=a.reroutes, reason_code=a.reason_code, reason_text=a.reason_text,
        allowed=allowed, lead=offer_lead(lead, caller, a.state),
    )


def next_step(rerouted: Rerouted | None, caller: Principal) -> NextStep | None:
    if rerouted is None:
        return None
    if caller.role == PARTNER:
        words = ("re-offered to another partner" if rerouted.action == "offer"
                 else "moved to the claim pool")
        return NextStep(action=rerouted.action, reason=words)
    new = rerouted.assignment
    return NextStep(action=rerouted.action, reason=rerouted.reason,
                    assignment_id=new.id if new is not None else None,
                    partner_id=new.partner_id if new is not None else None)


def pooled_public(p: Pooled, caller: Principal) -> PooledPublic:
    others = [*p.eligible, *p.declined]
    own = caller.partner_id or ""
    return PooledPublic(
        entry_id=p.entry.id, lead_id=p.entry.lead_id, pooled_at=p.entry.pooled_at,
        reason=shown_reason(p.entry.reason, caller, own, others),
        cascade=list(p.entry.cascade), step_hours=p.entry.step_hours,
        visible_tiers=list(p.visible_tiers), next_tier_at=p.next_tier_at,
        lead=offer_lead(p.lead, caller, "pooled"),
    )


@contextmanager
def conflicts_as_409(session: Session, what: str) -> Iterator[None]:
    """Lifecycle conflicts, and constraints hit by a concurrent writer, as 409 (rolled back)."""
    try:
        yield
    except LifecycleConflictError as exc:
        session.rollback()
        raise ConflictError(exc.detail, exc.ids) from None
    except sa.exc.IntegrityError as exc:
        session.rollback()
        raise ConflictError(f"Another request changed the same {what} at the same time "
                            f"({type(exc.orig).__name__}); nothing was stored — send the "
                            "request again.") from None
