"""Lead lifecycle: state machine, reasons, SLA deadlines, pool cascade, re-routing, clock."""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from allocator.errors import InputError
from allocator.policy import PoolPolicy, SlaPolicy
from service.lifecycle.clock import FrozenClock, SystemClock
from service.lifecycle.states import (
    TERMINAL,
    TRANSITIONS,
    IllegalTransition,
    LeadEvent,
    LeadState,
    UnknownNameError,
    accept_deadline,
    allowed_events,
    can_claim,
    contact_deadline,
    due_event,
    lost_reason,
    next_partner,
    reject_reason,
    tier_visible_at,
    transition,
    visible_tiers,
)

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
SLA = SlaPolicy(accept_within_hours=24, contact_within_hours=48, max_reroutes=3)
POOL = PoolPolicy(cascade=("platinum", "gold", "silver", "bronze"), step_hours=4)


def _walk(start: str, *events: str) -> LeadState:
    state = LeadState(start)
    for e in events:
        state = transition(state, e)
    return state


def test_happy_path_and_failed_offer_paths() -> None:
    assert _walk("offered", "accept", "contact", "qualify", "open_opportunity", "win") == "won"
    assert _walk("offered", "reject", "reoffer", "expire", "pool", "claim", "contact",
                 "lose") == LeadState.LOST
    assert _walk("offered", "accept", "reclaim", "reoffer") == "offered"
    # partners may skip funnel steps forward
    assert _walk("accepted", "win") == "won"
    assert _walk("contacted", "open_opportunity") == "opportunity"


def test_illegal_transition_names_state_event_and_allowed() -> None:
    with pytest.raises(IllegalTransition, match=r"Cannot 'accept' a lead that is 'rejected': "
                       r"the events allowed from 'rejected' are 'reoffer', 'pool'\.") as info:
        transition("rejected", "accept")
    err = info.value
    assert isinstance(err, ValueError)
    assert err.current is LeadState.REJECTED and err.event is LeadEvent.ACCEPT
    assert err.allowed == (LeadEvent.REOFFER, LeadEvent.POOL)


def test_final_states_and_no_going_back() -> None:
    with pytest.raises(IllegalTransition, match=r"'won': the events allowed from 'won' are "
                                                r"none \(it is final\)"):
        transition("won", "lose")
    with pytest.raises(IllegalTransition, match="Cannot 'contact' a lead that is 'qualified'"):
        transition("qualified", "contact")
    with pytest.raises(IllegalTransition, match="Cannot 'claim' a lead that is 'offered'"):
        transition("offered", "claim")


def test_unknown_names_suggest_the_closest() -> None:
    with pytest.raises(UnknownNameError, match=r"Unknown lead event 'acept' \(did you mean "
                                               r"'accept'\?\)"):
        transition("offered", "acept")
    with pytest.raises(UnknownNameError, match="Unknown lead state 'ofered'"):
        allowed_events("ofered")


def test_table_is_consistent_reachable_and_has_no_dead_ends() -> None:
    for state in LeadState:
        for event in LeadEvent:
            if event in TRANSITIONS[state]:
                assert transition(state, event) is TRANSITIONS[state][event]
            else:
                with pytest.raises(IllegalTransition):
                    transition(state, event)
    seen, todo = {LeadState.OFFERED}, deque([LeadState.OFFERED])
    while todo:
        for nxt in TRANSITIONS[todo.popleft()].values():
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    assert seen == set(LeadState)
    assert {LeadState.WON, LeadState.LOST} == TERMINAL
    for state in set(LeadState) - TERMINAL:
        reach, todo = {state}, deque([state])
        while todo:
            for nxt in TRANSITIONS[todo.popleft()].values():
                if nxt not in reach:
                    reach.add(nxt)
                    todo.append(nxt)
        assert reach & TERMINAL, f"{state} can never finish"


def test_reasons_fixed_list_plus_text() -> None:
    r = reject_reason("out_of_territory", "  we do not cover Bavaria ")
    assert (r.code, r.text, str(r)) == ("out_of_territory", "we do not cover Bavaria",
                                        "out_of_territory: we do not cover Bavaria")
    assert reject_reason("duplicate").text is None
    assert lost_reason("chose_competitor").code == "chose_competitor"
    with pytest.raises(InputError, match="a reject reason of 'other' needs a text"):
        reject_reason("other", "   ")


def test_bad_reason_reports_every_problem() -> None:
    with pytest.raises(InputError) as info:
        lost_reason("no_budgit", "x" * 501)
    msg = str(info.value)
    assert "2 problems" in msg
    assert "(did you mean 'no_budget'?)" in msg
    assert "at most 500 characters (got 501)" in msg
    assert [p.column for p in info.value.problems] == ["reason", "text"]


def test_sla_deadlines_and_due_events() -> None:
    assert accept_deadline(T0, SLA) == T0 + timedelta(hours=24)
    assert contact_deadline(T0, SLA) == T0 + timedelta(hours=48)
    assert due_event("offered", T0, T0 + timedelta(hours=23, minutes=59), SLA) is None
    assert due_event("offered", T0, T0 + timedelta(hours=24), SLA) is LeadEvent.EXPIRE
    assert due_event("accepted", T0, T0 + timedelta(hours=47), SLA) is None
    assert due_event("claimed", T0, T0 + timedelta(hours=48), SLA) is LeadEvent.RECLAIM
    assert due_event("contacted", T0, T0 + timedelta(days=30), SLA) is None
    with pytest.raises(ValueError, match=r"The 'offered_at' timestamp must be timezone-aware"):
        accept_deadline(datetime(2025, 3, 3, 9), SLA)
    other_zone = T0.astimezone(ZoneInfo("Europe/Berlin"))
    assert accept_deadline(other_zone, SLA) == T0 + timedelta(hours=24)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def test_pool_cascade_opens_tier_by_tier() -> None:
    assert visible_tiers(T0, at(-1), POOL) == ()
    assert visible_tiers(T0, T0, POOL) == ("platinum",)
    assert visible_tiers(T0, at(3.99), POOL) == ("platinum",)
    assert visible_tiers(T0, at(4), POOL) == ("platinum", "gold")
    assert visible_tiers(T0, at(12), POOL) == ("platinum", "gold", "silver", "bronze")
    assert visible_tiers(T0, at(100), POOL) == POOL.cascade
    assert not can_claim("bronze", T0, at(11), POOL)
    assert can_claim("bronze", T0, at(12), POOL)
    # a tier the cascade does not name waits for every named tier
    assert tier_visible_at("registered", T0, POOL) == at(16)
    open_pool = PoolPolicy(cascade=(), step_hours=4)
    assert visible_tiers(T0, at(5), open_pool) == ()
    assert can_claim("bronze", T0, T0, open_pool)


CANDIDATES = {"P1": 0.40, "P3": 0.21, "P7": 0.25}
PRICES = {"P1": 0.0, "P3": 0.05, "P7": 0.12}


def test_next_partner_never_goes_back_and_explains() -> None:
    r = next_partner(CANDIDATES, PRICES, excluded={"P1"}, room={"P1", "P3", "P7"},
                     reroutes_done=0, sla=SLA)
    assert (r.action, r.partner_id, r.reroutes_done) == ("offer", "P3", 1)
    assert r.adjusted_value == pytest.approx(0.16)
    assert r.reason == ("re-offered (re-route 1 of 3) to P3: score 0.21 − price 0.05 = 0.16 "
                        "beats P7: 0.25 − 0.12 = 0.13; not back to P1 (rejected, expired or "
                        "reclaimed)")


def test_next_partner_room_mapping_and_no_hold() -> None:
    r = next_partner(CANDIDATES, {"P3": 0.5, "P7": 0.6}, excluded=["P1"],
                     room={"P1": 3.0, "P3": 1.0, "P7": 0.0}, reroutes_done=1, sla=SLA)
    # P7 has no room; P3's adjusted value is negative but a lead in the channel is not held
    assert r.partner_id == "P3" and r.adjusted_value == pytest.approx(-0.29)


def test_next_partner_pools_after_max_reroutes_or_when_nobody_is_left() -> None:
    r = next_partner(CANDIDATES, PRICES, excluded=(), room=set(CANDIDATES), reroutes_done=3,
                     sla=SLA)
    assert r.action == "pool" and r.partner_id is None
    assert r.reason == "pooled: 3 re-routes already made (sla.max_reroutes = 3)"
    r = next_partner(CANDIDATES, PRICES, excluded={"P1", "P3"}, room={"P1", "P3"},
                     reroutes_done=2, sla=SLA)
    assert r.action == "pool"
    assert r.reason == ("pooled: no eligible partner left to offer it to (P1, P3 rejected it, "
                        "let it expire or had it reclaimed; P7 has no room)")
    with pytest.raises(ValueError, match="The score of partner 'P3' must be finite"):
        next_partner({"P3": float("nan")}, {}, (), {"P3"}, reroutes_done=0, sla=SLA)


def test_frozen_clock_drives_a_lead_through_two_days() -> None:
    """Offer, expire, re-route, accept, miss the contact SLA, re-route, then pool and claim."""
    clock = FrozenClock(T0)
    state, entered, reroutes, partner = LeadState.OFFERED, clock.now(), 0, "P1"
    excluded: set[str] = set()
    log: list[tuple[float, str, str]] = []
    responses = {"P3": "accept"}  # P1 ignores the offer; P3 accepts but never calls; P7 ignores
    while state not in (LeadState.POOLED, LeadState.CLAIMED):
        clock.advance(hours=1)
        hours = (clock.now() - T0) / timedelta(hours=1)
        if state is LeadState.OFFERED and responses.get(partner) == "accept":
            state, entered = transition(state, "accept"), clock.now()
            log.append((hours, "accept", partner))
            continue
        due = due_event(state, entered, clock.now(), SLA)
        if due is None:
            continue
        state = transition(state, due)
        log.append((hours, str(due), partner))
        excluded.add(partner)
        nxt = next_partner(CANDIDATES, PRICES, excluded, set(CANDIDATES),
                           reroutes_done=reroutes, sla=SLA)
        if nxt.action == "pool":
            state, entered = transition(state, "pool"), clock.now()
            log.append((hours, "pool", ""))
        else:
            assert nxt.partner_id is not None
            state, entered, partner = transition(state, "reoffer"), clock.now(), nxt.partner_id
            reroutes = nxt.reroutes_done
            log.append((hours, "reoffer", partner))
        if state is LeadState.POOLED:
            pooled_at = clock.now()
            clock.advance(hours=8)
            assert visible_tiers(pooled_at, clock.now(), POOL) == ("platinum", "gold", "silver")
            assert not can_claim("bronze", pooled_at, clock.now(), POOL)
            state = transition(state, "claim")
    assert log == [(24.0, "expire", "P1"), (24.0, "reoffer", "P3"), (25.0, "accept", "P3"),
                   (73.0, "reclaim", "P3"), (73.0, "reoffer", "P7"), (97.0, "expire", "P7"),
                   (97.0, "pool", "")]
    assert state is LeadState.CLAIMED


def test_clocks() -> None:
    now = SystemClock().now()
    assert now.tzinfo is not None
    c = FrozenClock(T0)
    assert c.advance(hours=1.5, minutes=30) == T0 + timedelta(hours=2)
    c.sleep(2.5)
    assert c.sleeps == [2.5] and c.now() == T0 + timedelta(hours=2, seconds=2.5)
    with pytest.raises(ValueError, match="only moves forward"):
        c.advance(hours=-1)
    with pytest.raises(ValueError, match="only moves forward"):
        c.set(T0)
    with pytest.raises(ValueError, match="The 'start' timestamp must be timezone-aware"):
        FrozenClock(datetime(2025, 1, 1))
