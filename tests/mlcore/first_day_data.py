"""Generated tables shaped like the real files a newcomer brings on the first day (issue 22).

Each reproduces what broke on a real dataset, without shipping the dataset:

* ``sorted_by_outcome``: rows ordered by the target, as statsmodels' ``fair`` is (the last
  rows all one class), no timestamp;
* ``sorted_by_feature``: rows ordered by one feature, as ``anes96`` is by income;
* ``with_missing_labels``: a binary target missing in some rows, as penguins' ``sex``;
* ``daily_series``: a regression target over days written ``2012/01/31``, as a weather
  export writes them;
* ``no_signal``: a regression target unrelated to the features, as macrodata's growth rates
  looked to a first model (it fails any gate).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def classification(rows: int, *, classes: int = 2, seed: int = 0) -> pd.DataFrame:
    """Numeric and categorical features with signal, the label named ``outcome``."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 3))
    region = rng.choice(["north", "south", "east"], rows)
    logits = np.column_stack(
        [x[:, 0] * (k - (classes - 1) / 2) + 0.6 * x[:, 1] * (k == 0) for k in range(classes)]
    ) + np.where(region == "north", 0.4, 0.0)[:, None] * (np.arange(classes) == 1)
    logits = 2.0 * logits  # clearly learnable: the tests are about the loop, not the model
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.array([f"class_{k}" for k in range(classes)])
    if classes == 2:
        labels = np.array(["no", "yes"])
    draw = (probabilities.cumsum(axis=1) > rng.uniform(size=(rows, 1))).argmax(axis=1)
    return pd.DataFrame(
        {
            "age": 40 + 10 * x[:, 0],
            "income": np.exp(10 + 0.5 * x[:, 1]),
            "tenure": 5 + 2 * x[:, 2],
            "region": region,
            "outcome": labels[draw],
        }
    )


def regression(rows: int, *, seed: int = 0, signal: float = 1.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 3))
    noise = rng.normal(scale=0.5, size=rows)
    return pd.DataFrame(
        {
            "temperature": 15 + 5 * x[:, 0],
            "humidity": 60 + 10 * x[:, 1],
            "wind": np.abs(3 + x[:, 2]),
            "station": rng.choice(["a", "b", "c"], rows),
            "demand": 100 + signal * (8 * x[:, 0] - 4 * x[:, 1]) + noise * (1 + 9 * (signal == 0)),
        }
    )


def sorted_by_outcome(frame: pd.DataFrame, target: str = "outcome") -> pd.DataFrame:
    return frame.sort_values(target, kind="stable").reset_index(drop=True)


def sorted_by_feature(frame: pd.DataFrame, feature: str) -> pd.DataFrame:
    return frame.sort_values(feature, kind="stable").reset_index(drop=True)


def with_missing_labels(
    frame: pd.DataFrame, *, count: int, target: str = "outcome"
) -> pd.DataFrame:
    out = frame.copy()
    rows = np.random.default_rng(5).choice(len(out), size=count, replace=False)
    out[target] = out[target].astype(object)
    out.loc[rows, target] = None
    return out


def daily_series(rows: int, *, seed: int = 0) -> pd.DataFrame:
    """A regression table with one row per day, its date written year/month/day."""
    frame = regression(rows, seed=seed)
    days = pd.date_range("2012-01-01", periods=rows, freq="D")
    frame.insert(0, "date", days.strftime("%Y/%m/%d"))
    return frame


def time_ordered(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with an hourly ISO timestamp in row order."""
    out = frame.copy()
    out["recorded_at"] = pd.date_range("2024-01-01", periods=len(out), freq="h").astype(str)
    return out
