"""Batch scoring: a released model scores a data drop, in chunks, and the monitors read the run.

``mlcore batch --model-dir DIR --input PATH --output DIR`` reads CSV, TSV (``.tsv``) or
Parquet, one file or a folder of them (searched recursively, markers such as ``_SUCCESS``
skipped), in chunks of ``chunk_rows`` rows, so memory is bounded by a chunk (a Parquet row
group at most) whatever the input's size. The model is loaded exactly as serving loads it
(:meth:`~mlcore.serve.predictor.Predictor.load`: every file checked against the model's
hash, from ``--model-sha256`` or ``$MLCORE_MODEL_SHA256``, then a warm-up prediction), so a
tampered or substituted model scores nothing.

The output folder, published whole or not at all (:func:`mlcore.atomic.staged_output`)::

    predictions/part-00000.parquet ...   the id columns, prediction, score and
                                         probability_<class> (classifiers), per chunk
    predictions.csv                      the same rows as one CSV (--csv)
    capture/<endpoint>/<variant>/yyyy/mm/dd/hh/part-00000.jsonl
                                         the scored rows in SageMaker's data-capture layout
    rejects.csv                          rows that could not be scored, and why
    _SUCCESS                             the run's manifest (JSON), written last

``capture/`` is what an endpoint's data capture would hold had each row been one request
(:mod:`mlcore.capture`): ``mlcore drift --current OUT/capture`` and ``mlcore quality
--current OUT/capture`` read a batch run with the code that reads live traffic. Each
record's ``inferenceId`` is the row's id (the id columns' values, joined with ``|`` when
there are several), so late labels keyed by the same id join with ``mlcore quality``;
``inferenceTime`` is the run's time (or ``--inference-time``), so the drift job's windows
find it. ``monitoring.capture_sampling_percentage`` samples the rows captured, as it does
an endpoint's requests; the predictions hold every row.

Bad rows are never dropped silently: a row whose numeric feature is not a finite number,
or a CSV line with more fields than the header, is counted, written to ``rejects.csv``
with its place and reason, and the first few are reported. When more than
``max_reject_share`` of the rows are bad, the run fails and publishes nothing (an upstream
export is broken; scoring the rest would hide it).

A run either completes or leaves nothing that looks complete: everything is written into
a hidden staging folder beside the output and renamed into place at the end, the manifest
``_SUCCESS`` last. An interrupted run (killed, out of disk) leaves at most that hidden
``.<name>.*.partial`` folder; a stopped one (SIGTERM, Ctrl-C) removes it.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import re
import signal
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlcore import __version__
from mlcore.atomic import check_output_dir, staged_output
from mlcore.data import DatasetSpec, coerce_features
from mlcore.data.io import PARQUET_SUFFIXES, SUPPORTED_SUFFIXES, TEXT_SEPARATORS, data_files
from mlcore.data.validate import check_declared_columns
from mlcore.errors import ConfigError, DataError
from mlcore.jsonio import dumps
from mlcore.model import (
    PREDICTION_COLUMN,
    SCORE_COLUMN,
    ModelBundle,
    unpack_model_dir,
)

logger = logging.getLogger(__name__)

PREDICTIONS_DIR = "predictions"
PREDICTIONS_CSV = "predictions.csv"
CAPTURE_DIR = "capture"
REJECTS_FILE = "rejects.csv"
MANIFEST_FILE = "_SUCCESS"
# The folder names above the hour folders in capture/, as an endpoint's capture names them.
BATCH_ENDPOINT_NAME = "batch"
BATCH_VARIANT_NAME = "AllTraffic"
DEFAULT_CHUNK_ROWS = 100_000
DEFAULT_MAX_REJECT_SHARE = 0.01
# Bad rows quoted in the manifest and the error message; the rest are in rejects.csv.
REJECT_EXAMPLES = 5
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_ID_SEPARATOR = "|"


@dataclass(frozen=True)
class BatchOptions:
    """What to score and where.

    ``id_columns`` are kept beside each prediction (default: the model's spec's).
    ``expected_sha256`` is the registered model hash (default ``$MLCORE_MODEL_SHA256``).
    ``inference_time`` is recorded in the capture (default: when the run starts).
    """

    model_dir: Path
    input: Path
    output: Path
    id_columns: tuple[str, ...] | None = None
    write_csv: bool = False
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    expected_sha256: str | None = None
    inference_time: datetime | None = None
    capture_sampling_percentage: float = 100
    max_reject_share: float = DEFAULT_MAX_REJECT_SHARE
    overwrite: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        problems = []
        if self.chunk_rows < 1:
            problems.append(f"chunk_rows must be at least 1, got {self.chunk_rows}")
        if not 0 < self.capture_sampling_percentage <= 100:
            problems.append(
                "capture sampling percentage must be above 0 and at most 100, got "
                f"{self.capture_sampling_percentage}"
            )
        if not 0 <= self.max_reject_share <= 1:
            problems.append(
                f"max_reject_share must be between 0 and 1, got {self.max_reject_share}"
            )
        if problems:
            raise ConfigError("invalid batch options: " + "; ".join(problems))


@dataclass(frozen=True)
class Reject:
    """One row that could not be scored: its file, where in it and why.

    ``row N`` is the file's Nth record as read (from 1; a line the CSV parser could not
    split is not a record); ``line N`` is the line of the file the parser could not split
    into the header's fields. rejects.csv also holds each bad record's values.
    """

    file: str
    where: str
    reason: str


@dataclass
class BatchResult:
    """What a run read, scored and rejected, and where it wrote."""

    output_dir: Path
    model_sha256: str | None
    rows_read: int = 0
    rows_scored: int = 0
    rows_rejected: int = 0
    rows_captured: int = 0
    reject_examples: list[Reject] = field(default_factory=list)
    input_files: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def manifest(self, *, started: datetime, inference_time: datetime) -> dict[str, Any]:
        return {
            "status": "complete",
            "mlcore_version": __version__,
            "model_sha256": self.model_sha256,
            "input_files": self.input_files,
            "rows_read": self.rows_read,
            "rows_scored": self.rows_scored,
            "rows_rejected": self.rows_rejected,
            "rows_captured": self.rows_captured,
            "reject_examples": [
                {"file": r.file, "where": r.where, "reason": r.reason} for r in self.reject_examples
            ],
            "started": started.strftime(_TIME_FORMAT),
            "inference_time": inference_time.strftime(_TIME_FORMAT),
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows_read / self.seconds, 1) if self.seconds else None,
        }


class TooManyRejects(DataError):
    """More rows were bad than ``max_reject_share`` allows; nothing was published."""


def input_files(path: Path) -> list[Path]:
    """The CSV, TSV and Parquet files to score: ``path`` itself, or every one under a folder."""
    if not path.exists():
        raise DataError(f"batch input does not exist: {path}")
    if path.is_file():
        if path.suffix.lower() not in SUPPORTED_SUFFIXES:
            raise DataError(
                f"cannot score {path}: the file type {path.suffix!r} is none of "
                f"{'/'.join(SUPPORTED_SUFFIXES)}"
            )
        return [path]
    files = data_files(path)
    if not files:
        raise DataError(
            f"no {'/'.join(SUPPORTED_SUFFIXES)} files in folder {path} or its subfolders "
            "(markers such as _SUCCESS and hidden files are not data)"
        )
    return files


def file_columns(path: Path) -> list[str]:
    """A file's column names, read from its header or Parquet schema only."""
    suffix = path.suffix.lower()
    try:
        if suffix in PARQUET_SUFFIXES:
            import pyarrow.parquet as pq

            return list(pq.ParquetFile(path).schema_arrow.names)
        return [str(c) for c in pd.read_csv(path, nrows=0, sep=TEXT_SEPARATORS[suffix]).columns]
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise DataError(f"could not read the header of {path}: {exc}") from exc


@dataclass(frozen=True)
class _Chunk:
    frame: pd.DataFrame
    # Data-row number (from 1) of the frame's first row within its file.
    first_row: int
    # Lines the CSV parser could not split into the header's fields, with its message.
    bad_lines: list[Reject]
    # How far through the file (0..1) the chunk ends, for the progress bar.
    done: float


def _iter_file(path: Path, columns: Sequence[str], chunk_rows: int) -> Iterator[_Chunk]:
    suffix = path.suffix.lower()
    wanted = set(columns)
    if suffix in PARQUET_SUFFIXES:
        import pyarrow.parquet as pq

        # Without pre_buffer: with it (pyarrow's default), iter_batches' memory grew with the
        # file (1M to 10M rows in 100k-row groups: 301 to 580 MiB just to read), without it
        # stays at about a row group's (275 to 282 MiB).
        parquet = pq.ParquetFile(path, pre_buffer=False)
        present = [c for c in parquet.schema_arrow.names if c in wanted]
        total = max(parquet.metadata.num_rows, 1)
        first = 1
        for batch in parquet.iter_batches(batch_size=chunk_rows, columns=present):
            frame = batch.to_pandas()
            yield _Chunk(frame, first, [], min((first - 1 + len(frame)) / total, 1.0))
            first += len(frame)
        return
    size = max(path.stat().st_size, 1)
    with path.open("rb") as handle:
        # Every column is read, then the needed ones kept: with usecols, pandas accepts a line
        # with more fields than the header without a word (an unquoted delimiter in a value
        # shifts every field after it), and only a full read reports it.
        reader = pd.read_csv(
            handle, sep=TEXT_SEPARATORS[suffix], chunksize=chunk_rows, on_bad_lines="warn"
        )
        first = 1
        while True:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", pd.errors.ParserWarning)
                try:
                    frame = next(reader)
                except StopIteration:
                    frame = None
                except (ValueError, pd.errors.ParserError) as exc:
                    raise DataError(
                        f"could not read {path} after data row {first - 1}: {exc}"
                    ) from exc
            bad = [
                Reject(str(path), _line_of(str(w.message)), str(w.message).strip())
                for w in caught
                if issubclass(w.category, pd.errors.ParserWarning)
            ]
            if frame is None:
                if bad:  # lines skipped after the last whole chunk
                    yield _Chunk(pd.DataFrame(columns=list(columns)), first, bad, 1.0)
                return
            frame = frame[[c for c in frame.columns if c in wanted]]
            yield _Chunk(frame, first, bad, min(handle.tell() / size, 1.0))
            first += len(frame)


def _line_of(message: str) -> str:
    # pandas: "Skipping line 7: expected 4 fields, saw 5"
    words = message.split()
    if len(words) > 2 and words[0] == "Skipping" and words[1] == "line":
        return "line " + words[2].rstrip(":")
    return "line ?"


def _bad_rows(frame: pd.DataFrame, spec: DatasetSpec) -> tuple[pd.DataFrame, pd.Series]:
    """``frame`` with numeric features as float64, and each row's reason it cannot be scored
    (empty for a good row). Serving refuses the same values (non-numbers, infinities)."""
    reasons = pd.Series("", index=frame.index, dtype=object)
    frame = frame.copy()
    for column in spec.numeric:
        raw = frame[column]
        if pd.api.types.is_bool_dtype(raw.dtype):
            numbers = raw.astype("float64")
        else:
            numbers = pd.to_numeric(raw, errors="coerce").astype("float64")
        bad = (numbers.isna() & raw.notna()) | np.isinf(numbers.to_numpy())
        if bad.any():
            flagged = bad & (reasons == "")
            reasons[flagged] = [
                f"numeric feature {column!r} is not a finite number: {value!r}"
                for value in raw[flagged].tolist()
            ]
        frame[column] = numbers
    return frame, reasons


def _json_lines(frame: pd.DataFrame) -> pd.Series:
    """One JSON object per row (``{"col": value, ...}``; NaN as null), as text."""
    text = frame.to_json(orient="records", lines=True, double_precision=15)
    return pd.Series(text.rstrip("\n").split("\n"), index=frame.index, dtype=object)


_CONTROL = re.compile(r"[\x00-\x1f]")


def _csv_fields(values: pd.Series) -> list[str]:
    """A text (or integer, or boolean) column as CSV fields: missing text empty, text quoted
    where it holds a comma, quote or line break. Float columns go through Arrow
    (:func:`_csv_lines`)."""
    if pd.api.types.is_integer_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
        return list(map(str, values.tolist()))
    fields = [v if isinstance(v, str) else "" if _missing(v) else str(v) for v in values.tolist()]
    joined = "\x00".join(fields)
    if any(mark in joined for mark in (",", '"', "\r", "\n")):
        return [_quoted(v) for v in fields]
    return fields


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)  # NaN


def _quoted(field: str) -> str:
    if any(mark in field for mark in (",", '"', "\r", "\n")):
        return '"' + field.replace('"', '""') + '"'
    return field


def _csv_lines(frame: pd.DataFrame) -> list[str]:
    """Each row as one CSV record without its line break (values in column order).

    Numbers are formatted and the fields joined by Arrow's compute kernels (an exact
    round trip: the shortest text that reads back as the same float; ``nan`` for a missing
    number); text columns go through :func:`_csv_fields` for their quoting.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if frame.empty:
        return []
    columns = []
    for name in frame.columns:
        values = frame[name]
        if pd.api.types.is_float_dtype(values.dtype):
            numbers = pa.array(values.to_numpy(dtype=np.float64), type=pa.float64())
            columns.append(pc.cast(numbers, pa.string()))
        else:
            columns.append(pa.array(_csv_fields(values), type=pa.string()))
    if len(columns) == 1:
        lines: list[str] = columns[0].to_pylist()
        return lines
    joined: list[str] = pc.binary_join_element_wise(*columns, ",").to_pylist()
    return joined


def _json_string_body(text: str) -> str:
    """``text`` as the inside of a JSON string literal."""
    if _CONTROL.search(text):
        return json.dumps(text)[1:-1]
    return text.replace("\\", "\\\\").replace('"', '\\"')


_CONTROL_BUT_NEWLINE = re.compile(r"[\x00-\x09\x0b-\x1f]")


def _json_string_bodies(texts: list[str]) -> list[str]:
    """:func:`_json_string_body` of each text, escaped in one pass over the chunk's text when
    no text holds a line break or another control character (the usual case)."""
    joined = "\n".join(texts)
    if joined.count("\n") != len(texts) - 1 or _CONTROL_BUT_NEWLINE.search(joined):
        return [_json_string_body(text) for text in texts]
    return joined.replace("\\", "\\\\").replace('"', '\\"').split("\n")


def capture_lines(
    features: pd.DataFrame,
    predictions: pd.DataFrame,
    inference_ids: pd.Series,
    *,
    event_prefix: str,
    first_event: int,
    inference_time: datetime,
) -> str:
    """Data-capture records, one per row, as :class:`mlcore.capture.CaptureWriter` writes them
    for a CSV endpoint: each record is a one-line ``text/csv`` request (the features in the
    model's order) and its ``text/csv`` response (``prediction,score``).

    Built column by column for the whole chunk: one ``json.dumps`` per row would cost about
    as much as the model's own prediction.
    """
    if features.empty:
        return ""
    requests = _json_string_bodies(_csv_lines(features[list(features.columns)]))
    responses = _json_string_bodies(_csv_lines(predictions))
    ids = _json_string_bodies([str(v) for v in inference_ids.tolist()])
    when = inference_time.strftime(_TIME_FORMAT)
    head = (
        '{"captureData":{"endpointInput":{"observedContentType":"text/csv","mode":"INPUT","data":"'
    )
    middle = (
        '","encoding":"CSV"},"endpointOutput":{"observedContentType":"text/csv",'
        '"mode":"OUTPUT","data":"'
    )
    meta = '","encoding":"CSV"}},"eventMetadata":{"eventId":"' + _json_string_body(event_prefix)
    tail = f'","inferenceTime":"{when}"}},"eventVersion":"0"}}\n'
    return "".join(
        f'{head}{request}{middle}{response}\\n{meta}{event}","inferenceId":"{inference_id}{tail}'
        for request, response, inference_id, event in zip(
            requests, responses, ids, range(first_event, first_event + len(requests)), strict=True
        )
    )


def _inference_ids(
    frame: pd.DataFrame, id_columns: Sequence[str], event_prefix: str, first: int
) -> pd.Series:
    if not id_columns:
        numbers = np.arange(first, first + len(frame)).astype(str)
        return pd.Series(numbers, index=frame.index, dtype=object).radd(event_prefix)
    parts = [frame[c].astype(object).where(frame[c].notna(), "").astype(str) for c in id_columns]
    ids = parts[0]
    for part in parts[1:]:
        ids = ids + _ID_SEPARATOR + part
    return ids


class _Progress:
    """A rich progress bar on a terminal, nothing elsewhere."""

    def __init__(self, enabled: bool, files: int) -> None:
        self._progress: Any = None
        if not enabled:
            return
        from rich.console import Console

        console = Console(stderr=True)
        if not console.is_terminal:
            return
        from rich.progress import (
            BarColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("scoring"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rows]:,} rows"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._task = self._progress.add_task("scoring", total=files, rows=0)

    def __enter__(self) -> _Progress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, files_done: float, rows: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=files_done, rows=rows)


class BatchWriter:
    """Scores chunks with a loaded model and writes predictions, capture and rejects under
    ``folder`` (a staging folder, or an output folder a host hands over, as Azure ML does).

    The model scores a chunk while a writer thread formats and writes the one before
    (the capture's text is Python work; the model's trees run without the GIL), with at
    most one chunk waiting, so memory stays at about two chunks. Each file is written
    under a hidden name and renamed when whole, so a reader of the folder never sees a
    torn part. Use it as a context manager, or call :meth:`close`: outputs are complete
    only once it returns.
    """

    def __init__(
        self,
        bundle: ModelBundle,
        folder: Path,
        *,
        id_columns: Sequence[str],
        inference_time: datetime,
        write_csv: bool = False,
        capture_sampling_percentage: float = 100,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        rejects_file: str = REJECTS_FILE,
        seed: int = 0,
    ) -> None:
        self.bundle = bundle
        self.folder = folder
        self.id_columns = tuple(id_columns)
        self.inference_time = inference_time
        self.write_csv = write_csv
        self.capture_sampling_percentage = capture_sampling_percentage
        self.chunk_rows = chunk_rows
        self.rejects_file = rejects_file
        self._random = np.random.default_rng(seed)
        self._event_prefix = f"{uuid.uuid4()}-"
        self._parts: dict[str, int] = {}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlcore-batch-write")
        self._pending: Future[None] | None = None
        self.result = BatchResult(output_dir=folder, model_sha256=bundle.sha256)
        clash = [
            c
            for c in self.id_columns
            if c in (PREDICTION_COLUMN, SCORE_COLUMN) or c.startswith("probability_")
        ]
        if clash:
            raise ConfigError(
                f"id columns {clash} have the names of prediction columns; rename them in the "
                "data or leave them out of dataset.id_columns"
            )

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def flush(self) -> None:
        """Wait for the chunk being written; raise its error, if writing it failed."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._executor.shutdown(wait=True)

    @property
    def columns(self) -> list[str]:
        """The input columns a chunk needs: the features and the id columns."""
        return list(dict.fromkeys([*self.bundle.spec.features, *self.id_columns]))

    def check_file(self, path: Path) -> None:
        """Raise DataError unless the file has every feature and id column (before any scoring)."""
        present = file_columns(path)
        frame = pd.DataFrame(columns=present)
        check_declared_columns(
            frame,
            {
                "the model's features": self.bundle.spec.features,
                "the id columns (dataset.id_columns)": self.id_columns,
            },
        )

    def score_file(
        self,
        path: Path,
        *,
        part_prefix: str = "part",
        replace: bool = False,
        progress: _Progress | None = None,
        done: int = 0,
    ) -> None:
        """Score one file into parts named ``<part_prefix>-00000`` on, numbered on from
        earlier files of the same prefix. With ``replace``, the prefix's parts already in
        the folder (an earlier attempt at the same file) are removed first and numbering
        starts again, so scoring a file twice leaves one copy of its rows."""
        if replace:
            self.flush()
            self._parts[part_prefix] = 0
            for old in [
                *(self.folder / PREDICTIONS_DIR).glob(f"{part_prefix}-*.parquet"),
                *(self.folder / CAPTURE_DIR).rglob(f"{part_prefix}-*.jsonl"),
            ]:
                old.unlink()
        self.result.input_files.append(str(path))
        for chunk in _iter_file(path, self.columns, self.chunk_rows):
            self.score_chunk(
                chunk.frame,
                source=path,
                first_row=chunk.first_row,
                bad_lines=chunk.bad_lines,
                part_prefix=part_prefix,
            )
            if progress is not None:
                progress.update(done + chunk.done, self.result.rows_read)

    def score_chunk(
        self,
        frame: pd.DataFrame,
        *,
        source: Path,
        first_row: int,
        bad_lines: Sequence[Reject] = (),
        part_prefix: str = "part",
    ) -> None:
        spec = self.bundle.spec
        self.result.rows_read += len(frame) + len(bad_lines)
        if bad_lines:
            self._reject_lines(bad_lines)
        if frame.empty:
            return
        frame = frame.reset_index(drop=True)
        checked, reasons = _bad_rows(frame, spec)
        bad = (reasons != "").to_numpy()
        if bad.any():
            self._reject_rows(frame.loc[bad], reasons[bad], source, first_row)
            checked = checked.loc[~bad].reset_index(drop=True)
        if checked.empty:
            return
        features = coerce_features(checked, spec)
        predictions = self.bundle.predict_with_probabilities(features)
        number = self._parts.get(part_prefix, 0)
        self._parts[part_prefix] = number + 1
        part = f"{part_prefix}-{number:05d}"
        out = pd.concat(
            [checked[list(self.id_columns)].reset_index(drop=True), predictions], axis=1
        )
        captured = self._sample(len(features))
        first_event = self.result.rows_scored + 1
        self.result.rows_scored += len(out)
        self.result.rows_captured += int(captured.sum()) if captured is not None else len(out)
        self.flush()  # at most one chunk waits to be written
        self._pending = self._executor.submit(
            self._write, out, checked, features, predictions, captured, part, first_event
        )

    def _sample(self, rows: int) -> np.ndarray | None:
        if self.capture_sampling_percentage >= 100:
            return None
        sampled: np.ndarray = self._random.uniform(0, 100, rows) < self.capture_sampling_percentage
        return sampled

    def _write(
        self,
        out: pd.DataFrame,
        checked: pd.DataFrame,
        features: pd.DataFrame,
        predictions: pd.DataFrame,
        captured: np.ndarray | None,
        part: str,
        first_event: int,
    ) -> None:
        target = self.folder / PREDICTIONS_DIR / f"{part}.parquet"
        _write_whole(target, lambda path: out.to_parquet(path, index=False))
        if self.write_csv:
            csv_path = self.folder / PREDICTIONS_CSV
            out.to_csv(csv_path, index=False, mode="a", header=not csv_path.exists())
        keep = [c for c in (PREDICTION_COLUMN, SCORE_COLUMN) if c in predictions.columns]
        if captured is not None:
            checked, features, predictions = (
                checked.loc[captured],
                features.loc[captured],
                predictions.loc[captured],
            )
        ids = _inference_ids(checked, self.id_columns, self._event_prefix, first_event)
        text = capture_lines(
            features,
            predictions[keep],
            ids,
            event_prefix=self._event_prefix,
            first_event=first_event,
            inference_time=self.inference_time,
        )
        if not text:
            return
        hour = self.inference_time.strftime("%Y/%m/%d/%H")
        path = (
            self.folder
            / CAPTURE_DIR
            / BATCH_ENDPOINT_NAME
            / BATCH_VARIANT_NAME
            / hour
            / f"{part}.jsonl"
        )
        _write_whole(path, lambda where: where.write_text(text, encoding="utf-8"))

    def _reject_rows(
        self, rows: pd.DataFrame, reasons: pd.Series, source: Path, first_row: int
    ) -> None:
        records = _json_lines(rows.astype(object).where(rows.notna(), None))
        positions = rows.index.to_numpy() + first_row
        self._write_rejects(
            [
                (str(source), f"row {position}", reason, record)
                for position, reason, record in zip(
                    positions.tolist(), reasons.tolist(), records.tolist(), strict=True
                )
            ]
        )

    def _reject_lines(self, bad_lines: Sequence[Reject]) -> None:
        self._write_rejects([(r.file, r.where, r.reason, "") for r in bad_lines])

    def _write_rejects(self, rows: list[tuple[str, str, str, str]]) -> None:
        path = self.folder / self.rejects_file
        path.parent.mkdir(parents=True, exist_ok=True)
        new = not path.exists()
        with path.open("a", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            if new:
                writer.writerow(["file", "where", "reason", "record"])
            writer.writerows(rows)
        self.result.rows_rejected += len(rows)
        room = REJECT_EXAMPLES - len(self.result.reject_examples)
        self.result.reject_examples.extend(
            Reject(file, where, reason) for file, where, reason, _ in rows[: max(room, 0)]
        )


def _write_whole(path: Path, write: Callable[[Path], object]) -> None:
    """Write ``path`` through a hidden temporary name in its folder, renamed when complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()


def load_batch_model(model_dir: Path, *, expected_sha256: str | None) -> ModelBundle:
    """The model, verified and warmed up exactly as ``mlcore serve`` loads it."""
    from mlcore.serve.predictor import Predictor

    return Predictor.load(unpack_model_dir(model_dir), expected_sha256=expected_sha256).bundle


def run_batch(options: BatchOptions) -> BatchResult:
    """Score ``options.input`` and publish the output folder; raise MlcoreError on any failure
    (nothing is published then)."""
    started = datetime.now(UTC)
    clock = time.perf_counter()
    check_output_dir(options.output, overwrite=options.overwrite)
    files = input_files(options.input)
    bundle = load_batch_model(options.model_dir, expected_sha256=options.expected_sha256)
    id_columns = bundle.spec.id_columns if options.id_columns is None else options.id_columns
    inference_time = (options.inference_time or started).astimezone(UTC)
    with staged_output(options.output, last=(MANIFEST_FILE,), overwrite=options.overwrite) as stage:
        with BatchWriter(
            bundle,
            stage,
            id_columns=id_columns,
            inference_time=inference_time,
            write_csv=options.write_csv,
            capture_sampling_percentage=options.capture_sampling_percentage,
            chunk_rows=options.chunk_rows,
        ) as writer:
            for path in files:  # every header first: a missing column fails before any scoring
                writer.check_file(path)
            with _Progress(options.progress, len(files)) as progress:
                for done, path in enumerate(files):
                    writer.score_file(path, progress=progress, done=done)
        result = writer.result
        result.output_dir = options.output
        result.seconds = time.perf_counter() - clock
        _check_rejects(result, options.max_reject_share)
        (stage / MANIFEST_FILE).write_text(
            dumps(result.manifest(started=started, inference_time=inference_time), indent=2) + "\n"
        )
    return result


def _check_rejects(result: BatchResult, max_share: float) -> None:
    if result.rows_read == 0:
        raise DataError(
            f"the batch input holds no rows ({', '.join(result.input_files)}); nothing was scored"
        )
    share = result.rows_rejected / result.rows_read
    if result.rows_scored and share <= max_share:
        return
    examples = "; ".join(f"{r.file} {r.where}: {r.reason}" for r in result.reject_examples)
    raise TooManyRejects(
        f"{result.rows_rejected} of {result.rows_read} rows ({share:.2%}) could not be scored, "
        f"more than the {max_share:.2%} allowed (--max-reject-share); nothing was published. "
        f"First bad rows: {examples}. Fix the data, or raise --max-reject-share knowingly"
    )


def read_manifest(output_dir: str | Path) -> dict[str, Any]:
    """A completed run's manifest; DataError when the folder is not a completed batch run."""
    path = Path(output_dir) / MANIFEST_FILE
    if not path.is_file():
        raise DataError(f"{output_dir} is not a completed batch run: it has no {MANIFEST_FILE}")
    manifest: dict[str, Any] = json.loads(path.read_text())
    return manifest


def add_batch_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``mlcore batch``: the parser lives with the code, as ``drift`` and ``quality`` do."""
    from mlcore.settings_file import add_settings_option

    parser = sub.add_parser(
        "batch",
        help="score a data drop with a released model, in chunks, monitored like live traffic",
        description="Score CSV, TSV (.tsv) or Parquet (a file or a folder) in chunks with a "
        "model verified as serving verifies it. Writes predictions/ (Parquet: the id columns, "
        "prediction, score and class probabilities), the scored rows in the data-capture "
        "layout under capture/ (read by `mlcore drift --current` and `mlcore quality "
        "--current`), rejects.csv for rows that cannot be scored, and the manifest _SUCCESS "
        "last; the folder appears complete or not at all. Prints the manifest as JSON.",
    )
    parser.add_argument(
        "--model-dir", required=True, help="model folder (or one holding model.tar.gz)"
    )
    parser.add_argument(
        "--input", required=True, help="CSV, TSV or Parquet file, or a folder of them"
    )
    parser.add_argument("--output", required=True, help="folder for the run's outputs")
    parser.add_argument("--csv", action="store_true", help="also write predictions.csv")
    parser.add_argument(
        "--model-sha256",
        help="the registered model hash to verify before loading (default: $MLCORE_MODEL_SHA256)",
    )
    parser.add_argument(
        "--id-columns",
        help="comma-separated columns kept beside each prediction (default: dataset.id_columns "
        "in the settings, else the model's)",
    )
    parser.add_argument(
        "--inference-time",
        help="time recorded in the capture, ISO 8601 (default: when the run starts); the drift "
        "job's windows select the run by it",
    )
    parser.add_argument(
        "--chunk-rows",
        type=int,
        default=DEFAULT_CHUNK_ROWS,
        help=f"rows scored at a time; memory grows with it (default: {DEFAULT_CHUNK_ROWS})",
    )
    parser.add_argument(
        "--max-reject-share",
        type=float,
        default=DEFAULT_MAX_REJECT_SHARE,
        help="fail the run (publishing nothing) when more than this share of rows cannot be "
        f"scored (default: {DEFAULT_MAX_REJECT_SHARE})",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the output folder's contents even if mlcore did not write them",
    )
    add_settings_option(parser)
    parser.set_defaults(handler=batch_command)


def batch_command(args: argparse.Namespace) -> int:
    from mlcore.capture import parse_inference_time
    from mlcore.cli import command_settings

    settings = command_settings(args.settings, required=False)
    if args.id_columns is not None:
        id_columns: tuple[str, ...] | None = tuple(
            c.strip() for c in args.id_columns.split(",") if c.strip()
        )
    elif settings.dataset.id_columns:
        id_columns = tuple(settings.dataset.id_columns)
    else:
        id_columns = None
    options = BatchOptions(
        model_dir=Path(args.model_dir),
        input=Path(args.input),
        output=Path(args.output),
        id_columns=id_columns,
        write_csv=args.csv,
        chunk_rows=args.chunk_rows,
        expected_sha256=args.model_sha256,
        inference_time=parse_inference_time(args.inference_time) if args.inference_time else None,
        capture_sampling_percentage=settings.monitoring.capture_sampling_percentage,
        max_reject_share=args.max_reject_share,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )
    with stopped_cleanly():
        result = run_batch(options)
    print(dumps(read_manifest(result.output_dir)))
    if result.rows_rejected:
        print(
            f"{result.rows_rejected} row(s) could not be scored; see "
            f"{result.output_dir / REJECTS_FILE}",
            file=sys.stderr,
        )
    return 0


@contextmanager
def stopped_cleanly() -> Iterator[None]:
    """Turn SIGTERM (how schedulers and containers stop a job) into SystemExit, so the
    staging folder is removed on the way out instead of being left behind."""

    def _stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, _stop)
    except ValueError:  # not the main thread: leave signals to the host
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
