"""Generate the benchmark data once: 1M reference + 1M current rows, 50 numeric + 10 categorical.

Deterministic (fixed seeds) and written to Parquet under bench/data/, so every
tool reads the same bytes. The current data carries known changes, so the
verdicts of the tools can be compared: shifted and rescaled numeric columns, a
shift too small to matter (1% of a standard deviation: significant at this n,
but not an effect), a missing-rate rise, re-weighted categories and a new
category. Run: python bench/generate.py [--rows N] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

logger = logging.getLogger("bench.generate")

N_NUMERIC = 50
N_CATEGORICAL = 10
SHIFTED = {f"num_{i:02d}": 0.5 for i in range(0, 5)}  # mean shift in reference std units
RESCALED = {f"num_{i:02d}": 1.6 for i in range(5, 8)}  # spread multiplied
TINY_SHIFT = {"num_08": 0.01}  # real but negligible: must not count as drift
MORE_MISSING = {"num_09": 0.10}  # missing rate from 2% to 12%; values unchanged
REWEIGHTED = {"cat_0", "cat_1"}
NEW_CATEGORY = {"cat_2"}


def numeric_column(rng: np.random.Generator, index: int, rows: int) -> np.ndarray:
    """Five families in turn, ties included (rounded and integer-valued columns)."""
    family = index % 5
    if family == 0:
        return rng.normal(50, 10, rows)
    if family == 1:
        return rng.lognormal(3, 0.6, rows)
    if family == 2:
        return rng.gamma(2.0, 15.0, rows).round(1)
    if family == 3:
        return rng.uniform(0, 100, rows)
    return rng.poisson(4, rows).astype(np.float64)


def categorical_column(
    rng: np.random.Generator, index: int, rows: int, *, shifted: bool
) -> pd.Series:
    cardinality = (3, 5, 8, 12, 20, 30, 50, 4, 6, 10)[index]
    weights = np.linspace(1, 3, cardinality)
    labels = np.array([f"c{index}_{k}" for k in range(cardinality)], dtype=object)
    name = f"cat_{index}"
    if shifted and name in REWEIGHTED:
        weights = weights[::-1] ** 1.5
    values = rng.choice(labels, rows, p=weights / weights.sum())
    if shifted and name in NEW_CATEGORY:
        values[rng.random(rows) < 0.08] = f"c{index}_new"
    return pd.Series(values, dtype=object)


def make_frame(rows: int, *, seed: int, shifted: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    columns: dict[str, object] = {}
    for i in range(N_NUMERIC):
        name = f"num_{i:02d}"
        values = numeric_column(rng, i, rows)
        if shifted:
            spread = float(np.std(values))
            centre = float(np.mean(values))
            if name in SHIFTED:
                values = values + SHIFTED[name] * spread
            if name in RESCALED:
                values = centre + (values - centre) * RESCALED[name]
            if name in TINY_SHIFT:
                values = values + TINY_SHIFT[name] * spread
        missing_rate = 0.02 + (MORE_MISSING.get(name, 0.0) if shifted else 0.0)
        if i % 10 == 9:  # every tenth column has missing values
            values = values.copy()
            values[rng.random(rows) < missing_rate] = np.nan
        columns[name] = values
    for j in range(N_CATEGORICAL):
        columns[f"cat_{j}"] = categorical_column(rng, j, rows, shifted=shifted)
    columns["target"] = rng.integers(0, 2, rows)
    return pd.DataFrame(columns)


CHANGES: dict[str, str] = {
    **{name: f"mean shifted by {k} reference std" for name, k in SHIFTED.items()},
    **{name: f"spread multiplied by {k}" for name, k in RESCALED.items()},
    **{
        name: f"mean shifted by only {k} std: significant at this n, too small to matter"
        for name, k in TINY_SHIFT.items()
    },
    **{
        name: f"only the missing rate changed (2% to {2 + 100 * k:.0f}%)"
        for name, k in MORE_MISSING.items()
    },
    **{name: "category frequencies re-weighted" for name in REWEIGHTED},
    **{name: "8% of values are a category the reference never had" for name in NEW_CATEGORY},
}


def expected_drift() -> dict[str, bool]:
    """The changes put into the current data: what a correct tool flags."""
    names = [f"num_{i:02d}" for i in range(N_NUMERIC)] + [f"cat_{j}" for j in range(N_CATEGORICAL)]
    changed = set(SHIFTED) | set(RESCALED) | set(MORE_MISSING) | REWEIGHTED | NEW_CATEGORY
    return {name: name in changed for name in names}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "data")
    parser.add_argument(
        "--large-parts",
        type=int,
        default=0,
        help="also write current_large/ with this many parts of --rows current rows each "
        "(for the memory-capped streaming run)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.large_parts:
        large = args.out / "current_large"
        large.mkdir(exist_ok=True)
        for part in range(args.large_parts):
            path = large / f"part-{part:03d}.parquet"
            make_frame(args.rows, seed=100 + part, shifted=True).to_parquet(path, index=False)
            logger.info("wrote %s", path)
        return
    for name, seed, shifted in (("reference", 1, False), ("current", 2, True)):
        path = args.out / f"{name}.parquet"
        make_frame(args.rows, seed=seed, shifted=shifted).to_parquet(path, index=False)
        logger.info("wrote %s", path)
    spec = {
        "target": "target",
        "numeric": [f"num_{i:02d}" for i in range(N_NUMERIC)],
        "categorical": [f"cat_{j}" for j in range(N_CATEGORICAL)],
        "task": "classification",
    }
    (args.out / "spec.json").write_text(json.dumps(spec, indent=2) + "\n")
    (args.out / "expected_drift.json").write_text(json.dumps(expected_drift(), indent=2) + "\n")


if __name__ == "__main__":
    main()
