"""``mlcore init``: a project's settings generated from a sample of its own data.

It takes a project name, a data file or folder, the target, the task and the clouds
(flags, or prompts on a terminal), profiles a sample of the data (feature types,
id-like and datetime columns, class balance, a suggested positive label), proposes a
quality gate valid for the task and writes:

* ``mlops.yaml``, with every column declared, so later batches cannot silently re-type it;
* the name-derived fields of ``cdk.json``'s ``mlops`` object (AWS) and of
  ``azure/environments/*.yaml`` (Azure), leaving every other key and comment as it was.

On a project already configured for its own data it refuses to overwrite without
``--force`` and shows the diff; ``--dry-run`` shows the diff and writes nothing.

Heavy imports (pandas, the profiler) happen inside the command, so ``mlcore --help``
stays quick.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from mlcore.errors import ConfigError, MlcoreError
from mlcore.example_dataset import EXAMPLE_PROJECT
from mlcore.settings import (
    DEFAULT_SETTINGS_FILE,
    DatasetSettings,
    MlopsSettings,
    TrainingSettings,
    load_settings,
    required_extras,
    sized_hyperparameters,
)
from mlcore.settings_file import add_settings_option

if TYPE_CHECKING:
    from mlcore.data.profile import DataProfile
    from mlcore.data.spec import Task

# The share of rows `make demo` serves as live traffic (mlcore.demo.LIVE_SHARE, which
# imports the serving stack; init must stay light).
DEMO_LIVE_SHARE = 0.3
# Enough rows to see ids repeat and classes balance; a large file is not read whole.
DEFAULT_SAMPLE_ROWS = 50_000
CLOUDS = ("aws", "azure")
CDK_FILE = "cdk.json"
AZURE_ENVIRONMENTS = Path("azure") / "environments"
_PROJECT_PATTERN = re.compile(r"^[a-z][a-z0-9-]{1,30}$")
# Azure name lengths (azure/mlops_azure/config.py): endpoints 3-32 characters, registries 3-33.
_AZURE_ENDPOINT_MAX = 32
_AZURE_REGISTRY_MAX = 33
# The gate's floor for a binary model's AUC, as the shipped settings use.
_BINARY_AUC_FLOOR = 0.70
# The live-quality alarm sits this far below the gate's floor.
_LIVE_MARGIN = 0.05
_TARGET_NAMES = ("target", "label", "y", "class", "outcome")


@dataclass(frozen=True)
class InitAnswers:
    """What the user told ``mlcore init`` (flags or prompts)."""

    project: str
    data: Path
    target: str
    task: str | None = None
    clouds: tuple[str, ...] = CLOUDS
    positive_label: Any = None
    repository: str | None = None


@dataclass(frozen=True)
class FileChange:
    """One file ``mlcore init`` writes: its current text (None when absent) and the new one."""

    path: Path
    old: str | None
    new: str
    fields: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return self.old != self.new

    def diff(self, root: Path) -> str:
        name = (
            str(self.path.relative_to(root)) if self.path.is_relative_to(root) else str(self.path)
        )
        return "".join(
            difflib.unified_diff(
                (self.old or "").splitlines(keepends=True),
                self.new.splitlines(keepends=True),
                fromfile=f"a/{name}" if self.old is not None else "/dev/null",
                tofile=f"b/{name}",
            )
        )


@dataclass(frozen=True)
class GateProposal:
    primary_metric: str
    min_metrics: dict[str, float]
    reason: str
    # Ceilings: a classifier must beat the log loss of predicting the class shares.
    max_metrics: dict[str, float] = field(default_factory=dict)

    @property
    def live_floor(self) -> float:
        floor = self.min_metrics[self.primary_metric]
        return round(min(max(floor - _LIVE_MARGIN, 0.0), 1.0), 3)


@dataclass(frozen=True)
class InitPlan:
    """Everything ``mlcore init`` would do, computed before anything is written."""

    root: Path
    answers: InitAnswers
    profile: DataProfile
    settings: MlopsSettings
    gate: GateProposal
    changes: tuple[FileChange, ...]
    inferred: tuple[str, ...]
    checks: tuple[str, ...]
    # The existing mlops.yaml configures a project on its own data (not the shipped example).
    overwrites_project: bool = False
    kept_sections: tuple[str, ...] = field(default=())

    def diff(self) -> str:
        return "".join(change.diff(self.root) for change in self.changes if change.changed)


def propose_gate(profile: DataProfile) -> GateProposal:
    """A gate the evaluation computes for this task, every threshold beating no skill.

    * binary classification: AUC at least 0.70 (0.5 is chance);
    * multiclass: accuracy above always answering the majority class (AUC is binary-only);
    * classification, both: log loss below that of predicting every row the class shares
      (their entropy), the no-skill baseline of a probability model: a model can rank
      well and still give probabilities worse than knowing nothing;
    * regression: R² above 0.1 (0 is predicting the mean: R² > 0 is RMSE below the mean
      predictor's; higher is better, as gates want).
    """
    if profile.task == "regression":
        return GateProposal(
            "r2",
            {"r2": 0.1},
            "regression: R² 0 is predicting the mean, the no-skill baseline",
        )
    shares = [share for share in profile.class_balance.values() if share > 0]
    prior_log_loss = -sum(share * math.log(share) for share in shares)
    ceiling = {"log_loss": math.floor(prior_log_loss * 1000) / 1000}
    no_skill = f"predicting the class shares scores log loss {prior_log_loss:.3f}"
    if profile.n_classes <= 2:
        return GateProposal(
            "auc",
            {"auc": _BINARY_AUC_FLOOR},
            f"binary classification: AUC 0.5 is chance, whatever the class balance; {no_skill}",
            ceiling,
        )
    majority = max(profile.class_balance.values())
    floor = round(min(math.ceil((majority + _LIVE_MARGIN) * 100) / 100, 0.99), 2)
    return GateProposal(
        "accuracy",
        {"accuracy": floor},
        f"{profile.n_classes} classes: always answering the majority class scores accuracy "
        f"{majority:.2f}; {no_skill}",
        ceiling,
    )


def _training_rows(rows: int, training: TrainingSettings) -> int:
    """The rows a model of ``rows`` trains on once validation and test are split off."""
    return max(1, round(rows * (1 - training.validation_fraction - training.test_fraction)))


def plan_project(
    answers: InitAnswers,
    *,
    root: Path,
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
) -> InitPlan:
    """Profile the data and compute every file change, without writing anything.

    Raises
    ------
    ConfigError
        A project name, task or cloud that is not valid, or a target not in the data.
    """
    from mlcore.data import sample_table
    from mlcore.data.profile import profile_frame
    from mlcore.prep import resolve_spec

    _check_answers(answers)
    sample = sample_table(answers.data, sample_rows)
    if answers.target not in sample.columns:
        columns = [str(c) for c in sample.columns]
        close = difflib.get_close_matches(answers.target, columns, n=3, cutoff=0.6)
        close += [c for c in columns if c.lower() == answers.target.lower() and c not in close]
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise ConfigError(
            f"target column {answers.target!r} is not in {answers.data}{hint or '.'} Its columns "
            f"are {columns}"
        )
    task: Task | None = "regression" if answers.task == "regression" else None
    if answers.task == "classification":
        task = "classification"
    profile = profile_frame(sample, target=answers.target, task=task)
    if profile.task == "classification" and profile.n_classes < 2:
        raise ConfigError(
            f"target {answers.target!r} has a single value in the sample: a classifier needs "
            "at least two classes (is this the right column, or a regression target?)"
        )
    gate = propose_gate(profile)
    settings_path = root / DEFAULT_SETTINGS_FILE
    existing, existing_text = _existing_settings(settings_path)
    old_project = existing.project if existing is not None else EXAMPLE_PROJECT
    overwrites = existing_text is not None and (existing is None or not existing.dataset.is_example)

    timestamp = profile.datetime_columns[0] if profile.datetime_columns else None
    other_datetimes = list(profile.datetime_columns[1:])
    positive = (
        answers.positive_label if answers.positive_label is not None else profile.positive_label
    )
    dataset: dict[str, Any] = {
        "path": _relative(answers.data, root),
        "target": answers.target,
        "task": profile.task,
        # Extra datetime columns stay out of the features: excluded the way ids are.
        "id_columns": [*profile.id_like, *other_datetimes],
        "timestamp": timestamp,
        "numeric": list(profile.numeric),
        "categorical": list(profile.categorical),
        "slice_columns": list(profile.slice_candidates[:2]),
    }
    writes_positive = "positive_label" in DatasetSettings.model_fields
    if writes_positive and profile.task == "classification" and profile.n_classes == 2:
        dataset["positive_label"] = positive
    base = existing if existing is not None else MlopsSettings.model_validate({})
    # Every section init does not derive from the data is kept as the existing file has it
    # (serving limits, drift, monitoring, tracking, and any section added later).
    derived = ("project", "dataset", "training", "gate")
    kept = tuple(n for n in MlopsSettings.model_fields if n not in derived) if existing else ()
    training = base.training.model_dump(mode="json", exclude_defaults=False)
    training["hyperparameters"] = sized_hyperparameters(
        base.training.algorithm,
        training_rows=_training_rows(profile.rows, base.training),
        n_classes=profile.n_classes,
    )
    document: dict[str, Any] = {
        "project": answers.project,
        "dataset": dataset,
        "training": training,
        "gate": {
            "primary_metric": gate.primary_metric,
            "min_metrics": gate.min_metrics,
            "max_metrics": gate.max_metrics,
            "champion_tolerance": base.gate.champion_tolerance,
            "min_evaluation_rows": base.gate.min_evaluation_rows,
        },
    }
    for name in MlopsSettings.model_fields:
        if name not in derived:
            document[name] = getattr(base, name).model_dump(mode="json")
    document["monitoring"]["min_live_metric"] = gate.live_floor
    _drop_exclusive_training_keys(document["training"])
    text = render_settings(document, answers=answers, profile=profile, gate=gate)
    settings = MlopsSettings.model_validate(yaml.safe_load(text))
    # The same resolution every command uses: each declared column exists in the data.
    resolve_spec(sample, settings.dataset)

    changes = [FileChange(settings_path, existing_text, text, ("the whole file",))]
    if "aws" in answers.clouds:
        cdk_change = _cdk_change(root / CDK_FILE, answers, root)
        if cdk_change is not None:
            changes.append(cdk_change)
    if "azure" in answers.clouds:
        changes.extend(
            _azure_changes(
                root / AZURE_ENVIRONMENTS, old=old_project, answers=answers, task=profile.task
            )
        )
    inferred = _inferred_lines(profile, timestamp, positive, gate, dataset)
    checks = _check_lines(profile, other_datetimes, answers, settings, positive, root)
    return InitPlan(
        root=root,
        answers=answers,
        profile=profile,
        settings=settings,
        gate=gate,
        changes=tuple(changes),
        inferred=tuple(inferred),
        checks=tuple(checks),
        overwrites_project=overwrites,
        kept_sections=kept,
    )


def apply_plan(plan: InitPlan) -> list[Path]:
    """Write every changed file (each replaced atomically); return the paths written."""
    written = []
    for change in plan.changes:
        if change.changed:
            _atomic_write(change.path, change.new)
            written.append(change.path)
    return written


def render_settings(
    document: dict[str, Any],
    *,
    answers: InitAnswers,
    profile: DataProfile,
    gate: GateProposal,
) -> str:
    """mlops.yaml with a comment on each inferred choice, so a reader knows what to check."""
    dataset = document["dataset"]
    lines = [
        f"# Lifecycle settings of {answers.project}, written by `mlcore init` from "
        f"{dataset['path']} ({profile.rows} rows profiled).",
        "# Shared by `make demo`, the AWS stacks and the Azure definitions. Every key is",
        "# validated (src/mlcore/settings.py): a misspelt key or column name is an error.",
        f"project: {_flow(answers.project)}",
        "",
        "dataset:",
        "  # Relative paths are read from the directory the commands run in (the repository root).",
        f"  path: {_flow(dataset['path'])}",
        f"  target: {_flow(dataset['target'])}",
        f"  task: {dataset['task']}",
    ]
    if "positive_label" in dataset:
        lines.append(
            "  # The class whose probability is the model's score (AUC, drift of the score)."
        )
        lines.append(f"  positive_label: {_flow(dataset['positive_label'])}")
    lines += [
        "  # Columns kept out of the features: a value that never repeats is an id, not a signal.",
        *_column_list("id_columns", dataset["id_columns"]),
        "  # Orders the splits in time and places the drift windows; null: row order.",
        f"  timestamp: {_flow(dataset['timestamp'])}",
        "  # Declared so that a later batch with other dtypes cannot re-type a column.",
        *_column_list("numeric", dataset["numeric"]),
        *_column_list("categorical", dataset["categorical"]),
        "  # Metrics per value of these columns, in the model card and the quality monitor.",
        *_column_list("slice_columns", dataset["slice_columns"]),
        "",
        "# Hyperparameters sized to the data by `mlcore init`: early stopping finds the number",
        "# of trees, smaller data gets smaller trees. Another algorithm starts from its own.",
        _section("training", document["training"]),
        f"# Proposed by `mlcore init` ({gate.reason}).",
        _section("gate", document["gate"]),
    ]
    comments = {
        "serving": "# The inference server's limits (mlcore serve).",
        "tracking": "# MLflow tracking of every `mlcore train` and `mlcore evaluate` "
        "(README, Tracking runs).",
    }
    for name, body in document.items():
        if name in ("project", "dataset", "training", "gate"):
            continue
        if name in comments:
            lines.append(comments[name])
        lines.append(_section(name, body))
    return "\n".join(lines).rstrip("\n") + "\n"


def _section(name: str, body: dict[str, Any]) -> str:
    return (
        "\n".join([f"{name}:", *(f"  {key}: {_flow(value)}" for key, value in body.items())]) + "\n"
    )


def _column_list(name: str, columns: Sequence[str]) -> list[str]:
    # Long lists one column a line: readable, and a later edit is a one-line diff.
    if len(columns) <= 6:
        return [f"  {name}: {_flow(list(columns))}"]
    return [f"  {name}:", *(f"    - {_flow(column)}" for column in columns)]


def _flow(value: Any) -> str:
    """``value`` as one line of YAML (quoted when YAML would misread it)."""
    text = str(yaml.safe_dump([value], default_flow_style=True, width=10**6)).strip()
    return text[1:-1]


def _drop_exclusive_training_keys(training: dict[str, Any]) -> None:
    # A dump holds both algorithm and estimator; settings accept only the one in use.
    if training.get("estimator") is None:
        training.pop("estimator", None)
        training.pop("preprocess", None)
    else:
        training.pop("algorithm", None)


def _check_answers(answers: InitAnswers) -> None:
    problems = []
    if not _PROJECT_PATTERN.match(answers.project):
        problems.append(
            f"project name {answers.project!r} must be 2-31 characters: lowercase letters, "
            "digits and hyphens, starting with a letter (it prefixes cloud resource names)"
        )
    if answers.task not in (None, "classification", "regression"):
        problems.append(f"task must be classification or regression, got {answers.task!r}")
    unknown = [c for c in answers.clouds if c not in CLOUDS]
    if unknown:
        problems.append(f"unknown clouds {unknown}; choose from {list(CLOUDS)} or none")
    if answers.repository is not None and not re.fullmatch(r"[^/\s]+/[^/\s]+", answers.repository):
        problems.append(f"repository must be 'owner/name', got {answers.repository!r}")
    if problems:
        raise ConfigError("mlcore init: " + "; ".join(problems))


def _existing_settings(path: Path) -> tuple[MlopsSettings | None, str | None]:
    if not path.is_file():
        return None, None
    text = path.read_text()
    try:
        return load_settings(path), text
    except ConfigError:
        return None, text  # unreadable settings are still a project: --force to replace


def _relative(data: Path, root: Path) -> str:
    resolved, base = data.resolve(), root.resolve()
    return resolved.relative_to(base).as_posix() if resolved.is_relative_to(base) else str(resolved)


def _cdk_change(path: Path, answers: InitAnswers, root: Path) -> FileChange | None:
    """cdk.json with ``mlops.source.repository`` set to the team's repository, nothing else touched."""
    if not path.is_file():
        return None
    text = path.read_text()
    document = json.loads(text)
    source = document.get("context", {}).get("mlops", {}).get("source")
    repository = answers.repository or _git_origin_repository(root)
    if (
        not isinstance(source, dict)
        or repository is None
        or source.get("provider", "connection") != "connection"
    ):
        return FileChange(path, text, text)
    if source.get("repository") == repository:
        return FileChange(path, text, text)
    new = _replace_json_string(text, "repository", source.get("repository"), repository)
    expected = json.loads(text)
    expected["context"]["mlops"]["source"]["repository"] = repository
    if json.loads(new) != expected:
        raise MlcoreError(f"could not edit {path} in place: set mlops.source.repository by hand")
    return FileChange(path, text, new, ("mlops.source.repository",))


def _replace_json_string(text: str, key: str, old: Any, new: str) -> str:
    pattern = re.compile(rf'("{re.escape(key)}"\s*:\s*){re.escape(json.dumps(old))}')
    if len(pattern.findall(text)) != 1:
        return text
    return pattern.sub(lambda m: m.group(1) + json.dumps(new), text)


def _git_origin_repository(root: Path) -> str | None:
    """``owner/name`` of the git remote ``origin`` when it is a hosted repository, if any."""
    url = _git_origin_url(root)
    return repository_from_url(url) if url else None


def _git_origin_url(root: Path) -> str | None:
    try:
        result = subprocess.run(
            ["git", "-C", str(root), "remote", "get-url", "origin"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


# A hosted repository's URL: https://host/owner/name(.git), ssh://[user@]host[:port]/owner/name,
# or scp-like user@host:owner/name. A local path or file:// URL names no hosted repository.
_HOSTED_URL = re.compile(
    r"^(?:(?:https?|ssh|git)://(?:[^@/\s]+@)?[^/\s]+/|[^@/\s]+@[^:/\s]+:)"
    r"(?:[^\s]+/)?(?P<owner>[^/\s]+)/(?P<name>[^/\s]+?)(?:\.git)?/?$"
)


def repository_from_url(url: str) -> str | None:
    """``owner/name`` of a GitHub, GitLab or Bitbucket remote URL; None for a local path.

    >>> repository_from_url("git@github.com:example-org/churn.git")
    'example-org/churn'
    >>> repository_from_url("/work/main") is None
    True
    """
    match = _HOSTED_URL.match(url.strip())
    return f"{match['owner']}/{match['name']}" if match else None


# Azure fields derived from the project name, as templates of (project, environment).
_AZURE_NAME_FIELDS: dict[tuple[str, ...], Callable[[str, str], str]] = {
    ("experiment_name",): lambda project, env: f"{project}-training-{env}",
    ("data", "path"): lambda project, env: f"{project}/raw/",
    ("data", "ground_truth_path"): lambda project, env: f"{project}/ground-truth/",
    ("endpoint", "name"): lambda project, env: _within(project, f"-{env}", _AZURE_ENDPOINT_MAX),
    ("registry", "name"): lambda project, env: _within(project, "-registry", _AZURE_REGISTRY_MAX),
}


def _within(project: str, suffix: str, limit: int) -> str:
    """``project + suffix``, the project part shortened to keep within ``limit`` characters."""
    return project[: limit - len(suffix)].rstrip("-") + suffix


def _azure_changes(folder: Path, *, old: str, answers: InitAnswers, task: str) -> list[FileChange]:
    """Each environment file with its name-derived fields renamed; customised values are kept."""
    if not folder.is_dir():
        return []
    changes = []
    for path in sorted(folder.glob("*.yaml")):
        text = path.read_text()
        document = yaml.safe_load(text) or {}
        env = path.stem
        new_text, fields = text, []
        expected = json.loads(json.dumps(document))
        for keys, template in _AZURE_NAME_FIELDS.items():
            current = _get(document, keys)
            wanted = template(answers.project, env)
            if current is None or current == wanted or current != template(old, env):
                continue  # absent, already right, or customised by the team
            new_text = _set_yaml_scalar(new_text, keys, wanted)
            _put(expected, keys, wanted)
            fields.append(".".join(keys))
        if _get(document, ("monitoring", "ml_task")) not in (None, task):
            new_text = _set_yaml_scalar(new_text, ("monitoring", "ml_task"), task)
            _put(expected, ("monitoring", "ml_task"), task)
            fields.append("monitoring.ml_task")
        if yaml.safe_load(new_text) != expected:
            raise MlcoreError(f"could not edit {path} in place: set {fields} by hand")
        changes.append(FileChange(path, text, new_text, tuple(fields)))
    return changes


def _get(document: Any, keys: Sequence[str]) -> Any:
    node = document
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _put(document: dict[str, Any], keys: Sequence[str], value: Any) -> None:
    node = document
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value


_KEY_LINE = re.compile(
    r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.-]+):(?P<gap>[ \t]*)(?P<value>[^#\r\n]*?)"
    r"(?P<trail>[ \t]+#[^\r\n]*)?(?P<eol>\r?\n?)$"
)


def _set_yaml_scalar(text: str, keys: Sequence[str], value: Any) -> str:
    """``text`` with the scalar at ``keys`` replaced, comments and layout untouched.

    Handles block mappings (what the environment files are); anything else is left for
    the caller's check, which compares the parsed result with the intended one.
    """
    lines = text.splitlines(keepends=True)
    stack: list[tuple[int, str]] = []
    for index, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _KEY_LINE.match(line)
        if match is None:
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = (*(key for _, key in stack), match["key"])
        if path == tuple(keys) and match["value"].strip():
            lines[index] = (
                f"{match['indent']}{match['key']}:{match['gap'] or ' '}{_flow(value)}"
                f"{match['trail'] or ''}{match['eol']}"
            )
            return "".join(lines)
        stack.append((indent, match["key"]))
    raise MlcoreError(f"no {'.'.join(keys)} to rename in the Azure environment file")


def _inferred_lines(
    profile: DataProfile,
    timestamp: str | None,
    positive: Any,
    gate: GateProposal,
    dataset: dict[str, Any],
) -> list[str]:
    lines = [f"rows profiled: {profile.rows}"]
    if profile.task == "classification":
        balance = ", ".join(
            f"{label} {share:.0%}" for label, share in profile.class_balance.items()
        )
        lines.append(
            f"target {profile.target!r}: classification, {profile.n_classes} classes ({balance})"
        )
        if profile.n_classes == 2:
            lines.append(f"positive label: {positive!r}")
    else:
        lines.append(f"target {profile.target!r}: regression")
    lines.append(
        f"features: {len(profile.numeric)} numeric, {len(profile.categorical)} categorical"
    )
    lines.append(f"id-like columns (kept out of the features): {list(profile.id_like) or 'none'}")
    lines.append(
        f"datetime columns: {list(profile.datetime_columns) or 'none'}; timestamp: {timestamp}"
    )
    lines.append(f"slice columns: {dataset['slice_columns'] or 'none'}")
    limits = [f"{k} >= {v}" for k, v in gate.min_metrics.items()]
    limits += [f"{k} <= {v}" for k, v in gate.max_metrics.items()]
    lines.append(f"gate: primary metric {gate.primary_metric}, {', '.join(limits)} ({gate.reason})")
    return lines


def _check_lines(
    profile: DataProfile,
    other_datetimes: list[str],
    answers: InitAnswers,
    settings: MlopsSettings,
    positive: Any,
    root: Path,
) -> list[str]:
    checks = []
    if profile.id_like:
        checks.append(
            f"id_columns {list(profile.id_like)}: each has a different value in every sampled row; "
            "move any that is a real feature to numeric/categorical"
        )
    if other_datetimes:
        checks.append(
            f"datetime columns {other_datetimes} are excluded like ids (only {settings.dataset.timestamp!r} "
            "orders the data); derive features from them in your own estimator if they matter"
        )
    if profile.coded_integers:
        checks.append(
            f"integer columns with few values {list(profile.coded_integers)} are numeric; move codes "
            "(postcodes, category ids) to categorical"
        )
    if profile.task == "classification" and profile.n_classes == 2:
        if "positive_label" in settings.dataset.model_fields_set:
            checks.append(
                "dataset.positive_label: the class whose probability is the model's score "
                "(--positive-label chooses another)"
            )
        else:
            last = sorted(profile.class_balance)[-1]
            checks.append(
                f"the positive label: this mlcore scores the probability of the last class in "
                f"sorted order ({last!r}); the suggested one is {positive!r}"
            )
    checks.append(
        f"gate.min_metrics {settings.gate.min_metrics}: a starting floor, not a business requirement"
    )
    test_rows = round(profile.rows * settings.training.test_fraction)
    demo_test_rows = round(test_rows * (1 - DEMO_LIVE_SHARE))
    if demo_test_rows < settings.gate.min_evaluation_rows:
        checks.append(
            f"at {profile.rows} rows the test split holds about {test_rows} rows "
            f"({demo_test_rows} in `make demo`, which keeps {DEMO_LIVE_SHARE:.0%} as live "
            f"traffic): prep refuses a gate decided on fewer than gate.min_evaluation_rows "
            f"({settings.gate.min_evaluation_rows}); gather more rows, or lower it knowingly"
        )
    checks.append(
        f"training.hyperparameters {settings.training.hyperparameters}: sized to "
        f"{profile.rows} profiled rows; `mlcore train --algorithm NAME` starts from that "
        "algorithm's own defaults"
    )
    if "aws" in answers.clouds:
        checks.append(
            "cdk.json mlops.source (repository, connection_arn) and the stages' accounts and regions"
        )
        origin = None if answers.repository else _git_origin_url(root)
        if origin and repository_from_url(origin) is None:
            checks.append(
                f"git origin is {origin!r}, a local path rather than a hosted repository: "
                "cdk.json mlops.source.repository was left as it was; give --repository "
                "owner/name for the AWS pipeline's source"
            )
    if "azure" in answers.clouds:
        checks.append(
            "azure/environments/*.yaml: subscription_id, resource_group, workspace and alert_emails"
        )
    extras = required_extras(settings)
    if extras:
        checks.append(
            f'install the extras your settings use: pip install -e ".[{",".join(extras)}]"'
        )
    return checks


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
        if path.exists():
            os.chmod(temporary, path.stat().st_mode & 0o777)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# --- the command -----------------------------------------------------------------------


def add_init_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    init = sub.add_parser(
        "init",
        help="generate this project's settings from your data (mlops.yaml, cdk.json, Azure envs)",
        description="Profile a sample of your data and write mlops.yaml plus the name-derived "
        "fields of cdk.json and azure/environments/*.yaml. Missing answers are prompted for on "
        "a terminal; elsewhere give them as flags.",
    )
    init.add_argument("--name", dest="project", help="project name: lowercase, digits, hyphens")
    init.add_argument("--data", help="your data: a CSV or Parquet file, or a folder of them")
    init.add_argument("--target", help="the column to predict")
    init.add_argument(
        "--task", choices=("classification", "regression"), help="default: inferred from the target"
    )
    init.add_argument(
        "--clouds",
        help="comma-separated: aws, azure, both (default) or none",
    )
    init.add_argument("--positive-label", help="binary target: the class the score is about")
    init.add_argument(
        "--repository",
        help="owner/name of your repository for the AWS pipeline (default: git origin)",
    )
    init.add_argument("--directory", default=".", help="the repository root (default: .)")
    init.add_argument(
        "--sample-rows",
        type=int,
        default=DEFAULT_SAMPLE_ROWS,
        help=f"rows to profile (default: {DEFAULT_SAMPLE_ROWS})",
    )
    init.add_argument("--force", action="store_true", help="overwrite a configured project")
    init.add_argument("--dry-run", action="store_true", help="show the diff, write nothing")
    init.set_defaults(handler=_cmd_init)


def add_extras_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    extras = sub.add_parser(
        "extras",
        help="the optional dependencies the settings need, for image and environment builds",
        description='Print the mlcore extras the settings use, comma-separated (for pip install ".[<extras>]").',
    )
    add_settings_option(extras)
    extras.set_defaults(handler=_cmd_extras)


def _cmd_extras(args: argparse.Namespace) -> int:
    from mlcore.cli import settings_from_args

    settings = settings_from_args(args)
    print(",".join(required_extras(settings)))
    return 0


def _cmd_init(args: argparse.Namespace) -> int:
    root = Path(args.directory)
    answers = gather_answers(args, interactive=sys.stdin.isatty())
    plan = plan_project(answers, root=root, sample_rows=args.sample_rows)
    settings_file = (root / DEFAULT_SETTINGS_FILE).resolve()
    print(f"settings: {settings_file} ({'exists' if settings_file.is_file() else 'new'})")
    print(f"Profiled {answers.data} for project {answers.project}:")
    for line in plan.inferred:
        print(f"  {line}")
    if plan.overwrites_project and not args.force and not args.dry_run:
        sys.stdout.write(plan.diff())
        raise ConfigError(
            f"{root / DEFAULT_SETTINGS_FILE} already configures a project on its own data; "
            "the diff above is what init would change. Rerun with --force to overwrite, or "
            "--dry-run to only look."
        )
    if args.dry_run:
        sys.stdout.write(plan.diff() or "nothing would change\n")
        return 0
    apply_plan(plan)
    print("Files:")
    for change in plan.changes:
        name = change.path.relative_to(root) if change.path.is_relative_to(root) else change.path
        if not change.changed:
            print(f"  {name}: unchanged")
        elif change.old is None:
            print(f"  {name}: written")
        elif change.path.name == DEFAULT_SETTINGS_FILE:
            print(f"  {name}: rewritten")
        else:
            print(f"  {name}: updated {', '.join(change.fields)}")
    if plan.kept_sections:
        print(f"  kept from the previous mlops.yaml: {', '.join(plan.kept_sections)}")
    print("Check before the first run:")
    for line in plan.checks:
        print(f"  - {line}")
    print("Next: mlcore prep, then make demo and make test.")
    return 0


def gather_answers(
    args: argparse.Namespace,
    *,
    interactive: bool,
    ask: Callable[[str], str] = input,
) -> InitAnswers:
    """The answers from flags, prompting on a terminal for what is missing.

    Raises
    ------
    ConfigError
        Off a terminal, naming every required flag that is missing.
    """
    data = args.data
    target = args.target
    project = args.project
    clouds = args.clouds
    if not interactive:
        missing = [f"--{name}" for name, value in (("data", data), ("target", target)) if not value]
        if missing:
            raise ConfigError(
                f"mlcore init needs {' and '.join(missing)} when it cannot prompt (no terminal)"
            )
    if not data:
        data = _prompt(ask, "Data file or folder (CSV or Parquet)", None)
    if not target:
        columns = _columns(Path(data))
        default = next((c for c in columns if c.lower() in _TARGET_NAMES), None)
        target = _prompt(ask, f"Target column (one of {', '.join(columns)})", default)
    if not project:
        default_name = project_name_from(Path(data))
        project = _prompt(ask, "Project name", default_name) if interactive else default_name
    if clouds is None:
        clouds = _prompt(ask, "Clouds (aws, azure, both, none)", "both") if interactive else "both"
    task = args.task
    if task is None and interactive:
        answer = _prompt(ask, "Task (classification, regression, or Enter to infer)", "")
        task = answer or None
    return InitAnswers(
        project=project,
        data=Path(data),
        target=target,
        task=task,
        clouds=_clouds(clouds),
        positive_label=_label(args.positive_label),
        repository=args.repository,
    )


def project_name_from(data: Path) -> str:
    """A valid project name from the data's file or folder name: ``Breast Cancer.csv`` -> breast-cancer."""
    stem = data.stem if data.suffix else data.name
    name = re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")
    if not name or not name[0].isalpha():
        name = f"ml-{name}".rstrip("-")
    return name[:31].rstrip("-") if len(name) > 1 else "ml-project"


def _prompt(ask: Callable[[str], str], question: str, default: str | None) -> str:
    suffix = f" [{default}]" if default else ""
    while True:
        answer = ask(f"{question}{suffix}: ").strip()
        if answer or default is not None:
            return answer or (default or "")


def _columns(data: Path) -> list[str]:
    from mlcore.data import sample_table

    return [str(c) for c in sample_table(data, 5).columns]


def _clouds(text: str) -> tuple[str, ...]:
    value = text.strip().lower()
    if value in ("both", "all", ""):
        return CLOUDS
    if value == "none":
        return ()
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _label(text: str | None) -> Any:
    # "1" on the command line means the integer label 1, as it is in the data.
    if text is None:
        return None
    loaded = yaml.safe_load(text)
    return loaded if isinstance(loaded, str | int | float | bool) else text
