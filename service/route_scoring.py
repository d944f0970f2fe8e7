"""Validating and scoring leads that arrive one by one, together: what real-time routing needs.

A lead routed between rounds is checked by the data contract
(:func:`service.contract.validate_leads`) and scored by the round's rules and
model (:func:`service.pipeline.score_round`), exactly as in a round.  Both are
frame operations whose cost is almost all per call, not per row (one lead:
~10 ms each on a busy core; sixteen leads: about the same), so a worker that
routes many leads a second validates and scores the leads of concurrent
requests in one pass: :class:`ScoringBatcher` takes whatever has queued while
it was busy (no waiting for a batch to fill, so a lone lead goes at once) and
hands each request its own answer.  Problems in a batch are re-checked lead by
lead, so every request gets its own errors, numbered as its only row.  Scores
are per pair (as the models' are), so a lead scores the same alone or in a
batch; a scorer that looked at the other leads of its frame would not.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from allocator.errors import InputError
from service.contract import validate_leads
from service.pipeline import score_round


@dataclass(frozen=True)
class ScoredLead:
    """One arriving lead: its validated row, and its eligible partners and values or why held."""

    record: dict[str, Any]
    partner_ids: tuple[str, ...] = ()
    values: np.ndarray | None = None
    held: str | None = None


def validate_records(records: Sequence[Mapping[str, Any]]
                     ) -> tuple[pd.DataFrame, list[int | InputError]]:
    """The valid records as one validated frame, and per record its row there or its errors.

    Raises
    ------
    InputError
        A single record that breaks the contract.
    """
    try:
        frame = validate_leads(pd.DataFrame.from_records([dict(r) for r in records]),
                               file="lead")
        return frame, list(range(len(records)))
    except InputError:
        if len(records) == 1:
            raise
    # somebody's lead is bad: each record on its own, so each gets its own row-1 problems
    answers: list[int | InputError] = []
    good: list[Mapping[str, Any]] = []
    for record in records:
        try:
            validate_leads(pd.DataFrame.from_records([dict(record)]), file="lead")
        except InputError as exc:
            answers.append(exc)
            continue
        answers.append(len(good))
        good.append(record)
    frame = (validate_leads(pd.DataFrame.from_records([dict(r) for r in good]), file="lead")
             if good else pd.DataFrame())
    return frame, answers


def score_leads(partners: pd.DataFrame, policy: Any, scorer: Any, leads: pd.DataFrame,
                declined: Sequence[Sequence[str]]) -> list[ScoredLead]:
    """Score validated leads in one pass: the pairs and values a round would give each one.

    Parameters
    ----------
    partners : DataFrame
        The round's partners (validated).
    policy : Policy
    scorer : model, callable or None
    leads : DataFrame
        Validated leads (:func:`service.contract.validate_leads`).
    declined : sequence of sequence of str
        Per lead, the partners that declined it before (not eligible again).
    """
    if not len(leads):
        return []
    ids = leads["lead_id"].astype(str).tolist()
    rejected = [(lid, p) for lid, ps in zip(ids, declined, strict=True) for p in ps]
    scored = score_round(partners, leads, policy, scorer=scorer,
                         rejected=pd.DataFrame(rejected, columns=["lead_id", "partner_id"])
                         if rejected else None)
    held = dict(zip(scored.held_back["lead_id"].astype(str),
                    scored.held_back["reason"].astype(str), strict=True))
    lead_index = scored.pairs["lead_index"].to_numpy(dtype=np.int64)
    partner_ids = scored.pairs["partner_id"].astype(str).to_numpy()
    values = np.asarray(scored.values, dtype=float)
    order = np.argsort(lead_index, kind="stable")
    bounds = np.searchsorted(lead_index[order], np.arange(len(ids) + 1))
    records = [{str(k): v for k, v in r.items()} for r in leads.to_dict("records")]
    out = []
    for i, lid in enumerate(ids):
        at = order[bounds[i]:bounds[i + 1]]
        if lid in held or not len(at):
            out.append(ScoredLead(records[i], held=held.get(lid, "the lead has no eligible "
                                                                "partner")))
        else:
            out.append(ScoredLead(records[i], tuple(partner_ids[at].tolist()), values[at]))
    return out


_Item = tuple[Any, Mapping[str, Any], Sequence[str], "Future[ScoredLead]"]


class ScoringBatcher:
    """Validates and scores the leads of concurrent requests together, in one thread.

    ``score(ctx, record, declined)`` blocks until the lead's batch is done.  The
    thread starts on first use and is a daemon; :meth:`close` stops it.
    """

    def __init__(self, max_batch: int = 64) -> None:
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.batches: list[int] = []

    def score(self, ctx: Any, record: Mapping[str, Any], declined: Sequence[str] = (),
              timeout_s: float = 60.0) -> ScoredLead:
        """The lead validated and scored under ``ctx`` (policy, partners, model).

        Raises
        ------
        InputError
            The lead breaks the contract (its own problems only).
        """
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="fairlead-route-scoring")
                self._thread.start()
        done: Future[ScoredLead] = Future()
        self._queue.put((ctx, record, declined, done))
        return done.result(timeout=timeout_s)

    def close(self) -> None:
        with self._lock:
            if self._thread is not None:
                self._queue.put(None)
                self._thread.join(timeout=10)
                self._thread = None

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            items = [first]
            while len(items) < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)  # finish this batch, then stop
                    break
                items.append(nxt)
            self.batches.append(len(items))
            for ctx in {id(i[0]): i[0] for i in items}.values():
                self._serve(ctx, [i for i in items if i[0] is ctx])

    @staticmethod
    def _serve(ctx: Any, items: list[_Item]) -> None:
        try:
            frame, rows = validate_records([i[1] for i in items])
            declined = [item[2] for item, r in zip(items, rows, strict=True)
                        if not isinstance(r, InputError)]
            scored = score_leads(ctx.partners, ctx.policy, ctx.scorer, frame, declined)
        except Exception as exc:  # a fault of the batch is every request's answer
            for item in items:
                item[3].set_exception(exc)
            return
        for item, row in zip(items, rows, strict=True):
            if isinstance(row, InputError):
                item[3].set_exception(row)
            else:
                item[3].set_result(scored[row])
