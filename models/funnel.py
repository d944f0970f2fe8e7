"""The sales funnel: how far a worked lead got, an outcome richer than won or lost.

A history row may carry the furthest stage its lead reached with the partner
(column :data:`STAGE_COLUMN`), one of :data:`STAGES` in funnel order — the
dispositions partners report in the lead lifecycle.  ``won`` is the same
event as ``converted = 1``; a lost lead stops at an earlier stage.  The stage
is an *outcome*: it is never a feature (it would leak the result), but it
tells more about a partner's skill than the rare win alone — a partner that
qualifies and opens opportunities on many leads is likely good at the
vertical even before its wins show it — so the partner effects are fitted on
it (:mod:`models.mixed_effects`).
"""

from __future__ import annotations

STAGE_COLUMN = "stage"
STAGES = ("accepted", "contacted", "qualified", "opportunity", "won")
WON = STAGES.index("won")
