"""The rules of engagement (SPEC.md, "Policy file") as a frozen, validated spec.

:func:`policy_from_dict` takes the parsed TOML mapping and returns a
:class:`Policy`, or raises :class:`~allocator.errors.InputError` listing every
problem at once: unknown keys (with the closest known key suggested), wrong
types and values out of range.  Reading the file itself is the shell's job
(``service.contract``); this module does no I/O.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from allocator.errors import InputError, InputProblem

Objective = Literal["conversions", "revenue"]
FloorMode = Literal["hard", "soft"]
INTENTS = ("high", "medium", "low")
DEFAULT_TIERS = ("platinum", "gold", "silver", "bronze")


@dataclass(frozen=True)
class TierRule:
    """Share of the round's assigned leads a tier must / may take.

    ``weight`` is used by the tier-weighted round-robin baseline.
    """

    name: str
    min_share: float | None = None
    max_share: float | None = None
    weight: float = 1.0

    @property
    def rule_name(self) -> str:
        return f"tier_share[tier={self.name}]"


@dataclass(frozen=True)
class Quota:
    """Share of a lead class (by intent) that a tier may take."""

    tier: str
    intent: str
    max_share: float | None = None
    min_share: float | None = None

    @property
    def rule_name(self) -> str:
        return f"quota[tier={self.tier},intent={self.intent}]"


@dataclass(frozen=True)
class SlaPolicy:
    accept_within_hours: float = 24.0
    contact_within_hours: float = 48.0
    max_reroutes: int = 3


@dataclass(frozen=True)
class PoolPolicy:
    cascade: tuple[str, ...] = DEFAULT_TIERS
    step_hours: float = 4.0


@dataclass(frozen=True)
class Policy:
    """A validated policy. Field names follow the TOML keys (section_key)."""

    objective_value: Objective = "conversions"
    qualification_min_score: float | None = None
    match_region: bool = True
    require_certification: bool = True
    honor_account_owner: bool = True
    assign_all: bool = False
    time_limit_s: float = 30.0
    max_share_per_partner: float | None = None
    partner_floor: int = 0
    fairness_mode: FloorMode = "hard"
    floor_penalty: float | None = None
    tiers: tuple[TierRule, ...] = ()
    quotas: tuple[Quota, ...] = ()
    sla: SlaPolicy = field(default_factory=SlaPolicy)
    pool: PoolPolicy = field(default_factory=PoolPolicy)

    @property
    def tier_names(self) -> tuple[str, ...]:
        """Tiers the policy names (``[tiers.X]`` and the pool cascade), in order.

        Empty means the policy names no tier, and any tier label is accepted.
        """
        names = [t.name for t in self.tiers]
        names += [t for t in self.pool.cascade if t not in names]
        return tuple(names)

    def tier(self, name: str) -> TierRule | None:
        """The rule for tier ``name``, or ``None`` if the policy sets none."""
        for t in self.tiers:
            if t.name == name:
                return t
        return None


# -- schema: key -> (kind, constraint) -------------------------------------------------------
# kinds: bool, int>=0, float>=0, share (0..1), str-choice, list[str], positive float
_SECTIONS: dict[str, dict[str, tuple[str, Any]]] = {
    "objective": {"value": ("choice", ("conversions", "revenue"))},
    "qualification": {"min_score": ("range", (0.0, 100.0))},
    "eligibility": {
        "match_region": ("bool", None),
        "require_certification": ("bool", None),
        "honor_account_owner": ("bool", None),
    },
    "round": {"assign_all": ("bool", None), "time_limit_s": ("positive", None)},
    "capacity": {"max_share_per_partner": ("share", None)},
    "fairness": {
        "partner_floor": ("count", None),
        "mode": ("choice", ("hard", "soft")),
        "floor_penalty": ("positive", None),
    },
    "sla": {
        "accept_within_hours": ("positive", None),
        "contact_within_hours": ("positive", None),
        "max_reroutes": ("count", None),
    },
    "pool": {"cascade": ("strlist", None), "step_hours": ("positive", None)},
}
_TIER_KEYS: dict[str, tuple[str, Any]] = {
    "min_share": ("share", None),
    "max_share": ("share", None),
    "weight": ("positive", None),
}
_QUOTA_KEYS: dict[str, tuple[str, Any]] = {
    "tier": ("str", None),
    "intent": ("choice", INTENTS),
    "max_share": ("share", None),
    "min_share": ("share", None),
}
_TOP_KEYS = [*_SECTIONS, "tiers", "quotas"]


class _Checker:
    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[InputProblem] = []

    def add(self, key: str, value: Any, rule: str) -> None:
        self.problems.append(InputProblem(self.file, None, key, value, rule))

    def unknown(self, key: str, known: list[str], path: str) -> None:
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
        hint = f" (did you mean '{close[0]}'?)" if close else f"; known keys: {', '.join(known)}"
        self.add(path, None, f"unknown policy key '{path}'{hint}")

    def value(self, path: str, raw: Any, kind: str, arg: Any) -> Any:
        """Return the checked value or ``None`` after recording a problem."""
        if kind == "bool":
            if isinstance(raw, bool):
                return raw
            self.add(path, raw, f"'{path}' must be true or false")
        elif kind == "choice":
            if isinstance(raw, str) and raw in arg:
                return raw
            self.add(path, raw, f"'{path}' must be one of {', '.join(map(repr, arg))}")
        elif kind == "str":
            if isinstance(raw, str) and raw.strip():
                return raw
            self.add(path, raw, f"'{path}' must be a non-empty string")
        elif kind == "strlist":
            if isinstance(raw, list) and all(isinstance(x, str) and x for x in raw):
                return tuple(raw)
            self.add(path, raw, f"'{path}' must be a list of non-empty strings")
        elif kind == "count":
            if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0:
                return raw
            self.add(path, raw, f"'{path}' must be a non-negative integer")
        else:
            ok = isinstance(raw, int | float) and not isinstance(raw, bool) and math.isfinite(raw)
            num = float(raw) if ok else math.nan
            if kind == "share" and ok and 0.0 <= num <= 1.0:
                return num
            if kind == "positive" and ok and num > 0:
                return num
            if kind == "range" and ok and arg[0] <= num <= arg[1]:
                return num
            rule = {
                "share": f"'{path}' must be a number between 0 and 1",
                "positive": f"'{path}' must be a positive number",
                "range": f"'{path}' must be a number between {arg[0]:g} and {arg[1]:g}"
                if arg
                else "",
            }[kind]
            self.add(path, raw, rule)
        return None

    def table(
        self, path: str, raw: Any, schema: dict[str, tuple[str, Any]]
    ) -> dict[str, Any]:
        if not isinstance(raw, Mapping):
            self.add(path, raw, f"'{path}' must be a table")
            return {}
        out: dict[str, Any] = {}
        for key, val in raw.items():
            sub = f"{path}.{key}"
            if key not in schema:
                self.unknown(str(key), list(schema), sub)
                continue
            checked = self.value(sub, val, *schema[key])
            if checked is not None:
                out[key] = checked
        return out


def policy_from_dict(data: Mapping[str, Any], file: str = "policy.toml") -> Policy:
    """Validate a parsed policy mapping and build a :class:`Policy`.

    Parameters
    ----------
    data : mapping
        The policy as parsed from TOML (``tomllib.load``).
    file : str
        Name used in problem reports.

    Returns
    -------
    Policy

    Raises
    ------
    InputError
        With every problem found: unknown keys (closest known key suggested),
        wrong types, values out of range, contradictory shares.
    """
    chk = _Checker(file)
    sections: dict[str, dict[str, Any]] = {}
    tiers: list[TierRule] = []
    quotas: list[Quota] = []
    for key, raw in data.items():
        if key in _SECTIONS:
            sections[key] = chk.table(key, raw, _SECTIONS[key])
        elif key == "tiers":
            if not isinstance(raw, Mapping):
                chk.add("tiers", raw, "'tiers' must be a table of [tiers.NAME] tables")
                continue
            for name, body in raw.items():
                vals = chk.table(f"tiers.{name}", body, _TIER_KEYS)
                tiers.append(TierRule(name=str(name), **vals))
        elif key == "quotas":
            if not isinstance(raw, list):
                chk.add("quotas", raw, "'quotas' must be an array of [[quotas]] tables")
                continue
            for k, body in enumerate(raw):
                path = f"quotas[{k}]"
                vals = chk.table(path, body, _QUOTA_KEYS)
                if isinstance(body, Mapping):
                    for req in ("tier", "intent"):
                        if req not in body:
                            chk.add(f"{path}.{req}", None, f"'{path}' needs a '{req}' key")
                    if "max_share" not in body and "min_share" not in body:
                        chk.add(path, None, f"'{path}' needs 'max_share' or 'min_share'")
                if "tier" in vals and "intent" in vals:
                    quotas.append(Quota(**vals))
        else:
            chk.unknown(str(key), _TOP_KEYS, str(key))

    for t in tiers:
        if t.min_share is not None and t.max_share is not None and t.min_share > t.max_share:
            chk.add(
                f"tiers.{t.name}",
                {"min_share": t.min_share, "max_share": t.max_share},
                f"tier '{t.name}' has min_share {t.min_share:g} above max_share {t.max_share:g}",
            )
    total_min = sum(t.min_share or 0.0 for t in tiers)
    if total_min > 1.0 + 1e-9:
        chk.add("tiers", total_min, f"tier min_share values add up to {total_min:g}, above 1")
    for k, q in enumerate(quotas):
        if q.min_share is not None and q.max_share is not None and q.min_share > q.max_share:
            chk.add(f"quotas[{k}]", q.max_share, "quota min_share is above its max_share")

    tier_names = [t.name for t in tiers]
    pool = sections.get("pool", {})
    cascade = pool.get("cascade")
    if tier_names:
        for k, q in enumerate(quotas):
            if q.tier not in tier_names and (cascade is None or q.tier not in cascade):
                chk.add(f"quotas[{k}].tier", q.tier, f"quota names tier '{q.tier}', which the "
                        f"policy does not name (tiers: {', '.join(tier_names)})")
    if chk.problems:
        raise InputError(chk.problems)

    g = sections.get
    return Policy(
        objective_value=g("objective", {}).get("value", "conversions"),
        qualification_min_score=g("qualification", {}).get("min_score"),
        match_region=g("eligibility", {}).get("match_region", True),
        require_certification=g("eligibility", {}).get("require_certification", True),
        honor_account_owner=g("eligibility", {}).get("honor_account_owner", True),
        assign_all=g("round", {}).get("assign_all", False),
        time_limit_s=g("round", {}).get("time_limit_s", 30.0),
        max_share_per_partner=g("capacity", {}).get("max_share_per_partner"),
        partner_floor=g("fairness", {}).get("partner_floor", 0),
        fairness_mode=g("fairness", {}).get("mode", "hard"),
        floor_penalty=g("fairness", {}).get("floor_penalty"),
        tiers=tuple(tiers),
        quotas=tuple(quotas),
        sla=SlaPolicy(**g("sla", {})),
        pool=PoolPolicy(**pool) if pool else PoolPolicy(),
    )


DEFAULT_POLICY_TOML = """\
# fairlead default policy: the rules of engagement (see SPEC.md, "Policy file").
[objective]
value = "conversions"

[qualification]
min_score = 40

[eligibility]
match_region = true
require_certification = true
honor_account_owner = true

[round]
assign_all = false

[capacity]
max_share_per_partner = 0.10

[fairness]
partner_floor = 2
mode = "hard"

[tiers.platinum]
weight = 4
[tiers.gold]
min_share = 0.15
max_share = 0.60
weight = 3
[tiers.silver]
weight = 2
[tiers.bronze]
min_share = 0.10
weight = 1

[[quotas]]
tier = "gold"
intent = "high"
max_share = 0.60

[sla]
accept_within_hours = 24
contact_within_hours = 48
max_reroutes = 3

[pool]
cascade = ["platinum", "gold", "silver", "bronze"]
step_hours = 4
"""
