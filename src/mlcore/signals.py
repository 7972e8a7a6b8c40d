"""Stopping a job promptly when mlcore runs as a container's first process.

The kernel gives PID 1 no default signal action: a signal it has no handler for is ignored.
SageMaker stops a job or endpoint with SIGTERM and sends SIGKILL only after a grace period
(120 s for training), so a Python PID 1 without a handler makes every stop wait that long.
The mlcore image runs ``mlcore`` under tini (its ENTRYPOINT), but a processing step's
``ContainerEntrypoint`` replaces the ENTRYPOINT, and then ``mlcore`` itself is PID 1.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

#: What a process killed by SIGTERM reports to its parent: 128 + the signal number.
EXIT_TERMINATED = 128 + signal.SIGTERM


def _terminate(signum: int, frame: FrameType | None) -> None:
    print("mlcore: stopped by SIGTERM", file=sys.stderr)
    # SystemExit unwinds the command (finally blocks run, open files close) and ends the process.
    raise SystemExit(EXIT_TERMINATED)


def exit_on_sigterm_as_pid_1() -> bool:
    """Make SIGTERM end this process when it is PID 1; True when the handler was installed.

    Anywhere else SIGTERM keeps its default action, and a command that installs its own
    handler (``mlcore serve``: uvicorn's graceful shutdown) replaces this one.
    """
    if os.getpid() != 1:
        return False
    signal.signal(signal.SIGTERM, _terminate)
    return True
