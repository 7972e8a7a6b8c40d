"""Findings 5, 6 and 8 of issue 23: callers that leave, and callers that send too much.

* a request answered 503 at its deadline, or whose client disconnected, is neither scored
  (when it has not reached the model yet) nor captured;
* a client leaving mid-body or mid-scoring is counted apart, never as a 500;
* the 413 for an oversized body reaches a plain client (``http.client``), which sends its
  whole body before it reads any answer.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pandas as pd
import pytest

from mlcore.capture import CaptureWriter
from mlcore.data import CHURN_SPEC
from mlcore.model import ModelBundle
from mlcore.serve import Predictor, serve_in_thread
from mlcore.serve.payload import CSV, JSON
from mlcore.serve.predictor import Abandoned, Payload
from mlcore.settings import ServingSettings

pytestmark = pytest.mark.xdist_group("trained_model")

FEATURES = list(CHURN_SPEC.features)
QUICK_DEADLINE = ServingSettings(scoring_timeout_seconds=0.3)


class SlowPredictor(Predictor):
    """A model call that takes 0.8 s (a large request on a busy machine); counts the calls."""

    calls: ClassVar[list[int]] = []
    finished: ClassVar[threading.Event] = threading.Event()

    def predict_frame(self, features: pd.DataFrame) -> pd.DataFrame:
        SlowPredictor.calls.append(len(features))
        time.sleep(0.8)
        try:
            return super().predict_frame(features)
        finally:
            SlowPredictor.finished.set()


@pytest.fixture
def slow(trained_bundle: ModelBundle) -> SlowPredictor:
    SlowPredictor.calls = []
    SlowPredictor.finished = threading.Event()
    return SlowPredictor(trained_bundle)


@pytest.fixture(scope="module")
def body(churn_frame: pd.DataFrame) -> bytes:
    return churn_frame.iloc[:3][FEATURES].to_csv(header=False, index=False).encode()


def metric(url: str, name: str) -> float:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


# Finding 5: no scoring or capture for a caller that is gone.


def test_a_request_answered_503_at_its_deadline_is_never_captured(
    slow: SlowPredictor, body: bytes, tmp_path: Path
) -> None:
    writer = CaptureWriter(tmp_path)
    with serve_in_thread(slow, capture=writer, settings=QUICK_DEADLINE) as url:
        response = httpx.post(f"{url}/invocations", content=body, headers={"Content-Type": CSV})
        assert response.status_code == 503
        assert SlowPredictor.finished.wait(5)  # the model call ran on, as it cannot be stopped
        time.sleep(0.3)  # where the old server captured the abandoned answer
        assert metric(url, "mlcore_capture_failures_total") == 0
    assert writer.records_written == 0 and not list(tmp_path.rglob("*.jsonl"))


def test_a_request_whose_deadline_passes_while_it_is_decoded_never_reaches_the_model(
    slow: SlowPredictor, body: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlcore.serve import predictor as predictor_module

    real_decode = predictor_module.decode_request

    def slow_decode(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.5)  # a 40,000-row body takes seconds to decode on a busy machine
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(predictor_module, "decode_request", slow_decode)
    writer = CaptureWriter(tmp_path)
    with serve_in_thread(slow, capture=writer, settings=QUICK_DEADLINE) as url:
        response = httpx.post(f"{url}/invocations", content=body, headers={"Content-Type": CSV})
        assert response.status_code == 503
        time.sleep(0.6)  # decoding ends after the deadline: then the model must not be called
    assert SlowPredictor.calls == []
    assert writer.records_written == 0


def test_a_batch_leaves_out_of_the_model_call_the_requests_no_longer_wanted(
    trained_bundle: ModelBundle, churn_frame: pd.DataFrame
) -> None:
    rows = churn_frame[FEATURES]
    payloads = [
        Payload(rows.iloc[i : i + 2].to_csv(header=False, index=False), CSV) for i in (0, 2, 4)
    ]
    SlowPredictor.calls = []
    results = SlowPredictor(trained_bundle).answer_many(payloads, still_wanted=lambda i: i != 1)
    assert SlowPredictor.calls == [4]  # rows of the first and third requests only
    assert isinstance(results[1], Abandoned)
    alone = Predictor(trained_bundle)
    assert results[0] == alone.answer(payloads[0].body, CSV, JSON)
    assert results[2] == alone.answer(payloads[2].body, CSV, JSON)


# Finding 6: disconnects are counted apart from server faults.


def test_clients_leaving_mid_body_are_counted_apart_and_never_as_500(
    saved_model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with serve_in_thread(saved_model_dir) as url:
        for _ in range(5):
            with socket.create_connection(host_port(url), timeout=5) as conn:
                conn.sendall(
                    b"POST /invocations HTTP/1.1\r\nHost: test\r\nContent-Type: text/csv\r\n"
                    b"Content-Length: 1000\r\n\r\n3,17,1"
                )
        deadline = time.monotonic() + 5
        while metric(url, "mlcore_client_disconnects_total") < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert metric(url, "mlcore_client_disconnects_total") == 5
        assert 'mlcore_invocations_total{status="500"}' not in httpx.get(f"{url}/metrics").text
    assert "Traceback" not in caplog.text and "scoring failed" not in caplog.text


def test_a_client_leaving_while_its_request_is_scored_is_not_captured_or_counted_as_answered(
    slow: SlowPredictor, body: bytes, tmp_path: Path
) -> None:
    writer = CaptureWriter(tmp_path)
    with serve_in_thread(slow, capture=writer) as url:
        with socket.create_connection(host_port(url), timeout=5) as conn:
            head = (
                "POST /invocations HTTP/1.1\r\nHost: test\r\nContent-Type: text/csv\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            )
            conn.sendall(head.encode() + body)
            time.sleep(0.2)  # the request is being scored: leave
        assert SlowPredictor.finished.wait(5)
        time.sleep(0.3)
        assert metric(url, "mlcore_client_disconnects_total") == 1
        assert 'mlcore_invocations_total{status="200"}' not in httpx.get(f"{url}/metrics").text
    assert writer.records_written == 0


# Finding 8: a 413 a plain client can read.


@pytest.fixture(scope="module")
def small_limit_url(saved_model_dir: Path) -> Iterator[str]:
    with serve_in_thread(saved_model_dir, max_body_bytes=1024) as url:
        yield url


def test_a_plain_http_client_reads_the_413_for_an_oversized_body(
    small_limit_url: str, body: bytes
) -> None:
    host, port = host_port(small_limit_url)
    for _ in range(5):  # the old server reset this connection 5 times out of 5
        conn = http.client.HTTPConnection(host, port, timeout=10)
        try:
            conn.request(
                "POST", "/invocations", body=b"1," * 200_000, headers={"Content-Type": CSV}
            )
            response = conn.getresponse()
            assert response.status == 413
            assert "exceeds 1024 bytes" in json.loads(response.read())["message"]
            # The body was read to its end, so the connection is still good for the next request.
            conn.request("POST", "/invocations", body=body, headers={"Content-Type": CSV})
            again = conn.getresponse()
            assert again.status == 200 and len(json.loads(again.read())["predictions"]) == 3
        finally:
            conn.close()


def test_a_chunked_body_that_grows_past_the_limit_gets_a_readable_413(small_limit_url: str) -> None:
    host, port = host_port(small_limit_url)
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        chunks = (b"1,2,3\n" * 1000 for _ in range(30))
        conn.request(
            "POST", "/invocations", body=chunks, headers={"Content-Type": CSV}, encode_chunked=True
        )
        response = conn.getresponse()
        assert response.status == 413 and json.loads(response.read())["message"]
    finally:
        conn.close()


def test_a_client_announcing_an_oversized_body_is_refused_before_it_sends_it(
    small_limit_url: str,
) -> None:
    host, port = host_port(small_limit_url)
    with socket.create_connection((host, port), timeout=5) as conn:
        conn.sendall(
            b"POST /invocations HTTP/1.1\r\nHost: test\r\nContent-Type: text/csv\r\n"
            b"Content-Length: 400000\r\nExpect: 100-continue\r\n\r\n"
        )
        answer = conn.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413 ") and b"connection: close" in answer.lower()
