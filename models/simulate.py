"""A synthetic channel with known true conversion probabilities.

:func:`simulate_channel` draws partners, a round of leads, and a history of
past leads logged under round robin, all in the data contract's columns and
dtypes, deterministically for a seed.  What a model sees is only the observed
columns; what decides conversion is latent and kept in :class:`ChannelLatent`,
so a model has to learn it and an optimizer fed the truth shows the ceiling.

The true conversion probability of lead *i* with partner *j*
(:func:`true_probability`) is::

    p_ij = σ( β0 + βq·quality_i + βs·skill_j,v(i) + βc·certified_ij + τ(tier_j)
              − βl·min(open_leads_j / capacity_j, 3) + ε_ij )

with σ the logistic function, β0 = −3.4, βq = 0.8, βs = 1.0, βc = 0.4,
βl = 0.35, τ = {platinum: 0.35, gold: 0.2, silver: 0.1, bronze: 0}, and

- ``quality_i ~ N(0, 1)``: latent lead quality; observed only through
  ``qualification_score`` (correlation 0.75), ``intent`` and weakly ``company_size``;
- ``skill_j,v = a_j + 0.6·[v listed in partner j's verticals] + b_jv`` with
  ``a_j ~ N(0, 0.45²)`` and ``b_jv ~ N(0, 0.45²)``: partner skill differs by vertical;
- ``certified_ij = 1`` when lead *i* names a product partner *j* is certified for;
- ``ε_ij = 0.15·z`` with ``z`` a standard normal drawn from a hash of
  (seed, lead key, partner key) — a fixed per-pair effect no feature explains;
  idiosyncratic pair chemistry is a minor part of conversion next to lead
  quality and partner skill, so its spread is small.

Overall conversion comes out around 8–10 %.  Among a lead's eligible
partners the best one's probability is about twice the average with a few
hundred partners (~7 eligible per lead) and about 3x with thousands (~35
eligible); :func:`describe_channel` measures both.  So choosing partners well
is worth something, and no rule of thumb on observed columns recovers all of
it (the highest tier, for one, gets well under the best).

The world (:mod:`models.simulate_world`): four regions (NA, EMEA, APAC,
LATAM) and ~60 countries in them; leads arrive in proportion to a country's
market.  Tiers come in exact proportions (platinum 5 %, gold 15 %, silver
30 %, bronze 50 %).  Territories narrow as the channel grows: in a small
channel partners cover several countries or whole regions, in a large one most
cover a single country and a few dozen cover a whole region, so a lead has
tens of eligible partners at any size rather than thousands.  Nobody covers
LATAM as a whole and no partner lists :data:`UNCOVERED_COUNTRIES`, so leads
there have no eligible partner.  Total capacity is :data:`CAPACITY_SHARE` of a
round's leads, split in proportion to tier weight (8 : 4 : 2 : 1) × noise ×
the size of the partner's market, so capacity is scarce and uneven.  History
is logged under round robin (:func:`models.simulate_world.draw_history`),
a natural experiment for off-policy evaluation: who got a lead depends only on
its queue and arrival order, never on its outcome.  Each history row also
carries ``stage``, the furthest funnel stage its lead reached
(:data:`models.funnel.STAGES`), drawn from the same uniform as ``converted``
under proportional odds: ``P(stage ≥ k) = σ(logit p_ij + FUNNEL_OFFSETS[k])``
for contacted, qualified and opportunity (3.5, 2.2, 1.2: about 65%, 39% and
22% of leads get that far), and ``won`` exactly when converted.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from scipy.special import expit, ndtri

from allocator.policy import DEFAULT_POLICY_TOML
from models import simulate_world as world
from models.funnel import STAGE_COLUMN, STAGES

UNCOVERED_COUNTRIES = world.UNCOVERED_COUNTRIES
TIERS = world.TIERS
TIER_SHARES = world.TIER_SHARES
CAPACITY_SHARE = 0.75
INTERCEPT, B_QUALITY, B_SKILL, B_CERTIFIED, B_LOAD = -3.4, 0.8, 1.0, 0.4, 0.35
TIER_EFFECT = {"platinum": 0.35, "gold": 0.2, "silver": 0.1, "bronze": 0.0}
LOAD_CAP = 3.0
PAIR_EFFECT_SD = 0.15
# log-odds added to a pair's conversion logit for reaching contacted, qualified, opportunity
FUNNEL_OFFSETS = (3.5, 2.2, 1.2)
HISTORY_KEY_OFFSET = 1 << 40  # history leads' noise keys never meet the round's


def funnel_stage(p: np.ndarray, draw: np.ndarray) -> np.ndarray:
    """Level in :data:`models.funnel.STAGES` each worked lead reached (``won`` iff ``draw < p``).

    Proportional odds: ``P(stage ≥ k) = σ(logit p + FUNNEL_OFFSETS[k])``, evaluated on
    the same uniform ``draw`` that decides conversion, so the stage and ``converted``
    always agree.
    """
    logit_p = np.log(p) - np.log1p(-p)
    offsets = np.asarray((*FUNNEL_OFFSETS, 0.0))
    reached = draw[:, None] < expit(logit_p[:, None] + offsets[None, :])
    return np.asarray(reached.sum(axis=1), dtype=np.int64)


def true_probability(quality: np.ndarray, skill: np.ndarray, certified: np.ndarray,
                     tier: np.ndarray | Sequence[str], load: np.ndarray,
                     pair_effect: np.ndarray) -> np.ndarray:
    """The true conversion probability of lead–partner pairs (formula in the module docstring).

    Parameters
    ----------
    quality : ndarray of float
        Latent quality of each pair's lead.
    skill : ndarray of float
        The partner's skill in the lead's vertical.
    certified : ndarray of bool
        Whether the partner is certified for the lead's product.
    tier : ndarray of str, or of int codes into :data:`TIERS`
        The partner's tier.
    load : ndarray of float
        ``open_leads / capacity`` of the partner (``inf`` for zero capacity).
    pair_effect : ndarray of float
        The fixed per-pair effect ε (:func:`pair_effect`).

    Returns
    -------
    ndarray of float64
        Probabilities in (0, 1), one per pair.
    """
    tier_arr = np.asarray(tier)
    effects = np.array([TIER_EFFECT[t] for t in TIERS])
    if tier_arr.dtype.kind in "iu":
        tau = effects[tier_arr]
    else:
        tau = pd.Series(tier_arr).map(TIER_EFFECT).to_numpy(dtype=float)
        if np.isnan(tau).any():
            raise ValueError(f"Unknown tier in 'tier': tiers are {', '.join(TIERS)}.")
    logit = (INTERCEPT + B_QUALITY * np.asarray(quality, dtype=float)
             + B_SKILL * np.asarray(skill, dtype=float)
             + B_CERTIFIED * np.asarray(certified, dtype=float) + tau
             - B_LOAD * np.minimum(np.asarray(load, dtype=float), LOAD_CAP)
             + np.asarray(pair_effect, dtype=float))
    return np.asarray(expit(logit), dtype=np.float64)


def pair_effect(seed: int, lead_key: np.ndarray, partner_key: np.ndarray) -> np.ndarray:
    """The fixed per-pair effect ε: ``0.15 × N(0, 1)`` from a hash of (seed, lead, partner).

    A hash rather than a draw, so the same pair has the same effect in the
    history and in the round however the pairs are ordered or chunked.
    """
    with np.errstate(over="ignore"):
        h = (np.asarray(lead_key, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
             ^ np.asarray(partner_key, dtype=np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)
             ^ np.uint64(seed & 0xFFFFFFFFFFFFFFFF) * np.uint64(0x165667B19E3779F9))
        for shift, mult in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB)):
            h = (h ^ (h >> np.uint64(shift))) * np.uint64(mult)
        h ^= h >> np.uint64(31)
    uniform = ((h >> np.uint64(11)).astype(np.float64) + 0.5) / float(1 << 53)
    return np.asarray(PAIR_EFFECT_SD * ndtri(uniform), dtype=np.float64)


@dataclass(frozen=True, eq=False)
class ChannelLatent:
    """What decides conversion but is not in the files.

    Attributes
    ----------
    lead_ids : Index
        Leads of the round, then of the history.
    quality : ndarray of float
        Latent quality per lead (aligned with ``lead_ids``).
    lead_key : ndarray of int64
        Key of each lead in the pair-effect hash.
    lead_vertical : ndarray of int
        Code of the lead's vertical in :data:`models.simulate_world.VERTICALS`.
    lead_product : ndarray of int
        Code of the lead's product in :data:`models.simulate_world.PRODUCTS`, ``-1`` for none.
    skill : ndarray of float, shape (n_partners, n_verticals)
        Partner skill by vertical.
    noise_seed : int
        Seed of the pair-effect hash.
    """

    lead_ids: pd.Index
    quality: np.ndarray
    lead_key: np.ndarray
    lead_vertical: np.ndarray
    lead_product: np.ndarray
    skill: np.ndarray
    noise_seed: int


@dataclass(frozen=True, eq=False)
class Channel:
    """A synthetic channel: the four frames of the data contract and the latent truth.

    Attributes
    ----------
    partners, leads, history : DataFrame
        In the data contract's columns and dtypes (list columns as tuples).
    truth : DataFrame or None
        ``lead_id``, ``partner_id``, ``p_true`` for every eligible pair of
        ``leads`` under the default policy; ``None`` unless asked for.
    latent : ChannelLatent
    seed : int
    """

    partners: pd.DataFrame
    leads: pd.DataFrame
    history: pd.DataFrame
    truth: pd.DataFrame | None
    latent: ChannelLatent
    seed: int

    def true_p(self, lead_ids: Sequence[str] | pd.Series | np.ndarray,
               partner_ids: Sequence[str] | pd.Series | np.ndarray) -> np.ndarray:
        """True conversion probability of any (lead, partner) pairs of this channel.

        Leads may come from ``leads`` or ``history``; eligibility is not checked.
        """
        lat = self.latent
        i = lat.lead_ids.get_indexer(pd.Index(np.asarray(lead_ids, dtype=object)))
        j = pd.Index(self.partners["partner_id"]).get_indexer(
            pd.Index(np.asarray(partner_ids, dtype=object)))
        if (i < 0).any() or (j < 0).any():
            bad = np.asarray(lead_ids)[i < 0].tolist()[:3] + np.asarray(
                partner_ids)[j < 0].tolist()[:3]
            raise ValueError(f"Unknown lead or partner ids for this channel: {bad}.")
        return _pair_probability(self.partners, lat, i, j)


def _pair_probability(partners: pd.DataFrame, lat: ChannelLatent, i: np.ndarray,
                      j: np.ndarray, chunk: int = 1 << 20) -> np.ndarray:
    """:func:`true_probability` of pairs (lead position ``i`` in ``lat``, partner position ``j``).

    Works in chunks of ``chunk`` pairs: temporaries stay small, which for tens
    of millions of pairs is several times faster than whole-array passes.
    """
    certs = world.certification_table(partners["certifications"])
    capacity = partners["capacity"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        load = np.where(capacity > 0, partners["open_leads"].to_numpy(dtype=float) / capacity,
                        np.inf)
    tier_code = pd.Categorical(partners["tier"], categories=TIERS).codes.astype(np.int64)
    out = np.empty(len(i), dtype=np.float64)
    for lo in range(0, len(i), chunk):
        ii, jj = i[lo:lo + chunk], j[lo:lo + chunk]
        product = lat.lead_product[ii]
        out[lo:lo + chunk] = true_probability(
            quality=lat.quality[ii], skill=lat.skill[jj, lat.lead_vertical[ii]],
            certified=(product >= 0) & certs[jj, product], tier=tier_code[jj], load=load[jj],
            pair_effect=pair_effect(lat.noise_seed, lat.lead_key[ii], jj))
    return out


def simulate_channel(n_partners: int, n_leads: int, n_history: int, seed: int,
                     with_truth: bool = False,
                     progress: Callable[[str], None] | None = None) -> Channel:
    """Draw a synthetic channel with known conversion probabilities.

    Parameters
    ----------
    n_partners : int
        Partners (at least 1).
    n_leads : int
        Leads in the round to allocate.
    n_history : int
        Past assignments in ``history``: qualified leads with an eligible
        partner, each given to the next of its eligible partners in turn
        (round robin per territory/product queue, in order of arrival), with
        ``converted`` drawn from :func:`true_probability` and ``stage`` from
        :func:`funnel_stage`.
    seed : int
        Everything is a function of the seed (numpy ``Generator`` streams).
    with_truth : bool
        Also compute ``truth``: ``p_true`` of every eligible pair of the round
        under the default policy (the same eligibility an allocation uses).
    progress : callable, optional
        Called with the name of each stage as it starts.

    Returns
    -------
    Channel
    """
    for name, value, low in (("n_partners", n_partners, 1), ("n_leads", n_leads, 0),
                             ("n_history", n_history, 0)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            raise ValueError(f"'{name}' must be an integer of at least {low}. Got {value!r} "
                             "instead.")
    say = progress or (lambda _stage: None)
    streams = np.random.SeedSequence(seed).spawn(4)
    say("partners")
    partners, skill = world.draw_partners(np.random.default_rng(streams[0]), n_partners,
                                          capacity_total=CAPACITY_SHARE * max(n_leads, 1))
    say("leads")
    leads, quality = world.draw_leads(np.random.default_rng(streams[1]), n_leads, "L",
                                      world.ROUND_START, world.ROUND_DAYS, partners)
    say("history")
    history, h_quality = world.draw_history(np.random.default_rng(streams[2]), n_history,
                                            partners)
    noise_seed = int(np.random.default_rng(streams[3]).integers(0, 2**62))
    lat = ChannelLatent(
        lead_ids=pd.Index(np.concatenate([leads["lead_id"].to_numpy(dtype=object),
                                          history["lead_id"].to_numpy(dtype=object)])),
        quality=np.concatenate([quality, h_quality]),
        lead_key=np.concatenate([np.arange(n_leads, dtype=np.int64),
                                 HISTORY_KEY_OFFSET + np.arange(len(history), dtype=np.int64)]),
        lead_vertical=world.codes(pd.concat([leads["vertical"], history["vertical"]]),
                                  world.VERTICALS),
        lead_product=world.codes(pd.concat([leads["product"], history["product"]]),
                                 world.PRODUCTS),
        skill=skill, noise_seed=noise_seed)
    if len(history):
        hist_i = n_leads + np.arange(len(history))
        hist_j = pd.Index(partners["partner_id"]).get_indexer(pd.Index(history["partner_id"]))
        p = _pair_probability(partners, lat, hist_i, hist_j)
        draw = np.random.default_rng(streams[3]).random(len(history))
        history["converted"] = (draw < p).astype(np.int64)
        history[STAGE_COLUMN] = pd.Series(np.asarray(STAGES, dtype=object)[
            funnel_stage(p, draw)], dtype=world._STR)
    truth = None
    if with_truth:
        say("truth")
        elig = world.eligible(partners, leads, honor_account_owner=True)
        li = elig.pairs["lead_index"].to_numpy()
        pj = elig.pairs["partner_index"].to_numpy()
        truth = pd.DataFrame({"lead_id": elig.pairs["lead_id"],
                              "partner_id": elig.pairs["partner_id"],
                              "p_true": _pair_probability(partners, lat, li, pj)})
    return Channel(partners=partners, leads=leads, history=history, truth=truth, latent=lat,
                   seed=seed)


def describe_channel(channel: Channel) -> dict[str, Any]:
    """Measured properties of a channel: sizes, tier shares, conversion, value of choosing.

    ``best_to_mean_p`` is, over round leads with two or more eligible
    partners, the mean of (best eligible partner's p) / (mean p over its
    eligible partners); it needs ``truth``.
    """
    partners, leads, history = channel.partners, channel.leads, channel.history
    out: dict[str, Any] = {
        "partners": len(partners), "leads": len(leads), "history": len(history),
        "active_partners": int(partners["active"].sum()),
        "tier_shares": {t: round(float((partners["tier"] == t).mean()), 4) for t in TIERS},
        "total_capacity": int(partners["capacity"].sum()),
        "capacity_per_lead": round(float(partners["capacity"].sum()) / max(len(leads), 1), 3),
        "below_qualification_40": round(float((leads["qualification_score"] < 40).mean()), 4)
        if len(leads) else 0.0,
        "with_account_owner": round(float(leads["account_owner_partner_id"].notna().mean()), 4)
        if len(leads) else 0.0,
        "history_conversion_rate": round(float(history["converted"].mean()), 4)
        if len(history) else None,
    }
    if channel.truth is not None and len(channel.truth):
        g = channel.truth.groupby("lead_id", sort=False)["p_true"]
        stats = pd.DataFrame({"n": g.size(), "best": g.max(), "mean": g.mean()})
        multi = stats[stats["n"] >= 2]
        out.update({
            "eligible_pairs": len(channel.truth),
            "leads_with_eligible_partner": len(stats),
            "eligible_partners_per_lead": round(float(stats["n"].mean()), 2),
            "mean_p_true": round(float(channel.truth["p_true"].mean()), 4),
            "best_to_mean_p": round(float((multi["best"] / multi["mean"]).mean()), 3)
            if len(multi) else None,
        })
    return out


LIST_COLUMNS = ("regions", "verticals", "certifications")


def _csv_table(frame: pd.DataFrame) -> pa.Table:
    """``frame`` as an arrow table in the files' conventions.

    List cells ``;``-joined, timestamps ISO-8601 in UTC to the second
    (``2025-06-02T09:30:00Z``), flags ``true``/``false``, missing values blank.
    """
    out = frame.copy()
    for name in LIST_COLUMNS:
        if name in out.columns:
            out[name] = pd.Series([";".join(c) for c in out[name]], dtype="str", index=out.index)
    table = pa.Table.from_pandas(out, preserve_index=False)
    for k, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type):
            seconds = pc.cast(table.column(k), pa.timestamp("s", tz="UTC"))
            table = table.set_column(k, field.name,
                                     pc.strftime(seconds, format="%Y-%m-%dT%H:%M:%SZ"))
    return table.replace_schema_metadata(None)


def write_csv(frame: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write ``frame`` as CSV in the files' conventions (see :func:`_csv_table`)."""
    pa_csv.write_csv(_csv_table(frame), str(path))


def write_channel(channel: Channel, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write a channel as a ready round: the CSV files and the default policy.

    Writes ``partners.csv``, ``leads.csv``, ``history.csv`` (when it has
    rows), ``truth.csv`` (when computed) and ``policy.toml`` (a copy of
    ``DEFAULT_POLICY_TOML``) into ``out_dir``, creating it if needed.

    Returns
    -------
    dict of str to Path
        The files written, by name.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    frames = {"partners": channel.partners, "leads": channel.leads}
    if len(channel.history):
        frames["history"] = channel.history
    if channel.truth is not None:
        frames["truth"] = channel.truth
    written: dict[str, Path] = {}
    for name, frame in frames.items():
        written[name] = out / f"{name}.csv"
        write_csv(frame, written[name])
    written["policy"] = out / "policy.toml"
    written["policy"].write_text(DEFAULT_POLICY_TOML, encoding="utf-8")
    return written
