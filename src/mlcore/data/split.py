"""Deterministic train/validation/test splits and content fingerprints for lineage.

The one rule for cutting rows into parts (prep's train, validation and test; the demo's
history and live period):

* time-ordered (a timestamp, ``by_time``): the earliest rows come first, the latest last;
  row order is never taken as time;
* otherwise shuffled with the seed; for a classification target each class is shuffled and
  shared out on its own (stratified), so every part holds every class whenever the class
  has a row for each part;
* a classification part that lacks a class of the target is an error naming the class,
  since a model or a gate measured without it would mislead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlcore.data.spec import DatasetSpec
from mlcore.data.validate import require_evaluation_rows
from mlcore.errors import DataError


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame


def split_frame(
    frame: pd.DataFrame,
    spec: DatasetSpec,
    *,
    validation_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 42,
    by_time: bool = False,
    min_test_rows: int = 1,
) -> Split:
    """Split rows into train, validation and test (see the module docstring for the rule).

    With ``by_time`` the most recent rows become the test set (then validation), which is
    how a model meets the future in production. Otherwise rows are shuffled with ``seed``,
    class by class for a classification target: the same data and seed always give the
    same split.

    Raises
    ------
    DataError
        Fractions that leave no training rows, too few rows for three parts, a test part
        under ``min_test_rows`` (``gate.min_evaluation_rows``), or a classification part
        lacking a class of the target (named).
    """
    if not 0 < validation_fraction < 1 or not 0 < test_fraction < 1:
        raise DataError("validation_fraction and test_fraction must each be between 0 and 1")
    if validation_fraction + test_fraction >= 1:
        raise DataError(
            f"validation_fraction + test_fraction = {validation_fraction + test_fraction} leaves no training rows; "
            "keep their sum below 1"
        )
    train, validation, test = partition(
        frame,
        spec,
        shares=(validation_fraction, test_fraction),
        names=("train", "validation", "test"),
        seed=seed,
        by_time=by_time,
    )
    require_evaluation_rows(
        len(test),
        min_test_rows,
        what=f"the test split ({test_fraction:.0%} of {len(frame)} rows; training.test_fraction)",
    )
    return Split(train=train, validation=validation, test=test)


def partition(
    frame: pd.DataFrame,
    spec: DatasetSpec,
    *,
    shares: Sequence[float],
    names: Sequence[str],
    seed: int,
    by_time: bool,
) -> list[pd.DataFrame]:
    """``frame`` cut into ``len(shares) + 1`` parts named ``names``: the first part gets the
    rows the ``shares`` of the others leave (see the module docstring for the rule)."""
    n = len(frame)
    if by_time:
        if not spec.timestamp:
            raise DataError("by_time splitting needs a timestamp column in the dataset spec")
        order = np.argsort(
            pd.to_datetime(frame[spec.timestamp], utc=True).to_numpy(), kind="stable"
        )
        parts = _cut(np.asarray(order), shares)
    elif spec.task == "classification" and spec.target in frame.columns:
        parts = _stratified(frame[spec.target], shares, seed=seed, names=names)
    else:
        parts = _cut(np.random.default_rng(seed).permutation(n), shares)
    if any(len(part) == 0 for part in parts):
        raise DataError(f"{n} rows are too few to split into {', '.join(names)}; give more rows")
    frames = [frame.iloc[part].reset_index(drop=True) for part in parts]
    if spec.task == "classification" and spec.target in frame.columns:
        _require_every_class(frame, frames, spec, names=names, by_time=by_time)
    return frames


def _cut(order: np.ndarray, shares: Sequence[float]) -> list[np.ndarray]:
    sizes = [round(len(order) * share) for share in shares]
    first = len(order) - sum(sizes)
    bounds = np.cumsum([max(first, 0), *sizes])
    return [order[start:end] for start, end in zip([0, *bounds[:-1]], bounds, strict=True)]


def _stratified(
    target: pd.Series, shares: Sequence[float], *, seed: int, names: Sequence[str]
) -> list[np.ndarray]:
    """Each class shuffled and cut on its own, at least one row of it in every part."""
    rng = np.random.default_rng(seed)
    codes, labels = pd.factorize(target, sort=True, use_na_sentinel=False)
    parts: list[list[np.ndarray]] = [[] for _ in range(len(shares) + 1)]
    too_few = []
    for code, label in enumerate(labels):
        rows = rng.permutation(np.flatnonzero(codes == code))
        sizes = [max(1, round(len(rows) * share)) for share in shares]
        if len(rows) - sum(sizes) < 1:
            too_few.append(f"{label!r} ({len(rows)} rows)")
            continue
        bounds = np.cumsum([len(rows) - sum(sizes), *sizes])
        for index, (start, end) in enumerate(zip([0, *bounds[:-1]], bounds, strict=True)):
            parts[index].append(rows[start:end])
    if too_few:
        raise DataError(
            f"classes {', '.join(too_few)} of {target.name!r} have fewer rows than the "
            f"{len(names)} parts ({', '.join(names)}), each of which needs every class: "
            "gather more rows of them, merge them into another class, or drop their rows"
        )
    # Rows of one part are shuffled across classes, so no part is sorted by its label.
    return [rng.permutation(np.concatenate(part)) for part in parts]


def _require_every_class(
    frame: pd.DataFrame,
    parts: Sequence[pd.DataFrame],
    spec: DatasetSpec,
    *,
    names: Sequence[str],
    by_time: bool,
) -> None:
    classes = frame[spec.target].dropna().unique()
    problems = []
    for name, part in zip(names, parts, strict=True):
        present = set(part[spec.target].dropna().unique())
        missing = [label for label in classes if label not in present]
        if missing:
            counts = frame[spec.target].value_counts()
            problems.append(
                f"the {name} part has no rows of class "
                + ", ".join(f"{label!r} ({counts[label]} rows in all)" for label in missing)
            )
    if problems:
        why = (
            f" The rows are ordered by {spec.timestamp!r}: a class that occurs only early or "
            "only late cannot be in every part (training.split: random shares rows out class "
            "by class)."
            if by_time
            else ""
        )
        raise DataError(
            "every part of a classification target needs every class: "
            + "; ".join(problems)
            + f".{why} Fix {spec.target!r}: gather more rows of those classes, merge them "
            "into another class, or drop their rows"
        )


def fingerprint(frame: pd.DataFrame) -> str:
    """A sha256 of the table's content: column names, dtypes and every value, in row order.

    The same table loaded from CSV or Parquet with the same dtypes gives the same
    fingerprint; any changed value, column or row order gives a different one.
    """
    digest = hashlib.sha256()
    for name, dtype in frame.dtypes.items():
        digest.update(f"{name}\x1f{dtype}\x1e".encode())
    row_hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    digest.update(row_hashes.tobytes())
    return "sha256:" + digest.hexdigest()
