"""CPU cost of the domain classifier against the rest of a drift run (issue 27's target:
the classifier at most a tenth of the rest, at 200k and at 1M rows, default settings).

In one process, on bench/generate.py's frames (50 numeric + 10 categorical columns, the current
side with its planted changes), medians of --repeats runs of process CPU seconds (getrusage:
user + system, every thread):

- rest: ``detect_drift`` with the domain classifier off (every column's statistics);
- classifier: what turning it on adds, timed on its own: both sides' content-hash samples
  (``feature_sample``, also shown alone) and ``domain_classifier_drift`` on them (fit, AUC test,
  explanation).

scikit-learn is imported before timing (a process pays that once, about 0.3 s). The load average
is printed before and after: on a shared machine, CPU seconds grow with the load.

Run: python bench/classifier_cost.py [--rows 200000 1000000] [--repeats 3] [--workers 1]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate import N_CATEGORICAL, N_NUMERIC, make_frame

from mlcore.data import DatasetSpec
from mlcore.drift import detect_drift
from mlcore.drift.baseline import feature_sample
from mlcore.drift.classifier import domain_classifier_drift
from mlcore.drift.results import TestResult
from mlcore.settings import DriftSettings


def cpu_seconds(call: Callable[[], object]) -> float:
    before = resource.getrusage(resource.RUSAGE_SELF)
    call()
    after = resource.getrusage(resource.RUSAGE_SELF)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure(
    rows: int, spec: DatasetSpec, repeats: int, workers: int
) -> tuple[float, float, float, TestResult]:
    """Median CPU seconds of the rest, of the classifier and of its samples (part of the
    classifier's), and the classifier's last result."""
    reference = make_frame(rows, seed=1, shifted=False)
    current = make_frame(rows, seed=2, shifted=True)
    settings = DriftSettings()
    off = DriftSettings(domain_classifier={"enabled": False})
    max_rows = settings.domain_classifier.max_rows
    results: list[TestResult] = []
    sampling: list[float] = []

    def run_rest() -> None:
        detect_drift(reference, current, spec=spec, settings=off, workers=workers)

    def run_classifier() -> None:
        samples: list[pd.DataFrame] = []
        sampling.append(
            cpu_seconds(
                lambda: samples.extend(
                    feature_sample(side, spec, rows=max_rows) for side in (reference, current)
                )
            )
        )
        results.append(domain_classifier_drift(*samples, spec=spec, settings=settings))

    rest = [cpu_seconds(run_rest) for _ in range(repeats)]
    classifier = [cpu_seconds(run_classifier) for _ in range(repeats)]
    return (
        statistics.median(rest),
        statistics.median(classifier),
        statistics.median(sampling),
        results[-1],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[200_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    import sklearn.ensemble  # noqa: F401  (once per process: not counted as the classifier's)

    spec = DatasetSpec(
        target="target",
        numeric=tuple(f"num_{i:02d}" for i in range(N_NUMERIC)),
        categorical=tuple(f"cat_{j}" for j in range(N_CATEGORICAL)),
    )
    print(f"load average before: {os.getloadavg()[0]:.2f}; workers={args.workers}")
    print(
        "| rows a side | rest CPU s | classifier CPU s | of which samples | classifier / rest "
        "| AUC | top features |"
    )
    print("|---:|---:|---:|---:|---:|---:|---|")
    for rows in args.rows:
        rest, classifier, sampling, result = measure(rows, spec, args.repeats, args.workers)
        top = [name for name, _ in result.parameters.get("separating_features", ())][:5]
        print(
            f"| {rows:,} | {rest:.2f} | {classifier:.2f} | {sampling:.2f} | {classifier / rest:.2f} | "
            f"{result.statistic:.3f} | {', '.join(top)} |"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
