"""One engine on one folder of current Parquet parts, for bench/run_spark_bench.py.

Prints one JSON line: rows, compute seconds (the drift computation with its reading; for
Spark, after the session has started), the grade per feature, and peak resident memory
sampled every 50 ms: this Python process (the driver), Spark's JVM (its child) and the
largest of the JVM's Python workers.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path

import psutil

from mlcore.drift import Baseline
from mlcore.drift.results import DriftReport

DATA = Path(__file__).resolve().parent / "data"


class PeakSampler(threading.Thread):
    """Peak RSS of this process, of its child processes (the JVM) and of their children."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.driver = self.jvm = self.worker = 0
        self._done = threading.Event()

    def run(self) -> None:
        me = psutil.Process()
        while not self._done.wait(0.05):
            self.driver = max(self.driver, me.memory_info().rss)
            for child in me.children():
                try:
                    self.jvm = max(self.jvm, child.memory_info().rss)
                    for worker in child.children(recursive=True):
                        self.worker = max(self.worker, worker.memory_info().rss)
                except psutil.NoSuchProcess:
                    continue

    def stop(self) -> None:
        self._done.set()
        self.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--engine", choices=("streaming", "spark"), required=True)
    parser.add_argument("--current", type=Path, required=True)
    parser.add_argument("--master", default="local[2]")
    args = parser.parse_args()
    baseline = Baseline.load(DATA / "baseline")
    sampler = PeakSampler()
    sampler.start()
    report: DriftReport
    startup = 0.0
    if args.engine == "streaming":
        from mlcore.drift.streaming import detect_drift_streaming_path

        start = time.perf_counter()
        report = detect_drift_streaming_path(baseline, args.current)
    else:
        from mlcore.drift.spark import detect_drift_spark_path, spark_session

        start = time.perf_counter()
        spark = spark_session(args.master)
        spark.sparkContext.setLogLevel("ERROR")
        startup = time.perf_counter() - start
        start = time.perf_counter()
        report = detect_drift_spark_path(baseline, str(args.current), spark=spark)
    compute = time.perf_counter() - start
    sampler.stop()
    mib = 1024 * 1024
    record = {
        "engine": args.engine,
        "master": args.master if args.engine == "spark" else None,
        "rows": report.current_rows,
        "compute_seconds": compute,
        "startup_seconds": startup,
        "grades": {f.name: f.grade for f in report.features},
        "dataset_grade": report.grade,
        "driver_peak_mib": sampler.driver / mib,
        "jvm_peak_mib": sampler.jvm / mib,
        "worker_peak_mib": sampler.worker / mib,
    }
    print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
