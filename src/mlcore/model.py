"""The saved model: a fitted scikit-learn pipeline plus the metadata that makes it traceable.

A model directory holds:

* ``model.joblib``: the fitted pipeline (preprocessing + estimator);
* ``metadata.json``: dataset spec, algorithm, hyperparameters, seed, data
  fingerprint, git commit, library versions, the classes and, for a binary model,
  the positive label (with the rule that chose it) and the decision threshold;
* ``baseline/``: the drift baseline computed from the training data, read by the
  monitors (written by :mod:`mlcore.train`);
* ``sample_request.json``: a few held-out rows as an inference request, the payload
  every smoke test and health check sends (written by :mod:`mlcore.train`);
* ``manifest.sha256``: the sha256 of every file that decides what the model answers,
  ``model.joblib`` and ``metadata.json`` (the feature names, order and types, the
  classes, the positive label and the decision threshold), in ``sha256sum`` format.

The model's hash, :func:`model_sha256`, is the sha256 of the manifest: one value that
changes when any byte of those files changes. Registries record it outside the model
folder (``model_sha256``), and serving is given it (``MLCORE_MODEL_SHA256``). Anyone can
check a folder with ``sha256sum -c manifest.sha256`` and ``sha256sum manifest.sha256``.

Loading checks before it unpickles: each file is read once; the manifest's hash is
compared with the hash from outside the folder when the caller gives one (catches a
folder that is not the one registered), and each file's bytes with the manifest (catches
a torn, corrupted or edited file). Only those same bytes are then parsed and unpickled,
and the result must be a scikit-learn pipeline. Every problem is a
:class:`~mlcore.errors.ModelError`. The other files (the baseline, the sample request)
do not change any answer and are not in the manifest; nor is the code of a custom
estimator (``--estimator MODULE:FACTORY``), which the pickle imports by name.

Training writes it, serving and evaluation load it, on every host alike.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
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
MANIFEST_FILE = "manifest.sha256"
# The files whose bytes decide what the model answers, in the manifest's order.
MANIFEST_FILES = (METADATA_FILE, MODEL_FILE)
# Registry metadata key (and gate.json key) holding the model's hash, "sha256:<hex>" of its
# manifest (see model_sha256).
MODEL_SHA256_KEY = "model_sha256"
# Rows of held-out data in the sample request: enough to exercise batching, small enough to log.
SAMPLE_REQUEST_ROWS = 5
# SageMaker hands a training job's model to later steps as this archive.
SAGEMAKER_MODEL_ARCHIVE = "model.tar.gz"
PREDICTION_COLUMN = "prediction"
SCORE_COLUMN = "score"
# A multiclass model's probability of each class, as the drift baseline names it.
PROBABILITY_PREFIX = "probability_"


def probability_column(label: Any) -> str:
    """The column holding a multiclass model's probability of class ``label``."""
    return f"{PROBABILITY_PREFIX}{label}"


@dataclass
class ModelBundle:
    """A fitted pipeline with its dataset spec and lineage metadata."""

    pipeline: Pipeline
    spec: DatasetSpec
    metadata: dict[str, Any] = field(default_factory=dict)
    # The model's hash (see model_sha256) once saved or loaded; None for one only in memory.
    sha256: str | None = None

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
        return self.predict_features(self._features(frame))

    def predict_features(self, features: pd.DataFrame) -> pd.DataFrame:
        """:meth:`predict` for features already in canonical form, converted no second time.

        ``features`` is what :func:`~mlcore.data.coerce_features` returns (the serving
        payload parser builds exactly that): float64 numerics, string categoricals.
        """
        if self.spec.task != "classification":
            out = pd.DataFrame(index=features.index)
            out[PREDICTION_COLUMN] = self.pipeline.predict(features)
            return out
        return self._predict_from_proba(self._proba(features))

    def predict_with_probabilities(self, features: pd.DataFrame) -> pd.DataFrame:
        """:meth:`predict_features` plus, for a classifier, every class's probability.

        One model call: ``prediction`` and ``score`` are derived from the same probability
        matrix as the ``probability_<class>`` columns (see :func:`probability_column`), in
        :attr:`classes` order. A regressor's frame holds ``prediction`` only.
        """
        if self.spec.task != "classification":
            return self.predict_features(features)
        proba = self._proba(features)
        out = self._predict_from_proba(proba)
        for label, column in zip(proba.columns, proba.to_numpy().T, strict=True):
            out[probability_column(label)] = column
        return out

    def predict_proba(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The full probability matrix: one column per class, in :attr:`classes` order."""
        if self.spec.task != "classification":
            raise ModelError("predict_proba is for classifiers; this model is a regressor")
        return self._proba(self._features(frame))

    def _proba(self, features: pd.DataFrame) -> pd.DataFrame:
        # Some estimators (XGBoost, LightGBM) answer in float32, whose rows miss summing to
        # one by more than scikit-learn's log loss tolerates: score in float64, rows renormalised.
        proba = np.asarray(self.pipeline.predict_proba(features), dtype=np.float64)
        proba /= proba.sum(axis=1, keepdims=True)
        classes = [_plain(c) for c in self.pipeline.classes_]
        if self.classes and classes != self.classes:
            raise ModelError(
                f"the pipeline's classes {classes} differ from the metadata's {self.classes}: "
                "model.joblib and metadata.json come from different trainings"
            )
        return pd.DataFrame(proba, index=features.index, columns=pd.Index(classes, dtype=object))

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
        """Write ``model.joblib``, ``metadata.json`` and the manifest; set :attr:`sha256`."""
        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        joblib.dump(self.pipeline, model_dir / MODEL_FILE)
        # Older models recorded the pickle's hash here; the manifest now covers every file.
        self.metadata.pop(MODEL_SHA256_KEY, None)
        payload = {**self.metadata, "spec": self.spec.to_dict()}
        (model_dir / METADATA_FILE).write_text(dumps(payload, indent=2) + "\n")
        self.sha256 = write_manifest(model_dir)
        return model_dir

    @classmethod
    def load(cls, model_dir: str | Path, *, expected_sha256: str | None = None) -> ModelBundle:
        """Load a model folder, checking every file that shapes predictions before using it.

        ``expected_sha256`` (``"sha256:<hex>"``, the model's hash: see :func:`model_sha256`)
        comes from outside the folder (the registry entry, ``MLCORE_MODEL_SHA256``): a
        folder whose manifest has another hash is refused before anything is parsed or
        unpickled. Without it, the files are still checked against the folder's own
        manifest (a torn or edited file is refused). Raises ModelError.
        """
        model_dir = Path(model_dir)
        expected = (
            parse_sha256(expected_sha256, "the expected model hash") if expected_sha256 else None
        )
        sha256, files = _read_verified(model_dir, expected)
        metadata, spec = _parse_metadata(files[METADATA_FILE], model_dir / METADATA_FILE)
        pipeline = _unpickle(files[MODEL_FILE], model_dir / MODEL_FILE)
        _check_pipeline(pipeline, spec, model_dir / MODEL_FILE)
        return cls(pipeline=pipeline, spec=spec, metadata=metadata, sha256=sha256)


def write_manifest(model_dir: str | Path) -> str:
    """Write ``manifest.sha256`` for the files of :data:`MANIFEST_FILES`; return the model's hash."""
    model_dir = Path(model_dir)
    lines = "".join(
        f"{file_sha256(model_dir / name).removeprefix('sha256:')}  {name}\n"
        for name in MANIFEST_FILES
    )
    data = lines.encode("ascii")
    (model_dir / MANIFEST_FILE).write_bytes(data)
    return _sha256(data)


def model_sha256(model_dir: str | Path) -> str:
    """The model's hash: ``"sha256:<hex>"`` of its manifest, once every file matches it.

    This is the value registries record as ``model_sha256`` and serving takes as
    ``MLCORE_MODEL_SHA256``. Raises ModelError when the folder has no manifest or a file
    differs from it (nothing unverified is ever registered).
    """
    model_dir = Path(model_dir)
    sha256, _ = _read_verified(model_dir, None)
    return sha256


def _read_verified(model_dir: Path, expected: str | None) -> tuple[str, dict[str, bytes]]:
    """The manifest's hash and the bytes of every manifest file, each read once and checked."""
    _check_model_folder(model_dir)
    manifest_path = model_dir / MANIFEST_FILE
    manifest = _read_file(manifest_path)
    actual = _sha256(manifest)
    if expected is not None and actual != expected:
        raise ModelError(
            f"the model in {model_dir} has hash {actual} (sha256 of {MANIFEST_FILE}), but the "
            f"registered model has {expected}: this is not the model that was registered, so "
            "nothing in it is loaded. Deploy the registered model folder, or set the hash of "
            "the model you mean to serve."
        )
    recorded = _parse_manifest(manifest, manifest_path)
    files: dict[str, bytes] = {}
    for name in MANIFEST_FILES:
        data = _read_file(model_dir / name)
        digest = _sha256(data)
        if digest != recorded[name]:
            raise ModelError(
                f"{model_dir / name} has {digest}, but {MANIFEST_FILE} records {recorded[name]}: "
                "the file was changed after training, or is torn. Nothing was loaded; copy the "
                "model folder again or retrain."
            )
        files[name] = data
    return actual, files


def _parse_manifest(data: bytes, path: Path) -> dict[str, str]:
    recorded: dict[str, str] = {}
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise ModelError(
            f"{path} is not a sha256sum manifest ({exc}); the folder is damaged"
        ) from exc
    for number, line in enumerate(text.splitlines(), start=1):
        digest, _, name = line.partition("  ")
        if not _HEX64.fullmatch(digest) or not name or name in recorded:
            raise ModelError(
                f"{path}:{number} is not a '<sha256>  <file>' line of a new file: {line!r}; the "
                "folder is damaged. Copy the model folder again or retrain."
            )
        recorded[name] = "sha256:" + digest
    if sorted(recorded) != sorted(MANIFEST_FILES):
        raise ModelError(
            f"{path} lists {sorted(recorded)}, but a model's manifest lists exactly "
            f"{sorted(MANIFEST_FILES)}; the folder is damaged. Copy it again or retrain."
        )
    return recorded


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


_HEX64 = re.compile(r"[0-9a-f]{64}")


_SHA256 = re.compile(r"^(?:sha256:)?([0-9a-f]{64})$")


def parse_sha256(value: object, source: str) -> str:
    """``"sha256:<hex>"`` from ``"sha256:<hex>"`` or a bare 64-digit hex digest; else ModelError."""
    match = _SHA256.match(value.strip().lower()) if isinstance(value, str) else None
    if match is None:
        raise ModelError(
            f"{source} must be 'sha256:' followed by 64 hex digits (as the registry records it "
            f"in {MODEL_SHA256_KEY}), got {value!r}"
        )
    return "sha256:" + match.group(1)


def _read_file(path: Path) -> bytes:
    try:
        if not path.is_file():
            what = "a folder" if path.is_dir() else "missing"
            raise ModelError(
                f"{path.parent} is not an mlcore model directory: {path.name} is {what}. "
                "Point to the folder `mlcore train --model-dir` wrote."
            )
        return path.read_bytes()
    except OSError as exc:
        raise ModelError(
            f"cannot read {path}: {exc}. Give the serving user read access to the model "
            "folder (training writes it with the modes its umask allows)."
        ) from exc


def _check_model_folder(model_dir: Path) -> None:
    try:
        if not model_dir.is_dir():
            raise ModelError(
                f"{model_dir} is not an mlcore model directory: it is "
                f"{'a file' if model_dir.exists() else 'missing'}. "
                "Point to the folder `mlcore train --model-dir` wrote."
            )
        missing = [
            name for name in (*MANIFEST_FILES, MANIFEST_FILE) if not (model_dir / name).exists()
        ]
    except OSError as exc:  # a folder this user may not read
        raise ModelError(f"cannot read the model folder {model_dir}: {exc}") from exc
    if missing == [MANIFEST_FILE]:
        raise ModelError(
            f"{model_dir} has no {MANIFEST_FILE}: it was trained by an older mlcore, whose "
            "hash covered only the model file. Retrain it (or run the training pipeline again)."
        )
    if missing:
        raise ModelError(
            f"{model_dir} is not an mlcore model directory: missing {missing}. "
            "Point to the folder `mlcore train --model-dir` wrote."
        )


def _parse_metadata(data: bytes, path: Path) -> tuple[dict[str, Any], DatasetSpec]:
    try:
        metadata = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelError(f"{path} is not valid JSON ({exc}); the model folder is damaged") from exc
    if not isinstance(metadata, dict) or not isinstance(metadata.get("spec"), dict):
        raise ModelError(
            f"{path} must be a JSON object with a 'spec' object; the folder is damaged"
        )
    raw_spec = metadata.pop("spec")
    problems = [
        f"{key} must be a list of column names, got {raw_spec[key]!r}"
        for key in ("numeric", "categorical", "id_columns")
        if key in raw_spec
        and not (isinstance(raw_spec[key], list) and all(isinstance(c, str) for c in raw_spec[key]))
    ]
    if not isinstance(raw_spec.get("target"), str):
        problems.append(f"target must be a column name, got {raw_spec.get('target')!r}")
    if problems:
        raise ModelError(f"invalid dataset spec in {path}: " + "; ".join(problems))
    try:
        spec = DatasetSpec.from_dict(raw_spec)
    except (DataError, TypeError) as exc:
        raise ModelError(f"invalid dataset spec in {path}: {exc}") from exc
    return metadata, spec


def _unpickle(model_bytes: bytes, path: Path) -> Any:
    try:
        return joblib.load(io.BytesIO(model_bytes))
    except Exception as exc:  # unpickling arbitrary bytes can raise anything at all
        raise ModelError(
            f"cannot load {path}: {type(exc).__name__}: {exc}. The file is not a model "
            "saved by this mlcore and scikit-learn; retrain it."
        ) from exc


def _check_pipeline(pipeline: Any, spec: DatasetSpec, path: Path) -> None:
    if not isinstance(pipeline, Pipeline):
        raise ModelError(
            f"{path} holds a {type(pipeline).__module__}.{type(pipeline).__qualname__}, not a "
            "scikit-learn Pipeline; it was not written by `mlcore train`"
        )
    needed = ("predict_proba", "classes_") if spec.task == "classification" else ("predict",)
    absent = [name for name in needed if not hasattr(pipeline, name)]
    if absent:
        raise ModelError(
            f"{path} holds a pipeline without {absent}, which a {spec.task} model needs; retrain it"
        )


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
