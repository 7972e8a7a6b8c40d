"""Batch scoring: ``mlcore batch`` against the trained pipeline's own ``predict_proba``.

The demo's generator (``mlcore.data.make_churn``, the live period) writes 1M and 10M rows
to Parquet once (``bench/data/batch/``, row groups of 100k rows), and the shipped model
(HistGradientBoosting with the shipped hyperparameters, as ``make demo`` trains v1) is
trained once on 60k rows. Then, each run in a fresh process under ``peak.py`` (peak
resident memory of exactly that process), one after another, one OpenMP thread each:

* ``predict_proba``: the same Parquet chunks (100k rows, the feature columns) read with
  pyarrow, made model-ready with ``coerce_features`` and passed to the fitted pipeline's
  ``predict_proba``; nothing written. The limit for this model in one process.
* ``mlcore batch``: the command line as a user runs it (``--quiet``): model hash check and
  warm-up, the same chunks, bad-row checks, predictions with every class's probability to
  Parquet, every row in the data-capture layout, the manifest. Rows per second from the
  whole run's time (model loading included).
* ``mlcore batch, capture 10%``: the same with ``monitoring.capture_sampling_percentage: 10``.

Medians of ``--repeats`` runs per size are printed with the load average and saved to
``bench/data/batch_bench.md`` and ``.json``. ``make bench-batch`` runs it.

Usage: python bench/run_batch_bench.py [--sizes 1M,10M] [--repeats 3] [--repeats-10m N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "batch"
OUT = HERE / "data"
PART_ROWS = 1_000_000
ROW_GROUP = 100_000
CHUNK_ROWS = 100_000

_DIRECT = """
import json, sys, time
import pyarrow.parquet as pq
from mlcore.data import coerce_features
from mlcore.model import ModelBundle
bundle = ModelBundle.load(sys.argv[1])
features = list(bundle.spec.features)
started = time.perf_counter()
rows = 0
predicting = 0.0
# Read as mlcore batch reads: pyarrow without pre-buffering (see mlcore.batch).
parquet = pq.ParquetFile(sys.argv[2], pre_buffer=False)
for batch in parquet.iter_batches(batch_size=int(sys.argv[3]), columns=features):
    chunk = coerce_features(batch.to_pandas(), bundle.spec)
    before = time.perf_counter()
    bundle.pipeline.predict_proba(chunk)
    predicting += time.perf_counter() - before
    rows += len(chunk)
print(json.dumps({"rows": rows, "seconds": time.perf_counter() - started, "predict_seconds": predicting}))
"""


def _size(text: str) -> int:
    text = text.strip().upper()
    return int(float(text[:-1]) * 1_000_000) if text.endswith("M") else int(text)


def prepare(rows: int) -> Path:
    """The model (once) and a Parquet file of ``rows`` live-period rows (once)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlcore.data import CHURN_SPEC, make_churn
    from mlcore.settings import TrainingSettings
    from mlcore.train import save_trained_model, train_model

    DATA.mkdir(parents=True, exist_ok=True)
    model = DATA / "model"
    if not (model / "manifest.sha256").exists():
        print("training the shipped model on 60k rows ...", flush=True)
        frame = make_churn(60_000, seed=0)
        bundle = train_model(
            frame.iloc[:50_000], CHURN_SPEC, TrainingSettings(), validation=frame.iloc[50_000:]
        )
        save_trained_model(bundle, model, reference=frame.iloc[50_000:])
    path = DATA / f"churn_{rows // 1_000_000}m.parquet"
    if path.exists():
        return path
    print(f"generating {rows:,} rows of the live period into {path} ...", flush=True)
    partial = path.with_suffix(".partial")
    writer = None
    try:
        for part, start in enumerate(range(0, rows, PART_ROWS)):
            frame = make_churn(
                min(PART_ROWS, rows - start), start="2025-11-01", end="2026-02-28", seed=100 + part
            ).drop(columns=[CHURN_SPEC.target])
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(partial, table.schema)
            writer.write_table(table, row_group_size=ROW_GROUP)
    finally:
        if writer is not None:
            writer.close()
    partial.rename(path)
    return path


def _measured(command: list[str], env: dict[str, str]) -> tuple[list[str], int]:
    result = subprocess.run(
        [sys.executable, str(HERE / "peak.py"), *command],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{command[:3]} failed: {result.stderr[-2000:]}")
    lines = result.stdout.strip().splitlines()
    peak = json.loads(lines[-1])["peak_rss_kib"]
    return lines[:-1], int(peak)


def run_direct(model: Path, data: Path, env: dict[str, str]) -> dict[str, float]:
    lines, peak = _measured(
        [sys.executable, "-c", _DIRECT, str(model), str(data), str(CHUNK_ROWS)], env
    )
    measured = json.loads(lines[-1])
    return {
        "rows_per_second": measured["rows"] / measured["seconds"],
        "seconds": measured["seconds"],
        "predict_seconds": measured["predict_seconds"],
        "peak_mib": peak / 1024,
    }


def run_batch(
    model: Path, data: Path, env: dict[str, str], settings: Path | None
) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="mlcore-batch-bench-", dir=DATA))
    try:
        command = [
            str(Path(sys.executable).with_name("mlcore")),
            "batch",
            "--model-dir",
            str(model),
            "--input",
            str(data),
            "--output",
            str(work / "out"),
            "--chunk-rows",
            str(CHUNK_ROWS),
            "--quiet",
        ]
        if settings is not None:
            command += ["--settings", str(settings)]
        # peak.py runs PYTHON SCRIPT ARGS: the console script is the script.
        lines, peak = _measured([sys.executable, *command], env)
        manifest = json.loads(lines[-1])
        return {
            "rows_per_second": manifest["rows_read"] / manifest["seconds"],
            "seconds": manifest["seconds"],
            "rows_captured": manifest["rows_captured"],
            "peak_mib": peak / 1024,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1M,10M")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--repeats-10m", type=int, help="repeats at 10M rows and above (default: --repeats)"
    )
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    env.pop("MLCORE_MODEL_SHA256", None)
    sampled = DATA / "capture-10pct.yaml"
    DATA.mkdir(parents=True, exist_ok=True)
    sampled.write_text("project: bench\nmonitoring:\n  capture_sampling_percentage: 10\n")
    full = DATA / "capture-all.yaml"
    full.write_text("project: bench\n")
    loads = []
    rows_out = []
    for size in [_size(s) for s in args.sizes.split(",")]:
        data = prepare(size)
        model = DATA / "model"
        repeats = args.repeats_10m if args.repeats_10m and size >= 10_000_000 else args.repeats
        runs: dict[str, list[dict[str, float]]] = {
            "predict_proba": [],
            "mlcore batch": [],
            "mlcore batch, capture 10%": [],
        }
        for repeat in range(repeats):
            for name in runs:
                loads.append(os.getloadavg()[0])
                started = time.perf_counter()
                if name == "predict_proba":
                    measured = run_direct(model, data, env)
                else:
                    settings = sampled if name.endswith("10%") else full
                    measured = run_batch(model, data, env, settings)
                runs[name].append(measured)
                print(
                    f"{size:>11,} rows  {name:<26} run {repeat + 1}/{repeats}: "
                    f"{measured['rows_per_second']:>10,.0f} rows/s, peak "
                    f"{measured['peak_mib']:,.0f} MiB ({time.perf_counter() - started:.0f}s)",
                    flush=True,
                )
        direct = statistics.median(r["rows_per_second"] for r in runs["predict_proba"])
        for name, measured in runs.items():
            speed = statistics.median(r["rows_per_second"] for r in measured)
            rows_out.append(
                {
                    "rows": size,
                    "run": name,
                    "repeats": len(measured),
                    "rows_per_second": round(speed),
                    "share_of_predict_proba": round(speed / direct, 3),
                    "peak_mib": round(statistics.median(r["peak_mib"] for r in measured)),
                    "runs": measured,
                }
            )
    load = {
        "load_average_at_runs": [round(x, 2) for x in loads],
        "cores": len(os.sched_getaffinity(0)),
    }
    table = [
        "| rows | run | runs | rows/s (median) | vs predict_proba | peak memory |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for row in rows_out:
        table.append(
            f"| {row['rows']:,} | {row['run']} | {row['repeats']} | {row['rows_per_second']:,} "
            f"| {row['share_of_predict_proba']:.0%} | {row['peak_mib']:,} MiB |"
        )
    text = "\n".join(table) + (
        f"\n\n{load['cores']} cores; 1-minute load average at the start of each run: "
        f"{min(loads):.1f} to {max(loads):.1f} (median {statistics.median(loads):.1f}).\n"
    )
    print(text)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "batch_bench.md").write_text(text)
    (OUT / "batch_bench.json").write_text(json.dumps({"results": rows_out, **load}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
