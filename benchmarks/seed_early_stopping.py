"""Seed early stopping on the example: compute saved vs the full search, and the expected-best gap.

The seed search of examples/seed_search (20 seeds of a classifier head on cached MiniLM-L6
embeddings of BBC News, 3 epochs each) is run twice, side by side:

* the **full search**: every seed trained for 3 epochs, its dev accuracy also taken after
  0.75 epochs (free: training resumes where it stopped, so the models are the same);
* the **early-stopped search** (Dodge et al. 2020): every seed trained for 0.75 epochs,
  the best 5 continued to 3 epochs, with `halving.run_search`.

Compute is given in epochs (the schedule's cost), and as measured wall and CPU seconds.
Expected validation performance: the full search's is `evp.expected_max` of the 20 final
accuracies; the early-stopped search's is `halving.expected_best_early_stopped` on the
same trials (exact data: every seed's score after 0.75 and 3 epochs is known here); the
full search at the early-stopped search's budget is `expected_max` at
``k = floor(26.25 / 3) = 8`` seeds.

Targets: at least 50% of the epochs saved; expected best dev accuracy within 1 point of
the full search's. Exits 1 on a miss. Usage: ``python benchmarks/seed_early_stopping.py``.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parents[1] / "examples" / "seed_search"))

import numpy as np
import seedsearch
import torch

from pytest_greennlp.evp import expected_max
from pytest_greennlp.halving import (
    Rung,
    Schedule,
    expected_best_early_stopped,
    one_round,
    run_search,
)
from pytest_greennlp.measure.codecarbon_data import cpu_model_name

SEEDS, EPOCHS, FRACTION, KEEP = 20, 3.0, 0.25, 5
MIN_SAVED, MAX_GAP = 0.50, 0.01


def spent(result: object, key: str) -> float:
    return sum(t.cost.get(key, 0.0) for t in result.trials)  # type: ignore[attr-defined]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=20000, help="resamples for the early-stopped EVP")
    options = parser.parse_args()
    print(f"machine: {cpu_model_name() or platform.processor()}, {os.cpu_count()} cores, "
          f"{platform.system()} {platform.release()}, Python {platform.python_version()}, "
          f"torch {torch.__version__}")

    data = seedsearch.load_embeddings()
    stopped_schedule = one_round(SEEDS, EPOCHS, fraction=FRACTION, keep=KEEP)
    full_schedule = Schedule((Rung(SEEDS, FRACTION * EPOCHS), Rung(SEEDS, EPOCHS)), kind="full")
    full = run_search(seedsearch.make_step(data), SEEDS, full_schedule)
    early = run_search(seedsearch.make_step(data), SEEDS, stopped_schedule)

    table = np.array([t.scores for t in full.trials], dtype=np.float64)
    for trial in early.trials:  # the same seeds reach the same models
        assert trial.scores == list(table[trial.index, : len(trial.scores)]), trial.index
    final = table[:, -1]
    k_same = math.floor(stopped_schedule.cost_units() / EPOCHS)
    e_full, e_same = expected_max(final, ks=[SEEDS, k_same])
    e_early = expected_best_early_stopped(table, [r.trials for r in stopped_schedule.rungs], draws=options.draws)
    corr = float(np.corrcoef(table[:, 0], table[:, 1])[0, 1])

    units_full, units_early = full_schedule.cost_units(), stopped_schedule.cost_units()
    saved = 1 - units_early / units_full
    gap = float(e_full) - e_early
    rows = [
        ("epochs", units_full, units_early, f"{saved:.1%} saved"),
        ("wall seconds (measured)", spent(full, "wall_s"), spent(early, "wall_s"),
         f"{1 - spent(early, 'wall_s') / spent(full, 'wall_s'):.1%} saved"),
        ("CPU seconds (measured)", spent(full, "cpu_s"), spent(early, "cpu_s"),
         f"{1 - spent(early, 'cpu_s') / spent(full, 'cpu_s'):.1%} saved"),
        ("expected best dev accuracy", float(e_full), e_early, f"gap {gap * 100:+.2f} points"),
        ("best dev accuracy found", float(final.max()),
         max(t.score for t in early.trials if t.status == "finished" and t.score is not None), ""),
    ]
    print(f"{SEEDS} seeds x {EPOCHS:g} epochs; early stopping after {FRACTION:.0%} of the budget, "
          f"{KEEP} continued; dev set {seedsearch.N_DEV} articles")
    print(f"{'':30}{'full search':>14}{'early-stopped':>16}")
    for name, a, b, note in rows:
        print(f"{name:30}{a:>14.4f}{b:>16.4f}   {note}")
    print(f"full search at the early-stopped budget ({k_same} seeds x {EPOCHS:g} epochs = "
          f"{k_same * EPOCHS:g} epochs): expected best {float(e_same):.4f}")
    print(f"correlation of dev accuracy after {FRACTION * EPOCHS:g} and {EPOCHS:g} epochs over seeds: {corr:+.2f}")
    ok_saved, ok_gap = saved >= MIN_SAVED, gap <= MAX_GAP
    print(f"targets: epochs saved >= {MIN_SAVED:.0%}: {'PASS' if ok_saved else 'FAIL'}; "
          f"expected-best gap <= {MAX_GAP * 100:g} point: {'PASS' if ok_gap else 'FAIL'}")
    return 0 if ok_saved and ok_gap else 1


if __name__ == "__main__":
    sys.exit(main())
