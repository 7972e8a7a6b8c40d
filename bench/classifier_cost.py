"""CPU cost of the domain classifier against the rest of a drift run (issue 27's target:
the classifier at most a tenth of the rest, at 200k and at 1M rows, default settings).

In one process, on bench/generate.py's frames (50 numeric + 10 categorical columns, the current
side with its planted changes), medians of --repeats runs of process CPU seconds (getrusage:
user + system, every thread):

- rest: ``detect_drift`` with the domain classifier off (every column's statistics);
- classifier: what turning it on adds, timed on its own: both sides' content-hash samples
  (``feature_sample``) and ``domain_classifier_drift`` on them (fit, AUC test, explanation).

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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate import N_CATEGORICAL, N_NUMERIC, make_frame  # noqa: E402

from mlcore.data import DatasetSpec  # noqa: E402
from mlcore.drift import detect_drift  # noqa: E402
from mlcore.drift.classifier import domain_classifier_drift  # noqa: E402
from mlcore.drift.baseline import feature_sample  # noqa: E402
from mlcore.settings import DriftSettings  # noqa: E402


def cpu_seconds(call: Callable[[], object]) -> float:
    before = resource.getrusage(resource.RUSAGE_SELF)
    call()
    after = resource.getrusage(resource.RUSAGE_SELF)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[200_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    spec = DatasetSpec(
        target="target",
        numeric=tuple(f"num_{i:02d}" for i in range(N_NUMERIC)),
        categorical=tuple(f"cat_{j}" for j in range(N_CATEGORICAL)),
    )
    settings = DriftSettings()
    off = DriftSettings(domain_classifier={"enabled": False})
    max_rows = settings.domain_classifier.max_rows
    print(f"load average before: {os.getloadavg()[0]:.2f}; workers={args.workers}")
    print("| rows a side | rest CPU s | classifier CPU s | classifier / rest | AUC | top features |")
    print("|---:|---:|---:|---:|---:|---|")
    for rows in args.rows:
        reference = make_frame(rows, seed=1, shifted=False)
        current = make_frame(rows, seed=2, shifted=True)
        rest, classifier = [], []
        result = None
        for _ in range(args.repeats):
            rest.append(
                cpu_seconds(
                    lambda: detect_drift(
                        reference, current, spec=spec, settings=off, workers=args.workers
                    )
                )
            )

            def run_classifier() -> None:
                nonlocal result
                result = domain_classifier_drift(
                    feature_sample(reference, spec, rows=max_rows),
                    feature_sample(current, spec, rows=max_rows),
                    spec=spec,
                    settings=settings,
                )

            classifier.append(cpu_seconds(run_classifier))
        assert result is not None
        top = [name for name, _ in result.parameters.get("separating_features", ())][:5]
        r, c = statistics.median(rest), statistics.median(classifier)
        print(
            f"| {rows:,} | {r:.2f} | {c:.2f} | {c / r:.2f} | {result.statistic:.3f} | "
            f"{', '.join(top)} |"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
