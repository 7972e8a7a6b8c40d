"""Reading and writing tables: CSV and Parquet, single files or folders of parts."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mlcore.errors import DataError

SUPPORTED_SUFFIXES = (".csv", ".parquet", ".pq")


def load_table(path: str | Path) -> pd.DataFrame:
    """Load a CSV or Parquet file, or every such file in a folder (as SageMaker channels hold).

    Raises
    ------
    DataError
        If the path does not exist, holds no supported file, or cannot be parsed.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"data path does not exist: {path}")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in SUPPORTED_SUFFIXES)
        if not files:
            raise DataError(
                f"no {'/'.join(SUPPORTED_SUFFIXES)} files in folder {path}; "
                "put the data there or point to a file"
            )
        return pd.concat([_load_file(p) for p in files], ignore_index=True)
    return _load_file(path)


def sample_table(path: str | Path, rows: int) -> pd.DataFrame:
    """The first ``rows`` rows of a CSV or Parquet file, or of a folder's files in name order.

    Reads no more than it needs, so profiling a large file stays quick.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"data path does not exist: {path}")
    files = (
        sorted(p for p in path.iterdir() if p.suffix.lower() in SUPPORTED_SUFFIXES)
        if path.is_dir()
        else [path]
    )
    if not files:
        raise DataError(
            f"no {'/'.join(SUPPORTED_SUFFIXES)} files in folder {path}; "
            "put the data there or point to a file"
        )
    parts: list[pd.DataFrame] = []
    remaining = rows
    for file in files:
        part = _load_head(file, remaining)
        parts.append(part)
        remaining -= len(part)
        if remaining <= 0:
            break
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def _load_head(path: Path, rows: int) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path, nrows=rows)
        if suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            parquet = pq.ParquetFile(path)
            batches = parquet.iter_batches(batch_size=min(rows, 65_536))
            tables = []
            taken = 0
            for batch in batches:
                tables.append(batch.to_pandas())
                taken += batch.num_rows
                if taken >= rows:
                    break
            if not tables:
                return parquet.schema_arrow.empty_table().to_pandas()
            return pd.concat(tables, ignore_index=True).head(rows)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise DataError(f"could not read {path}: {exc}") from exc
    raise DataError(f"unsupported file type {suffix!r} for {path}; use one of {SUPPORTED_SUFFIXES}")


def _load_file(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path)
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise DataError(f"could not read {path}: {exc}") from exc
    raise DataError(f"unsupported file type {suffix!r} for {path}; use one of {SUPPORTED_SUFFIXES}")


def save_table(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a table as CSV or Parquet, chosen by the file suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix in (".parquet", ".pq"):
        frame.to_parquet(path, index=False)
    else:
        raise DataError(
            f"unsupported file type {suffix!r} for {path}; use one of {SUPPORTED_SUFFIXES}"
        )
    return path
