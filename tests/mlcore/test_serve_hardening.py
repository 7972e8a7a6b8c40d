"""Findings 1, 2, 3 and 7 of issue 12 against the real server: hostile input, stalled clients,
one scoring call at a time, TCP_NODELAY on every path, and where the server listens."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from uvicorn.server import ServerState

from mlcore.data import CHURN_SPEC
from mlcore.model import ModelBundle
from mlcore.serve import Predictor, serve_in_thread
from mlcore.serve import server as server_module
from mlcore.serve.payload import JSON
from mlcore.serve.protocol import EndpointProtocol, ServeConfig
from mlcore.serve.server import (
    ServeOptions,
    default_host,
    default_workers,
    run_server,
    uvicorn_config,
)
from mlcore.settings import ServingSettings

pytestmark = pytest.mark.xdist_group("trained_model")

FEATURES = list(CHURN_SPEC.features)
# Short deadlines so a stalled client is dropped within the test, not after 10 s.
QUICK = ServingSettings(header_timeout_seconds=0.5, body_timeout_seconds=0.5)


@pytest.fixture(scope="module")
def url(saved_model_dir: Path) -> Iterator[str]:
    with serve_in_thread(saved_model_dir, settings=QUICK) as base:
        yield base


def raw_exchange(url: str, *chunks: bytes, pause: float = 0.0, wait: float = 5.0) -> bytes:
    """Send raw bytes (pausing between chunks) and return everything the server answers."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait) as conn:
        try:
            for chunk in chunks:
                conn.sendall(chunk)
                time.sleep(pause)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed the connection mid-send: read what it said
        answer = b""
        while True:
            try:
                data = conn.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not data:
                return answer  # the server closed the connection
            answer += data


def status_and_json(answer: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), head
    return int(head.split()[1]), json.loads(body)


@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"instances": [[' + "1" * 4301 + "]]}",
        '{"instances": [[' + "1" * 400 + "]]}",
    ],
    ids=["deep nesting", "4301-digit integer", "400-digit integer"],
)
def test_hostile_payloads_get_400_json_not_500(url: str, body: str) -> None:
    response = httpx.post(f"{url}/invocations", content=body, headers={"Content-Type": JSON})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "Bad Request" and response.json()["message"]


def test_a_malformed_request_line_gets_a_json_400(url: str) -> None:
    status, body = status_and_json(raw_exchange(url, b"NOT HTTP AT ALL\r\n\r\n"))
    assert status == 400 and "not valid HTTP/1.1" in body["message"]


def test_a_client_stalled_mid_headers_is_answered_408_and_dropped(url: str) -> None:
    status, body = status_and_json(raw_exchange(url, b"POST /invocations HTTP/1.1\r\nHost: x\r\n"))
    assert status == 408 and "request line and headers" in body["message"]


def test_a_client_trickling_its_headers_is_dropped_at_the_header_deadline(url: str) -> None:
    head = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
    # One byte every 0.1 s: the whole head would take 6 s, the deadline is 0.5 s.
    answer = raw_exchange(url, *(head[i : i + 1] for i in range(len(head))), pause=0.1)
    assert status_and_json(answer)[0] == 408


def test_a_connection_that_sends_nothing_is_dropped(url: str) -> None:
    assert status_and_json(raw_exchange(url))[0] == 408


def test_a_client_stalled_mid_body_is_answered_408(url: str) -> None:
    head = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: 500\r\n\r\n"
    status, body = status_and_json(raw_exchange(url, head + b"42,"))
    assert status == 408 and "body did not arrive" in body["message"]


def test_a_request_head_past_the_cap_gets_a_json_431_and_is_dropped(url: str) -> None:
    # The cap counts the bytes after the read the head began in (httptools keeps an
    # unfinished header in memory; h11 stopped at 16 KiB).
    answer = raw_exchange(
        url,
        b"POST /invocations HTTP/1.1\r\nHost: x\r\n",
        b"X-Padding: " + b"a" * 40_000 + b"\r\n",
        pause=0.1,
    )
    status, body = status_and_json(answer)
    assert status == 431 and "exceed 16384 bytes" in body["message"]


def test_a_large_body_sent_with_its_head_in_one_write_is_not_taken_for_a_large_head(
    url: str, churn_frame: pd.DataFrame
) -> None:
    body = churn_frame.iloc[:600][FEATURES].to_json(orient="records").encode()
    head = (
        "POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    assert len(body) > 100_000
    status, answer = status_and_json(raw_exchange(url, head + body))
    assert status == 200 and len(answer["predictions"]) == 600


class SlowPredictor(Predictor):
    """Records how many scoring calls overlap, and takes its time over each."""

    active = 0
    most_at_once = 0
    lock = threading.Lock()

    def predict_frame(self, features: pd.DataFrame) -> pd.DataFrame:
        with SlowPredictor.lock:
            SlowPredictor.active += 1
            SlowPredictor.most_at_once = max(SlowPredictor.most_at_once, SlowPredictor.active)
        try:
            time.sleep(0.2)
            return super().predict_frame(features)
        finally:
            with SlowPredictor.lock:
                SlowPredictor.active -= 1


def test_one_scoring_call_at_a_time_while_ping_stays_answered(
    trained_bundle: ModelBundle, churn_frame: pd.DataFrame
) -> None:
    body = churn_frame.iloc[:2][FEATURES].to_csv(header=False, index=False)
    with serve_in_thread(SlowPredictor(trained_bundle)) as base, httpx.Client(timeout=30) as http:
        results: list[int] = []

        def invoke() -> None:
            answer = http.post(
                f"{base}/invocations", content=body, headers={"Content-Type": "text/csv"}
            )
            results.append(answer.status_code)

        callers = [threading.Thread(target=invoke) for _ in range(6)]
        for caller in callers:
            caller.start()
        time.sleep(0.1)
        assert http.get(f"{base}/ping").status_code == 200  # while the scorer is busy
        for caller in callers:
            caller.join()
    assert results == [200] * 6
    assert SlowPredictor.most_at_once == 1


def test_a_request_past_the_scoring_deadline_gets_a_json_503(
    trained_bundle: ModelBundle, churn_frame: pd.DataFrame
) -> None:
    body = churn_frame.iloc[:2][FEATURES].to_csv(header=False, index=False)
    quick_scoring = ServingSettings(scoring_timeout_seconds=0.05)
    with serve_in_thread(SlowPredictor(trained_bundle), settings=quick_scoring) as base:
        response = httpx.post(
            f"{base}/invocations", content=body, headers={"Content-Type": "text/csv"}
        )
    assert response.status_code == 503
    assert "scoring did not finish within 0.05 s" in response.json()["message"]


def test_the_protocol_sets_tcp_nodelay_on_each_accepted_connection() -> None:
    """Whoever bound the listening socket (uvicorn binds with proto=0: uvicorn issue 3149)."""

    class Transport:
        def __init__(self, sock: socket.socket) -> None:
            self.sock = sock

        def get_extra_info(self, name: str, default: Any = None) -> Any:
            return self.sock if name == "socket" else default

    async def app(scope: Any, receive: Any, send: Any) -> None:
        pass

    config = ServeConfig(app, lifespan="off")
    config.load()
    loop = asyncio.new_event_loop()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:  # proto 0, as uvicorn's
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            with socket.create_connection(listener.getsockname()):
                accepted, _ = listener.accept()
                with accepted:
                    assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
                    protocol = EndpointProtocol(config, ServerState(), {}, _loop=loop)
                    protocol.connection_made(Transport(accepted))
                    assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
                    protocol._cancel_header_deadline()
    finally:
        loop.close()


def server_side_nodelay(client: socket.socket) -> int:
    """TCP_NODELAY of the server's end of ``client``'s connection (the server runs in this process)."""
    for fd in os.listdir("/proc/self/fd"):
        try:
            candidate = socket.socket(fileno=os.dup(int(fd)))
        except OSError:
            continue  # not a socket
        with candidate:
            try:
                if candidate.getpeername() == client.getsockname():
                    return candidate.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            except OSError:
                continue
    raise AssertionError("the server's end of the connection was not found")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/fd")
def test_a_uvicorn_bound_socket_serves_with_tcp_nodelay_on_the_real_event_loop(
    trained_bundle: ModelBundle,
) -> None:
    """The server as configured (uvloop, httptools), on a socket bound as uvicorn binds (proto 0).

    uvloop sets TCP_NODELAY on its TCP transports itself (this test passes without the
    protocol's own setsockopt, which the test above checks and the asyncio loop needs).
    """
    import uvicorn

    from mlcore.serve import create_app

    app = create_app(Predictor(trained_bundle))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn_config(ServeOptions(port=0), app, own_logging=False))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
        thread.start()
        try:
            while not server.started:
                time.sleep(0.01)
            assert type(server.servers[0].get_loop()).__module__.startswith("uvloop")
            with socket.create_connection(listener.getsockname()) as client:
                client.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
                assert client.recv(4096).startswith(b"HTTP/1.1 200")
                assert server_side_nodelay(client) == 1
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            app.state.scorer.shutdown(cancel_futures=True)


def test_the_server_runs_on_uvloop_and_the_httptools_protocol() -> None:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    config = uvicorn_config(ServeOptions(), "mlcore.serve.server:app_from_environment")
    assert config.loop == ("asyncio" if sys.platform == "win32" else "uvloop")
    assert isinstance(config.http, type) and issubclass(config.http, HttpToolsProtocol)


@pytest.mark.parametrize("workers", [1, 3])
def test_run_server_uses_the_endpoint_protocol_and_a_tcp_socket_for_any_worker_count(
    saved_model_dir: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    seen: dict[str, Any] = {}

    def fake_server_run(self: Any, sockets: list[socket.socket]) -> None:
        seen.update(config=self.config, socket=sockets[0])

    class FakeMultiprocess:
        def __init__(self, config: Any, sockets: list[socket.socket]) -> None:
            seen.update(config=config, socket=sockets[0])
            self.processes: list[Any] = []

        def run(self) -> None:
            pass

    monkeypatch.setattr("uvicorn.Server.run", fake_server_run)
    monkeypatch.setattr(server_module, "Multiprocess", FakeMultiprocess)
    monkeypatch.delenv("MLCORE_SERVE_OPTIONS", raising=False)
    run_server(ServeOptions(model_dir=str(saved_model_dir), port=0, workers=workers))
    assert seen["config"].http is EndpointProtocol
    assert seen["config"].workers == workers
    assert seen["socket"].proto == socket.IPPROTO_TCP


def test_uvicorn_config_carries_the_settings_deadlines() -> None:
    options = ServeOptions(header_timeout_seconds=3, keep_alive_seconds=7)
    config = uvicorn_config(options, "mlcore.serve.server:app_from_environment")
    assert config.header_timeout_seconds == 3 and config.timeout_keep_alive == 7


@pytest.mark.parametrize(
    ("environ", "container", "host"),
    [
        ({}, False, "127.0.0.1"),
        ({}, True, "0.0.0.0"),
        # SageMaker sets SAGEMAKER_BIND_TO_PORT only for pipelines and multi-container
        # endpoints: the variable neither makes nor is needed for a container's bind.
        ({"SAGEMAKER_BIND_TO_PORT": "8080"}, False, "127.0.0.1"),
        ({"MLCORE_SERVE_HOST": "10.1.2.3"}, True, "10.1.2.3"),
    ],
    ids=["local", "container contract", "a stray sagemaker variable", "told otherwise"],
)
def test_the_server_listens_on_all_interfaces_only_under_the_container_contract(
    environ: dict[str, str], container: bool, host: str
) -> None:
    assert default_host(environ, container=container) == host


def test_workers_default_to_the_vcpu_count_under_the_container_contract(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(server_module, "_vcpus", lambda: 4)
    assert default_workers({}, container=True) == 4
    assert default_workers({"SAGEMAKER_MODEL_SERVER_WORKERS": "3"}, container=True) == 3
    assert default_workers({"SAGEMAKER_BIND_TO_PORT": "8080"}, container=False) == 1


def test_metrics_count_invocations_by_status(url: str, churn_frame: pd.DataFrame) -> None:
    body = churn_frame.iloc[:1][FEATURES].to_csv(header=False, index=False)
    httpx.post(f"{url}/invocations", content=body, headers={"Content-Type": "text/csv"})
    httpx.post(f"{url}/invocations", content="1,2", headers={"Content-Type": "text/csv"})
    text = httpx.get(f"{url}/metrics").text
    assert 'mlcore_invocations_total{status="200"}' in text
    assert 'mlcore_invocations_total{status="400"}' in text
    assert "mlcore_capture_failures_total 0.0" in text
