"""Helpers of the API tests: data-contract frames as JSON rows, and a small simulated channel."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from allocator.policy import DEFAULT_POLICY_TOML
from models.simulate import Channel, simulate_channel

#: A policy a small simulated channel can meet: no floors, no tier minimums.
POLICY_TOML = """
[objective]
value = "conversions"
[qualification]
min_score = 40
[capacity]
max_share_per_partner = 0.5
[fairness]
partner_floor = 0
[tiers.platinum]
[tiers.gold]
max_share = 0.8
[tiers.silver]
[tiers.bronze]
"""
#: The default policy: its tier minimums cannot be met by a small channel (409).
INFEASIBLE_TOML = DEFAULT_POLICY_TOML


def _cell(value: Any) -> Any:
    if isinstance(value, tuple | list | np.ndarray):
        return [str(v) for v in value]
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame as JSON rows (lists as arrays, timestamps ISO, missing as null)."""
    return [{str(k): _cell(v) for k, v in r.items()} for r in frame.to_dict("records")]


@lru_cache(maxsize=4)
def channel(n_partners: int = 12, n_leads: int = 60, n_history: int = 400,
            seed: int = 7) -> Channel:
    return simulate_channel(n_partners, n_leads, n_history, seed)
