"""`mlcore serve` as SageMaker starts it: a separate process configured by SAGEMAKER_* variables,
listening where the platform's router reaches it (issue 20, finding 2)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from mlcore.data import CHURN_SPEC

pytestmark = pytest.mark.xdist_group("trained_model")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for_ping(url: str, process: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"mlcore serve exited early:\n{process.communicate()[1]}")
        try:
            if httpx.get(f"{url}/ping", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"mlcore serve did not answer /ping within {timeout} s")


@pytest.mark.slow
def test_serve_honours_sagemaker_port_and_worker_variables(
    saved_model_dir: Path, churn_frame: pd.DataFrame, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "SAGEMAKER_MODEL_SERVER_WORKERS": "2",
    }
    command = [sys.executable, "-m", "mlcore", "serve", "--model-dir", str(saved_model_dir)]
    command += ["--host", "127.0.0.1", "--capture-dir", str(tmp_path)]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_ping(url, process)
        # The parent only supervises (it checked the model in a child): a model library loaded
        # in it would cost a whole worker's memory. Checked on this running server to save a start.
        maps = Path(f"/proc/{process.pid}/maps")
        if maps.is_file():  # Linux
            mapped = maps.read_text()
            for library in ("/numpy/", "/pandas/", "/sklearn/", "/scipy/"):
                assert library not in mapped, f"the supervising process has {library} loaded"
        body = churn_frame.iloc[:5][list(CHURN_SPEC.features)].to_csv(header=False, index=False)
        for _ in range(4):
            response = httpx.post(
                f"{url}/invocations", content=body, headers={"Content-Type": "text/csv"}
            )
            assert response.status_code == 200, response.text
            assert len(response.json()["predictions"]) == 5
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert "with 2 worker(s)" in stderr
    # Every request was captured by whichever worker answered it, and nothing was lost at shutdown.
    lines = [line for f in tmp_path.rglob("*.jsonl") for line in f.read_text().splitlines()]
    assert len(lines) == 4


def test_serve_without_a_model_exits_with_a_message_naming_the_folder(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mlcore", "serve", "--model-dir", str(tmp_path / "absent")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert f"{tmp_path / 'absent'} is not an mlcore model directory" in result.stderr


def test_bad_sagemaker_port_variable_is_reported(saved_model_dir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mlcore", "serve", "--model-dir", str(saved_model_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SAGEMAKER_BIND_TO_PORT": "eighty"},
    )
    assert result.returncode == 2
    assert "SAGEMAKER_BIND_TO_PORT must be an integer, got 'eighty'" in result.stderr


def test_the_containers_serve_listens_on_all_interfaces_and_a_local_serve_on_loopback(
    saved_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SageMaker runs `<image> serve` (entrypoint mlcore) and sets no SAGEMAKER_BIND_TO_PORT for a
    single-container model; whether a marker file such as /.dockerenv exists is not ours to know.
    The rule: no --model-dir is the container contract (0.0.0.0:8080, the model in
    /opt/ml/model); --model-dir is a local server (loopback)."""
    from mlcore.cli import main
    from mlcore.serve import cli as serve_cli
    from mlcore.serve import server

    for name in ("SAGEMAKER_BIND_TO_PORT", "MLCORE_SERVE_HOST", "SAGEMAKER_MODEL_SERVER_WORKERS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(serve_cli, "DEFAULT_MODEL_DIR", str(saved_model_dir))
    monkeypatch.setattr(server, "_vcpus", lambda: 3)
    started: list[server.ServeOptions] = []
    monkeypatch.setattr(server, "run_server", started.append)
    assert main(["serve"]) == 0
    assert main(["serve", "--model-dir", str(saved_model_dir)]) == 0
    assert main(["serve", "--model-dir", str(saved_model_dir), "--host", "0.0.0.0"]) == 0
    container, local, told = started
    assert (container.host, container.port, container.workers) == ("0.0.0.0", 8080, 3)
    assert container.model_dir == str(saved_model_dir)
    assert (local.host, local.port, local.workers) == ("127.0.0.1", 8080, 1)
    assert told.host == "0.0.0.0"
