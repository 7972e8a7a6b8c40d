"""The saved model: a fitted scikit-learn pipeline plus the metadata that makes it traceable.

A model directory holds:

* ``model.joblib``: the fitted pipeline (preprocessing + estimator);
* ``metadata.json``: dataset spec, algorithm, hyperparameters, seed, data
  fingerprint, git commit, library versions, the classes and, for a binary model,
  the positive label (with the rule that chose it) and the decision threshold;
* ``baseline/``: the drift baseline computed from the training data, read by the
  monitors (written by :mod:`mlcore.train`);
* ``sample_request.json``: a few held-out rows as an inference request, the payload
  every smoke test and health check sends (written by :mod:`mlcore.train`).

``metadata.json`` records the sha256 of ``model.joblib`` (``model_sha256``). Registries
copy it outside the model folder, and serving checks the file against that copy.

Training writes it, serving and evaluation load it, on every host alike.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from mlcore.data import DatasetSpec, coerce_features
from mlcore.errors import DataError, ModelError
from mlcore.jsonio import dumps
from mlcore.problem import BINARY, Problem

MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"
BASELINE_DIR = "baseline"
SAMPLE_REQUEST_FILE = "sample_request.json"
# Metadata key (and registry metadata key) holding "sha256:<hex>" of the model file.
MODEL_SHA256_KEY = "model_sha256"
# Rows of held-out data in the sample request: enough to exercise batching, small enough to log.
SAMPLE_REQUEST_ROWS = 5
# SageMaker hands a training job's model to later steps as this archive.
SAGEMAKER_MODEL_ARCHIVE = "model.tar.gz"
PREDICTION_COLUMN = "prediction"
SCORE_COLUMN = "score"


@dataclass
class ModelBundle:
    """A fitted pipeline with its dataset spec and lineage metadata."""

    pipeline: Pipeline
    spec: DatasetSpec
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def classes(self) -> list[Any]:
        return list(self.metadata.get("classes", []))

    @property
    def problem(self) -> Problem:
        """Problem type, classes, positive label and decision threshold, from the metadata."""
        return Problem.from_metadata(self.spec, self.metadata)

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Predict for the feature columns of ``frame``.

        Returns a frame with ``prediction`` and, for classification, ``score``. Binary:
        ``score`` is the probability of the positive label and ``prediction`` is the
        positive label when ``score`` reaches the decision threshold. Multiclass: the
        most probable class and its probability. :meth:`predict_proba` gives every
        class's probability.
        """
        if self.spec.task != "classification":
            out = pd.DataFrame(index=frame.index)
            out[PREDICTION_COLUMN] = self.pipeline.predict(self._features(frame))
            return out
        return self._predict_from_proba(self.predict_proba(frame))

    def predict_proba(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The full probability matrix: one column per class, in :attr:`classes` order."""
        if self.spec.task != "classification":
            raise ModelError("predict_proba is for classifiers; this model is a regressor")
        proba = self.pipeline.predict_proba(self._features(frame))
        classes = [_plain(c) for c in self.pipeline.classes_]
        if self.classes and classes != self.classes:
            raise ModelError(
                f"the pipeline's classes {classes} differ from the metadata's {self.classes}: "
                "model.joblib and metadata.json come from different trainings"
            )
        return pd.DataFrame(proba, index=frame.index, columns=pd.Index(classes, dtype=object))

    def _predict_from_proba(self, proba: pd.DataFrame) -> pd.DataFrame:
        problem = self.problem
        matrix = proba.to_numpy()
        out = pd.DataFrame(index=proba.index)
        if problem.problem_type == BINARY:
            score = matrix[:, problem.positive_index]
            threshold = problem.decision_threshold
            out[PREDICTION_COLUMN] = np.where(
                score >= threshold, problem.positive_label, problem.negative_label
            )
            out[SCORE_COLUMN] = score
        else:
            classes = np.asarray(proba.columns, dtype=object)
            out[PREDICTION_COLUMN] = classes[np.argmax(matrix, axis=1)]
            out[SCORE_COLUMN] = matrix.max(axis=1)
        # Keep the label type (int classes stay ints, not objects) for serving and capture.
        out[PREDICTION_COLUMN] = pd.Series(out[PREDICTION_COLUMN].tolist(), index=out.index)
        return out

    def _features(self, frame: pd.DataFrame) -> pd.DataFrame:
        missing = [c for c in self.spec.features if c not in frame.columns]
        if missing:
            raise DataError(
                f"input lacks feature columns {missing}; the model expects {list(self.spec.features)}"
            )
        return coerce_features(frame, self.spec)

    def save(self, model_dir: str | Path) -> Path:
        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        joblib.dump(self.pipeline, model_dir / MODEL_FILE)
        self.metadata[MODEL_SHA256_KEY] = file_sha256(model_dir / MODEL_FILE)
        payload = {**self.metadata, "spec": self.spec.to_dict()}
        (model_dir / METADATA_FILE).write_text(dumps(payload, indent=2) + "\n")
        return model_dir

    @classmethod
    def load(cls, model_dir: str | Path) -> ModelBundle:
        model_dir = Path(model_dir)
        model_path, meta_path = model_dir / MODEL_FILE, model_dir / METADATA_FILE
        missing = [p.name for p in (model_path, meta_path) if not p.exists()]
        if missing:
            raise ModelError(
                f"{model_dir} is not an mlcore model directory: missing {missing}. "
                "Point to the folder `mlcore train --model-dir` wrote."
            )
        metadata = json.loads(meta_path.read_text())
        spec = DatasetSpec.from_dict(metadata.pop("spec"))
        pipeline = joblib.load(model_path)
        return cls(pipeline=pipeline, spec=spec, metadata=metadata)


def file_sha256(path: str | Path) -> str:
    """``"sha256:<hex>"`` of a file's bytes, read in chunks (model files can be large)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def sample_request(frame: pd.DataFrame, spec: DatasetSpec) -> dict[str, Any]:
    """``{"instances": [...]}``: the first rows of ``frame`` as records of the model's features.

    Strict JSON: missing values become null and datetimes ISO-8601 strings, so any HTTP
    client can send the file as it is.
    """
    missing = [c for c in spec.features if c not in frame.columns]
    if missing:
        raise DataError(f"cannot build a sample request: the data lacks feature columns {missing}")
    if frame.empty:
        raise DataError("cannot build a sample request from zero rows")
    rows = frame[list(spec.features)].head(SAMPLE_REQUEST_ROWS)
    records = json.loads(rows.to_json(orient="records", date_format="iso"))
    return {"instances": records}


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def unpack_model_dir(model_dir: str | Path) -> Path:
    """The model folder itself, or SageMaker's ``model.tar.gz`` in it unpacked to a temporary folder.

    Processing jobs receive a training job's model as that archive; every entry point
    that takes ``--model-dir`` (or a baseline inside one) accepts either form.
    """
    model_dir = Path(model_dir)
    archive = model_dir / SAGEMAKER_MODEL_ARCHIVE
    if (model_dir / MODEL_FILE).exists() or not archive.is_file():
        return model_dir
    target = Path(tempfile.mkdtemp(prefix="mlcore-model-"))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise ModelError(f"cannot unpack {archive}: {exc}") from exc
    return target
