"""Lifecycle settings shared by the local run, the AWS stacks and the Azure definitions.

One file (``mlops.yaml`` at the repository root) holds what must agree across
clouds: the dataset, training parameters, the quality gate and the drift and
monitoring thresholds. Cloud-specific settings (accounts, regions, workspaces)
live with each cloud's code. Every model forbids unknown keys so a misspelt
threshold fails loudly instead of silently keeping its default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from mlcore.errors import ConfigError
from mlcore.example_dataset import EXAMPLE_DATASET, EXAMPLE_PROJECT
from mlcore.metric_names import (
    ALL_METRICS,
    LOWER_IS_BETTER,
    METRICS_BY_PROBLEM_TYPE,
    METRICS_BY_TASK,
)
from mlcore.schedule import Schedule

# Which file is read is decided in one import-light place (the command line's help needs it
# without pydantic); re-exported here for callers that load settings.
from mlcore.settings_file import DEFAULT_SETTINGS_FILE as DEFAULT_SETTINGS_FILE
from mlcore.settings_file import SETTINGS_ENV_VAR as SETTINGS_ENV_VAR
from mlcore.settings_file import resolve_settings_path as resolve_settings_path

# What a gate may name, by task (known when the settings load) or by problem type (known
# once the classes are).
_GATEABLE_METRICS: dict[str, tuple[str, ...]] = {
    **METRICS_BY_TASK,
    **{str(k): v for k, v in METRICS_BY_PROBLEM_TYPE.items()},
}


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetSettings(_Frozen):
    """Where the training data is and how to read it.

    Every column named here must exist in the data: a misspelt name is an error, not a
    silently ignored entry. An empty section (no ``path``, no ``target``) means the built-in
    example data (:mod:`mlcore.example_dataset`), which ``mlcore demo`` generates.
    """

    path: str | None = None
    target: str
    numeric: list[str] | None = Field(
        default=None, description="declared numeric features; inferred when null"
    )
    categorical: list[str] | None = Field(
        default=None, description="declared categorical features; inferred when null"
    )
    timestamp: str | None = None
    id_columns: list[str] = Field(default_factory=list)
    task: Literal["classification", "regression"] | None = None
    slice_columns: list[str] = Field(default_factory=list)
    positive_label: str | int | float | bool | None = Field(
        default=None,
        description="the class a binary model is built to find; when null, a conventional "
        "pair gives it (1 of 0/1, true, 'yes', 'positive', ...), else the rarer training class",
    )
    decision_threshold: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="a binary model predicts the positive label when its probability "
        "reaches this; null means 0.5",
    )

    @model_validator(mode="before")
    @classmethod
    def _empty_means_the_example(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("path") is None and "target" not in data:
            return {**EXAMPLE_DATASET, **data}
        return data

    @property
    def is_example(self) -> bool:
        """True for the built-in example data (no ``path``): the demo generates it."""
        return self.path is None


HyperparameterValue = float | int | str | bool | None
# The shipped algorithm's defaults; other algorithms and estimators start from their own.
Algorithm = Literal[
    "hist_gradient_boosting",
    "random_forest",
    "logistic_regression",
    "ridge",
    "xgboost",
    "lightgbm",
]
_DEFAULT_ALGORITHM: Algorithm = "hist_gradient_boosting"


def _default_hyperparameters() -> dict[str, HyperparameterValue]:
    return {"learning_rate": 0.08, "max_iter": 200, "max_leaf_nodes": 31}


def default_hyperparameters(algorithm: str) -> dict[str, HyperparameterValue]:
    """The hyperparameters ``algorithm`` starts from: the shipped ones for the shipped
    algorithm, the library's own (none given) for every other."""
    return _default_hyperparameters() if algorithm == _DEFAULT_ALGORITHM else {}


def sized_hyperparameters(
    algorithm: str, *, training_rows: int, n_classes: int
) -> dict[str, HyperparameterValue]:
    """Hyperparameters sized to the data, as ``mlcore init`` writes them.

    For gradient boosting: early stopping on the loss of an inner validation share, so the
    number of trees follows the data (a fixed 200 trees overfit a few hundred rows until
    the model's log loss was worse than predicting the class shares), and smaller trees
    and a larger inner validation share on smaller data. ``n_classes`` is 0 for regression;
    each class needs rows in the inner validation share, so few rows per class get the
    larger share too. Other algorithms start from their library's defaults.
    """
    if algorithm != _DEFAULT_ALGORITHM:
        return default_hyperparameters(algorithm)
    rows_per_class = training_rows / n_classes if n_classes else training_rows
    small = training_rows < 2_000 or rows_per_class < 200
    leaves = 31 if training_rows >= 10_000 else 15 if training_rows >= 1_000 else 7
    return {
        "learning_rate": 0.1,
        "max_iter": 500,
        "max_leaf_nodes": leaves,
        "early_stopping": True,
        "n_iter_no_change": 10,
        "validation_fraction": 0.2 if small else 0.1,
    }


class TrainingSettings(_Frozen):
    """What to train: a built-in ``algorithm``, or your own ``estimator`` factory.

    ``estimator: "package.module:factory"`` names a callable in your repository (a class
    or a function) returning a scikit-learn-compatible estimator or pipeline; its
    ``hyperparameters`` are passed to it as keyword arguments and checked against its
    signature. With ``preprocess: true`` mlcore's imputation and one-hot encoding run
    before it; with ``false`` it receives the feature columns as they are (numbers as
    float64, categories as strings, missing values as NaN) and must handle them itself.
    """

    algorithm: Algorithm = _DEFAULT_ALGORITHM
    estimator: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$",
        description="'package.module:factory' of your own estimator; replaces algorithm",
    )
    preprocess: bool = True
    hyperparameters: dict[str, HyperparameterValue] = Field(default_factory=dict)
    seed: int = 42
    validation_fraction: float = Field(0.15, gt=0, lt=1)
    test_fraction: float = Field(0.15, gt=0, lt=1)
    split: Literal["auto", "time", "random"] = Field(
        "auto",
        description="time: the most recent rows are the test set, then validation; random: "
        "shuffled with the seed; auto: time when the data has the declared timestamp",
    )
    threads: int | Literal["auto"] = Field(
        "auto",
        description="OpenMP threads a model trains with; auto: $OMP_NUM_THREADS when set, "
        "else every core this process may use (one on a busy machine unless OpenMP waits "
        "passively)",
    )

    @model_validator(mode="after")
    def _threads_positive(self) -> TrainingSettings:
        if self.threads != "auto" and self.threads < 1:
            raise ValueError(f"training.threads must be auto or at least 1, got {self.threads}")
        return self

    def thread_count(
        self,
        environ: Mapping[str, str] | None = None,
        *,
        cores: int | None = None,
        load_average: float | None = None,
    ) -> int:
        """The threads training uses: ``threads``; for ``auto``, ``$OMP_NUM_THREADS`` (an
        operator's choice, e.g. one per test worker), else every core this process may use,
        except on a busy machine (load average at or above the cores) where OpenMP threads
        spin while they wait (its default wait policy): there one.

        ``make bench-threads`` measured why (README, "Training threads"): on a busy machine
        two spinning threads took over 150 s where one took 11 to 14 s and two threads that
        sleep while they wait (``OMP_WAIT_POLICY=PASSIVE``, which the ``mlcore`` command
        sets unless told otherwise) 4 to 11 s.
        """
        if self.threads != "auto":
            return self.threads
        env = os.environ if environ is None else environ
        explicit = env.get("OMP_NUM_THREADS", "").strip()
        if explicit.isdigit() and int(explicit) >= 1:
            return int(explicit)
        usable = cores if cores is not None else _usable_cores()
        load = load_average if load_average is not None else _load_average()
        passive = env.get("OMP_WAIT_POLICY", "").strip().upper() == "PASSIVE"
        return 1 if load >= usable and not passive else max(1, usable)

    def with_algorithm(self, algorithm: str) -> TrainingSettings:
        """These settings training ``algorithm`` instead: a different algorithm starts from its
        own default hyperparameters, never from another algorithm's (which it would refuse)."""
        if algorithm == self.algorithm and self.estimator is None:
            return self
        return self.model_copy(
            update={
                "algorithm": algorithm,
                "estimator": None,
                "hyperparameters": default_hyperparameters(algorithm),
            }
        )

    @model_validator(mode="before")
    @classmethod
    def _algorithm_defaults(cls, data: Any) -> Any:
        # The shipped defaults belong to the shipped algorithm: random_forest or a custom
        # estimator must not inherit learning_rate and max_iter it does not accept.
        if not isinstance(data, dict) or "hyperparameters" in data:
            return data
        if data.get("estimator") is None and data.get("algorithm", _DEFAULT_ALGORITHM) == (
            _DEFAULT_ALGORITHM
        ):
            return {**data, "hyperparameters": _default_hyperparameters()}
        return data

    @model_validator(mode="after")
    def _one_model_source(self) -> TrainingSettings:
        if self.estimator is not None and "algorithm" in self.model_fields_set:
            raise ValueError(
                "set training.algorithm or training.estimator, not both: the estimator "
                f"{self.estimator!r} replaces the built-in algorithm {self.algorithm!r}"
            )
        if not self.preprocess and self.estimator is None:
            raise ValueError(
                "training.preprocess: false is for your own estimator (training.estimator); "
                "the built-in algorithms need mlcore's imputation and encoding"
            )
        return self

    @property
    def model_name(self) -> str:
        """What is trained, as metadata and tracking record it: the algorithm or the factory."""
        return self.estimator or self.algorithm


def _usable_cores() -> int:
    # The cores this process may run on (a container's CPU set), not the host's count.
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _load_average() -> float:
    """The one-minute load average: processes running or waiting to run."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # not available (Windows)
        return 0.0


class TrackingSettings(_Frozen):
    """MLflow tracking of every ``mlcore train`` and ``mlcore evaluate`` (optional: ``mlcore[tracking]``).

    ``enabled``: ``auto`` tracks when mlflow is installed, ``true`` requires it, ``false``
    never tracks (the environment variable ``MLCORE_TRACKING`` overrides it). ``uri`` null
    means ``$MLFLOW_TRACKING_URI`` when set (SageMaker managed MLflow, Azure ML jobs), else a
    local store under ``out/mlflow`` on a workstation, else (inside a SageMaker container
    with no URI) no tracking. ``experiment`` null means the project name.
    """

    enabled: bool | Literal["auto"] = "auto"
    uri: str | None = None
    experiment: str | None = Field(None, min_length=1, max_length=200)


# Below this many test rows a metric's sampling error swamps any floor (Hanley and McNeil's
# standard error of an AUC of 0.75 on 15 + 15 rows is 0.09), so the gate will not decide;
# gate.min_evaluation_rows lowers it knowingly.
MIN_EVALUATION_ROWS = 30


class GateSettings(_Frozen):
    """The quality gate. ``min_metrics`` are floors, ``max_metrics`` ceilings.

    Floors apply to higher-is-better metrics and ceilings to lower-is-better ones
    (``mlcore.evaluate.LOWER_IS_BETTER``); the other way round is refused, since a floor
    on RMSE would pass worse models and fail better ones. A challenger is refused when,
    scored on the same rows as the champion, it is worse on ``primary_metric`` by more
    than ``champion_tolerance`` (absolute) at ``champion_confidence`` (a one-sided bound
    from the paired bootstrap, :mod:`mlcore.gate`): a shortfall within noise is not a
    refusal. Metric names are checked against the task (``dataset.task``) when the
    settings load, and against the model's problem type when it is evaluated.

    When ``primary_metric`` and ``min_metrics`` are not set, a classifier is gated on
    ``auc >= 0.70`` (one-vs-rest for multiclass) and a regressor on ``r2 >= 0``: better
    than always predicting the mean.
    """

    primary_metric: str = "auc"
    min_metrics: dict[str, float] = Field(default_factory=lambda: {"auc": 0.70})
    max_metrics: dict[str, float] = Field(default_factory=dict)
    champion_tolerance: float = Field(0.005, ge=0)
    champion_confidence: float = Field(0.95, ge=0.5, lt=1)
    min_evaluation_rows: int = Field(
        MIN_EVALUATION_ROWS,
        ge=1,
        description="the fewest test rows a gate decides on; prep and evaluate refuse fewer",
    )

    @model_validator(mode="after")
    def _thresholds_point_the_right_way(self) -> GateSettings:
        problems = []
        for where, names in (
            ("gate.primary_metric", [self.primary_metric]),
            ("gate.min_metrics", list(self.min_metrics)),
            ("gate.max_metrics", list(self.max_metrics)),
        ):
            problems += [
                f"{where} names unknown metric {name!r}; known metrics: {', '.join(ALL_METRICS)}"
                for name in names
                if name not in ALL_METRICS
            ]
        problems += [
            f"gate.min_metrics.{name}: lower is better for {name}, so a floor would pass worse "
            f"models and fail better ones; put it under gate.max_metrics (a ceiling)"
            for name in self.min_metrics
            if name in LOWER_IS_BETTER
        ]
        problems += [
            f"gate.max_metrics.{name}: higher is better for {name}, so a ceiling would fail "
            f"better models; put it under gate.min_metrics (a floor)"
            for name in self.max_metrics
            if name in ALL_METRICS and name not in LOWER_IS_BETTER
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def for_problem(self, problem_type: str) -> GateSettings:
        """This gate for a model of ``problem_type`` ("binary_classification",
        "multiclass_classification" or "regression", or the task "classification").

        Where ``primary_metric`` and ``min_metrics`` were left unset, a regressor gets the
        regression defaults. Every gated name must be a metric of that problem type.

        Raises
        ------
        ConfigError
            Naming the metrics that do not apply and the valid ones for that problem type.
        """
        valid = _GATEABLE_METRICS.get(problem_type)
        if valid is None:
            raise ConfigError(
                f"unknown problem type {problem_type!r}; expected one of {sorted(_GATEABLE_METRICS)}"
            )
        gate = self
        if problem_type == "regression":
            defaults = {
                "primary_metric": REGRESSION_GATE["primary_metric"],
                "min_metrics": REGRESSION_GATE["min_metrics"],
            }
            unset = {k: v for k, v in defaults.items() if k not in self.model_fields_set}
            if unset:
                gate = self.model_copy(update=unset)
        wrong = [
            f"{where} {name!r}"
            for where, names in (
                ("gate.primary_metric", [gate.primary_metric]),
                ("gate.min_metrics", list(gate.min_metrics)),
                ("gate.max_metrics", list(gate.max_metrics)),
            )
            for name in names
            if name not in valid
        ]
        if wrong:
            raise ConfigError(
                f"{', '.join(wrong)} is not computed for {problem_type.replace('_', ' ')} models; "
                f"valid metrics for that task: {', '.join(valid)}"
            )
        return gate


# The gate a regressor gets when the settings name no metric: better than predicting the mean.
REGRESSION_GATE: dict[str, Any] = {"primary_metric": "r2", "min_metrics": {"r2": 0.0}}


class Bands(_Frozen):
    """The two thresholds that grade one effect size: moderate (alert) and major (act).

    An effect at or above ``major`` grades "major", at or above ``moderate``
    "moderate", and below it "none" (always together with a significance test,
    see ``DriftSettings.p_value_threshold``).
    """

    moderate: float = Field(gt=0)
    major: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Bands:
        if self.moderate > self.major:
            raise ValueError(f"moderate ({self.moderate:g}) must not exceed major ({self.major:g})")
        return self


def _bands(moderate: float, major: float) -> Any:
    return Field(default_factory=lambda: Bands(moderate=moderate, major=major))


class DriftBands(_Frozen):
    """Grading bands per effect size (README, "Drift verdicts"). PSI's are the seed's 0.1 / 0.2;
    JS, KL and the chi-squared method's Cramér's V are their local equivalents of PSI's bands;
    KS matches Wasserstein's bands on a normal location shift."""

    wasserstein: Bands = _bands(0.05, 0.1)
    ks: Bands = _bands(0.02, 0.04)
    psi: Bands = _bands(0.1, 0.2)
    jensenshannon: Bands = _bands(0.13, 0.19)
    kl: Bands = _bands(0.05, 0.1)
    chi2: Bands = _bands(0.16, 0.22)
    # Rise of the missing-value rate (absolute).
    missing_rate: Bands = _bands(0.02, 0.05)
    # Share of current values outside the reference's [min, max], beyond what chance gives.
    out_of_range: Bands = _bands(0.01, 0.05)
    # Share of current values in categories the reference lacks, beyond what chance gives.
    unseen_values: Bands = _bands(0.01, 0.05)


class DomainClassifierSettings(_Frozen):
    """Classifier-based drift: how well a model tells reference rows from current rows (AUC)."""

    enabled: bool = True
    bands: Bands = _bands(0.55, 0.6)
    # Rows sampled from each side; half train the classifier, half measure its AUC.
    max_rows: int = Field(5000, ge=100, le=1_000_000)
    seed: int = 0


ReferenceMode = Literal["training", "same_period_last_year", "previous_window"]


class ReferenceSettings(_Frozen):
    """What the current window is compared with ("warm coats in winter" needs last winter).

    ``training``: the baseline saved with the model. ``same_period_last_year``: the
    reference data's rows ``seasonal_offset_days`` before the current window (364 keeps
    weekdays aligned). ``previous_window``: the window of the same length just before.
    """

    mode: ReferenceMode = "training"
    seasonal_offset_days: int = Field(364, ge=1, le=3660)


class DriftSettings(_Frozen):
    """How drift is graded: per column a configured method plus data-quality checks, each an
    effect size graded on its ``bands`` once it is statistically significant."""

    numeric_method: Literal["ks", "psi", "wasserstein", "jensenshannon", "kl"] = "wasserstein"
    categorical_method: Literal["chi2", "psi", "jensenshannon", "kl"] = "psi"
    # Significance level of a column: its checks share it (each tests at level / checks).
    p_value_threshold: float = Field(0.05, gt=0, lt=1)
    # Fewer non-missing values than this on either side (or fewer current rows): insufficient data.
    min_window: int = Field(50, ge=1)
    bands: DriftBands = Field(default_factory=DriftBands)
    psi_bins: int = Field(10, ge=2, le=1000)
    correction: Literal["none", "bonferroni", "fdr_bh"] = "none"
    # The dataset grades major (moderate) when at least this share of graded features does.
    dataset_drift_share: float = Field(0.3, gt=0, le=1)
    domain_classifier: DomainClassifierSettings = Field(default_factory=DomainClassifierSettings)
    reference: ReferenceSettings = Field(default_factory=ReferenceSettings)

    @model_validator(mode="before")
    @classmethod
    def _replaced_keys(cls, data: Any) -> Any:
        replaced = {
            "min_effect_size": "drift.bands.ks",
            "psi_threshold": "drift.bands.psi",
            "distance_threshold": "drift.bands.wasserstein / jensenshannon / kl",
            "missing_rate_threshold": "drift.bands.missing_rate",
        }
        if isinstance(data, dict):
            old = [key for key in replaced if key in data]
            if old:
                raise ValueError(
                    "drift thresholds are now graded bands (moderate, major); replace "
                    + ", ".join(f"drift.{key} with {replaced[key]}" for key in old)
                )
        return data

    def band(self, method: str) -> Bands:
        """The bands of a method or check by its name (``"psi"``, ``"missing_rate"``, ...)."""
        if method == "domain_classifier":
            return self.domain_classifier.bands
        bands = getattr(self.bands, method, None)
        if not isinstance(bands, Bands):
            raise ValueError(
                f"no drift bands for {method!r}; known: {sorted(DriftBands.model_fields)}"
            )
        return bands


def _schedule(value: object) -> Schedule:
    if isinstance(value, Schedule):
        return value
    if not isinstance(value, str):
        raise ValueError(
            f"must be an EventBridge expression such as 'rate(6 hours)', got {value!r}"
        )
    return Schedule.parse(value)


# A schedule in mlops.yaml: written as its EventBridge expression, parsed once on load.
ScheduleExpression = Annotated[
    Schedule,
    PlainValidator(_schedule),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^(rate|cron)\(.+\)$"}),
]


class MonitoringSettings(_Frozen):
    # When the drift monitors run, on AWS and Azure alike; each run judges the hours since
    # the run before (mlcore.schedule).
    schedule: ScheduleExpression = Field(
        Schedule.parse("cron(0 * * * ? *)"),
        description="EventBridge Scheduler expression for the drift monitors",
    )
    capture_sampling_percentage: int = Field(100, ge=1, le=100)
    retrain_cooldown_hours: float = Field(24, ge=0)
    alert_emails: list[str] = Field(default_factory=list)
    # A model-quality alarm fires when the primary metric on labelled traffic falls below this.
    min_live_metric: float = Field(0.65, ge=0, le=1)
    # Which drift engine the scheduled monitors run: one process reading the window in chunks
    # ("streaming"), a Spark job ("spark"), or Spark only when the window's captured data is
    # larger than ``spark_min_capture_mb`` ("auto"; decided by the monitor when it starts).
    engine: Literal["streaming", "spark", "auto"] = "streaming"
    spark_min_capture_mb: float = Field(2048, gt=0)


class ServingSettings(_Frozen):
    """Limits of the inference server (``mlcore serve``); each one answers a stalled or slow peer.

    SageMaker gives a real-time invocation 60 s, so a request still scoring after
    ``scoring_timeout_seconds`` gets a 503 the client can retry before that limit.
    """

    # A client must send its request line and headers within this time of starting them.
    header_timeout_seconds: float = Field(10, gt=0, le=600)
    # ...and the whole body within this time of the headers.
    body_timeout_seconds: float = Field(30, gt=0, le=600)
    # Queueing for the model plus scoring, per request.
    scoring_timeout_seconds: float = Field(50, gt=0, le=3600)
    # An idle keep-alive connection is closed after this long.
    keep_alive_seconds: float = Field(5, gt=0, le=3600)


class RolloutLimits(_Frozen):
    """What fails a rollout, named and measured alike on both clouds.

    A new model version taking traffic (a SageMaker blue/green deployment's rollback
    alarms; an Azure ML deployment's mirror and canary phases) is rolled back when the
    share of its requests answered with a 5xx error exceeds ``max_5xx_rate``, or the 99th
    percentile of its model latency exceeds ``max_p99_latency_ms``. Each cloud's
    per-environment settings (``cdk.json`` ``endpoint.rollback_alarms``, Azure's
    ``rollout``) extend this type, so the names, units and defaults are these.
    """

    max_5xx_rate: float = Field(
        0.01, ge=0, le=1, description="share of requests answered 5xx (0.01 is 1%)"
    )
    max_p99_latency_ms: float = Field(
        1000, gt=0, description="99th percentile of model latency, in milliseconds"
    )


class MlopsSettings(_Frozen):
    project: str = Field(pattern=r"^[a-z][a-z0-9-]{1,30}$")
    dataset: DatasetSettings = Field(default_factory=lambda: DatasetSettings.model_validate({}))
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    gate: GateSettings = Field(default_factory=GateSettings)
    drift: DriftSettings = Field(default_factory=DriftSettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    serving: ServingSettings = Field(default_factory=ServingSettings)
    tracking: TrackingSettings = Field(default_factory=TrackingSettings)

    @model_validator(mode="before")
    @classmethod
    def _example_project(cls, data: Any) -> Any:
        # Only the built-in example has a default name; a project on its own data names itself.
        if not isinstance(data, dict) or "project" in data:
            return data
        dataset = data.get("dataset") or {}
        if isinstance(dataset, dict) and dataset.get("path") is None and "target" not in dataset:
            return {**data, "project": EXAMPLE_PROJECT}
        return data

    @model_validator(mode="before")
    @classmethod
    def _regression_gate_defaults(cls, data: Any) -> Any:
        # A declared regression task with no gate metrics gets the regression gate, so every
        # reader of settings.gate (the cloud pipelines too) sees the metrics actually gated.
        if not isinstance(data, dict):
            return data
        dataset, gate = data.get("dataset"), data.get("gate")
        task = dataset.get("task") if isinstance(dataset, dict) else getattr(dataset, "task", None)
        if task != "regression" or isinstance(gate, GateSettings):
            return data
        gate = dict(gate or {})
        for key, value in REGRESSION_GATE.items():
            gate.setdefault(key, value)
        return {**data, "gate": gate}

    @model_validator(mode="after")
    def _gate_fits_the_declared_task(self) -> MlopsSettings:
        if self.dataset.task is not None:
            try:
                self.gate.for_problem(self.dataset.task)
            except ConfigError as exc:
                raise ValueError(str(exc)) from exc
        return self

    @model_validator(mode="after")
    def _spark_compares_with_the_training_baseline(self) -> MlopsSettings:
        # The Spark engine summarises the current window against the baseline saved with the
        # model; a reference window of captured data would have to be read whole by one process.
        mode = self.drift.reference.mode
        if self.monitoring.engine != "streaming" and mode != "training":
            raise ValueError(
                f"monitoring.engine {self.monitoring.engine!r} with drift.reference.mode "
                f"{mode!r}: the Spark engine compares each window with the model's training "
                "baseline only; set drift.reference.mode: training, or monitoring.engine: "
                "streaming to compare with a window of captured data"
            )
        return self

    @model_validator(mode="after")
    def _split_leaves_training_rows(self) -> MlopsSettings:
        if self.training.validation_fraction + self.training.test_fraction >= 0.9:
            raise ValueError(
                "training.validation_fraction + training.test_fraction must stay below 0.9"
            )
        return self

    @property
    def experiment_name(self) -> str:
        """The MLflow experiment runs are tracked under: ``tracking.experiment`` or the project."""
        return self.tracking.experiment or self.project


def required_extras(settings: MlopsSettings) -> tuple[str, ...]:
    """The optional dependency groups of mlcore (``pip install "mlcore[...]"``) these settings need.

    Image and environment builds install them, so a configured ``xgboost`` works in every
    job without installing what nobody configured. ``tracking`` is listed when
    ``tracking.enabled`` is true; a cloud that passes a tracking server to its jobs adds
    it itself (with ``auto`` a job tracks only when mlflow is installed).
    """
    extras: list[str] = []
    if settings.training.estimator is None and settings.training.algorithm in (
        "xgboost",
        "lightgbm",
    ):
        extras.append(settings.training.algorithm)
    if settings.tracking.enabled is True:
        extras.append("tracking")
    return tuple(extras)


def load_settings(
    path: str | Path | None = None, *, overrides: dict[str, Any] | None = None
) -> MlopsSettings:
    """Read settings from a YAML file (defaults when ``path`` is None), then apply ``overrides``.

    Raises
    ------
    ConfigError
        Naming every invalid key or value, with the file it came from.
    """
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except FileNotFoundError as exc:
            raise ConfigError(f"settings file not found: {path}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"settings file {path} is not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"settings file {path} must hold a mapping at the top level")
        data = loaded
    if overrides:
        data = _deep_merge(data, overrides)
    try:
        return MlopsSettings.model_validate(data)
    except ValidationError as exc:
        lines = [
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" if err["loc"] else err["msg"]
            for err in exc.errors()
        ]
        raise ConfigError(f"invalid settings in {source}:\n  - " + "\n  - ".join(lines)) from exc


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
