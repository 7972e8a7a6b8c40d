"""The evaluation's figures: PNG files drawn with scikit-learn's Display classes.

* binary: ROC curve and precision-recall curve (each with the no-skill line), calibration
  curve, confusion matrix;
* multiclass: one-vs-rest ROC and precision-recall curves per class, the calibration of
  the top class's probability, confusion matrix;
* regression: predicted against actual, residuals against predicted;
* every task: permutation feature importance, when it was computed.

Figures are drawn on matplotlib's Agg canvas through the object API (no pyplot state, no
display needed, safe beside other threads), and matplotlib is imported only when a figure
is drawn, so nothing that merely imports mlcore (serving, say) pays for it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlcore.metric_names import BINARY, REGRESSION
from mlcore.problem import Problem

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from mlcore.evaluate import FeatureImportance

FIGURES_DIR = "figures"
# 600 x 450 pixels: readable in a model card, small enough to embed several.
_SIZE_INCHES = (6.0, 4.5)
_DPI = 100
# The busiest features shown in the importance chart.
_MAX_IMPORTANCE_BARS = 15


@dataclass(frozen=True)
class FigureFile:
    """One written figure: ``path`` is relative to the evaluation's output folder."""

    name: str
    title: str
    path: str
    caption: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "title": self.title, "path": self.path, "caption": self.caption}


@dataclass(frozen=True)
class EvaluationData:
    """What the figures are drawn from: the labels, predictions and probabilities of the
    evaluation rows, in ``problem.classes`` order, and the feature importances."""

    problem: Problem
    truth: np.ndarray
    pred: np.ndarray
    proba: np.ndarray | None
    importance: Sequence[FeatureImportance] = ()
    importance_metric: str = ""
    seed: int = 0


def write_figures(out_dir: str | Path, data: EvaluationData) -> tuple[FigureFile, ...]:
    """Draw every figure that applies to ``data`` into ``out_dir/figures``; what was written."""
    folder = Path(out_dir) / FIGURES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, title, caption, draw in _plans(data):
        figure, axes = _new_figure()
        draw(axes)
        axes.set_title(title)
        figure.tight_layout()
        figure.savefig(folder / f"{name}.png", dpi=_DPI)
        written.append(FigureFile(name, title, f"{FIGURES_DIR}/{name}.png", caption))
    return tuple(written)


_Plan = tuple[str, str, str, Callable[["Axes"], None]]


def _plans(data: EvaluationData) -> list[_Plan]:
    problem = data.problem
    if problem.problem_type == REGRESSION:
        plans = _regression_plans(data)
    elif problem.problem_type == BINARY:
        plans = _binary_plans(data)
    else:
        plans = _multiclass_plans(data)
    if data.importance:
        plans.append(
            (
                "feature_importance",
                "Permutation feature importance",
                f"How much {data.importance_metric} worsens when one feature's values are "
                "shuffled across the evaluation rows (mean and standard deviation over the "
                "repeats); near zero: the model does not rely on the feature.",
                lambda ax: _importance(ax, data),
            )
        )
    return plans


def _binary_plans(data: EvaluationData) -> list[_Plan]:
    problem = data.problem
    actual = data.truth == problem.positive_label
    plans: list[_Plan] = []
    if data.proba is not None and 0 < actual.sum() < len(actual):
        score = data.proba[:, problem.positive_index]
        label = problem.positive_label
        positive = repr(label)
        plans += [
            (
                "roc_curve",
                "ROC curve",
                f"True against false positive rate as the threshold on P({positive}) moves; "
                "the dashed diagonal is a model with no skill (AUC 0.5).",
                lambda ax: _roc(ax, data.truth, score, label),
            ),
            (
                "precision_recall_curve",
                "Precision-recall curve",
                f"Precision against recall for the positive label {positive}; the dashed line "
                f"is a model with no skill (precision = the share of positives, "
                f"{actual.mean():.3f}).",
                lambda ax: _precision_recall(ax, data.truth, score, label),
            ),
            (
                "calibration_curve",
                "Calibration curve",
                f"Observed share of {positive} against the mean predicted P({positive}), in "
                "bins of equal size; on the diagonal, probabilities mean what they say.",
                lambda ax: _calibration(
                    ax, actual, score, f"P({positive})", f"observed share of {positive}"
                ),
            ),
        ]
    plans.append(_confusion_plan(data))
    return plans


def _multiclass_plans(data: EvaluationData) -> list[_Plan]:
    plans: list[_Plan] = []
    # One-vs-rest curves need a class with rows of its own and rows of others.
    if data.proba is not None and len(set(data.truth.tolist())) >= 2:
        proba = data.proba
        correct = data.pred == data.truth
        plans += [
            (
                "roc_curve",
                "ROC curves, one class against the rest",
                "Per class, true against false positive rate as the threshold on that class's "
                "probability moves; the dashed diagonal is a model with no skill.",
                lambda ax: _per_class(ax, data, proba, curve="roc"),
            ),
            (
                "precision_recall_curve",
                "Precision-recall curves, one class against the rest",
                "Per class, precision against recall; a model with no skill has precision "
                "equal to the class's share.",
                lambda ax: _per_class(ax, data, proba, curve="precision_recall"),
            ),
            (
                "calibration_curve",
                "Calibration of the predicted class",
                "How often the predicted class is right against the probability the model "
                "gave it, in bins of equal size; on the diagonal, probabilities mean what "
                "they say.",
                lambda ax: _calibration(
                    ax,
                    correct,
                    proba.max(axis=1),
                    "probability of the predicted class",
                    "share where the predicted class is right",
                ),
            ),
        ]
    plans.append(_confusion_plan(data))
    return plans


def _regression_plans(data: EvaluationData) -> list[_Plan]:
    truth, pred = data.truth.astype(float), data.pred.astype(float)
    return [
        (
            "predicted_vs_actual",
            "Predicted against actual",
            "Each point is an evaluation row (up to 1,000 shown); on the diagonal, the "
            "prediction is exact.",
            lambda ax: _prediction_error(ax, truth, pred, "actual_vs_predicted", data.seed),
        ),
        (
            "residuals",
            "Residuals against predicted",
            "Actual minus predicted for each evaluation row (up to 1,000 shown); a pattern "
            "or a funnel means errors depend on the prediction.",
            lambda ax: _prediction_error(ax, truth, pred, "residual_vs_predicted", data.seed),
        ),
    ]


def _confusion_plan(data: EvaluationData) -> _Plan:
    return (
        "confusion_matrix",
        "Confusion matrix",
        "Rows: actual class; columns: predicted class; counts of evaluation rows.",
        lambda ax: _confusion(ax, data),
    )


def _new_figure() -> tuple[Any, Axes]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=_SIZE_INCHES)
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def _roc(ax: Axes, truth: np.ndarray, score: np.ndarray, positive: Any) -> None:
    from sklearn.metrics import RocCurveDisplay

    RocCurveDisplay.from_predictions(
        truth, score, pos_label=positive, name="model", ax=ax, plot_chance_level=True
    )


def _precision_recall(ax: Axes, truth: np.ndarray, score: np.ndarray, positive: Any) -> None:
    from sklearn.metrics import PrecisionRecallDisplay

    PrecisionRecallDisplay.from_predictions(
        truth, score, pos_label=positive, name="model", ax=ax, plot_chance_level=True
    )


def _calibration(
    ax: Axes, outcome: np.ndarray, probability: np.ndarray, x_label: str, y_label: str
) -> None:
    from sklearn.calibration import CalibrationDisplay

    # Ten bins of equal size, fewer for small sets so that each bin holds 20 rows or more.
    bins = int(max(2, min(10, len(outcome) // 20)))
    CalibrationDisplay.from_predictions(
        outcome, probability, n_bins=bins, strategy="quantile", name="model", ax=ax
    )
    ax.set_xlabel(f"mean predicted {x_label}")
    ax.set_ylabel(y_label)


def _per_class(ax: Axes, data: EvaluationData, proba: np.ndarray, *, curve: str) -> None:
    from sklearn.metrics import PrecisionRecallDisplay, RocCurveDisplay

    display = RocCurveDisplay if curve == "roc" else PrecisionRecallDisplay
    classes = list(data.problem.classes)
    drawn = [
        c for c in range(len(classes)) if 0 < (data.truth == classes[c]).sum() < len(data.truth)
    ]
    for position, c in enumerate(drawn):
        display.from_predictions(
            data.truth == classes[c],
            proba[:, c],
            pos_label=True,
            name=str(classes[c]),
            ax=ax,
            # Precision-recall chance levels differ per class; the ROC diagonal is shared.
            plot_chance_level=curve == "roc" and position == len(drawn) - 1,
        )


def _confusion(ax: Axes, data: EvaluationData) -> None:
    from sklearn.metrics import ConfusionMatrixDisplay

    labels = list(data.problem.classes)
    ConfusionMatrixDisplay.from_predictions(
        data.truth,
        data.pred,
        labels=labels,
        display_labels=[str(label) for label in labels],
        ax=ax,
        colorbar=False,
        values_format="d",
        xticks_rotation="vertical" if len(labels) > 6 else "horizontal",
    )
    ax.set_xlabel("predicted class")
    ax.set_ylabel("actual class")


def _prediction_error(ax: Axes, truth: np.ndarray, pred: np.ndarray, kind: str, seed: int) -> None:
    from sklearn.metrics import PredictionErrorDisplay

    PredictionErrorDisplay.from_predictions(
        truth, pred, kind=kind, subsample=1000, random_state=seed, ax=ax
    )


def _importance(ax: Axes, data: EvaluationData) -> None:
    shown = sorted(data.importance, key=lambda item: -item.mean)[:_MAX_IMPORTANCE_BARS]
    shown.reverse()  # barh draws bottom-up: the most important at the top
    positions = np.arange(len(shown))
    ax.barh(
        positions,
        [item.mean for item in shown],
        xerr=[item.std for item in shown],
        color="#0969da",
        ecolor="#57606a",
        capsize=3,
    )
    ax.set_yticks(positions, [_short(item.feature) for item in shown])
    ax.axvline(0.0, color="#57606a", linewidth=0.8)
    ax.set_xlabel(f"how much {data.importance_metric} worsens when the feature is shuffled")


def _short(label: str) -> str:
    return label if len(label) <= 24 else label[:23] + "…"
