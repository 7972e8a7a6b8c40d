"""Training: one code path for SageMaker training jobs, Azure ML command jobs, CI and laptops.

``train_model`` fits and returns a :class:`~mlcore.model.ModelBundle`. Two thin
front ends feed it: ``train_from_paths`` (explicit paths, the Azure ML and local
style) and ``run_sagemaker_training`` (the SageMaker training contract: channels,
hyperparameters.json, ``/opt/ml/model``, ``/opt/ml/output/failure``).
"""

from __future__ import annotations

import json
import logging
import os
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from threadpoolctl import threadpool_limits

from mlcore.atomic import check_output_dir, staged_output
from mlcore.data import (
    DatasetSpec,
    coerce_features,
    fingerprint,
    load_table,
    validate_frame,
)
from mlcore.errors import ConfigError
from mlcore.evaluate import evaluate_model
from mlcore.job_failure import MAX_REASON_BYTES, fit_reason
from mlcore.jsonio import write_json
from mlcore.lineage import git_state, library_versions
from mlcore.model import (
    BASELINE_DIR,
    METADATA_FILE,
    PREDICTION_COLUMN,
    PROBABILITY_PREFIX,
    SAMPLE_REQUEST_FILE,
    SCORE_COLUMN,
    ModelBundle,
    probability_column,
    sample_request,
)
from mlcore.pipeline_factory import build_pipeline
from mlcore.prep import resolve_spec
from mlcore.problem import class_metadata
from mlcore.settings import DatasetSettings, DriftSettings, TrainingSettings

if TYPE_CHECKING:
    from mlcore.tracking import TrackingTarget


logger = logging.getLogger(__name__)

# Hyperparameters that configure mlcore itself rather than the estimator.
_CONTROL_KEYS = (
    "target",
    "algorithm",
    "estimator",
    "seed",
    "git_commit",
    "git_dirty",
    "task",
    "timestamp",
)
# prep writes these beside train/: `mlcore train --data <prep>/train` finds them.
SPEC_FILE = "spec.json"
VALIDATION_DIR = "validation"


def train_model(
    train: pd.DataFrame,
    spec: DatasetSpec,
    settings: TrainingSettings,
    *,
    validation: pd.DataFrame | None = None,
    commit: str | None = None,
    dirty: bool | None = None,
) -> ModelBundle:
    """Fit the configured pipeline on ``train``; the same data and settings give the same model.

    Metadata records the algorithm (or the ``estimator`` factory), hyperparameters, seed,
    the training data's fingerprint, the git commit and whether the work tree was dirty,
    library versions and, when ``validation`` is given, its metrics.
    """
    validate_frame(train, spec)
    if validation is not None:
        validate_frame(validation, spec)
    pipeline, hyperparameters = build_pipeline(spec, training=settings)
    threads = settings.thread_count()
    with threadpool_limits(limits=threads):
        pipeline.fit(coerce_features(train, spec), train[spec.target])
    git = git_state(commit, dirty=dirty)
    metadata: dict[str, Any] = {
        "algorithm": settings.model_name,
        "hyperparameters": hyperparameters,
        "seed": settings.seed,
        "data_fingerprint": fingerprint(train),
        "training_rows": len(train),
        # training.threads resolved; the out-of-fold refits for the drift baseline use it too.
        "training_threads": threads,
        "git_commit": git.commit,
        "git_dirty": git.dirty,
        "library_versions": library_versions(),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if settings.estimator is not None:
        metadata["estimator"] = settings.estimator
        metadata["preprocess"] = settings.preprocess
    if spec.task == "classification":
        # Classes, and for a binary target the positive label and decision threshold.
        metadata.update(class_metadata(spec, pipeline.classes_, train[spec.target]))
    bundle = ModelBundle(pipeline=pipeline, spec=spec, metadata=metadata)
    if validation is not None:
        bundle.metadata["validation_metrics"] = evaluate_model(bundle, validation)
        bundle.metadata["validation_fingerprint"] = fingerprint(validation)
    return bundle


# Held-out rows give the prediction baseline on their own from this many rows; below it the
# baseline adds out-of-fold predictions of the training rows (a 22-row baseline is noise).
MIN_HELD_OUT_PREDICTIONS = 1000
OUT_OF_FOLD_SPLITS = 5


def save_trained_model(
    bundle: ModelBundle,
    model_dir: str | Path,
    *,
    reference: pd.DataFrame | None = None,
    training: pd.DataFrame | None = None,
    drift_settings: DriftSettings | None = None,
    reference_source: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the model and, beside it, the drift baseline and the sample request.

    ``model_dir`` must be new, empty or written by mlcore unless ``overwrite`` (see
    :mod:`mlcore.atomic`).

    ``reference`` is held-out data (the validation split) and ``training`` the
    rows the model was fitted on; give either or both. The feature (and label)
    baseline describes all of them. The prediction baseline is never in-sample:
    the model's predictions on the held-out rows when there are at least
    ``MIN_HELD_OUT_PREDICTIONS`` of them (or no training rows were given), else
    out-of-fold predictions of the training rows (each predicted by the same
    pipeline fitted on the other folds) together with the held-out ones. Which
    one was used is recorded as ``prediction_source`` in the baseline and in
    ``metadata.json``. Classifiers are monitored on the predicted-class mix
    (``prediction``) and the score, multiclass ones also on every class's
    probability (``probability_<class>``); regressors on the prediction.

    The sample request is the first rows of ``reference`` (of ``training`` when
    there is no held-out data); ``reference_source`` ("validation" or "train",
    by default which of the two it was) is recorded in the metadata so nobody
    mistakes in-sample rows for held-out ones.
    """
    from mlcore.drift import build_baseline  # the drift engine is needed only when saving

    target = check_output_dir(model_dir, what="model folder", overwrite=overwrite)
    request_rows = reference if reference is not None else training
    if request_rows is None:
        raise ConfigError("give the held-out rows (reference=) or the training rows (training=)")
    request = sample_request(request_rows, bundle.spec)
    bundle.metadata["sample_request_source"] = reference_source or (
        "validation" if reference is not None else "train"
    )
    frames = [f for f in (training, reference) if f is not None]
    described = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    predictions, source = _baseline_predictions(bundle, training=training, held_out=reference)
    prediction_columns = tuple(
        c
        for c in predictions.columns
        if c in (PREDICTION_COLUMN, SCORE_COLUMN) or str(c).startswith(PROBABILITY_PREFIX)
    )
    bundle.metadata["drift_baseline"] = {
        "rows": int(described.shape[0]),
        "prediction_rows": int(predictions.shape[0]),
        "prediction_source": source,
        "prediction_columns": list(prediction_columns),
    }
    columns = [c for c in (*bundle.spec.features, bundle.spec.target) if c in described.columns]
    baseline = build_baseline(
        described[columns],
        bundle.spec,
        drift_settings or DriftSettings(),
        prediction_columns=prediction_columns,
        predictions=predictions,
        prediction_source=source,
    )
    # Everything lands in a staging folder first: a full disk never leaves a model folder that
    # loads without its baseline (metadata.json, which loading needs, is published last).
    with staged_output(target, last=(METADATA_FILE,), overwrite=overwrite) as stage:
        bundle.save(stage)
        write_json(stage / SAMPLE_REQUEST_FILE, request)
        baseline.save(stage / BASELINE_DIR)
    return target


def reference_with_predictions(bundle: ModelBundle, frame: pd.DataFrame) -> pd.DataFrame:
    """The feature columns of ``frame`` beside the model's predictions: what serving captures."""
    predictions = bundle.predict(frame)
    features = frame[list(bundle.spec.features)]
    return pd.concat([features.reset_index(drop=True), predictions.reset_index(drop=True)], axis=1)


def monitored_outputs(bundle: ModelBundle, frame: pd.DataFrame) -> pd.DataFrame:
    """The model outputs prediction drift watches: ``predict``'s columns and, for a multiclass
    model, every class's probability (the top class's alone hides a shift between two others)."""
    outputs = bundle.predict(frame)
    if bundle.spec.task != "classification" or len(bundle.classes) <= 2:
        return outputs
    probabilities = bundle.predict_proba(frame)
    probabilities.columns = pd.Index([probability_column(c) for c in probabilities.columns])
    return pd.concat([outputs, probabilities.set_axis(outputs.index)], axis=1)


def _baseline_predictions(
    bundle: ModelBundle, *, training: pd.DataFrame | None, held_out: pd.DataFrame | None
) -> tuple[pd.DataFrame, str]:
    """Predictions for the prediction baseline, never of rows the model was fitted on."""
    held = (
        monitored_outputs(bundle, held_out).reset_index(drop=True) if held_out is not None else None
    )
    enough = held is not None and held.shape[0] >= MIN_HELD_OUT_PREDICTIONS
    if held is not None and (enough or training is None):
        return held, f"held-out rows ({held.shape[0]})"
    folds = None if training is None else _out_of_fold_predictions(bundle, training)
    if folds is None:
        if held is not None:
            return held, f"held-out rows ({held.shape[0]}; too few rows per class for folds)"
        raise ConfigError(
            "cannot build a prediction baseline that is not in-sample: no held-out rows were "
            "given and some class has fewer than 2 training rows for out-of-fold predictions; "
            "give validation data"
        )
    parts = [folds] if held is None else [folds, held]
    combined = pd.concat(parts, ignore_index=True)
    described = (
        f"out-of-fold predictions of {folds.shape[0]} training rows ({OUT_OF_FOLD_SPLITS}-fold)"
    )
    if held is not None:
        described += f" and held-out rows ({held.shape[0]})"
    return combined, described


def _out_of_fold_predictions(bundle: ModelBundle, training: pd.DataFrame) -> pd.DataFrame | None:
    """Each training row predicted by the same pipeline fitted on the other folds."""
    from sklearn.base import clone
    from sklearn.model_selection import KFold, StratifiedKFold

    spec, target = bundle.spec, training[bundle.spec.target]
    seed = int(bundle.metadata.get("seed", 0))
    splitter: KFold | StratifiedKFold
    if spec.task == "classification":
        # Every fold's training part must hold every class, so the scores mean the same thing.
        splits = min(OUT_OF_FOLD_SPLITS, int(target.value_counts().min()))
        if splits < 2:
            return None
        splitter = StratifiedKFold(n_splits=splits, shuffle=True, random_state=seed)
    else:
        splits = min(OUT_OF_FOLD_SPLITS, int(training.shape[0]))
        if splits < 2:
            return None
        splitter = KFold(n_splits=splits, shuffle=True, random_state=seed)
    parts = []
    threads = int(bundle.metadata.get("training_threads") or 1)
    for fit_rows, predict_rows in splitter.split(training, target):
        with threadpool_limits(limits=threads):
            fitted = clone(bundle.pipeline).fit(
                coerce_features(training.iloc[fit_rows], spec), target.iloc[fit_rows]
            )
        fold = ModelBundle(pipeline=fitted, spec=spec, metadata=bundle.metadata)
        parts.append(monitored_outputs(fold, training.iloc[predict_rows]).set_axis(predict_rows))
    return pd.concat(parts).sort_index().reset_index(drop=True)


def split_hyperparameters(raw: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Separate mlcore's control keys (target, algorithm, seed, ...) from estimator hyperparameters."""
    control = {k: raw[k] for k in _CONTROL_KEYS if k in raw}
    model = {k: v for k, v in raw.items() if k not in _CONTROL_KEYS}
    return control, model


def train_from_paths(
    *,
    data: str | Path,
    model_dir: str | Path,
    settings: TrainingSettings,
    target: str | None = None,
    validation: str | Path | None = None,
    spec_path: str | Path | None = None,
    dataset: DatasetSettings | None = None,
    drift_settings: DriftSettings | None = None,
    commit: str | None = None,
    dirty: bool | None = None,
    tracking: TrackingTarget | None = None,
    overwrite: bool = False,
) -> ModelBundle:
    """Load the data, resolve the spec and train; ``tracking`` logs the run to MLflow.

    The spec is the given file; else, when ``data`` is prep's ``train/`` folder and no
    ``target`` overrides it, prep's ``spec.json`` beside it; else it is resolved from
    ``dataset`` (the settings) as prep resolves it, with ``target`` replacing
    ``dataset.target``. Validation data defaults to prep's ``validation/`` beside ``train/``.
    A ``target`` that contradicts a given spec is refused (ConfigError), never ignored.
    """
    # Before any work, not after training.
    check_output_dir(model_dir, what="model folder", overwrite=overwrite)
    spec_path, validation = _prep_outputs_beside(
        Path(data), spec_path=spec_path, validation=validation, explicit_target=target
    )
    if spec_path is not None:
        spec = DatasetSpec.load(spec_path)
        if target is not None and target != spec.target:
            # Which would win is no guess to leave to the reader: a spec says its target.
            raise ConfigError(
                f"the target {target!r} (--target, or the training job's target "
                f"hyperparameter) contradicts the dataset spec {spec_path}, whose target is "
                f"{spec.target!r}: give the spec's target or none, or run prep again with "
                f"target {target!r} (dataset.target in the settings) so its spec.json says so"
            )
        train = load_table(data)
    elif target is not None or dataset is not None:
        train = load_table(data)
        declared = dataset if dataset is not None else DatasetSettings(target=str(target))
        spec = resolve_spec(train, declared, target=target)
    else:
        raise ConfigError("give the target column (--target) or a dataset spec file (--spec)")
    validation_frame = load_table(validation) if validation is not None else None
    bundle = train_model(
        train, spec, settings, validation=validation_frame, commit=commit, dirty=dirty
    )
    if validation_frame is None:
        logger.warning(
            "no validation data: the sample request uses training rows and the prediction "
            "baseline out-of-fold predictions of them"
        )

    def save() -> None:
        save_trained_model(
            bundle,
            model_dir,
            reference=validation_frame,
            training=train,
            drift_settings=drift_settings,
            overwrite=overwrite,
        )

    if tracking is None:
        save()
    else:
        from mlcore.tracking import RUN_ID_KEY, log_training, tracked_run

        # The run is opened first so that metadata.json records its id.
        with tracked_run(tracking, run_name=f"{tracking.project} train") as run:
            bundle.metadata[RUN_ID_KEY] = run.run_id
            save()
            datasets = {"training": (train, str(data))}
            if validation_frame is not None:
                datasets["validation"] = (validation_frame, str(validation))
            log_training(run, Path(model_dir), datasets=datasets)
        logger.info("tracked as MLflow run %s at %s", run.run_id, tracking.uri)
    logger.info("model written to %s", model_dir)
    return bundle


def _prep_outputs_beside(
    data: Path,
    *,
    spec_path: str | Path | None,
    validation: str | Path | None,
    explicit_target: str | None,
) -> tuple[Path | None, Path | None]:
    """prep's spec.json and validation/ next to its train/ folder, when not given explicitly."""
    folder = data if data.is_dir() else data.parent
    if folder.name != "train":
        return (Path(spec_path) if spec_path else None), (Path(validation) if validation else None)
    root = folder.parent
    if spec_path is None and explicit_target is None and (root / SPEC_FILE).is_file():
        spec_path = root / SPEC_FILE
        logger.info("using the dataset spec prep wrote: %s", spec_path)
    if validation is None and (root / VALIDATION_DIR).is_dir():
        validation = root / VALIDATION_DIR
        logger.info("using the validation split prep wrote: %s", validation)
    return (Path(spec_path) if spec_path else None), (Path(validation) if validation else None)


@dataclass(frozen=True)
class SageMakerTrainingPaths:
    """The SageMaker training container contract, read from the ``SM_*`` variables.

    Framework containers set these variables; a bring-your-own container sees the
    fixed ``/opt/ml`` paths, which are the defaults here. ``root`` lets the local
    run emulate the layout in a folder.
    """

    model_dir: Path
    input_config_dir: Path
    output_dir: Path
    channels: dict[str, Path]

    @classmethod
    def from_environ(
        cls, environ: Mapping[str, str] | None = None, *, root: str | Path = "/opt/ml"
    ) -> SageMakerTrainingPaths:
        env = os.environ if environ is None else environ
        root = Path(root)
        data_root = root / "input" / "data"
        channels: dict[str, Path] = {}
        if data_root.is_dir():
            channels.update({p.name: p for p in sorted(data_root.iterdir()) if p.is_dir()})
        for key, value in env.items():
            if key.startswith("SM_CHANNEL_"):
                channels[key.removeprefix("SM_CHANNEL_").lower()] = Path(value)
        return cls(
            model_dir=Path(env.get("SM_MODEL_DIR", root / "model")),
            input_config_dir=Path(env.get("SM_INPUT_CONFIG_DIR", root / "input" / "config")),
            output_dir=Path(env.get("SM_OUTPUT_DIR", root / "output")),
            channels=channels,
        )

    def hyperparameters(self, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
        path = self.input_config_dir / "hyperparameters.json"
        if path.exists():
            loaded: dict[str, Any] = json.loads(path.read_text())
            return loaded
        env = os.environ if environ is None else environ
        if "SM_HPS" in env:
            from_env: dict[str, Any] = json.loads(env["SM_HPS"])
            return from_env
        return {}


def run_sagemaker_training(
    *,
    root: str | Path = "/opt/ml",
    environ: Mapping[str, str] | None = None,
    base_settings: TrainingSettings | None = None,
    drift_settings: DriftSettings | None = None,
    dataset: DatasetSettings | None = None,
    tracking: TrackingTarget | None = None,
) -> int:
    """Train under the SageMaker contract. Returns the process exit code.

    Hyperparameters ``target``, ``algorithm``, ``estimator``, ``seed``, ``git_commit`` and
    ``git_dirty`` configure mlcore; the rest go to the estimator. Without a ``spec`` channel
    the spec is resolved from ``dataset`` (the settings) as prep resolves it.
    On failure the reason goes to ``<output>/failure`` (SageMaker shows it as the
    job's FailureReason) and the exit code is 1.
    """
    paths = SageMakerTrainingPaths.from_environ(environ, root=root)
    try:
        control, model_hps = split_hyperparameters(paths.hyperparameters(environ))
        if "train" not in paths.channels:
            raise ConfigError(
                f"no 'train' channel: expected data under {Path(root) / 'input' / 'data' / 'train'} "
                f"or SM_CHANNEL_TRAIN; channels present: {sorted(paths.channels)}"
            )
        settings = _container_settings(base_settings or TrainingSettings(), control, model_hps)
        spec_dir = paths.channels.get("spec")
        spec_path = spec_dir / SPEC_FILE if spec_dir and (spec_dir / SPEC_FILE).exists() else None
        train_from_paths(
            data=paths.channels["train"],
            validation=paths.channels.get("validation"),
            model_dir=paths.model_dir,
            settings=settings,
            target=control.get("target"),
            spec_path=spec_path,
            dataset=dataset,
            drift_settings=drift_settings,
            commit=control.get("git_commit"),
            dirty=_flag(control.get("git_dirty")),
            tracking=tracking,
        )
    except Exception as exc:
        # Every failure, not only mlcore's own: SageMaker shows this file as the job's
        # FailureReason, and an empty reason leaves the operator with an exit code.
        paths.output_dir.mkdir(parents=True, exist_ok=True)
        (paths.output_dir / "failure").write_text(
            fit_reason(f"{type(exc).__name__}: {exc}", MAX_REASON_BYTES - 1) + "\n"
        )
        logger.error("training failed: %s\n%s", exc, traceback.format_exc())
        return 1
    return 0


def _container_settings(
    base: TrainingSettings, control: Mapping[str, Any], model_hps: Mapping[str, Any]
) -> TrainingSettings:
    """The settings' training section with the job's hyperparameters applied.

    A custom ``estimator`` (from the settings or the job) takes precedence over the
    ``algorithm`` hyperparameter, which pipelines always pass.
    """
    estimator = control.get("estimator") or base.estimator
    if estimator is None and control.get("algorithm", base.algorithm) != base.algorithm:
        # Another algorithm starts from its own defaults, not the settings' algorithm's.
        base = base.with_algorithm(str(control["algorithm"]))
    update: dict[str, Any] = {"seed": int(control.get("seed", base.seed)), "estimator": estimator}
    if model_hps:
        update["hyperparameters"] = {**base.hyperparameters, **model_hps}
    return base.model_copy(update=update)


def _flag(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    return None
