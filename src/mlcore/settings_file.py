"""Where the lifecycle settings come from, in a module that imports nothing heavy.

Resolution (the same in every entry point): ``--settings FILE``, else ``$MLOPS_SETTINGS``,
else ``./mlops.yaml`` when it exists, else the built-in defaults. The command line's help
names these without loading pydantic (see :mod:`mlcore.settings` for the settings themselves).
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_SETTINGS_FILE = "mlops.yaml"
# Names the settings file when no --settings option is given (CI, tests, job containers).
SETTINGS_ENV_VAR = "MLOPS_SETTINGS"


def settings_path(explicit: str | None) -> str | None:
    """The settings file to read, or None for the built-in defaults."""
    path = explicit or os.environ.get(SETTINGS_ENV_VAR) or None
    if path is None and Path(DEFAULT_SETTINGS_FILE).exists():
        path = DEFAULT_SETTINGS_FILE
    return path
