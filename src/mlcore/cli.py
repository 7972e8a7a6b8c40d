"""The ``mlcore`` command line: the entry points every host runs.

Inside a SageMaker container ``mlcore train`` and ``mlcore serve`` read the
container contract with no arguments; everywhere else the same code takes
explicit paths. ``mlcore demo`` runs the whole lifecycle locally.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from mlcore import __version__
from mlcore.errors import ConfigError, GateFailed, MlcoreError
from mlcore.job_failure import report_job_failure
from mlcore.jsonio import dumps
from mlcore.settings_file import add_settings_option, find_settings
from mlcore.signals import exit_on_sigterm_as_pid_1

if TYPE_CHECKING:
    from mlcore.settings import MlopsSettings

# Every import below this module's own is deferred to the command that needs it, so
# `mlcore --help` and `mlcore <command> --help` load no pandas, scikit-learn or scipy.
logger = logging.getLogger("mlcore")

EXIT_ERROR = MlcoreError.exit_code
EXIT_GATE_FAILED = GateFailed.exit_code


class _Parser(argparse.ArgumentParser):
    """argparse's parser, whose usage errors (exit 2) also reach SageMaker's failure file:
    a job started with a wrong argument says which, not just "exit code 2"."""

    def error(self, message: str) -> NoReturn:
        report_job_failure(f"{self.prog}: {message}")
        super().error(message)


def settings_from_args(args: argparse.Namespace, *, required: bool = True) -> MlopsSettings:
    """The settings of a command with a ``--settings`` option: :func:`command_settings`."""
    return command_settings(getattr(args, "settings", None), required=required)


def command_settings(explicit: str | None, *, required: bool = True) -> MlopsSettings:
    """The settings every command reads (:mod:`mlcore.settings_file` finds the file), naming
    the file on stderr. Without a file, a command that describes the data (``required``)
    stops and says how to create one; the others run on the built-in defaults.
    """
    from mlcore.settings import load_settings

    source = find_settings(explicit)
    if source.path is None and required:
        raise ConfigError(source.missing_message())
    print(
        source.describe() + ("" if source.path else "; built-in defaults"),
        file=sys.stderr,
    )
    return load_settings(source.path)


def _add_overwrite_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the output folder's contents even if mlcore did not write them (default: "
        "a non-empty folder without mlcore's .mlcore-output marker is refused)",
    )


def _cmd_prep(args: argparse.Namespace) -> int:
    from mlcore.prep import run_prep

    result = run_prep(
        data=args.data,
        output_dir=args.output,
        settings=settings_from_args(args),
        target=args.target,
        overwrite=args.overwrite,
    )
    print(
        dumps(
            {
                "output": str(result.output_dir),
                **result.lineage["split_rows"],
                "split": result.lineage["split"],
                "unlabelled_rows_dropped": result.lineage["unlabelled_rows_dropped"],
            }
        )
    )
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from mlcore.tracking import resolve_tracking
    from mlcore.train import run_sagemaker_training, train_from_paths

    if args.data is None and args.model_dir is None:
        from mlcore.tracking import sagemaker_job

        # No paths: the entry point of a SageMaker training container, and only there.
        if sagemaker_job() != "training":
            raise ConfigError(
                "mlcore train needs --data and --model-dir here: without them it follows the "
                "SageMaker training contract, and this is no SageMaker training job (SageMaker "
                "sets TRAINING_JOB_NAME and TRAINING_JOB_ARN in its training containers)"
            )
        settings = settings_from_args(args)
        return run_sagemaker_training(
            root=args.sagemaker_root,
            base_settings=settings.training,
            drift_settings=settings.drift,
            dataset=settings.dataset,
            tracking=resolve_tracking(settings),
        )
    if args.data is None or args.model_dir is None:
        raise MlcoreError(
            "give both --data and --model-dir, or neither to follow the SageMaker training contract"
        )
    settings = settings_from_args(args)
    training = settings.training
    if args.algorithm:
        # Another algorithm starts from its own defaults, never from this one's hyperparameters.
        training = training.with_algorithm(args.algorithm)
    if args.hyperparameters:
        try:
            overrides = json.loads(args.hyperparameters)
        except json.JSONDecodeError as exc:
            raise MlcoreError(f"--hyperparameters is not valid JSON: {exc}") from exc
        if not isinstance(overrides, dict):
            raise MlcoreError('--hyperparameters must be a JSON object, e.g. {"max_iter": 300}')
        training = training.model_copy(
            update={"hyperparameters": {**training.hyperparameters, **overrides}}
        )
    if args.estimator:
        training = training.model_copy(update={"estimator": args.estimator})
    bundle = train_from_paths(
        data=args.data,
        model_dir=args.model_dir,
        settings=training,
        target=args.target,
        validation=args.validation,
        spec_path=args.spec,
        dataset=settings.dataset,
        drift_settings=settings.drift,
        commit=args.git_commit,
        tracking=resolve_tracking(settings),
        overwrite=args.overwrite,
    )
    print(
        dumps(
            {
                "model_dir": str(args.model_dir),
                "validation_metrics": bundle.metadata.get("validation_metrics"),
            }
        )
    )
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from mlcore.evaluation_job import run_evaluation
    from mlcore.tracking import resolve_tracking, track_evaluation

    settings = settings_from_args(args)
    tracking = resolve_tracking(settings)
    result = run_evaluation(
        model_dir=args.model_dir,
        data=args.data,
        output_dir=args.output,
        settings=settings,
        champion_dir=args.champion_dir,
        overwrite=args.overwrite,
    )
    if tracking is not None:
        track_evaluation(
            tracking,
            model_dir=Path(args.model_dir),
            output_dir=result.output_dir,
            data=args.data,
            role=args.role,
        )
    print(dumps({"gate_passed": result.gate.passed, "metrics": result.metrics}))
    if not result.gate.passed:
        refusal = (
            "quality gate failed: "
            + "; ".join(result.gate.reasons)
            + f". The model card is {Path(args.output) / 'model_card.md'}"
        )
        if args.fail_on_gate:
            raise GateFailed(refusal)
        # The job succeeds (the pipeline's condition reads gate.json), and its exit message
        # says why nothing was registered.
        report_job_failure(refusal)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from mlcore.demo import DemoOptions, run_demo

    if args.example and args.settings:
        raise ConfigError("give --example or --settings, not both")
    if args.example:
        from mlcore.settings import MlopsSettings

        print("settings: the built-in churn example (--example)", file=sys.stderr)
        settings = MlopsSettings.model_validate({})
    else:
        settings = settings_from_args(args)
    if not args.verbose:
        # The demo shows its own progress and ends a failure in one line; the log records
        # (tracebacks too) go to its demo.log, not the console, where they would bury it.
        for handler in logging.getLogger().handlers:
            handler.setLevel(logging.CRITICAL + 1)
        for name in ("httpx", "uvicorn", "uvicorn.error", "uvicorn.access"):
            logging.getLogger(name).setLevel(logging.WARNING)
    options = DemoOptions(output_dir=Path(args.output), rows=args.rows, quiet=args.quiet)
    run_demo(options, settings)
    return 0


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The mlcore parser; ``argv`` (default: sys.argv) decides which component parser to load."""
    parser = _Parser(
        prog="mlcore",
        description="mlcore: the entry points every host runs (SageMaker, Azure ML, CI, laptop).",
    )
    parser.add_argument("--version", action="version", version=f"mlcore {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    prep = sub.add_parser(
        "prep",
        help="validate raw data, split it and record its lineage",
        description="Validate raw data against the settings' dataset section (every problem at "
        "once), drop and count rows without a label, split it into train/, validation/ and "
        "test/ (by time with a timestamp, else shuffled with the seed, every class in every "
        "split) and write spec.json and lineage.json. Prints the split sizes as JSON.",
    )
    prep.add_argument(
        "--data", help="CSV or Parquet file, or a folder of them (default: dataset.path)"
    )
    prep.add_argument(
        "--output",
        default="out/prep",
        help="folder for train/, validation/, test/, spec.json, lineage.json (default: out/prep)",
    )
    prep.add_argument("--target", help="target column (default: dataset.target in the settings)")
    _add_overwrite_option(prep)
    add_settings_option(prep)
    prep.set_defaults(handler=_cmd_prep)

    train = sub.add_parser(
        "train",
        help="train a model (no arguments: the SageMaker training contract under /opt/ml)",
        description="Train a model. With no --data/--model-dir, read the SageMaker training contract: "
        "channels under /opt/ml/input/data, hyperparameters.json, SM_* variables; write /opt/ml/model.",
    )
    train.add_argument("--data", help="training data: CSV or Parquet file, or a folder of them")
    train.add_argument("--model-dir", help="folder to write the model to")
    train.add_argument(
        "--target",
        help="target column: resolve the spec from the settings with this target instead of "
        "prep's spec.json",
    )
    train.add_argument(
        "--validation",
        help="validation data, for the metrics recorded with the model (default: validation/ "
        "beside a train/ folder that prep wrote)",
    )
    train.add_argument(
        "--spec",
        help="dataset spec JSON (default: prep's spec.json beside train/, else resolved from "
        "the settings' dataset section)",
    )
    train.add_argument(
        "--algorithm",
        help="hist_gradient_boosting, random_forest, logistic_regression, ridge, xgboost or "
        "lightgbm (default: training.algorithm)",
    )
    train.add_argument(
        "--estimator",
        metavar="MODULE:FACTORY",
        help="your own scikit-learn-compatible estimator factory (default: training.estimator)",
    )
    train.add_argument(
        "--hyperparameters", help='JSON object of estimator hyperparameters, e.g. {"max_iter": 300}'
    )
    train.add_argument(
        "--git-commit", help="commit the code was built from (default: from CI variables or git)"
    )
    train.add_argument("--sagemaker-root", default="/opt/ml", help=argparse.SUPPRESS)
    _add_overwrite_option(train)
    add_settings_option(train)
    train.set_defaults(handler=_cmd_train)

    evaluate = sub.add_parser(
        "evaluate",
        help="score a model, apply the quality gate, write evaluation.json and a model card",
        description="Score a model on labelled data (and the champion on the same rows), apply "
        "the quality gate and write evaluation.json (SageMaker's model-quality layout), "
        f"gate.json, slice metrics and the model card. Prints the metrics as JSON; with "
        f"--fail-on-gate a failed gate exits {EXIT_GATE_FAILED}.",
    )
    evaluate.add_argument(
        "--model-dir",
        required=True,
        help="model folder (or a folder holding SageMaker's model.tar.gz)",
    )
    evaluate.add_argument(
        "--data", required=True, help="labelled evaluation data: CSV or Parquet file, or a folder"
    )
    evaluate.add_argument(
        "--output", required=True, help="folder for evaluation.json, gate.json, model_card.*"
    )
    evaluate.add_argument(
        "--champion-dir", help="the current champion model, scored on the same data for the gate"
    )
    evaluate.add_argument(
        "--fail-on-gate", action="store_true", help=f"exit {EXIT_GATE_FAILED} when the gate fails"
    )
    _add_overwrite_option(evaluate)
    evaluate.add_argument(
        "--role",
        choices=("champion", "challenger", "retrain"),
        help="what the model is, for its MLflow run's name and mlcore.role tag (default: "
        "challenger with --champion-dir, else champion; retrain for a model trained because "
        "drift was found)",
    )
    add_settings_option(evaluate)
    evaluate.set_defaults(handler=_cmd_evaluate)

    _add_component_subcommands(sub, _chosen_command(argv))

    demo = sub.add_parser(
        "demo",
        help="run the whole lifecycle locally: train, gate, register, serve, drift, retrain",
        description="The whole lifecycle on this machine through the real entry points: prep, "
        "train in an emulated SageMaker container, evaluate and gate, register and approve, "
        "serve over HTTP with data capture, drift and quality jobs, retrain and gate the "
        "challenger against the champion. Runs on the settings' dataset (the first mlops.yaml "
        "found upward), or on generated churn data with --example. A failure ends in one line "
        f"naming the step and what to do: exit {EXIT_ERROR} for input, {EXIT_GATE_FAILED} for a "
        "gate.",
    )
    demo.add_argument(
        "--output", default="out/demo", help="folder for every artifact (default: out/demo)"
    )
    demo.add_argument(
        "--rows", type=int, default=60_000, help="rows of generated training data (default: 60000)"
    )
    demo.add_argument("--quiet", action="store_true", help="no progress display, summary only")
    demo.add_argument(
        "--example",
        action="store_true",
        help="run on the built-in churn example (generated data), whatever settings file exists",
    )
    add_settings_option(demo)
    demo.set_defaults(handler=_cmd_demo)
    return parser


# Subcommands whose parser lives with their code: name -> (module, function, one-line help).
# Only the chosen one's module is imported; the others appear in `mlcore --help` by this line.
COMPONENT_COMMANDS = {
    "init": (
        "mlcore.project_init",
        "add_init_parser",
        "generate this project's settings from your data (mlops.yaml, cdk.json, Azure envs)",
    ),
    "drift": (
        "mlcore.drift.cli",
        "add_drift_parser",
        "compare current data with the reference or the model's baseline",
    ),
    "quality": (
        "mlcore.quality",
        "add_quality_parser",
        "join late ground truth with captured predictions and score live quality",
    ),
    "batch": (
        "mlcore.batch",
        "add_batch_parser",
        "score a data drop with a released model, in chunks, monitored like live traffic",
    ),
    "serve": (
        "mlcore.serve.cli",
        "add_serve_parser",
        "serve a model over HTTP (SageMaker inference contract: GET /ping, POST /invocations)",
    ),
    "extras": (
        "mlcore.project_init",
        "add_extras_parser",
        "the optional dependencies the settings need, for image and environment builds",
    ),
}


def _chosen_command(argv: Sequence[str] | None) -> str | None:
    args = list(sys.argv[1:] if argv is None else argv)
    return next((a for a in args if not a.startswith("-")), None)


def _add_component_subcommands(
    sub: argparse._SubParsersAction[_Parser], chosen: str | None
) -> None:
    for name, (module, function, summary) in COMPONENT_COMMANDS.items():
        if name == chosen:
            getattr(importlib.import_module(module), function)(sub)
        else:
            sub.add_parser(name, help=summary)


def main(argv: Sequence[str] | None = None) -> int:
    # A processing job's ContainerEntrypoint runs mlcore as PID 1: without a handler it would
    # ignore SageMaker's SIGTERM and every stop would wait for SIGKILL (mlcore.signals).
    exit_on_sigterm_as_pid_1()
    # OpenMP threads that sleep while they wait for each other, set before a command loads
    # scikit-learn's OpenMP runtime (which reads it once): with the spinning default, training
    # on a busy machine with two threads took over 150 s where one took 11 to 14 s and two
    # sleeping threads 4 to 11 s (make bench-threads; README, "Training threads"). An
    # explicit OMP_WAIT_POLICY wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser(argv)
    # Usage errors: _Parser.error reports them, then argparse exits 2.
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Inside a SageMaker job every failure also leaves its reason where SageMaker shows it
    # (mlcore.job_failure); on a laptop or in CI nothing is written.
    root = getattr(args, "sagemaker_root", None)
    try:
        code: int = args.handler(args)
    except MlcoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        report_job_failure(f"mlcore {args.command}: {exc}", root=root)
        return exc.exit_code
    except OSError as exc:
        # The file system refused (permissions, a full disk, a missing mount): the
        # operator's to fix, so a clear line rather than a traceback.
        print(f"error: {_describe_os_error(exc)}", file=sys.stderr)
        report_job_failure(f"mlcore {args.command}: {_describe_os_error(exc)}", root=root)
        return EXIT_ERROR
    except Exception as exc:
        # A bug, not an input problem: the traceback goes to the log as ever.
        report_job_failure(
            f"mlcore {args.command} failed unexpectedly: {type(exc).__name__}: {exc} "
            "(the traceback is in the job's log)",
            root=root,
        )
        raise
    if code != 0:
        # A handler that ends with a code rather than an exception (run_sagemaker_training
        # writes its own reason first; this keeps any other from failing silently).
        report_job_failure(f"mlcore {args.command} exited {code}", root=root, keep_existing=True)
    return code


def _describe_os_error(exc: OSError) -> str:
    where = " -> ".join(str(name) for name in (exc.filename, exc.filename2) if name is not None)
    reason = exc.strerror or str(exc)
    return f"{where}: {reason}" if where else reason


if __name__ == "__main__":
    sys.exit(main())
