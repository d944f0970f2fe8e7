"""How long input validation takes next to simply reading the same file.

Builds 100k valid partners and 100k valid leads in memory (numpy), writes them
as CSV, then times, best of several runs:

- ``read``: ``pandas.read_csv`` of the file, nothing else (the baseline);
- ``validate``: the contract's checks on the frame as the loader reads it
  (text, list and timestamp columns as text; numbers inferred);
- ``validate text``: the checks on a frame whose every cell is text (the
  slowest case: every number parsed by the checks);
- ``load``: the contract's loader end to end (read + validate).

Prints the figures and the ratios to the plain read.  Run:
``.venv/bin/python bench/bench_validation.py [--rows N] [--repeat K]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from allocator.policy import DEFAULT_TIERS
from service.contract import load_leads, load_partners, validate_leads, validate_partners
from service.contract.columns import LEADS, PARTNERS
from service.contract.load import read_table

REGIONS = np.array(["NA", "EMEA", "APAC", "LATAM", "US", "DE", "FR", "UK", "JP", "BR"])
VERTICALS = np.array(["finance", "health", "retail", "public", "manufacturing"])
PRODUCTS = np.array(["core", "cloud", "edge", "analytics"])


def _join(rng: np.random.Generator, pool: np.ndarray, n: int, k_max: int) -> np.ndarray:
    """n random ';'-joined subsets of ``pool`` with 1..k_max items."""
    picks = [pool[rng.integers(0, len(pool), n)] for _ in range(k_max)]
    sizes = rng.integers(1, k_max + 1, n)
    out = pd.Series(picks[0], dtype="str")
    for k in range(1, k_max):
        extra = pd.Series(np.where(sizes > k, ";" + picks[k], ""), dtype="str")
        out = out + extra
    return out.to_numpy()


def make_partners(n: int, rng: np.random.Generator) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "partner_id": np.char.add("P", np.arange(n).astype(str)),
            "name": np.char.add("Partner ", np.arange(n).astype(str)),
            "tier": np.array(DEFAULT_TIERS)[rng.integers(0, 4, n)],
            "regions": _join(rng, REGIONS, n, 3),
            "verticals": _join(rng, VERTICALS, n, 2),
            "certifications": _join(rng, PRODUCTS, n, 2),
            "capacity": rng.integers(0, 200, n),
            "open_leads": rng.integers(0, 50, n),
            "active": np.array(["true", "false", "yes"])[rng.integers(0, 3, n)],
        }
    )


def make_leads(n: int, rng: np.random.Generator) -> pd.DataFrame:
    start = np.datetime64("2024-01-01T00:00:00")
    created = start + rng.integers(0, 365 * 24 * 3600, n).astype("timedelta64[s]")
    return pd.DataFrame(
        {
            "lead_id": np.char.add("L", np.arange(n).astype(str)),
            "created_at": np.char.add(np.datetime_as_string(created), "Z"),
            "region": REGIONS[rng.integers(0, len(REGIONS), n)],
            "vertical": VERTICALS[rng.integers(0, len(VERTICALS), n)],
            "product": PRODUCTS[rng.integers(0, len(PRODUCTS), n)],
            "company_size": rng.integers(1, 50_000, n),
            "deal_size": np.round(rng.lognormal(9, 1, n), 2),
            "intent": np.array(["high", "medium", "low"])[rng.integers(0, 3, n)],
            "qualification_score": np.round(rng.uniform(0, 100, n), 1),
            "effort": np.round(rng.uniform(0.5, 3, n), 2),
            "contact_email": np.char.add(np.arange(n).astype(str), "@example.com"),
        }
    )


def best_of(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    tables = {
        "partners": (make_partners(args.rows, rng), PARTNERS, validate_partners, load_partners),
        "leads": (make_leads(args.rows, rng), LEADS, validate_leads, load_leads),
    }
    print(f"rows per table: {args.rows:,}; best of {args.repeat} runs")
    head = ["read s", "validate s", "text s", "load s", "validate/read", "text/read"]
    print(f"{'table':<10}" + "".join(f"{h:>14}" for h in head))
    with tempfile.TemporaryDirectory() as tmp:
        for name, (frame, spec, validate, load) in tables.items():
            path = Path(tmp) / f"{name}.csv"
            frame.to_csv(path, index=False)
            as_read = read_table(path, spec.text_names()).frame
            as_text = pd.read_csv(path, dtype="str", keep_default_na=False, na_values=[""])
            validate(as_read)  # warm-up, and proof the data is valid
            validate(as_text)
            read_s = best_of(partial(pd.read_csv, path), args.repeat)
            validate_s = best_of(partial(validate, as_read), args.repeat)
            text_s = best_of(partial(validate, as_text), args.repeat)
            load_s = best_of(partial(load, path), args.repeat)
            figures = [read_s, validate_s, text_s, load_s]
            ratios = [validate_s / read_s, text_s / read_s]
            print(f"{name:<10}" + "".join(f"{x:>14.3f}" for x in figures)
                  + "".join(f"{x:>14.2f}" for x in ratios))


if __name__ == "__main__":
    main()
