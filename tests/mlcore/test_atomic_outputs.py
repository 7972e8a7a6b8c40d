"""Finding 5 of issue 12: outputs appear complete or not at all, and bad paths fail before work.

The full disk is injected: the write that fails raises OSError(ENOSPC) as a real one would.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from mlcore.atomic import staged_output
from mlcore.cli import main
from mlcore.data import CHURN_SPEC, Split
from mlcore.drift.baseline import Baseline
from mlcore.errors import ConfigError, OutputError
from mlcore.model import ModelBundle
from mlcore.train import save_trained_model

pytestmark = pytest.mark.xdist_group("trained_model")


def no_space(*args: Any, **kwargs: Any) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize(
    "failing_write",
    ["mlcore.drift.baseline.Baseline.save", "mlcore.train.write_json", "joblib.dump"],
    ids=["baseline", "sample request", "model file"],
)
def test_a_full_disk_leaves_no_model_folder_that_loads_without_its_baseline(
    trained_bundle: ModelBundle,
    churn_split: Split,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    failing_write: str,
) -> None:
    monkeypatch.setattr(failing_write, no_space)
    target = tmp_path / "model"
    with pytest.raises(OutputError, match=r"No space left on device.*Nothing was published"):
        save_trained_model(trained_bundle, target, reference=churn_split.validation)
    assert not target.exists()
    assert leftovers(tmp_path) == []  # the staging folder is gone too


def test_a_full_disk_keeps_the_previous_model_folder_whole(
    trained_bundle: ModelBundle,
    churn_split: Split,
    saved_model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = Path(shutil.copytree(saved_model_dir, tmp_path / "model"))
    before = sorted(p.relative_to(target) for p in target.rglob("*"))
    monkeypatch.setattr(Baseline, "save", no_space)
    with pytest.raises(OutputError):
        save_trained_model(trained_bundle, target, reference=churn_split.validation)
    assert sorted(p.relative_to(target) for p in target.rglob("*")) == before
    ModelBundle.load(target)


def test_a_rewritten_model_folder_keeps_no_file_of_the_old_one(
    trained_bundle: ModelBundle, churn_split: Split, saved_model_dir: Path, tmp_path: Path
) -> None:
    target = Path(shutil.copytree(saved_model_dir, tmp_path / "model"))
    (target / "stale.txt").write_text("from an older run")
    save_trained_model(trained_bundle, target, reference=churn_split.validation)
    assert not (target / "stale.txt").exists()
    assert (target / "baseline").is_dir() and leftovers(tmp_path) == []


def test_where_a_rename_is_impossible_metadata_is_published_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mount point (Azure ML mounts each job output) cannot be renamed onto: entries move one by one."""
    target = tmp_path / "mounted"
    target.mkdir()
    real_replace = os.replace

    def replace(source: Any, destination: Any) -> None:
        if Path(destination) == target:
            raise OSError(errno.EBUSY, "Device or resource busy")
        real_replace(source, destination)

    moved: list[str] = []
    real_move = shutil.move

    def move(source: str, destination: str) -> Any:
        moved.append(Path(source).name)
        return real_move(source, destination)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(shutil, "move", move)
    with staged_output(target, last=("metadata.json",)) as stage:
        for name in ("metadata.json", "model.joblib", "sample_request.json"):
            (stage / name).write_text(name)
        (stage / "baseline").mkdir()
    assert moved[-1] == "metadata.json" and set(moved) == {
        "metadata.json",
        "model.joblib",
        "sample_request.json",
        "baseline",
    }
    assert (target / "metadata.json").read_text() == "metadata.json"
    assert leftovers(tmp_path) == []


def test_a_full_disk_while_publishing_entry_by_entry_leaves_no_metadata(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "mounted"
    target.mkdir()
    (target / "metadata.json").write_text("an older model's")
    real_replace, real_move = os.replace, shutil.move

    def replace(source: Any, destination: Any) -> None:
        if Path(destination) == target:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_replace(source, destination)

    def move(source: str, destination: str) -> Any:
        if Path(source).name == "baseline":
            no_space()
        return real_move(source, destination)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(shutil, "move", move)
    with pytest.raises(OutputError), staged_output(target, last=("metadata.json",)) as stage:
        (stage / "metadata.json").write_text("new")
        (stage / "baseline").mkdir()
    assert not (target / "metadata.json").exists()  # the folder no longer looks like a model


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text("a file, not a folder")
    return path


def test_train_with_a_model_dir_under_a_file_fails_before_reading_any_data(
    a_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def must_not_load(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the data was read before the output path was checked")

    monkeypatch.setattr("mlcore.train.load_table", must_not_load)
    argv = ["train", "--data", str(tmp_path / "data.csv"), "--target", "churned"]
    assert main([*argv, "--model-dir", str(a_file / "model")]) == 2
    assert f"{a_file} is a file, not a folder" in capsys.readouterr().err


def test_prep_and_evaluate_with_an_output_under_a_file_fail_before_any_work(
    a_file: Path,
    saved_model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def must_not_load(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the data was read before the output path was checked")

    monkeypatch.setattr("mlcore.prep.load_table", must_not_load)
    monkeypatch.setattr("mlcore.evaluation_job.load_table", must_not_load)
    output = str(a_file / "out")
    assert main(["prep", "--data", "raw.csv", "--output", output]) == 2
    evaluate = ["evaluate", "--model-dir", str(saved_model_dir), "--data", "test.csv"]
    assert main([*evaluate, "--output", output]) == 2
    assert capsys.readouterr().err.count("is a file, not a folder") == 2


def test_evaluate_publishes_its_reports_together(
    saved_model_dir: Path,
    churn_split: Split,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = tmp_path / "test.parquet"
    churn_split.test.to_parquet(data)
    monkeypatch.setattr("mlcore.evaluation_job.write_model_card", no_space)
    argv = ["evaluate", "--model-dir", str(saved_model_dir), "--data", str(data)]
    assert main([*argv, "--output", str(tmp_path / "evaluation")]) == 2
    assert not (tmp_path / "evaluation").exists()  # no evaluation.json for a ConditionStep


def test_prep_publishes_splits_spec_and_lineage_together(
    churn_frame: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlcore.prep import prepare
    from mlcore.settings import MlopsSettings

    monkeypatch.setattr("mlcore.prep.write_json", no_space)
    with pytest.raises(OutputError):
        prepare(churn_frame, CHURN_SPEC, MlopsSettings(), tmp_path / "prep", source="test")
    assert not (tmp_path / "prep").exists()
    monkeypatch.undo()
    prepare(churn_frame, CHURN_SPEC, MlopsSettings(), tmp_path / "prep", source="test")
    lineage = json.loads((tmp_path / "prep" / "lineage.json").read_text())
    assert set(lineage["split_rows"]) == {"train", "validation", "test"}


def test_a_model_dir_under_a_file_is_a_config_error_raised_before_any_write(
    trained_bundle: ModelBundle, churn_split: Split, a_file: Path
) -> None:
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        save_trained_model(trained_bundle, a_file / "model", reference=churn_split.validation)
    assert leftovers(a_file.parent) == []
