"""SageMaker data capture, emulated locally and read back for the monitors.

Writing: :class:`CaptureWriter` stores one JSON Lines record per sampled request in
SageMaker's data-capture layout::

    {"captureData": {
        "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
                          "data": "42,13,...", "encoding": "CSV"},
        "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                           "data": "{\\"predictions\\": [...]}", "encoding": "JSON"}},
     "eventMetadata": {"eventId": "<uuid>", "inferenceId": "<if sent>",
                       "inferenceTime": "2026-01-15T10:00:00Z"},
     "eventVersion": "0"}

``encoding`` is ``CSV`` or ``JSON`` for those content types (``data`` holds the text
as sent) and ``BASE64`` for anything else. Files sit where SageMaker puts them under
the capture prefix: ``<root>/<endpoint>/<variant>/yyyy/mm/dd/hh/<mm-ss-mmm>-<uuid>.jsonl``,
the hour folder taken from each record's inference time. Every record is appended and
the file closed before the request is answered, so stopping the server loses nothing.

A record is written whole or not at all: one ``write`` to a file opened with
``O_APPEND``; when it fails or writes only part of the record (a full disk), the file is
truncated back to where the record began, and the next record starts a new file. So a
full-disk episode costs the records it could not hold (counted in the server's
``mlcore_capture_failures_total``), never the readability of the records around them.

Reading: :func:`read_capture` and :func:`iter_capture` turn such files (ours or a real
endpoint's, copied from S3) into a frame with the model's feature columns,
``prediction``, ``score`` (classification), ``inference_id`` and ``inference_time``:
one row per record of each request's payload.

Two request headers feed the metadata: ``X-Amzn-SageMaker-Inference-Id`` (the local
equivalent of InvokeEndpoint's ``InferenceId``, used to join late ground truth) and
``X-Mlcore-Inference-Time``, a local-only extension that sets the recorded inference
time (ISO 8601; UTC when no offset is given) so simulated traffic from another period
lands in that period's folders. The server honours it only when told to
(``trust_inference_time_header``, which the demo sets); SageMaker itself always records
the real time.

A capture file can still hold a broken line: a writer killed mid-append (the torn last
line), or a file written by an older writer or another tool after a failed write (a
torn record with the next one appended to it). Every reader (the drift engines, exact,
streaming and Spark, and the quality job) skips a line that is not JSON wherever it is,
logs it and counts it in :class:`CaptureReadStats`. A line that is JSON but not a
data-capture record is still an error: that is a wrong file, not a torn write.
"""

from __future__ import annotations

import base64
import binascii
import errno
import json
import logging
import os
import random
import tempfile
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from mlcore.data import DatasetSpec
from mlcore.errors import ConfigError, DataError
from mlcore.model import PREDICTION_COLUMN, SCORE_COLUMN
from mlcore.serve.defaults import DEFAULT_ENDPOINT_NAME, DEFAULT_VARIANT_NAME
from mlcore.serve.payload import (
    CSV,
    JSON,
    RequestError,
    decode_request,
    decode_response,
    media_type,
    rows_to_frame,
)

logger = logging.getLogger(__name__)

INFERENCE_ID_HEADER = "X-Amzn-SageMaker-Inference-Id"
INFERENCE_TIME_HEADER = "X-Mlcore-Inference-Time"
INFERENCE_ID_COLUMN = "inference_id"
INFERENCE_TIME_COLUMN = "inference_time"
EVENT_VERSION = "0"
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# Hour folders a writer remembers its file for; older hours get a new file if they come back.
OPEN_FILES_LIMIT = 48
# Broken lines logged one by one per read; past that they are only counted (and summarised).
_BROKEN_LINES_LOGGED = 10


def parse_inference_time(value: str) -> datetime:
    """Parse an ISO 8601 time for the capture record; naive times are taken as UTC."""
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise DataError(
            f"inference time {value!r} is not an ISO 8601 time; use e.g. 2026-01-15T10:00:00Z"
        ) from exc
    if pd.isna(stamp):
        raise DataError(f"inference time {value!r} is empty; use e.g. 2026-01-15T10:00:00Z")
    stamp = stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)
    # datetime holds microseconds; drop finer digits explicitly rather than with a warning.
    when: datetime = stamp.floor("us").to_pydatetime()
    return when


class CaptureWriter:
    """Appends SageMaker data-capture records under ``root``; safe to share between threads.

    Parameters
    ----------
    root : the local stand-in for the endpoint config's ``DestinationS3Uri``.
    endpoint_name, variant_name : the first two levels under ``root``, as SageMaker names them.
    sampling_percentage : share of requests captured (0-100), like ``InitialSamplingPercentage``.
    seed : seeds the sampling decisions, for reproducible runs; random when None.
    csv_content_types, json_content_types : content types stored as text with encoding
        CSV or JSON (``CaptureContentTypeHeader``); any other type is stored as BASE64.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        endpoint_name: str = DEFAULT_ENDPOINT_NAME,
        variant_name: str = DEFAULT_VARIANT_NAME,
        sampling_percentage: float = 100,
        seed: int | None = None,
        csv_content_types: Sequence[str] = (CSV,),
        json_content_types: Sequence[str] = (JSON,),
    ) -> None:
        problems = []
        if not 0 <= sampling_percentage <= 100:
            problems.append(
                f"sampling_percentage must be between 0 and 100, got {sampling_percentage}"
            )
        for label, name in (("endpoint_name", endpoint_name), ("variant_name", variant_name)):
            if not name or "/" in name or name in (".", ".."):
                problems.append(f"{label} must be a non-empty name without '/', got {name!r}")
        if problems:
            raise ConfigError("invalid data capture settings: " + "; ".join(problems))
        self.root = Path(root)
        self.endpoint_name = endpoint_name
        self.variant_name = variant_name
        self.sampling_percentage = sampling_percentage
        self._csv_types = frozenset(media_type(t) for t in csv_content_types)
        self._json_types = frozenset(media_type(t) for t in json_content_types)
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        # One file per hour folder, as SageMaker does per host; only the most recent hours are
        # remembered, so the map stays bounded whatever times the records carry.
        self._files: OrderedDict[str, Path] = OrderedDict()
        self.records_written = 0

    @property
    def prefix(self) -> Path:
        """The folder holding this endpoint variant's captured data."""
        return self.root / self.endpoint_name / self.variant_name

    def check_writable(self) -> None:
        """Create the capture folder and write a probe file there; ConfigError if that fails.

        A server whose captures are all lost would answer every request and leave the
        monitors blind, so it refuses to start instead.
        """
        try:
            self.prefix.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.prefix, prefix=".write-probe-") as probe:
                probe.write(b"probe")
                probe.flush()
                os.fsync(probe.fileno())
        except OSError as exc:
            raise ConfigError(
                f"cannot write data capture to {self.prefix}: {exc}. Give a writable --capture-dir "
                "(or none, to serve without capture)."
            ) from exc

    def capture(
        self,
        *,
        request_body: bytes,
        request_content_type: str | None,
        response_body: bytes,
        response_content_type: str | None,
        inference_id: str | None = None,
        inference_time: datetime | None = None,
    ) -> Path | None:
        """Record one request and its response, if sampled; return the file written to.

        ``inference_time`` defaults to now; a naive time is taken as UTC. The record
        is appended whole (or not at all: OSError) and its file closed before this returns.
        """
        with self._lock:
            if self._random.uniform(0, 100) >= self.sampling_percentage:
                return None
            when = inference_time or datetime.now(UTC)
            # A naive time is UTC here, as in the X-Mlcore-Inference-Time header.
            when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
            metadata: dict[str, str] = {"eventId": str(uuid.uuid4())}
            if inference_id is not None:
                metadata["inferenceId"] = inference_id
            metadata["inferenceTime"] = when.strftime(_TIME_FORMAT)
            record = {
                "captureData": {
                    "endpointInput": self._payload(request_body, request_content_type, "INPUT"),
                    "endpointOutput": self._payload(response_body, response_content_type, "OUTPUT"),
                },
                "eventMetadata": metadata,
                "eventVersion": EVENT_VERSION,
            }
            line = (json.dumps(record, separators=(",", ":")) + "\n").encode("utf-8")
            path = self._file_for(when)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                append_whole(path, line)
            except OSError:
                # Whatever the failure left in that file, the next record starts a new one.
                self._forget(path)
                raise
            self.records_written += 1
            return path

    def files(self) -> list[Path]:
        """The capture files of the hours this writer remembers (at most OPEN_FILES_LIMIT), in time order."""
        with self._lock:
            return sorted(self._files.values())

    def _payload(self, body: bytes, content_type: str | None, mode: str) -> dict[str, str]:
        kind = media_type(content_type)
        encoding = (
            "CSV" if kind in self._csv_types else "JSON" if kind in self._json_types else "BASE64"
        )
        if encoding == "BASE64":
            data = base64.b64encode(body).decode("ascii")
        else:
            data = body.decode("utf-8")
        return {
            "observedContentType": content_type or "",
            "mode": mode,
            "data": data,
            "encoding": encoding,
        }

    def _forget(self, path: Path) -> None:
        for hour, known in list(self._files.items()):
            if known == path:
                del self._files[hour]

    def _file_for(self, when: datetime) -> Path:
        hour = when.strftime("%Y/%m/%d/%H")
        if hour in self._files:
            self._files.move_to_end(hour)
            return self._files[hour]
        name = f"{when:%M-%S}-{when.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"
        self._files[hour] = self.prefix / hour / name
        while len(self._files) > OPEN_FILES_LIMIT:
            self._files.popitem(last=False)
        return self._files[hour]


def append_whole(path: Path, data: bytes) -> None:
    """Append ``data`` to ``path`` in one write, or leave the file as it was and raise OSError.

    ``O_APPEND`` puts the bytes at the end of the file in one step. A write that fails or
    stores only part of ``data`` (what a full disk does) is undone by truncating the file
    back to its size before the write, so no reader ever sees half a record followed by
    the next one.
    """
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        size = os.fstat(fd).st_size
        try:
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(
                    errno.ENOSPC,
                    f"only {written} of {len(data)} bytes could be written (disk full?)",
                    str(path),
                )
        except OSError:
            try:
                os.ftruncate(fd, size)
                if size == 0:  # a file this write created: leave nothing behind
                    os.unlink(path)
            except OSError:
                logger.exception(
                    "could not truncate %s after a failed write; it may end in a torn line, "
                    "which readers skip",
                    path,
                )
            raise
    finally:
        os.close(fd)


@dataclass
class CaptureReadStats:
    """What a capture reader read, and the broken lines (``file:line``) it skipped."""

    files: int = 0
    records: int = 0
    broken_lines: list[str] = field(default_factory=list)


def capture_files(path: str | Path) -> list[Path]:
    """The ``.jsonl`` capture files at ``path`` (a file, or a folder searched recursively)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"capture path does not exist: {path}")
    if path.is_file():
        return [path]
    files = sorted(path.rglob("*.jsonl"))
    if not files:
        raise DataError(
            f"no .jsonl capture files under {path}; point to the data-capture prefix "
            "(<endpoint>/<variant>/...) or to one capture file"
        )
    return files


def capture_lines(
    path: str | Path, stats: CaptureReadStats | None = None
) -> Iterator[tuple[Any, str]]:
    """Yield ``(record, "file:line")`` for every JSON line of the capture files at ``path``.

    A line that is not JSON (UTF-8 text of one JSON document) is broken: a torn write.
    It is skipped, logged and counted in ``stats``, wherever it is in the file; a
    summary is logged at the end. Every other line is yielded parsed, for the caller to
    check that it is a data-capture record.
    """
    stats = stats if stats is not None else CaptureReadStats()
    for file in capture_files(path):
        with file.open("rb") as handle:
            yield from file_record_lines(handle, str(file), stats)
    if stats.broken_lines:
        logger.warning(
            "skipped %d broken line(s) of the data capture at %s (%d records read)",
            len(stats.broken_lines),
            path,
            stats.records,
        )


def file_record_lines(
    raw_lines: Iterable[bytes], source: str, stats: CaptureReadStats | None = None
) -> Iterator[tuple[Any, str]]:
    """:func:`capture_lines` for one file's lines as bytes, newlines kept (a file handle, or
    ``content.splitlines(keepends=True)`` of a file another engine read whole)."""
    stats = stats if stats is not None else CaptureReadStats()
    stats.files += 1
    for line_number, raw in enumerate(raw_lines, start=1):
        if not raw.strip():
            continue
        where = f"{source}:{line_number}"
        try:
            record = json.loads(raw)
        except (ValueError, RecursionError) as exc:  # not UTF-8, not JSON, or torn
            stats.broken_lines.append(where)
            if len(stats.broken_lines) <= _BROKEN_LINES_LOGGED:
                logger.warning(
                    "skipping %s: not a whole JSON record (a torn write): %s", where, exc
                )
            continue
        stats.records += 1
        yield record, where


def iter_capture(
    path: str | Path,
    spec: DatasetSpec,
    *,
    chunk_rows: int = 50_000,
    stats: CaptureReadStats | None = None,
) -> Iterator[pd.DataFrame]:
    """Yield captured rows as frames of at most ``chunk_rows`` rows, in file order.

    Memory stays bounded by about twice ``chunk_rows`` rows plus one request's
    payload, so a monitor can stream a day of traffic. See :func:`read_capture` for
    the columns. Broken lines are skipped and counted in ``stats`` (see
    :func:`capture_lines`).
    """
    yield from frames_of_records(capture_lines(path, stats), spec, chunk_rows=chunk_rows)


def frames_of_records(
    records: Iterable[tuple[Any, str]], spec: DatasetSpec, *, chunk_rows: int
) -> Iterator[pd.DataFrame]:
    """Frames of at most ``chunk_rows`` rows from ``(record, "file:line")`` parsed capture
    lines (see :func:`iter_capture`)."""
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    batch = _Batch(spec)
    carry: pd.DataFrame | None = None
    for record, where in records:
        batch.add(record, where)
        if batch.rows >= chunk_rows:
            carry = _join(carry, batch.to_frame())
            batch = _Batch(spec)
            while len(carry) >= chunk_rows:
                yield carry.iloc[:chunk_rows].reset_index(drop=True)
                carry = carry.iloc[chunk_rows:]
    if batch.rows:
        carry = _join(carry, batch.to_frame())
    while carry is not None and len(carry):
        yield carry.iloc[:chunk_rows].reset_index(drop=True)
        carry = carry.iloc[chunk_rows:]


def _join(carry: pd.DataFrame | None, frame: pd.DataFrame) -> pd.DataFrame:
    if carry is None or carry.empty:
        return frame
    return pd.concat([carry, frame], ignore_index=True)


def read_capture(
    path: str | Path, spec: DatasetSpec, *, stats: CaptureReadStats | None = None
) -> pd.DataFrame:
    """Read captured traffic into one frame: one row per record of each request.

    Columns: the model's features (typed as the endpoint checked them), ``prediction``,
    ``score`` (classification only), ``inference_id`` (None when the caller sent
    none) and ``inference_time`` (UTC). Records captured without output have missing
    predictions. ``path`` is one capture file or a folder searched recursively.
    """
    frames = list(iter_capture(path, spec, chunk_rows=1_000_000, stats=stats))
    if not frames:
        return _empty_frame(spec)
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def capture_columns(spec: DatasetSpec) -> list[str]:
    """The columns :func:`read_capture` returns for a model with this spec."""
    outputs = (
        [PREDICTION_COLUMN, SCORE_COLUMN] if spec.task == "classification" else [PREDICTION_COLUMN]
    )
    return [*spec.features, *outputs, INFERENCE_ID_COLUMN, INFERENCE_TIME_COLUMN]


class _Batch:
    """Captured records decoded so far, turned into one frame at a time (vectorised checks)."""

    def __init__(self, spec: DatasetSpec) -> None:
        self.spec = spec
        self.features: list[Sequence[Any]] = []
        self.outputs: list[list[Any]] = []
        self.inference_ids: list[str | None] = []
        self.inference_times: list[str] = []
        self.sources: list[str] = []

    @property
    def rows(self) -> int:
        return len(self.features)

    def add(self, record: Any, where: str) -> None:
        try:
            capture = record["captureData"]
            metadata = record["eventMetadata"]
            inference_time = metadata["inferenceTime"]
            request = capture["endpointInput"]
        except (KeyError, TypeError) as exc:
            raise DataError(
                f"{where} is not a SageMaker data-capture record (need captureData.endpointInput "
                f"and eventMetadata.inferenceTime): {exc!r}"
            ) from exc
        try:
            rows = decode_request(*_payload_text(request), self.spec)
            response = capture.get("endpointOutput")
            outputs = (
                decode_response(*_payload_text(response)) if response else [[None]] * len(rows)
            )
        except (RequestError, DataError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{where}: the captured payload cannot be read: {exc}") from exc
        if len(outputs) != len(rows):
            raise DataError(
                f"{where}: the captured request holds {len(rows)} records but the response "
                f"{len(outputs)} predictions"
            )
        self.features.extend(rows)
        self.outputs.extend(outputs)
        self.inference_ids.extend([metadata.get("inferenceId")] * len(rows))
        self.inference_times.extend([inference_time] * len(rows))
        self.sources.append(where)

    def to_frame(self) -> pd.DataFrame:
        try:
            frame = rows_to_frame(self.features, self.spec)
        except RequestError as exc:
            span = f"{self.sources[0]} .. {self.sources[-1]}"
            raise DataError(
                f"captured requests in {span} do not match the model's features: {exc}"
            ) from exc
        predictions = [row[0] if row else None for row in self.outputs]
        frame[PREDICTION_COLUMN] = _plain_labels(predictions)
        if self.spec.task == "classification":
            scores = [row[1] if len(row) > 1 else None for row in self.outputs]
            frame[SCORE_COLUMN] = pd.to_numeric(
                pd.Series(scores, dtype=object), errors="raise"
            ).astype("float64")
        frame[INFERENCE_ID_COLUMN] = pd.Series(self.inference_ids, dtype=object)
        try:
            frame[INFERENCE_TIME_COLUMN] = pd.to_datetime(
                self.inference_times, utc=True, format="ISO8601"
            )
        except (ValueError, TypeError) as exc:
            raise DataError(
                f"unreadable eventMetadata.inferenceTime in {self.sources[0]}..: {exc}"
            ) from exc
        return frame


def _payload_text(payload: dict[str, Any]) -> tuple[str, str]:
    """The payload as text and the media type to parse it as.

    CSV and JSON encodings say the format themselves (the writer's content-type lists
    decided them); a BASE64 payload is parsed by its observed content type.
    """
    data = payload["data"]
    encoding = str(payload.get("encoding", "")).upper()
    if encoding in ("CSV", "JSON"):
        return str(data), CSV if encoding == "CSV" else JSON
    try:
        text = base64.b64decode(data, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise DataError(f"BASE64 payload could not be decoded as UTF-8 text: {exc}") from exc
    return text, media_type(payload.get("observedContentType"))


def _plain_labels(values: list[Any]) -> pd.Series:
    """Predictions from CSV responses arrive as text: make numeric labels numbers again."""
    series = pd.Series(values, dtype=object)
    numbers = pd.to_numeric(series, errors="coerce")
    if (numbers.notna() | series.isna()).all():
        return numbers
    return series


def _empty_frame(spec: DatasetSpec) -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype="float64") for c in spec.numeric})
    for column in spec.categorical:
        frame[column] = pd.Series(dtype=object)
    frame[PREDICTION_COLUMN] = pd.Series(dtype=object)
    if spec.task == "classification":
        frame[SCORE_COLUMN] = pd.Series(dtype="float64")
    frame[INFERENCE_ID_COLUMN] = pd.Series(dtype=object)
    frame[INFERENCE_TIME_COLUMN] = pd.Series(dtype="datetime64[ns, UTC]")
    return frame[capture_columns(spec)]
