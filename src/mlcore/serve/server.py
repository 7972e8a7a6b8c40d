"""Running the inference app on uvicorn: in the foreground (``mlcore serve``) or in a thread.

SageMaker starts the container with ``serve`` as its only argument (``mlcore serve``,
the image's entrypoint being ``mlcore``) and expects the server on 0.0.0.0, on the port
in ``SAGEMAKER_BIND_TO_PORT`` (8080 when unset: SageMaker sets the variable only for
inference pipelines and multi-container endpoints), with the model in ``/opt/ml/model``.

Two modes, decided by whether a model folder is given (:func:`default_host`,
:func:`default_workers`):

* the container contract, ``mlcore serve`` without ``--model-dir``: the model in
  ``/opt/ml/model``, all interfaces (``0.0.0.0``, where the platform's router reaches
  the container) and one worker per vCPU. Nothing else is needed: no marker file, no
  variable the platform may or may not set;
* a local server, ``mlcore serve --model-dir DIR``: loopback (``127.0.0.1``), so a laptop
  never exposes a model to its network by accident, and one worker.

In both, ``--host`` or ``$MLCORE_SERVE_HOST`` sets the interface, and ``--workers`` or
``$SAGEMAKER_MODEL_SERVER_WORKERS`` the number of worker processes. Each worker scores
one request at a time (see :mod:`mlcore.serve.app`).

Every path (one process, several, or a background thread) listens on a socket created
with ``IPPROTO_TCP`` and serves through :class:`~mlcore.serve.protocol.EndpointProtocol`,
which sets ``TCP_NODELAY`` on each accepted connection.

With several workers the parent only supervises them: it checks the model in a
short-lived child process (the same load, verification and warm-up, the same error and
exit code, before any port opens) and never imports pandas, scikit-learn or the model
itself, so it costs a few tens of MB rather than a whole worker's memory. This module
imports the model's libraries only inside the functions that need them.

Every worker, the first ones and any replacement of a worker that died, loads only the
model the check verified: the parent hands them its hash (the registered one when given,
else the one the check computed), so a folder changed after start-up is refused, never
served beside the original. A worker that cannot load the model logs why and exits with
uvicorn's start-up failure code; the parent then stops the others and
:func:`run_server` raises ModelError (``mlcore serve`` exits 2), rather than restarting
workers in a loop while the endpoint stops answering.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from mlcore.errors import ConfigError, MlcoreError, ModelError
from mlcore.serve.defaults import (
    DEFAULT_ENDPOINT_NAME,
    DEFAULT_MAX_BATCH_BYTES,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MODEL_DIR,
    DEFAULT_PORT,
    DEFAULT_VARIANT_NAME,
    HOST_ENV,
    PORT_ENV,
    SERVING_ENV,
    WORKERS_ENV,
)
from mlcore.serve.metrics import MULTIPROCESS_ENV
from mlcore.serve.protocol import ServeConfig
from mlcore.settings import ServingSettings

if TYPE_CHECKING:  # the model's libraries (pandas, scikit-learn) load only where used
    from starlette.applications import Starlette

    from mlcore.capture import CaptureWriter
    from mlcore.model import ModelBundle
    from mlcore.serve.app import RequestLimits
    from mlcore.serve.predictor import Predictor

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
ALL_INTERFACES = "0.0.0.0"
# How the parent hands its options to worker processes, which build their own app.
_OPTIONS_ENV = "MLCORE_SERVE_OPTIONS"
_STARTUP_TIMEOUT_SECONDS = 30.0


def default_host(environ: Mapping[str, str] | None = None, *, container: bool) -> str:
    """``$MLCORE_SERVE_HOST``; else 0.0.0.0 under the container contract and 127.0.0.1 locally.

    ``container`` is true when ``mlcore serve`` runs as the container's ``serve`` (no
    ``--model-dir``: the model is in ``/opt/ml/model``).
    """
    env = os.environ if environ is None else environ
    explicit = env.get(HOST_ENV, "").strip()
    if explicit:
        return explicit
    return ALL_INTERFACES if container else LOOPBACK


def default_workers(environ: Mapping[str, str] | None = None, *, container: bool) -> int:
    """``$SAGEMAKER_MODEL_SERVER_WORKERS``; else the vCPU count under the container contract
    and 1 locally."""
    env = os.environ if environ is None else environ
    if env.get(WORKERS_ENV, "").strip():
        return _int_env(WORKERS_ENV, 1, env)
    return _vcpus() if container else 1


def serving_from_environment(environ: Mapping[str, str] | None = None) -> ServingSettings | None:
    """The serving section the deployment set in ``$MLCORE_SERVING`` (JSON), if any.

    A serving container has no mlops.yaml: the SageMaker Model (cdk.serving) and the Azure
    deployment carry its ``serving:`` section in this variable, so the timeouts a team set
    are the ones its endpoint applies.
    """
    from pydantic import ValidationError

    env = os.environ if environ is None else environ
    raw = env.get(SERVING_ENV)
    if not raw:
        return None
    try:
        return ServingSettings.model_validate_json(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, error['loc'])) or 'value'}: {error['msg']}"
            for error in exc.errors()
        )
        raise ConfigError(
            f"environment variable {SERVING_ENV} is not a valid serving section of mlops.yaml "
            f"({problems}); it is set by the deployment from mlops.yaml's serving: section, so "
            f"fix that section and deploy again (got {raw[:200]!r})"
        ) from exc


def port_from_environment() -> int:
    """``SAGEMAKER_BIND_TO_PORT`` as an int, or 8080 when unset."""
    return _int_env(PORT_ENV, DEFAULT_PORT, os.environ)


@dataclass(frozen=True)
class ServeOptions:
    """Everything ``mlcore serve`` needs; the CLI fills it from arguments, settings and SageMaker's variables."""

    model_dir: str = DEFAULT_MODEL_DIR
    host: str = LOOPBACK
    port: int = DEFAULT_PORT
    workers: int = 1
    capture_dir: str | None = None
    capture_endpoint_name: str = DEFAULT_ENDPOINT_NAME
    capture_variant_name: str = DEFAULT_VARIANT_NAME
    capture_sampling_percentage: float = 100
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES
    expected_sha256: str | None = None
    trust_inference_time_header: bool = False
    header_timeout_seconds: float = ServingSettings().header_timeout_seconds
    body_timeout_seconds: float = ServingSettings().body_timeout_seconds
    scoring_timeout_seconds: float = ServingSettings().scoring_timeout_seconds
    keep_alive_seconds: float = ServingSettings().keep_alive_seconds

    def __post_init__(self) -> None:
        problems = []
        if not 0 <= self.port <= 65535:
            problems.append(f"port must be between 0 and 65535, got {self.port}")
        if self.workers < 1:
            problems.append(f"workers must be at least 1, got {self.workers}")
        if not 0 <= self.capture_sampling_percentage <= 100:
            problems.append(
                f"capture sampling percentage must be between 0 and 100, got {self.capture_sampling_percentage}"
            )
        if self.max_body_bytes < 1:
            problems.append(f"max body bytes must be positive, got {self.max_body_bytes}")
        if self.max_batch_bytes < 1:
            problems.append(f"max batch bytes must be positive, got {self.max_batch_bytes}")
        for name in (
            "header_timeout_seconds",
            "body_timeout_seconds",
            "scoring_timeout_seconds",
            "keep_alive_seconds",
        ):
            if not getattr(self, name) > 0:
                problems.append(f"{name} must be positive, got {getattr(self, name)}")
        if problems:
            raise ConfigError("invalid serve options: " + "; ".join(problems))

    def capture_writer(self) -> CaptureWriter | None:
        if self.capture_dir is None:
            return None
        from mlcore.capture import CaptureWriter

        return CaptureWriter(
            self.capture_dir,
            endpoint_name=self.capture_endpoint_name,
            variant_name=self.capture_variant_name,
            sampling_percentage=self.capture_sampling_percentage,
        )

    @property
    def limits(self) -> RequestLimits:
        from mlcore.serve.app import RequestLimits

        return RequestLimits(
            body_timeout_seconds=self.body_timeout_seconds,
            scoring_timeout_seconds=self.scoring_timeout_seconds,
        )


def build_app(options: ServeOptions) -> Starlette:
    """Load, verify and warm up the model and build the app (raises ModelError/ConfigError)."""
    from mlcore.serve.app import create_app

    return create_app(
        options.model_dir,
        capture=options.capture_writer(),
        max_body_bytes=options.max_body_bytes,
        max_batch_bytes=options.max_batch_bytes,
        limits=options.limits,
        expected_sha256=options.expected_sha256,
        trust_inference_time_header=options.trust_inference_time_header,
    )


def app_from_environment() -> Starlette:
    """The app factory uvicorn's worker processes call; options come from the parent.

    A worker that cannot build the app logs why and exits with uvicorn's start-up failure
    code, which stops the parent (see the module docstring) instead of a restart loop.
    """
    raw = os.environ.get(_OPTIONS_ENV)
    try:
        if raw is None:
            raise ConfigError(f"{_OPTIONS_ENV} is not set; start the server with `mlcore serve`")
        return build_app(ServeOptions(**json.loads(raw)))
    except MlcoreError as exc:
        logger.error("worker %d cannot serve: %s", os.getpid(), exc)
    except Exception:  # anything else a model's code raises while loading: the same outcome
        logger.exception("worker %d failed while loading the model", os.getpid())
    sys.exit(STARTUP_FAILURE)


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket created with IPPROTO_TCP (asyncio then keeps TCP_NODELAY on)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as exc:
        listener.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc}") from exc
    listener.set_inheritable(True)
    return listener


def uvicorn_config(
    options: ServeOptions, app: Starlette | str, *, own_logging: bool = True
) -> ServeConfig:
    """The uvicorn configuration every path uses: our protocol, deadlines and keep-alive.

    ``own_logging=False`` leaves the caller's logging set-up alone (no uvicorn log config).
    """
    extra: dict[str, Any] = {} if own_logging else {"log_config": None}
    return ServeConfig(
        app,
        **extra,
        factory=isinstance(app, str),
        workers=options.workers,
        header_timeout_seconds=options.header_timeout_seconds,
        timeout_keep_alive=max(1, round(options.keep_alive_seconds)),
        lifespan="off",
        access_log=False,
        timeout_graceful_shutdown=10,
    )


def check_model(options: ServeOptions) -> str:
    """Build the app once and stop it: the model loads, verifies and warms up, or this raises.

    Returns the hash of the model that was verified (see :func:`mlcore.model.model_sha256`).
    """
    app = build_app(options)
    app.state.scorer.shutdown()
    sha256: str = app.state.predictor.bundle.sha256
    return sha256


def check_model_in_child(options: ServeOptions) -> str:
    """:func:`check_model` in a spawned child process; its ModelError/ConfigError is raised here.

    The child exits afterwards, taking pandas, scikit-learn and the model with it.
    """
    with ProcessPoolExecutor(
        max_workers=1, mp_context=multiprocessing.get_context("spawn")
    ) as checker:
        try:
            return checker.submit(check_model, options).result()
        except BrokenProcessPool as exc:  # killed (out of memory, say) or crashed in native code
            raise ModelError(
                f"the process checking the model in {options.model_dir} died before it "
                f"finished ({exc}); check that the model loads with `mlcore serve --workers 1` "
                "and that the machine has memory for it"
            ) from exc


def run_server(options: ServeOptions) -> None:
    """Serve in the foreground until SIGTERM/SIGINT (how SageMaker stops a container).

    The model is loaded, verified and warmed up before any port opens, so a bad model is
    one clear error (exit 2), not a crash loop of workers.
    """
    if options.workers == 1:
        app = build_app(options)
        with _listening(options) as listener:
            uvicorn.Server(uvicorn_config(options, app)).run(sockets=[listener])
        return
    # Each worker builds its own app from the options; the check runs in a child so that
    # this supervising process never holds the model's libraries. Every worker, replacements
    # included, is then held to the hash of the model the check verified.
    verified = replace(options, expected_sha256=check_model_in_child(options))
    with (
        _listening(verified) as listener,
        tempfile.TemporaryDirectory(prefix="mlcore-metrics-") as metrics_dir,
        _environment(
            {
                _OPTIONS_ENV: json.dumps(asdict(verified)),
                # Set before the workers start, so each counts into files any of them can sum.
                MULTIPROCESS_ENV: os.environ.get(MULTIPROCESS_ENV) or metrics_dir,
            }
        ),
    ):
        config = uvicorn_config(verified, "mlcore.serve.server:app_from_environment")
        supervisor = Multiprocess(config, sockets=[listener])
        supervisor.run()
    # uvicorn stops the parent when a worker exits with its start-up failure code (ours:
    # app_from_environment) but returns normally; the failure must reach the exit code.
    failed = [p.pid for p in supervisor.processes if p.exitcode == STARTUP_FAILURE]
    if failed:
        raise ModelError(
            f"worker process {failed[0]} could not load the model in {options.model_dir} "
            f"(verified at start-up as {verified.expected_sha256}); the log above says why, "
            "and the server has stopped. If the folder was changed after the server started, "
            "deploy the intended model again."
        )


@contextmanager
def _listening(options: ServeOptions) -> Iterator[socket.socket]:
    """The server's listening socket, logged, and closed when serving ends."""
    listener = listening_socket(options.host, options.port)
    logger.info(
        "starting the inference server on %s:%d with %d worker(s), model %s",
        options.host,
        listener.getsockname()[1],
        options.workers,
        options.model_dir,
    )
    try:
        yield listener
    finally:
        listener.close()


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables (inherited by worker processes) for the block only."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def serve_in_thread(
    model: ModelBundle | Predictor | str | Path,
    *,
    host: str = LOOPBACK,
    port: int = 0,
    capture: CaptureWriter | None = None,
    capture_dir: str | Path | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    expected_sha256: str | None = None,
    trust_inference_time_header: bool = False,
    settings: ServingSettings | None = None,
) -> Iterator[str]:
    """Run the real uvicorn server in a background thread; yield its base URL.

    ``port=0`` picks a free port. Data capture is off unless ``capture`` (a configured
    :class:`~mlcore.capture.CaptureWriter`) or ``capture_dir`` (capture every request
    into that folder with default names) is given. ``host`` is an IPv4 address.
    ``settings`` sets the deadlines (default: :class:`~mlcore.settings.ServingSettings`).
    The server stops (finishing requests in flight) when the block exits.

    Examples
    --------
    >>> with serve_in_thread("out/model") as url:  # doctest: +SKIP
    ...     httpx.post(f"{url}/invocations", content=csv_text, headers={"Content-Type": "text/csv"})
    """
    from mlcore.capture import CaptureWriter
    from mlcore.serve.app import create_app

    if capture is not None and capture_dir is not None:
        raise ConfigError("give capture (a CaptureWriter) or capture_dir (a folder), not both")
    serving = settings or ServingSettings()
    options = ServeOptions(
        host=host,
        port=port,
        max_body_bytes=max_body_bytes,
        header_timeout_seconds=serving.header_timeout_seconds,
        body_timeout_seconds=serving.body_timeout_seconds,
        scoring_timeout_seconds=serving.scoring_timeout_seconds,
        keep_alive_seconds=serving.keep_alive_seconds,
    )
    writer = CaptureWriter(capture_dir) if capture_dir is not None else capture
    app = create_app(
        model,
        capture=writer,
        max_body_bytes=max_body_bytes,
        limits=options.limits,
        expected_sha256=expected_sha256,
        trust_inference_time_header=trust_inference_time_header,
    )
    listener = listening_socket(host, port)
    bound_port = listener.getsockname()[1]
    config = uvicorn_config(options, app, own_logging=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [listener]}, name="mlcore-serve", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + _STARTUP_TIMEOUT_SECONDS
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the inference server stopped during start-up; see the log")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the inference server did not start within {_STARTUP_TIMEOUT_SECONDS} s"
                )
            time.sleep(0.01)
        url = f"http://{host}:{bound_port}"
        logger.info("inference server listening on %s", url)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=_STARTUP_TIMEOUT_SECONDS)
        if thread.is_alive():
            logger.warning(
                "the inference server did not stop within %s s", _STARTUP_TIMEOUT_SECONDS
            )
        listener.close()
        app.state.scorer.shutdown(wait=False, cancel_futures=True)


def _vcpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _int_env(name: str, default: int, environ: Mapping[str, str]) -> int:
    raw = environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"environment variable {name} must be an integer, got {raw!r}") from exc
