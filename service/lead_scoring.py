"""One arriving lead's eligible partners and values, with the partner side done once.

:func:`service.pipeline.score_round` gives a round's pairs and values from
frames; for a single lead almost all of its cost is per call.
:class:`LeadScoring` is built once per routing context (the round's
policy, partners and scorer) and holds what does not depend on the lead:
the eligibility rules over the partners (:class:`allocator.lead_eligibility.PartnerRules`)
and, for the heuristic prior, which partner lists which vertical and
certification.  A lead then costs microseconds: its pairs by the same rules,
its heuristic probabilities by the same formula and operations as
:func:`service.pipeline.heuristic_probability`, its values by the objective.

A trained model or another scorer reads frames, so leads scored by one are
put in a validated frame (all the leads of a batch in one) and scored with
:func:`service.pipeline.pair_scores` on their pairs: the very call a round
makes.  The tests compare every path with ``score_round`` on simulated
channels, held leads included.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from allocator.lead_eligibility import LeadPairs, PartnerRules
from allocator.policy import Policy
from service.contract import validate_leads
from service.pipeline import INTENT_FACTOR, pair_scores

NO_ELIGIBLE = "the lead has no eligible partner"


@dataclass(frozen=True)
class ScoredLead:
    """One arriving lead: its validated row, and its eligible partners and values or why held."""

    record: dict[str, Any]
    partner_ids: tuple[str, ...] = ()
    values: np.ndarray | None = None
    held: str | None = None


def _listed(partners: pd.DataFrame, column: str) -> dict[str, np.ndarray]:
    """Item -> partners whose (tuple) list cell holds it, as the heuristic reads list cells."""
    out: dict[str, np.ndarray] = {}
    if column not in partners.columns:
        return out
    for j, cell in enumerate(partners[column]):
        if isinstance(cell, tuple):
            for item in cell:
                out.setdefault(str(item), np.zeros(len(partners), dtype=bool))[j] = True
    return out


def _number(value: Any) -> float:
    if value is None or value is pd.NA:
        return math.nan
    return float(value)


class LeadScoring:
    """Eligibility and scores of single leads under one round's policy, partners and scorer.

    Parameters
    ----------
    partners : DataFrame
        The round's partners, validated.
    policy : Policy
    scorer : TrainedModel, callable or None
        ``None``: the heuristic prior, computed here per lead.
    """

    def __init__(self, partners: pd.DataFrame, policy: Policy, scorer: Any) -> None:
        self.partners = partners
        self.policy = policy
        self.scorer = scorer
        self.rules = PartnerRules(partners, policy)
        self.partner_ids = np.asarray(self.rules.partner_ids, dtype=object)
        self._verticals = _listed(partners, "verticals")
        self._certifications = _listed(partners, "certifications")

    def pairs(self, record: dict[str, Any], declined: Sequence[str] = ()) -> LeadPairs:
        """The lead's eligible partners (positions) or why it is held."""
        return self.rules.lead(record, declined)

    def heuristic(self, record: dict[str, Any], parts: np.ndarray) -> np.ndarray:
        """:func:`~service.pipeline.heuristic_probability` of the lead with partners ``parts``."""
        q = _number(record.get("qualification_score")) / 100.0
        q = 0.5 if math.isnan(q) else q
        intent = INTENT_FACTOR.get(record.get("intent"), 1.0)  # type: ignore[arg-type]
        base = np.full(len(parts), (0.04 + 0.16 * np.float64(q)) * np.float64(intent))
        nobody = np.zeros(len(self.partner_ids), dtype=bool)
        vertical, product = record.get("vertical"), record.get("product")
        in_vertical = (self._verticals.get(vertical, nobody) if isinstance(vertical, str)
                       else nobody)[parts]
        certified = (self._certifications.get(product, nobody) if isinstance(product, str)
                     else nobody)[parts]
        p = base * np.where(in_vertical, 1.3, 1.0)
        p = p * np.where(certified, 1.2, 1.0)
        return np.clip(p, 0.001, 0.95)

    def values(self, record: dict[str, Any], probability: np.ndarray) -> np.ndarray:
        """:func:`allocator.build.pair_values` of one lead's pairs (the lead scored alone)."""
        probability = np.asarray(probability, dtype=np.float64)
        if self.policy.objective_value != "revenue":
            return probability
        if "deal_size" not in record:
            raise ValueError("The revenue objective needs a 'deal_size' column in the leads. "
                             f"Got columns {list(record)} instead.")
        deal = _number(record["deal_size"])
        return probability * np.nan_to_num(np.float64(deal), nan=0.0)

    def score(self, records: Sequence[dict[str, Any]], declined: Sequence[Sequence[str]],
              raw: Sequence[Mapping[str, Any]]) -> list[ScoredLead]:
        """Validated lead records scored as a round scores each of them.

        Parameters
        ----------
        records : sequence of dict
            Leads typed by the data contract (a validated frame's rows).
        declined : sequence of sequence of str
            Per lead, the partners that declined it before.
        raw : sequence of mapping
            The same leads as sent (a scorer that reads frames gets them validated again).
        """
        found = [self.pairs(r, d) for r, d in zip(records, declined, strict=True)]
        if self.scorer is not None:
            return self._score_frames(records, found, raw)
        out = []
        for record, pairs in zip(records, found, strict=True):
            if pairs.held_reason is not None:
                out.append(ScoredLead(record, held=pairs.held_reason))
                continue
            values = self.values(record, self.heuristic(record, pairs.partners))
            out.append(ScoredLead(record, tuple(self.partner_ids[pairs.partners].tolist()),
                                  values))
        return out

    def _score_frames(self, records: Sequence[dict[str, Any]], found: Sequence[LeadPairs],
                      raw: Sequence[Mapping[str, Any]]) -> list[ScoredLead]:
        """A scorer that reads frames: the leads with pairs in one frame, one call."""
        out: list[ScoredLead | None] = [
            ScoredLead(r, held=p.held_reason) if p.held_reason is not None else None
            for r, p in zip(records, found, strict=True)]
        rows = [i for i, s in enumerate(out) if s is None]
        if not rows:
            return [s for s in out if s is not None]
        leads = validate_leads(pd.DataFrame.from_records([dict(raw[i]) for i in rows]),
                               file="lead")
        counts = [len(found[i].partners) for i in rows]
        part = np.concatenate([found[i].partners for i in rows])
        lead_index = np.repeat(np.arange(len(rows), dtype=np.int64), counts)
        ids = leads["lead_id"].astype(str).to_numpy(dtype=object)
        pairs = pd.DataFrame({"lead_id": ids[lead_index], "partner_id": self.partner_ids[part],
                              "lead_index": lead_index, "partner_index": part})
        _, values, _ = pair_scores(self.partners, leads, pairs, self.policy, self.scorer)
        bounds = np.concatenate([[0], np.cumsum(counts)])
        for k, i in enumerate(rows):
            at = slice(int(bounds[k]), int(bounds[k + 1]))
            out[i] = ScoredLead(records[i], tuple(self.partner_ids[part[at]].tolist()),
                                values[at])
        return [s for s in out if s is not None]
