"""Benchmark runner: mlcore.drift, in the project's own venv.

Modes:
* ``frames``: reference and current DataFrames, both sides computed (like the other tools);
* ``baseline``: the monitoring path: the baseline built at training time is loaded
  (not timed, like data loading) and only the current side is computed;
* ``streaming``: the current Parquet file streamed in chunks against the baseline; the
  compute time includes reading, because reading is part of streaming.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))

from protocol import DATA_DIR, emit, timed

from mlcore.data import DatasetSpec
from mlcore.drift import Baseline, DriftReport, build_baseline, detect_drift
from mlcore.drift.streaming import detect_drift_streaming_path


def read_parquet(path: Path) -> pd.DataFrame:
    """Load column by column into a frame that takes the arrays as they are.

    ``pd.read_parquet`` holds the Arrow table and the converted frame at once, about
    twice the data; this peaks at the data plus one column. Loading is not timed but
    its peak counts in the table, as it does for every tool.
    """
    import pyarrow.parquet as pq

    if path.is_dir():  # a folder of parts
        parts = [read_parquet(part) for part in sorted(path.glob("*.parquet"))]
        return pd.concat(parts, ignore_index=True)
    file = pq.ParquetFile(path)
    columns = {}
    for name in file.schema_arrow.names:
        columns[name] = file.read(columns=[name]).column(0).to_pandas()
    return pd.DataFrame(columns, copy=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=("frames", "baseline", "streaming"), default="frames")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--data", type=Path, default=DATA_DIR)
    parser.add_argument("--current", type=Path, default=None, help="default: DATA/current.parquet")
    args = parser.parse_args()
    spec = DatasetSpec.load(args.data / "spec.json")
    current_path = args.current or args.data / "current.parquet"
    report: DriftReport
    if args.mode == "frames":
        reference = read_parquet(args.data / "reference.parquet")
        current = read_parquet(current_path)
        report, seconds = timed(
            lambda: detect_drift(reference, current, spec=spec, workers=args.workers)
        )
    else:
        baseline_dir = args.data / "baseline"
        if not (baseline_dir / "baseline.json").is_file():
            # Training writes this once per model; it is not part of a monitoring run.
            reference = read_parquet(args.data / "reference.parquet")
            with tempfile.TemporaryDirectory(dir=args.data) as scratch:
                build_baseline(reference, spec).save(Path(scratch) / "b")
                (Path(scratch) / "b").rename(baseline_dir)
            del reference
        baseline = Baseline.load(baseline_dir)
        if args.mode == "baseline":
            current = read_parquet(current_path)
            report, seconds = timed(lambda: detect_drift(baseline, current, workers=args.workers))
        else:
            report, seconds = timed(
                lambda: detect_drift_streaming_path(baseline, current_path, workers=args.workers)
            )
    emit(
        f"mlcore ({args.mode})",
        seconds,
        {f.name: f.drifted for f in report.features},
        statistics={
            f.name: f.test("ks" if f.kind == "numeric" else "chi2").statistic
            for f in report.features
        },
        current_rows=report.current_rows,
        ks_error_bound=report.ks_error_bound,
    )


if __name__ == "__main__":
    main()
