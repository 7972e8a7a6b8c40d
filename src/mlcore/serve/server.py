"""Running the inference app on uvicorn: in the foreground (``mlcore serve``) or in a thread.

SageMaker starts the container with ``serve`` and expects the server on the port in
``SAGEMAKER_BIND_TO_PORT`` (8080 when unset), the model in ``/opt/ml/model``, and
honours ``SAGEMAKER_MODEL_SERVER_WORKERS`` for the number of server processes.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from mlcore.capture import DEFAULT_ENDPOINT_NAME, DEFAULT_VARIANT_NAME, CaptureWriter
from mlcore.errors import ConfigError
from mlcore.model import ModelBundle
from mlcore.serve.app import DEFAULT_MAX_BODY_BYTES, create_app

logger = logging.getLogger(__name__)

DEFAULT_MODEL_DIR = "/opt/ml/model"
DEFAULT_PORT = 8080
PORT_ENV = "SAGEMAKER_BIND_TO_PORT"
WORKERS_ENV = "SAGEMAKER_MODEL_SERVER_WORKERS"
# How the parent hands its options to worker processes, which build their own app.
_OPTIONS_ENV = "MLCORE_SERVE_OPTIONS"
_STARTUP_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class ServeOptions:
    """Everything ``mlcore serve`` needs; :meth:`from_environment` fills SageMaker's defaults."""

    model_dir: str = DEFAULT_MODEL_DIR
    host: str = "0.0.0.0"  # inside a container the endpoint must listen on all interfaces
    port: int = DEFAULT_PORT
    workers: int = 1
    capture_dir: str | None = None
    capture_endpoint_name: str = DEFAULT_ENDPOINT_NAME
    capture_variant_name: str = DEFAULT_VARIANT_NAME
    capture_sampling_percentage: float = 100
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES

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
        if problems:
            raise ConfigError("invalid serve options: " + "; ".join(problems))

    def capture_writer(self) -> CaptureWriter | None:
        if self.capture_dir is None:
            return None
        return CaptureWriter(
            self.capture_dir,
            endpoint_name=self.capture_endpoint_name,
            variant_name=self.capture_variant_name,
            sampling_percentage=self.capture_sampling_percentage,
        )


def port_from_environment() -> int:
    """``SAGEMAKER_BIND_TO_PORT`` as an int, or 8080 when unset."""
    return _int_env(PORT_ENV, DEFAULT_PORT)


def workers_from_environment() -> int:
    """``SAGEMAKER_MODEL_SERVER_WORKERS`` as an int, or 1 when unset."""
    return _int_env(WORKERS_ENV, 1)


def build_app(options: ServeOptions) -> Starlette:
    """Load the model and build the app (raises ModelError when the model directory is unusable)."""
    return create_app(
        options.model_dir, capture=options.capture_writer(), max_body_bytes=options.max_body_bytes
    )


def app_from_environment() -> Starlette:
    """The app factory uvicorn's worker processes call; options come from the parent."""
    raw = os.environ.get(_OPTIONS_ENV)
    if raw is None:
        raise ConfigError(f"{_OPTIONS_ENV} is not set; start the server with `mlcore serve`")
    return build_app(ServeOptions(**json.loads(raw)))


def run_server(options: ServeOptions) -> None:
    """Serve in the foreground until SIGTERM/SIGINT (how SageMaker stops a container)."""
    # Load the model here, in one process with a clear error, before any port is opened.
    app = build_app(options)
    logger.info(
        "starting the inference server on %s:%d with %d worker(s), model %s",
        options.host,
        options.port,
        options.workers,
        options.model_dir,
    )
    if options.workers == 1:
        uvicorn.run(app, host=options.host, port=options.port)
        return
    # Worker processes build their own app from the same options.
    os.environ[_OPTIONS_ENV] = json.dumps(asdict(options))
    uvicorn.run(
        "mlcore.serve.server:app_from_environment",
        factory=True,
        host=options.host,
        port=options.port,
        workers=options.workers,
    )


@contextmanager
def serve_in_thread(
    model: ModelBundle | str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    capture: CaptureWriter | None = None,
    capture_dir: str | Path | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> Iterator[str]:
    """Run the real uvicorn server in a background thread; yield its base URL.

    ``port=0`` picks a free port. Data capture is off unless ``capture`` (a configured
    :class:`~mlcore.capture.CaptureWriter`) or ``capture_dir`` (capture every request
    into that folder with default names) is given. ``host`` is an IPv4 address. The
    server stops (finishing requests in flight) when the block exits.

    Examples
    --------
    >>> with serve_in_thread("out/model") as url:  # doctest: +SKIP
    ...     httpx.post(f"{url}/invocations", content=csv_text, headers={"Content-Type": "text/csv"})
    """
    if capture is not None and capture_dir is not None:
        raise ConfigError("give capture (a CaptureWriter) or capture_dir (a folder), not both")
    writer = CaptureWriter(capture_dir) if capture_dir is not None else capture
    app = create_app(model, capture=writer, max_body_bytes=max_body_bytes)
    # proto must be IPPROTO_TCP: asyncio only sets TCP_NODELAY on sockets that say so, and
    # without it every response waits ~40 ms for a delayed ACK (Nagle's algorithm).
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    bound_port = listener.getsockname()[1]
    # log_config=None leaves the caller's logging set-up alone.
    config = uvicorn.Config(
        app, lifespan="off", log_config=None, access_log=False, timeout_graceful_shutdown=10
    )
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


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"environment variable {name} must be an integer, got {raw!r}") from exc
