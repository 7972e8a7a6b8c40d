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
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mlcore import __version__
from mlcore.errors import MlcoreError
from mlcore.jsonio import dumps
from mlcore.settings_file import DEFAULT_SETTINGS_FILE, SETTINGS_ENV_VAR, settings_path

if TYPE_CHECKING:
    from mlcore.settings import MlopsSettings

# Every import below this module's own is deferred to the command that needs it, so
# `mlcore --help` and `mlcore <command> --help` load no pandas, scikit-learn or scipy.
logger = logging.getLogger("mlcore")

EXIT_ERROR = 2
EXIT_GATE_FAILED = 3


def settings_from_args(args: argparse.Namespace) -> MlopsSettings:
    """``--settings FILE``; else ``$MLOPS_SETTINGS``; else ./mlops.yaml when present; else defaults."""
    from mlcore.settings import load_settings

    return load_settings(settings_path(getattr(args, "settings", None)))


def _add_overwrite_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the output folder's contents even if mlcore did not write them (default: "
        "a non-empty folder without mlcore's .mlcore-output marker is refused)",
    )


def _add_settings_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--settings",
        metavar="FILE",
        help=f"lifecycle settings YAML (default: ${SETTINGS_ENV_VAR}, else ./{DEFAULT_SETTINGS_FILE} "
        "if present, else built-in defaults)",
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
    print(dumps({"output": str(result.output_dir), **result.lineage["split_rows"]}))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from mlcore.tracking import resolve_tracking
    from mlcore.train import run_sagemaker_training, train_from_paths

    settings = settings_from_args(args)
    if args.data is None and args.model_dir is None:
        # No paths: we are the entry point of a SageMaker training container.
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
    training = settings.training
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
    if args.algorithm:
        training = training.model_copy(update={"algorithm": args.algorithm, "estimator": None})
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
        track_evaluation(tracking, model_dir=Path(args.model_dir), output_dir=result.output_dir)
    print(dumps({"gate_passed": result.gate.passed, "metrics": result.metrics}))
    if args.fail_on_gate and not result.gate.passed:
        print("quality gate failed: " + "; ".join(result.gate.reasons), file=sys.stderr)
        return EXIT_GATE_FAILED
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from mlcore.demo import DemoOptions, run_demo

    if not args.verbose:
        # The demo shows its own progress; per-request and per-step logs would bury it.
        logging.getLogger().setLevel(logging.WARNING)
        for name in ("httpx", "uvicorn", "uvicorn.error", "uvicorn.access"):
            logging.getLogger(name).setLevel(logging.WARNING)
    options = DemoOptions(output_dir=Path(args.output), rows=args.rows, quiet=args.quiet)
    run_demo(options, settings_from_args(args))
    return 0


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The mlcore parser; ``argv`` (default: sys.argv) decides which component parser to load."""
    parser = argparse.ArgumentParser(
        prog="mlcore",
        description="mlcore: the entry points every host runs (SageMaker, Azure ML, CI, laptop).",
    )
    parser.add_argument("--version", action="version", version=f"mlcore {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    prep = sub.add_parser("prep", help="validate raw data, split it and record its lineage")
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
    _add_settings_option(prep)
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
    _add_settings_option(train)
    train.set_defaults(handler=_cmd_train)

    evaluate = sub.add_parser(
        "evaluate",
        help="score a model, apply the quality gate, write evaluation.json and a model card",
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
    _add_settings_option(evaluate)
    evaluate.set_defaults(handler=_cmd_evaluate)

    _add_component_subcommands(sub, _chosen_command(argv))

    demo = sub.add_parser(
        "demo", help="run the whole lifecycle locally: train, gate, register, serve, drift, retrain"
    )
    demo.add_argument(
        "--output", default="out/demo", help="folder for every artifact (default: out/demo)"
    )
    demo.add_argument(
        "--rows", type=int, default=60_000, help="rows of generated training data (default: 60000)"
    )
    demo.add_argument("--quiet", action="store_true", help="no progress display, summary only")
    _add_settings_option(demo)
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
    sub: argparse._SubParsersAction[argparse.ArgumentParser], chosen: str | None
) -> None:
    for name, (module, function, summary) in COMPONENT_COMMANDS.items():
        if name == chosen:
            getattr(importlib.import_module(module), function)(sub)
        else:
            sub.add_parser(name, help=summary)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        code: int = args.handler(args)
    except MlcoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:
        # The file system refused (permissions, a full disk, a missing mount): the
        # operator's to fix, so a clear line rather than a traceback.
        print(f"error: {_describe_os_error(exc)}", file=sys.stderr)
        return EXIT_ERROR
    return code


def _describe_os_error(exc: OSError) -> str:
    where = " -> ".join(str(name) for name in (exc.filename, exc.filename2) if name is not None)
    reason = exc.strerror or str(exc)
    return f"{where}: {reason}" if where else reason


if __name__ == "__main__":
    sys.exit(main())
