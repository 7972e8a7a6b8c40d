"""Reading and writing tables: CSV (comma- or, as ``.tsv``, tab-separated) and Parquet,
single files or folders of parts."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from mlcore.errors import DataError

SUPPORTED_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")
# Delimited text, by suffix: the separator each is read with.
TEXT_SEPARATORS = {".csv": ",", ".tsv": "\t"}
PARQUET_SUFFIXES = (".parquet", ".pq")

logger = logging.getLogger(__name__)


def is_marker(relative_path: str | Path) -> bool:
    """Whether a path inside a data folder is bookkeeping rather than data.

    Markers are what writers leave beside the data: ``_SUCCESS`` and other names starting
    with ``_`` (Spark's ``_temporary/``, ``_committed_*``), hidden files and folders
    (starting with ``.``, which covers Hadoop's ``.part-0.parquet.crc``) and ``*.crc``
    checksums. Any component of ``relative_path`` can make it a marker.
    """
    parts = Path(relative_path).parts
    return any(part.startswith(("_", ".")) for part in parts) or str(
        relative_path
    ).lower().endswith(".crc")


def data_files(folder: str | Path) -> list[Path]:
    """The CSV and Parquet files anywhere under ``folder``, markers left out, in path order.

    The order is that of the paths relative to ``folder``, so the same files always load into
    the same table (and the same fingerprint), however the file system lists them.
    """
    folder = Path(folder)
    files = []
    ignored = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder)
        if is_marker(relative):
            continue
        if path.suffix.lower() in SUPPORTED_SUFFIXES:
            files.append(path)
        else:
            ignored.append(str(relative))
    if ignored:
        logger.warning(
            "ignoring %d file(s) under %s that are neither %s nor markers: %s",
            len(ignored),
            folder,
            "/".join(SUPPORTED_SUFFIXES),
            ", ".join(ignored[:5]) + (" ..." if len(ignored) > 5 else ""),
        )
    return files


def load_table(path: str | Path) -> pd.DataFrame:
    """Load a CSV or Parquet file, or every such file under a folder (as SageMaker channels hold).

    A folder is read recursively (dated drops such as ``2026-10/part-0.parquet`` included);
    markers such as ``_SUCCESS``, ``*.crc`` and hidden files are skipped (see :func:`is_marker`).

    Raises
    ------
    DataError
        If the path does not exist, holds no supported file, or cannot be parsed.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"data path does not exist: {path}")
    if path.is_dir():
        files = data_files(path)
        if not files:
            raise DataError(
                f"no {'/'.join(SUPPORTED_SUFFIXES)} files in folder {path} or its subfolders "
                "(markers such as _SUCCESS and hidden files are not data); put the data there "
                "or point to a file"
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


# Delimiters a "CSV" export often uses instead of the comma, by name for the hint.
_OTHER_DELIMITERS = {"\t": "tab", ";": "semicolon", "|": "pipe"}


def _comma_separated(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """``frame`` as read; a file that read as one column holding another delimiter is an error
    that names the delimiter and how to convert the file (mlcore reads comma-separated CSV)."""
    if frame.shape[1] != 1:
        return frame
    header = str(frame.columns[0])
    found = [name for delimiter, name in _OTHER_DELIMITERS.items() if delimiter in header]
    if not found:
        return frame
    separator = next(d for d, name in _OTHER_DELIMITERS.items() if name == found[0])
    raise DataError(
        f"{path} reads as one column named {header[:80]!r}: it looks {found[0]}-separated, and "
        "mlcore reads comma-separated CSV (tab-separated only as .tsv, or Parquet). Rename a "
        "tab-separated file to .tsv, or convert it once, e.g. "
        f"python -c \"import pandas as pd; pd.read_csv('{path}', sep={separator!r})"
        f".to_csv('{path.with_suffix('.comma.csv')}', index=False)\", and point at the new file"
    )


def _load_head(path: Path, rows: int) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return _comma_separated(pd.read_csv(path, nrows=rows), path)
        if suffix in TEXT_SEPARATORS:
            return pd.read_csv(path, nrows=rows, sep=TEXT_SEPARATORS[suffix])
        if suffix in PARQUET_SUFFIXES:
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
            return _comma_separated(pd.read_csv(path), path)
        if suffix in TEXT_SEPARATORS:
            return pd.read_csv(path, sep=TEXT_SEPARATORS[suffix])
        if suffix in PARQUET_SUFFIXES:
            return pd.read_parquet(path)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise DataError(f"could not read {path}: {exc}") from exc
    raise DataError(f"unsupported file type {suffix!r} for {path}; use one of {SUPPORTED_SUFFIXES}")


def save_table(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a table as CSV or Parquet, chosen by the file suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix in TEXT_SEPARATORS:
        frame.to_csv(path, index=False, sep=TEXT_SEPARATORS[suffix])
    elif suffix in PARQUET_SUFFIXES:
        frame.to_parquet(path, index=False)
    else:
        raise DataError(
            f"unsupported file type {suffix!r} for {path}; use one of {SUPPORTED_SUFFIXES}"
        )
    return path
