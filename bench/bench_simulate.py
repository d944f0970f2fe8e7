"""Benchmark: simulate a 1M-lead channel, find its eligible pairs, price them; with baselines.

Run: ``.venv/bin/python bench/bench_simulate.py [--leads 1000000] [--partners 5000]``

Times, in one run, wall clock and this process's CPU (the machine may be shared):

- ``simulate_channel(partners, leads, history=0)`` — partners, the round's
  leads with every column of the data contract, account owners;
  baselines: numpy drawing the same number of float64 values as the leads
  frame has cells (the least any generator must spend), and writing the
  leads frame to CSV (what the command does next);
- ``find_eligible_pairs`` on those leads under the default policy (about 35
  eligible partners per lead at 5,000 partners); baseline: ``np.repeat`` +
  a gather building the same number of (lead, partner) int64 pairs;
- ``with_truth=True`` cost over the plain simulation (eligibility plus the
  true probability of every pair).

Prints the times and the ratios to the baselines.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from allocator.eligibility import find_eligible_pairs
from models import simulate_world as world
from models.simulate import simulate_channel, write_csv


def _timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def _row(name: str, wall: float, cpu: float, base: tuple[float, float] | None = None) -> None:
    ratio = "" if base is None else f"   x{wall / base[0]:6.1f} wall  x{cpu / base[1]:6.1f} cpu"
    print(f"{name:<54} {wall:8.2f} s wall {cpu:8.2f} s cpu{ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--partners", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}")
    print(f"channel: {args.partners} partners, {args.leads} leads, no history\n")

    w, c, channel = _timed(lambda: simulate_channel(args.partners, args.leads, 0, args.seed))
    leads = channel.leads
    cells = leads.shape[0] * leads.shape[1]
    rng = np.random.default_rng(0)
    wb, cb, _ = _timed(lambda: rng.standard_normal(cells))
    with tempfile.TemporaryDirectory() as tmp:
        wc, cc, _ = _timed(lambda: write_csv(leads, Path(tmp) / "leads.csv"))
    _row(f"numpy: {cells:,} float64 draws (baseline)", wb, cb)
    _row("write leads.csv (baseline)", wc, cc)
    _row("simulate_channel", w, c, (wb, cb))
    print(f"{'':<54} simulate / write CSV: x{w / wc:.2f} wall, x{c / cc:.2f} cpu\n")

    we, ce, elig = _timed(lambda: find_eligible_pairs(channel.partners, leads,
                                                      world.default_policy()))
    n_pairs = len(elig.pairs)
    lead_pos = elig.pairs["lead_index"].to_numpy()
    counts = np.bincount(lead_pos, minlength=len(leads))
    partner_pool = rng.integers(0, args.partners, size=n_pairs)

    def floor() -> tuple[np.ndarray, np.ndarray]:
        return np.repeat(np.arange(len(leads)), counts), partner_pool[np.arange(n_pairs)]

    wf, cf, _ = _timed(floor)
    _row(f"np.repeat + gather of {n_pairs:,} pairs (baseline)", wf, cf)
    per_lead = n_pairs / max(len(elig.leads_in_round), 1)
    _row(f"find_eligible_pairs ({per_lead:.1f} per lead in the round)", we, ce, (wf, cf))
    print(f"{'':<54} held back: {len(elig.held_back):,} leads\n")

    wt, ct, truth_channel = _timed(lambda: simulate_channel(args.partners, args.leads, 0,
                                                            args.seed, with_truth=True))
    assert truth_channel.truth is not None and len(truth_channel.truth) == n_pairs
    _row("simulate_channel(with_truth=True)", wt, ct, (w, c))
    print(f"\n1M-lead target: simulate in under 60 s -> {w:.1f} s "
          f"({'met' if w < 60 else 'missed'}); with truth {wt:.1f} s")


if __name__ == "__main__":
    main()
