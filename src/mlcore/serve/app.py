"""The ASGI app implementing SageMaker's inference container contract.

* ``GET /ping``: 200 once the model is loaded, verified and warmed up (all of which
  happens before the app exists).
* ``POST /invocations``: score a ``text/csv`` or ``application/json`` body and
  answer in the type the ``Accept`` header asks for (see :mod:`mlcore.serve.payload`).
* ``GET /execution-parameters``: the batch-transform hints SageMaker asks for.
* ``GET /metrics``: Prometheus counters of requests, errors, latency and capture failures.

A request the model cannot score gets a 4xx with ``{"error": "<reason>", "message":
"<what was wrong and how to fix it>"}``; a 500 means a fault on our side and is logged
with its traceback. A body over the size limit gets a 413 that any HTTP client can read:
the rest of the body is read and dropped first (up to ``DRAIN_LIMIT_BYTES`` past the
limit, within the body deadline), since closing a connection with unread data makes the
kernel reset it and the client never sees the answer.

Scoring runs on one dedicated thread per process, one model call at a time, with
OpenMP and BLAS held to one thread: the model's numpy code holds the GIL for most of a
small request, so more threads only fight over it (more throughput comes from more
worker processes, one per vCPU). When requests queue up behind a model call, the
thread scores all that are waiting (up to ``max_batch_bytes`` of bodies) in the next
call, each still decoded, checked, answered and captured on its own (see
:mod:`mlcore.serve.scorer`). The event loop stays free, so ``/ping`` answers while a
large batch is scored. Each request has a deadline for its body (408) and one for
queueing plus scoring (503), from the ``serving`` settings.

Nothing is scored or captured for a caller that is gone. A request answered 503 at its
deadline, or whose client disconnected, is dropped from the queue if it is still there,
left out of the model call if it is being decoded, and never captured if the model call
had already started (a call in progress cannot be interrupted); the scoring thread and
the event loop settle each request's end under one lock, so a request is either
answered and captured or abandoned, never both. Client retries therefore do not
duplicate capture records. A client that disconnects (mid-body or while its request is
scored) is counted in ``mlcore_client_disconnects_total``, not as an invocation by
status, so it never feeds the 5xx alarms that roll a deployment back.

Optional headers: ``X-Amzn-SageMaker-Inference-Id`` is recorded as the capture
record's inferenceId. ``X-Mlcore-Inference-Time`` sets the recorded inference time,
but only when the app is built with ``trust_inference_time_header=True`` (the local
demo replaying another period's traffic); otherwise it is ignored, as SageMaker does.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from http import HTTPStatus
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from threadpoolctl import threadpool_limits

from mlcore.capture import (
    INFERENCE_ID_HEADER,
    INFERENCE_TIME_HEADER,
    CaptureWriter,
    parse_inference_time,
)
from mlcore.errors import ConfigError, DataError
from mlcore.model import ModelBundle
from mlcore.serve.defaults import DEFAULT_MAX_BATCH_BYTES, DEFAULT_MAX_BODY_BYTES
from mlcore.serve.metrics import ServingMetrics
from mlcore.serve.payload import RequestError
from mlcore.serve.predictor import Abandoned, Payload, Predictor
from mlcore.serve.scorer import Scorer

logger = logging.getLogger(__name__)

# How much of an oversized body is read and dropped so that the client can read its 413;
# past this (or the body deadline) the connection is closed unread.
DRAIN_LIMIT_BYTES = 64 * 1024 * 1024
# nginx's status for "client closed the request": never sent (nobody is listening).
CLIENT_CLOSED_REQUEST = 499


@dataclass(frozen=True)
class RequestLimits:
    """Per-request deadlines (seconds); :class:`~mlcore.settings.ServingSettings` holds the defaults."""

    body_timeout_seconds: float = 30
    scoring_timeout_seconds: float = 50

    def __post_init__(self) -> None:
        for name in ("body_timeout_seconds", "scoring_timeout_seconds"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")


class Claim:
    """Who finishes one request: the scoring thread answering it (and capturing it), or the
    event loop giving up on it (deadline, disconnect). The first to claim wins; the other
    does nothing more."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = "waiting"

    def give_up(self) -> bool:
        """Abandon the request; False when the thread has already claimed its answer."""
        with self._lock:
            if self._state == "waiting":
                self._state = "abandoned"
            return self._state == "abandoned"

    def answer(self) -> bool:
        """Claim the request's answer (and capture); False when it was abandoned."""
        with self._lock:
            if self._state == "waiting":
                self._state = "answered"
            return self._state == "answered"

    @property
    def abandoned(self) -> bool:
        with self._lock:
            return self._state == "abandoned"


@dataclass(frozen=True)
class Invocation:
    """What the scoring thread needs of one request (read from it on the event loop)."""

    body: bytes
    content_type: str | None
    accept: str | None
    inference_id: str | None
    inference_time: datetime | None
    # time.monotonic() at which the caller gets its 503; the scoring thread honours it too.
    deadline: float = float("inf")
    claim: Claim = field(default_factory=Claim, compare=False)

    @property
    def payload(self) -> Payload:
        return Payload(self.body, self.content_type, self.accept)

    def still_wanted(self) -> bool:
        """False once the caller is gone (the deadline passing counts as gone)."""
        if time.monotonic() >= self.deadline:
            self.claim.give_up()
        return not self.claim.abandoned


class _CallerGone(Exception):
    """The client disconnected before its answer."""


class _BodyTooLarge(RequestError):
    """413; ``drained`` says whether the whole body was read (else the connection must close)."""

    def __init__(self, limit: int, *, drained: bool) -> None:
        super().__init__(
            413, f"the request body exceeds {limit} bytes; split the records into smaller requests"
        )
        self.drained = drained


def create_app(
    model: ModelBundle | Predictor | str | Path,
    *,
    capture: CaptureWriter | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
    limits: RequestLimits | None = None,
    expected_sha256: str | None = None,
    trust_inference_time_header: bool = False,
    metrics: ServingMetrics | None = None,
) -> Starlette:
    """Build the inference app for a model (a bundle, a predictor or a model directory).

    A model directory is loaded through :meth:`Predictor.load`: its files are checked
    against ``expected_sha256`` (default ``$MLCORE_MODEL_SHA256``) and its own
    manifest before anything is parsed or unpickled, and its sample request is scored
    once. ``capture`` records every sampled successful invocation in SageMaker's
    data-capture layout (requests that fail, and requests whose caller is gone, are not
    captured); its folder must be writable.
    ``max_batch_bytes`` caps the bodies scored together in one model call (a larger
    request is still scored, alone; 1 scores every request alone).
    """
    if max_body_bytes < 1:
        raise ConfigError(f"max_body_bytes must be positive, got {max_body_bytes}")
    if max_batch_bytes < 1:
        raise ConfigError(f"max_batch_bytes must be positive, got {max_batch_bytes}")
    limits = limits or RequestLimits()
    predictor = (
        model
        if isinstance(model, Predictor)
        else Predictor.load(model, expected_sha256=expected_sha256)
    )
    if capture is not None:
        capture.check_writable()
    metrics = metrics or ServingMetrics()
    spec = predictor.bundle.spec
    # One model call at a time per process (see the module docstring).
    scorer: Scorer[Invocation, Response | Exception] = Scorer(
        lambda batch: _score_batch(predictor, capture, metrics, batch),
        max_batch_size=max_batch_bytes,
        initializer=_one_native_thread,
    )

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
        started = time.perf_counter()
        try:
            response = await _answer(request)
        except _CallerGone:
            # Not an invocation answered (nobody is listening), so not a status to alarm on.
            metrics.client_disconnected()
            return Response(status_code=CLIENT_CLOSED_REQUEST)
        metrics.observe(response.status_code, time.perf_counter() - started)
        return response

    async def _answer(request: Request) -> Response:
        too_slow = error_response(
            503,
            f"scoring did not finish within {limits.scoring_timeout_seconds:g} s "
            "(serving.scoring_timeout_seconds); retry, or send fewer records per request",
        )
        try:
            body = await _read_body(request, max_body_bytes, limits.body_timeout_seconds)
            headers = request.headers
            invocation = Invocation(
                body,
                content_type=headers.get("content-type"),
                accept=headers.get("accept"),
                inference_id=headers.get(INFERENCE_ID_HEADER),
                inference_time=_inference_time(headers.get(INFERENCE_TIME_HEADER))
                if trust_inference_time_header
                else None,
                deadline=time.monotonic() + limits.scoring_timeout_seconds,
            )
            work = scorer.submit(invocation, size=len(body))
            result = await _outcome(request, invocation, work, limits.scoring_timeout_seconds)
        except ClientDisconnect as exc:  # gone mid-body
            raise _CallerGone from exc
        except _BodyTooLarge as exc:
            return error_response(exc.status, exc.message, close=not exc.drained)
        except RequestError as exc:
            return error_response(exc.status, exc.message, close=exc.status == 408)
        except TimeoutError:
            return too_slow
        except _CallerGone:
            raise
        except Exception as exc:
            result = exc
        if isinstance(result, Abandoned):  # the scoring thread saw the deadline pass first
            return too_slow
        if isinstance(result, RequestError):
            return error_response(result.status, result.message)
        if isinstance(result, Exception):
            logger.error("scoring failed on a request the payload checks accepted", exc_info=result)
            return error_response(
                500,
                "the model failed to score this request; the server log has the traceback",
            )
        return result

    async def metrics_endpoint(request: Request) -> Response:
        body, media_type = metrics.exposition()
        return Response(body, media_type=media_type)

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
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error},
    )
    app.state.predictor = predictor
    app.state.capture = capture
    app.state.metrics = metrics
    app.state.scorer = scorer
    logger.info(
        "serving a %s model with features %s%s",
        spec.task,
        list(spec.features),
        f"; capturing {capture.sampling_percentage}% of requests to {capture.prefix}"
        if capture
        else "",
    )
    return app


def _one_native_thread() -> None:
    """Keep OpenMP and BLAS to one thread on the scoring thread (the limit is per thread).

    Server processes already use every vCPU; a small request scored by a team of OpenMP
    threads spends most of its time starting and joining them (scikit-learn's gradient
    boosting opens a parallel region per tree), and far worse on a busy machine.
    """
    threadpool_limits(limits=1)


def error_response(status: int, message: str, *, close: bool = False) -> JSONResponse:
    """The JSON error body every non-2xx answer carries."""
    return JSONResponse(
        {"error": HTTPStatus(status).phrase, "message": message},
        status_code=status,
        headers={"Connection": "close"} if close else None,
    )


async def _outcome(
    request: Request, invocation: Invocation, work: Future[Response | Exception], timeout: float
) -> Response | Exception:
    """The scoring thread's result, or TimeoutError / _CallerGone when the caller is gone first.

    Giving up cancels the job (a request still queued is never scored) and tells the
    scoring thread, through the invocation's claim, not to score or capture it.
    """
    scored = asyncio.wrap_future(work)
    gone = asyncio.ensure_future(_disconnected(request))
    waited: set[asyncio.Future[object]] = {scored, gone}  # type: ignore[arg-type]
    try:
        done, _ = await asyncio.wait(waited, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if scored not in done and invocation.claim.give_up():
        scored.cancel()
        if gone in done:
            raise _CallerGone
        raise TimeoutError
    # Scored, or the thread claimed the answer just in time: it is moments away (capture).
    return await scored


async def _disconnected(request: Request) -> None:
    """Return once the client has closed its connection (the body has been read already)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _score_batch(
    predictor: Predictor,
    capture: CaptureWriter | None,
    metrics: ServingMetrics,
    batch: Sequence[Invocation],
) -> list[Response | Exception]:
    """Score the waiting requests in one model call; answer and capture each on its own.

    A request whose caller is gone by the model call is not scored; one gone by the time
    its answer is ready is not captured (see :class:`Claim`).
    """
    answers = predictor.answer_many(
        [invocation.payload for invocation in batch],
        still_wanted=lambda position: batch[position].still_wanted(),
    )
    results: list[Response | Exception] = []
    for invocation, answer in zip(batch, answers, strict=True):
        if isinstance(answer, Exception):
            results.append(answer)
            continue
        # Past its deadline the caller gets (or got) a 503: the answer is not its to keep.
        if not invocation.still_wanted() or not invocation.claim.answer():
            results.append(Abandoned("the caller left while the request was scored"))
            continue
        response = Response(answer.body, media_type=answer.media_type)
        if capture is not None:
            _capture(capture, metrics, invocation, response)
        results.append(response)
    return results


def _capture(
    capture: CaptureWriter, metrics: ServingMetrics, invocation: Invocation, response: Response
) -> None:
    try:
        capture.capture(
            request_body=invocation.body,
            request_content_type=invocation.content_type,
            response_body=bytes(response.body),
            response_content_type=response.headers.get("content-type"),
            inference_id=invocation.inference_id,
            inference_time=invocation.inference_time,
        )
    except (OSError, ValueError):
        # As on SageMaker, capture must never fail an inference; the loss is counted and logged.
        metrics.capture_failed()
        logger.exception("data capture failed: the request was answered but not recorded")


def _inference_time(header: str | None) -> datetime | None:
    if header is None:
        return None
    try:
        return parse_inference_time(header)
    except DataError as exc:
        raise RequestError(400, f"header {INFERENCE_TIME_HEADER}: {exc}") from exc


async def _read_body(request: Request, limit: int, timeout: float) -> bytes:
    """The whole body, within ``timeout``; an oversized one is read on and dropped (413).

    A client sends its whole body before it reads the answer, and a connection closed
    with unread data is reset, so the 413 would never reach it: the rest of the body is
    drained first, up to DRAIN_LIMIT_BYTES past the limit. A body declared larger than
    that, or one announced with ``Expect: 100-continue`` (the client waits before
    sending it), is refused at once and the connection closed.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        waits = request.headers.get("expect", "").lower() == "100-continue"
        if waits or int(declared) > limit + DRAIN_LIMIT_BYTES:
            raise _BodyTooLarge(limit, drained=False)
    chunks: list[bytes] = []
    size = 0
    complete = False

    async def read() -> None:
        nonlocal size, complete
        async for chunk in request.stream():
            size += len(chunk)
            if size <= limit:
                chunks.append(chunk)
                continue
            chunks.clear()  # too large: read on to the end, keeping nothing
            if size > limit + DRAIN_LIMIT_BYTES:
                return
        complete = True

    try:
        await asyncio.wait_for(read(), timeout)
    except TimeoutError as exc:
        if size > limit:
            raise _BodyTooLarge(limit, drained=False) from exc
        raise RequestError(
            408,
            f"the request body did not arrive within {timeout:g} s "
            "(serving.body_timeout_seconds); send it at once",
        ) from exc
    if size > limit:
        raise _BodyTooLarge(limit, drained=complete)
    return b"".join(chunks)
