"""The ``mlcore serve`` subcommand: SageMaker's ``serve`` invocation and local serving."""

from __future__ import annotations

import argparse

from mlcore.capture import DEFAULT_ENDPOINT_NAME, DEFAULT_VARIANT_NAME
from mlcore.serve.app import DEFAULT_MAX_BODY_BYTES
from mlcore.serve.server import (
    DEFAULT_MODEL_DIR,
    PORT_ENV,
    WORKERS_ENV,
    ServeOptions,
    port_from_environment,
    run_server,
    workers_from_environment,
)
from mlcore.settings import load_settings


def add_serve_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``serve`` on the mlcore CLI; its handler returns the exit code."""
    parser = subparsers.add_parser(
        "serve",
        help="serve a model over HTTP (SageMaker inference contract: GET /ping, POST /invocations)",
        description=(
            "Serve a model with uvicorn. POST /invocations takes text/csv (no header, features in "
            'the model\'s order) or application/json ({"instances": [...]} or a list of records) '
            "and answers in the type the Accept header asks for (application/json or text/csv). "
            "With no arguments it follows SageMaker's contract, as `docker run <image> serve` does."
        ),
    )
    parser.add_argument(
        "--model-dir",
        default=DEFAULT_MODEL_DIR,
        help=f"model directory written by `mlcore train` (default: {DEFAULT_MODEL_DIR})",
    )
    parser.add_argument(
        "--host",
        default="0.0.0.0",
        help="interface to listen on (default: 0.0.0.0, as containers need)",
    )
    parser.add_argument(
        "--port", type=int, default=None, help=f"port (default: ${PORT_ENV}, else 8080)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help=f"server processes (default: ${WORKERS_ENV}, else 1)",
    )
    parser.add_argument(
        "--capture-dir",
        default=None,
        help="record requests and responses here in SageMaker's data-capture layout (default: off)",
    )
    parser.add_argument(
        "--capture-sampling-percentage",
        type=float,
        default=None,
        help="share of requests to capture, 0-100 (default: monitoring.capture_sampling_percentage "
        "from --settings, else 100)",
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
        "--max-body-bytes",
        type=int,
        default=DEFAULT_MAX_BODY_BYTES,
        help=f"largest request body accepted; larger ones get 413 (default: {DEFAULT_MAX_BODY_BYTES})",
    )
    parser.add_argument("--settings", default=None, help="lifecycle settings file (mlops.yaml)")
    parser.set_defaults(handler=serve_command)


def options_from_args(args: argparse.Namespace) -> ServeOptions:
    """Resolve the command line and SageMaker's environment variables into serve options."""
    sampling = args.capture_sampling_percentage
    if sampling is None:
        sampling = (
            load_settings(args.settings).monitoring.capture_sampling_percentage
            if args.settings
            else 100
        )
    return ServeOptions(
        model_dir=args.model_dir,
        host=args.host,
        port=args.port if args.port is not None else port_from_environment(),
        workers=args.workers if args.workers is not None else workers_from_environment(),
        capture_dir=args.capture_dir,
        capture_endpoint_name=args.capture_endpoint_name,
        capture_variant_name=args.capture_variant_name,
        capture_sampling_percentage=sampling,
        max_body_bytes=args.max_body_bytes,
    )


def serve_command(args: argparse.Namespace) -> int:
    """Run the server until it is stopped; errors (bad model dir, bad options) raise MlcoreError."""
    run_server(options_from_args(args))
    return 0
