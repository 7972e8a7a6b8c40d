"""The prep step: read raw data, resolve its spec, validate, split and record lineage.

Outputs (the contract with the training step): ``train/train.parquet``,
``validation/validation.parquet``, ``test/test.parquet``, ``spec.json`` and
``lineage.json`` under one output folder, each sub-folder a SageMaker processing
output or an Azure ML output of its own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mlcore.atomic import check_output_dir, staged_output
from mlcore.data import (
    DatasetSpec,
    Split,
    check_declared_columns,
    fingerprint,
    infer_spec,
    load_table,
    save_table,
    split_frame,
    validate_frame,
)
from mlcore.data.profile import id_like_features
from mlcore.errors import ConfigError
from mlcore.jsonio import write_json
from mlcore.problem import BINARY, choose_positive_label, problem_type_of
from mlcore.settings import DatasetSettings, MlopsSettings, TrainingSettings

SPLITS = ("train", "validation", "test")

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PrepResult:
    spec: DatasetSpec
    split: Split
    lineage: dict[str, Any]
    output_dir: Path


def resolve_spec(
    frame: pd.DataFrame, dataset: DatasetSettings, *, target: str | None = None
) -> DatasetSpec:
    """The spec declared in settings, with any feature types not declared inferred from dtypes.

    Every command that starts from raw data resolves its spec here, so prep, train and the
    demo agree. Each column the settings name must exist (a misspelt id, timestamp or slice
    column is an error naming it), and a feature whose values never repeat is reported as a
    probable id.
    """
    target = target or dataset.target
    check_declared_columns(
        frame,
        {
            "the target (dataset.target or --target)": [target],
            "dataset.timestamp": [dataset.timestamp] if dataset.timestamp else [],
            "dataset.id_columns": dataset.id_columns,
            "dataset.slice_columns": dataset.slice_columns,
            "dataset.numeric": dataset.numeric or [],
            "dataset.categorical": dataset.categorical or [],
        },
    )
    spec = infer_spec(
        frame,
        target=target,
        timestamp=dataset.timestamp,
        task=dataset.task,
        numeric=dataset.numeric,
        categorical=dataset.categorical,
        exclude=dataset.id_columns,
        positive_label=dataset.positive_label,
        decision_threshold=dataset.decision_threshold,
    )
    declared = {*(dataset.numeric or ()), *(dataset.categorical or ())}
    inferred = [c for c in spec.features if c not in declared]
    for column in id_like_features(frame, inferred):
        logger.warning(
            "column %r has a different value in every row, like an id: as a feature the model "
            "would memorise it. Declare it in dataset.id_columns in the settings file (or list "
            "it under dataset.numeric / dataset.categorical if it really is a feature).",
            column,
        )
    return spec


def split_method(spec: DatasetSpec, training: TrainingSettings) -> str:
    """``training.split`` resolved: "auto" is "time" when the spec has a timestamp, else "random"."""
    if training.split == "auto":
        return "time" if spec.timestamp else "random"
    if training.split == "time" and not spec.timestamp:
        raise ConfigError(
            "training.split is 'time' but the data has no timestamp column: set "
            "dataset.timestamp to a column of the data, or training.split to 'random'"
        )
    return training.split


def prepare(
    frame: pd.DataFrame,
    spec: DatasetSpec,
    settings: MlopsSettings,
    output_dir: str | Path,
    *,
    source: str,
    overwrite: bool = False,
) -> PrepResult:
    """Validate and split ``frame`` and write the prep outputs.

    ``output_dir`` must be new, empty or written by mlcore unless ``overwrite`` (see
    :mod:`mlcore.atomic`).

    Settings that cannot fit this data fail here, before any training: gate metrics of
    another problem type, a positive label that is not one of the target's classes.
    """
    validate_frame(frame, spec)
    problem_type = problem_type_of(spec.task, frame[spec.target])
    settings.gate.for_problem(problem_type)
    if spec.positive_label is not None and problem_type == BINARY:
        choose_positive_label(frame[spec.target], spec.positive_label)
    elif spec.positive_label is not None:
        raise ConfigError(
            f"dataset.positive_label is set ({spec.positive_label!r}) but {spec.target!r} is "
            f"{problem_type.replace('_', ' ')}; a positive label applies to binary targets only"
        )
    training = settings.training
    method = split_method(spec, training)
    split = split_frame(
        frame,
        spec,
        validation_fraction=training.validation_fraction,
        test_fraction=training.test_fraction,
        seed=training.seed,
        by_time=method == "time",
    )
    out = Path(output_dir)
    lineage = {
        "source": source,
        "data_fingerprint": fingerprint(frame),
        "rows": len(frame),
        "split_rows": {name: len(getattr(split, name)) for name in SPLITS},
        "split_fingerprints": {name: fingerprint(getattr(split, name)) for name in SPLITS},
        "seed": training.seed,
        "split": method,
    }
    # Published whole or not at all; the files later steps read first are moved in last.
    with staged_output(out, last=("spec.json", "lineage.json"), overwrite=overwrite) as stage:
        for name in SPLITS:
            save_table(getattr(split, name), stage / name / f"{name}.parquet")
        spec.save(stage / "spec.json")
        write_json(stage / "lineage.json", lineage)
    return PrepResult(spec=spec, split=split, lineage=lineage, output_dir=out)


def run_prep(
    *,
    data: str | Path | None = None,
    output_dir: str | Path,
    settings: MlopsSettings,
    target: str | None = None,
    overwrite: bool = False,
) -> PrepResult:
    """Prep ``data``, or the settings' ``dataset.path`` when no data is given."""
    check_output_dir(output_dir, overwrite=overwrite)  # before any work
    if data is None:
        if settings.dataset.path is None:
            raise ConfigError(
                "no data to prep: give --data, or set dataset.path in the settings file "
                "(mlcore init writes it)"
            )
        data = settings.dataset.path
    frame = load_table(data)
    spec = resolve_spec(frame, settings.dataset, target=target)
    return prepare(frame, spec, settings, output_dir, source=str(data), overwrite=overwrite)
