"""Saved drift profiles: a window's summary on disk, so longer periods merge without a rescan.

Every ``mlcore drift`` run against a training baseline writes ``drift_profile.npz``
beside its report: the streaming engine's mergeable summary of the current rows
(:class:`~mlcore.drift.streaming.CurrentSketch`). ``mlcore drift --baseline B
--profiles P...`` merges any number of them and grades the merge, so a day is
graded from its 24 hourly profiles, a week from seven days, a segment from its
own windows, with no data read again, as whylogs profiles are used. The merge
is exact: grading 24 merged hourly profiles gives the report the streaming
engine gives on the whole day.

Format (version 1), one NumPy ``.npz`` archive (a zip of ``.npy`` arrays, read
with pickling disabled, so a profile cannot run code):

* ``meta``: UTF-8 JSON as bytes: ``format`` ("mlcore-drift-profile"),
  ``version``, ``reference`` (a SHA-256 of the reference side every column was
  summarised against: grid edges and counts, category labels), ``rows``,
  ``prediction_columns``, ``absent`` and ``seen`` column names, ``window``
  (first and last event time, or null), and per column its kind and scalar
  fields (counts, moments, extremes, the frequent-items error);
* per column ``i``: ``c<i>.counts`` and ``c<i>.at_edges`` (numeric grid counts),
  or ``c<i>.tracked``, ``c<i>.frequent_counts`` and ``c<i>.registers``
  (categorical counts, the frequent-items counters and HyperLogLog registers);
* ``sample.keys`` and ``sample.rows`` (the domain classifier's content-hash
  sample: its 64-bit keys and the rows as Parquet bytes), when the classifier
  is on.

Profiles merge only when they were summarised against the same reference (the
same baseline and drift settings) with the same prediction columns; anything
else is refused with the reason, never merged into a wrong grade.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlcore.drift.categorical_sketch import CategoricalSketch, DistinctCount, FrequentItems
from mlcore.drift.pairs import CategoricalReference
from mlcore.drift.sketches import NumericSketch, ReferenceGrid, RowSample
from mlcore.drift.streaming import CurrentSketch, StreamingPlan
from mlcore.errors import DataError

PROFILE_FILE = "drift_profile.npz"
FORMAT = "mlcore-drift-profile"
VERSION = 1

_NUMERIC_SCALARS = (
    "n_missing",
    "n_posinf",
    "n_neginf",
    "n_not_numeric",
    "below",
    "above",
    "n_fractional",
    "count",
    "mean",
    "m2",
    "low",
    "high",
)
_CATEGORICAL_SCALARS = ("other_known", "unseen", "n_missing")


@dataclass(frozen=True)
class SavedProfile:
    """One profile read back: its summary and what it was summarised against."""

    sketch: CurrentSketch
    reference: str
    prediction_columns: tuple[str, ...]
    window: tuple[str, str] | None


def reference_fingerprint(plan: StreamingPlan) -> str:
    """SHA-256 of the reference side of every column in ``plan``: what a summary's counts
    are relative to. Two profiles merge only when this matches."""
    digest = hashlib.sha256()
    for name, (role, side) in sorted(plan.columns.items()):
        digest.update(f"{name}\0{role}\0".encode())
        if isinstance(side, ReferenceGrid):
            digest.update(b"numeric\0")
            digest.update(np.ascontiguousarray(side.edges, dtype=np.float64).tobytes())
            digest.update(np.ascontiguousarray(side.counts, dtype=np.int64).tobytes())
        else:
            digest.update(b"categorical\0")
            digest.update(json.dumps([side.tracked, side.labels]).encode())
    sample = plan.settings.domain_classifier
    digest.update(f"sample\0{sample.enabled}\0{sample.max_rows}".encode())
    return digest.hexdigest()


def save_profile(
    path: str | Path,
    plan: StreamingPlan,
    sketch: CurrentSketch,
    *,
    window: tuple[str, str] | None = None,
) -> Path:
    """Write ``sketch`` (summarised with ``plan``) to ``path`` in one step: a reader sees the
    whole profile or none."""
    arrays: dict[str, np.ndarray] = {}
    columns: dict[str, dict[str, Any]] = {}
    for index, (name, column) in enumerate(sketch.columns.items()):
        key = f"c{index}"
        if isinstance(column, NumericSketch):
            arrays[f"{key}.counts"] = column.counts
            arrays[f"{key}.at_edges"] = column.at_edges
            columns[name] = {
                "key": key,
                "kind": "numeric",
                "not_numeric_examples": list(column.not_numeric_examples),
                **{field: _number(getattr(column, field)) for field in _NUMERIC_SCALARS},
            }
        else:
            arrays[f"{key}.tracked"] = column.tracked
            arrays[f"{key}.frequent_counts"] = column.frequent_unseen.counts
            arrays[f"{key}.registers"] = column.distinct_unseen.registers
            columns[name] = {
                "key": key,
                "kind": "categorical",
                "frequent_labels": list(column.frequent_unseen.labels),
                "frequent_error": int(column.frequent_unseen.error),
                **{field: int(getattr(column, field)) for field in _CATEGORICAL_SCALARS},
            }
    sample_size = None
    if sketch.sample is not None:
        sample_size = sketch.sample.size
        arrays["sample.keys"] = sketch.sample.keys
        arrays["sample.rows"] = _parquet_bytes(sketch.sample.rows)
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "reference": reference_fingerprint(plan),
        "rows": int(sketch.rows),
        "prediction_columns": [n for n, (role, _) in plan.columns.items() if role == "prediction"],
        "absent": sorted(sketch.absent),
        "seen": sorted(sketch.seen),
        "window": list(window) if window is not None else None,
        "sample_size": sample_size,
        "columns": columns,
    }
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    with partial.open("wb") as handle:
        np.savez_compressed(handle, **arrays)  # type: ignore[arg-type]
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)
    return path


def load_profile(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The metadata and arrays of one profile file, checked for format and version."""
    path = Path(path)
    try:
        # Opened here, not by np.load: it leaks its handle when the zip is torn.
        with path.open("rb") as handle, np.load(handle, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        meta = json.loads(arrays.pop("meta").tobytes().decode("utf-8"))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(
            f"{path} is not a readable drift profile ({exc}): give the {PROFILE_FILE} files "
            "mlcore drift wrote beside its reports"
        ) from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DataError(f"{path} is not a drift profile (no {FORMAT!r} header)")
    if meta.get("version") != VERSION:
        raise DataError(
            f"{path} is drift profile version {meta.get('version')}, this mlcore reads version "
            f"{VERSION}: grade it with the mlcore release that wrote it"
        )
    return meta, arrays


def read_profile(path: str | Path, plan: StreamingPlan) -> SavedProfile:
    """The profile at ``path`` as a summary for ``plan``; refused when it was summarised
    against another reference."""
    meta, arrays = load_profile(path)
    expected = reference_fingerprint(plan)
    if meta["reference"] != expected:
        raise DataError(
            f"{path} was summarised against another reference (a different baseline, drift "
            "settings or prediction columns) than the one given: grade it with the baseline and "
            "settings of the run that wrote it"
        )
    columns: dict[str, NumericSketch | CategoricalSketch] = {}
    for name, (_, side) in plan.columns.items():
        fields = meta["columns"][name]
        key = fields["key"]
        if isinstance(side, ReferenceGrid):
            columns[name] = NumericSketch(
                counts=arrays[f"{key}.counts"].astype(np.int64),
                at_edges=arrays[f"{key}.at_edges"].astype(np.int64),
                not_numeric_examples=tuple(fields["not_numeric_examples"]),
                **{
                    field: _scalar(fields[field], float if field in _FLOATS else int)
                    for field in _NUMERIC_SCALARS
                },
            )
        else:
            columns[name] = _categorical(fields, arrays, key, side)
    sample = None
    if "sample.keys" in arrays:
        sample = RowSample(
            size=int(meta["sample_size"]),
            keys=arrays["sample.keys"].astype(np.uint64),
            rows=pd.read_parquet(io.BytesIO(arrays["sample.rows"].tobytes())),
        )
    window = meta.get("window")
    return SavedProfile(
        sketch=CurrentSketch(
            rows=int(meta["rows"]),
            columns=columns,
            absent=frozenset(meta["absent"]),
            seen=frozenset(meta["seen"]),
            sample=sample,
        ),
        reference=expected,
        prediction_columns=tuple(meta["prediction_columns"]),
        window=(str(window[0]), str(window[1])) if window else None,
    )


def profile_files(paths: Sequence[str | Path]) -> list[Path]:
    """Each path as given when a file, else every profile file under it (sorted)."""
    found: list[Path] = []
    for given in map(Path, paths):
        if given.is_file():
            found.append(given)
        elif given.is_dir():
            inside = sorted(given.rglob(PROFILE_FILE))
            if not inside:
                raise DataError(f"no {PROFILE_FILE} under {given}")
            found.extend(inside)
        else:
            raise DataError(f"profile path does not exist: {given}")
    return found


def prediction_columns_of(paths: Sequence[Path]) -> tuple[str, ...]:
    """The prediction columns the profiles were summarised with (all must agree)."""
    chosen = {tuple(load_profile(path)[0]["prediction_columns"]) for path in paths}
    if len(chosen) != 1:
        raise DataError(
            "the profiles were summarised with different prediction columns "
            f"({sorted(chosen)}): merge only profiles of one monitor"
        )
    return chosen.pop()


def merge_profiles(paths: Sequence[Path], plan: StreamingPlan) -> SavedProfile:
    """Every profile at ``paths`` merged: the summary of all their rows, and the span of
    their windows (when each recorded one)."""
    if not paths:
        raise DataError("no drift profiles to merge")
    profiles = [read_profile(path, plan) for path in paths]
    total = profiles[0].sketch
    for profile in profiles[1:]:
        total = total.merge(profile.sketch)
    windows = [p.window for p in profiles]
    span = None
    if all(w is not None for w in windows):
        known = [w for w in windows if w is not None]
        span = (min(w[0] for w in known), max(w[1] for w in known))
    return SavedProfile(
        sketch=total,
        reference=profiles[0].reference,
        prediction_columns=profiles[0].prediction_columns,
        window=span,
    )


_FLOATS = frozenset({"mean", "m2", "low", "high"})


def _categorical(
    fields: dict[str, Any], arrays: dict[str, np.ndarray], key: str, side: CategoricalReference
) -> CategoricalSketch:
    return CategoricalSketch(
        tracked=arrays[f"{key}.tracked"].astype(np.int64),
        frequent_unseen=FrequentItems(
            labels=tuple(fields["frequent_labels"]),
            counts=arrays[f"{key}.frequent_counts"].astype(np.int64),
            error=int(fields["frequent_error"]),
        ),
        distinct_unseen=DistinctCount(arrays[f"{key}.registers"].astype(np.uint8)),
        **{field: int(fields[field]) for field in _CATEGORICAL_SCALARS},
    )


def _number(value: float | int) -> float | int | str:
    # JSON has no infinities: an empty column's extremes are written as text.
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def _scalar(value: float | int | str, kind: type) -> Any:
    return kind(float(value)) if isinstance(value, str) else kind(value)


def _parquet_bytes(frame: pd.DataFrame) -> np.ndarray:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return np.frombuffer(buffer.getvalue(), dtype=np.uint8)


__all__ = [
    "PROFILE_FILE",
    "SavedProfile",
    "load_profile",
    "merge_profiles",
    "prediction_columns_of",
    "profile_files",
    "read_profile",
    "reference_fingerprint",
    "save_profile",
]
