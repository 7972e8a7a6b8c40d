"""What a model needs to be traced back: the git commit (and whether the tree was clean) and
library versions."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass
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
# Optional estimator libraries, recorded when installed: a model trained with them needs them.
_OPTIONAL_LIBRARIES = ("xgboost", "xgboost-cpu", "lightgbm")


@dataclass(frozen=True)
class GitState:
    """The commit the code was built from and whether the work tree had uncommitted changes.

    ``dirty`` is None when nobody could check (no git in the container, or a commit handed
    over by a pipeline that did not say); a model trained from a dirty tree cannot be
    rebuilt from its commit alone.
    """

    commit: str | None
    dirty: bool | None


def git_state(
    explicit: str | None = None, *, dirty: bool | None = None, cwd: Path | None = None
) -> GitState:
    """The commit: given, from a CI variable, or from git; dirty from ``git status`` when it can tell.

    With a given or CI-provided commit, the work tree is checked only when git's HEAD is
    that commit (the tree it describes is the one here); otherwise ``dirty`` stays as given.
    """
    commit = explicit or next(
        (os.environ[name] for name in _COMMIT_VARIABLES if os.environ.get(name)), None
    )
    head = _git(["rev-parse", "HEAD"], cwd)
    if commit is None:
        commit = head
    if dirty is None and head is not None and head == commit:
        status = _git(["status", "--porcelain", "--untracked-files=normal"], cwd, strip=False)
        dirty = None if status is None else bool(status.strip())
    return GitState(commit=commit, dirty=dirty)


def git_commit(explicit: str | None = None, *, cwd: Path | None = None) -> str | None:
    """The commit the code was built from: given, from a CI variable, or from git; None when unknown."""
    return git_state(explicit, cwd=cwd).commit


def _git(arguments: list[str], cwd: Path | None, *, strip: bool = True) -> str | None:
    try:
        result = subprocess.run(
            ["git", *arguments],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None  # no git in slim containers: the commit arrives as a hyperparameter there
    if result.returncode != 0:
        return None
    return (result.stdout.strip() or None) if strip else result.stdout


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "mlcore": mlcore.__version__}
    for name in (*_TRACKED_LIBRARIES, *_OPTIONAL_LIBRARIES):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions
