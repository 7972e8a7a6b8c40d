"""SIGTERM stops mlcore when it is a container's PID 1 (issue 20, finding 5).

SageMaker stops a job with SIGTERM and sends SIGKILL 120 s later; a processing step's
ContainerEntrypoint makes ``mlcore`` PID 1, which the kernel shields from every signal it has
no handler for. The test runs mlcore as PID 1 of a new PID namespace (``unshare``, as a
container runtime does), sends SIGTERM and expects it gone at once.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlcore import cli
from mlcore.signals import EXIT_TERMINATED

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="a new PID namespace needs root and util-linux unshare (CI runs as root)",
)

# mlcore's own main() with a command that would otherwise run for a minute.
CHILD = """
import sys, time
from mlcore import cli
def wait(args):
    print("ready", flush=True)
    time.sleep(60)
    return 0
class Args:
    verbose = False
    command = "wait"
    handler = staticmethod(wait)
cli.build_parser = lambda argv=None: type("P", (), {"parse_args": lambda self, a: Args()})()
sys.exit(cli.main([]))
"""


def _as_pid_1(code: str) -> tuple[subprocess.Popen[str], int]:
    unshare = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(cli.__file__).parents[1])},
    )
    assert unshare.stdout is not None
    assert unshare.stdout.readline().strip() == "ready"
    children = Path(f"/proc/{unshare.pid}/task/{unshare.pid}/children").read_text().split()
    return unshare, int(children[0])


def _stopped_within(unshare: subprocess.Popen[str], child: int, seconds: float) -> bool:
    os.kill(child, signal.SIGTERM)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if unshare.poll() is not None:
            return True
        time.sleep(0.05)
    return False


def test_mlcore_as_pid_1_stops_on_sigterm() -> None:
    unshare, child = _as_pid_1(CHILD)
    try:
        assert _stopped_within(unshare, child, 10), "mlcore as PID 1 ignored SIGTERM"
        assert unshare.returncode == EXIT_TERMINATED
        assert "stopped by SIGTERM" in unshare.communicate()[1]
    finally:
        unshare.kill()
        unshare.communicate()


def test_a_python_pid_1_without_the_handler_ignores_sigterm() -> None:
    # Why the handler exists: the same wait, without mlcore's main(), outlives SIGTERM.
    unshare, child = _as_pid_1("import time; print('ready', flush=True); time.sleep(60)")
    try:
        assert not _stopped_within(unshare, child, 1.5)
    finally:
        os.kill(child, signal.SIGKILL)
        unshare.communicate()
