"""The ``mlcore serve`` subcommand: SageMaker's ``serve`` invocation and local serving.

Only the argument definitions live at module level; the server (starlette, uvicorn,
the model's libraries) is imported when the command runs, so ``mlcore --help`` stays fast.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from mlcore.serve.defaults import (
    DEFAULT_ENDPOINT_NAME,
    DEFAULT_MAX_BATCH_BYTES,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MODEL_DIR,
    DEFAULT_VARIANT_NAME,
    HOST_ENV,
    MODEL_SHA256_ENV,
    PORT_ENV,
    SERVING_ENV,
    WORKERS_ENV,
)
from mlcore.settings_file import add_settings_option

if TYPE_CHECKING:
    from mlcore.serve.server import ServeOptions


def add_serve_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``serve`` on the mlcore CLI; its handler returns the exit code."""
    parser = subparsers.add_parser(
        "serve",
        help="serve a model over HTTP (SageMaker inference contract: GET /ping, POST /invocations)",
        description=(
            "Serve a model with uvicorn. POST /invocations takes text/csv (no header, features in "
            'the model\'s order) or application/json ({"instances": [...]} or a list of records) '
            "and answers in the type the Accept header asks for (application/json or text/csv). "
            "Without --model-dir it follows the container contract, as SageMaker's "
            "`docker run <image> serve` does: the model in /opt/ml/model, all interfaces "
            "(0.0.0.0), port $SAGEMAKER_BIND_TO_PORT or 8080, one worker per vCPU. With "
            "--model-dir it is a local server: loopback (127.0.0.1) and one worker unless told "
            "otherwise. The model's files are checked against their hash before anything is "
            "loaded, and the model's sample_request.json is scored once before /ping answers."
        ),
    )
    parser.add_argument(
        "--model-dir",
        default=None,
        help="model directory written by `mlcore train`; giving it makes this a local server "
        f"(default: {DEFAULT_MODEL_DIR}, the container contract)",
    )
    parser.add_argument(
        "--model-sha256",
        default=None,
        metavar="sha256:HEX",
        help="the registered hash of the model (the registry's model_sha256: the sha256 of its "
        "manifest.sha256); a model folder with any other byte in model.joblib or metadata.json "
        f"is refused before anything is loaded (default: ${MODEL_SHA256_ENV})",
    )
    parser.add_argument(
        "--host",
        default=None,
        help=f"interface to listen on (default: ${HOST_ENV}, else 0.0.0.0 without --model-dir "
        "(the container contract) and 127.0.0.1 with it)",
    )
    parser.add_argument(
        "--port", type=int, default=None, help=f"port (default: ${PORT_ENV}, else 8080)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help=f"server processes (default: ${WORKERS_ENV}, else the vCPU count without "
        "--model-dir (the container contract) and 1 with it)",
    )
    parser.add_argument(
        "--capture-dir",
        default=None,
        help="record requests and responses here in SageMaker's data-capture layout; the "
        "server refuses to start when it cannot write there (default: off)",
    )
    parser.add_argument(
        "--capture-sampling-percentage",
        type=float,
        default=None,
        help="share of requests to capture, 0-100 (default: monitoring.capture_sampling_percentage "
        "from the settings)",
    )
    parser.add_argument(
        "--capture-endpoint-name",
        default=DEFAULT_ENDPOINT_NAME,
        help=f"endpoint folder under --capture-dir (default: {DEFAULT_ENDPOINT_NAME})",
    )
    parser.add_argument(
        "--capture-variant-name",
        default=DEFAULT_VARIANT_NAME,
        help=f"variant folder under the endpoint folder (default: {DEFAULT_VARIANT_NAME})",
    )
    parser.add_argument(
        "--trust-inference-time-header",
        action="store_true",
        help="record the X-Mlcore-Inference-Time request header as the capture time (for replaying "
        "another period's traffic locally; never on a real endpoint). Default: ignored",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=DEFAULT_MAX_BODY_BYTES,
        help=f"largest request body accepted; larger ones get 413 (default: {DEFAULT_MAX_BODY_BYTES})",
    )
    parser.add_argument(
        "--max-batch-bytes",
        type=int,
        default=DEFAULT_MAX_BATCH_BYTES,
        help="requests waiting while the model is busy are scored together in one model call, "
        f"up to this many body bytes per call; 1 scores each request alone (default: "
        f"{DEFAULT_MAX_BATCH_BYTES})",
    )
    add_settings_option(
        parser,
        what=", else built-in defaults; its serving section sets the timeouts "
        f"unless ${SERVING_ENV} holds that section as JSON (set by the deployment)",
    )
    parser.set_defaults(handler=serve_command)


def options_from_args(args: argparse.Namespace) -> ServeOptions:
    """Resolve the command line, the settings and SageMaker's environment into serve options."""
    from mlcore.cli import settings_from_args
    from mlcore.serve.server import (
        ServeOptions,
        default_host,
        default_workers,
        port_from_environment,
        serving_from_environment,
    )

    # A serving container carries no settings file: the built-in serving limits then apply.
    settings = settings_from_args(args, required=False)
    sampling = args.capture_sampling_percentage
    if sampling is None:
        sampling = settings.monitoring.capture_sampling_percentage
    # The deployment's copy of the serving section wins: it is what the endpoint was given.
    serving = serving_from_environment() or settings.serving
    # No model folder given: this is the container's `serve` (SageMaker hosting, Batch Transform).
    container = args.model_dir is None
    return ServeOptions(
        model_dir=DEFAULT_MODEL_DIR if container else args.model_dir,
        host=args.host or default_host(container=container),
        port=args.port if args.port is not None else port_from_environment(),
        workers=args.workers if args.workers is not None else default_workers(container=container),
        capture_dir=args.capture_dir,
        capture_endpoint_name=args.capture_endpoint_name,
        capture_variant_name=args.capture_variant_name,
        capture_sampling_percentage=sampling,
        max_body_bytes=args.max_body_bytes,
        max_batch_bytes=args.max_batch_bytes,
        expected_sha256=args.model_sha256,
        trust_inference_time_header=args.trust_inference_time_header,
        header_timeout_seconds=serving.header_timeout_seconds,
        body_timeout_seconds=serving.body_timeout_seconds,
        scoring_timeout_seconds=serving.scoring_timeout_seconds,
        keep_alive_seconds=serving.keep_alive_seconds,
    )


def serve_command(args: argparse.Namespace) -> int:
    """Run the server until it is stopped; errors (bad model dir, bad options) raise MlcoreError."""
    from mlcore.serve.server import run_server

    run_server(options_from_args(args))
    return 0
