"""Where drift data comes from: tables (CSV, Parquet, files or folders) or SageMaker data capture.

Shared by the CLI and both engines, so none of them imports another.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd

from mlcore.data import DatasetSpec, load_table
from mlcore.errors import DataError

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")
# Columns data capture holds beside the model's inputs (mlcore.capture.capture_columns): the
# model's outputs and the record metadata. Never "extra" columns; a test keeps them in step.
CAPTURE_METADATA_COLUMNS = ("prediction", "score", "inference_id", "inference_time")


def is_capture(path: Path) -> bool:
    """A SageMaker data-capture file (.jsonl) or a folder tree holding some."""
    if path.is_file():
        return path.suffix.lower() == ".jsonl"
    return path.is_dir() and next(path.rglob("*.jsonl"), None) is not None


def data_files(path: Path, suffixes: tuple[str, ...] = TABLE_SUFFIXES) -> list[Path]:
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    readable = [p for p in files if p.suffix.lower() in suffixes]
    if not readable:
        raise DataError(f"no {'/'.join(suffixes)} files at {path}")
    return readable


def read_data(path: str | Path, spec: DatasetSpec | None) -> pd.DataFrame:
    """CSV/Parquet (file or folder), or data-capture JSON Lines (which needs the model's spec)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"data path does not exist: {path}")
    if is_capture(path):
        if spec is None:
            raise DataError(
                f"{path} holds data capture, which is decoded with the model's features: "
                "give --baseline MODEL_DIR or --spec spec.json"
            )
        from mlcore.capture import read_capture

        return read_capture(path, spec)
    return load_table(path)


def columns_of(path: Path) -> list[str]:
    """Column names of a CSV or Parquet file (the first file of a folder), read cheaply."""
    for file in data_files(path):
        if file.suffix.lower() == ".csv":
            return [str(c) for c in pd.read_csv(file, nrows=0).columns]
        import pyarrow.parquet as pq

        return list(pq.ParquetFile(file).schema_arrow.names)
    raise DataError(f"no .csv or .parquet files at {path}")


def iter_chunks(
    path: str | Path,
    spec: DatasetSpec,
    *,
    columns: Sequence[str],
    chunk_rows: int,
) -> Iterator[pd.DataFrame]:
    """Chunks of ``columns`` (those present) from CSV, Parquet (file or folder) or data capture."""
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    path = Path(path)
    if not path.exists():
        raise DataError(f"data path does not exist: {path}")
    if is_capture(path):
        from mlcore.capture import iter_capture

        yield from iter_capture(path, spec, chunk_rows=chunk_rows)
        return
    wanted = set(columns)
    for file in data_files(path):
        if file.suffix.lower() == ".csv":
            yield from pd.read_csv(file, chunksize=chunk_rows, usecols=lambda c: c in wanted)
        else:
            import pyarrow.parquet as pq

            parquet = pq.ParquetFile(file)
            present = [c for c in parquet.schema_arrow.names if c in wanted]
            for batch in parquet.iter_batches(batch_size=chunk_rows, columns=present):
                yield batch.to_pandas()
