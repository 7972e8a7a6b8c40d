"""Data and prediction drift: graded verdicts you can trust at any volume, readable by Model
Monitor users.

Public API::

    baseline = build_baseline(train_frame, spec, settings, prediction_columns=("score",))
    baseline.save(model_dir / "baseline")
    report = detect_drift(Baseline.load(model_dir / "baseline"), current, settings=settings)
    write_drift_outputs(report, out_dir)   # drift_report.json, Model Monitor files, HTML

Per column every registered test runs (``registry``); the configured method
(``DriftSettings.numeric_method`` / ``categorical_method``) and the data-quality
checks (missing rate, out-of-range or unseen values) grade the column none,
moderate or major (``grading``), or insufficient data below the minimum
window. The share of features graded major, and the domain classifier, grade
the dataset. ``detect_drift`` is the exact engine, ``streaming`` the chunked one.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Names are imported on first use, so `mlcore drift --help` (which imports mlcore.drift.cli,
# hence this package) loads neither pandas nor scipy.
_EXPORTS = {
    "GRADES": "grading",
    "GRADE_LEVELS": "grading",
    "Grade": "grading",
    "Baseline": "baseline",
    "ColumnBaseline": "baseline",
    "build_baseline": "baseline",
    "CategoricalSummary": "summaries",
    "NumericSummary": "summaries",
    "DriftReport": "results",
    "FeatureDrift": "results",
    "ReferenceInfo": "results",
    "TestResult": "results",
    "adjust_p_values": "correction",
    "chi2_drift": "chi2",
    "detect_drift": "detect",
    "jensenshannon_drift": "divergence",
    "kl_drift": "divergence",
    "ks_drift": "ks",
    "psi_drift": "psi",
    "wasserstein_drift": "wasserstein",
    "write_drift_outputs": "outputs",
}

if TYPE_CHECKING:
    from mlcore.drift.baseline import Baseline, ColumnBaseline, build_baseline
    from mlcore.drift.chi2 import chi2_drift
    from mlcore.drift.correction import adjust_p_values
    from mlcore.drift.detect import detect_drift
    from mlcore.drift.divergence import jensenshannon_drift, kl_drift
    from mlcore.drift.grading import GRADE_LEVELS, GRADES, Grade
    from mlcore.drift.ks import ks_drift
    from mlcore.drift.outputs import write_drift_outputs
    from mlcore.drift.psi import psi_drift
    from mlcore.drift.results import DriftReport, FeatureDrift, ReferenceInfo, TestResult
    from mlcore.drift.summaries import CategoricalSummary, NumericSummary
    from mlcore.drift.wasserstein import wasserstein_drift


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mlcore.drift' has no attribute {name!r}")
    return getattr(importlib.import_module(f"mlcore.drift.{module}"), name)


__all__ = [
    "GRADES",
    "GRADE_LEVELS",
    "Baseline",
    "CategoricalSummary",
    "ColumnBaseline",
    "DriftReport",
    "FeatureDrift",
    "Grade",
    "NumericSummary",
    "ReferenceInfo",
    "TestResult",
    "adjust_p_values",
    "build_baseline",
    "chi2_drift",
    "detect_drift",
    "jensenshannon_drift",
    "kl_drift",
    "ks_drift",
    "psi_drift",
    "wasserstein_drift",
    "write_drift_outputs",
]
