"""Which partners may receive which leads: the eligibility rules of a round.

:func:`find_eligible_pairs` applies the policy's rules to every lead at once,
in this order, and keeps the reason each lead or pair was ruled out:

1. qualification gate — a lead whose ``qualification_score`` is below
   ``policy.qualification_min_score`` (or missing while a gate is set) is held back;
2. inactive partners receive nothing;
3. territory (``policy.match_region``) — the partner's ``regions`` contain the
   lead's ``region`` or its ``country``;
4. certification (``policy.require_certification``) — when the lead names a
   ``product``, the partner's ``certifications`` contain it;
5. a partner that rejected the lead before (the ``rejected`` frame) is not offered it again;
6. account owner (``policy.honor_account_owner``) — a lead whose owner passes
   rules 2–5 has its owner as its only pair; otherwise a note says why and the
   lead falls back to the other eligible partners.

The work is sparse and vectorized: leads sharing (region, country, product)
share their eligible partners under rules 2–4, so those rules run once per
such group on partner vectors, and the groups' partner lists (CSR arrays) are
expanded per lead with ``np.repeat``; rejections and owners are then masks on
the pairs.  No Python loop runs per lead or per pair.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from allocator.policy import Policy

_STR = pd.StringDtype("pyarrow", na_value=np.nan)
RULE_ORDER = ("inactive", "territory", "certification", "rejected", "account_owner")
COUNT_COLUMNS = ("qualification", *RULE_ORDER, "eligible")


def as_tuple(cell: Any) -> tuple[str, ...]:
    """A list cell as a tuple; ``;``-separated text is split so raw frames also work."""
    if isinstance(cell, str):
        return tuple(t.strip() for t in cell.split(";") if t.strip())
    if cell is None or (isinstance(cell, float) and np.isnan(cell)):
        return ()
    return tuple(str(t) for t in cell)


def _take_str(values: pd.Series, positions: np.ndarray) -> pd.Series:
    """``values`` at ``positions`` as a ``str`` column (arrow's take: ~3x faster than pandas')."""
    if values.dtype != _STR:
        values = values.astype(_STR)
    taken = pa.array(values, type=pa.large_string()).take(pa.array(positions, type=pa.int64()))
    return pd.Series(taken, dtype=_STR)


def _optional(frame: pd.DataFrame, column: str) -> pd.Series:
    if column in frame.columns:
        return frame[column].reset_index(drop=True)
    return pd.Series(np.full(len(frame), np.nan), dtype=_STR)


def _membership(cells: list[tuple[str, ...]], vocab: pd.Index) -> np.ndarray:
    """Boolean table rows × (len(vocab) + 1); the last column is all False (code -1)."""
    out = np.zeros((len(cells), len(vocab) + 1), dtype=bool)
    rows = np.repeat(np.arange(len(cells)), [len(c) for c in cells])
    codes = vocab.get_indexer(pd.Index([t for c in cells for t in c], dtype=object))
    keep = codes >= 0
    out[rows[keep], codes[keep]] = True
    return out


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _territory_words(region: Any, country: Any) -> str:
    text = f"region {region}"
    if isinstance(country, str) and country != region:
        text += f" or country {country}"
    return text


def _gate_words(score: float, gate: float | None) -> str:
    if np.isnan(score):
        return f"qualification score is missing and the minimum is {gate:g}"
    return f"qualification score {score:g} is below the minimum of {gate:g}"


def _values(series: pd.Series, positions: np.ndarray) -> list[Any]:
    """Plain Python values of ``series`` at ``positions`` (missing as NaN)."""
    return series.iloc[positions].to_numpy(dtype=object).tolist()


@dataclass(frozen=True, eq=False)
class _Rules:
    """What the per-lead explanations need, kept from the vectorized pass."""

    policy: Policy
    lead_ids: pd.Index
    partner_ids: pd.Index
    active: np.ndarray
    cover: np.ndarray  # partners × (territories + 1)
    certified: np.ndarray  # partners × (products + 1); last column all True (no product)
    region_code: np.ndarray
    country_code: np.ndarray
    product_code: np.ndarray
    region: pd.Series
    country: pd.Series
    product: pd.Series
    score: np.ndarray
    qualified: np.ndarray
    owner: pd.Series
    owner_index: np.ndarray  # -1 no owner, -2 owner not a known partner
    rejected_keys: np.ndarray  # sorted lead_index * n_partners + partner_index

    def territory_text(self, i: int) -> str:
        return _territory_words(self.region.iat[i], self.country.iat[i])

    def gate_text(self, i: int) -> str:
        return _gate_words(float(self.score[i]), self.policy.qualification_min_score)

    def partner_failures(self, i: int, j: int) -> list[str]:
        """Rules 2–5 that exclude partner ``j`` from lead ``i``, in words."""
        pid = self.partner_ids[j]
        out: list[str] = []
        if not self.active[j]:
            out.append(f"partner {pid} is inactive")
        if self.policy.match_region and not (
            self.cover[j, self.region_code[i]] or self.cover[j, self.country_code[i]]
        ):
            out.append(f"partner {pid} does not cover {self.territory_text(i)}")
        if self.policy.require_certification and not self.certified[j, self.product_code[i]]:
            out.append(f"partner {pid} lacks certification '{self.product.iat[i]}'")
        key = i * len(self.partner_ids) + j
        at = np.searchsorted(self.rejected_keys, key)
        if at < len(self.rejected_keys) and self.rejected_keys[at] == key:
            out.append(f"partner {pid} rejected this lead before")
        return out

    def owner_applies(self, i: int) -> bool:
        j = int(self.owner_index[i])
        return self.policy.honor_account_owner and j >= 0 and not self.partner_failures(i, j)


@dataclass(frozen=True, eq=False)
class Eligibility:
    """The eligible pairs of a round and why everything else was ruled out.

    Attributes
    ----------
    pairs : DataFrame
        ``lead_id``, ``partner_id`` (str) and ``lead_index``, ``partner_index``
        (int64 positions in the frames given), grouped by lead in lead order.
    held_back : DataFrame
        ``lead_id``, ``rule`` (``"qualification"`` or ``"no_eligible_partner"``)
        and ``reason`` in words, one row per lead that cannot be distributed.
    leads_in_round : ndarray of int64
        Positions of the qualified leads with at least one eligible partner.
    owner_notes : DataFrame
        ``lead_id``, ``owner_partner_id``, ``owner_eligible`` (bool) and ``note``
        for each qualified lead naming an account owner (when the policy honors owners).
    """

    pairs: pd.DataFrame
    held_back: pd.DataFrame
    leads_in_round: np.ndarray
    owner_notes: pd.DataFrame
    _rules: _Rules = field(repr=False)
    _counts: np.ndarray = field(repr=False)  # leads × COUNT_COLUMNS, from the vectorized pass

    def _positions(self, lead_id: str, partner_id: str | None = None) -> tuple[int, int]:
        i = self._rules.lead_ids.get_indexer(pd.Index([lead_id]))[0]
        if i < 0:
            raise ValueError(f"Unknown lead_id {lead_id!r}: it is not among the round's leads.")
        j = -1
        if partner_id is not None:
            j = self._rules.partner_ids.get_indexer(pd.Index([partner_id]))[0]
            if j < 0:
                raise ValueError(
                    f"Unknown partner_id {partner_id!r}: it is not among the partners.")
        return int(i), int(j)

    def is_eligible(self, lead_id: str, partner_id: str) -> bool:
        """Whether ``partner_id`` is one of ``lead_id``'s pairs."""
        i, j = self._positions(lead_id, partner_id)
        r = self._rules
        if not r.qualified[i] or r.partner_failures(i, j):
            return False
        return not r.owner_applies(i) or int(r.owner_index[i]) == j

    def explain_exclusion(self, lead_id: str, partner_id: str) -> str:
        """Why ``partner_id`` is not eligible for ``lead_id``, in words.

        Every rule that excludes the partner is named (``"; "``-joined); a lead
        held back by the qualification gate is explained as such.

        Raises
        ------
        ValueError
            If either id is unknown, or the partner is eligible for the lead.
        """
        i, j = self._positions(lead_id, partner_id)
        r = self._rules
        if not r.qualified[i]:
            return f"lead {lead_id} is held back: {r.gate_text(i)}"
        failures = r.partner_failures(i, j)
        if failures:
            return "; ".join(failures)
        if r.owner_applies(i) and int(r.owner_index[i]) != j:
            return f"lead {lead_id} goes to its account owner {r.owner.iat[i]}"
        raise ValueError(f"Partner {partner_id!r} is eligible for lead {lead_id!r}; no rule "
                         "excludes it.")

    def excluded_counts(self, lead_id: str) -> dict[str, int]:
        """How many partners each rule excluded for ``lead_id``.

        Each excluded partner is counted once, under the first rule that
        excludes it in the order qualification, inactive, territory,
        certification, rejected, account_owner; ``eligible`` counts the rest.
        """
        i, _ = self._positions(lead_id)
        r = self._rules
        n = len(r.partner_ids)
        counts = dict.fromkeys(COUNT_COLUMNS, 0)
        if not r.qualified[i]:
            counts["qualification"] = n
            return counts
        left = np.ones(n, dtype=bool)
        steps: list[tuple[str, np.ndarray]] = [("inactive", r.active)]
        if r.policy.match_region:
            covers = r.cover[:, r.region_code[i]] | r.cover[:, r.country_code[i]]
            steps.append(("territory", covers))
        if r.policy.require_certification:
            steps.append(("certification", r.certified[:, r.product_code[i]]))
        lo, hi = np.searchsorted(r.rejected_keys, [i * n, (i + 1) * n])
        not_rejected = np.ones(n, dtype=bool)
        not_rejected[r.rejected_keys[lo:hi] - i * n] = False
        steps.append(("rejected", not_rejected))
        for name, passes in steps:
            counts[name] = int((left & ~passes).sum())
            left &= passes
        owner = int(r.owner_index[i])
        if r.policy.honor_account_owner and owner >= 0 and left[owner]:
            counts["account_owner"] = int(left.sum()) - 1
            left[:] = False
            left[owner] = True
        counts["eligible"] = int(left.sum())
        return counts

    def excluded_counts_table(self, lead_ids: Sequence[str] | None = None) -> pd.DataFrame:
        """:meth:`excluded_counts` for many leads at once (all leads, in order, by default).

        Returns
        -------
        DataFrame
            ``lead_id`` and one int64 column per name in :data:`COUNT_COLUMNS`.
        """
        r = self._rules
        if lead_ids is None:
            rows = np.arange(len(r.lead_ids))
        else:
            rows = r.lead_ids.get_indexer(pd.Index(list(lead_ids)))
            if (rows < 0).any():
                unknown = [lead_ids[k] for k in np.flatnonzero(rows < 0)[:5]]
                raise ValueError(f"Unknown lead_id values {unknown}: they are not among the "
                                 "round's leads.")
        table = pd.DataFrame(self._counts[rows], columns=list(COUNT_COLUMNS))
        table.insert(0, "lead_id", pd.Series(r.lead_ids[rows].to_numpy(), dtype=_STR))
        return table


def _qualification(leads: pd.DataFrame, policy: Policy) -> tuple[np.ndarray, np.ndarray]:
    if "qualification_score" in leads.columns:
        score = pd.to_numeric(leads["qualification_score"], errors="coerce").to_numpy(
            dtype=float, na_value=np.nan)
    else:
        score = np.full(len(leads), np.nan)
    gate = policy.qualification_min_score
    qualified = np.ones(len(leads), dtype=bool) if gate is None else score >= gate
    return score, qualified


def _expand(lead_pos: np.ndarray, codes: np.ndarray, indptr: np.ndarray,
            members: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (lead, member) for every lead and every member listed under its code.

    Returns the pairs' lead and member arrays (int64, grouped by lead in the
    order of ``lead_pos``) and the number of pairs of each lead.
    """
    counts = indptr[codes + 1] - indptr[codes]
    # one running index into ``members``: +1 within a list, a jump at each lead's first pair
    step = np.ones(int(counts.sum()), dtype=np.int64)
    nonempty = counts > 0
    starts = indptr[codes][nonempty]
    ends = (np.cumsum(counts) - counts)[nonempty]
    if len(starts):
        step[ends[1:]] = starts[1:] - (starts[:-1] + counts[nonempty][:-1] - 1)
        step[0] = starts[0]
    return (np.repeat(lead_pos.astype(np.int64, copy=False), counts),
            members[np.cumsum(step, out=step)], counts)


class _Locator:
    """Position of partner ``j`` in group ``g``'s list (global, in ``members``), or -1."""

    def __init__(self, indptr: np.ndarray, members: np.ndarray, n_partners: int) -> None:
        sizes = np.diff(indptr)
        self.n = max(n_partners, 1)
        self.keys = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes) * self.n + members

    def __call__(self, g: np.ndarray, j: np.ndarray) -> np.ndarray:
        key = g.astype(np.int64) * self.n + j
        at = np.searchsorted(self.keys, key)
        ok = (g >= 0) & (at < len(self.keys))
        ok[ok] &= self.keys[at[ok]] == key[ok]
        return np.where(ok, at, -1)


def _group_lists(r: _Rules, lead_pos: np.ndarray) -> tuple[np.ndarray, ...]:
    """Eligible partners per group of leads sharing (region, country, product).

    Leads in a group have the same partners under rules 2–4, so the rules run
    once per group (hundreds) on partner vectors instead of once per pair.

    Returns
    -------
    group, indptr, members, n_territory, n_certified
        The group of each lead in ``lead_pos``; the CSR list of each group's
        partners (ascending); per group, active partners covering the
        territory and those of them also holding the certification.
    """
    n_terr, n_prod = r.cover.shape[1], r.certified.shape[1]
    # code -1 (unknown) becomes the last column: all False for territory, all True for product
    key = ((r.region_code[lead_pos] % n_terr) * n_terr
           + r.country_code[lead_pos] % n_terr) * n_prod + r.product_code[lead_pos] % n_prod
    keys, group = np.unique(key, return_inverse=True)
    lists, n_territory, n_certified = [], [], []
    for k in keys.tolist():
        region, rest = divmod(k, n_terr * n_prod)
        country, product = divmod(rest, n_prod)
        covers = r.active & (r.cover[:, region] | r.cover[:, country]
                             if r.policy.match_region else True)
        passes = covers & r.certified[:, product] if r.policy.require_certification else covers
        lists.append(np.flatnonzero(passes))
        n_territory.append(int(covers.sum()))
        n_certified.append(len(lists[-1]))
    sizes = np.array([len(m) for m in lists], dtype=np.int64)
    indptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    members = np.concatenate(lists).astype(np.int64) if lists else np.zeros(0, dtype=np.int64)
    return (group.astype(np.int64), indptr, members, np.array(n_territory, dtype=np.int64),
            np.array(n_certified, dtype=np.int64))


def gate_reason(score: float, gate: float | None) -> str:
    """Why a lead is held back by the qualification gate, in words (``score`` NaN: missing)."""
    return _gate_words(score, gate)


def no_partner_reason(policy: Policy, region: Any, country: Any, product: Any,
                      n_territory: int, n_certified: int) -> str:
    """Why a qualified lead has no eligible partner, in words.

    Parameters
    ----------
    policy : Policy
    region, country, product : str or NaN
        The lead's values.
    n_territory : int
        Active partners covering the lead's territory (all active ones without territory rule).
    n_certified : int
        Those of them holding the lead's certification (when the policy asks for it).
    """
    where = _territory_words(region, country) if policy.match_region else ""
    if n_territory == 0:
        text = f"no active partner covers {where}" if where else "no active partner"
    else:
        covered = (_plural(n_territory, "partner covers", "partners cover") + f" {where}"
                   if where else _plural(n_territory, "active partner", "active partners"))
        needs_cert = policy.require_certification and isinstance(product, str)
        if n_certified == 0:
            text = f"{covered}, none holds certification '{product}'"
        elif needs_cert and n_certified < n_territory:
            text = (f"{covered} and {n_certified} of them hold certification '{product}'; "
                    "all of those rejected this lead before")
        else:
            text = f"{covered}, all of which rejected this lead before"
    return f"no eligible partner: {text}"


def _no_partner_reasons(r: _Rules, leads: np.ndarray, n_territory: np.ndarray,
                        n_certified: np.ndarray) -> list[str]:
    return [no_partner_reason(r.policy, region, country, product, nt, nc)
            for region, country, product, nt, nc in zip(
                _values(r.region, leads), _values(r.country, leads), _values(r.product, leads),
                n_territory.tolist(), n_certified.tolist(), strict=True)]


def _owner_notes(r: _Rules, leads: np.ndarray, owned: np.ndarray,
                 n_eligible: np.ndarray) -> list[str]:
    out = []
    for i, lead, owner, is_owned, n in zip(
            leads.tolist(), r.lead_ids[leads].tolist(), _values(r.owner, leads),
            owned[leads].tolist(), n_eligible[leads].tolist(), strict=True):
        if is_owned:
            out.append(f"lead {lead} goes to its account owner {owner}")
            continue
        j = int(r.owner_index[i])
        why = f"{owner} is not a known partner" if j < 0 else "; ".join(r.partner_failures(i, j))
        others = _plural(n, "other eligible partner", "other eligible partners")
        fallback = f"offered to the {others}" if n else "no other partner is eligible either"
        out.append(f"account owner {owner} of lead {lead} is not eligible ({why}); {fallback}")
    return out


def find_eligible_pairs(partners: pd.DataFrame, leads: pd.DataFrame, policy: Policy,
                        rejected: pd.DataFrame | None = None) -> Eligibility:
    """Apply the policy's eligibility rules to a round.

    Parameters
    ----------
    partners : DataFrame
        Data-contract partners: ``partner_id``, ``regions``, ``certifications``
        (tuples), optional ``active`` (default True).
    leads : DataFrame
        Data-contract leads: ``lead_id``, ``region``, optional ``country``,
        ``product``, ``qualification_score``, ``account_owner_partner_id``.
    policy : Policy
        Uses ``qualification_min_score``, ``match_region``,
        ``require_certification`` and ``honor_account_owner``.
    rejected : DataFrame, optional
        ``lead_id``, ``partner_id`` pairs rejected before; ids not in the round are ignored.

    Returns
    -------
    Eligibility
        Pairs, held-back leads with reasons, the leads in the round, owner notes.
    """
    if rejected is not None and not {"lead_id", "partner_id"} <= set(rejected.columns):
        raise ValueError("The 'rejected' frame must have columns 'lead_id' and 'partner_id'. "
                         f"Got {list(rejected.columns)} instead.")
    n_leads, n_partners = len(leads), len(partners)
    lead_ids = pd.Index(leads["lead_id"].to_numpy())
    partner_ids = pd.Index(partners["partner_id"].to_numpy())
    regions = [as_tuple(c) for c in partners["regions"]]
    certs = [as_tuple(c) for c in _optional(partners, "certifications").to_numpy(dtype=object)]
    region, country, product = (_optional(leads, c) for c in ("region", "country", "product"))
    territories = pd.Index(sorted({t for c in regions for t in c}))
    # a product nobody is certified for still needs its own (all False) column
    products = pd.Index(sorted({t for c in certs for t in c}
                               | set(product.dropna().unique().tolist())))
    certified = _membership(certs, products)
    certified[:, -1] = True  # product code -1: the lead names no product, nothing to hold
    score, qualified = _qualification(leads, policy)
    active = (partners["active"].fillna(True).to_numpy(dtype=bool) if "active" in partners.columns
              else np.ones(n_partners, dtype=bool))
    owner = _optional(leads, "account_owner_partner_id")
    owner_index = partner_ids.get_indexer(pd.Index(owner)).astype(np.int64)
    owner_index[(owner_index < 0) & owner.notna().to_numpy()] = -2
    rejected_keys = np.zeros(0, dtype=np.int64)
    if rejected is not None and len(rejected):
        ri = lead_ids.get_indexer(pd.Index(rejected["lead_id"]))
        rj = partner_ids.get_indexer(pd.Index(rejected["partner_id"]))
        ok = (ri >= 0) & (rj >= 0)
        rejected_keys = np.unique(ri[ok].astype(np.int64) * n_partners + rj[ok])
    r = _Rules(policy, lead_ids, partner_ids, active, _membership(regions, territories),
               certified, territories.get_indexer(pd.Index(region)),
               territories.get_indexer(pd.Index(country)),
               products.get_indexer(pd.Index(product)), region, country, product, score, qualified,
               owner, owner_index, rejected_keys)

    lead_pos = np.flatnonzero(qualified)
    group, indptr, members, group_territory, group_certified = _group_lists(r, lead_pos)
    lead_group = np.full(n_leads, -1, dtype=np.int64)
    lead_group[lead_pos] = group
    n_territory = np.zeros(n_leads, dtype=np.int64)
    n_territory[lead_pos] = group_territory[group]
    n_certified = np.zeros(n_leads, dtype=np.int64)
    n_certified[lead_pos] = group_certified[group]
    # rejections and owners are looked up in the groups' lists, so no pass over all pairs
    locate = _Locator(indptr, members, n_partners)
    rej_lead = rejected_keys // max(n_partners, 1)
    rej_at = locate(lead_group[rej_lead], rejected_keys % max(n_partners, 1))
    rej_lead, rej_at = rej_lead[rej_at >= 0], rej_at[rej_at >= 0]
    n_eligible = n_certified - np.bincount(rej_lead, minlength=n_leads)
    code = group.copy()
    owned = np.zeros(n_leads, dtype=bool)
    notes = pd.DataFrame({"lead_id": pd.Series([], dtype=_STR),
                          "owner_partner_id": pd.Series([], dtype=_STR),
                          "owner_eligible": pd.Series([], dtype=bool),
                          "note": pd.Series([], dtype=_STR)})
    if policy.honor_account_owner:
        with_owner = np.flatnonzero(qualified & (owner_index != -1))
        candidate = with_owner[owner_index[with_owner] >= 0]
        hit = locate(lead_group[candidate], owner_index[candidate]) >= 0
        hit &= ~np.isin(candidate * n_partners + owner_index[candidate], rejected_keys)
        owned[candidate[hit]] = True
        # an owned lead's only pair: the owner's singleton list, appended after the groups
        code[owned[lead_pos]] = len(indptr) - 1 + owner_index[lead_pos[owned[lead_pos]]]
        indptr = np.concatenate([indptr, indptr[-1] + np.arange(1, n_partners + 1)])
        members = np.concatenate([members, np.arange(n_partners, dtype=np.int64)])
        notes = pd.DataFrame({
            "lead_id": _take_str(leads["lead_id"], with_owner),
            "owner_partner_id": _take_str(owner, with_owner),
            "owner_eligible": owned[with_owner],
            "note": pd.Series(_owner_notes(r, with_owner, owned, n_eligible), dtype=_STR)})
    li, pj, counts = _expand(lead_pos, code, indptr, members)
    drop = ~owned[rej_lead]
    if drop.any():
        first = np.zeros(n_leads, dtype=np.int64)
        first[lead_pos] = np.cumsum(counts) - counts
        at = first[rej_lead[drop]] + rej_at[drop] - indptr[lead_group[rej_lead[drop]]]
        li, pj = np.delete(li, at), np.delete(pj, at)

    gated = np.flatnonzero(~qualified)
    empty = np.flatnonzero(qualified & (n_eligible == 0))
    held = np.concatenate([gated, empty])
    gate = policy.qualification_min_score
    reasons = ([_gate_words(x, gate) for x in score[gated].tolist()]
               + _no_partner_reasons(r, empty, n_territory[empty], n_certified[empty]))
    order = np.argsort(held, kind="stable")
    held_back = pd.DataFrame({
        "lead_id": _take_str(leads["lead_id"], held[order]),
        "rule": pd.Series(np.array(["qualification"] * len(gated) + ["no_eligible_partner"]
                                   * len(empty), dtype=object)[order], dtype=_STR),
        "reason": pd.Series(np.array(reasons, dtype=object)[order], dtype=_STR)})
    pairs = pd.DataFrame({"lead_id": _take_str(leads["lead_id"], li),
                          "partner_id": _take_str(partners["partner_id"], pj),
                          "lead_index": li, "partner_index": pj},
                         copy=False)  # fresh arrays: no need to copy 2 × n_pairs int64
    counts = np.zeros((n_leads, len(COUNT_COLUMNS)), dtype=np.int64)
    n_active = int(active.sum())
    counts[~qualified, 0] = n_partners
    counts[qualified, 1:] = np.column_stack([
        np.full(n_leads, n_partners - n_active), n_active - n_territory,
        n_territory - n_certified, n_certified - n_eligible,
        np.where(owned, n_eligible - 1, 0), np.where(owned, 1, n_eligible)])[qualified]
    return Eligibility(pairs=pairs, held_back=held_back,
                       leads_in_round=np.flatnonzero(qualified & (n_eligible > 0)).astype(np.int64),
                       owner_notes=notes, _rules=r, _counts=counts)
