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
* ``sample.parquet``: a seeded sample of reference rows (features only), what
  the domain classifier compares current rows with;
* ``statistics.json`` and ``constraints.json``: the same reference in SageMaker
  Model Monitor's baseline formats, for people and tools used to them.

Columns have a role: ``feature`` (the spec's features), ``prediction`` (model
outputs, checked for prediction drift) or ``label`` (the target, checked for
label drift when current data carries it). Predictions may come from other
rows than the features (held-out or out-of-fold predictions; see
``mlcore.train``): ``prediction_source`` says which.
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
from mlcore.drift.monitor_formats import baseline_constraints, baseline_statistics
from mlcore.drift.profiles import profile, profile_from_dict, remember_profile
from mlcore.drift.results import Role
from mlcore.drift.summaries import (
    CategoricalSummary,
    ColumnSummary,
    Kind,
    NumericSummary,
)
from mlcore.errors import DataError, ModelError
from mlcore.settings import DriftSettings

logger = logging.getLogger(__name__)

BASELINE_FORMAT_VERSION = 2
BASELINE_FILE = "baseline.json"
SAMPLE_FILE = "sample.parquet"


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
    # Every column of the data the baseline was built from: current columns beyond these are extra.
    reference_columns: tuple[str, ...] = ()
    sample: pd.DataFrame | None = None
    prediction_source: str | None = None

    @property
    def prediction_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.role == "prediction")

    @property
    def label_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.role == "label")

    def column(self, name: str) -> ColumnBaseline:
        for column in self.columns:
            if column.name == name:
                return column
        raise DataError(
            f"the baseline has no column {name!r}; it has {[c.name for c in self.columns]}"
        )

    def save(self, directory: str | Path) -> Path:
        """Write the baseline folder (see the module docstring) and return its path."""
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
                    n_not_numeric=column.summary.n_not_numeric,
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
                "reference_columns": list(self.reference_columns),
                "prediction_source": self.prediction_source,
                "columns": described,
            },
        )
        if self.sample is not None:
            self.sample.to_parquet(directory / SAMPLE_FILE, index=False)
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
                    n_not_numeric=entry.get("n_not_numeric", 0),
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
        sample_path = directory / SAMPLE_FILE
        try:
            settings = DriftSettings.model_validate(document["settings"])
        except ValueError as exc:
            raise ModelError(f"drift baseline {directory} holds invalid settings: {exc}") from exc
        return cls(
            spec=DatasetSpec.from_dict(document["spec"]),
            columns=tuple(columns),
            rows=int(document["rows"]),
            settings=settings,
            created_at=document.get("created_at", ""),
            reference_columns=tuple(document.get("reference_columns", ())),
            sample=pd.read_parquet(sample_path) if sample_path.is_file() else None,
            prediction_source=document.get("prediction_source"),
        )


def build_baseline(
    frame: pd.DataFrame,
    spec: DatasetSpec,
    settings: DriftSettings | None = None,
    *,
    prediction_columns: Sequence[str] = (),
    predictions: pd.DataFrame | None = None,
    prediction_source: str | None = None,
    workers: int | None = None,
) -> Baseline:
    """Summarise the reference ``frame``: the spec's features, its target when present (label
    drift) and the prediction columns.

    Prediction columns are read from ``predictions`` when given (predictions of
    other rows than ``frame``'s, such as out-of-fold ones), else from ``frame``.
    A prediction column is numeric when its dtype is (a score, a regression
    output) and categorical otherwise (class labels).
    """
    settings = settings or DriftSettings()
    if frame.shape[0] == 0:
        raise DataError("the reference data has no rows; a baseline needs data to describe")
    source = frame if predictions is None else predictions
    plan = column_plan(frame, spec, (), side="reference")
    prediction_only: dict[str, tuple[Kind, Role]] = {
        name: (prediction_kind(source[name], spec, name=name), "prediction")
        for name in prediction_columns
    }
    column_plan(source, spec, prediction_columns, side="reference", require_features=False)
    summaries = summarise_columns(frame, plan, workers=workers)
    summaries.update(summarise_columns(source, prediction_only, workers=workers))
    plan.update(prediction_only)
    columns = tuple(
        ColumnBaseline(
            name=name,
            kind=kind,
            role=role,
            summary=summaries[name],
            dtype=str((frame if role != "prediction" else source)[name].dtype),
        )
        for name, (kind, role) in plan.items()
    )
    known = list(dict.fromkeys([*map(str, frame.columns), *prediction_columns]))
    return Baseline(
        spec=spec,
        columns=columns,
        rows=int(frame.shape[0]),
        settings=settings,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        reference_columns=tuple(known),
        sample=feature_sample(frame, spec, rows=settings.domain_classifier.max_rows),
        prediction_source=prediction_source
        if prediction_source is not None
        else ("reference rows" if prediction_columns else None),
    )


def feature_sample(frame: pd.DataFrame, spec: DatasetSpec, *, rows: int) -> pd.DataFrame:
    """At most ``rows`` rows of the features, typed as the drift tests read them (floats for
    numeric features, text or missing for categorical ones): the rows with the smallest hash of
    their content (``sketches.RowSample``), so every engine picks the same rows from the same
    data, whatever its order or partitioning."""
    from mlcore.drift.sketches import RowSample

    return RowSample.of_rows(frame, spec, size=rows).rows


def column_plan(
    frame: pd.DataFrame,
    spec: DatasetSpec,
    prediction_columns: Sequence[str],
    *,
    side: str,
    require_features: bool = True,
) -> dict[str, tuple[Kind, Role]]:
    """Kind and role of every column of ``frame`` to check: features (all required unless
    ``require_features`` is False), the target when present, and the prediction columns."""
    absent = [c for c in prediction_columns if c not in frame.columns]
    if require_features:
        absent = [c for c in spec.features if c not in frame.columns] + absent
    if absent:
        raise DataError(
            f"the {side} data lacks column(s) {absent}; it has {list(frame.columns)}. "
            "Give data with the model's feature columns (and prediction columns, if checked)"
        )
    overlap = set(prediction_columns) & ({*spec.features, spec.target})
    if overlap:
        raise DataError(
            f"prediction column(s) {sorted(overlap)} are also features or the target in the spec"
        )
    plan: dict[str, tuple[Kind, Role]] = {}
    for name in spec.numeric:
        if name in frame.columns:
            plan[name] = ("numeric", "feature")
    for name in spec.categorical:
        if name in frame.columns:
            plan[name] = ("categorical", "feature")
    if spec.target in frame.columns:
        # Label drift: the target's distribution, when the data carries it.
        plan[spec.target] = ("categorical" if spec.task == "classification" else "numeric", "label")
    for name in prediction_columns:
        plan[name] = (prediction_kind(frame[name], spec, name=name), "prediction")
    return plan


def prediction_kind(values: pd.Series, spec: DatasetSpec, *, name: str = "") -> Kind:
    """A model output is categorical when it is a class label: text, or, for a classifier,
    whole numbers (class codes); scores, class probabilities (``probability_<class>``, numeric
    even when every value is 0 or 1) and regression outputs are numeric."""
    from mlcore.model import PROBABILITY_PREFIX

    dtype = values.dtype
    if name.startswith(PROBABILITY_PREFIX) and pd.api.types.is_float_dtype(dtype):
        return "numeric"
    if not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
        return "categorical"
    if spec.task == "classification":
        numbers = values.dropna().to_numpy(dtype=np.float64)
        if numbers.size and np.all(numbers == np.round(numbers)):
            return "categorical"
    return "numeric"


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
