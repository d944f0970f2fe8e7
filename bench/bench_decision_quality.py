"""Decision quality: share of the round-robin-to-oracle gap closed, with and without the funnel.

Run: ``.venv/bin/python bench/bench_decision_quality.py [--seeds 7,1,99] [--partners 300]
[--leads 20000] [--history 50000]``

For each seed a synthetic channel is simulated (the demo's sizes by default),
the model is trained twice on its history — once reading the funnel ``stage``
column (what ``fairlead train`` does), once with ``--exclude stage``
(conversions only, the baseline in the same run) — and each model's round is
allocated under the default policy and judged by the true probabilities
(:func:`service.decision_quality.evaluate_decisions`): expected conversions of
the model's allocation, of round robin and of the optimizer fed the truth, and
the share of the gap between the last two that the model closes (the target
is 80%).  Held-out AUC and ECE are printed beside it.  This is a quality
figure, not a timing: the numbers do not depend on the machine's load.
"""

from __future__ import annotations

import argparse
import sys
import time
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from allocator.policy import DEFAULT_POLICY_TOML, policy_from_dict
from models.simulate import simulate_channel
from models.train import train_model
from service.decision_quality import evaluate_decisions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="7,1,99")
    parser.add_argument("--partners", type=int, default=300)
    parser.add_argument("--leads", type=int, default=20_000)
    parser.add_argument("--history", type=int, default=50_000)
    args = parser.parse_args()
    policy = policy_from_dict(tomllib.loads(DEFAULT_POLICY_TOML))
    print(f"{args.partners} partners, {args.leads} leads, {args.history} history rows; "
          "default policy")
    print(f"{'seed':>5} {'history':>18} {'AUC':>6} {'ECE':>7} {'model':>8} {'oracle':>8} "
          f"{'round robin':>11} {'gap closed':>10}")
    closed: dict[str, list[float]] = {"funnel stage": [], "conversions only": []}
    for seed in (int(s) for s in args.seeds.split(",")):
        channel = simulate_channel(args.partners, args.leads, args.history, seed)
        for label, exclude in (("funnel stage", ()), ("conversions only", ("stage",))):
            started = time.perf_counter()
            result = train_model(channel.history, channel.partners, exclude=exclude)
            quality = evaluate_decisions(channel, policy, result.model)
            closed[label].append(quality.gap_closed)
            print(f"{seed:>5} {label:>18} {result.metrics['auc']:>6.3f} "
                  f"{result.metrics['ece']:>7.4f} {quality.model:>8.1f} {quality.oracle:>8.1f} "
                  f"{quality.round_robin:>11.1f} {quality.gap_closed:>10.1%}"
                  f"   ({time.perf_counter() - started:.0f} s)", flush=True)
    for label, values in closed.items():
        print(f"{label}: gap closed {min(values):.1%}–{max(values):.1%}, "
              f"mean {sum(values) / len(values):.1%}")


if __name__ == "__main__":
    main()
