"""Which settings file a command reads, in a module that imports nothing heavy.

One resolution for every entry point, as git and ruff find their configuration:

1. ``--settings FILE``;
2. else ``$MLOPS_SETTINGS``;
3. else the first ``mlops.yaml`` in the working directory or one of its parents, up to the
   top of the repository (the first directory holding ``.git``) or the file-system root;
4. else no file. Commands that describe the data (prep, train, evaluate, quality, demo)
   then stop and say how to create one (``mlcore init``); the built-in churn example runs
   only when asked for (``mlcore demo --example``); ``serve`` and ``drift`` run on the
   built-in serving and drift defaults and say so.

The command line's help and every command's first line of output name the file in force
without loading pydantic (:mod:`mlcore.settings` holds the settings themselves).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_SETTINGS_FILE = "mlops.yaml"
# Names the settings file when no --settings option is given (CI, tests, job containers).
SETTINGS_ENV_VAR = "MLOPS_SETTINGS"
# The search for mlops.yaml stops at the directory holding this (the repository's top).
_REPOSITORY_MARKER = ".git"

SETTINGS_HELP = (
    f"lifecycle settings YAML (default: ${SETTINGS_ENV_VAR}, else the first "
    f"{DEFAULT_SETTINGS_FILE} in this directory or a parent, up to the repository's top)"
)


def add_settings_option(parser: argparse.ArgumentParser, *, what: str = "") -> None:
    """The ``--settings`` option of every mlcore command, worded the same; ``what`` adds
    what the command reads from the file."""
    parser.add_argument("--settings", metavar="FILE", help=SETTINGS_HELP + what)


@dataclass(frozen=True)
class SettingsSource:
    """Where a command's settings come from: ``path``, or None when no file was found.

    ``how`` says how the file was chosen (``--settings``, ``$MLOPS_SETTINGS`` or found
    upward from ``searched_from``), for the line every command prints.
    """

    path: Path | None
    how: str
    searched_from: Path
    searched_to: Path

    def describe(self) -> str:
        """One line naming the file in force, or where none was found."""
        if self.path is not None:
            return f"settings: {self.path} ({self.how})"
        return f"settings: no {DEFAULT_SETTINGS_FILE} in {self.searched_from}" + (
            ""
            if self.searched_to == self.searched_from
            else f" or its parents up to {self.searched_to}"
        )

    def missing_message(self) -> str:
        """What to do when a command needs settings and none were found."""
        return (
            f"no settings file: there is no {DEFAULT_SETTINGS_FILE} in {self.searched_from}"
            + (
                ""
                if self.searched_to == self.searched_from
                else f" or its parents up to {self.searched_to}"
            )
            + ". Write one from your data with `mlcore init --data FILE --target COLUMN`, "
            f"name one with --settings FILE (or ${SETTINGS_ENV_VAR}), or run the built-in "
            "example with `mlcore demo --example`"
        )


def resolve_settings_path(
    explicit: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Path | None:
    """The settings file in force, or None when there is none (see the module docstring)."""
    return find_settings(explicit, environ=environ, cwd=cwd).path


def find_settings(
    explicit: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> SettingsSource:
    """The settings file in force and how it was chosen (see the module docstring)."""
    env = os.environ if environ is None else environ
    start = (cwd or Path.cwd()).resolve()
    if explicit:
        return SettingsSource(Path(explicit), "--settings", start, start)
    named = env.get(SETTINGS_ENV_VAR) or None
    if named:
        return SettingsSource(Path(named), f"${SETTINGS_ENV_VAR}", start, start)
    folder = start
    while True:
        candidate = folder / DEFAULT_SETTINGS_FILE
        if candidate.is_file():
            how = "this directory" if folder == start else f"found upward from {start}"
            return SettingsSource(candidate, how, start, folder)
        if (folder / _REPOSITORY_MARKER).exists() or folder.parent == folder:
            return SettingsSource(None, "none found", start, folder)
        folder = folder.parent
