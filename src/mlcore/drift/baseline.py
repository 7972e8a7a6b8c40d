"""The drift baseline: the reference side of every test, computed once and saved with the model.

Training writes it to ``<model_dir>/baseline/``; each monitoring run loads it and
summarises only the current data. It holds, per column, the sorted finite
reference values (numeric) or the category counts (categorical), plus the
missing counts, so every statistic is exact. Layout of the folder:

* ``baseline.json``: format version, dataset spec, prediction columns, row
  count, the drift settings in force when it was built, and per column its kind,
  role, missing counts and (categorical) category counts;
* ``numeric/<index>.npy``: sorted float64 values of each numeric column
  (loaded memory-mapped, so a large baseline costs no memory until read);
* ``statistics.json`` and ``constraints.json``: the same reference in SageMaker
  Model Monitor's baseline formats, for people and tools used to them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlcore.data import DatasetSpec
from mlcore.drift.profiles import profile, profile_from_dict, remember_profile
from mlcore.drift.results import Role
from mlcore.drift.summaries import CategoricalSummary, ColumnSummary, Kind, NumericSummary
from mlcore.errors import DataError, ModelError
from mlcore.settings import DriftSettings

logger = logging.getLogger(__name__)

BASELINE_FORMAT_VERSION = 1
BASELINE_FILE = "baseline.json"


@dataclass(frozen=True)
class ColumnBaseline:
    name: str
    kind: Kind
    role: Role
    summary: ColumnSummary
    dtype: str = ""


@dataclass(frozen=True)
class Baseline:
    """The reference data of a model, summarised for drift detection."""

    spec: DatasetSpec
    columns: tuple[ColumnBaseline, ...]
    rows: int
    settings: DriftSettings = field(default_factory=DriftSettings)
    created_at: str = ""

    @property
    def prediction_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.role == "prediction")

    def column(self, name: str) -> ColumnBaseline:
        for column in self.columns:
            if column.name == name:
                return column
        raise DataError(
            f"the baseline has no column {name!r}; it has {[c.name for c in self.columns]}"
        )

    def save(self, directory: str | Path) -> Path:
        """Write the baseline folder (see the module docstring) and return its path."""
        from mlcore.drift.outputs import baseline_constraints, baseline_statistics
        from mlcore.jsonio import write_json

        directory = Path(directory)
        (directory / "numeric").mkdir(parents=True, exist_ok=True)
        described = []
        for index, column in enumerate(self.columns):
            entry: dict[str, Any] = {
                "name": column.name,
                "kind": column.kind,
                "role": column.role,
                "dtype": column.dtype,
                "n_missing": column.summary.n_missing,
                # Precomputed so a monitoring run does not rescan the reference.
                "profile": dataclasses.asdict(profile(column.summary)),
            }
            if isinstance(column.summary, NumericSummary):
                values_file = f"numeric/{index:04d}.npy"
                np.save(directory / values_file, column.summary.sorted_values)
                entry.update(
                    values_file=values_file,
                    n_valid=column.summary.n_valid,
                    n_posinf=column.summary.n_posinf,
                    n_neginf=column.summary.n_neginf,
                )
            else:
                entry["counts"] = column.summary.count_map()
            described.append(entry)
        write_json(
            directory / BASELINE_FILE,
            {
                "format_version": BASELINE_FORMAT_VERSION,
                "created_at": self.created_at,
                "rows": self.rows,
                "spec": self.spec.to_dict(),
                "settings": self.settings.model_dump(),
                "columns": described,
            },
        )
        write_json(directory / "statistics.json", baseline_statistics(self))
        write_json(directory / "constraints.json", baseline_constraints(self))
        logger.info("drift baseline with %d columns written to %s", len(self.columns), directory)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> Baseline:
        """Read a baseline folder written by ``save``. Raises ModelError when it is not one."""
        directory = Path(directory)
        path = directory / BASELINE_FILE
        if not path.is_file():
            raise ModelError(
                f"no drift baseline at {directory}: {BASELINE_FILE} is missing. Train a model "
                "(it writes <model_dir>/baseline/) or pass --reference DATA instead of --baseline"
            )
        document = json.loads(path.read_text())
        version = document.get("format_version")
        if version != BASELINE_FORMAT_VERSION:
            raise ModelError(
                f"drift baseline {directory} has format version {version!r}; this mlcore reads "
                f"version {BASELINE_FORMAT_VERSION}. Rebuild it by retraining with this version"
            )
        columns = []
        for entry in document["columns"]:
            summary: ColumnSummary
            if entry["kind"] == "numeric":
                values = np.load(directory / entry["values_file"], mmap_mode="r")
                summary = NumericSummary(
                    sorted_values=values,
                    n_missing=entry["n_missing"],
                    n_posinf=entry["n_posinf"],
                    n_neginf=entry["n_neginf"],
                )
            else:
                summary = CategoricalSummary.from_counts(
                    entry["counts"], n_missing=entry["n_missing"]
                )
            if "profile" in entry:
                remember_profile(summary, profile_from_dict(entry["profile"]))
            columns.append(
                ColumnBaseline(
                    name=entry["name"],
                    kind=entry["kind"],
                    role=entry["role"],
                    summary=summary,
                    dtype=entry.get("dtype", ""),
                )
            )
        return cls(
            spec=DatasetSpec.from_dict(document["spec"]),
            columns=tuple(columns),
            rows=int(document["rows"]),
            settings=DriftSettings.model_validate(document["settings"]),
            created_at=document.get("created_at", ""),
        )


def build_baseline(
    frame: pd.DataFrame,
    spec: DatasetSpec,
    settings: DriftSettings | None = None,
    *,
    prediction_columns: Sequence[str] = (),
    workers: int | None = None,
) -> Baseline:
    """Summarise the reference ``frame``: the spec's features and the given prediction columns.

    A prediction column is numeric when its dtype is (a score, a regression
    output) and categorical otherwise (class labels).
    """
    plan = column_plan(frame, spec, prediction_columns, side="reference")
    if frame.shape[0] == 0:
        raise DataError("the reference data has no rows; a baseline needs data to describe")
    summaries = summarise_columns(frame, plan, workers=workers)
    columns = tuple(
        ColumnBaseline(
            name=name, kind=kind, role=role, summary=summaries[name], dtype=str(frame[name].dtype)
        )
        for name, (kind, role) in plan.items()
    )
    return Baseline(
        spec=spec,
        columns=columns,
        rows=int(frame.shape[0]),
        settings=settings or DriftSettings(),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def column_plan(
    frame: pd.DataFrame, spec: DatasetSpec, prediction_columns: Sequence[str], *, side: str
) -> dict[str, tuple[Kind, Role]]:
    """Kind and role of every column to check, after checking that ``frame`` has them all."""
    wanted = [*spec.features, *prediction_columns]
    absent = [c for c in wanted if c not in frame.columns]
    if absent:
        raise DataError(
            f"the {side} data lacks column(s) {absent}; it has {list(frame.columns)}. "
            "Give data with the model's feature columns (and prediction columns, if checked)"
        )
    overlap = set(prediction_columns) & set(spec.features)
    if overlap:
        raise DataError(f"prediction column(s) {sorted(overlap)} are also features in the spec")
    plan: dict[str, tuple[Kind, Role]] = {}
    for name in spec.numeric:
        plan[name] = ("numeric", "feature")
    for name in spec.categorical:
        plan[name] = ("categorical", "feature")
    for name in prediction_columns:
        dtype = frame[name].dtype
        numeric = pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
        plan[name] = ("numeric" if numeric else "categorical", "prediction")
    return plan


def summarise_column(values: pd.Series, kind: Kind, *, name: str) -> ColumnSummary:
    if kind == "numeric":
        return NumericSummary.from_values(values, name=name)
    return CategoricalSummary.from_values(values)


def summarise_columns(
    frame: pd.DataFrame, plan: Mapping[str, tuple[Kind, Role]], *, workers: int | None = None
) -> dict[str, ColumnSummary]:
    """Summaries of the planned columns, in parallel threads (numpy sorts release the GIL)."""
    with ThreadPoolExecutor(max_workers=worker_count(workers, len(plan))) as pool:
        futures = {
            name: pool.submit(summarise_column, frame[name], kind, name=name)
            for name, (kind, _) in plan.items()
        }
        return {name: future.result() for name, future in futures.items()}


def worker_count(requested: int | None, tasks: int) -> int:
    if requested is not None and requested < 1:
        raise ValueError(f"workers must be at least 1, got {requested}")
    available = requested or os.cpu_count() or 1
    return max(1, min(available, tasks))
