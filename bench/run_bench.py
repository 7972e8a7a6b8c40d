"""The drift benchmark: `make bench`. Not a test: it measures, prints a table, and saves it.

Steps, each skipped when already done:
1. generate the data (bench/generate.py: 1M reference + 1M current rows, 50 numeric
   and 10 categorical columns) and a 5M-row current set for the memory-capped run;
2. create the competitor virtualenvs under bench/.venvs/ from the pinned
   requirements files (never dependencies of mlcore);
3. build mlcore's drift baseline (a training-time artifact, so not timed).

Then each tool runs in its own process, one after the other, reading the same
files, and for each the table shows: compute time (measured inside the process,
excluding imports and loading), whole-process wall time, peak resident memory
(ru_maxrss of that process), and how many per-feature verdicts agree with
mlcore's, with every disagreement explained by the change injected into that
column. Finally mlcore's streaming mode runs on the 5M-row current data under an
address-space cap smaller than that data, and exact mode runs under the same cap
to show it cannot.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
DATA = BENCH / "data"
VENVS = BENCH / ".venvs"
MLCORE_PYTHON = ROOT / ".venv" / "bin" / "python"
COMPETITORS = {"evidently": "requirements-evidently.txt", "nannyml": "requirements-nannyml.txt"}
LARGE_PARTS = 5


@dataclass
class Run:
    name: str
    exit_code: int
    wall_seconds: float
    peak_mib: float
    record: dict[str, Any] = field(default_factory=dict)
    stderr_tail: str = ""

    @property
    def compute_seconds(self) -> float | None:
        value = self.record.get("compute_seconds")
        return None if value is None else float(value)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ensure_data(rows: int) -> None:
    if not (DATA / "current.parquet").is_file():
        log(f"generating {rows:,} + {rows:,} rows into {DATA}")
        subprocess.run(
            [str(MLCORE_PYTHON), str(BENCH / "generate.py"), "--rows", str(rows)], check=True
        )
    large = DATA / "current_large"
    if len(list(large.glob("*.parquet"))) < LARGE_PARTS:
        log(f"generating {LARGE_PARTS} x {rows:,} current rows into {large}")
        subprocess.run(
            [
                str(MLCORE_PYTHON),
                str(BENCH / "generate.py"),
                "--rows",
                str(rows),
                "--large-parts",
                str(LARGE_PARTS),
            ],
            check=True,
        )


def ensure_venv(tool: str) -> Path:
    """Create bench/.venvs/<tool> from its pinned requirements; redone when they change."""
    requirements = BENCH / COMPETITORS[tool]
    venv = VENVS / tool
    stamp = venv / ".installed"
    python = venv / "bin" / "python"
    if stamp.is_file() and stamp.stat().st_mtime >= requirements.stat().st_mtime:
        return python
    log(f"creating {venv} from {requirements.name}")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "-r", str(requirements)], check=True
    )
    stamp.touch()
    return python


def ensure_baseline() -> None:
    if not (DATA / "baseline" / "baseline.json").is_file():
        log("building the mlcore baseline (training-time artifact, not timed)")
        subprocess.run([str(MLCORE_PYTHON), "-c", _BUILD_BASELINE], check=True, cwd=BENCH)


_BUILD_BASELINE = """
import pandas as pd
from mlcore.data import DatasetSpec
from mlcore.drift import build_baseline
spec = DatasetSpec.load("data/spec.json")
build_baseline(pd.read_parquet("data/reference.parquet"), spec).save("data/baseline")
"""


def run(name: str, argv: list[str], *, memory_cap_mib: int | None = None) -> Run:
    """Run one tool in its own process; wall time and peak RSS of exactly that process."""
    env = dict(os.environ)
    preexec = None
    if memory_cap_mib is not None:
        # An address-space cap is stricter than a resident-memory cap. Keep allocators from
        # reserving address space they will not use (glibc arenas per thread, Arrow's pool).
        env.update(
            MALLOC_ARENA_MAX="2", ARROW_DEFAULT_MEMORY_POOL="system", OPENBLAS_NUM_THREADS="1"
        )
        cap = memory_cap_mib * 1024 * 1024

        def preexec() -> None:
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    log(f"running {name} ...")
    start = time.perf_counter()
    process = subprocess.Popen(
        argv,
        cwd=BENCH,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=preexec,
    )
    stdout, stderr = process.communicate()
    wall = time.perf_counter() - start
    # RUSAGE_CHILDREN would accumulate over every run, so each tool runs under peak.py,
    # which reports the peak of exactly its own child.
    record: dict[str, Any] = {}
    peak_kib = 0.0
    for line in stdout.splitlines():
        if line.startswith("{"):
            parsed = json.loads(line)
            if "peak_rss_kib" in parsed:
                peak_kib = float(parsed["peak_rss_kib"])
            else:
                record = parsed
    result = Run(
        name,
        process.returncode,
        wall,
        peak_kib / 1024,
        record,
        "\n".join(stderr.strip().splitlines()[-3:]),
    )
    log(
        f"  exit {result.exit_code}, wall {wall:.1f} s, peak {result.peak_mib:,.0f} MiB, "
        f"compute {result.compute_seconds if result.compute_seconds is not None else '-'} s"
    )
    return result


def wrapped(python: Path, script: str, *args: str) -> list[str]:
    """Run ``script`` under a small wrapper that prints the child's own peak RSS at the end."""
    return [sys.executable, str(BENCH / "peak.py"), str(python), script, *args]


def agreement(
    ours: dict[str, bool], theirs: dict[str, bool], changes: dict[str, str]
) -> tuple[int, list[str]]:
    agree, notes = 0, []
    for name, verdict in ours.items():
        if theirs.get(name) == verdict:
            agree += 1
            continue
        who = "only mlcore" if verdict else "only the other tool"
        change = changes.get(name)
        if change is None:
            notes.append(f"{name}: {who} flags it: a false alarm, no change was injected")
        else:
            notes.append(f"{name}: {who} flags it; injected change: {change}")
    return agree, notes


def table(runs: list[Run], reference: Run, changes: dict[str, str]) -> str:
    ours = reference.record.get("verdicts", {})
    lines = [
        "| tool | compute s | wall s | peak MiB | verdicts agreeing with mlcore (frames) |",
        "|---|---:|---:|---:|---|",
    ]
    notes: list[str] = []
    for item in runs:
        compute = item.compute_seconds
        verdicts = item.record.get("verdicts")
        if verdicts is None:
            agree_text = f"failed (exit {item.exit_code})"
        else:
            agree, disagreements = agreement(ours, verdicts, changes)
            agree_text = f"{agree}/{len(ours)}"
            notes += [f"- {item.name}: {d}" for d in disagreements]
        lines.append(
            f"| {item.name} | {'-' if compute is None else f'{compute:.2f}'} | "
            f"{item.wall_seconds:.1f} | {item.peak_mib:,.0f} | {agree_text} |"
        )
    return "\n".join(lines + (["", "Disagreements:", *notes] if notes else []))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3, help="mlcore runs per mode (median)")
    parser.add_argument("--memory-cap-mib", type=int, default=2048)
    parser.add_argument(
        "--skip-evidently-default",
        action="store_true",
        help="skip the slowest run (about 6 minutes)",
    )
    args = parser.parse_args()

    ensure_data(args.rows)
    pythons = {tool: ensure_venv(tool) for tool in COMPETITORS}
    ensure_baseline()
    sys.path.insert(0, str(BENCH))
    from generate import CHANGES

    runs: list[Run] = []
    for mode in ("frames", "baseline", "streaming"):
        repeats = [
            run(f"mlcore ({mode})", wrapped(MLCORE_PYTHON, "run_mlcore.py", "--mode", mode))
            for _ in range(args.repeats)
        ]
        runs.append(_median(repeats))
    runs.append(run("nannyml 0.13.1", wrapped(pythons["nannyml"], "run_nannyml.py")))
    runs.append(
        run(
            "evidently 0.7.23 (KS + chi2 like ours)",
            wrapped(pythons["evidently"], "run_evidently.py", "--config", "matched"),
        )
    )
    if not args.skip_evidently_default:
        runs.append(
            run(
                "evidently 0.7.23 (DataDriftPreset defaults)",
                wrapped(pythons["evidently"], "run_evidently.py", "--config", "default"),
            )
        )

    reference = runs[0]
    report = [table(runs, reference, CHANGES), "", "Ratios (other tool / mlcore):"]
    for mine in runs[:2]:
        for other in runs[3:]:
            if other.compute_seconds and mine.compute_seconds:
                report.append(
                    f"- {other.name} vs {mine.name}: compute "
                    f"{other.compute_seconds / mine.compute_seconds:.1f}x, peak memory "
                    f"{other.peak_mib / mine.peak_mib:.1f}x"
                )

    large = str(DATA / "current_large")
    capped = [
        run(
            f"mlcore streaming, 5M current rows, {args.memory_cap_mib} MiB cap",
            wrapped(MLCORE_PYTHON, "run_mlcore.py", "--mode", "streaming", "--current", large),
            memory_cap_mib=args.memory_cap_mib,
        ),
        run(
            f"mlcore exact, 5M current rows, {args.memory_cap_mib} MiB cap",
            wrapped(MLCORE_PYTHON, "run_mlcore.py", "--mode", "baseline", "--current", large),
            memory_cap_mib=args.memory_cap_mib,
        ),
    ]
    report += [
        "",
        f"Memory-capped runs (address space limited to {args.memory_cap_mib} MiB; "
        "the 5M-row current data takes about 2.4 GiB as a DataFrame):",
    ]
    for item in capped:
        status = (
            (
                f"finished: {item.record.get('current_rows', 0):,} rows in "
                f"{item.compute_seconds:.1f} s, peak {item.peak_mib:,.0f} MiB, KS error bound "
                f"{item.record.get('ks_error_bound')}"
            )
            if item.exit_code == 0
            else (
                f"failed as expected (exit {item.exit_code}): {item.stderr_tail.splitlines()[-1:]}"
            )
        )
        report.append(f"- {item.name}: {status}")

    text = "\n".join(report)
    print(text)
    (DATA / "results.md").write_text(text + "\n")
    (DATA / "results.json").write_text(
        json.dumps(
            [
                {
                    "name": r.name,
                    "exit_code": r.exit_code,
                    "wall_seconds": r.wall_seconds,
                    "peak_mib": r.peak_mib,
                    "compute_seconds": r.compute_seconds,
                }
                for r in runs + capped
            ],
            indent=2,
        )
        + "\n"
    )


def _median(repeats: list[Run]) -> Run:
    finished = [r for r in repeats if r.compute_seconds is not None]
    if not finished:
        return repeats[0]
    ordered = sorted(finished, key=lambda r: r.compute_seconds or 0.0)
    return ordered[len(ordered) // 2]


if __name__ == "__main__":
    main()
