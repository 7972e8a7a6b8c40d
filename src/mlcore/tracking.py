"""MLflow tracking of ``mlcore train`` and ``mlcore evaluate``: optional, and never in the hot path.

Both clouds host MLflow (SageMaker managed MLflow, and every Azure ML workspace is a
tracking server), so a run logged here is browsable wherever the job ran:

* the tracking URI in force: ``tracking.uri``, else ``$MLFLOW_TRACKING_URI`` (what the
  AWS job wiring passes and what Azure ML sets in its jobs), else on a workstation an
  embedded SQLite store under ``out/mlflow`` (``mlflow ui`` browses it), else (inside
  a SageMaker container with no URI) nothing;
* training logs params, validation metrics, the model with a signature and an input
  example (the model's own ``sample_request.json``), ``metadata.json`` and the sample
  request, and writes the run id into ``metadata.json`` (``mlflow_run_id``);
* evaluation logs into the training run when the store holds it (into the job's own
  run inside an Azure ML job), with evaluation and champion metrics, slice metrics,
  ``evaluation.json``, ``gate.json`` and the model card.

mlflow is the optional extra ``mlcore[tracking]``: this module imports it only when a
run is tracked, so without it (or with tracking off) training and evaluation are unchanged.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import re
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcore.errors import ConfigError, MlcoreError, TrackingError
from mlcore.settings import MlopsSettings

if TYPE_CHECKING:
    from mlcore.model import ModelBundle

logger = logging.getLogger(__name__)

#: Overrides ``tracking.enabled``: "true"/"on", "false"/"off" or "auto".
TRACKING_ENV_VAR = "MLCORE_TRACKING"
#: Key of the MLflow run id in metadata.json, gate.json and every registry's metadata.
RUN_ID_KEY = "mlflow_run_id"
#: Where a workstation's runs go when no tracking URI is set, relative to the working directory.
LOCAL_STORE = Path("out") / "mlflow"
# SageMaker mounts /opt/ml into every training, processing and serving container.
_SAGEMAKER_ROOT = Path("/opt/ml")
_SQLITE = "sqlite:///"
# MLflow keys accept letters, digits, and _ - . space : / only.
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. :/]")
_MAX_PARAM_LENGTH = 6000
_MAX_TAG_LENGTH = 5000


@dataclass(frozen=True)
class TrackingTarget:
    """Where runs go: the tracking URI, the experiment, and (local store) its artifact folder."""

    uri: str
    experiment: str
    project: str
    # The embedded store's folder (created on first use); None for a tracking server.
    local_root: Path | None = None

    @property
    def artifact_location(self) -> str | None:
        return (self.local_root / "artifacts").as_uri() if self.local_root else None


def mlflow_installed() -> bool:
    try:
        return importlib.util.find_spec("mlflow") is not None
    except (ImportError, ValueError):  # ValueError: sys.modules holds None (blocked)
        return False


def local_store_uri(root: Path) -> str:
    """The tracking URI of the embedded store in ``root`` (what ``mlflow ui --backend-store-uri`` takes)."""
    return f"{_SQLITE}{root.resolve() / 'mlflow.db'}"


def resolve_tracking(
    settings: MlopsSettings,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    local_root: Path | None = None,
) -> TrackingTarget | None:
    """Where this process tracks its runs, or None when it does not.

    ``local_root`` places the embedded store (default ``<cwd>/out/mlflow``).

    Raises
    ------
    ConfigError
        When tracking is required (``enabled: true``) but mlflow is not installed, or
        ``MLCORE_TRACKING`` holds something other than true/false/on/off/auto.
    """
    env = os.environ if environ is None else environ
    enabled = _enabled(env.get(TRACKING_ENV_VAR), settings.tracking.enabled)
    if enabled is False:
        return None
    if not mlflow_installed():
        if enabled is True:
            raise ConfigError(
                "tracking.enabled is true but mlflow is not installed: "
                'pip install "mlcore[tracking]", or set tracking.enabled: auto'
            )
        logger.info("mlflow is not installed: this run is not tracked (mlcore[tracking])")
        return None
    uri = settings.tracking.uri or env.get("MLFLOW_TRACKING_URI") or None
    if uri is not None:
        # A SQLite file named by URI keeps its artifacts beside it, not in ./mlruns of whatever
        # directory the command runs in (MLflow's default).
        local_root = Path(uri.removeprefix(_SQLITE)).parent if uri.startswith(_SQLITE) else None
    else:
        if _SAGEMAKER_ROOT.is_dir():
            logger.info(
                "no MLFLOW_TRACKING_URI in this SageMaker container: this run is not tracked"
            )
            return None
        local_root = (local_root or (cwd or Path.cwd()) / LOCAL_STORE).resolve()
        uri = local_store_uri(local_root)
    return TrackingTarget(
        uri=uri,
        experiment=settings.experiment_name,
        project=settings.project,
        local_root=local_root,
    )


def _enabled(override: str | None, configured: bool | str) -> bool | str:
    if override is None or override == "":
        return configured
    value = override.strip().lower()
    if value in ("1", "true", "on", "yes"):
        return True
    if value in ("0", "false", "off", "no"):
        return False
    if value == "auto":
        return "auto"
    raise ConfigError(f"{TRACKING_ENV_VAR}={override!r}: use true, false or auto")


@contextmanager
def tracked_run(
    target: TrackingTarget, *, run_name: str, resume: str | None = None
) -> Iterator[TrackedRun]:
    """An MLflow run open for the block: resumed when ``resume`` names a run the store holds.

    Inside an Azure ML job (``MLFLOW_RUN_ID`` set) it is always the job's own run, so the
    job's Metrics tab shows what mlcore logs. The run ends FAILED when the block raises;
    a failure of MLflow itself is a :class:`TrackingError` naming the tracking URI.
    """
    mlflow = _mlflow()
    if target.local_root is not None:
        target.local_root.mkdir(parents=True, exist_ok=True)
    previous_uri = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(target.uri)
    try:
        with _reported(target, "start a run"):
            client = mlflow.MlflowClient(tracking_uri=target.uri)
            if os.environ.get("MLFLOW_RUN_ID"):
                run = mlflow.start_run()
            elif resume is not None and _run_exists(client, resume):
                run = mlflow.start_run(run_id=resume)
            else:
                run = mlflow.start_run(
                    experiment_id=_experiment_id(client, target), run_name=run_name
                )
            mlflow.set_tags({"mlcore.project": target.project})
        tracked = TrackedRun(
            run_id=run.info.run_id, target=target, resumed=run.info.run_id == resume
        )
        try:
            yield tracked
        except BaseException:
            mlflow.end_run(status="FAILED")
            raise
        with _reported(target, "end the run"):
            mlflow.end_run()
    finally:
        mlflow.set_tracking_uri(previous_uri)


@dataclass(frozen=True)
class TrackedRun:
    run_id: str
    target: TrackingTarget
    # True when an evaluation continues the run its model was trained in.
    resumed: bool = False


def log_training(run: TrackedRun, model_dir: Path) -> None:
    """Params, validation metrics, tags, metadata, sample request and the model of a training run."""
    from mlcore.model import METADATA_FILE, SAMPLE_REQUEST_FILE, ModelBundle

    bundle = ModelBundle.load(model_dir)
    metadata = bundle.metadata
    mlflow = _mlflow()
    with _reported(run.target, "log the training run"):
        mlflow.log_params(_training_params(bundle))
        mlflow.log_metrics(
            _finite(
                {f"validation_{k}": v for k, v in metadata.get("validation_metrics", {}).items()}
            )
        )
        mlflow.set_tags(_lineage_tags(bundle, kind="train"))
        for name in (METADATA_FILE, SAMPLE_REQUEST_FILE):
            if (model_dir / name).is_file():
                mlflow.log_artifact(str(model_dir / name), artifact_path="mlcore")
        _log_model(bundle, model_dir)


def log_evaluation(run: TrackedRun, *, model_dir: Path, output_dir: Path) -> None:
    """Evaluation metrics, slice metrics, the gate and the model card, from the evaluation's files.

    An evaluation that could not continue its training run logs the model's params and
    the model too, so every run holds the model it measured.
    """
    from mlcore.evaluate import metrics_from_document
    from mlcore.model import ModelBundle

    bundle = ModelBundle.load(model_dir)
    gate = json.loads((output_dir / "gate.json").read_text())
    metrics = metrics_from_document(json.loads((output_dir / "evaluation.json").read_text()))
    values = {f"evaluation_{k}": v for k, v in metrics.items()}
    values.update({f"champion_{k}": v for k, v in (gate.get("champion") or {}).items()})
    values["gate_passed"] = 1.0 if gate.get("passed") else 0.0
    slices_file = output_dir / "slice_metrics.json"
    if slices_file.is_file():
        values.update(_slice_metrics(json.loads(slices_file.read_text())))
    mlflow = _mlflow()
    with _reported(run.target, "log the evaluation"):
        if not run.resumed:
            mlflow.log_params(_training_params(bundle))
            mlflow.set_tags(_lineage_tags(bundle, kind="evaluate"))
            training_run = bundle.metadata.get(RUN_ID_KEY)
            if training_run:
                mlflow.set_tag("mlcore.training_run_id", training_run)
            _log_model(bundle, model_dir)
        mlflow.log_metrics(_finite(values))
        mlflow.set_tags(
            {
                "mlcore.gate": "passed" if gate.get("passed") else "failed",
                "mlcore.gate_reasons": "; ".join(gate.get("reasons", []))[:_MAX_TAG_LENGTH],
            }
        )
        for path in sorted(output_dir.iterdir()):
            if path.is_file():
                mlflow.log_artifact(str(path), artifact_path="evaluation")


def track_evaluation(target: TrackingTarget, *, model_dir: Path, output_dir: Path) -> str:
    """Log an evaluation's outputs into its model's training run (or a new run); the run id."""
    from mlcore.model import METADATA_FILE, unpack_model_dir

    folder = unpack_model_dir(model_dir)
    training_run = json.loads((folder / METADATA_FILE).read_text()).get(RUN_ID_KEY)
    with tracked_run(target, run_name=f"{target.project} evaluate", resume=training_run) as run:
        log_evaluation(run, model_dir=folder, output_dir=output_dir)
    logger.info("evaluation tracked in MLflow run %s at %s", run.run_id, target.uri)
    return run.run_id


def _training_params(bundle: Any) -> dict[str, str]:
    metadata, spec = bundle.metadata, bundle.spec
    params: dict[str, Any] = {
        "algorithm": metadata.get("algorithm"),
        "estimator": metadata.get("estimator"),
        "seed": metadata.get("seed"),
        "task": spec.task,
        "target": spec.target,
        "features": len(spec.features),
        "training_rows": metadata.get("training_rows"),
        "data_fingerprint": metadata.get("data_fingerprint"),
    }
    for name, value in (metadata.get("hyperparameters") or {}).items():
        params[f"hp.{_key(name)}"] = value
    return {
        key: (value if isinstance(value, str) else json.dumps(value))[:_MAX_PARAM_LENGTH]
        for key, value in params.items()
        if value is not None
    }


def _lineage_tags(bundle: ModelBundle, *, kind: str) -> dict[str, str]:
    metadata = bundle.metadata
    tags = {"mlcore.kind": kind, "mlcore.model_sha256": str(bundle.sha256)}
    commit = metadata.get("git_commit")
    if commit:
        # MLflow's own tag: the UI links the run to its commit.
        tags["mlflow.source.git.commit"] = str(commit)
    dirty = metadata.get("git_dirty")
    tags["mlcore.git_dirty"] = "unknown" if dirty is None else str(bool(dirty)).lower()
    return tags


def _slice_metrics(slices: Mapping[str, Mapping[str, Mapping[str, float]]]) -> dict[str, float]:
    """``{"region": {"north": {"auc": 0.8}}}`` as ``slice/region/north/auc``: grouped in the UI."""
    return {
        f"slice/{_key(column)}/{_key(value)}/{_key(metric)}": number
        for column, by_value in slices.items()
        for value, values in by_value.items()
        for metric, number in values.items()
    }


def _log_model(bundle: Any, model_dir: Path) -> None:
    """The fitted pipeline as an MLflow model, signed with the sample request's rows."""
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature

    import mlcore
    from mlcore.data import coerce_features
    from mlcore.model import SAMPLE_REQUEST_FILE

    request = json.loads((model_dir / SAMPLE_REQUEST_FILE).read_text())
    example = coerce_features(pd.DataFrame(request["instances"]), bundle.spec)
    signature = infer_signature(example, bundle.pipeline.predict(example))
    # The pipeline may hold mlcore classes (XGBoost's label encoding) and the team's own
    # estimator module: ship both with the model so it loads without this repository.
    code_paths = [str(Path(mlcore.__file__).parent)]
    estimator = bundle.metadata.get("estimator")
    if estimator:
        code_paths.append(_package_dir(str(estimator).split(":")[0]))
    # The pickle-format warning is for loading strangers' files; this is our own model, and
    # model.joblib (what mlcore serves) is a pickle too.
    sklearn_logger = logging.getLogger("mlflow.sklearn")
    level = sklearn_logger.level
    sklearn_logger.setLevel(logging.ERROR)
    try:
        _log_sklearn(mlflow, bundle, example, signature, code_paths)
    finally:
        sklearn_logger.setLevel(level)


def _log_sklearn(
    mlflow: Any, bundle: Any, example: Any, signature: Any, code_paths: list[str]
) -> None:
    mlflow.sklearn.log_model(
        bundle.pipeline,
        name="model",
        signature=signature,
        input_example=example,
        # Stated rather than inferred: inference re-imports the model in a subprocess (seconds).
        pip_requirements=_pip_requirements(bundle.metadata),
        code_paths=code_paths,
        # mlcore serves model.joblib (a pickle) already; skops would refuse custom estimators.
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
    )


def _pip_requirements(metadata: Mapping[str, Any]) -> list[str]:
    versions = metadata.get("library_versions") or {}
    names = ["scikit-learn", "numpy", "pandas", "scipy", "joblib", "xgboost-cpu", "xgboost"]
    names.append("lightgbm")
    return [f"{name}=={versions[name]}" for name in names if name in versions]


def _package_dir(module_name: str) -> str:
    spec = importlib.util.find_spec(module_name.split(".")[0])
    if spec is None or spec.origin is None:
        raise ConfigError(f"cannot locate the estimator's package {module_name!r} to log with it")
    origin = Path(spec.origin)
    return str(origin.parent if origin.name == "__init__.py" else origin)


def _finite(values: Mapping[str, Any]) -> dict[str, float]:
    # NaN (AUC of a single-class slice, say) says "not defined": leave it out rather than plot it.
    return {
        key: float(value)
        for key, value in values.items()
        if isinstance(value, int | float) and math.isfinite(float(value))
    }


def _key(text: object) -> str:
    return _KEY_UNSAFE.sub("_", str(text))[:250]


def _run_exists(client: Any, run_id: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        client.get_run(run_id)
    except MlflowException:
        return False
    return True


def _experiment_id(client: Any, target: TrackingTarget) -> str:
    experiment = client.get_experiment_by_name(target.experiment)
    if experiment is not None:
        return str(experiment.experiment_id)
    return str(
        client.create_experiment(target.experiment, artifact_location=target.artifact_location)
    )


def _mlflow() -> Any:
    try:
        import mlflow
    except ImportError as exc:  # resolve_tracking checked; this is a broken install
        raise ConfigError(
            f'mlflow cannot be imported ({exc}): pip install "mlcore[tracking]"'
        ) from exc
    return mlflow


@contextmanager
def _reported(target: TrackingTarget, action: str) -> Iterator[None]:
    """MLflow's own failures as a TrackingError that says where and how to go on."""
    try:
        with _quiet():
            yield
    except MlcoreError:
        raise
    except Exception as exc:
        raise TrackingError(
            f"MLflow tracking could not {action} at {target.uri}: {type(exc).__name__}: {exc}. "
            f"Fix the tracking URI (tracking.uri, MLFLOW_TRACKING_URI) or set {TRACKING_ENV_VAR}=off "
            "to run without tracking."
        ) from exc


@contextmanager
def _quiet() -> Iterator[None]:
    # MLflow's dependencies warn about their own deprecations (SQLAlchemy, pandas) on every
    # run, and MLflow narrates its store migrations: none of it is the user's to act on.
    mlflow_logger = logging.getLogger("mlflow")
    level = mlflow_logger.level
    mlflow_logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            # MLflow's advice about its own type hints and formats, raised from its modules.
            warnings.filterwarnings("ignore", module=r"mlflow(\.|$)")
            yield
    finally:
        mlflow_logger.setLevel(level)
