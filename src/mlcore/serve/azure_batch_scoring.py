"""The scoring of an Azure ML batch deployment: ``init()`` and ``run(mini_batch)`` over
``mlcore batch``'s code.

Azure ML's batch runtime imports the deployment's scoring script, calls ``init()`` once per
worker process, then ``run(mini_batch)`` with a list of file paths (``mini_batch_size``
files of the invocation's input folder). A deployment's ``batch_score.py`` only needs::

    from mlcore.serve.azure_batch_scoring import init, run  # noqa: F401

The model is found and verified as the online scoring script does it
(:func:`mlcore.serve.azure_scoring.find_model_dir`, then
:func:`mlcore.batch.load_batch_model`: every file checked against ``MLCORE_MODEL_SHA256``,
which the deployment sets from the registry model's tag). Each file is scored by
:class:`mlcore.batch.BatchWriter` into the job's output folder (``AZUREML_BI_OUTPUT_PATH``;
the deployment's output action is ``summary_only``, so this code writes all of it):
``predictions/``, ``capture/`` in the data-capture layout and ``rejects/``, exactly as
``mlcore batch`` lays them out. Parts are named after a hash of the input file's path, so
a mini-batch Azure retries replaces its own parts instead of adding copies; each part is
written through a hidden name and renamed when whole.

A file with more unscorable rows than ``MLCORE_BATCH_MAX_REJECT_SHARE`` fails its
mini-batch (Azure counts it against the deployment's ``error_threshold``), naming the first
bad rows. Settings come from environment variables the deployment sets:
``MLCORE_BATCH_ID_COLUMNS`` (comma-separated), ``MLCORE_CAPTURE_SAMPLING_PERCENTAGE``,
``MLCORE_BATCH_CHUNK_ROWS`` and ``MLCORE_BATCH_MAX_REJECT_SHARE``. The capture's inference
time is when the worker started: the scheduled run that invoked the job reads its own
output folder, whatever the hour.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
from datetime import UTC, datetime
from pathlib import Path

from mlcore.batch import (
    DEFAULT_CHUNK_ROWS,
    DEFAULT_MAX_REJECT_SHARE,
    BatchWriter,
    TooManyRejects,
    load_batch_model,
)
from mlcore.errors import ConfigError, ModelError
from mlcore.serve.azure_scoring import MODEL_DIR_ENV, find_model_dir

logger = logging.getLogger(__name__)

OUTPUT_ENV = "AZUREML_BI_OUTPUT_PATH"
ID_COLUMNS_ENV = "MLCORE_BATCH_ID_COLUMNS"
SAMPLING_ENV = "MLCORE_CAPTURE_SAMPLING_PERCENTAGE"
CHUNK_ROWS_ENV = "MLCORE_BATCH_CHUNK_ROWS"
MAX_REJECT_SHARE_ENV = "MLCORE_BATCH_MAX_REJECT_SHARE"
REJECTS_FOLDER = "rejects"

_writer: BatchWriter | None = None
_max_reject_share = DEFAULT_MAX_REJECT_SHARE


def _number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc


def init() -> None:
    """Load and verify the model, and open the writer on the job's output folder."""
    global _writer, _max_reject_share
    root = os.environ.get(MODEL_DIR_ENV)
    if not root:
        raise ModelError(f"{MODEL_DIR_ENV} is not set; Azure ML sets it to the deployment's model")
    output = os.environ.get(OUTPUT_ENV)
    if not output:
        raise ConfigError(f"{OUTPUT_ENV} is not set; Azure ML sets it to the job's output folder")
    bundle = load_batch_model(find_model_dir(root), expected_sha256=None)
    ids = os.environ.get(ID_COLUMNS_ENV, "")
    id_columns = tuple(c.strip() for c in ids.split(",") if c.strip()) or bundle.spec.id_columns
    _max_reject_share = _number(MAX_REJECT_SHARE_ENV, DEFAULT_MAX_REJECT_SHARE)
    worker = f"{socket.gethostname()}-{os.getpid()}"
    _writer = BatchWriter(
        bundle,
        Path(output),
        id_columns=id_columns,
        inference_time=datetime.now(UTC),
        capture_sampling_percentage=_number(SAMPLING_ENV, 100),
        chunk_rows=int(_number(CHUNK_ROWS_ENV, DEFAULT_CHUNK_ROWS)),
        rejects_file=f"{REJECTS_FOLDER}/{worker}.csv",
    )
    logger.info("batch scoring ready: %s, id columns %s", root, list(id_columns))


def writer() -> BatchWriter:
    """The writer :func:`init` opened (ModelError before ``init``)."""
    if _writer is None:
        raise ModelError("run() was called before init(); the scoring script must be initialised")
    return _writer


def run(mini_batch: list[str]) -> list[str]:
    """Score each file of the mini-batch; one summary line per file (Azure's ``summary_only``
    output counts them). Raises on a file Azure should count as failed."""
    batch_writer = writer()
    summaries = []
    for name in mini_batch:
        path = Path(name)
        before = (batch_writer.result.rows_read, batch_writer.result.rows_rejected)
        batch_writer.check_file(path)
        prefix = hashlib.sha256(str(path).encode()).hexdigest()[:16]
        batch_writer.score_file(path, part_prefix=prefix, replace=True)
        batch_writer.flush()  # this file's parts are written before Azure counts it done
        read = batch_writer.result.rows_read - before[0]
        rejected = batch_writer.result.rows_rejected - before[1]
        if read and rejected / read > _max_reject_share:
            examples = "; ".join(
                f"{r.where}: {r.reason}"
                for r in batch_writer.result.reject_examples
                if r.file == str(path)
            )
            raise TooManyRejects(
                f"{path}: {rejected} of {read} rows could not be scored, more than "
                f"{MAX_REJECT_SHARE_ENV}={_max_reject_share}; first bad rows: {examples}"
            )
        summaries.append(f"{path.name}: {read - rejected} scored, {rejected} rejected")
    return summaries
