"""Shared helpers of the model tests: small synthetic channels and CSV writing."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd

from models.simulate import Channel, simulate_channel


@functools.cache
def small_channel(seed: int = 11, n_history: int = 2500) -> Channel:
    """A small channel (40 partners, 120 leads) shared by tests; treat it as read-only."""
    return simulate_channel(40, 120, n_history, seed=seed, with_truth=True)


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """Write a contract frame as CSV, list cells joined with ';'."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object and out[col].map(lambda v: isinstance(v, tuple)).any():
            out[col] = out[col].map(lambda v: ";".join(v) if isinstance(v, tuple) else v)
    out.to_csv(path, index=False)
    return path


def toy_history(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A tiny hand-made history and partners frame with a known signal (qualification score)."""
    rng = np.random.default_rng(seed)
    partners = pd.DataFrame({
        "partner_id": ["A", "B", "C", "D"],
        "tier": ["gold", "gold", "silver", "silver"],
        "regions": [("NA",), ("NA", "EMEA"), ("EMEA",), ("NA",)],
        "verticals": [("retail",), ("health",), ("retail", "health"), ()],
        "certifications": [("crm",), (), ("crm", "erp"), ("erp",)],
        "capacity": np.array([10, 20, 5, 8], dtype=np.int64),
        "open_leads": np.array([2, 0, 5, 1], dtype=np.int64),
        "active": [True, True, True, True],
    })
    score = rng.uniform(0, 100, n)
    p = 1 / (1 + np.exp(-(score - 60) / 10))
    history = pd.DataFrame({
        "lead_id": [f"H{i}" for i in range(n)],
        "created_at": pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC"),
        "region": rng.choice(["NA", "EMEA"], n),
        "vertical": rng.choice(["retail", "health"], n),
        "product": rng.choice(["crm", "erp"], n),
        "qualification_score": score,
        "partner_id": rng.choice(["A", "B", "C", "D"], n),
        "assigned_at": pd.date_range("2024-01-01 01:00", periods=n, freq="h", tz="UTC"),
        "converted": (rng.random(n) < p).astype(np.int64),
    })
    return history, partners
