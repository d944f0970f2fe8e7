"""Decision quality: how much of the achievable gain a model's allocation captures.

On a synthetic channel the true conversion probabilities are known, so an
allocation can be judged by what it would really yield, not by what its own
(noisy, optimistically selected) scores promise — the optimizer's curse makes
the latter biased upward.  :func:`evaluate_decisions` allocates the same round
under the same policy three ways and scores each with the *true* probabilities:

- **model**: the optimizer fed the model's scores;
- **oracle**: the optimizer fed the true probabilities (the ceiling);
- **round robin** and the other baselines, on the model round's eligible pairs.

``gap_closed = (model − round_robin) / (oracle − round_robin)`` is the share of
the round-robin-to-oracle gap the model closes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from allocator.policy import Policy
from allocator.problem import AllocationProblem
from models.simulate import Channel
from service.pipeline import Progress, RoundResult, Scorer, run_round


@dataclass(frozen=True)
class DecisionQuality:
    """True expected conversions of each way of allocating one round.

    Attributes
    ----------
    model, oracle, round_robin : float
        Expected conversions under the true probabilities.
    baselines : dict of str to float
        Every baseline of the model round, under the true probabilities.
    model_promised : float
        What the model's own scores promised for its allocation.
    gap_closed : float
        ``(model − round_robin) / (oracle − round_robin)``.
    """

    model: float
    oracle: float
    round_robin: float
    baselines: dict[str, float]
    model_promised: float
    gap_closed: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "model": self.model,
            "oracle": self.oracle,
            "round_robin": self.round_robin,
            "baselines": dict(self.baselines),
            "model_promised": self.model_promised,
            "gap_closed": self.gap_closed,
        }


def true_conversions(channel: Channel, problem: AllocationProblem,
                     lead_partner: np.ndarray) -> float:
    """Sum of the true conversion probabilities of an allocation's assigned pairs.

    Parameters
    ----------
    channel : Channel
        The synthetic channel the round's leads and partners come from.
    problem : AllocationProblem
    lead_partner : ndarray of int
        Per lead of ``problem``, its partner index or ``-1``.

    Returns
    -------
    float
    """
    lp = np.asarray(lead_partner, dtype=np.int64)
    on = lp >= 0
    if not on.any():
        return 0.0
    p = channel.true_p(problem.lead_ids[on], problem.partner_ids[lp[on]])
    return float(p.sum())


def oracle_scorer(channel: Channel) -> Scorer:
    """A scorer that returns the channel's true probability of each pair."""

    def score(pairs: pd.DataFrame, leads: pd.DataFrame, partners: pd.DataFrame) -> np.ndarray:
        return channel.true_p(pairs["lead_id"].to_numpy(), pairs["partner_id"].to_numpy())

    return score


def evaluate_decisions(
    channel: Channel,
    policy: Policy,
    scorer: Any,
    *,
    model_round: RoundResult | None = None,
    progress: Progress | None = None,
) -> DecisionQuality:
    """Allocate the channel's round with the model and with the truth; judge both by the truth.

    Parameters
    ----------
    channel : Channel
        A simulated channel (its latent truth is what makes this possible).
    policy : Policy
        The same policy for every allocation.
    scorer : TrainedModel or callable
        The model whose decisions are judged.
    model_round : RoundResult, optional
        The round already allocated with ``scorer`` (saves solving it again).
    progress : callable, optional

    Returns
    -------
    DecisionQuality
    """
    if model_round is None:
        model_round = run_round(channel.partners, channel.leads, policy, scorer=scorer,
                                progress=progress)
    oracle_round = run_round(channel.partners, channel.leads, policy,
                             scorer=oracle_scorer(channel), progress=progress)
    problem = model_round.problem
    model = true_conversions(channel, problem, model_round.allocation.lead_partner)
    oracle = true_conversions(channel, oracle_round.problem,
                              oracle_round.allocation.lead_partner)
    baselines = {name: true_conversions(channel, problem, b.lead_partner)
                 for name, b in model_round.baselines.items()}
    rr = baselines["round_robin"]
    denom = oracle - rr
    closed = (model - rr) / denom if abs(denom) > 1e-12 else float("nan")
    promised = model_round.summary.get("expected_conversions") or model_round.allocation.objective
    return DecisionQuality(model=model, oracle=oracle, round_robin=rr, baselines=baselines,
                           model_promised=float(promised), gap_closed=float(closed))
