"""A team that points mlops.yaml at its own data still gets a green `make test`.

A copy of this repository is configured with `mlcore init` for a regression dataset with
column names of its own, and the tests that depend on settings run there: the collection
of the whole suite, the settings and CLI tests, and the two cloud tests that once assumed
churn (the SageMaker pipeline definition and the deploy loop).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SETTINGS_DEPENDENT = (
    "tests/mlcore/test_settings.py",
    "tests/mlcore/test_cli.py",
    "tests/pipelines/test_sm_definition.py",
)

pytestmark = pytest.mark.slow


def _copy_repository(target: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    for name in listed:
        source = REPO / name
        if source.is_file():  # a tracked file deleted in the work tree is not copied
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def _regression_data(path: Path) -> None:
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True, scaled=False).frame.rename(
        columns={"target": "progression", "bp": "blood_pressure", "s1": "cholesterol"}
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


# Copying the repository copies its mlops.yaml, which init then replaces in the copy.
@pytest.mark.reads_root_settings
def test_the_suite_passes_when_mlops_yaml_describes_another_dataset(tmp_path: Path) -> None:
    copy = tmp_path / "repository"
    _copy_repository(copy)
    _regression_data(copy / "data" / "visits.csv")
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(str(copy / p) for p in ("src", ".", "azure")),
    }
    environment.pop("MLOPS_SETTINGS")  # the team's shell has none: the copy's conftest sets it
    init = subprocess.run(
        [
            *(sys.executable, "-m", "mlcore", "init", "--name", "diabetes-progression"),
            *("--data", "data/visits.csv", "--target", "progression"),
        ],
        cwd=copy,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    assert init.returncode == 0, init.stderr
    configured = (copy / "mlops.yaml").read_text()
    assert "target: progression" in configured and "churn" not in configured

    suite = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "0", "-q"),
            # The guard's own test runs pytest in pytest: proven once, in the suite itself.
            *("-m", "not slow", "-k", "not reading_the_root_settings", *SETTINGS_DEPENDENT),
        ],
        cwd=copy,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    assert suite.returncode == 0, suite.stdout[-4000:] + suite.stderr[-2000:]
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--collect-only"],
        cwd=copy,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    assert collected.returncode == 0, collected.stdout[-4000:] + collected.stderr[-2000:]
