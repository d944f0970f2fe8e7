"""Request (``*Create``) and response (``*Public``) bodies of the API.

Request rows carry JSON types only; the data contract's rules (capacity ≥ 0,
intent in high/medium/low, ISO-8601 timestamps, ``;``-lists...) are checked by
``service.contract`` afterwards, so a JSON row and a CSV row break a rule with
the same words.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from service.api.fields import (
    MAX_BATCH_ROWS,
    ExtraValue,
    Flag,
    Ident,
    IdList,
    Num,
    RowId,
    Text,
    storable_json,
)

T = TypeVar("T")



class Page(BaseModel, Generic[T]):
    """One page of a listing."""

    items: list[T]
    total: int = Field(description="Items matching the filters, on every page")
    offset: int
    limit: int


class _Row(BaseModel):
    """A bulk row: known columns typed, other columns kept as model features."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, ExtraValue] = Field(init=False)

    @model_validator(mode="after")
    def _extra_names(self) -> _Row:
        for name in self.__pydantic_extra__ or {}:
            storable_json(name, what="column name")
            if not name.strip() or len(name) > 100:
                raise ValueError(f"extra column name {name!r} must be 1 to 100 characters")
        return self

    def as_record(self) -> dict[str, Any]:
        """The row as given: known columns that were sent, plus extras."""
        return self.model_dump(exclude_unset=True)


# -- partners ----------------------------------------------------------------------------


class PartnerCreate(_Row):
    """One partner, as a row of ``partners.csv`` (lists as JSON arrays or ``;``-text)."""

    partner_id: Ident
    name: Text | None = None
    tier: Ident
    regions: IdList
    verticals: IdList | None = None
    certifications: IdList | None = None
    capacity: Num = Field(description="Most new leads (or effort units) in one round; ≥ 0")
    open_leads: Num | None = Field(None, description="Current backlog; ≥ 0, default 0")
    active: Flag | None = Field(None, description="Inactive partners receive nothing")


class PartnersCreate(BaseModel):
    partners: list[PartnerCreate] = Field(min_length=1, max_length=MAX_BATCH_ROWS)


class PartnerPublic(BaseModel):
    partner_id: str
    name: str
    tier: str
    regions: list[str]
    verticals: list[str]
    certifications: list[str]
    capacity: int
    open_leads: int
    active: bool
    extras: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class PartnersUpserted(BaseModel):
    """What a bulk upsert did; re-sending the same partners changes nothing."""

    created: int
    updated: int
    unchanged: int
    created_ids: list[str]
    updated_ids: list[str]
    message: str


# -- leads -------------------------------------------------------------------------------


class LeadCreate(_Row):
    """One lead, as a row of ``leads.csv``."""

    lead_id: Ident = Field(description="Unique; also the idempotency key")
    created_at: Ident = Field(
        description="ISO-8601, e.g. 2024-05-01T09:30:00Z", examples=["2024-05-01T09:30:00Z"]
    )
    region: Ident
    country: Ident | None = None
    vertical: Ident | None = None
    product: Ident | None = None
    company_size: Num | None = None
    deal_size: Num | None = None
    intent: Ident | None = Field(None, description="high, medium or low")
    qualification_score: Num | None = Field(None, description="0 to 100")
    account_owner_partner_id: Ident | None = None
    effort: Num | None = Field(None, description="> 0, default 1")
    contact_name: Text | None = None
    contact_email: Text | None = None
    contact_phone: Text | None = None


class LeadsCreate(BaseModel):
    leads: list[LeadCreate] = Field(min_length=1, max_length=MAX_BATCH_ROWS)


class LeadConflict(BaseModel):
    lead_id: str
    fields: list[str] = Field(description="Columns whose stored value differs from the one sent")


class LeadsIngested(BaseModel):
    """What an ingest did. Leads are immutable once stored: a lead sent again with the same
    content is ``unchanged``; with other content it is ``conflicting`` and never overwritten."""

    created: int
    unchanged: int
    conflicting: int
    conflicts: list[LeadConflict]
    message: str


class Contact(BaseModel):
    contact_name: str | None = None
    contact_email: str | None = None
    contact_phone: str | None = None


class LeadPublic(BaseModel):
    lead_id: str
    created_at: datetime
    region: str
    country: str | None = None
    vertical: str | None = None
    product: str | None = None
    company_size: int | None = None
    deal_size: float | None = None
    intent: str | None = None
    qualification_score: float | None = None
    account_owner_partner_id: str | None = None
    effort: float
    extras: dict[str, Any]
    contact: Contact | None = Field(None, description="Only when the caller may see it")
    contact_withheld: str | None = Field(None, description="Why the contact is not shown")
    ingested_at: datetime


# -- history -----------------------------------------------------------------------------


class HistoryCreate(_Row):
    """One past assignment with its outcome (lead columns, ``partner_id``, ``assigned_at``)."""

    converted: Flag = Field(description="yes/no, true/false or 1/0")
    lead_id: Ident | None = None
    partner_id: Ident | None = None
    assigned_at: Ident | None = Field(None, description="ISO-8601")


class HistoryCreateBatch(BaseModel):
    history: list[HistoryCreate] = Field(min_length=1, max_length=MAX_BATCH_ROWS)


class HistoryIngested(BaseModel):
    created: int
    unchanged: int = Field(description="Rows already stored with the same content")
    message: str


class HistoryPublic(BaseModel):
    id: int
    lead_id: str
    partner_id: str | None
    assigned_at: datetime
    converted: int
    record: dict[str, Any]


# -- policies ----------------------------------------------------------------------------


class PolicyCreate(BaseModel):
    """A policy as TOML text or as the parsed mapping (exactly one of the two)."""

    toml: Text | None = Field(None, description="The policy file's text")
    body: dict[str, Any] | None = Field(None, description="The policy as a JSON object")

    @model_validator(mode="after")
    def _one_form(self) -> PolicyCreate:
        if (self.toml is None) == (self.body is None):
            raise ValueError("give the policy either as 'toml' text or as 'body', not both")
        if self.body is not None:
            storable_json(self.body, what="policy")
        return self


class PolicyPublic(BaseModel):
    id: int
    content_hash: str = Field(description="sha256 of the normalized policy: its version")
    body: dict[str, Any]
    source_toml: str | None
    created_at: datetime
    created_by: str | None


class PolicyStored(PolicyPublic):
    created: bool = Field(description="False when the same policy was already stored")


# -- rounds ------------------------------------------------------------------------------


class RoundCreate(BaseModel):
    """Run a round: a stored policy by id, or a new one (stored and versioned on the way)."""

    policy_id: RowId | None = None
    policy: PolicyCreate | None = None
    lead_ids: list[Ident] | None = Field(
        None,
        max_length=MAX_BATCH_ROWS,
        description="Only these leads (default: every lead without a live assignment)",
    )

    @model_validator(mode="after")
    def _one_policy(self) -> RoundCreate:
        if (self.policy_id is None) == (self.policy is None):
            raise ValueError("give either 'policy_id' or 'policy', not both")
        return self


class RoundPublic(BaseModel):
    id: int
    policy_id: int
    policy_hash: str
    status: str
    model_version: str | None
    n_leads: int = Field(description="Leads considered (without a live assignment)")
    n_assigned: int
    n_held_back: int
    objective: float | None
    bound: float | None
    gap: float | None
    created_at: datetime
    created_by: str | None


class RoundDetail(RoundPublic):
    summary: dict[str, Any] = Field(description="The pipeline's summary.json of the round")


class FairnessPublic(BaseModel):
    round_id: int
    fairness: dict[str, Any]
    partners: list[dict[str, Any]] = Field(description="Per partner: leads, expected value, ...")
    rules: list[dict[str, Any]] = Field(description="Each rule: binding or not, and its price")


# -- assignments -------------------------------------------------------------------------

class AssignmentPublic(BaseModel):
    id: int
    round_id: int
    lead_id: str
    partner_id: str
    tier: str | None
    score: float
    rank: int | None = Field(description="Rank of the partner among the lead's eligible ones")
    reason: str
    state: str = Field(description="offered, accepted, rejected, expired, ... (the lifecycle)")
    live: bool = Field(description="The assignment holds the lead: no other round may take it")
    created_at: datetime
    lead: LeadPublic


class ExplanationPublic(BaseModel):
    assignment_id: int
    lead_id: str
    partner_id: str
    score: float
    rank: int | None
    reason: str
    explanation: dict[str, Any]


# -- models ------------------------------------------------------------------------------


class TrainCreate(BaseModel):
    exclude: list[Ident] = Field(default_factory=list, max_length=200)
    promote: bool = Field(False, description="Promote the new version when trained")


class ModelVersionPublic(BaseModel):
    version: str
    promoted: bool
    created_at: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)


# -- audit -------------------------------------------------------------------------------


class AuditEntryPublic(BaseModel):
    id: int
    at: datetime
    actor: str
    actor_role: str | None
    action: str
    entity_type: str
    entity_id: str | None
    round_id: int | None
    lead_id: str | None
    partner_id: str | None
    reason: str | None
    detail: dict[str, Any]

