"""The deployment's entry script: mlcore's scoring plus Azure's data collector, on a real model."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import pytest
from mlops_azure.definitions import SCORING_SCRIPT_SOURCE

from mlcore.data import CHURN_SPEC
from mlcore.serve import RequestError, azure_scoring, payload

# The churn model of tests/conftest.py, on purpose: a real trained model.
pytestmark = pytest.mark.xdist_group("trained_model")


class RecordingCollector:
    """Stands in for azureml.ai.monitoring.Collector, which needs Azure's collection sidecar."""

    instances: ClassVar[list[RecordingCollector]] = []

    def __init__(self, *, name: str, on_error: Any = None) -> None:
        self.name = name
        self.on_error = on_error
        self.collected: list[tuple[pd.DataFrame, Any]] = []
        RecordingCollector.instances.append(self)

    def collect(self, frame: pd.DataFrame, context: Any = None) -> Any:
        self.collected.append((frame, context))
        return context


class BasicCorrelationContext:
    def __init__(self, id: str) -> None:
        self.id = id


@pytest.fixture
def score(
    monkeypatch: pytest.MonkeyPatch, saved_model_dir: Path, tmp_path: Path
) -> Iterator[types.ModuleType]:
    monitoring = types.ModuleType("azureml.ai.monitoring")
    monitoring.Collector = RecordingCollector  # type: ignore[attr-defined]
    context = types.ModuleType("azureml.ai.monitoring.context")
    context.BasicCorrelationContext = BasicCorrelationContext  # type: ignore[attr-defined]
    for name, module in {
        "azureml": types.ModuleType("azureml"),
        "azureml.ai": types.ModuleType("azureml.ai"),
        "azureml.ai.monitoring": monitoring,
        "azureml.ai.monitoring.context": context,
    }.items():
        monkeypatch.setitem(sys.modules, name, module)
    RecordingCollector.instances = []
    # The registered model as the register step packages it: model files plus its evaluation.
    registered = tmp_path / "model"
    shutil.copytree(saved_model_dir, registered)
    (registered / "evaluation").mkdir()
    (registered / "evaluation" / "gate.json").write_text('{"passed": true}')
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(tmp_path))
    spec = importlib.util.spec_from_file_location("azure_entry_score", SCORING_SCRIPT_SOURCE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.init()
    yield module
    monkeypatch.setattr(azure_scoring, "_predictor", None)


@pytest.fixture
def request_body(saved_model_dir: Path) -> str:
    # The model's own health-check payload (contract 1), as the rollout sends it.
    body = (saved_model_dir / "sample_request.json").read_text()
    assert json.loads(body)["instances"], "the model holds an empty sample request"
    return body


def test_each_row_is_collected_with_an_inference_id_it_returns(
    score: types.ModuleType, request_body: str
) -> None:
    result = score.run(request_body)
    inputs, outputs = RecordingCollector.instances
    assert (inputs.name, outputs.name) == ("model_inputs", "model_outputs")
    ((features, context),) = inputs.collected
    ((predictions, output_context),) = outputs.collected
    assert output_context is context  # outputs are linked to the inputs they answer
    ids = result["inference_ids"]
    rows = len(json.loads(request_body)["instances"])
    assert len(ids) == len(result["predictions"]) == rows == len(set(ids))
    # Azure's preprocessor names rows "<correlation id>_<row>"; ours are the same ids.
    assert ids == [f"{context.id}_{row}" for row in range(rows)]
    assert features["inference_id"].tolist() == ids == predictions["inference_id"].tolist()
    assert list(features.columns) == [*CHURN_SPEC.features, "inference_id"]


def test_outputs_are_logged_under_the_targets_name_and_its_score(
    score: types.ModuleType, request_body: str
) -> None:
    result = score.run(request_body)
    ((predictions, _),) = RecordingCollector.instances[1].collected
    target = CHURN_SPEC.target
    assert list(predictions.columns) == [target, f"{target}_score", "inference_id"]
    assert predictions[target].tolist() == [p["prediction"] for p in result["predictions"]]
    assert predictions[f"{target}_score"].between(0, 1).all()


def test_each_request_is_parsed_once(
    score: types.ModuleType, request_body: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = payload.decode_request

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(payload, "decode_request", counting)
    score.run(request_body)
    assert len(calls) == 1


def test_refused_requests_are_not_collected(score: types.ModuleType) -> None:
    with pytest.raises(RequestError):
        score.run(json.dumps({"instances": [{"age": 30}]}))
    assert all(not collector.collected for collector in RecordingCollector.instances)


def test_collection_errors_never_fail_a_prediction(
    score: types.ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    inputs, _ = RecordingCollector.instances
    inputs.on_error(RuntimeError("sidecar unavailable"))
    assert "sidecar unavailable" in caplog.text


@pytest.mark.parametrize("body", ["age,tenure\n30,2\n", b"30,2\n", "  tenure\t2\n"])
def test_a_csv_body_is_an_unsupported_media_type_not_a_bad_request(
    score: types.ModuleType, body: str | bytes
) -> None:
    with pytest.raises(RequestError) as refused:
        score.run(body)
    assert refused.value.status == 415
    assert "application/json" in refused.value.message
    assert all(not collector.collected for collector in RecordingCollector.instances)
