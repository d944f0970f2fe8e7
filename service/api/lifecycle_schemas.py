"""Request and response bodies of the lead's life after allocation (offers, pool, routing, ...)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from service.api.fields import Ident, Text
from service.api.schemas import Contact, LeadCreate
from service.lifecycle.states import LOST_REASONS, MAX_REASON_TEXT, REJECT_REASONS
from service.lifecycle.webhooks import EVENT_TYPES

ReasonText = Text


class OfferLead(BaseModel):
    """The lead as an offer shows it: blind (no contact) until the partner accepts."""

    lead_id: str
    created_at: datetime
    region: str
    country: str | None = None
    vertical: str | None = None
    product: str | None = None
    company_size: int | None = None
    intent: str | None = None
    contact: Contact | None = Field(None, description="Only once accepted (or claimed)")
    contact_withheld: str | None = Field(None, description="Why the contact is not shown")


class OfferPublic(BaseModel):
    id: int
    round_id: int
    lead_id: str
    partner_id: str
    state: str = Field(description="offered, accepted, claimed, contacted, qualified, "
                       "opportunity, won, lost, rejected, expired, reclaimed")
    origin: str = Field(description="round, reroute, realtime or claim")
    live: bool
    score: float
    rank: int | None
    reason: str
    offered_at: datetime
    state_at: datetime
    accept_by: datetime | None = Field(None, description="Offered: when it expires")
    contact_by: datetime | None = Field(None, description="Accepted or claimed: when it is "
                                        "reclaimed without a contact disposition")
    accepted_at: datetime | None = None
    contacted_at: datetime | None = None
    closed_at: datetime | None = None
    reroutes: int
    reason_code: str | None = None
    reason_text: str | None = None
    allowed: list[str] = Field(description="What can be done next: accept, reject, or the "
                               "dispositions")
    lead: OfferLead


class NextStep(BaseModel):
    """Where a lead went when its offer ended (a partner key sees no competitor)."""

    action: Literal["offer", "pool"]
    reason: str
    assignment_id: int | None = None
    partner_id: str | None = None


class OfferMoved(BaseModel):
    offer: OfferPublic
    next: NextStep | None = Field(default=None,
                                  description="After a reject: re-offered or pooled")


class RejectCreate(BaseModel):
    reason: str = Field(description="One of: " + ", ".join(REJECT_REASONS),
                        json_schema_extra={"enum": list(REJECT_REASONS)}, max_length=32)
    text: ReasonText | None = Field(None, description=f"Free text (at most {MAX_REASON_TEXT} "
                                    "characters); required with 'other'")


Disposition = Literal["contacted", "qualified", "opportunity", "won", "lost"]


class DispositionCreate(BaseModel):
    disposition: Disposition
    reason: str | None = Field(None, max_length=32,
                               description="Lost only (required): " + ", ".join(LOST_REASONS),
                               json_schema_extra={"enum": [*LOST_REASONS, None]})
    text: ReasonText | None = Field(None, description="Free text of the lost reason")
    note: Text | None = Field(None, max_length=2000, description="A note for the audit log")

    @model_validator(mode="after")
    def _reason_only_when_lost(self) -> DispositionCreate:
        if self.disposition == "lost" and not self.reason:
            raise ValueError("a lost lead needs a 'reason': " + ", ".join(LOST_REASONS))
        if self.disposition != "lost" and (self.reason or self.text):
            raise ValueError("'reason' and 'text' are for lost leads only; use 'note'")
        return self


class PooledPublic(BaseModel):
    """A lead in the claim pool (blind) and who sees it."""

    entry_id: int
    lead_id: str
    pooled_at: datetime
    reason: str
    cascade: list[str]
    step_hours: float
    visible_tiers: list[str] = Field(description="Tiers that may claim it now")
    next_tier_at: datetime | None = Field(None, description="When the next tier sees it")
    lead: OfferLead


class RouteCreate(BaseModel):
    """Route one lead now: a new lead (stored on the way, idempotent by lead_id) or a stored one."""

    lead: LeadCreate | None = None
    lead_id: Ident | None = None

    @model_validator(mode="after")
    def _one_lead(self) -> RouteCreate:
        if (self.lead is None) == (self.lead_id is None):
            raise ValueError("give either 'lead' (a new lead) or 'lead_id' (a stored one)")
        return self


class RouteResult(BaseModel):
    lead_id: str
    routed: bool = Field(description="False: held for the next round (reason says why)")
    reason: str = Field(description="Names the price that decided it")
    round_id: int = Field(description="The round whose policy, partners and prices were used")
    assignment_id: int | None = None
    partner_id: str | None = None
    score: float | None = None
    price: float | None = None
    adjusted_value: float | None = None
    runner_up_id: str | None = None
    runner_up_adjusted_value: float | None = None
    n_eligible: int = 0
    n_with_room: int = 0
    price_source: str
    decision_ms: float


class WebhookCreate(BaseModel):
    url: Text = Field(max_length=2000, description=(
        "http(s) URL that receives signed POSTs: a host, no user:pass@, a port in 1-65535; "
        "unless the operator allows private addresses (FAIRLEAD_WEBHOOK_ALLOW_PRIVATE), the "
        "host must resolve to public addresses only; FAIRLEAD_WEBHOOK_ALLOWED_HOSTS may "
        "restrict the hosts"))
    events: list[str] = Field(min_length=1, max_length=len(EVENT_TYPES),
                              json_schema_extra={"items": {"enum": list(EVENT_TYPES)}})
    partner_id: Ident | None = Field(None, description="Admin only: the partner the "
                                     "subscription belongs to (none: ops, every event)")


class WebhookPublic(BaseModel):
    id: int
    partner_id: str | None
    url: str
    events: list[str]
    active: bool
    created_at: datetime
    created_by: str | None


class WebhookCreated(WebhookPublic):
    secret: str = Field(description="HMAC-SHA256 key of X-Fairlead-Signature; shown once")


class DeliveryPublic(BaseModel):
    id: int
    event_id: str
    event_type: str
    url: str
    attempt: int
    sent_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: float
    outcome: str
    next_attempt_in_s: float | None


class SweepOut(BaseModel):
    now: datetime
    expired: int
    reclaimed: int
    rerouted: int
    pooled: int
    warned: int
    skipped: int = Field(description="Assignments another worker handled first")
    repriced: bool = Field(description="Real-time routing prices were re-solved")


class Hours(BaseModel):
    mean: float | None
    median: float | None
    p90: float | None


class PerformancePublic(BaseModel):
    partner_id: str
    since: datetime | None
    until: datetime | None
    offers: int = Field(description="Offers made (rounds, re-routes, real-time)")
    pending: int
    accepted: int
    rejected: int
    expired: int
    claimed: int = Field(description="Leads claimed from the pool")
    reclaimed: int
    won: int
    lost: int
    acceptance_rate: float | None = Field(description="accepted ÷ (accepted + rejected + "
                                          "expired)")
    hours_to_accept: Hours
    hours_to_first_contact: Hours
    sla_misses: int = Field(description="Expired offers + leads reclaimed without contact")
    sla_miss_rate: float | None
    conversion_rate: float | None = Field(description="won ÷ (won + lost)")
