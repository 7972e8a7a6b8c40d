"""The evaluation step: score a model, apply the gate, write evaluation.json and the model card.

Runs as ``mlcore evaluate`` in a SageMaker Processing job, an Azure ML command job,
CI or the local run; the files it writes are the contract with the pipelines:
``evaluation.json`` (SageMaker model-quality layout, read by a ConditionStep),
``gate.json`` (with the challenger's ``model_sha256``, for the register step to record),
``slice_metrics.json``, ``model_card.json``, ``model_card.md`` and a copy of the model's
``sample_request.json``, so a pipeline can publish it without unpacking the model archive.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from mlcore.atomic import check_output_dir, staged_output
from mlcore.data import check_declared_columns, fingerprint, load_table, validate_frame
from mlcore.errors import ModelError
from mlcore.evaluate import MetricReport, evaluate_bundle, evaluation_document, slice_metrics
from mlcore.gate import GateDecision, evaluate_gate
from mlcore.jsonio import write_json
from mlcore.model import (
    MODEL_SHA256_KEY,
    SAMPLE_REQUEST_FILE,
    ModelBundle,
    unpack_model_dir,
)
from mlcore.model_card import build_model_card, write_model_card
from mlcore.settings import MlopsSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluationResult:
    metrics: dict[str, float]
    gate: GateDecision
    output_dir: Path
    report: MetricReport


def load_model_dir(model_dir: str | Path) -> ModelBundle:
    """Load a model folder, unpacking SageMaker's ``model.tar.gz`` when that is what it holds."""
    return ModelBundle.load(_model_folder(model_dir))


def _model_folder(model_dir: str | Path) -> Path:
    if not Path(model_dir).exists():
        raise ModelError(f"model directory does not exist: {model_dir}")
    return unpack_model_dir(model_dir)


def run_evaluation(
    *,
    model_dir: str | Path,
    data: str | Path,
    output_dir: str | Path,
    settings: MlopsSettings,
    champion_dir: str | Path | None = None,
    model_name: str | None = None,
    overwrite: bool = False,
) -> EvaluationResult:
    """Evaluate the challenger (and the champion on the same data), gate, and write the reports.

    The champion is scored with the challenger's positive label, so both are measured on
    the same terms; the gate's metric names are checked against the challenger's problem
    type (see :meth:`mlcore.settings.GateSettings.for_problem`). The reports are published
    together (see :mod:`mlcore.atomic`): a failed write leaves no evaluation.json behind
    for a ConditionStep to read.
    The model card is titled ``model_name`` (default: the project's name, ``<project> model``).
    """
    check_output_dir(output_dir, overwrite=overwrite)  # before any work
    challenger_dir = _model_folder(model_dir)
    challenger = ModelBundle.load(challenger_dir)
    problem = challenger.problem
    gate_settings = settings.gate.for_problem(problem.problem_type)
    frame = load_table(data)
    validate_frame(frame, challenger.spec)
    # A misspelt slice column is an error naming it, never a slice silently left out.
    check_declared_columns(frame, {"dataset.slice_columns": settings.dataset.slice_columns})
    seed = settings.training.seed
    report = evaluate_bundle(challenger, frame, seed=seed)
    metrics = report.metrics
    champion_metrics = None
    if champion_dir is not None:
        champion = load_model_dir(champion_dir)
        if (
            champion.spec.features != challenger.spec.features
            or champion.spec.target != challenger.spec.target
        ):
            logger.warning(
                "champion and challenger use different features; comparing on the same rows anyway"
            )
        champion_metrics = evaluate_bundle(champion, frame, seed=seed, problem=problem).metrics
    decision = evaluate_gate(metrics, champion_metrics, gate_settings)

    scored = frame.join(challenger.predict(frame))
    slice_columns = list(settings.dataset.slice_columns)
    slices = slice_metrics(
        scored,
        slice_columns=slice_columns,
        target=challenger.spec.target,
        problem=problem,
        probabilities=(
            challenger.predict_proba(frame) if challenger.spec.task == "classification" else None
        ),
    )

    out = Path(output_dir)
    card = build_model_card(
        challenger,
        report=report,
        slices=slices,
        gate=decision,
        evaluation_rows=len(frame),
        evaluation_fingerprint=fingerprint(frame),
        name=model_name or f"{settings.project} model",
    )
    sample = challenger_dir / SAMPLE_REQUEST_FILE
    # What the pipeline reads first (evaluation.json, gate.json) is published last.
    with staged_output(out, last=("gate.json", "evaluation.json"), overwrite=overwrite) as stage:
        write_json(stage / "evaluation.json", evaluation_document(report))
        write_json(
            stage / "gate.json",
            {
                **decision.to_dict(),
                # The model's hash (its manifest's): what the register step records.
                MODEL_SHA256_KEY: challenger.sha256,
                # The MLflow run the model was trained in (null when untracked), for the registers.
                "mlflow_run_id": challenger.metadata.get("mlflow_run_id"),
            },
        )
        if sample.is_file():
            shutil.copyfile(sample, stage / SAMPLE_REQUEST_FILE)
        else:
            logger.warning("%s has no %s to publish beside the evaluation", model_dir, sample.name)
        write_json(stage / "slice_metrics.json", slices)
        write_model_card(card, stage)
    logger.info(
        "gate %s: %s", "passed" if decision.passed else "failed", "; ".join(decision.reasons)
    )
    return EvaluationResult(metrics=metrics, gate=decision, output_dir=out, report=report)
