"""Benchmark: score 3M eligible pairs of a round, against raw predict on a prebuilt matrix.

Run: ``.venv/bin/python bench/bench_scoring.py [--pairs 3000000] [--threads 1]``

A synthetic channel (2,000 partners, 100,000 leads, 50,000 history rows) is
simulated, its eligible pairs under the default policy are found (tiled to
the requested count if there are fewer), and both estimators are fitted on
the history.  For each, the script times:

- ``score_pairs`` — the whole path: schema check, per-lead and per-partner
  features, pair features, calibrated prediction, in 500k-pair chunks;
- the baseline — the estimator's raw uncalibrated ``predict_proba`` on the
  already-built feature matrix of the same pairs (for gbm, the bare
  HistGradientBoostingClassifier), i.e. the least any scorer must spend;

and prints the times and their ratio.  The target is 3M pairs in at most 10 s.
Both wall-clock and CPU seconds are printed: with one thread, CPU seconds are
what the wall time is on an idle core, so they stay meaningful when other
processes share the machine (the load average is printed too).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from allocator.eligibility import find_eligible_pairs
from allocator.policy import Policy
from models.estimator import ConversionModel
from models.features import FeatureBuilder
from models.outcome import outcome_vector
from models.scoring import TrainedModel, score_pairs
from models.simulate import simulate_channel


def _timed(fn) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _cpu_timed(fn) -> tuple[float, float, object]:  # type: ignore[no-untyped-def]
    """Wall and CPU seconds: on a shared machine the CPU time of a one-thread run is
    what the wall time would be on an idle core."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3_000_000)
    parser.add_argument("--threads", type=int, default=1,
                        help="OpenMP/BLAS threads for prediction (default 1)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}")

    t_sim, channel = _timed(lambda: simulate_channel(2000, 100_000, 50_000, seed=args.seed))
    leads, partners, history = channel.leads, channel.partners, channel.history
    print(f"simulated channel in {t_sim:.1f} s")
    t_elig, elig = _timed(lambda: find_eligible_pairs(partners, leads, Policy()))
    pairs = elig.pairs[["lead_id", "partner_id", "lead_index", "partner_index"]]
    found = len(pairs)
    if found < args.pairs:
        pairs = pairs.iloc[np.resize(np.arange(found), args.pairs)].reset_index(drop=True)
    pairs = pairs.iloc[: args.pairs]
    print(f"eligible pairs: {found:,} found in {t_elig:.1f} s; scoring {len(pairs):,}"
          + (" (tiled)" if found < args.pairs else ""))

    y = outcome_vector(history)
    order = np.argsort(history["assigned_at"].to_numpy(), kind="stable")
    hist = history.drop(columns=["converted"]).iloc[order].reset_index(drop=True)
    y = y[order]
    builder = FeatureBuilder()
    times = hist["assigned_at"].dt.tz_localize(None).to_numpy().astype("datetime64[ns]")
    X_hist = builder.fit_transform(hist, y, partners, time=times.astype(np.int64))
    categorical = [builder.schema_.features.index(c) for c in builder.schema_.categorical]
    print(f"features: {X_hist.shape[1]}")

    li = pairs["lead_index"].to_numpy()
    pi = pairs["partner_index"].to_numpy()
    prepared = builder.prepare(leads, partners)
    t_build, X = _timed(lambda: builder.matrix(prepared, li, pi))
    print(f"building the full {X.shape[0]:,} x {X.shape[1]} matrix alone: {t_build:.2f} s")

    rows = []
    for kind in ("gbm", "logistic"):
        est = ConversionModel(kind=kind, categorical_features=categorical,
                              calibration_split="ordered", n_threads=args.threads)
        t_fit, _ = _timed(lambda est=est: est.fit(X_hist, y))
        model = TrainedModel(builder, est)
        t_score, cpu_score, scores = _cpu_timed(
            lambda model=model: score_pairs(model, pairs, leads, partners))
        base = est.base_estimator_
        with threadpool_limits(args.threads):
            t_raw, cpu_raw, _ = _cpu_timed(lambda base=base: base.predict_proba(X))
        assert isinstance(scores, np.ndarray) and np.isfinite(scores).all()
        rows.append({
            "model": kind, "fit_s": round(t_fit, 2), "n_iter": est.n_iter_,
            "calibration": est.calibration_method_,
            "score_pairs_wall_s": round(t_score, 2), "score_pairs_cpu_s": round(cpu_score, 2),
            "raw_predict_wall_s": round(t_raw, 2), "raw_predict_cpu_s": round(cpu_raw, 2),
            "ratio_cpu": round(cpu_score / cpu_raw, 2),
            "within_10s": f"wall {'yes' if t_score <= 10 else 'no'}, "
                          f"cpu {'yes' if cpu_score <= 10 else 'no'}",
        })
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
