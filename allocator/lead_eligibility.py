"""Eligibility of one lead at a time against partners fixed in advance (real-time routing).

:func:`allocator.eligibility.find_eligible_pairs` answers a whole round at
once; for one lead its frame work costs milliseconds.  :class:`PartnerRules`
does the partner side once (who is active, which territories and
certifications each partner holds) and answers each lead in microseconds
with the same rules, in the same order, and the same words for a lead held
back:

1. qualification gate (``policy.qualification_min_score``);
2. inactive partners receive nothing;
3. territory (``policy.match_region``): the lead's region or country;
4. certification (``policy.require_certification``) when the lead names a product;
5. partners that declined the lead before are left out;
6. account owner (``policy.honor_account_owner``): an owner passing 2–5 is the only pair.

The eligible partners come back as positions in the partners frame, ascending
(the order ``find_eligible_pairs`` lists a lead's pairs in).  The tests compare
both on simulated channels.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from allocator.eligibility import as_tuple, gate_reason, no_partner_reason
from allocator.policy import Policy

#: Distinct (region, country, product) lists kept; a day's arrivals use far fewer.
MAX_GROUPS = 4096


def _holders(cells: Iterable[Any], n: int) -> dict[str, np.ndarray]:
    """Item -> boolean vector of the partners whose list cell holds it."""
    out: dict[str, np.ndarray] = {}
    for j, cell in enumerate(cells):
        for item in as_tuple(cell):
            out.setdefault(item, np.zeros(n, dtype=bool))[j] = True
    return out


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


@dataclass(frozen=True, eq=False)
class LeadPairs:
    """One lead's eligible partners (positions, ascending) or why it is held back.

    Attributes
    ----------
    partners : ndarray of int64
        Positions in the partners frame; empty when held.
    held_rule : str or None
        ``"qualification"`` or ``"no_eligible_partner"`` when held.
    held_reason : str or None
        The reason in the words of :func:`~allocator.eligibility.find_eligible_pairs`.
    """

    partners: np.ndarray
    held_rule: str | None = None
    held_reason: str | None = None


_NONE = np.zeros(0, dtype=np.int64)


class PartnerRules:
    """The eligibility rules of a policy over fixed partners, answered one lead at a time.

    Parameters
    ----------
    partners : DataFrame
        Data-contract partners: ``partner_id``, ``regions``, optional
        ``certifications`` and ``active``.
    policy : Policy
    """

    def __init__(self, partners: pd.DataFrame, policy: Policy) -> None:
        self.policy = policy
        n = len(partners)
        self.partner_ids: list[str] = [str(p) for p in partners["partner_id"]]
        self.index = {p: j for j, p in enumerate(self.partner_ids)}
        self.active = (partners["active"].fillna(True).to_numpy(dtype=bool)
                       if "active" in partners.columns else np.ones(n, dtype=bool))
        self._territory = _holders(partners["regions"], n)
        certs = partners["certifications"] if "certifications" in partners.columns else [()] * n
        self._certified = _holders(certs, n)
        self._nobody = np.zeros(n, dtype=bool)
        self._groups: dict[tuple[Any, Any, Any], tuple[np.ndarray, int, int]] = {}
        self._lock = threading.Lock()

    def _cover(self, value: Any) -> np.ndarray:
        return self._territory.get(value, self._nobody) if isinstance(value, str) else self._nobody

    def _group(self, region: Any, country: Any, product: Any) -> tuple[np.ndarray, int, int]:
        """Partners passing rules 2–4 (ascending), active ones covering, those certified."""
        key = (region if isinstance(region, str) else None,
               country if isinstance(country, str) else None,
               product if isinstance(product, str) else None)
        found = self._groups.get(key)
        if found is not None:
            return found
        covers = self.active.copy()
        if self.policy.match_region:
            covers &= self._cover(region) | self._cover(country)
        passes = covers
        if self.policy.require_certification and key[2] is not None:
            passes = covers & self._certified.get(key[2], self._nobody)
        members = np.flatnonzero(passes).astype(np.int64)
        found = (members, int(covers.sum()), len(members))
        with self._lock:
            if len(self._groups) >= MAX_GROUPS:
                self._groups.clear()
            self._groups[key] = found
        return found

    def lead(self, record: dict[str, Any], declined: Iterable[str] = ()) -> LeadPairs:
        """The eligible partners of one validated lead record.

        Parameters
        ----------
        record : dict
            The lead typed by the data contract (missing optional cells NaN or absent).
        declined : iterable of str
            Partners that declined this lead before (ids not among the partners are ignored).
        """
        policy = self.policy
        gate = policy.qualification_min_score
        raw_score: Any = record.get("qualification_score")
        score = math.nan if _missing(raw_score) else float(raw_score)
        if gate is not None and not score >= gate:
            return LeadPairs(_NONE, "qualification", gate_reason(score, gate))
        region, country, product = (record.get(c, math.nan)
                                    for c in ("region", "country", "product"))
        members, n_territory, n_certified = self._group(region, country, product)
        out = [self.index[p] for p in declined if p in self.index]
        rejected = np.unique(np.asarray(out, dtype=np.int64))
        if len(rejected):
            members = members[~np.isin(members, rejected)]
        if not len(members):
            return LeadPairs(_NONE, "no_eligible_partner",
                             no_partner_reason(policy, region, country, product, n_territory,
                                               n_certified))
        owner = record.get("account_owner_partner_id")
        if policy.honor_account_owner and isinstance(owner, str) and owner in self.index:
            j = self.index[owner]
            if j in members:
                return LeadPairs(np.array([j], dtype=np.int64))
        return LeadPairs(members)
