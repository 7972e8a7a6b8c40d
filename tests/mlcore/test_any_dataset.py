"""Binary, multiclass and regression data with their own column names go through
prep -> train -> evaluate -> gate on the command line, with metrics equal to scikit-learn's
computed from the saved model file, and strict JSON on stdout (issue 11, "Done when")."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from tabular_datasets import KINDS, Kind, make_dataset, scikit_learn_metrics
from threadpoolctl import threadpool_limits

from mlcore.cli import main


def _strict_json(text: str) -> Any:
    def refuse(token: str) -> None:
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def _cli(args: list[str]) -> Any:
    stdout = io.StringIO()
    # One OpenMP thread: HistGradientBoosting's threads spin on an oversubscribed machine.
    with threadpool_limits(limits=1), contextlib.redirect_stdout(stdout):
        code = main(args)
    assert code == 0, stdout.getvalue()
    return _strict_json(stdout.getvalue())


def _run_pipeline(kind: Kind, root: Path) -> dict[str, Any]:
    """prep, train and evaluate (--fail-on-gate) ``kind`` data in ``root``; evaluate's stdout."""
    dataset = make_dataset(kind, rows=900, seed=2)
    dataset.frame.to_csv(root / "data.csv", index=False)
    settings = root / "mlops.yaml"
    settings.write_text(yaml.safe_dump(dataset.settings(str(root / "data.csv"))))
    given = ["--settings", str(settings)]
    _cli(["prep", "--data", str(root / "data.csv"), "--output", str(root / "prep"), *given])
    _cli(
        [
            "train",
            "--data",
            str(root / "prep" / "train"),
            "--validation",
            str(root / "prep" / "validation"),
            "--spec",
            str(root / "prep" / "spec.json"),
            "--model-dir",
            str(root / "model"),
            *given,
        ]
    )
    printed: dict[str, Any] = _cli(
        [
            "evaluate",
            "--model-dir",
            str(root / "model"),
            "--data",
            str(root / "prep" / "test"),
            "--output",
            str(root / "evaluation"),
            "--fail-on-gate",
            *given,
        ]
    )
    return printed


@pytest.fixture(scope="module")
def run(
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[Kind], tuple[Path, dict[str, Any]]]:
    """Runs the pipeline once per kind of data, on first use: (folder, evaluate's stdout)."""
    done: dict[Kind, tuple[Path, dict[str, Any]]] = {}

    def run_kind(kind: Kind) -> tuple[Path, dict[str, Any]]:
        if kind not in done:
            root = tmp_path_factory.mktemp(kind)
            done[kind] = (root, _run_pipeline(kind, root))
        return done[kind]

    return run_kind


@pytest.mark.parametrize("kind", KINDS)
def test_every_task_passes_the_default_gate_with_metrics_equal_to_scikit_learn(
    run: Callable[[Kind], tuple[Path, dict[str, Any]]], kind: Kind
) -> None:
    root, printed = run(kind)
    assert printed["gate_passed"] is True
    expected = scikit_learn_metrics(root / "model", root / "prep" / "test")
    document = json.loads((root / "evaluation" / "evaluation.json").read_text())
    section = {
        "binary": "binary_classification_metrics",
        "multiclass": "multiclass_classification_metrics",
        "regression": "regression_metrics",
    }[kind]
    for name, value in expected.items():
        assert printed["metrics"][name] == pytest.approx(value), name
        assert document[section][name]["value"] == pytest.approx(value), name
    # The default gate follows the task: auc for classifiers, r2 for regressors.
    gate = json.loads((root / "evaluation" / "gate.json").read_text())
    assert gate["primary_metric"] == ("r2" if kind == "regression" else "auc")


@pytest.mark.parametrize("kind", KINDS)
def test_every_task_gets_a_time_ordered_split(
    run: Callable[[Kind], tuple[Path, dict[str, Any]]], kind: Kind
) -> None:
    root, _ = run(kind)
    lineage = json.loads((root / "prep" / "lineage.json").read_text())
    assert lineage["split"] == "time"
    train = pd.read_parquet(root / "prep" / "train")
    test = pd.read_parquet(root / "prep" / "test")
    assert train["recorded_at"].max() < test["recorded_at"].min()


def test_binary_words_get_the_rarer_class_as_positive(
    run: Callable[[Kind], tuple[Path, dict[str, Any]]],
) -> None:
    root, _ = run("binary")
    document = json.loads((root / "evaluation" / "evaluation.json").read_text())
    assert document["problem"]["positive_label"] == "malignant"
    assert document["problem"]["positive_label_rule"] == "rarer class in the training data"


def test_an_undefined_metric_is_printed_as_null(
    run: Callable[[Kind], tuple[Path, dict[str, Any]]], tmp_path: Path
) -> None:
    # R2 is undefined on a constant target; stdout says null, never a bare NaN.
    root, _ = run("regression")
    test = pd.read_parquet(root / "prep" / "test")
    test.assign(progression=150.0).to_parquet(tmp_path / "constant.parquet")
    (tmp_path / "mlops.yaml").write_text(
        "project: diabetes\ndataset: {target: progression}\n"
        "gate: {primary_metric: mae, min_metrics: {}, max_metrics: {mae: 1000}}\n"
    )
    printed = _cli(
        [
            "evaluate",
            "--model-dir",
            str(root / "model"),
            "--data",
            str(tmp_path / "constant.parquet"),
            "--output",
            str(tmp_path / "out"),
            "--settings",
            str(tmp_path / "mlops.yaml"),
        ]
    )
    assert printed["metrics"]["r2"] is None and printed["metrics"]["mae"] > 0
