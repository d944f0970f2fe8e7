"""Field types for request bodies and parameters: safe to store on any backend.

The rules of the data contract (capacity ≥ 0, intent in high/medium/low, ...)
are checked by ``service.contract`` so that the API and the CLI report the
same problems in the same words.  These types only keep out what no contract
rule speaks of and a database would choke on: NUL characters and lone UTF-16
surrogates in text, integers beyond 64 bits, NaN and infinity, timestamps
outside what pandas can hold.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, Field, PlainValidator, StringConstraints, WithJsonSchema

from service.db.types import storable_json, storable_text

INT32_MAX = 2_147_483_647
#: Most rows one bulk request may carry (bigger loads: several requests).
MAX_BATCH_ROWS = 50_000
_EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
_LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def _storable_time(value: datetime) -> datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    if not (_EARLIEST <= value <= _LATEST):
        raise ValueError("timestamp must be between 1900-01-01 and 2200-01-01 (UTC)")
    return value.astimezone(UTC)


#: Free text (names, contact details, extra columns).
Text = Annotated[str, StringConstraints(max_length=10_000), AfterValidator(storable_text)]
#: Identifiers and short labels (ids, tiers, regions).
Ident = Annotated[str, StringConstraints(max_length=200), AfterValidator(storable_text)]
#: A non-empty identifier in a path or query.
PathIdent = Annotated[
    str, StringConstraints(min_length=1, max_length=200), AfterValidator(storable_text)
]
#: Whole numbers a 32-bit column holds; the sign is left to the contract's rules.
Int32 = Annotated[int, Field(ge=-INT32_MAX, le=INT32_MAX)]
#: Whole numbers a 64-bit column holds with room to spare.
Int53 = Annotated[int, Field(ge=-(2**53), le=2**53)]
#: Finite numbers.
Number = Annotated[float, Field(allow_inf_nan=False)]
#: A moment in time; naive values are taken as UTC.
Timestamp = Annotated[datetime, AfterValidator(_storable_time)]
#: A database id in a path or query.
RowId = Annotated[int, Field(ge=1, le=INT32_MAX)]


def _json_number(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number")
    if abs(value) > 2**63 - 1:
        raise ValueError("must be smaller than 2^63 in magnitude")
    return value


def _number_or_text(value: Any) -> int | float | str:
    # Numeric text ("5", "1e3") is left to the data contract, as in a CSV cell.
    if isinstance(value, str):
        if len(value) > 200:
            raise ValueError("must be a number (or numeric text of at most 200 characters)")
        return storable_text(value)
    return _json_number(value)


def _flag(value: Any) -> bool | str:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and len(value) <= 20:
        return storable_text(value)
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValueError("must be true/false (or yes/no, 1/0)")


def _json_scalar(value: Any) -> str | int | float | bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        if len(value) > 10_000:
            raise ValueError("text must be at most 10000 characters")
        return storable_text(value)
    if isinstance(value, int | float):
        return _json_number(value)
    raise ValueError("an extra column must hold text, a number, true/false or null")


def _id_list(value: Any) -> list[str] | str:
    items = value if isinstance(value, list) else [value]
    if len(items) > 1000:
        raise ValueError("a list holds at most 1000 items")
    for item in items:
        if not isinstance(item, str):
            raise ValueError("must be text (items separated by ';') or a list of text")
        if len(item) > 200:
            raise ValueError("items must be at most 200 characters")
        storable_text(item)
    return value  # type: ignore[no-any-return]


#: A JSON number or numeric text (whether it must be whole or in range: the contract's rules).
Num = Annotated[
    int | float | str,
    PlainValidator(_number_or_text),
    WithJsonSchema({"anyOf": [{"type": "number"}, {"type": "string", "maxLength": 200}]}),
]
#: A flag: true/false, or the words the contract accepts (yes/no, 1/0).
Flag = Annotated[
    bool | str,
    PlainValidator(_flag),
    WithJsonSchema({"anyOf": [{"type": "boolean"}, {"type": "string", "maxLength": 20}]}),
]
#: Extra columns kept as read (model features): scalars only.
ExtraValue = Annotated[
    str | int | float | bool | None,
    PlainValidator(_json_scalar),
    WithJsonSchema({"type": ["string", "number", "boolean", "null"]}),
]
#: A list column: a JSON array of text, or ';'-separated text as in the CSV.
IdList = Annotated[
    list[str] | str,
    PlainValidator(_id_list),
    WithJsonSchema(
        {"anyOf": [{"type": "array", "items": {"type": "string", "maxLength": 200},
                    "maxItems": 1000}, {"type": "string", "maxLength": 200}]}
    ),
]



__all__ = ["storable_json", "storable_text"]
