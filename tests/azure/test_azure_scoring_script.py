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
from mlops_azure.config import REPO_ROOT
from mlops_azure.definitions import SCORING_SCRIPT_SOURCE

from mlcore.data import CHURN_SPEC
from mlcore.serve import RequestError, azure_scoring

pytestmark = pytest.mark.xdist_group("trained_model")

HEALTH_CHECK_REQUEST = REPO_ROOT / "azure" / "requests" / "churn-sample.json"


class RecordingCollector:
    """Stands in for azureml.ai.monitoring.Collector, which needs Azure's collection sidecar."""

    instances: ClassVar[list[RecordingCollector]] = []

    def __init__(self, *, name: str, on_error: Any = None) -> None:
        self.name = name
        self.on_error = on_error
        self.collected: list[tuple[pd.DataFrame, Any]] = []
        RecordingCollector.instances.append(self)

    def collect(self, frame: pd.DataFrame, context: Any = None) -> str:
        self.collected.append((frame, context))
        return f"context-{len(self.collected)}"


@pytest.fixture
def score(
    monkeypatch: pytest.MonkeyPatch, saved_model_dir: Path, tmp_path: Path
) -> Iterator[types.ModuleType]:
    monitoring = types.ModuleType("azureml.ai.monitoring")
    monitoring.Collector = RecordingCollector  # type: ignore[attr-defined]
    for name, module in {
        "azureml": types.ModuleType("azureml"),
        "azureml.ai": types.ModuleType("azureml.ai"),
        "azureml.ai.monitoring": monitoring,
    }.items():
        monkeypatch.setitem(sys.modules, name, module)
    RecordingCollector.instances = []
    # The registered model as the register step packages it: model files plus its evaluation.
    registered = tmp_path / "churn-model"
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


def test_health_check_request_is_scored_and_collected(score: types.ModuleType) -> None:
    body = HEALTH_CHECK_REQUEST.read_text()
    records = len(json.loads(body)["instances"])
    result = score.run(body)
    assert len(result["predictions"]) == records
    inputs, outputs = RecordingCollector.instances
    assert (inputs.name, outputs.name) == ("model_inputs", "model_outputs")
    ((features, _),) = inputs.collected
    assert list(features.columns) == list(CHURN_SPEC.features)
    assert len(features) == records
    ((predictions, context),) = outputs.collected
    assert context == "context-1"  # outputs are linked to the inputs they answer
    assert set(predictions.columns) == {"prediction", "score"}
    assert predictions["score"].between(0, 1).all()


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
