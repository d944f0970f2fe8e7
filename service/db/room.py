"""Room and prices between rounds: what the latest round left, taken and given back atomically.

A partner's capacity is per round.  Between two rounds the latest round's
``round_partners`` rows hold, per partner, the capacity price, the capacity
units and the units used so far in this period (the round's own offers, then
every re-route, claim and real-time route made while it is the latest).  Room
is taken with a conditional ``UPDATE ... WHERE used_units + u <= capacity_units``
(one statement, so two workers can never both take the last unit) and given
back when an offer is rejected, expires or is reclaimed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from allocator.policy import Policy
from service.db.policies import load_stored
from service.db.rounds import DECLINED_STATES
from service.db.tables import (
    Assignment,
    Round,
    RoundCandidates,
    RoundPartner,
    StoredPolicy,
    table_of,
)

#: Tolerance on capacity units (efforts are floats).
EPS = 1e-9
# Any fixed 64-bit number: the PostgreSQL advisory lock that orders room updates.
_PG_ROOM_LOCK = 0x726F_6F6D_6C6F_636B & 0x7FFF_FFFF_FFFF_FFFF


@dataclass(frozen=True)
class PartnerRoom:
    price: float
    capacity_units: float
    used_units: float

    @property
    def free_units(self) -> float:
        return max(self.capacity_units - self.used_units, 0.0)


def latest_round_id(session: Session) -> int | None:
    """The newest round: its prices and room govern routing until the next one."""
    value = session.scalar(sa.select(sa.func.max(Round.id)))
    return None if value is None else int(value)


#: Policies by content hash: a stored policy never changes, and the hash (not the row id)
#: names it across databases.
_POLICIES: dict[str, Policy] = {}


def round_policy(session: Session, round_id: int) -> Policy:
    """The policy a round ran under."""
    found = session.execute(
        sa.select(StoredPolicy.content_hash, StoredPolicy.id)
        .join(Round, Round.policy_id == StoredPolicy.id).where(Round.id == round_id)).first()
    if found is None:
        raise LookupError(f"No round has id {round_id}.")
    cached = _POLICIES.get(found[0])
    if cached is None:
        row = session.get(StoredPolicy, found[1])
        assert row is not None
        cached = _POLICIES.setdefault(found[0], load_stored(row))
    return cached


def room(session: Session, round_id: int) -> dict[str, PartnerRoom]:
    """Partner id -> price, capacity and units used in ``round_id``'s period."""
    rows = session.execute(
        sa.select(RoundPartner.partner_id, RoundPartner.price, RoundPartner.capacity_units,
                  RoundPartner.used_units).where(RoundPartner.round_id == round_id))
    return {pid: PartnerRoom(float(price), float(cap), float(used))
            for pid, price, cap, used in rows}


def lock(session: Session) -> None:
    """Serialize room updates on PostgreSQL until the transaction ends.

    A reject or an expiry gives room back to one partner and takes it from another;
    two of them crossing (P2 → P3 while P3 → P2) would lock the two rows in
    opposite orders and deadlock.  One transaction-scoped advisory lock taken
    before the first room update orders them all (held for milliseconds;
    re-entrant within a transaction).  SQLite has one writer at a time already.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_ROOM_LOCK})


def take(session: Session, round_id: int, partner_id: str, units: float, *,
         enforce: bool = True) -> bool:
    """Take ``units`` of the partner's room; ``False`` when it has no room left.

    ``enforce=False`` records the use without the check (a partner claiming from
    the pool chooses to take more work).
    """
    lock(session)
    table = table_of(RoundPartner)
    c = table.c
    where = [c.round_id == round_id, c.partner_id == partner_id]
    if enforce:
        where.append(c.used_units + units <= c.capacity_units + EPS)
    # a table-level UPDATE: no ORM object holds these rows, so nothing to synchronize
    result = session.execute(sa.update(table).where(*where).values(used_units=c.used_units + units))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def release(session: Session, assignment: Assignment) -> None:
    """Give back the room an ended assignment held in its round's period."""
    lock(session)
    units = float(assignment.units)
    session.execute(
        sa.update(RoundPartner)
        .where(RoundPartner.round_id == assignment.round_id,
               RoundPartner.partner_id == assignment.partner_id)
        .values(used_units=sa.case((RoundPartner.used_units > units,
                                    RoundPartner.used_units - units), else_=0.0))
        .execution_options(synchronize_session=False))


def candidates(session: Session, lead_id: str) -> tuple[int | None, dict[str, float]]:
    """The lead's eligible partners and scores from the newest round that scored it."""
    row = session.execute(
        sa.select(RoundCandidates.round_id, RoundCandidates.partner_ids, RoundCandidates.scores)
        .where(RoundCandidates.lead_id == lead_id)
        .order_by(RoundCandidates.round_id.desc()).limit(1)).first()
    if row is None:
        return None, {}
    return int(row[0]), {str(p): float(s) for p, s in zip(row[1], row[2], strict=True)}


def declined_by(session: Session, lead_id: str) -> list[str]:
    """Partners that rejected the lead, let its offer expire or had it reclaimed."""
    return sorted(set(session.scalars(
        sa.select(Assignment.partner_id)
        .where(Assignment.lead_id == lead_id, Assignment.state.in_(DECLINED_STATES)))))


def store_candidates(session: Session, round_id: int, lead_id: str,
                     partner_ids: Sequence[str], scores: Sequence[float]) -> None:
    """Remember a lead's candidates under ``round_id`` (real-time routing), once."""
    exists = session.scalar(sa.select(sa.func.count()).select_from(RoundCandidates).where(
        RoundCandidates.round_id == round_id, RoundCandidates.lead_id == lead_id))
    if not exists:
        session.add(RoundCandidates(round_id=round_id, lead_id=lead_id,
                                    partner_ids=list(partner_ids),
                                    scores=[float(s) for s in scores]))
