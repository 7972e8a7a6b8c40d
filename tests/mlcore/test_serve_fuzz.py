"""The hostile-payload fuzz, past the parser: the HTTP server, the batching path and the Azure
scoring script (issue 23). Property-based with hypothesis, bounded so the module stays fast.

What every path must hold whatever it is sent: an answer or a 4xx with a message, never a
5xx or another exception; and in a batch, each request the answer it gets alone.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import socket
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_serve_payload import _as_json, json_values

from mlcore.data import CHURN_SPEC
from mlcore.model import ModelBundle
from mlcore.serve import Predictor, RequestError, azure_scoring, serve_in_thread
from mlcore.serve.payload import CSV, JSON
from mlcore.serve.predictor import Answer, Payload
from mlcore.settings import ServingSettings

pytestmark = pytest.mark.xdist_group("trained_model")

FEATURES = list(CHURN_SPEC.features)
REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
BOUNDED = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
# A round trip per example through the real server costs more: fewer of them.
BOUNDED_HTTP = settings(BOUNDED, max_examples=40)


@pytest.fixture(scope="module")
def good_rows(churn_frame: pd.DataFrame) -> pd.DataFrame:
    return churn_frame[FEATURES].iloc[:20].reset_index(drop=True)


def bodies(good_rows: pd.DataFrame) -> st.SearchStrategy[str | bytes]:
    """Valid requests, near-valid ones (a field replaced) and garbage, in both formats."""
    records = good_rows.to_dict("records")
    valid_json = st.lists(st.sampled_from(records), min_size=1, max_size=4).map(
        lambda rows: json.dumps({"instances": rows})
    )
    valid_csv = st.integers(0, len(good_rows) - 3).map(
        lambda start: good_rows.iloc[start : start + 3].to_csv(header=False, index=False)
    )
    spoiled_json = st.tuples(st.sampled_from(records), st.sampled_from(FEATURES), json_values).map(
        lambda t: _as_json({"instances": [{**t[0], t[1]: t[2]}]})
    )
    return st.one_of(
        valid_json,
        valid_csv,
        spoiled_json,
        json_values.map(_as_json),
        st.text(max_size=300),
        st.binary(max_size=300),
    )


CONTENT_TYPES = st.sampled_from([CSV, JSON, "text/csv; charset=utf-8", "application/xml", None])
ACCEPTS = st.sampled_from([None, JSON, CSV, "*/*", "image/png", "text/csv;q=0, */*;q=0"])


# The HTTP server.


@pytest.fixture(scope="module")
def url(saved_model_dir: Path) -> Iterator[str]:
    quick = ServingSettings(header_timeout_seconds=1, body_timeout_seconds=1)
    with serve_in_thread(saved_model_dir, max_body_bytes=4096, settings=quick) as base:
        yield base


@BOUNDED_HTTP
@given(data=st.data(), content_type=CONTENT_TYPES, accept=ACCEPTS)
def test_any_body_to_the_server_gets_an_answer_or_a_json_4xx(
    url: str, good_rows: pd.DataFrame, data: st.DataObject, content_type: str | None, accept: str
) -> None:
    body = data.draw(bodies(good_rows))
    headers = {k: v for k, v in (("Content-Type", content_type), ("Accept", accept)) if v}
    response = httpx.post(f"{url}/invocations", content=body, headers=headers, timeout=10)
    assert response.status_code < 500, response.text
    if response.status_code != 200:
        assert response.json()["message"]


def raw_answer(url: str, request: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        try:
            conn.sendall(request)
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server hung up mid-send: read what it said
        answer = b""
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return answer
            if not data:
                return answer
            answer += data


HEAD_LINES = st.lists(
    st.one_of(
        st.sampled_from(
            [
                b"Content-Type: text/csv",
                b"Content-Length: 12",
                b"Content-Length: -1",
                b"Content-Length: 99999999999999999999",
                b"Transfer-Encoding: chunked",
                b"Expect: 100-continue",
                b"Host: x",
            ]
        ),
        st.binary(max_size=40).filter(lambda b: b"\r\n\r\n" not in b),
    ),
    max_size=5,
)


@BOUNDED_HTTP
@given(
    method=st.sampled_from([b"POST", b"GET", b"PUT", b"P\x00ST"]),
    target=st.sampled_from([b"/invocations", b"/ping", b"/../etc", b"*", b"/" + b"a" * 5000]),
    lines=HEAD_LINES,
    body=st.binary(max_size=200),
)
def test_any_raw_request_gets_a_4xx_an_answer_or_a_closed_connection_never_a_5xx(
    url: str, method: bytes, target: bytes, lines: list[bytes], body: bytes
) -> None:
    request = method + b" " + target + b" HTTP/1.1\r\n" + b"\r\n".join(lines) + b"\r\n\r\n" + body
    answer = raw_answer(url, request)
    for status_line in (line for line in answer.split(b"\r\n") if line.startswith(b"HTTP/1.1 ")):
        assert not status_line.startswith(b"HTTP/1.1 5"), answer[:500]
    assert httpx.get(f"{url}/ping", timeout=5).status_code == 200  # the server is still up


# The batching path: requests scored together in one model call.


def outcome(result: Answer | Exception) -> Any:
    if isinstance(result, RequestError):
        return ("refused", result.status, result.message)
    if isinstance(result, Exception):
        return ("failed", type(result).__name__)
    return result


@BOUNDED
@given(data=st.data())
def test_any_mix_of_requests_in_one_batch_gets_each_the_answer_it_gets_alone(
    trained_bundle: ModelBundle, good_rows: pd.DataFrame, data: st.DataObject
) -> None:
    payloads = data.draw(
        st.lists(st.builds(Payload, bodies(good_rows), CONTENT_TYPES, ACCEPTS), max_size=5)
    )
    predictor = Predictor(trained_bundle)
    batched = predictor.answer_many(payloads)
    alone = []
    for payload in payloads:
        try:
            alone.append(predictor.answer(payload.body, payload.content_type, payload.accept))
        except Exception as exc:
            alone.append(exc)
    assert [outcome(r) for r in batched] == [outcome(r) for r in alone]
    assert not any(o[0] == "failed" for o in map(outcome, batched) if isinstance(o, tuple))


# The Azure scoring path: azure/scoring/score.py over mlcore.serve.azure_scoring.


class _Collector:
    def __init__(self, *, name: str, on_error: Any = None) -> None:
        self.rows = 0

    def collect(self, frame: pd.DataFrame, context: Any = None) -> Any:
        self.rows += len(frame)
        return context


class _Context:
    def __init__(self, id: str) -> None:
        self.id = id


class _AMLResponse:
    def __init__(self, message: Any, status_code: int, json_str: bool = False) -> None:
        self.message, self.status_code = message, status_code


@pytest.fixture(scope="module")
def entry_script(saved_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Azure's entry script, initialised on the trained model, with Azure's server-side
    classes (the data collector, AMLResponse) stood in for, as they exist only there."""
    stubs = {
        "azureml": types.ModuleType("azureml"),
        "azureml.ai": types.ModuleType("azureml.ai"),
        "azureml.ai.monitoring": types.ModuleType("azureml.ai.monitoring"),
        "azureml.ai.monitoring.context": types.ModuleType("azureml.ai.monitoring.context"),
        "azureml_inference_server_http": types.ModuleType("azureml_inference_server_http"),
        "azureml_inference_server_http.api": types.ModuleType("azureml_inference_server_http.api"),
        "azureml_inference_server_http.api.aml_response": types.ModuleType("aml_response"),
    }
    stubs["azureml.ai.monitoring"].Collector = _Collector  # type: ignore[attr-defined]
    stubs["azureml.ai.monitoring.context"].BasicCorrelationContext = _Context  # type: ignore[attr-defined]
    stubs["azureml_inference_server_http.api.aml_response"].AMLResponse = _AMLResponse  # type: ignore[attr-defined]
    root = tmp_path_factory.mktemp("azureml-model")
    shutil.copytree(saved_model_dir, root / "model")
    with pytest.MonkeyPatch.context() as patch:
        for name, module in stubs.items():
            patch.setitem(sys.modules, name, module)
        patch.setenv("AZUREML_MODEL_DIR", str(root))
        patch.delenv("MLCORE_MODEL_SHA256", raising=False)
        source = REPOSITORY_ROOT / "azure" / "scoring" / "score.py"
        spec = importlib.util.spec_from_file_location("azure_entry_score_fuzz", source)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.init()
        yield module
        patch.setattr(azure_scoring, "_predictor", None)


@BOUNDED
@given(data=st.data())
def test_any_body_to_the_azure_entry_script_gets_predictions_or_a_4xx(
    entry_script: Any, good_rows: pd.DataFrame, data: st.DataObject
) -> None:
    body = data.draw(bodies(good_rows))
    result = entry_script.run(body)
    if isinstance(result, _AMLResponse):
        assert 400 <= result.status_code < 500 and result.message["message"]
        return
    assert len(result["predictions"]) == len(result["inference_ids"]) >= 1
