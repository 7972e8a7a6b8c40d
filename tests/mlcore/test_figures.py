"""The evaluation's figures for every problem type and for untidy labels (issue 22, finding 9),
and matplotlib kept out of serving's start-up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image

from mlcore.evaluate import FeatureImportance
from mlcore.figures import EvaluationData, write_figures
from mlcore.problem import Problem


def _drawn(path: Path) -> np.ndarray:
    """The PNG's pixels; a figure that drew nothing would be one flat colour."""
    pixels = image.imread(path)
    assert pixels.shape[:2] == (450, 600), path
    assert float(pixels[..., :3].std()) > 0.05, f"{path.name} is blank"
    return pixels


def test_a_multiclass_model_with_unusual_labels_gets_one_vs_rest_curves_and_its_matrix(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(0)
    classes = ("low risk", "Mid/2", "ünknown", "42")
    truth = rng.choice(np.array(classes, dtype=object), size=500)
    proba = rng.dirichlet([1, 1, 1, 1], 500)
    proba[np.arange(500), [classes.index(t) for t in truth]] += 1.0
    proba /= proba.sum(axis=1, keepdims=True)
    pred = np.array(classes, dtype=object)[proba.argmax(axis=1)]
    written = write_figures(
        tmp_path,
        EvaluationData(
            problem=Problem(task="classification", classes=classes),
            truth=truth,
            pred=pred,
            proba=proba,
            importance=(FeatureImportance("x", 0.1, 0.01), FeatureImportance("y", -0.001, 0.002)),
            importance_metric="auc",
        ),
    )
    assert [f.name for f in written] == [
        "roc_curve",
        "precision_recall_curve",
        "calibration_curve",
        "confusion_matrix",
        "feature_importance",
    ]
    for figure in written:
        _drawn(tmp_path / figure.path)
        assert figure.caption and figure.title


def test_a_regression_model_gets_predicted_against_actual_and_residuals(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    truth = rng.lognormal(size=3000) * 1e4  # heavy-tailed amounts
    pred = truth * rng.normal(1.0, 0.2, size=3000)
    written = write_figures(
        tmp_path,
        EvaluationData(problem=Problem(task="regression"), truth=truth, pred=pred, proba=None),
    )
    assert [f.name for f in written] == ["predicted_vs_actual", "residuals"]
    for figure in written:
        _drawn(tmp_path / figure.path)


def test_binary_curves_need_both_classes_and_probabilities_the_matrix_does_not(
    tmp_path: Path,
) -> None:
    problem = Problem(
        task="classification", classes=("no", "yes"), positive_label="yes", decision_threshold=0.5
    )
    one_class = np.array(["no"] * 50, dtype=object)
    written = write_figures(
        tmp_path / "one",
        EvaluationData(
            problem=problem, truth=one_class, pred=one_class, proba=np.full((50, 2), 0.5)
        ),
    )
    assert [f.name for f in written] == ["confusion_matrix"]
    labels = np.array(["no", "yes"] * 25, dtype=object)
    without = write_figures(
        tmp_path / "none", EvaluationData(problem=problem, truth=labels, pred=labels, proba=None)
    )
    assert [f.name for f in without] == ["confusion_matrix"]


def test_serving_never_imports_matplotlib() -> None:
    probe = (
        "import json, sys\n"
        "import mlcore.serve, mlcore.serve.app, mlcore.serve.predictor, mlcore.model\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(done.stdout.splitlines()[-1]) == []


@pytest.mark.parametrize("module", ["mlcore.evaluate", "mlcore.figures", "mlcore.model_card"])
def test_the_evaluation_modules_import_matplotlib_only_when_drawing(module: str) -> None:
    probe = f"import sys, {module}\nprint('matplotlib' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "False"
