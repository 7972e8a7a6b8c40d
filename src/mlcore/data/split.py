"""Deterministic train/validation/test splits and content fingerprints for lineage."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlcore.data.spec import DatasetSpec
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
) -> Split:
    """Split rows into train, validation and test.

    With ``by_time`` and a timestamp in the spec, the most recent rows become the
    test set (then validation), which is how a model meets the future in production.
    Otherwise rows are shuffled with ``seed``: the same data and seed always give the
    same split.
    """
    if not 0 < validation_fraction < 1 or not 0 < test_fraction < 1:
        raise DataError("validation_fraction and test_fraction must each be between 0 and 1")
    if validation_fraction + test_fraction >= 1:
        raise DataError(
            f"validation_fraction + test_fraction = {validation_fraction + test_fraction} leaves no training rows; "
            "keep their sum below 1"
        )
    n = len(frame)
    n_test = round(n * test_fraction)
    n_val = round(n * validation_fraction)
    if n - n_test - n_val < 1 or n_test < 1 or n_val < 1:
        raise DataError(f"{n} rows are too few to split into train, validation and test")
    if by_time:
        if not spec.timestamp:
            raise DataError("by_time splitting needs a timestamp column in the dataset spec")
        order = np.argsort(
            pd.to_datetime(frame[spec.timestamp], utc=True).to_numpy(), kind="stable"
        )
    else:
        order = np.random.default_rng(seed).permutation(n)
    ordered = frame.iloc[order].reset_index(drop=True)
    n_train = n - n_val - n_test
    return Split(
        train=ordered.iloc[:n_train].reset_index(drop=True),
        validation=ordered.iloc[n_train : n_train + n_val].reset_index(drop=True),
        test=ordered.iloc[n_train + n_val :].reset_index(drop=True),
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
