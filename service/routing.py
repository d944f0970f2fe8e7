"""Real-time routing of single leads between rounds, as a service function.

A lead that arrives alone is scored against the latest round's partners (the
same eligibility rules and model as the round) and routed at once to
``argmax_j (score_ij − λ_j)`` over its eligible partners with room, ``λ`` the
latest round's capacity prices refreshed by :class:`allocator.realtime.RealtimeRouter`
as the day's arrivals consume capacity (``reprice()`` runs off the request path,
from the background job; new prices are written to ``round_partners`` so
re-routing and other workers use them).  A lead whose best ``score − price``
is not positive is held for the next round.

The router lives in the process (one per worker); room does not: before each
decision the router's remaining capacity is read from ``round_partners``, and
the chosen partner's room is taken with a conditional update, so workers
routing at once never overfill a partner.  The offer is a live assignment
(the database refuses a second one for the lead) with an audit entry whose
reason names the price that decided it.

A request is cheap by construction (a few ms, ``bench/bench_realtime_http.py``):
one query reads what it depends on (:meth:`RoutingCache.lookup`: the round, the
partners, the model, active webhook subscriptions, whether the lead is stored);
the lead is validated and scored without frames against the partner side kept
on the context (:mod:`service.route_scoring`); :func:`plan_route` reads room
and decides before any write, and :func:`store_route` writes the lead, room,
candidates, offer and audit entries with one table-level statement each, so the
write transaction (one writer at a time on SQLite, queued on the app's write
lock) holds only those and the commit.  The LP re-solve runs outside the lock
decisions take.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from allocator.policy import Policy
from allocator.realtime import PriorSample, RealtimeRouter, RouteDecision, choose
from service.contract import validate_partners
from service.db import audit, outbox, room
from service.db import partners as partners_repo
from service.db.offers import LifecycleConflictError
from service.db.records import partners_frame, stored_record
from service.db.reroute import Actor
from service.db.tables import (
    Assignment,
    AuditEntry,
    Lead,
    Partner,
    Round,
    RoundCandidates,
    RoundPartner,
    WebhookSubscription,
    table_of,
)
from service.lead_scoring import LeadScoring
from service.lifecycle.states import accept_deadline
from service.route_scoring import ScoredLead, ScoringBatcher, typed_record

# The writes of a route as table-level statements, built once: executed with plain rows they
# skip the ORM's bulk machinery and re-coercing the values each time (a third of a route's CPU).
_INSERT_LEAD = sa.insert(table_of(Lead))
_INSERT_CANDIDATES = sa.insert(table_of(RoundCandidates))
_INSERT_ASSIGNMENT = sa.insert(table_of(Assignment)).returning(table_of(Assignment).c.id)
_INSERT_AUDIT = sa.insert(table_of(AuditEntry))

#: Most leads of the round used as the router's prior sample (see ``RealtimeRouter``).
PRIOR_LEADS = 3000


class NoRoundError(LookupError):
    """Real-time routing needs a round: its policy, partners and prices."""


@dataclass
class RoutingContext:
    """Everything a decision needs, built once per round (and partners, and model)."""

    round_id: int
    policy: Policy
    partners: pd.DataFrame
    scorer: Any
    model_version: str | None
    router: RealtimeRouter
    index: dict[str, int]
    price_source: str
    key: tuple[Any, ...]
    lock: threading.Lock
    #: The partner side of eligibility and scoring, done once (see :mod:`service.lead_scoring`).
    scoring: LeadScoring | None = None


@dataclass(frozen=True)
class RouteOutcome:
    """Where a lead went (``assignment``) or why it was held."""

    lead_id: str
    round_id: int
    routed: bool
    reason: str
    decision: RouteDecision | None
    assignment: Assignment | None
    price_source: str
    decision_ms: float


# Read on every request: built once.
_STATE = sa.select(
    sa.select(sa.func.max(Round.id)).scalar_subquery(),
    sa.select(sa.func.max(Partner.updated_at)).scalar_subquery(),
    sa.select(sa.func.count(Partner.partner_id)).scalar_subquery(),
    sa.select(sa.func.count(WebhookSubscription.id)).where(WebhookSubscription.active)
    .scalar_subquery(),
    sa.select(sa.func.count(Lead.lead_id)).where(Lead.lead_id == sa.bindparam("lead_id"))
    .scalar_subquery())
_FREE = sa.select(RoundPartner.partner_id,
                  RoundPartner.capacity_units - RoundPartner.used_units).where(
    RoundPartner.round_id == sa.bindparam("round_id"))


class RequestState(NamedTuple):
    """What a request reads first, in one query (:meth:`RoutingCache.lookup`)."""

    context: RoutingContext
    #: Active webhook subscriptions (none: a routed offer writes no event).
    subscriptions: int
    #: The lead asked about is stored already.
    lead_stored: bool


def _state(session: Session, model_version: str | None, lead_id: str = ""
           ) -> tuple[tuple[Any, ...], int, bool]:
    """What a context depends on (the latest round, the partners, the model), how many
    webhook subscriptions are active, and whether ``lead_id`` is stored: one query."""
    row = session.execute(_STATE, {"lead_id": lead_id}).one()
    return (row[0], row[1], row[2], model_version), int(row[3] or 0), bool(row[4])


def _key(session: Session, model_version: str | None) -> tuple[Any, ...]:
    """What a context depends on: the latest round, the partners, the model (one query)."""
    return _state(session, model_version)[0]


def _prior(session: Session, round_id: int, index: dict[str, int]) -> PriorSample | None:
    rows = session.execute(
        sa.select(RoundCandidates.partner_ids, RoundCandidates.scores)
        .where(RoundCandidates.round_id == round_id)
        .order_by(RoundCandidates.lead_id).limit(PRIOR_LEADS)).all()
    lead, part, score = [], [], []
    for i, (pids, scores) in enumerate(rows):
        for p, s in zip(pids, scores, strict=True):
            if p in index:
                lead.append(i)
                part.append(index[p])
                score.append(float(s))
    if not lead:
        return None
    return PriorSample(np.asarray(lead, dtype=np.int64), np.asarray(part, dtype=np.int64),
                       np.asarray(score, dtype=float))


def build_context(session: Session, scorer: Any, model_version: str | None, *,
                  expected_arrivals: int | None = None) -> RoutingContext:
    """The routing context of the latest round.

    Raises
    ------
    NoRoundError
        No round has been run (or it priced no partner).
    InputError
        Stored partners that break the contract under the round's policy.
    """
    key = _key(session, model_version)
    round_id = key[0]
    if round_id is None:
        raise NoRoundError("Real-time routing needs a round first (its policy, partners and "
                           "prices): POST /rounds.")
    rooms = room.room(session, round_id)
    if not rooms:
        raise NoRoundError(f"Round {round_id} priced no partner (no partner was in it), so "
                           "there is nobody to route to; run a round with partners.")
    policy = room.round_policy(session, round_id)
    stored = [p for p in partners_repo.all_partners(session) if p.partner_id in rooms]
    partners = validate_partners(partners_frame(stored), file="stored partners", policy=policy)
    ids = [str(p) for p in partners["partner_id"]]
    index = {p: j for j, p in enumerate(ids)}
    prior = _prior(session, round_id, index)
    n_round = session.scalar(sa.select(sa.func.count()).select_from(RoundCandidates)
                             .where(RoundCandidates.round_id == round_id)) or 0
    expected = expected_arrivals or max(int(n_round), 1)
    router = RealtimeRouter(ids, [rooms[p].free_units for p in ids],
                            [rooms[p].price for p in ids], expected_arrivals=expected,
                            prior=prior, auto_reprice=False)
    source = session.scalar(sa.select(RoundPartner.price_source)
                            .where(RoundPartner.round_id == round_id).limit(1)) or ""
    return RoutingContext(round_id, policy, partners, scorer, model_version, router, index,
                          source, key, threading.Lock(), LeadScoring(partners, policy, scorer))


class RoutingCache:
    """One routing context per process, rebuilt when a round, the partners or the model change."""

    def __init__(self, write_lock: threading.Lock | None = None) -> None:
        self._lock = threading.Lock()
        self.context: RoutingContext | None = None
        self.batcher = ScoringBatcher()
        #: The app's SQLite write lock (``None`` on PostgreSQL): re-pricing writes under it.
        self.write_lock = write_lock

    def get(self, session: Session, scorer: Any, model_version: str | None,
            expected_arrivals: int | None = None) -> RoutingContext:
        """The context of the latest round (built when a round, the partners or the model
        changed)."""
        return self.lookup(session, scorer, model_version, expected_arrivals).context

    def lookup(self, session: Session, scorer: Any, model_version: str | None,
               expected_arrivals: int | None = None, lead_id: str = "") -> RequestState:
        """:meth:`get`, the number of active webhook subscriptions, and whether ``lead_id``
        is stored, from one query.

        Raises
        ------
        NoRoundError
            No round has been run (or it priced no partner).
        """
        key, n_subscriptions, stored = _state(session, model_version, lead_id)
        ctx = self.context
        if ctx is None or ctx.key != key:
            with self._lock:
                if self.context is None or self.context.key != key:
                    self.context = build_context(session, scorer, model_version,
                                                 expected_arrivals=expected_arrivals)
                ctx = self.context
        return RequestState(ctx, n_subscriptions, stored)

    def reprice_if_due(self, sessions: sessionmaker[Session], now: datetime) -> bool:
        """Re-solve the prices when the router's checkpoint is reached; store them."""
        ctx = self.context
        if ctx is None or not ctx.router.reprice_due:
            return False
        # not under ctx.lock: decisions go on at the old prices while the LP solves
        result = ctx.router.reprice()
        prices = dict(zip(ctx.router.partner_ids, result.price.tolist(), strict=True))
        source = (f"{result.price_source}, re-solved on {result.n_leads} leads")[:64]
        c = table_of(RoundPartner).c
        # one statement for every partner (CASE on the id): under the write lock, each
        # statement of an executemany gives the GIL away and waits to get it back
        update = (sa.update(table_of(RoundPartner)).where(c.round_id == ctx.round_id)
                  .values(price=sa.case({pid: float(p) for pid, p in prices.items()},
                                        value=c.partner_id, else_=c.price),
                          price_source=source, priced_at=now))
        with sessions() as session:
            # The connection first, then the write lock, in that order as requests take them:
            # holding the lock while waiting for a connection that requests queued on the lock
            # hold would deadlock.  Under the lock (SQLite), in-process writers queue on it
            # rather than meet this transaction in SQLite's busy handler (sleeps of up to 100 ms).
            session.connection()
            with self.write_lock or nullcontext():
                room.lock(session)
                session.execute(update)
                audit.record(session, actor="router", actor_role="system",
                             action="prices.repriced", entity_type="round",
                             entity_id=str(ctx.round_id), round_id=ctx.round_id,
                             reason=f"capacity prices re-solved after {ctx.router.n_seen} "
                             f"arrivals ({result.n_leads} leads, {result.n_pairs} pairs)",
                             detail={"prices": prices, "solve_s": result.solve_s}, at=now)
                session.commit()
        ctx.price_source = source
        return True


def _entry(actor: Actor, action: str, entity_type: str, entity_id: str, lead: Lead,
           now: datetime, *, round_id: int | None = None, partner_id: str | None = None,
           reason: str | None = None, detail: dict[str, Any] | None = None) -> dict[str, Any]:
    """One audit entry, every column (the entries of a route are inserted together)."""
    return {"at": now, "actor": actor.name, "actor_role": actor.role, "action": action,
            "entity_type": entity_type, "entity_id": entity_id, "round_id": round_id,
            "lead_id": lead.lead_id, "partner_id": partner_id, "reason": reason,
            "detail": detail or {}}


def _decide(ctx: RoutingContext, session: Session, parts: np.ndarray, values: np.ndarray,
            units: float) -> RouteDecision:
    rooms: dict[str, float] = {p: free for p, free in session.execute(
        _FREE, {"round_id": ctx.round_id})}
    free = np.array([max(float(rooms.get(p, 0.0)), 0.0) for p in ctx.router.partner_ids])
    with ctx.lock:
        ctx.router.remaining[:] = free
        return ctx.router.route(parts, values, units=units)


def _retry(ctx: RoutingContext, session: Session, parts: np.ndarray, values: np.ndarray,
           units: float, full: set[int]) -> RouteDecision:
    """Decide again after a partner filled up under us (no new arrival is counted)."""
    rooms = room.room(session, ctx.round_id)
    ids = ctx.router.partner_ids
    has_room = np.array([rooms[ids[j]].free_units >= units - room.EPS and j not in full
                         if ids[j] in rooms else False for j in parts.tolist()], dtype=bool)
    return choose(parts, values, ctx.router.price, has_room, ids, units=units,
                  hold_below=ctx.router.hold_below)


@dataclass(frozen=True, eq=False)
class RoutePlan:
    """What :func:`plan_route` read and decided; :func:`store_route` writes it."""

    lead: Lead
    scored: ScoredLead
    decision: RouteDecision | None
    parts: np.ndarray
    units: float
    known: bool
    subscribers: Sequence[WebhookSubscription]
    started: float


def plan_route(session: Session, ctx: RoutingContext, lead: Lead, *,
               scored: ScoredLead | None = None, new: bool = False,
               subscribers: Sequence[WebhookSubscription] | None = None) -> RoutePlan:
    """Read what routing ``lead`` needs and decide, before any write.

    Room is read now and taken later with a conditional update, so the decision
    needs no write lock: a partner that fills up in between is found then and the
    lead decided again (:func:`store_route`).

    Parameters
    ----------
    scored : ScoredLead, optional
        The lead validated and scored under ``ctx`` when the caller has it
        (:class:`~service.route_scoring.ScoringBatcher`); otherwise it is done here.
    new : bool
        The lead is not stored yet (so it has no assignment and no round candidates).
    subscribers : sequence of WebhookSubscription, optional
        The active webhook subscriptions when the caller knows them (none: read here).

    Raises
    ------
    LifecycleConflictError
        The lead already has a live assignment.
    InputError
        The stored lead breaks the contract, or the model cannot score it.
    """
    t0 = time.perf_counter()
    if not new:
        holder = session.execute(sa.select(Assignment.id, Assignment.partner_id).where(
            Assignment.lead_id == lead.lead_id, Assignment.live)).first()
        if holder is not None:
            raise LifecycleConflictError(f"Lead {lead.lead_id!r} already has a live assignment "
                                         f"({holder[0]}); it is not routed again.",
                                         [lead.lead_id])
    if scored is None:
        record = stored_record(lead)
        scoring = ctx.scoring or LeadScoring(ctx.partners, ctx.policy, ctx.scorer)
        scored, = scoring.score([typed_record(record)],
                                [room.declined_by(session, lead.lead_id)], [record])
    units = float(lead.effort or 1.0)
    if scored.held is not None:
        return RoutePlan(lead, scored, None, np.zeros(0, dtype=np.int64), units, True, (), t0)
    assert scored.values is not None
    parts = np.asarray([ctx.index[p] for p in scored.partner_ids], dtype=np.int64)
    decision = _decide(ctx, session, parts, scored.values, units)
    known = not new and bool(session.scalar(
        sa.select(sa.func.count()).select_from(RoundCandidates).where(
            RoundCandidates.round_id == ctx.round_id, RoundCandidates.lead_id == lead.lead_id)))
    subs = outbox.active_subscribers(session) if subscribers is None else subscribers
    return RoutePlan(lead, scored, decision, parts, units, known, subs, t0)


def store_route(session: Session, ctx: RoutingContext, plan: RoutePlan, now: datetime,
                actor: Actor, *, new_lead: dict[str, Any] | None = None,
                on_decision: Callable[[RouteDecision], None] | None = None) -> RouteOutcome:
    """Write a planned route (the caller commits): the new lead, room, offer, audit, events.

    Parameters
    ----------
    new_lead : dict, optional
        Column values of the lead when it is not stored yet (stored first, audited as
        ``lead.created``).
    """
    lead, scored = plan.lead, plan.scored
    entries: list[dict[str, Any]] = []
    if new_lead is not None:
        session.execute(_INSERT_LEAD, [{**new_lead, "ingested_at": now}])
        entries.append(_entry(actor, "lead.created", "lead", lead.lead_id, lead, now))
    decision = plan.decision
    if decision is None:
        return _held(session, ctx, plan, f"held for the next round: {scored.held}", now, actor,
                     None, entries)
    assert scored.values is not None
    full: set[int] = set()
    while decision.partner is not None and decision.partner_id is not None:
        if room.take(session, ctx.round_id, decision.partner_id, plan.units):
            break
        full.add(decision.partner)
        decision = _retry(ctx, session, plan.parts, scored.values, plan.units, full)
    if on_decision is not None:
        on_decision(decision)
    if not plan.known:
        session.execute(_INSERT_CANDIDATES, [{
            "round_id": ctx.round_id, "lead_id": lead.lead_id,
            "partner_ids": list(scored.partner_ids), "scores": scored.values.tolist()}])
    if decision.partner_id is None:
        return _held(session, ctx, plan, decision.reason, now, actor, decision, entries)
    a = _offer(session, ctx, plan, decision, now, actor, entries)
    return RouteOutcome(lead.lead_id, ctx.round_id, True, a.reason, decision, a,
                        ctx.price_source, (time.perf_counter() - plan.started) * 1e3)


def route_lead(session: Session, ctx: RoutingContext, lead: Lead, now: datetime,
               actor: Actor, *, scored: ScoredLead | None = None,
               new_lead: dict[str, Any] | None = None,
               on_decision: Callable[[RouteDecision], None] | None = None) -> RouteOutcome:
    """Route one lead now (the caller commits): :func:`plan_route` then :func:`store_route`.

    Everything is read and decided before the first write, so a write transaction
    (one writer at a time on SQLite) lasts only as long as the writes.

    Raises
    ------
    LifecycleConflictError
        The lead already has a live assignment.
    InputError
        The stored lead breaks the contract, or the model cannot score it.
    """
    plan = plan_route(session, ctx, lead, scored=scored, new=new_lead is not None)
    return store_route(session, ctx, plan, now, actor, new_lead=new_lead,
                       on_decision=on_decision)


def _held(session: Session, ctx: RoutingContext, plan: RoutePlan, reason: str, now: datetime,
          actor: Actor, decision: RouteDecision | None,
          entries: list[dict[str, Any]]) -> RouteOutcome:
    lead = plan.lead
    entries.append(_entry(actor, "lead.held", "lead", lead.lead_id, lead, now,
                          round_id=ctx.round_id, reason=reason))
    session.execute(_INSERT_AUDIT, entries)
    return RouteOutcome(lead.lead_id, ctx.round_id, False, reason, decision, None,
                        ctx.price_source, (time.perf_counter() - plan.started) * 1e3)


def _offer(session: Session, ctx: RoutingContext, plan: RoutePlan, d: RouteDecision,
           now: datetime, actor: Actor, entries: list[dict[str, Any]]) -> Assignment:
    assert d.partner_id is not None and d.score is not None and plan.scored.values is not None
    lead, pids, values = plan.lead, list(plan.scored.partner_ids), plan.scored.values
    reason = (f"{d.reason} (prices of round {ctx.round_id}"
              f"{', ' + ctx.price_source if ctx.price_source else ''})")
    named = sorted(set(pids) - {d.partner_id})
    due = accept_deadline(now, ctx.policy.sla)
    row = {
        "round_id": ctx.round_id, "lead_id": lead.lead_id, "partner_id": d.partner_id,
        "score": d.score, "rank": 1 + int(np.sum(values > d.score)), "reason": reason,
        "state": "offered", "live": True, "created_at": now, "updated_at": now,
        "state_at": now, "due_at": due, "origin": "realtime", "reroutes": 0,
        "units": plan.units,
        "explanation": {"origin": "realtime", "price": d.price,
                        "adjusted_value": d.adjusted_value, "price_source": ctx.price_source,
                        "n_eligible": d.n_eligible, "n_with_room": d.n_with_room,
                        "named_partners": named}}
    # one INSERT ... RETURNING; the answer is built from the same values
    new_id = session.execute(_INSERT_ASSIGNMENT, row).scalar_one()
    a = Assignment(id=new_id, **row)
    entries.append(_entry(actor, "assignment.routed", "assignment", str(a.id), lead, now,
                          round_id=ctx.round_id, partner_id=d.partner_id, reason=reason,
                          detail={"score": d.score, "price": d.price,
                                  "adjusted_value": d.adjusted_value,
                                  "named_partners": named}))
    session.execute(_INSERT_AUDIT, entries)
    outbox.enqueue(session, [outbox.PendingEvent(
        "offer_made", d.partner_id,
        outbox.offer_data(a.id, lead, d.partner_id, due, origin="realtime"))], now,
        plan.subscribers)
    return a
