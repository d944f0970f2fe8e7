"""How a partner handles the leads it gets: acceptance, speed, SLA misses, conversion.

Counted from the partner's assignments (offers from rounds, re-routes and
real-time routing; claims from the pool counted apart, since nobody offered
them):

* acceptance rate — accepted ÷ decided offers (accepted, rejected or expired);
* time to accept — offer to acceptance, hours (mean, median, 90th percentile);
* time to first contact — acceptance or claim to the first disposition, hours;
* SLA misses — offers that expired plus leads reclaimed for no contact;
* conversion rate — won ÷ (won + lost).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

from service.db.tables import Assignment


def _hours(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "median": None, "p90": None}
    arr = np.asarray(values, dtype=float)
    return {"mean": round(float(arr.mean()), 4), "median": round(float(np.median(arr)), 4),
            "p90": round(float(np.quantile(arr, 0.9)), 4)}


def _rate(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def partner_performance(session: Session, partner_id: str, *, since: datetime | None = None,
                        until: datetime | None = None) -> dict[str, Any]:
    """The partner's figures over assignments made in ``[since, until)``."""
    where = [Assignment.partner_id == partner_id]
    if since is not None:
        where.append(Assignment.created_at >= since)
    if until is not None:
        where.append(Assignment.created_at < until)
    rows = session.execute(sa.select(
        Assignment.origin, Assignment.state, Assignment.created_at, Assignment.accepted_at,
        Assignment.contacted_at).where(*where)).all()
    offers = [r for r in rows if r.origin != "claim"]
    claims = [r for r in rows if r.origin == "claim"]
    accepted = [r for r in offers if r.accepted_at is not None]
    rejected = sum(r.state == "rejected" for r in offers)
    expired = sum(r.state == "expired" for r in offers)
    reclaimed = sum(r.state == "reclaimed" for r in rows)
    won = sum(r.state == "won" for r in rows)
    lost = sum(r.state == "lost" for r in rows)
    to_accept = [(r.accepted_at - r.created_at).total_seconds() / 3600 for r in accepted]
    to_contact = [(r.contacted_at - r.accepted_at).total_seconds() / 3600
                  for r in rows if r.contacted_at is not None and r.accepted_at is not None]
    return {
        "partner_id": partner_id,
        "since": since, "until": until,
        "offers": len(offers),
        "pending": sum(r.state == "offered" for r in offers),
        "accepted": len(accepted),
        "rejected": rejected,
        "expired": expired,
        "claimed": len(claims),
        "reclaimed": reclaimed,
        "won": won,
        "lost": lost,
        "acceptance_rate": _rate(len(accepted), len(accepted) + rejected + expired),
        "hours_to_accept": _hours(to_accept),
        "hours_to_first_contact": _hours(to_contact),
        "sla_misses": expired + reclaimed,
        "sla_miss_rate": _rate(expired + reclaimed, len(accepted) + rejected + expired
                               + len(claims)),
        "conversion_rate": _rate(won, won + lost),
    }
