"""Promises the repository makes to a user who has just cloned it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_readme_quick_start_is_the_two_commands() -> None:
    readme = (REPO / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("##", 1)[0]
    commands = re.findall(r"^make \w+", quick_start, flags=re.MULTILINE)
    assert commands == ["make demo", "make test"]


def test_ci_runs_the_readme_test_command() -> None:
    assert re.search(r"^make test$", (REPO / ".ci" / "run").read_text(), flags=re.MULTILINE)


def test_setup_is_idempotent_once_installed() -> None:
    # `make -q` exits 0 only when the target is up to date: a second run installs nothing.
    for stamp in (".venv/.demo-installed", ".venv/.dev-installed"):
        result = subprocess.run(["make", "-q", stamp], cwd=REPO, capture_output=True, check=False)
        assert result.returncode == 0, f"{stamp} would be rebuilt: {result.stdout!r}"


def test_mlcore_declares_no_cloud_sdk_dependency_and_imports_none() -> None:
    pyproject = (REPO / "pyproject.toml").read_text()
    dependencies = pyproject.split("dependencies = [", 1)[1].split("]", 1)[0]
    for sdk in ("boto3", "sagemaker", "azure", "aws-cdk"):
        assert sdk not in dependencies
    offenders = [
        str(path.relative_to(REPO))
        for path in (REPO / "src" / "mlcore").rglob("*.py")
        if re.search(
            r"^\s*(import|from)\s+(boto3|botocore|sagemaker|azure|aws_cdk)\b",
            path.read_text(),
            re.MULTILINE,
        )
    ]
    assert offenders == []


def test_azure_folder_does_not_shadow_the_azure_namespace() -> None:
    assert not (REPO / "azure" / "__init__.py").exists()
