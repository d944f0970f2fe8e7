"""Features of the lead, the partner and the pair, built the same way for training and scoring.

Training rows are (history row, the partner it was assigned to); scoring rows
are the eligible pairs of a round.  Both go through one path: a block of
per-lead features (computed once per lead), a block of per-partner features
(once per partner), gathered by index for each pair, plus pair features
computed vectorized from small partner × item membership tables.

Features
--------
lead
    region, country, vertical, product (categorical codes), intent level
    (low 0 / medium 1 / high 2), qualification score, effort, company size
    (log and band: 1–10, 11–50, 51–200, 201–1000, 1001–5000, 5000+),
    deal size (log and quintile band of the training rows), has an account
    owner, and the extra columns of the history (see :mod:`models.encoding`).
partner (when a partners frame is given)
    tier, capacity, open leads (backlog), backlog ÷ capacity, number of
    regions / verticals / certifications, partner extra columns.
partner history (when the history names ``partner_id``)
    the partner's conversion rate smoothed toward its tier and overall rate,
    log(1 + assignments it rests on), and (pair) its rate within the lead's
    vertical smoothed toward its own rate — see :mod:`models.partner_rate`;
    training rows get leak-free values (earlier rows only, or other folds).
partner effects (when the history also names the vertical)
    ``partner_effect`` and ``partner_vertical_effect``: the partner's and the
    partner × vertical cell's log-odds effects of a ridge-penalized logistic
    regression (a GLMM's posterior mode) fitted beside fixed effects (lead
    quality, intent, size, vertical listed, certification, backlog, tier), so
    a cell is shrunk toward what those predict rather than toward the
    partner's overall rate; prior SDs come from the empirical-Bayes strengths.
    Training rows get values cross-fitted on the other four of five folds (a
    row's own outcome never moves its value).  With a funnel stage column
    (:mod:`models.funnel`) the effects are fitted on every stage reached.
pair
    region match (lead region or country in the partner's regions), vertical
    match, certification match (the lead's product among the partner's
    certifications; NaN when the lead names no product), the partner is the
    lead's account owner, the lead is owned by another partner.

Columns named like partner attributes inside the history (``tier``,
``capacity``…) are not read from the history: partner attributes come from
the partners frame, as at scoring time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from allocator.eligibility import as_tuple
from allocator.errors import InputError, InputProblem
from models.encoding import (
    MAX_CATEGORIES,
    MIN_CATEGORY_COUNT,
    CategoryCoder,
    ExtraRule,
    FrequencyCoder,
    as_numbers,
    as_text,
    classify_extra,
)
from models.funnel import STAGE_COLUMN
from models.partner_rate import (
    EffectTable,
    RateStrengths,
    RateTable,
    fit_effects,
    fit_strengths,
    leak_free_effects,
    leak_free_rates,
    level_keys,
    strength_to_sd,
)
from models.schema import DroppedColumn, FeatureSchema, InputColumn, InputKind, Source

LEAD_TEXT = ("region", "country", "vertical", "product")
LEAD_NUMBERS = ("qualification_score", "effort")
INTENT_LEVELS = {"low": 0.0, "medium": 1.0, "high": 2.0}
COMPANY_SIZE_EDGES = (10.0, 50.0, 200.0, 1000.0, 5000.0)
NOT_FEATURES = {
    "lead_id": "identifier",
    "contact_name": "contact detail (hidden from partners, never a feature)",
    "contact_email": "contact detail (hidden from partners, never a feature)",
    "contact_phone": "contact detail (hidden from partners, never a feature)",
    "created_at": "timestamp: orders the holdout, not a feature",
    "assigned_at": "timestamp: orders the holdout, not a feature",
    "partner_id": "joins the partner's features and history rate",
}
PARTNER_KNOWN = (
    "partner_id", "name", "tier", "regions", "verticals", "certifications",
    "capacity", "open_leads", "active",
)
LEAD_KNOWN = (
    *LEAD_TEXT, *LEAD_NUMBERS, "company_size", "deal_size", "intent",
    "account_owner_partner_id", *NOT_FEATURES,
)
RATE_FEATURES = ("partner_rate", "partner_history_log")
EFFECT_FOLDS = 5
FUNNEL_NOTE = ("funnel stage: an outcome, never a feature; the partner effects are fitted on "
               "the stages reached")
EFFECT_FEATURES = ("partner_effect", "partner_vertical_effect")
# Fixed effects the partner effects are estimated beside (when the model has them).
EFFECT_FIXED = ("qualification_score", "intent_level", "company_size_log", "vertical_match",
                "certification_match", "backlog_ratio")
Op = Literal[
    "category", "frequency", "number", "log1p", "band", "intent", "present",
    "list_len", "backlog_ratio",
]


@dataclass(frozen=True)
class FeatureSpec:
    """One feature: its ``name``, the raw ``column`` it reads and the operation ``op``."""

    name: str
    column: str
    op: Op
    coder: CategoryCoder | FrequencyCoder | None = None
    edges: tuple[float, ...] = ()

    @property
    def categorical(self) -> bool:
        return self.op == "category"


def _compute(spec: FeatureSpec, frame: pd.DataFrame) -> np.ndarray:
    col = frame[spec.column]
    if spec.op in ("category", "frequency"):
        assert spec.coder is not None
        return spec.coder.encode(col)
    if spec.op == "number":
        return as_numbers(col)
    if spec.op == "log1p":
        return np.log1p(np.clip(as_numbers(col), 0, None))
    if spec.op == "band":
        x = as_numbers(col)
        return np.where(np.isnan(x), np.nan, np.searchsorted(spec.edges, x, side="left"))
    if spec.op == "intent":
        return as_text(col).str.lower().map(INTENT_LEVELS).astype("float64").to_numpy()
    if spec.op == "present":
        return (as_text(col).str.strip().fillna("") != "").to_numpy(np.float64)
    if spec.op == "list_len":
        return np.fromiter((len(as_tuple(c)) for c in col), np.float64, len(col))
    # backlog_ratio: open leads per unit of capacity (capacity 0 counts as 1)
    cap = np.clip(as_numbers(frame["capacity"]), 1, None)
    return as_numbers(col) / cap


def _block(frame: pd.DataFrame, specs: Iterable[FeatureSpec], n: int) -> np.ndarray:
    specs = list(specs)
    out = np.empty((n, len(specs)), dtype=np.float64)
    for k, spec in enumerate(specs):
        out[:, k] = _compute(spec, frame)
    return out


def _membership(cells: Iterable[Any], vocab: pd.Index) -> np.ndarray:
    """Boolean table partners × (len(vocab) + 1); the last column (code -1) is all False."""
    tuples = [as_tuple(c) for c in cells]
    table = np.zeros((len(tuples), len(vocab) + 1), dtype=bool)
    rows = np.repeat(np.arange(len(tuples)), [len(t) for t in tuples])
    codes = vocab.get_indexer(pd.Index([i for t in tuples for i in t], dtype=object))
    keep = codes >= 0
    table[rows[keep], codes[keep]] = True
    return table


@dataclass(frozen=True, eq=False)
class Prepared:
    """Per-lead and per-partner blocks plus what the pair features need, for one round."""

    lead_block: np.ndarray
    partner_block: np.ndarray
    lead_codes: dict[str, np.ndarray]
    lead_missing: dict[str, np.ndarray]
    tables: dict[str, np.ndarray]
    owner_position: np.ndarray | None


_PAIR_SOURCES = {  # pair feature: (partner list column, lead columns)
    "region_match": ("regions", ("region", "country")),
    "vertical_match": ("verticals", ("vertical",)),
    "certification_match": ("certifications", ("product",)),
}


class FeatureBuilder:
    """Learns encoders on a history, then builds feature matrices for history rows or pairs.

    Parameters
    ----------
    max_categories : int, default=50
        Most categories kept per text column (others share one code).
    min_category_count : int, default=5
        A category needs this many training rows to get its own code.
    n_folds : int, default=5
        Folds of the out-of-fold partner rate when the history has no timestamp.
    random_state : int or None, default=0

    Attributes
    ----------
    schema_ : FeatureSchema
    rate_table_ : RateTable or None
        Partner and tier outcome counts used at scoring (``None``: lead-only model).
    """

    def __init__(
        self,
        max_categories: int = MAX_CATEGORIES,
        min_category_count: int = MIN_CATEGORY_COUNT,
        n_folds: int = 5,
        random_state: int | None = 0,
    ) -> None:
        self.max_categories = max_categories
        self.min_category_count = min_category_count
        self.n_folds = n_folds
        self.random_state = random_state

    # ------------------------------------------------------------------ fit
    def fit_transform(
        self,
        history: pd.DataFrame,
        y: np.ndarray,
        partners: pd.DataFrame | None = None,
        time: np.ndarray | None = None,
        target: str = "converted",
        stage: np.ndarray | None = None,
    ) -> np.ndarray:
        """Learn the features from ``history`` and return its leak-free training matrix.

        Parameters
        ----------
        history : DataFrame
            Lead columns, optional ``partner_id``, extras; the outcome column removed.
        y : ndarray of 0/1
        partners : DataFrame, optional
            Partner attributes joined by ``partner_id``.
        time : ndarray of int64, optional
            Row timestamps; the partner rate of a row then uses earlier rows only.
        target : str
            Name of the outcome column (recorded in the schema).
        stage : ndarray of int, optional
            Funnel stage level of each row (:func:`models.funnel.stage_levels`, the
            column removed from ``history``): the partner effects are then fitted on
            the stages reached (:mod:`models.mixed_effects`).

        Returns
        -------
        X : ndarray of shape (n_rows, n_features)
        """
        history = history.reset_index(drop=True)
        self._check_not_empty(history, partners)
        self.partner_aware_ = "partner_id" in history.columns
        if self.partner_aware_:
            self._check_partner_ids(history)
        dropped: list[DroppedColumn] = []
        extras: list[ExtraRule] = []
        inputs: list[InputColumn] = []
        self.lead_specs_ = self._lead_specs(history, dropped, extras, inputs)
        self.use_partners_ = self.partner_aware_ and partners is not None
        if partners is not None and not self.partner_aware_:
            dropped.append(DroppedColumn("partners", "history has no partner_id: lead-only model"))
        self.partner_specs_: list[FeatureSpec] = []
        if self.use_partners_:
            assert partners is not None
            self.partner_specs_ = self._partner_specs(partners, extras, inputs)
        self.pair_features_ = self._pair_features(history, partners, inputs)
        override: dict[str, np.ndarray] = {}
        self.rate_strengths_: RateStrengths | None = None
        self.rate_table_: RateTable | None = None
        if self.partner_aware_:
            inputs.append(InputColumn("partners", "partner_id", "text", "str"))
            keys = self._rate_keys(history, partners)
            self.rate_strengths_ = fit_strengths(keys, y)
            rates, counts = leak_free_rates(
                keys, y, self.rate_strengths_, time=time,
                n_folds=self.n_folds, random_state=self.random_state,
            )
            self.rate_table_ = RateTable.from_history(keys, y, self.rate_strengths_)
            override = {"partner_rate": rates[1], "partner_history_log": np.log1p(counts[1])}
            if "partner_vertical_rate" in self.pair_features_:
                override["partner_vertical_rate"] = rates[2]
        self.effects_ = "partner_vertical_rate" in self.pair_features_
        self.effect_table_: EffectTable | None = None
        if self.effects_:
            assert self.rate_strengths_ is not None
            s = self.rate_strengths_
            self.effect_sds_ = (strength_to_sd(s.strengths[1], s.overall),
                                strength_to_sd(s.strengths[2], s.overall))
        if stage is not None:
            dropped.append(DroppedColumn(STAGE_COLUMN, FUNNEL_NOTE if self.effects_ else
                                         "funnel stage: an outcome, never a feature (unused: "
                                         "the history names no partner and vertical)"))
        for col in history.columns:
            if col in NOT_FEATURES and col != "partner_id":
                dropped.append(DroppedColumn(col, NOT_FEATURES[col]))
            elif col in PARTNER_KNOWN and col != "partner_id":
                dropped.append(
                    DroppedColumn(col, "partner attribute: read from the partners frame")
                )
        names = [s.name for s in self.lead_specs_] + [s.name for s in self.partner_specs_]
        if self.partner_aware_:
            names += list(RATE_FEATURES)
        names += list(self.pair_features_)
        if self.effects_:
            names += list(EFFECT_FEATURES)
        categorical = [s.name for s in (*self.lead_specs_, *self.partner_specs_) if s.categorical]
        self.schema_ = FeatureSchema(
            inputs=tuple(dict.fromkeys(inputs)),
            features=tuple(names),
            categorical=tuple(categorical),
            extras=tuple(extras),
            dropped=tuple(dropped),
            target=target,
            partner_aware=self.partner_aware_,
        )
        if not self.partner_aware_:
            return self.transform_history(history, partners)
        prepared, lead_index, partner_index = self._prepare_history(history, partners)
        X = self.matrix(prepared, lead_index, partner_index, override=override)
        if self.effects_:
            keys = self._rate_keys(history, partners)
            fixed = self._fit_fixed_scaler(X)
            # cross-fitted, not time-blocked: with time blocks the earliest rows get no
            # effect at all and the rest rest on a fraction of the history, so the model
            # learned too little trust in the effects it then sees fitted on all of it
            # (on the 50k-row synthetic channel: 80.5% of the round-robin-to-oracle gap
            # closed with 4 time blocks, 81.5% cross-fitted)
            pe, ce = leak_free_effects(keys[1], keys[2], fixed, y, *self.effect_sds_,
                                       time=None, n_blocks=EFFECT_FOLDS,
                                       random_state=self.random_state, stage=stage)
            X[:, self.schema_.features.index("partner_effect")] = pe
            X[:, self.schema_.features.index("partner_vertical_effect")] = ce
            self.effect_table_ = fit_effects(keys[1], keys[2], fixed, y, *self.effect_sds_,
                                             stage=stage)
        return X

    def _check_not_empty(self, history: pd.DataFrame, partners: pd.DataFrame | None) -> None:
        problems = [
            InputProblem(
                "history", None, str(c), None,
                f"every value is missing; a feature needs at least one value "
                f"(drop the column with --exclude {c})",
            )
            for c in history.columns
            if c not in NOT_FEATURES and c not in PARTNER_KNOWN and history[c].isna().all()
        ]
        if partners is not None:
            problems += [
                InputProblem(
                    "partners", None, str(c), None,
                    f"every value is missing; a feature needs at least one value "
                    f"(drop the column with --exclude {c})",
                )
                for c in partners.columns
                if c not in PARTNER_KNOWN and partners[c].isna().all()
            ]
        if problems:
            raise InputError(problems)

    @staticmethod
    def _check_partner_ids(history: pd.DataFrame) -> None:
        blank = as_text(history["partner_id"]).str.strip().fillna("") == ""
        rows = np.flatnonzero(blank.to_numpy())
        if rows.size:
            shown = [
                InputProblem(
                    "history", int(r) + 1, "partner_id", None,
                    "blank: every row of a history with partner_id must name the partner "
                    "the lead was assigned to (or drop the column with --exclude partner_id "
                    "for a lead-only model)",
                )
                for r in rows[:20]
            ]
            if rows.size > 20:
                shown.append(InputProblem(
                    "history", None, "partner_id", None,
                    f"and {rows.size - 20} more blank rows",
                ))
            raise InputError(shown)

    def _lead_specs(
        self,
        history: pd.DataFrame,
        dropped: list[DroppedColumn],
        extras: list[ExtraRule],
        inputs: list[InputColumn],
    ) -> list[FeatureSpec]:
        specs: list[FeatureSpec] = []

        def use(col: str, kind: InputKind) -> bool:
            if col not in history.columns:
                return False
            if history[col].nunique(dropna=False) <= 1:
                dropped.append(DroppedColumn(col, "constant: a single value carries no signal"))
                return False
            inputs.append(InputColumn("leads", col, kind, str(history[col].dtype)))
            return True

        for col in LEAD_TEXT:
            if use(col, "text"):
                coder = CategoryCoder.fit(
                    col, history[col], self.max_categories, self.min_category_count
                )
                specs.append(FeatureSpec(col, col, "category", coder))
        if use("intent", "text"):
            specs.append(FeatureSpec("intent_level", "intent", "intent"))
        for col in LEAD_NUMBERS:
            if use(col, "numeric"):
                specs.append(FeatureSpec(col, col, "number"))
        if use("company_size", "numeric"):
            specs.append(FeatureSpec("company_size_log", "company_size", "log1p"))
            specs.append(
                FeatureSpec("company_size_band", "company_size", "band", edges=COMPANY_SIZE_EDGES)
            )
        if use("deal_size", "numeric"):
            deal = as_numbers(history["deal_size"])
            edges = np.unique(np.nanquantile(deal, [0.2, 0.4, 0.6, 0.8]))
            specs.append(FeatureSpec("deal_size_log", "deal_size", "log1p"))
            specs.append(
                FeatureSpec("deal_size_band", "deal_size", "band",
                            edges=tuple(float(e) for e in edges))
            )
        if "account_owner_partner_id" in history.columns:
            inputs.append(InputColumn("leads", "account_owner_partner_id", "text",
                                      str(history["account_owner_partner_id"].dtype)))
            specs.append(FeatureSpec("has_owner", "account_owner_partner_id", "present"))
        known = set(LEAD_KNOWN) | set(PARTNER_KNOWN)
        for col in history.columns:
            if col in known:
                continue
            specs += self._extra_specs(str(col), history[col], "leads", extras, inputs)
        return specs

    def _extra_specs(
        self,
        col: str,
        series: pd.Series,
        source: Source,
        extras: list[ExtraRule],
        inputs: list[InputColumn],
    ) -> list[FeatureSpec]:
        rule = classify_extra(col, series, source, self.max_categories)
        extras.append(rule)
        if rule.kind == "dropped":
            return []
        kind: InputKind = "numeric" if rule.kind == "numeric" else "text"
        inputs.append(InputColumn(source, col, kind, str(series.dtype)))
        name = f"{source[:-1]}.{col}"
        if rule.kind == "numeric":
            return [FeatureSpec(name, col, "number")]
        if rule.kind == "categorical":
            coder = CategoryCoder.fit(col, series, self.max_categories, 1)
            return [FeatureSpec(name, col, "category", coder)]
        return [FeatureSpec(name, col, "frequency", FrequencyCoder.fit(col, series))]

    def _partner_specs(
        self, partners: pd.DataFrame, extras: list[ExtraRule], inputs: list[InputColumn]
    ) -> list[FeatureSpec]:
        specs: list[FeatureSpec] = []

        def use(col: str, kind: InputKind) -> bool:
            if col not in partners.columns:
                return False
            inputs.append(InputColumn("partners", col, kind, str(partners[col].dtype)))
            return True

        if use("tier", "text"):
            coder = CategoryCoder.fit("tier", partners["tier"], self.max_categories, 1)
            specs.append(FeatureSpec("tier", "tier", "category", coder))
        for col in ("capacity", "open_leads"):
            if use(col, "numeric"):
                specs.append(FeatureSpec(col, col, "number"))
        if "capacity" in partners.columns and "open_leads" in partners.columns:
            specs.append(FeatureSpec("backlog_ratio", "open_leads", "backlog_ratio"))
        for col in ("regions", "verticals", "certifications"):
            if use(col, "list"):
                specs.append(FeatureSpec(f"n_{col}", col, "list_len"))
        for col in partners.columns:
            if col in PARTNER_KNOWN:
                continue
            specs += self._extra_specs(str(col), partners[col], "partners", extras, inputs)
        return specs

    def _pair_features(
        self,
        history: pd.DataFrame,
        partners: pd.DataFrame | None,
        inputs: list[InputColumn],
    ) -> list[str]:
        names: list[str] = []
        if self.use_partners_:
            assert partners is not None
            for name, (plist, lead_cols) in _PAIR_SOURCES.items():
                present = [c for c in lead_cols if c in history.columns]
                if plist in partners.columns and present:
                    names.append(name)
                    inputs.append(InputColumn("partners", plist, "list",
                                              str(partners[plist].dtype)))
                    inputs.extend(InputColumn("leads", c, "text", str(history[c].dtype))
                                  for c in present)
        if self.partner_aware_ and "account_owner_partner_id" in history.columns:
            names += ["is_owner", "owned_by_other"]
        if self.partner_aware_ and "vertical" in history.columns:
            names.append("partner_vertical_rate")
        self.pair_lead_columns_ = {
            name: tuple(c for c in _PAIR_SOURCES[name][1] if c in history.columns)
            for name in names if name in _PAIR_SOURCES
        }
        return names

    # ------------------------------------------------------------ transform
    @staticmethod
    def _tier(table: pd.DataFrame) -> np.ndarray | None:
        if "tier" not in table.columns:
            return None
        return as_text(table["tier"]).to_numpy(dtype=object)

    def _history_partners(
        self, history: pd.DataFrame, partners: pd.DataFrame | None
    ) -> tuple[pd.DataFrame, np.ndarray]:
        """The partner table of a history (partners frame + ids it lacks) and each row's index."""
        ids = history["partner_id"].astype(str)
        if partners is None:
            table = pd.DataFrame({"partner_id": pd.unique(ids)})
        else:
            table = partners.reset_index(drop=True)
            known = pd.Index(table["partner_id"].astype(str))
            unseen = pd.unique(ids[~ids.isin(known)])
            if len(unseen):
                table = pd.concat([table, pd.DataFrame({"partner_id": unseen})],
                                  ignore_index=True)
        index = pd.Index(table["partner_id"].astype(str)).get_indexer(pd.Index(ids))
        return table, index.astype(np.int64)

    def _prepare_history(
        self, history: pd.DataFrame, partners: pd.DataFrame | None
    ) -> tuple[Prepared, np.ndarray, np.ndarray]:
        history = history.reset_index(drop=True)
        if not self.partner_aware_:
            prepared = self.prepare(history, None)
            idx = np.arange(len(history), dtype=np.int64)
            return prepared, idx, idx
        table, p_index = self._history_partners(history, partners)
        prepared = self.prepare(history, table)
        return prepared, np.arange(len(history), dtype=np.int64), p_index

    def transform_history(
        self, history: pd.DataFrame, partners: pd.DataFrame | None = None
    ) -> np.ndarray:
        """Feature matrix of history rows with the partner rates of :attr:`rate_table_`.

        Used for the holdout: its rows see the training rows' outcomes only, as
        a model deployed at the end of the training period would.
        """
        prepared, lead_index, partner_index = self._prepare_history(history, partners)
        return self.matrix(prepared, lead_index, partner_index)

    def refresh_rates(
        self, history: pd.DataFrame, y: np.ndarray, partners: pd.DataFrame | None = None,
        stage: np.ndarray | None = None,
    ) -> None:
        """Recount the partner rates and refit the effects on a (larger) history, for scoring.

        ``stage`` as in :meth:`fit_transform` (the funnel stage of each row, if known).
        """
        if not self.partner_aware_ or self.rate_strengths_ is None:
            return
        history = history.reset_index(drop=True)
        keys = self._rate_keys(history, partners)
        self.rate_table_ = RateTable.from_history(keys, y, self.rate_strengths_)
        if self.effects_:
            fixed = self._fixed(self.transform_history(history, partners))
            self.effect_table_ = fit_effects(keys[1], keys[2], fixed, y, *self.effect_sds_,
                                             stage=stage)

    def _fit_fixed_scaler(self, X: np.ndarray) -> np.ndarray:
        """Learn how to standardize the fixed-effect columns; return them for ``X``."""
        names = self.schema_.features
        self.fixed_columns_ = [names.index(c) for c in EFFECT_FIXED if c in names]
        values = X[:, self.fixed_columns_]
        mean = np.nanmean(values, axis=0) if len(values) else np.zeros(values.shape[1])
        spread = np.nanstd(values, axis=0) if len(values) else np.ones(values.shape[1])
        self.fixed_mean_ = np.nan_to_num(mean)
        self.fixed_scale_ = np.where(np.isfinite(spread) & (spread > 0), spread, 1.0)
        return self._fixed(X)

    def _fixed(self, X: np.ndarray) -> np.ndarray:
        """Standardized fixed-effect columns (missing at the mean) and tier one-hot."""
        values = (X[:, self.fixed_columns_] - self.fixed_mean_) / self.fixed_scale_
        parts = [np.nan_to_num(values)]
        if "tier" in self.schema_.features:
            tier = X[:, self.schema_.features.index("tier")]
            parts += [(tier == k)[:, None] for k in np.unique(tier[~np.isnan(tier)])[:-1]]
        return np.hstack(parts).astype(np.float64)

    def _rate_keys(self, history: pd.DataFrame, partners: pd.DataFrame | None) -> list[np.ndarray]:
        table, p_index = self._history_partners(history, partners)
        tier = self._tier(table)
        vertical = None
        if "partner_vertical_rate" in self.pair_features_:
            vertical = as_text(history["vertical"]).to_numpy(dtype=object)
        return level_keys(
            history["partner_id"].astype(str).to_numpy(dtype=object),
            None if tier is None else tier[p_index],
            vertical,
        )

    def prepare(self, leads: pd.DataFrame, partners: pd.DataFrame | None) -> Prepared:
        """Per-lead and per-partner blocks of one round (positions as in the frames)."""
        leads = leads.reset_index(drop=True)
        lead_block = _block(leads, self.lead_specs_, len(leads))
        lead_codes: dict[str, np.ndarray] = {}
        lead_missing: dict[str, np.ndarray] = {}
        tables: dict[str, np.ndarray] = {}
        owner_position = None
        if partners is None or not self.partner_aware_:
            return Prepared(lead_block, np.empty((0, 0)), lead_codes, lead_missing, tables, None)
        partners = partners.reset_index(drop=True)
        blocks = [_block(partners, self.partner_specs_, len(partners))]
        if self.rate_table_ is not None:
            ids = partners["partner_id"].astype(str).to_numpy(dtype=object)
            rates, counts = self.rate_table_.lookup(level_keys(ids, self._tier(partners), None))
            blocks.append(np.column_stack([rates[1], np.log1p(counts[1])]))
            if "partner_vertical_rate" in self.pair_features_:
                tables["partner_vertical_rate"], lead_codes["partner_vertical_rate"] = (
                    self._vertical_rates(leads, ids, self._tier(partners))
                )
            if self.effect_table_ is not None:
                tables["partner_effect"], tables["partner_vertical_effect"] = (
                    self._effects(leads, ids))
        for name, lead_cols in self.pair_lead_columns_.items():
            plist = _PAIR_SOURCES[name][0]
            vocab = pd.Index(sorted({i for c in partners[plist] for i in as_tuple(c)}),
                             dtype=object)
            tables[name] = _membership(partners[plist], vocab)
            codes = []
            for col in lead_cols:
                text = as_text(leads[col])
                pos = vocab.get_indexer(pd.Index(text.to_numpy(dtype=object)))
                codes.append(np.where(pos >= 0, pos, len(vocab)))
            lead_codes[name] = np.column_stack(codes)
            lead_missing[name] = as_text(leads[lead_cols[0]]).isna().to_numpy()
        if "is_owner" in self.pair_features_:
            owner = as_text(leads["account_owner_partner_id"]).to_numpy(dtype=object)
            pos = pd.Index(partners["partner_id"].astype(str)).get_indexer(pd.Index(owner))
            owner_position = np.where(pd.isna(owner), -2, pos).astype(np.int64)
        return Prepared(lead_block, np.hstack(blocks), lead_codes, lead_missing, tables,
                        owner_position)

    def _vertical_rates(
        self, leads: pd.DataFrame, ids: np.ndarray, tier: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Partner × lead-vertical rate table (last column: unknown vertical) and lead codes."""
        assert self.rate_table_ is not None
        text = as_text(leads["vertical"])
        vocab = pd.Index(sorted(set(text.dropna())), dtype=object)
        columns = [*vocab, ""]
        n_p, n_v = len(ids), len(columns)
        rates, _ = self.rate_table_.lookup(level_keys(
            np.repeat(ids, n_v),
            None if tier is None else np.repeat(tier, n_v),
            np.tile(np.asarray(columns, dtype=object), n_p),
        ))
        pos = vocab.get_indexer(pd.Index(text.to_numpy(dtype=object)))
        codes = np.where(pos >= 0, pos, len(vocab))
        return rates[2].reshape(n_p, n_v), codes[:, None]

    def _effects(self, leads: pd.DataFrame, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per partner its effect, and partner × lead-vertical effects (same columns as rates)."""
        assert self.effect_table_ is not None
        text = as_text(leads["vertical"])
        columns = [*sorted(set(text.dropna())), ""]
        keys = level_keys(np.repeat(ids, len(columns)), None,
                          np.tile(np.asarray(columns, dtype=object), len(ids)))
        partner, cell = self.effect_table_.lookup(keys[1], keys[2])
        return partner[:: len(columns)].copy(), cell.reshape(len(ids), len(columns))

    def matrix(
        self,
        prepared: Prepared,
        lead_index: np.ndarray,
        partner_index: np.ndarray,
        override: dict[str, np.ndarray] | None = None,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """Feature matrix of the pairs (``lead_index[k]``, ``partner_index[k]``).

        ``override`` replaces whole feature columns by name (the leak-free
        partner rates of training rows); ``out`` is a float64 buffer of shape
        (n_pairs, n_features) to fill instead of allocating one.
        """
        n = len(lead_index)
        n_lead = prepared.lead_block.shape[1]
        shape = (n, len(self.schema_.features))
        X = np.empty(shape, dtype=np.float64) if out is None else out
        if X.shape != shape:
            raise ValueError(f"'out' must have shape {shape}; got {X.shape}.")
        X[:, :n_lead] = prepared.lead_block[lead_index]
        if not self.partner_aware_:
            return X
        n_part = prepared.partner_block.shape[1]
        X[:, n_lead : n_lead + n_part] = prepared.partner_block[partner_index]
        col = n_lead + n_part
        for name in self.pair_features_:
            if name == "partner_vertical_rate":
                codes = prepared.lead_codes[name][lead_index, 0]
                X[:, col] = prepared.tables[name][partner_index, codes]
            elif name in prepared.tables:
                table, codes = prepared.tables[name], prepared.lead_codes[name][lead_index]
                hit = table[partner_index, codes[:, 0]]
                for k in range(1, codes.shape[1]):
                    hit |= table[partner_index, codes[:, k]]
                X[:, col] = hit
                if name != "region_match":
                    X[prepared.lead_missing[name][lead_index], col] = np.nan
            elif name == "is_owner":
                assert prepared.owner_position is not None
                X[:, col] = prepared.owner_position[lead_index] == partner_index
            else:
                assert prepared.owner_position is not None
                owner = prepared.owner_position[lead_index]
                X[:, col] = (owner != -2) & (owner != partner_index)
            col += 1
        if self.effects_ and "partner_effect" not in prepared.tables:
            X[:, col : col + 2] = 0.0  # while fitting: the leak-free values come next
        elif self.effects_:
            X[:, col] = prepared.tables["partner_effect"][partner_index]
            codes = prepared.lead_codes["partner_vertical_rate"][lead_index, 0]
            X[:, col + 1] = prepared.tables["partner_vertical_effect"][partner_index, codes]
        for name, values in (override or {}).items():
            X[:, self.schema_.features.index(name)] = values
        return X
