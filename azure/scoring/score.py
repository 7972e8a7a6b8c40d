"""Azure ML entry script: mlcore's scoring, plus the data collector the monitors read.

Scoring is :mod:`mlcore.serve.azure_scoring` unchanged; each request is parsed once,
and its features and predictions reach this script through the ``on_scored`` hook.
What this script adds is Azure-specific and so cannot live in mlcore (which imports no
cloud SDK):

* each scored row gets an inference id, ``<request id>_<row>``: the same per-row
  correlation id Azure's monitoring preprocessor derives from the collector's
  correlation id, returned to the caller as ``inference_ids`` so labels can be uploaded
  later (README, "Ground truth on Azure");
* the features go to ``model_inputs``, the predictions to ``model_outputs`` under the
  target's name and ``<target>_score``, the names the prediction-drift reference uses.

Requests the model refuses are answered as mlcore answers them and not collected.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pandas as pd
from azureml.ai.monitoring import Collector
from azureml.ai.monitoring.context import BasicCorrelationContext
from mlops_azure.jobs.reference import azure_outputs

from mlcore.serve import RequestError, azure_scoring

logger = logging.getLogger(__name__)

INFERENCE_ID_COLUMN = "inference_id"
INFERENCE_IDS_KEY = "inference_ids"

_target: str | None = None
_inputs: Collector | None = None
_outputs: Collector | None = None


def _log_collection_error(error: Exception) -> None:
    # Losing a monitoring sample must never fail the prediction the caller waits for.
    logger.warning("data collection failed: %s", error)


def init() -> None:
    global _target, _inputs, _outputs
    azure_scoring.init()  # loads the model once, checked against MLCORE_MODEL_SHA256
    # From the verified model, not a second read of the folder (which could differ by now).
    _target = azure_scoring.predictor().bundle.spec.target
    _inputs = Collector(name="model_inputs", on_error=_log_collection_error)
    _outputs = Collector(name="model_outputs", on_error=_log_collection_error)


def _not_json(raw_data: str | bytes) -> bool:
    """A body that cannot be a JSON document of records (CSV, for one)."""
    text = raw_data.decode(errors="replace") if isinstance(raw_data, bytes) else raw_data
    return text.lstrip()[:1] not in ("{", "[")


def run(raw_data: str | bytes) -> Any:
    if _target is None or _inputs is None or _outputs is None:
        raise RuntimeError("run() was called before init()")
    if _not_json(raw_data):
        # Azure's inference server hands run() the body only, without its Content-Type:
        # anything that is not JSON is a media type this endpoint does not take.
        return azure_scoring._error_response(
            RequestError(
                415,
                'this endpoint takes application/json ({"instances": [{...}, ...]}); '
                "CSV is served by `mlcore serve` and SageMaker endpoints",
            )
        )
    request_id = uuid.uuid4().hex
    ids: list[str] = []

    def collect(features: pd.DataFrame, predictions: pd.DataFrame) -> None:
        assert _target is not None and _inputs is not None and _outputs is not None
        ids.extend(f"{request_id}_{row}" for row in range(len(features)))
        context = _inputs.collect(
            features.assign(**{INFERENCE_ID_COLUMN: ids}), BasicCorrelationContext(id=request_id)
        )
        outputs = azure_outputs(predictions, _target).assign(**{INFERENCE_ID_COLUMN: ids})
        _outputs.collect(outputs, context)

    result = azure_scoring.respond(raw_data, on_scored=collect)
    if isinstance(result, dict):
        result[INFERENCE_IDS_KEY] = ids
    return result
