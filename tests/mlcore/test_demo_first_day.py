"""`mlcore init` then `mlcore demo` on binary, multiclass and regression files whose rows are
shuffled, sorted (by the outcome, or by a feature) or time-ordered, as real files come
(issue 22): the loop runs, or ends in one line that says what happened and what to do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from first_day_data import (
    classification,
    regression,
    sorted_by_feature,
    sorted_by_outcome,
    with_missing_labels,
)
from tabular_datasets import make_dataset, scikit_learn_metrics

from mlcore.cli import EXIT_ERROR, EXIT_GATE_FAILED, main
from mlcore.demo import LOG_FILE, DemoOptions, DemoResult, run_demo
from mlcore.project_init import InitAnswers, plan_project
from mlcore.settings import MlopsSettings

# One worker runs every demo of the module: each runs once, not once per worker.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("first-day-demo")]

KINDS = ("binary", "multiclass", "regression")
ORDERS = ("shuffled", "sorted", "time-ordered")
MISSING_LABELS = 11


def _table(kind: str, order: str) -> tuple[pd.DataFrame, str]:
    """The table and its target; the shuffled binary one lacks some labels (penguins' sex)."""
    if order == "time-ordered":
        dataset = make_dataset(kind, rows=1_400, seed=3)  # latest 30% drawn with a shift
        return dataset.frame, dataset.target
    if kind == "regression":
        frame, target = regression(1_000, seed=1), "demand"
        # Sorted by its strongest feature, as anes96 is by income.
        return (sorted_by_feature(frame, "temperature") if order == "sorted" else frame), target
    frame = classification(1_000, classes=2 if kind == "binary" else 3, seed=1)
    if order == "sorted":
        return sorted_by_outcome(frame), "outcome"  # as statsmodels' fair is
    return with_missing_labels(frame, count=MISSING_LABELS) if kind == "binary" else frame, (
        "outcome"
    )


def _init_settings(root: Path, frame: pd.DataFrame, target: str, name: str) -> MlopsSettings:
    """What `mlcore init` writes for the file, as a newcomer would run it."""
    frame.to_csv(root / "data.csv", index=False)
    plan = plan_project(
        InitAnswers(project=name, data=root / "data.csv", target=target, clouds=()), root=root
    )
    (root / "mlops.yaml").write_text(plan.changes[0].new)
    document = yaml.safe_load(plan.changes[0].new)
    document["dataset"]["path"] = str(root / "data.csv")
    return MlopsSettings.model_validate(document)


@pytest.fixture(scope="module", params=[(k, o) for k in KINDS for o in ORDERS], ids=str)
def first_demo(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, str, DemoResult, Path]:
    kind, order = request.param
    root = tmp_path_factory.mktemp(f"{kind}-{order}")
    frame, target = _table(kind, order)
    settings = _init_settings(root, frame, target, f"{kind}-{order.replace('-', '')}")
    result = run_demo(DemoOptions(output_dir=root / "out", traffic_rows=400, quiet=True), settings)
    return kind, order, result, root / "out"


def test_the_loop_runs_registers_v1_and_refuses_the_bad_challenger(
    first_demo: tuple[str, str, DemoResult, Path],
) -> None:
    _kind, _order, result, out = first_demo
    summary = json.loads((out / "summary.json").read_text())
    assert summary["versions"][0]["model"] == "v1"
    assert summary["versions"][0]["status"] == "Approved"
    assert result.blocked is not None and not result.blocked["gate"]["passed"]
    assert (out / LOG_FILE).is_file()


def test_without_a_timestamp_the_live_period_is_drawn_with_the_seed_and_the_demo_says_so(
    first_demo: tuple[str, str, DemoResult, Path],
) -> None:
    _kind, order, result, _out = first_demo
    if order == "time-ordered":
        assert result.live_period.startswith("the latest 30% of rows by 'recorded_at'")
        return
    assert "random 30% of rows (seed 42)" in result.live_period
    assert "row order is not taken as time" in result.live_period


def test_every_split_holds_every_class(first_demo: tuple[str, str, DemoResult, Path]) -> None:
    kind, _order, _, out = first_demo
    if kind == "regression":
        pytest.skip("a regression target has no classes")
    spec = json.loads((out / "v1" / "prep" / "spec.json").read_text())
    history = pd.read_parquet(out / "data" / "history.parquet")
    classes = set(history[spec["target"]])
    for part in ("train", "validation", "test"):
        assert set(pd.read_parquet(out / "v1" / "prep" / part)[spec["target"]]) == classes
    assert set(pd.read_parquet(out / "data" / "live.parquet")[spec["target"]]) == classes


def test_a_sorted_file_shows_no_drift_made_by_its_sort_order(
    first_demo: tuple[str, str, DemoResult, Path],
) -> None:
    _kind, order, result, _ = first_demo
    if order != "sorted":
        pytest.skip("only a sorted file could fake drift through its order")
    assert result.drift is not None and not result.drift.dataset_drift


def test_a_time_ordered_shift_is_found_retrained_and_gated_against_the_champion(
    first_demo: tuple[str, str, DemoResult, Path],
) -> None:
    _kind, order, result, out = first_demo
    if order != "time-ordered":
        pytest.skip("only the time-ordered files carry a shift in their latest rows")
    assert result.drift is not None and result.drift.dataset_drift
    gate = json.loads((out / "v2" / "evaluation" / "gate.json").read_text())
    assert gate["champion"] is not None and len(result.versions) == 2
    train = pd.read_parquet(out / "v1" / "prep" / "train")
    test = pd.read_parquet(out / "v1" / "prep" / "test")
    assert pd.to_datetime(train["recorded_at"]).max() < pd.to_datetime(test["recorded_at"]).min()


def test_rows_without_a_label_are_dropped_and_counted(
    first_demo: tuple[str, str, DemoResult, Path],
) -> None:
    kind, order, result, out = first_demo
    expected = MISSING_LABELS if (kind, order) == ("binary", "shuffled") else 0
    assert result.unlabelled_rows_dropped == expected
    assert json.loads((out / "summary.json").read_text())["unlabelled_rows_dropped"] == expected


def test_the_demos_metrics_equal_scikit_learns(
    first_demo: tuple[str, str, DemoResult, Path],
) -> None:
    kind, _, _, out = first_demo
    expected = scikit_learn_metrics(out / "v1" / "opt_ml" / "model", out / "v1" / "prep" / "test")
    document = json.loads((out / "v1" / "evaluation" / "evaluation.json").read_text())
    section = next(iter(document.values()))
    assert (
        document["problem"]["problem_type"]
        == {
            "binary": "binary_classification",
            "multiclass": "multiclass_classification",
            "regression": "regression",
        }[kind]
    )
    for name, value in expected.items():
        assert section[name]["value"] == pytest.approx(value), name


def test_the_demo_scores_live_quality_on_the_labels_that_arrived(
    first_demo: tuple[str, str, DemoResult, Path],
) -> None:
    _, _, result, out = first_demo
    assert result.quality is not None, result.quality_note
    report = json.loads((out / "quality" / "quality_report.json").read_text())
    assert report["rows"] == result.quality.rows > 0


# --- finding 2: failures end in one line with the exit code for the cause ------------------


def _cli_demo(
    root: Path, settings: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    (root / "mlops.yaml").write_text(yaml.safe_dump(settings))
    code = main(["demo", "--output", str(root / "out"), "--settings", str(root / "mlops.yaml")])
    return code, capsys.readouterr().err


def test_a_v1_that_fails_the_gate_ends_in_one_line_with_exit_3_and_the_model_card(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    regression(600, signal=0.0).to_csv(tmp_path / "macro.csv", index=False)
    settings = {
        "project": "macro",
        "dataset": {"path": str(tmp_path / "macro.csv"), "target": "demand"},
        "gate": {"primary_metric": "r2", "min_metrics": {"r2": 0.1}},
    }
    code, err = _cli_demo(tmp_path, settings, capsys)
    assert code == EXIT_GATE_FAILED
    lines = err.strip().splitlines()
    assert lines[0].startswith("settings: ") and len(lines) == 2
    assert lines[1].startswith("error: v1 failed the quality gate (r2 ")
    assert str(tmp_path / "out" / "v1" / "evaluation" / "model_card.md") in lines[1]
    assert "Traceback" not in err


def test_a_training_failure_ends_in_one_line_with_exit_2_and_where_to_read_more(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    classification(400).to_csv(tmp_path / "d.csv", index=False)
    settings = {
        "project": "broken",
        "dataset": {"path": str(tmp_path / "d.csv"), "target": "outcome"},
        "training": {"hyperparameters": {"max_iter": -1}},
    }
    code, err = _cli_demo(tmp_path, settings, capsys)
    assert code == EXIT_ERROR
    lines = err.strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith("error: training v1 failed: ")
    assert "max_iter" in lines[1] and "output/failure" in lines[1] and LOG_FILE in lines[1]
    assert "Traceback" in (tmp_path / "out" / LOG_FILE).read_text()


def test_an_unexpected_failure_names_the_step_and_keeps_the_traceback_in_the_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlcore.demo

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(mlcore.demo, "prepare", broken)
    classification(400).to_csv(tmp_path / "d.csv", index=False)
    settings = {
        "project": "fire",
        "dataset": {"path": str(tmp_path / "d.csv"), "target": "outcome"},
    }
    code, err = _cli_demo(tmp_path, settings, capsys)
    assert code == EXIT_ERROR
    assert err.strip().splitlines()[-1] == (
        "error: the demo step 'prep: validate, split, fingerprint' failed: RuntimeError: disk "
        f"on fire. The traceback is in {tmp_path / 'out' / LOG_FILE}"
    )
    assert "RuntimeError: disk on fire" in (tmp_path / "out" / LOG_FILE).read_text()


def test_a_gate_blocked_challenger_is_named_not_shown_as_v_dash(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from mlcore.demo import _print_summary, _summary_document

    gate = {
        "passed": False,
        "primary_metric": "auc",
        "reasons": ["auc 0.61 is below the minimum 0.7"],
    }
    result = DemoResult(
        versions=[
            {
                "model": "v1",
                "version": 1,
                "status": "Approved",
                "metrics": {"auc": 0.8},
                "gate": {**gate, "passed": True},
            },
            {
                "model": "v2 challenger",
                "version": None,
                "status": "not registered: blocked by the gate",
                "metrics": {"auc": 0.61},
                "gate": gate,
            },
        ]
    )
    _print_summary(__import__("rich.console").console.Console(width=200), result, Path("out"))
    printed = capsys.readouterr().out
    assert "v2 challenger" in printed and "v-" not in printed
    assert _summary_document(result)["versions"][1]["version"] is None


def test_output_off_a_terminal_is_not_wrapped_at_80_columns(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from mlcore.demo import _console

    long_line = "drift on " + "x" * 150
    _console(quiet=False).print(long_line)
    assert long_line in capsys.readouterr().out
