"""The input contract: loading and validating partners, leads, history, pairs and the policy.

Every loader returns a pandas DataFrame typed as in the data contract, or
raises :class:`allocator.errors.InputError` listing *every* problem at once,
each with file, 1-based data row (the header is not counted), column, value
and rule.  ``load_*`` read a file (CSV or Parquet, by suffix);
``validate_*`` take a frame already read (the service reuses them).

Rules
-----
- A required column must be present; a blank cell (empty or whitespace only)
  in a required column is an error.  Nothing is silently dropped: the
  returned frame has every input row, in order, with index 0..n-1.
- Blank cells of optional columns become these defaults: ``effort`` 1.0,
  ``open_leads`` 0, ``active`` True, list columns the empty tuple; other
  optional blanks are missing (NaN / NaT / ``<NA>``).  Absent optional columns
  are not added, except those with a default: ``verticals``,
  ``certifications``, ``open_leads``, ``active`` (partners) and ``effort``
  (leads) are added filled with it.  Pairs without ``effort`` stay without it
  (the lead's own effort applies).
- Text cells are trimmed of surrounding whitespace; only blank cells are
  missing (``"NA"`` is a region code).  Text choices are case-sensitive:
  ``intent`` is ``high``, ``medium`` or ``low``.
- Integers (``capacity``, ``open_leads``, ``company_size``) may be written
  ``10`` or ``10.0`` but not ``10.5``; ``capacity``, ``open_leads``,
  ``company_size`` and ``deal_size`` are >= 0, ``effort`` > 0,
  ``qualification_score`` between 0 and 100, ``score`` any finite number.
  Numbers are written in decimal or exponent form (``12``, ``-0.5``,
  ``1e3``); thousands separators, ``0x``, ``_`` and non-ASCII digits are
  rejected, and ``nan``/``inf`` are never accepted.
- Flags (``active``) and the history outcome (``converted`` or ``--target``)
  accept true/false, yes/no, 1/0 in any case; the outcome becomes 0/1 int64.
- Timestamps are ISO-8601 (``2024-05-01``, ``2024-05-01T09:30:00Z``,
  ``2024-05-01 09:30:00+02:00``) and come back as ``datetime64[ns, UTC]``;
  a time without an offset is taken as UTC.
- Ids (``partner_id``, ``lead_id``; the pair ``(lead_id, partner_id)`` in
  pairs) are unique; each duplicate row is reported with the row it repeats.
- List cells follow :mod:`service.contract.lists`: ``;``-separated, trimmed,
  non-empty items of letters, digits, ``_-.`` and spaces.
- A ``tier`` must be one the policy names, when the policy names tiers.
- At most :data:`~service.contract.problems.MAX_ROWS_PER_RULE` rows are spelled
  out per column and rule, followed by one "... and N more rows" problem;
  every row is still checked.
- Extra columns are kept as read (CSV: pandas' inference, blank = missing).
"""

from service.contract.load import (
    load_history,
    load_leads,
    load_pairs,
    load_partners,
    read_table,
)
from service.contract.policy_file import load_policy, load_policy_text
from service.contract.problems import MAX_ROWS_PER_RULE
from service.contract.tables import (
    validate_history,
    validate_leads,
    validate_pairs,
    validate_partners,
)

__all__ = [
    "MAX_ROWS_PER_RULE",
    "load_history",
    "load_leads",
    "load_pairs",
    "load_partners",
    "load_policy",
    "load_policy_text",
    "read_table",
    "validate_history",
    "validate_leads",
    "validate_pairs",
    "validate_partners",
]
