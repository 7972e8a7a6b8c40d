"""What a model needs to be traced back: git commit and library versions."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import mlcore

# CI systems that check out a commit expose it in one of these variables.
_COMMIT_VARIABLES = (
    "GIT_COMMIT",
    "CODEBUILD_RESOLVED_SOURCE_VERSION",
    "BUILD_SOURCEVERSION",
    "GITHUB_SHA",
)
_TRACKED_LIBRARIES = ("numpy", "pandas", "scipy", "scikit-learn", "joblib")


def git_commit(explicit: str | None = None, *, cwd: Path | None = None) -> str | None:
    """The commit the code was built from: given, from a CI variable, or from git; None when unknown."""
    if explicit:
        return explicit
    for name in _COMMIT_VARIABLES:
        if os.environ.get(name):
            return os.environ[name]
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None  # no git in slim containers: the commit arrives as a hyperparameter there
    return result.stdout.strip() or None if result.returncode == 0 else None


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "mlcore": mlcore.__version__}
    for name in _TRACKED_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions
