"""Outputs appear complete or not at all, and bad paths fail before work (finding 5 of issue
12); nothing mlcore did not write is deleted, and published folders are readable by other
users (findings 1 and 7 of issue 23).

The full disk is injected: the write that fails raises OSError(ENOSPC) as a real one would.
Running a step as another user needs root (setpriv); those tests skip without it.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from mlcore.atomic import OUTPUT_MARKER, staged_output
from mlcore.cli import main
from mlcore.data import CHURN_SPEC, Split
from mlcore.drift.baseline import Baseline
from mlcore.errors import ConfigError, OutputError
from mlcore.model import ModelBundle
from mlcore.registry import LocalModelRegistry
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
    assert moved[0] == OUTPUT_MARKER and moved[-1] == "metadata.json"
    assert set(moved) == {
        OUTPUT_MARKER,
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
    (target / OUTPUT_MARKER).write_text("an earlier run's output")
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


# Finding 1 of issue 23: never delete what mlcore did not write.


@pytest.fixture
def someones_work(tmp_path: Path) -> Path:
    folder = tmp_path / "thesis"
    (folder / "sub").mkdir(parents=True)
    (folder / "thesis.txt").write_text("three years of work")
    (folder / "sub" / "notes.md").write_text("notes")
    return folder


def contents(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def must_not_load(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("the data was read before the output folder was checked")


@pytest.mark.parametrize("command", ["train", "prep", "evaluate"])
def test_a_folder_mlcore_did_not_write_is_refused_before_any_work_and_left_whole(
    command: str,
    someones_work: Path,
    saved_model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for module in ("mlcore.train", "mlcore.prep", "mlcore.evaluation_job"):
        monkeypatch.setattr(f"{module}.load_table", must_not_load)
    before = contents(someones_work)
    argv = {
        "train": ["train", "--data", "data.csv", "--target", "churned", "--model-dir"],
        "prep": ["prep", "--data", "data.csv", "--output"],
        "evaluate": ["evaluate", "--model-dir", str(saved_model_dir), "--data", "x", "--output"],
    }[command]
    assert main([*argv, str(someones_work)]) == 2
    err = capsys.readouterr().err
    assert "already holds files mlcore did not write (sub, thesis.txt)" in err
    assert "--overwrite" in err
    assert contents(someones_work) == before


def test_prep_into_someones_folder_is_refused_and_with_overwrite_replaces_it(
    churn_frame: Any, someones_work: Path, tmp_path: Path
) -> None:
    data = tmp_path / "raw.csv"
    churn_frame.to_csv(data, index=False)
    before = contents(someones_work)
    argv = ["prep", "--data", str(data), "--target", "churned", "--output", str(someones_work)]
    assert main(argv) == 2
    assert contents(someones_work) == before
    assert main([*argv, "--overwrite"]) == 0
    assert not (someones_work / "thesis.txt").exists()
    assert (someones_work / "spec.json").is_file() and (someones_work / OUTPUT_MARKER).is_file()
    # Now the folder is mlcore's own: the next run replaces it without being asked.
    assert main(argv) == 0


def test_a_model_folder_mlcore_wrote_is_replaced_and_a_foreign_one_only_when_asked(
    trained_bundle: ModelBundle, churn_split: Split, someones_work: Path
) -> None:
    with pytest.raises(ConfigError, match="pass --overwrite"):
        save_trained_model(trained_bundle, someones_work, reference=churn_split.validation)
    assert (someones_work / "thesis.txt").is_file()
    save_trained_model(
        trained_bundle, someones_work, reference=churn_split.validation, overwrite=True
    )
    assert not (someones_work / "thesis.txt").exists()
    ModelBundle.load(someones_work)


def test_files_put_into_the_target_while_the_step_ran_are_not_deleted(
    tmp_path: Path,
) -> None:
    target = tmp_path / "out"
    with pytest.raises(ConfigError, match="mlcore did not write"), staged_output(target) as stage:
        (stage / "result.json").write_text("{}")
        target.mkdir()
        (target / "report.docx").write_text("someone saved this meanwhile")
    assert (target / "report.docx").read_text() == "someone saved this meanwhile"
    assert leftovers(tmp_path) == []


# Finding 7 of issue 23: published folders get the umask's modes; unreadable ones are exit 2.


@contextmanager
def umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def modes(folder: Path) -> set[tuple[str, int]]:
    return {
        ("folder" if p.is_dir() else "file", stat.S_IMODE(p.stat().st_mode))
        for p in [folder, *folder.rglob("*")]
    }


@pytest.mark.parametrize(("mask", "folder", "file"), [(0o022, 0o755, 0o644), (0o027, 0o750, 0o640)])
def test_published_folders_have_the_modes_the_umask_gives(
    trained_bundle: ModelBundle,
    churn_split: Split,
    tmp_path: Path,
    mask: int,
    folder: int,
    file: int,
) -> None:
    with umask(mask):
        model = save_trained_model(trained_bundle, tmp_path / "m", reference=churn_split.validation)
        package = LocalModelRegistry(tmp_path / "registry").register("churn", model_dir=model)
    assert modes(model) == {("folder", folder), ("file", file)}
    assert modes(package.path) == {("folder", folder), ("file", file)}


def as_nobody(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", *command],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HOME": "/tmp", "PYTHONPATH": os.pathsep.join(sys.path)},
    )


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A folder every user can reach (pytest's own tmp_path is private to its user)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run a step as another user")
    folder = Path(tempfile.mkdtemp(prefix="mlcore-shared-"))
    folder.chmod(0o755)
    try:
        if as_nobody(sys.executable, "-c", "import mlcore.serve").returncode != 0:
            pytest.skip("user nobody cannot run this Python (its installation is private)")
        yield folder
    finally:
        shutil.rmtree(folder)


def test_a_serving_user_other_than_the_trainer_can_load_the_model(
    trained_bundle: ModelBundle, churn_split: Split, shared_folder: Path
) -> None:
    with umask(0o022):
        model = save_trained_model(
            trained_bundle, shared_folder / "model", reference=churn_split.validation
        )
    load = f"from mlcore.serve import Predictor; Predictor.load({str(model)!r})"
    result = as_nobody(sys.executable, "-c", load)
    assert result.returncode == 0, result.stderr[-2000:]


def test_a_model_folder_the_serving_user_cannot_read_is_exit_2_with_the_reason(
    saved_model_dir: Path, shared_folder: Path
) -> None:
    model = Path(shutil.copytree(saved_model_dir, shared_folder / "model"))
    model.chmod(0o700)
    result = as_nobody(sys.executable, "-m", "mlcore", "serve", "--model-dir", str(model))
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Permission denied" in result.stderr and "Traceback" not in result.stderr


def test_a_file_system_error_outside_mlcores_own_checks_is_exit_2_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refused(*args: Any, **kwargs: Any) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "raw.csv"))

    monkeypatch.setattr("mlcore.prep.load_table", refused)
    argv = ["prep", "--data", str(tmp_path / "raw.csv"), "--output", str(tmp_path / "out")]
    assert main(argv) == 2
    assert f"{tmp_path / 'raw.csv'}: Permission denied" in capsys.readouterr().err
