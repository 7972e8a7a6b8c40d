"""The Spark engine benchmark: `make bench-spark` (also the last step of `make bench`).

Not a test: it measures, prints a table and saves it (bench/data/spark_bench.md and .json).

Steps, each skipped when already done:
1. the reference data and baseline of `make bench` (bench/generate.py, 50 numeric and 10
   categorical columns, 1M reference rows; the baseline is a training-time artifact);
2. 50 Parquet parts of 1M current rows each (the shifted current data of bench/generate.py,
   one seed per part) under data/current_spark/, and two folders of links to them:
   data/spark_10m/ (the first 10 parts) and data/spark_50m/ (all 50).

Then, each in its own process, one after the other on the same files: the streaming
engine and the Spark engine (local mode, 2 cores) at 10M and 50M rows, and the Spark
engine on 1 core at 10M rows, for the scaling from 1 to 2 cores. For each: rows per
second of the drift computation (reading included, Spark's start-up excluded), and the
peak resident memory of the Python driver (where the summaries are merged and the report
is built), of Spark's JVM (in local mode the JVM holds the driver and the executors
together) and of the largest Python worker. The load average of the machine is recorded
beside the table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from run_bench import DATA, MLCORE_PYTHON, ensure_baseline, log  # noqa: E402

PART_ROWS = 1_000_000
PARTS = 50
SIZES = {"10M": 10, "50M": 50}


def ensure_reference() -> None:
    if not (DATA / "reference.parquet").is_file():
        log(f"generating the reference data into {DATA}")
        subprocess.run(
            [str(MLCORE_PYTHON), str(BENCH / "generate.py"), "--rows", str(PART_ROWS)], check=True
        )
    ensure_baseline()


def ensure_parts() -> None:
    """Write the missing current parts (resumable: each part is written whole, then renamed)."""
    parts = DATA / "current_spark"
    parts.mkdir(parents=True, exist_ok=True)
    missing = [p for p in range(PARTS) if not (parts / f"part-{p:03d}.parquet").is_file()]
    if missing:
        log(f"generating {len(missing)} parts of {PART_ROWS:,} current rows into {parts}")
        subprocess.run(
            [str(MLCORE_PYTHON), "-c", _WRITE_PARTS, str(parts), *map(str, missing)],
            check=True,
            cwd=BENCH,
        )
    for label, count in SIZES.items():
        folder = DATA / f"spark_{label.lower()}"
        folder.mkdir(exist_ok=True)
        for p in range(count):
            link = folder / f"part-{p:03d}.parquet"
            if not link.is_symlink():
                link.symlink_to(parts / link.name)


_WRITE_PARTS = f"""
import sys
from pathlib import Path
from generate import make_frame
folder = Path(sys.argv[1])
for part in map(int, sys.argv[2:]):
    path = folder / f"part-{{part:03d}}.parquet"
    scratch = path.with_suffix(".tmp")
    make_frame({PART_ROWS}, seed=100 + part, shifted=True).to_parquet(scratch, index=False)
    scratch.rename(path)
    print("wrote", path, flush=True)
"""


def run_one(engine: str, size: str, *, master: str | None = None) -> dict[str, Any]:
    argv = [str(MLCORE_PYTHON), str(BENCH / "run_spark_engine.py"), "--engine", engine]
    argv += ["--current", str(DATA / f"spark_{size.lower()}")]
    if master is not None:
        argv += ["--master", master]
    label = f"{engine}{'' if master is None else ' ' + master}, {size} rows"
    log(f"running {label} ...")
    load = os.getloadavg()
    start = time.perf_counter()
    process = subprocess.run(argv, cwd=BENCH, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    record: dict[str, Any] = {}
    for line in process.stdout.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
    if process.returncode != 0 or not record:
        tail = "\n".join(process.stderr.strip().splitlines()[-5:])
        raise SystemExit(f"{label} failed (exit {process.returncode}):\n{tail}")
    record.update(label=label, size=size, wall_seconds=wall, load_before=load)
    log(
        f"  {record['rows'] / record['compute_seconds']:,.0f} rows/s, driver peak "
        f"{record['driver_peak_mib']:,.0f} MiB, load {load[0]:.1f}"
    )
    return record


def table(records: list[dict[str, Any]]) -> str:
    lines = [
        "| engine | current rows | rows/s | compute s | Python driver peak MiB "
        "| JVM peak MiB | largest Python worker MiB | same verdicts as streaming |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    streaming = {r["size"]: r for r in records if r["engine"] == "streaming"}
    for r in records:
        same = "-"
        if r["engine"] == "spark" and r["size"] in streaming:
            same = "yes" if r["grades"] == streaming[r["size"]]["grades"] else "NO"
        spark = r["engine"] == "spark"  # the streaming engine starts no JVM and no workers
        jvm = f"{r['jvm_peak_mib']:,.0f}" if spark else "-"
        worker = f"{r['worker_peak_mib']:,.0f}" if spark else "-"
        lines.append(
            f"| {r['label'].split(',')[0]} | {r['rows']:,} | {r['rows'] / r['compute_seconds']:,.0f} "
            f"| {r['compute_seconds']:.1f} | {r['driver_peak_mib']:,.0f} | {jvm} | {worker} | {same} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--sizes", nargs="+", choices=sorted(SIZES), default=sorted(SIZES), help="row counts"
    )
    parser.add_argument("--repeats", type=int, default=1, help="runs per configuration (median)")
    parser.add_argument(
        "--engines", nargs="+", choices=("streaming", "spark"), default=["streaming", "spark"]
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="add to the saved table: keep its runs of the configurations not run now",
    )
    parser.add_argument("--prepare-only", action="store_true", help="generate the data and stop")
    args = parser.parse_args()
    ensure_reference()
    ensure_parts()
    if args.prepare_only:
        return
    # The scaling run (1 core) right after the 2-core run of the same size; the largest last.
    plan: list[tuple[str, str, str | None]] = []
    for size in sorted(args.sizes, key=lambda label: SIZES[label]):
        plan += [("streaming", size, None), ("spark", size, "local[2]")]
        if size == "10M":
            plan.append(("spark", size, "local[1]"))
    plan = [step for step in plan if step[0] in args.engines]
    records: list[dict[str, Any]] = []
    saved = DATA / "spark_bench.json"
    if args.keep and saved.is_file():
        planned = {(engine, size, master) for engine, size, master in plan}
        records = [
            r
            for r in json.loads(saved.read_text())
            if (r["engine"], r["size"], r["master"]) not in planned
        ]
    for engine, size, master in plan:
        runs = [run_one(engine, size, master=master) for _ in range(args.repeats)]
        runs.sort(key=lambda r: r["compute_seconds"])
        median = dict(runs[len(runs) // 2])
        median["compute_seconds"] = statistics.median(r["compute_seconds"] for r in runs)
        records.append(median)
        save(records)  # after every run: a long benchmark stopped early keeps what it measured
    print((DATA / "spark_bench.md").read_text())


def save(records: list[dict[str, Any]]) -> None:
    uptime = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout
    lines = [table(records), "", f"Machine load when the table was written: {uptime.strip()}"]
    spark = {(r["size"], r["master"]): r for r in records if r["engine"] == "spark"}
    one, two = spark.get(("10M", "local[1]")), spark.get(("10M", "local[2]"))
    if one and two:
        lines.append(
            "Scaling at 10M rows: local[2] runs "
            f"{one['compute_seconds'] / two['compute_seconds']:.2f}x as fast as local[1]"
        )
    (DATA / "spark_bench.md").write_text("\n".join(lines) + "\n")
    (DATA / "spark_bench.json").write_text(json.dumps(records, indent=2) + "\n")


if __name__ == "__main__":
    main()
