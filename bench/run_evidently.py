"""Benchmark runner: Evidently 0.7.23 DataDriftPreset, in bench/.venvs/evidently.

``--config default`` is the preset as shipped (at this size: normalised
Wasserstein for numeric and Jensen-Shannon for categorical columns, threshold
0.1). ``--config matched`` asks for the tests mlcore uses by default: KS for
numeric and chi-squared for categorical, at p < 0.05. Evidently's "chisquare"
is a goodness-of-fit test that takes the reference proportions as exact,
where mlcore tests homogeneity of the two samples.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))

from protocol import DATA_DIR, emit, load_spec, timed

# Evidently reports a p-value for these tests (drift when below the threshold) and a
# distance for the rest (drift when at or above it).
P_VALUE_METHODS = {
    "ks",
    "chisquare",
    "z",
    "g_test",
    "fisher_exact",
    "t_test",
    "mannw",
    "anderson",
    "cramer_von_mises",
    "epps_singleton",
    "empirical_mmd",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", choices=("default", "matched"), default="default")
    parser.add_argument("--data", type=Path, default=DATA_DIR)
    args = parser.parse_args()

    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    spec = load_spec(args.data)
    reference = pd.read_parquet(args.data / "reference.parquet")
    current = pd.read_parquet(args.data / "current.parquet")
    definition = DataDefinition(
        numerical_columns=spec["numeric"], categorical_columns=spec["categorical"]
    )
    if args.config == "default":
        preset = DataDriftPreset()
    else:
        preset = DataDriftPreset(
            num_method="ks", cat_method="chisquare", num_threshold=0.05, cat_threshold=0.05
        )

    def compute() -> dict[str, bool]:
        snapshot = Report([preset]).run(
            Dataset.from_pandas(current, data_definition=definition),
            Dataset.from_pandas(reference, data_definition=definition),
        )
        verdicts = {}
        for metric in snapshot.dict()["metrics"]:
            config = metric["config"]
            if config.get("type") != "evidently:metric_v2:ValueDrift":
                continue
            value, threshold = float(metric["value"]), float(config["threshold"])
            if config["method"] in P_VALUE_METHODS:
                verdicts[config["column"]] = value < threshold
            else:
                verdicts[config["column"]] = value >= threshold
        return verdicts

    verdicts, seconds = timed(compute)
    emit(f"evidently ({args.config})", seconds, verdicts)


if __name__ == "__main__":
    main()
