"""The ASGI app implementing SageMaker's inference container contract.

* ``GET /ping``: 200 once the model is loaded (it is loaded before the app exists).
* ``POST /invocations``: score a ``text/csv`` or ``application/json`` body and
  answer in the type the ``Accept`` header asks for (see :mod:`mlcore.serve.payload`).
* ``GET /execution-parameters``: the batch-transform hints SageMaker asks for.

A request the model cannot score gets a 4xx with ``{"error": "<reason>", "message":
"<what was wrong and how to fix it>"}``; a 500 means a fault on our side and is logged
with its traceback. Scoring runs in a worker thread so ``/ping`` stays responsive
while a large batch is scored.

Optional headers: ``X-Amzn-SageMaker-Inference-Id`` is recorded as the capture
record's inferenceId; ``X-Mlcore-Inference-Time`` (local-only extension) sets the
recorded inference time. Both only matter when data capture is on.
"""

from __future__ import annotations

import logging
from datetime import datetime
from http import HTTPStatus
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mlcore.capture import (
    INFERENCE_ID_HEADER,
    INFERENCE_TIME_HEADER,
    CaptureWriter,
    parse_inference_time,
)
from mlcore.errors import DataError
from mlcore.model import ModelBundle
from mlcore.serve.payload import RequestError
from mlcore.serve.predictor import Predictor

logger = logging.getLogger(__name__)

# SageMaker real-time endpoints accept payloads up to 6 MB; refuse more before reading it all.
DEFAULT_MAX_BODY_BYTES = 6 * 1024 * 1024


def create_app(
    model: ModelBundle | Predictor | str | Path,
    *,
    capture: CaptureWriter | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> Starlette:
    """Build the inference app for a model (a bundle, a predictor or a model directory).

    ``capture`` records every sampled successful invocation in SageMaker's
    data-capture layout; requests that fail are not captured.
    """
    if max_body_bytes < 1:
        raise ValueError(f"max_body_bytes must be positive, got {max_body_bytes}")
    predictor = model if isinstance(model, Predictor) else Predictor.load(model)
    spec = predictor.bundle.spec

    async def ping(request: Request) -> Response:
        return JSONResponse({"status": "healthy"})

    async def execution_parameters(request: Request) -> Response:
        return JSONResponse(
            {
                "MaxConcurrentTransforms": 1,
                "BatchStrategy": "MULTI_RECORD",
                "MaxPayloadInMB": max(1, max_body_bytes // (1024 * 1024)),
            }
        )

    async def invocations(request: Request) -> Response:
        try:
            body = await _read_body(request, max_body_bytes)
            return await run_in_threadpool(_invoke, predictor, capture, body, request)
        except RequestError as exc:
            return error_response(exc.status, exc.message)
        except Exception:
            logger.exception("scoring failed on a request the payload checks accepted")
            return error_response(
                500,
                "the model failed to score this request; the server log has the traceback",
            )

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        message = {
            404: f"no route {request.url.path}; this server answers GET /ping and POST /invocations",
            405: f"{request.method} is not allowed on {request.url.path}; "
            "use GET /ping or POST /invocations",
        }.get(status, str(getattr(exc, "detail", exc)))
        return error_response(status, message)

    app = Starlette(
        routes=[
            Route("/ping", ping, methods=["GET"]),
            Route("/invocations", invocations, methods=["POST"]),
            Route("/execution-parameters", execution_parameters, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error},
    )
    app.state.predictor = predictor
    app.state.capture = capture
    logger.info(
        "serving a %s model with features %s%s",
        spec.task,
        list(spec.features),
        f"; capturing {capture.sampling_percentage}% of requests to {capture.prefix}"
        if capture
        else "",
    )
    return app


def error_response(status: int, message: str) -> JSONResponse:
    """The JSON error body every non-2xx answer carries."""
    return JSONResponse(
        {"error": HTTPStatus(status).phrase, "message": message}, status_code=status
    )


def _invoke(
    predictor: Predictor, capture: CaptureWriter | None, body: bytes, request: Request
) -> Response:
    content_type = request.headers.get("content-type")
    inference_time = _inference_time(request.headers.get(INFERENCE_TIME_HEADER))
    answer = predictor.answer(body, content_type, request.headers.get("accept"))
    response = Response(answer.body, media_type=answer.media_type)
    if capture is not None:
        try:
            capture.capture(
                request_body=body,
                request_content_type=content_type,
                response_body=bytes(response.body),
                response_content_type=response.headers.get("content-type"),
                inference_id=request.headers.get(INFERENCE_ID_HEADER),
                inference_time=inference_time,
            )
        except OSError:
            # As on SageMaker, capture must never fail an inference; the loss is logged loudly.
            logger.exception("data capture failed: the request was answered but not recorded")
    return response


def _inference_time(header: str | None) -> datetime | None:
    if header is None:
        return None
    try:
        return parse_inference_time(header)
    except DataError as exc:
        raise RequestError(400, f"header {INFERENCE_TIME_HEADER}: {exc}") from exc


async def _read_body(request: Request, limit: int) -> bytes:
    too_large = RequestError(
        413, f"the request body exceeds {limit} bytes; split the records into smaller requests"
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)
