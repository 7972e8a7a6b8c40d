"""Finding 4 of issue 23: every worker, replacements included, serves the model verified at
start-up, and a worker that cannot load it stops the server (non-zero exit), not a restart loop.

These run ``mlcore serve --workers 2`` as SageMaker does, in its own process, and kill one
worker with SIGKILL as the kernel's out-of-memory killer would.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from test_serve_cli import free_port, wait_for_ping

from mlcore.model import write_manifest

pytestmark = [pytest.mark.xdist_group("trained_model"), pytest.mark.slow]


def workers_of(parent: int) -> list[int]:
    """The uvicorn worker processes (multiprocessing spawn children) of the server."""
    found = []
    for task in Path(f"/proc/{parent}/task").iterdir():
        for pid in (task / "children").read_text().split():
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"spawn_main" in command:
                found.append(int(pid))
    return found


def start_server(model: Path, port: int, *extra: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "mlcore", "serve", "--model-dir", str(model)]
    command += ["--port", str(port), "--workers", "2", *extra]
    env = {k: v for k, v in os.environ.items() if k != "MLCORE_MODEL_SHA256"}
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def another_model_in_place_of(model: Path) -> None:
    """Swap the folder's contents for another valid model: same files, a different threshold."""
    metadata = json.loads((model / "metadata.json").read_text())
    metadata["decision_threshold"] = 0.99
    (model / "metadata.json").write_text(json.dumps(metadata))
    write_manifest(model)


def test_a_replacement_worker_never_serves_a_model_swapped_after_start(
    saved_model_dir: Path, tmp_path: Path
) -> None:
    """No registered hash is given: the workers are held to the hash of the model the server
    verified at start-up (with one given, that is the one they are held to: the same path)."""
    if not Path("/proc/self/task").is_dir():
        pytest.skip("needs Linux /proc to find the worker processes")
    model = Path(shutil.copytree(saved_model_dir, tmp_path / "model"))
    port = free_port()
    server = start_server(model, port)
    try:
        wait_for_ping(f"http://127.0.0.1:{port}", server)
        deadline = time.monotonic() + 30
        while len(workers := workers_of(server.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(workers) == 2, workers
        another_model_in_place_of(model)
        os.kill(workers[0], signal.SIGKILL)
        # The replacement refuses the swapped folder; the server stops instead of serving two
        # models side by side or restarting workers in a loop.
        _, stderr = server.communicate(timeout=90)
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            server.communicate(timeout=60)
    assert server.returncode == 2, stderr[-3000:]
    assert "could not load the model" in stderr
    assert stderr.count("cannot serve") == 1  # one replacement tried, no restart loop
    assert "not the model that was registered" in stderr
    assert "Traceback" not in stderr
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/ping", timeout=2)
