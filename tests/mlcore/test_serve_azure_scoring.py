"""The Azure ML scoring script: init() finds the model under AZUREML_MODEL_DIR, run() scores JSON."""

from __future__ import annotations

import json
import shutil
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlcore.data import CHURN_SPEC
from mlcore.errors import ModelError
from mlcore.model import ModelBundle
from mlcore.serve import RequestError, azure_scoring

pytestmark = pytest.mark.xdist_group("trained_model")

FEATURES = list(CHURN_SPEC.features)


@pytest.fixture
def azure_model_root(saved_model_dir: Path, tmp_path: Path) -> Path:
    """The layout Azure mounts a registered folder model in: $AZUREML_MODEL_DIR/<folder>/."""
    shutil.copytree(saved_model_dir, tmp_path / "churn-model")
    return tmp_path


@pytest.fixture
def initialised(azure_model_root: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(azure_model_root))
    azure_scoring.init()
    yield
    monkeypatch.setattr(azure_scoring, "_predictor", None)


@pytest.fixture
def aml_response(monkeypatch: pytest.MonkeyPatch) -> type:
    """Stand-in for the AMLResponse class Azure's inference server provides at run time.

    It records what the scoring script hands the server (body, status, json_str); the
    real class turns exactly that into the HTTP response.
    """

    class AMLResponse:
        def __init__(self, message: Any, status_code: int, json_str: bool = False) -> None:
            self.message, self.status_code, self.json_str = message, status_code, json_str

    module = types.ModuleType("azureml_inference_server_http.api.aml_response")
    module.AMLResponse = AMLResponse  # type: ignore[attr-defined]
    for name in ("azureml_inference_server_http", "azureml_inference_server_http.api"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return AMLResponse


def body_for(frame: pd.DataFrame) -> str:
    return json.dumps({"instances": json.loads(frame[FEATURES].to_json(orient="records"))})


@pytest.mark.usefixtures("initialised")
def test_run_scores_json_like_the_sagemaker_endpoint(
    churn_frame: pd.DataFrame, trained_bundle: ModelBundle
) -> None:
    batch = churn_frame.iloc[:30]
    result = azure_scoring.run(body_for(batch))
    predictions = pd.DataFrame(result["predictions"])
    expected = trained_bundle.predict(batch)
    assert predictions["prediction"].tolist() == expected["prediction"].tolist()
    np.testing.assert_allclose(predictions["score"], expected["score"], rtol=0, atol=1e-12)
    json.dumps(result)  # Azure's server serialises the return value as JSON


@pytest.mark.usefixtures("initialised")
def test_bad_request_becomes_an_http_400_through_amlresponse(
    churn_frame: pd.DataFrame, aml_response: type
) -> None:
    records = json.loads(churn_frame.iloc[:2][FEATURES].to_json(orient="records"))
    records[0]["age"] = "old"
    response = azure_scoring.run(json.dumps({"instances": records}))
    assert isinstance(response, aml_response)
    assert response.status_code == 400 and response.json_str
    assert "'age'" in response.message["message"] and "'old'" in response.message["message"]


@pytest.mark.usefixtures("initialised")
def test_bad_request_outside_azures_server_raises_request_error() -> None:
    with pytest.raises(RequestError, match="not valid JSON") as raised:
        azure_scoring.run("age=42")
    assert raised.value.status == 400


@pytest.mark.usefixtures("initialised")
def test_respond_hands_scored_features_and_predictions_to_the_hook(
    churn_frame: pd.DataFrame,
) -> None:
    seen: list[tuple[pd.DataFrame, pd.DataFrame]] = []
    batch = churn_frame.iloc[:4]
    result = azure_scoring.respond(body_for(batch), on_scored=lambda f, p: seen.append((f, p)))
    ((features, predictions),) = seen
    assert list(features.columns) == FEATURES and len(features) == 4
    np.testing.assert_allclose(features["age"], batch["age"])
    assert predictions["prediction"].tolist() == [r["prediction"] for r in result["predictions"]]
    with pytest.raises(RequestError):
        azure_scoring.respond("[]", on_scored=lambda f, p: seen.append((f, p)))
    assert len(seen) == 1  # refused requests are not handed on


def test_init_accepts_the_model_folder_itself(
    saved_model_dir: Path, monkeypatch: pytest.MonkeyPatch, churn_frame: pd.DataFrame
) -> None:
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(saved_model_dir))
    monkeypatch.setattr(azure_scoring, "_predictor", None)
    azure_scoring.init()
    assert len(azure_scoring.run(body_for(churn_frame.iloc[:3]))["predictions"]) == 3


def test_init_without_a_model_says_what_to_register(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(tmp_path))
    with pytest.raises(ModelError, match="no mlcore model under"):
        azure_scoring.init()
    monkeypatch.delenv("AZUREML_MODEL_DIR")
    with pytest.raises(ModelError, match="AZUREML_MODEL_DIR is not set"):
        azure_scoring.init()


def test_two_models_under_the_root_are_ambiguous(azure_model_root: Path) -> None:
    shutil.copytree(azure_model_root / "churn-model", azure_model_root / "other-model")
    with pytest.raises(ModelError, match="several models"):
        azure_scoring.find_model_dir(azure_model_root)


def test_run_before_init_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(azure_scoring, "_predictor", None)
    with pytest.raises(ModelError, match="before init"):
        azure_scoring.run("[]")


@pytest.mark.usefixtures("initialised")
@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"instances": [[' + "1" * 4301 + "]]}",
        '{"instances": [[' + "1" * 400 + "]]}",
    ],
    ids=["deep nesting", "4301-digit integer", "400-digit integer"],
)
def test_hostile_payloads_are_400s_on_the_azure_path_too(body: str, aml_response: type) -> None:
    """Finding 1 of issue 12: these used to be 500s on both clouds."""
    response = azure_scoring.run(body)
    assert isinstance(response, aml_response)
    assert response.status_code == 400 and response.message["message"]


def test_init_refuses_a_model_that_is_not_the_registered_one(
    azure_model_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(azure_model_root))
    monkeypatch.setenv("MLCORE_MODEL_SHA256", "sha256:" + "0" * 64)
    monkeypatch.setattr(azure_scoring, "_predictor", None)
    with pytest.raises(ModelError, match="not the model that was registered"):
        azure_scoring.init()
