"""Training time by OpenMP thread count: the figures behind ``training.threads: auto``.

Trains the shipped model (HistGradientBoosting with the shipped hyperparameters) on the
churn generator's data at several sizes, once per thread count from 1 to twice the cores
this process may use and per OpenMP wait policy (the runtime's default, which spins at
every barrier, and PASSIVE, which sleeps), each run in a fresh process (wall and CPU
seconds of that process, data generation excluded; a run past ``--timeout`` seconds is
stopped and reported as such), and prints the median of the repeats with the machine's
load average. ``make bench-threads`` runs it; the table is saved to
``bench/data/threads.md`` and ``threads.json``.

Usage: python bench/run_thread_bench.py [--rows 2000,20000,100000] [--repeats 3]
       [--timeout 300] [--max-threads N]
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

HERE = Path(__file__).resolve().parent
OUT = HERE / "data"

# One training run in a fresh process: prints {"wall": s, "cpu": s}.
_CHILD = """
import json, resource, sys, time
from mlcore.data import CHURN_SPEC, make_churn
from mlcore.settings import TrainingSettings
from mlcore.train import train_model
rows, threads = int(sys.argv[1]), int(sys.argv[2])
frame = make_churn(rows, seed=0)
settings = TrainingSettings(threads=threads)
before = resource.getrusage(resource.RUSAGE_SELF)
started = time.perf_counter()
train_model(frame, CHURN_SPEC, settings)
wall = time.perf_counter() - started
after = resource.getrusage(resource.RUSAGE_SELF)
cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
print(json.dumps({"wall": wall, "cpu": cpu}))
"""


POLICIES = ("default", "PASSIVE")


def _run(rows: int, threads: int, policy: str, timeout: float) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    if policy != "default":
        env["OMP_WAIT_POLICY"] = policy
    try:
        result = subprocess.run(
            [sys.executable, "-c", _CHILD, str(rows), str(threads)],
            capture_output=True,
            text=True,
            check=True,
            env=env,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"wall": float("inf"), "cpu": float("nan")}
    measured: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return measured


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="2000,20000,100000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument(
        "--max-threads", type=int, help="largest thread count (default: twice the cores)"
    )
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    largest = args.max_threads or 2 * cores
    counts = sorted(n for n in {1, *range(2, cores + 1), 2 * cores} if n <= largest)
    load_before = os.getloadavg()
    rows_list = [int(r) for r in args.rows.split(",")]
    results = []
    for rows in rows_list:
        for threads in counts:
            for policy in POLICIES if threads > 1 else POLICIES[:1]:
                runs = [_run(rows, threads, policy, args.timeout) for _ in range(args.repeats)]
                row = {
                    "rows": rows,
                    "threads": threads,
                    "wait_policy": policy,
                    "wall_s": statistics.median(r["wall"] for r in runs),
                    "cpu_s": statistics.median(r["cpu"] for r in runs),
                }
                results.append(row)
                print(json.dumps(row), flush=True)
    load_after = os.getloadavg()
    document = {
        "cores": cores,
        "repeats": args.repeats,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "measured_at": time.strftime("%Y-%m-%d %H:%M"),
        "results": results,
    }
    lines = [
        f"Training time by thread count ({cores} usable cores; load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after; median of {args.repeats})",
        "",
        "| rows | threads | OpenMP wait policy | wall s | CPU s |",
        "|---:|---:|---|---:|---:|",
        *(
            f"| {r['rows']:,} | {r['threads']} | {r['wait_policy']} | "
            + (f"> {args.timeout:.0f}" if r["wall_s"] == float("inf") else f"{r['wall_s']:.2f}")
            + f" | {r['cpu_s']:.2f} |"
            for r in results
        ),
    ]
    OUT.mkdir(exist_ok=True)
    (OUT / "threads.json").write_text(json.dumps(document, indent=2) + "\n")
    (OUT / "threads.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
