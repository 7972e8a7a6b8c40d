"""Data and prediction drift: exact, fast, and readable by Model Monitor users.

Public API::

    baseline = build_baseline(train_frame, spec, settings, prediction_columns=("score",))
    baseline.save(model_dir / "baseline")
    report = detect_drift(Baseline.load(model_dir / "baseline"), current, settings=settings)
    write_drift_outputs(report, out_dir)   # drift_report.json, Model Monitor files, HTML

Per column every registered test runs (``registry``); the configured one
(``DriftSettings.numeric_method`` / ``categorical_method``) and the
missing-value-rate check decide whether the column drifts, and the share of
drifted features decides whether the dataset drifts.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlcore.drift.baseline import Baseline, ColumnBaseline, build_baseline
    from mlcore.drift.chi2 import chi2_drift
    from mlcore.drift.correction import adjust_p_values
    from mlcore.drift.detect import detect_drift
    from mlcore.drift.divergence import jensenshannon_drift, kl_drift
    from mlcore.drift.ks import ks_drift
    from mlcore.drift.outputs import write_drift_outputs
    from mlcore.drift.psi import psi_drift
    from mlcore.drift.results import DriftReport, FeatureDrift, MissingRateResult, TestResult
    from mlcore.drift.summaries import CategoricalSummary, NumericSummary
    from mlcore.drift.wasserstein import wasserstein_drift

# Resolved on first use, so `mlcore drift --help` (which imports mlcore.drift.cli) loads
# no numpy, pandas or scipy.
_EXPORTS = {
    "Baseline": "mlcore.drift.baseline",
    "ColumnBaseline": "mlcore.drift.baseline",
    "build_baseline": "mlcore.drift.baseline",
    "chi2_drift": "mlcore.drift.chi2",
    "adjust_p_values": "mlcore.drift.correction",
    "detect_drift": "mlcore.drift.detect",
    "jensenshannon_drift": "mlcore.drift.divergence",
    "kl_drift": "mlcore.drift.divergence",
    "ks_drift": "mlcore.drift.ks",
    "write_drift_outputs": "mlcore.drift.outputs",
    "psi_drift": "mlcore.drift.psi",
    "DriftReport": "mlcore.drift.results",
    "FeatureDrift": "mlcore.drift.results",
    "MissingRateResult": "mlcore.drift.results",
    "TestResult": "mlcore.drift.results",
    "CategoricalSummary": "mlcore.drift.summaries",
    "NumericSummary": "mlcore.drift.summaries",
    "wasserstein_drift": "mlcore.drift.wasserstein",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mlcore.drift' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


__all__ = [
    "Baseline",
    "CategoricalSummary",
    "ColumnBaseline",
    "DriftReport",
    "FeatureDrift",
    "MissingRateResult",
    "NumericSummary",
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
