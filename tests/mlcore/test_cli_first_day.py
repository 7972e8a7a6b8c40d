"""A newcomer's first commands on their own data (issue 22, findings 1, 3, 4, 5, 6, 10; issue
21, items 9 and 10): every command says which settings it reads, finds them as git finds
its configuration, and fails in one line that says what to do."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from first_day_data import classification, sorted_by_outcome, with_missing_labels
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.dummy import DummyClassifier
from threadpoolctl import threadpool_info

from mlcore.cli import EXIT_ERROR, build_parser, main
from mlcore.data import DatasetSpec, partition, split_frame
from mlcore.errors import DataError
from mlcore.settings_file import SETTINGS_HELP

FAST = {"training": {"hyperparameters": {"max_iter": 20}}}


def _project(root: Path, settings: dict[str, Any] | None) -> Path:
    """A repository at ``root`` (a .git folder) with ``settings`` as its mlops.yaml."""
    (root / ".git").mkdir(parents=True, exist_ok=True)
    if settings is not None:
        (root / "mlops.yaml").write_text(yaml.safe_dump(settings))
    return root


@pytest.fixture
def no_settings_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    # A newcomer's shell names no settings file: the search is what finds one.
    monkeypatch.delenv("MLOPS_SETTINGS", raising=False)
    return monkeypatch


# --- finding 4: settings found upward, named, and the example only on request ---------


def test_a_command_run_in_a_subfolder_reads_the_repositorys_settings_and_names_the_file(
    tmp_path: Path, no_settings_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _project(tmp_path / "repo", {"project": "loans", "tracking": {"enabled": True}})
    notebooks = root / "notebooks"
    notebooks.mkdir()
    no_settings_env.chdir(notebooks)
    assert main(["extras"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == "tracking"  # from the repository's file, not defaults
    assert f"settings: {root.resolve() / 'mlops.yaml'}" in captured.err


def test_without_a_settings_file_a_command_stops_and_says_how_to_make_one(
    tmp_path: Path, no_settings_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _project(tmp_path / "repo", None)
    classification(100).to_csv(root / "loans.csv", index=False)
    no_settings_env.chdir(root)
    code = main(["prep", "--data", "loans.csv", "--output", "prep"])
    err = capsys.readouterr().err
    assert code == EXIT_ERROR
    assert "no settings file" in err and "mlcore init" in err and "mlcore demo --example" in err
    # Never the churn example's columns in a stranger's data.
    assert "churned" not in err and not (root / "prep").exists()


def test_the_demo_runs_the_example_only_when_asked_for(
    tmp_path: Path, no_settings_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    no_settings_env.chdir(_project(tmp_path / "repo", None))
    assert main(["demo", "--output", "out"]) == EXIT_ERROR
    assert "mlcore demo --example" in capsys.readouterr().err
    assert not Path("out").exists()
    assert main(["demo", "--example", "--settings", "x.yaml"]) == EXIT_ERROR
    assert "--example or --settings, not both" in capsys.readouterr().err


# --- finding 5: a bare `mlcore train` outside SageMaker ---------------------------------


def test_a_bare_train_outside_a_sagemaker_job_is_one_line_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for variable in ("TRAINING_JOB_NAME", "TRAINING_JOB_ARN"):
        monkeypatch.delenv(variable, raising=False)
    root = tmp_path / "opt_ml"
    assert main(["train", "--sagemaker-root", str(root)]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: mlcore train needs --data")
    assert "TRAINING_JOB_NAME" in err
    # No /opt/ml/output/failure left behind to make later local runs look like SageMaker.
    assert not root.exists()


def test_inside_a_sagemaker_training_job_a_bare_train_follows_the_contract(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAINING_JOB_NAME", "mlcore-train-2026")
    root = tmp_path / "opt_ml"
    # No train channel: the contract's own failure, written where SageMaker reads it.
    assert main(["train", "--sagemaker-root", str(root)]) == 1
    assert "no 'train' channel" in (root / "output" / "failure").read_text()


# --- issue 21 item 10: another algorithm starts from its own defaults --------------------


def test_switching_the_algorithm_on_the_command_line_starts_from_its_defaults(
    tmp_path: Path,
) -> None:
    classification(300).to_csv(tmp_path / "d.csv", index=False)
    settings = tmp_path / "mlops.yaml"
    settings.write_text(
        yaml.safe_dump(
            {
                "project": "loans",
                "dataset": {"target": "outcome"},
                "training": {"hyperparameters": {"learning_rate": 0.1, "max_iter": 50}},
            }
        )
    )
    code = main(
        [
            "train",
            "--data",
            str(tmp_path / "d.csv"),
            "--model-dir",
            str(tmp_path / "m"),
            "--algorithm",
            "logistic_regression",
            "--hyperparameters",
            '{"C": 0.5}',
            "--settings",
            str(settings),
        ]
    )
    assert code == 0
    metadata = json.loads((tmp_path / "m" / "metadata.json").read_text())
    assert metadata["algorithm"] == "logistic_regression"
    assert metadata["hyperparameters"] == {"C": 0.5}


# --- finding 1: row order is not time; every split holds every class ---------------------

SPEC = DatasetSpec(target="outcome", numeric=("age", "income", "tenure"), categorical=("region",))


def test_a_file_sorted_by_its_outcome_splits_with_every_class_in_every_part() -> None:
    frame = sorted_by_outcome(classification(400, classes=3))
    split = split_frame(frame, SPEC, seed=42)
    for part in (split.train, split.validation, split.test):
        assert set(part["outcome"]) == set(frame["outcome"])
        # Shuffled, not the file's order: the last rows are not all one class.
        assert part["outcome"].tail(20).nunique() > 1
    again = split_frame(frame, SPEC, seed=42)
    pd.testing.assert_frame_equal(split.test, again.test)  # the seed decides


def test_a_class_too_small_for_every_split_is_an_error_naming_it() -> None:
    frame = classification(300)
    frame.loc[:1, "outcome"] = "rare"
    with pytest.raises(DataError, match=r"'rare' \(2 rows\)"):
        split_frame(frame, SPEC)


def test_a_class_that_only_occurs_late_cannot_be_split_by_time_and_the_error_says_why() -> None:
    frame = classification(300).assign(when=pd.date_range("2025-01-01", periods=300, freq="D"))
    frame.loc[frame.index[-60:], "outcome"] = "new"
    spec = DatasetSpec(
        target="outcome", numeric=("age",), categorical=("region",), timestamp="when"
    )
    with pytest.raises(
        DataError, match=r"train part has no rows of class 'new'.*ordered by 'when'.*split: random"
    ):
        split_frame(frame, spec, by_time=True)


def test_the_history_and_live_period_without_a_timestamp_are_drawn_with_the_seed() -> None:
    frame = sorted_by_outcome(classification(500))
    history, live = partition(
        frame, SPEC, shares=(0.3,), names=("history", "live period"), seed=7, by_time=False
    )
    assert len(history) == 350 and len(live) == 150 and set(live["outcome"]) == {"no", "yes"}
    share = (frame["outcome"] == "yes").mean()
    assert (live["outcome"] == "yes").mean() == pytest.approx(share, abs=0.02)


# --- issue 21 item 9: a minimum evaluation size ------------------------------------------


def test_a_test_split_too_small_to_decide_is_refused_with_the_setting_that_overrides_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    classification(32).to_csv(tmp_path / "tiny.csv", index=False)
    settings = tmp_path / "mlops.yaml"
    document = {"project": "tiny", "dataset": {"target": "outcome"}}
    settings.write_text(yaml.safe_dump(document))
    args = ["prep", "--data", str(tmp_path / "tiny.csv"), "--settings", str(settings)]
    assert main([*args, "--output", str(tmp_path / "p1")]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "the test split (15% of 32 rows; training.test_fraction) holds 5 rows" in err
    assert "fewer than gate.min_evaluation_rows (30)" in err
    document["gate"] = {"min_evaluation_rows": 5}
    settings.write_text(yaml.safe_dump(document))
    assert main([*args, "--output", str(tmp_path / "p2")]) == 0


def test_evaluate_refuses_to_gate_on_a_handful_of_rows(
    tmp_path: Path, saved_model_dir: Path, churn_split: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    churn_split.test.head(12).to_parquet(tmp_path / "few.parquet")
    code = main(
        [
            "evaluate",
            "--model-dir",
            str(saved_model_dir),
            "--data",
            str(tmp_path / "few.parquet"),
            "--output",
            str(tmp_path / "evaluation"),
            "--fail-on-gate",
        ]
    )
    assert code == EXIT_ERROR
    assert "holds 12 rows, fewer than gate.min_evaluation_rows (30)" in capsys.readouterr().err
    assert not (tmp_path / "evaluation" / "gate.json").exists()


# --- finding 3: missing labels, one rule -------------------------------------------------


def test_prep_drops_rows_without_a_label_and_reports_how_many(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with_missing_labels(classification(400), count=11).to_csv(tmp_path / "p.csv", index=False)
    settings = tmp_path / "mlops.yaml"
    settings.write_text(yaml.safe_dump({"project": "penguins", "dataset": {"target": "outcome"}}))
    given = ["--settings", str(settings)]
    out = tmp_path / "prep"
    assert main(["prep", "--data", str(tmp_path / "p.csv"), "--output", str(out), *given]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["unlabelled_rows_dropped"] == 11
    assert json.loads((out / "lineage.json").read_text())["unlabelled_rows_dropped"] == 11
    kept = sum(len(pd.read_parquet(out / part)) for part in ("train", "validation", "test"))
    assert kept == 389
    # Training on the raw file is refused with the count, not a NaN traceback from scikit-learn.
    code = main(
        [
            "train",
            "--data",
            str(tmp_path / "p.csv"),
            "--model-dir",
            str(tmp_path / "m"),
            *given,
        ]
    )
    err = capsys.readouterr().err
    assert code == EXIT_ERROR and "no label in 11 of 400 rows" in err
    assert "Input contains NaN" not in err


# --- finding 6: training threads from the settings ---------------------------------------


class ThreadRecorder(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A classifier that records the OpenMP thread limit in force while it is fitted."""

    def fit(self, X: Any, y: Any) -> ThreadRecorder:
        self.openmp_threads_ = {
            info["num_threads"] for info in threadpool_info() if info["user_api"] == "openmp"
        }
        self.model_ = DummyClassifier().fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self.model_.predict(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        return np.asarray(self.model_.predict_proba(X))


def test_training_runs_with_the_threads_the_settings_give(tmp_path: Path) -> None:
    import joblib

    from mlcore.settings import TrainingSettings
    from mlcore.train import train_model

    settings = TrainingSettings(estimator=f"{__name__}:ThreadRecorder", threads=2)
    bundle = train_model(classification(200), SPEC, settings)
    assert bundle.metadata["training_threads"] == 2
    recorded = bundle.pipeline[-1].openmp_threads_
    assert recorded in ({2}, set())  # empty: no OpenMP runtime loaded in this process
    joblib.dump(bundle.pipeline, tmp_path / "m.joblib")


# --- finding 10: options, descriptions and help alike across commands --------------------


def _subparsers(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    full = build_parser([name])
    action = next(a for a in full._actions if isinstance(a, argparse._SubParsersAction))
    chosen: argparse.ArgumentParser = action.choices[name]
    return chosen


@pytest.mark.parametrize(
    "command",
    ["init", "prep", "train", "evaluate", "drift", "quality", "serve", "batch", "demo", "extras"],
)
def test_every_command_has_a_description_and_one_wording_of_settings(command: str) -> None:
    parser = _subparsers(build_parser(), command)
    assert parser.description, f"mlcore {command} --help has no description"
    settings = next((a for a in parser._actions if "--settings" in a.option_strings), None)
    if command != "init":  # init writes the settings file; it reads none
        assert settings is not None and str(settings.help).startswith(SETTINGS_HELP)


def test_quality_names_its_inputs_as_drift_does() -> None:
    parser = build_parser(["quality"])
    args = parser.parse_args(
        ["quality", "--current", "cap/", "--labels", "l.csv", "--baseline", "m/", "--output", "o"]
    )
    assert (args.current, args.baseline) == ("cap/", "m/")
    drift = build_parser(["drift"]).parse_args(
        ["drift", "--current", "cap/", "--baseline", "m/", "--output", "o"]
    )
    assert (drift.current, drift.baseline) == (args.current, args.baseline)


def test_slice_disparities_are_rounded_as_the_card_shows_figures(
    tmp_path: Path, saved_model_dir: Path, churn_split: Any, fixture_settings: Any
) -> None:
    from mlcore.evaluation_job import run_evaluation

    churn_split.test.to_parquet(tmp_path / "test.parquet")
    run_evaluation(
        model_dir=saved_model_dir,
        data=tmp_path / "test.parquet",
        output_dir=tmp_path / "evaluation",
        settings=fixture_settings,
    )
    card = json.loads((tmp_path / "evaluation" / "model_card.json").read_text())
    disparities = card["ethical_considerations"]["largest_slice_disparities"]
    assert disparities and all(value == round(value, 4) for value in disparities.values())
    markdown = (tmp_path / "evaluation" / "model_card.md").read_text()
    line = next(x for x in markdown.splitlines() if "largest slice disparities" in x)
    assert max(len(number) for number in re.findall(r"\d+\.\d+", line)) <= 6


def test_the_command_makes_openmp_wait_passively_unless_told_otherwise(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    (tmp_path / "s.yaml").write_text("project: waits\n")
    code = (
        "import os, sys\n"
        "from mlcore.cli import main\n"
        f"main(['extras', '--settings', {str(tmp_path / 's.yaml')!r}])\n"
        "print(os.environ['OMP_WAIT_POLICY'], file=sys.stderr)\n"
    )
    environment = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=True
    )
    assert result.stderr.strip().splitlines()[-1] == "PASSIVE"
    environment["OMP_WAIT_POLICY"] = "ACTIVE"
    result = subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=True
    )
    assert result.stderr.strip().splitlines()[-1] == "ACTIVE"
