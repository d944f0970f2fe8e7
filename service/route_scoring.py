"""Validating and scoring leads that arrive one by one: what real-time routing needs.

A lead routed between rounds is checked by the data contract and scored by
the round's rules and scorer, with the same answers as a round
(:func:`service.contract.validate_leads`, :func:`service.pipeline.score_round`)
but without their per-call frame costs (~8 ms each for one lead):

- validation: :func:`service.contract.lead_record.typed_lead_record` types a
  record that plainly meets the contract in microseconds; any other record
  goes through ``validate_leads`` as a one-row frame, so a bad lead's
  problems are the contract's own, numbered as its only row;
- scoring: :class:`service.lead_scoring.LeadScoring`, built once per routing
  context (kept on it, so a new round, new partners or a new model start
  afresh), holds the partner side of eligibility and of the heuristic prior;
  a lead then costs microseconds, in the request's own thread.

A trained model (or another scorer) reads frames at a cost that is almost
all per call, so those leads still go to :class:`ScoringBatcher`'s thread,
which takes whatever has queued while it was busy (no waiting for a batch to
fill, so a lone lead goes at once), scores the batch in one call and hands
each request its own answer.  Scores are per pair (as the models' are), so a
lead scores the same alone or in a batch.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from typing import Any

import pandas as pd

from service.contract import validate_leads
from service.contract.lead_record import typed_lead_record
from service.lead_scoring import LeadScoring, ScoredLead

__all__ = ["LeadScoring", "ScoredLead", "ScoringBatcher", "lead_scoring", "typed_record"]


def typed_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """The lead typed by the data contract (its one row of ``validate_leads``).

    Raises
    ------
    InputError
        The lead breaks the contract (its problems, in row 1).
    """
    typed = typed_lead_record(record)
    if typed is not None:
        return typed
    frame = validate_leads(pd.DataFrame.from_records([dict(record)]), file="lead")
    return {str(k): v for k, v in frame.to_dict("records")[0].items()}


def lead_scoring(ctx: Any) -> LeadScoring:
    """The context's :class:`LeadScoring`, built on first use and kept on the context."""
    scoring: LeadScoring | None = getattr(ctx, "scoring", None)
    if scoring is None:
        scoring = LeadScoring(ctx.partners, ctx.policy, ctx.scorer)
        ctx.scoring = scoring
    return scoring


_Item = tuple[LeadScoring, dict[str, Any], Mapping[str, Any], Sequence[str],
              "Future[ScoredLead]"]


class ScoringBatcher:
    """Scores single leads: in the caller's thread, or batched when a scorer reads frames.

    ``score(ctx, record, declined)`` answers at once under the heuristic prior;
    with a trained model or another scorer it blocks until the lead's batch is
    done in the batcher's thread (started on first use, a daemon; :meth:`close`
    stops it).  ``batches`` records the size of each batch served.
    """

    def __init__(self, max_batch: int = 64) -> None:
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.batches: list[int] = []

    def score(self, ctx: Any, record: Mapping[str, Any], declined: Sequence[str] = (),
              timeout_s: float = 60.0) -> ScoredLead:
        """The lead validated and scored under ``ctx`` (policy, partners, scorer).

        Raises
        ------
        InputError
            The lead breaks the contract (its own problems only).
        """
        typed = typed_record(record)
        scoring = lead_scoring(ctx)
        if scoring.scorer is None:
            return scoring.score([typed], [declined], [record])[0]
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="fairlead-route-scoring")
                self._thread.start()
        done: Future[ScoredLead] = Future()
        self._queue.put((scoring, typed, record, declined, done))
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
            for scoring in {id(i[0]): i[0] for i in items}.values():
                self._serve(scoring, [i for i in items if i[0] is scoring])

    @staticmethod
    def _serve(scoring: LeadScoring, items: list[_Item]) -> None:
        try:
            scored = scoring.score([i[1] for i in items], [i[3] for i in items],
                                   [i[2] for i in items])
        except Exception as exc:  # a fault of the batch is every request's answer
            for item in items:
                item[4].set_exception(exc)
            return
        for item, answer in zip(items, scored, strict=True):
            item[4].set_result(answer)
