"""The Azure ML scoring script: ``init()`` and ``run(raw_data)`` over the shared predictor.

Azure ML's inference server imports the deployment's scoring script, calls
``init()`` once, then ``run(raw_data)`` per request with the request body as a
string. A deployment's ``score.py`` only needs::

    from mlcore.serve.azure_scoring import init, run  # noqa: F401

The model directory is found under ``AZUREML_MODEL_DIR``: the folder itself when it
holds ``metadata.json``, else the single folder below it that does (Azure mounts a
registered folder model at ``$AZUREML_MODEL_DIR/<folder name>``). It is loaded through
:meth:`Predictor.load`, so every file that shapes predictions is checked against the
registered hash (``MLCORE_MODEL_SHA256``, which the deployment sets from the registry
model's ``model_sha256`` tag) before anything is used; a script that needs the model's
spec takes it from :func:`predictor`, never from a second read of the folder.

A ``score.py`` that adds host services (Azure's data collector) calls
:func:`respond` with an ``on_scored`` hook, which receives the parsed features and
the predictions of every scored request.

The body is the JSON of :mod:`mlcore.serve.payload` (``{"instances": [...]}`` or a
list of records); the answer is ``{"predictions": [...]}``. A request the model
cannot score is answered with the status of its :class:`RequestError` (400) and
``{"message": "..."}``, the error body Azure's server uses, through the server's
own ``AMLResponse``. Called outside Azure's server (tests, a batch script), where
that class does not exist, ``run`` raises the :class:`RequestError` instead.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from mlcore.errors import ModelError
from mlcore.model import METADATA_FILE
from mlcore.serve.payload import JSON, RequestError, prediction_records
from mlcore.serve.predictor import Predictor

logger = logging.getLogger(__name__)

MODEL_DIR_ENV = "AZUREML_MODEL_DIR"
# Where Azure's inference server has offered AMLResponse over the years, newest first.
_AML_RESPONSE_MODULES = (
    "azureml_inference_server_http.api.aml_response",
    "azureml.contrib.services.aml_response",
)

# Called with (features, predictions) after each request is scored.
ScoredHook = Callable[[pd.DataFrame, pd.DataFrame], None]

_predictor: Predictor | None = None


def find_model_dir(root: str | Path) -> Path:
    """The mlcore model directory at ``root`` or exactly one level below it."""
    root = Path(root)
    if not root.is_dir():
        raise ModelError(f"{MODEL_DIR_ENV} points to {root}, which is not a folder")
    if (root / METADATA_FILE).is_file():
        return root
    candidates = sorted(p.parent for p in root.glob(f"*/{METADATA_FILE}"))
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise ModelError(
            f"no mlcore model under {root}: expected {METADATA_FILE} there or in one subfolder. "
            "Register the folder `mlcore train --model-dir` wrote as the deployment's model."
        )
    raise ModelError(
        f"several models under {root}: {[str(c) for c in candidates]}; register only one"
    )


def init() -> None:
    """Load the model once per server process (Azure ML calls this at start-up)."""
    global _predictor
    root = os.environ.get(MODEL_DIR_ENV)
    if not root:
        raise ModelError(f"{MODEL_DIR_ENV} is not set; Azure ML sets it to the deployment's model")
    model_dir = find_model_dir(root)
    _predictor = Predictor.load(model_dir)
    logger.info("loaded model from %s", model_dir)


def predictor() -> Predictor:
    """The predictor :func:`init` loaded and verified (ModelError before ``init``)."""
    if _predictor is None:
        raise ModelError("run() was called before init(); the scoring script must be initialised")
    return _predictor


def run(raw_data: str | bytes) -> Any:
    """Score one request body; return the predictions document or an error response."""
    return respond(raw_data)


def respond(raw_data: str | bytes, *, on_scored: ScoredHook | None = None) -> Any:
    """:func:`run`, calling ``on_scored(features, predictions)`` for each request scored.

    The hook is how a deployment's own ``score.py`` adds host services, such as Azure's
    data collector, without parsing the payload a second time. It is not called for
    requests the model refuses.
    """
    try:
        features, predictions = predictor().score(raw_data, JSON)
    except RequestError as exc:
        return _error_response(exc)
    if on_scored is not None:
        on_scored(features, predictions)
    return {"predictions": prediction_records(predictions)}


def _error_response(exc: RequestError) -> Any:
    for module_name in _AML_RESPONSE_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        return module.AMLResponse({"message": exc.message}, exc.status, json_str=True)
    raise exc
