"""Typed contract frames <-> database rows, and the canonical content of a lead.

The same canonical form is computed from a validated frame row and from a
stored row, so "same lead sent again" is decided by comparing two sha256
digests, and a conflict can name the columns that differ.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd

from service.db.tables import HistoryRecord, Lead, Partner

PARTNER_COLUMNS = (
    "partner_id", "name", "tier", "regions", "verticals", "certifications",
    "capacity", "open_leads", "active",
)
LEAD_TEXT = (
    "region", "country", "vertical", "product", "intent", "account_owner_partner_id",
    "contact_name", "contact_email", "contact_phone",
)
LEAD_COLUMNS = (
    "lead_id", "created_at", *LEAD_TEXT, "company_size", "deal_size",
    "qualification_score", "effort",
)
CONTACT_COLUMNS = ("contact_name", "contact_email", "contact_phone")


def plain(value: Any) -> Any:
    """A cell as a JSON-ready Python value (missing -> None, timestamps -> ISO UTC).

    Cells of types JSON has no word for (bytes, decimals, durations from a
    Parquet file) become their text, so any file that reads can be stored.
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(value, list | tuple | np.ndarray):
        return [plain(v) for v in value]
    if isinstance(value, str | int | float):
        return value
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def digest(record: Mapping[str, Any]) -> str:
    """sha256 of a record's canonical JSON (sorted keys, no whitespace)."""
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _extra_value(value: Any) -> Any:
    # Pandas turns a whole-number column with a blank into floats; 5 and 5.0 must hash alike.
    value = plain(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _extras(row: Mapping[Any, Any], known: Iterable[str]) -> dict[str, Any]:
    """Extra columns with a value (a blank extra is the same as an absent one)."""
    skip = set(known)
    out = {str(k): _extra_value(v) for k, v in row.items() if k not in skip}
    return {k: v for k, v in out.items() if v is not None}


def _timestamp(value: Any) -> datetime:
    return datetime.fromisoformat(plain(value))


# -- partners -----------------------------------------------------------------------------


def partner_values(row: Mapping[Any, Any]) -> dict[str, Any]:
    """Column values of a :class:`Partner` from a validated frame row."""
    return {
        "partner_id": str(row["partner_id"]),
        "name": plain(row.get("name")) or "",
        "tier": str(row["tier"]),
        "regions": list(row["regions"]),
        "verticals": list(row["verticals"]),
        "certifications": list(row["certifications"]),
        "capacity": int(row["capacity"]),
        "open_leads": int(row["open_leads"]),
        "active": bool(row["active"]),
        "extras": _extras(row, PARTNER_COLUMNS),
    }


def partner_record(p: Partner) -> dict[str, Any]:
    """A stored partner as the row a partners file would have (lists as tuples)."""
    return {
        "partner_id": p.partner_id,
        "name": p.name,
        "tier": p.tier,
        "regions": tuple(p.regions),
        "verticals": tuple(p.verticals),
        "certifications": tuple(p.certifications),
        "capacity": p.capacity,
        "open_leads": p.open_leads,
        "active": p.active,
        **(p.extras or {}),
    }


def partners_frame(partners: Sequence[Partner]) -> pd.DataFrame:
    """Stored partners as an (unvalidated) frame in the contract's columns."""
    if not partners:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in PARTNER_COLUMNS})
    return pd.DataFrame.from_records([partner_record(p) for p in partners])


# -- leads --------------------------------------------------------------------------------


def lead_content(row: Mapping[Any, Any]) -> dict[str, Any]:
    """The canonical content of a lead (from a validated frame row or a stored record)."""
    out = {c: plain(row.get(c)) for c in LEAD_COLUMNS}
    if out["company_size"] is not None:
        out["company_size"] = int(out["company_size"])
    for c in ("deal_size", "qualification_score", "effort"):
        if out[c] is not None:
            out[c] = float(out[c])
    out["extras"] = dict(row["extras"]) if "extras" in row else _extras(row, LEAD_COLUMNS)
    return out


def lead_values(content: Mapping[str, Any]) -> dict[str, Any]:
    """Column values of a :class:`Lead` from its canonical content."""
    values = {k: v for k, v in content.items() if k != "created_at"}
    values["created_at"] = _timestamp(content["created_at"])
    values["content_hash"] = digest(content)
    return values


def stored_lead_content(lead: Lead) -> dict[str, Any]:
    """The canonical content of a stored lead (equal to what was ingested)."""
    row = {c: getattr(lead, c) for c in LEAD_COLUMNS}
    row["extras"] = lead.extras or {}
    return lead_content(row)


def changed_fields(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Columns (and ``extras.NAME``) whose values differ between two canonical contents."""
    fields = [c for c in LEAD_COLUMNS if old.get(c) != new.get(c)]
    old_x, new_x = old.get("extras", {}), new.get("extras", {})
    names = sorted(set(old_x) | set(new_x))
    fields += [f"extras.{k}" for k in names if old_x.get(k) != new_x.get(k)]
    return fields


def leads_frame(leads: Sequence[Lead]) -> pd.DataFrame:
    """Stored leads as an (unvalidated) frame in the contract's columns, extras spread out."""
    if not leads:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in LEAD_COLUMNS})
    return pd.DataFrame.from_records([stored_record(lead) for lead in leads])


def stored_record(lead: Lead) -> dict[str, Any]:
    """A stored lead as one unvalidated row in the contract's columns, extras spread out."""
    row: dict[str, Any] = {c: getattr(lead, c) for c in LEAD_COLUMNS}
    row["created_at"] = plain(lead.created_at)
    row.update(lead.extras or {})
    return row


# -- history ------------------------------------------------------------------------------


def history_values(row: Mapping[Any, Any], target: str) -> dict[str, Any]:
    """Column values of a :class:`HistoryRecord` from a validated history row."""
    record = {str(k): plain(v) for k, v in row.items()}
    record["converted"] = int(record.pop(target))
    assigned = record.get("assigned_at") or record.get("created_at")
    return {
        "lead_id": str(record.get("lead_id") or ""),
        "partner_id": record.get("partner_id"),
        "assigned_at": _timestamp(assigned) if assigned else datetime(1970, 1, 1, tzinfo=UTC),
        "converted": record["converted"],
        "record": record,
        "content_hash": digest(record),
    }


def history_frame(rows: Sequence[HistoryRecord]) -> pd.DataFrame:
    """Stored history as an (unvalidated) frame, one row per record as ingested."""
    return pd.DataFrame.from_records([r.record for r in rows])


def jsonable(value: Any) -> Any:
    """``value`` with numpy scalars and arrays, tuples, timestamps made JSON-ready; NaN -> None."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [jsonable(v) for v in value]
    if isinstance(value, pd.DataFrame):
        return [jsonable(r) for r in value.to_dict("records")]
    if isinstance(value, pd.Series):
        return jsonable(value.tolist())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    value = plain(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
