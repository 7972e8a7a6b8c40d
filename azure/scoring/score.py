"""Azure ML entry script: mlcore's scoring, plus the data collector the monitors read.

Scoring is :mod:`mlcore.serve.azure_scoring` unchanged. What this script adds is
Azure-specific and so cannot live in mlcore (which imports no cloud SDK): it logs
each scored request's features to the ``model_inputs`` collection and its
predictions to ``model_outputs``, linked by the collector's correlation context.
Requests the model refuses are answered as mlcore answers them and not collected.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd
from azureml.ai.monitoring import Collector

from mlcore.data import DatasetSpec
from mlcore.model import METADATA_FILE
from mlcore.serve import azure_scoring
from mlcore.serve.payload import JSON, parse_request

logger = logging.getLogger(__name__)

_spec: DatasetSpec | None = None
_inputs: Collector | None = None
_outputs: Collector | None = None


def _log_collection_error(error: Exception) -> None:
    # Losing a monitoring sample must never fail the prediction the caller waits for.
    logger.warning("data collection failed: %s", error)


def init() -> None:
    global _spec, _inputs, _outputs
    azure_scoring.init()
    model_dir = azure_scoring.find_model_dir(os.environ[azure_scoring.MODEL_DIR_ENV])
    metadata = json.loads((Path(model_dir) / METADATA_FILE).read_text())
    _spec = DatasetSpec.from_dict(metadata["spec"])
    _inputs = Collector(name="model_inputs", on_error=_log_collection_error)
    _outputs = Collector(name="model_outputs", on_error=_log_collection_error)


def run(raw_data: str | bytes) -> Any:
    result = azure_scoring.run(raw_data)
    if not isinstance(result, dict) or _spec is None or _inputs is None or _outputs is None:
        return result
    features = parse_request(raw_data, JSON, _spec)
    context = _inputs.collect(features)
    _outputs.collect(pd.DataFrame(result["predictions"]), context)
    return result
