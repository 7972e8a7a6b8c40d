"""Small binary, multiclass and regression tables with their own column names, for "any dataset" tests.

Built from scikit-learn's bundled datasets (no download): breast cancer (binary, string
labels), wine (three cultivars) and diabetes (regression). Each is resampled to ``rows``
rows with a little jitter, given a categorical column and a timestamp, and its latest
30% (the period `mlcore demo` serves as live traffic) is drawn with a covariate shift:
rows with high values of one feature are favoured, as when the population changes.
The feature-target relationship is the original one throughout.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import joblib
import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

from mlcore.data import DatasetSpec, coerce_features

Kind = Literal["binary", "multiclass", "regression"]
KINDS: tuple[Kind, ...] = ("binary", "multiclass", "regression")
LIVE_SHARE = 0.3  # mlcore.demo.LIVE_SHARE: the latest rows the demo serves as live traffic


@dataclass(frozen=True)
class TabularDataset:
    kind: Kind
    frame: pd.DataFrame
    target: str
    timestamp: str
    slice_column: str
    shifted_feature: str

    def settings(self, path: str, **extra: Any) -> dict[str, Any]:
        """Settings overrides pointing mlcore at this data, with fast training."""
        data: dict[str, Any] = {
            "project": f"{self.kind}-demo",
            "dataset": {
                "path": path,
                "target": self.target,
                "timestamp": self.timestamp,
                "id_columns": [],
                "slice_columns": [self.slice_column],
            },
            "training": {"hyperparameters": {"max_iter": 30, "learning_rate": 0.2}},
        }
        for section, values in extra.items():
            data[section] = {**data.get(section, {}), **values}
        return data


def make_dataset(kind: Kind, rows: int = 2_000, seed: int = 0) -> TabularDataset:
    if kind == "binary":
        bunch = load_breast_cancer(as_frame=True)
        base = bunch.data.iloc[:, :10].copy()
        # scikit-learn codes malignant as 0, benign as 1; the labels here are words.
        base["diagnosis"] = np.where(bunch.target == 0, "malignant", "benign")
        target, shifted = "diagnosis", "mean texture"
    elif kind == "multiclass":
        bunch = load_wine(as_frame=True)
        base = bunch.data.copy()
        base["cultivar"] = np.array(["barolo", "grignolino", "barbera"])[bunch.target]
        target, shifted = "cultivar", "magnesium"
    else:
        bunch = load_diabetes(as_frame=True, scaled=False)
        base = bunch.data.copy()
        base["progression"] = bunch.target.astype(float)
        target, shifted = "progression", "bmi"
    rng = np.random.default_rng(seed)
    numeric = [c for c in base.columns if c != target]
    n_live = int(rows * LIVE_SHARE)
    history_rows = rng.integers(0, len(base), rows - n_live)
    z = (base[shifted] - base[shifted].mean()) / base[shifted].std()
    weights = np.exp(1.0 * z.to_numpy())
    live_rows = rng.choice(len(base), size=n_live, p=weights / weights.sum())
    frame = base.iloc[np.concatenate([history_rows, live_rows])].reset_index(drop=True)
    jitter = rng.normal(0, 0.03, size=(len(frame), len(numeric))) * base[numeric].std().to_numpy()
    frame[numeric] = frame[numeric].to_numpy() + jitter
    # A categorical feature with some signal: the tercile of the first feature, named freely.
    frame["site"] = pd.qcut(frame[numeric[0]], 3, labels=["Lyon", "Porto", "Turku"]).astype(str)
    frame["recorded_at"] = pd.date_range("2024-01-01", periods=len(frame), freq="h")
    return TabularDataset(
        kind=kind,
        frame=frame,
        target=target,
        timestamp="recorded_at",
        slice_column="site",
        shifted_feature=shifted,
    )


def scikit_learn_metrics(model_dir: Path, test_data: Path) -> dict[str, float]:
    """Metrics recomputed with scikit-learn from model.joblib, its metadata and the test data."""
    metadata = json.loads((model_dir / "metadata.json").read_text())
    spec = DatasetSpec.from_dict(metadata["spec"])
    pipeline = joblib.load(model_dir / "model.joblib")
    test = pd.read_parquet(test_data)
    features, truth = coerce_features(test, spec), test[spec.target]
    if spec.task == "regression":
        pred = pipeline.predict(features)
        return {
            "rmse": skm.root_mean_squared_error(truth, pred),
            "mae": skm.mean_absolute_error(truth, pred),
            "r2": skm.r2_score(truth, pred),
        }
    proba = pipeline.predict_proba(features)
    classes = list(pipeline.classes_)
    if len(classes) > 2:
        pred = np.asarray(classes)[proba.argmax(axis=1)]
        return {
            "auc": skm.roc_auc_score(truth, proba, multi_class="ovr"),
            "log_loss": skm.log_loss(truth, proba, labels=classes),
            "accuracy": skm.accuracy_score(truth, pred),
            "weighted_f1": skm.f1_score(truth, pred, average="weighted"),
        }
    positive = metadata["positive_label"]
    negative = next(c for c in classes if c != positive)
    score = proba[:, classes.index(positive)]
    pred = np.where(score >= metadata["decision_threshold"], positive, negative)
    return {
        "auc": skm.roc_auc_score(truth == positive, score),
        "log_loss": skm.log_loss(truth == positive, score),
        "accuracy": skm.accuracy_score(truth, pred),
        "f1": skm.f1_score(truth, pred, pos_label=positive),
        "recall": skm.recall_score(truth, pred, pos_label=positive),
    }
