"""The saved model: a fitted scikit-learn pipeline plus the metadata that makes it traceable.

A model directory holds:

* ``model.joblib``: the fitted pipeline (preprocessing + estimator);
* ``metadata.json``: dataset spec, algorithm, hyperparameters, seed, data
  fingerprint, git commit, library versions and class labels;
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

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Predict for the feature columns of ``frame``.

        Returns a frame with ``prediction`` and, for classification, ``score``: the
        probability of the positive (last) class for binary problems, of the
        predicted class otherwise.
        """
        missing = [c for c in self.spec.features if c not in frame.columns]
        if missing:
            raise DataError(
                f"input lacks feature columns {missing}; the model expects {list(self.spec.features)}"
            )
        features = coerce_features(frame, self.spec)
        out = pd.DataFrame(index=frame.index)
        if self.spec.task == "classification":
            proba = self.pipeline.predict_proba(features)
            classes = self.pipeline.classes_
            out[PREDICTION_COLUMN] = classes[np.argmax(proba, axis=1)]
            out[SCORE_COLUMN] = proba[:, 1] if proba.shape[1] == 2 else proba.max(axis=1)
        else:
            out[PREDICTION_COLUMN] = self.pipeline.predict(features)
        return out

    def save(self, model_dir: str | Path) -> Path:
        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        joblib.dump(self.pipeline, model_dir / MODEL_FILE)
        self.metadata[MODEL_SHA256_KEY] = file_sha256(model_dir / MODEL_FILE)
        payload = {**self.metadata, "spec": self.spec.to_dict()}
        (model_dir / METADATA_FILE).write_text(json.dumps(payload, indent=2, default=str) + "\n")
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
