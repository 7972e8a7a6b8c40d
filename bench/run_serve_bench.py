"""The serving benchmark: `make bench-serve`. Not a test: it measures, prints a table, and saves it.

Three servers score the same model on the same rows, each in its own processes:

* mlcore serve (this repository);
* Seldon MLServer 1.7.1 with mlserver-sklearn, loading the same model.joblib;
* Microsoft's azureml-inference-server-http 1.5.1 running azure/scoring/score.py (the
  repository's Azure entry script, mlcore's scoring plus Azure's data collector).

All three run on equal thread settings: the same number of worker processes (``--workers``,
default one per vCPU, as mlcore's container runs: mlcore's ``--workers``, MLServer's
``parallel_workers``, azureml's gunicorn ``--worker_count``) and one OpenMP/BLAS thread per
process (``OMP_NUM_THREADS=1`` and its BLAS siblings for every server; mlcore also holds its
scoring thread to one itself). Everything else is each server's default.

MLServer and azureml run in their own virtualenvs under bench/.venvs/, created from
bench/requirements-*.txt (re-created when a file changes); neither is a dependency of
mlcore. Every server is started once and stays up; the load (bench/serve_load.py, a
closed-loop keep-alive client) then runs request size x concurrency x server,
interleaved, for each repeat, and the table reports medians over the repeats.

Per run: throughput (requests per second), latency p50 and p99, CPU seconds the
server's processes spent per request (from /proc, all of a server's processes), and
the server's peak resident memory (the sum over its processes, sampled while it ran).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
DATA = BENCH / "data" / "serve"
VENVS = BENCH / ".venvs"
MLCORE_PYTHON = ROOT / ".venv" / "bin" / "python"
PEERS = {"mlserver": "requirements-mlserver.txt", "azureml": "requirements-azureml.txt"}
SIZES = (1, 100)
CONCURRENCY = (1, 8, 32)
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ensure_venv(name: str) -> Path:
    """bench/.venvs/<name> from its pinned requirements; re-created when they change."""
    requirements = BENCH / PEERS[name]
    venv = VENVS / name
    stamp = venv / ".installed"
    if stamp.is_file() and stamp.stat().st_mtime >= requirements.stat().st_mtime:
        return venv / "bin"
    log(f"creating {venv} from {requirements.name}")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "-r", str(requirements)],
        check=True,
    )
    stamp.touch()
    return venv / "bin"


_TRAIN = """
import json, sys
import pandas as pd
from mlcore.data import CHURN_SPEC, make_churn, split_frame
from mlcore.settings import TrainingSettings
from mlcore.train import save_trained_model, train_model
out = sys.argv[1]
split = split_frame(make_churn(20_000, seed=7), CHURN_SPEC, seed=7)
bundle = train_model(split.train, CHURN_SPEC, TrainingSettings(), validation=split.validation)
save_trained_model(bundle, out + "/model", reference=split.validation)
rows = split.test[list(CHURN_SPEC.features)].dropna().head(100)
rows.to_json(out + "/rows.json", orient="records")
json.dump({"numeric": list(CHURN_SPEC.numeric), "categorical": list(CHURN_SPEC.categorical)},
          open(out + "/columns.json", "w"))
"""


def ensure_model() -> None:
    """Train the benchmark's model once (generated churn data, the default algorithm)."""
    if (DATA / "model" / "metadata.json").is_file() and (DATA / "rows.json").is_file():
        return
    log(f"training the benchmark model into {DATA}")
    DATA.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    subprocess.run([str(MLCORE_PYTHON), "-c", _TRAIN, str(DATA)], check=True, env=env)


def bodies() -> dict[tuple[str, int], Path]:
    """The request bodies per (server kind, rows): the same rows in each server's format."""
    rows = json.loads((DATA / "rows.json").read_text())
    columns = json.loads((DATA / "columns.json").read_text())
    paths: dict[tuple[str, int], Path] = {}
    for size in SIZES:
        batch = rows[:size]
        instances = json.dumps({"instances": batch}).encode()
        # Open Inference Protocol (V2): one input per column, decoded to a DataFrame by the
        # pandas codec, categorical columns as strings; the output asked for is predict_proba.
        inputs = [
            {"name": c, "shape": [size], "datatype": "FP64", "data": [r[c] for r in batch]}
            for c in columns["numeric"]
        ] + [
            {
                "name": c,
                "shape": [size],
                "datatype": "BYTES",
                "data": [r[c] for r in batch],
                "parameters": {"content_type": "str"},
            }
            for c in columns["categorical"]
        ]
        v2 = json.dumps(
            {
                "inputs": inputs,
                "parameters": {"content_type": "pd"},
                "outputs": [{"name": "predict_proba"}],
            }
        ).encode()
        for kind, body in (("instances", instances), ("v2", v2)):
            path = DATA / f"body-{kind}-{size}.json"
            path.write_bytes(body)
            paths[(kind, size)] = path
    return paths


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Server:
    name: str
    argv: list[str]
    env: dict[str, str]
    url: str  # the scoring URL
    ping: str
    body_kind: str
    cwd: Path = ROOT
    process: subprocess.Popen[bytes] | None = None
    peak_rss: int = 0
    _sampler: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        logfile = (DATA / f"{self.name.split()[0]}.log").open("ab")
        self.process = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=self.cwd,
            stdout=logfile,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited during start-up; see {logfile.name}")
            try:
                with urllib.request.urlopen(self.ping, timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            raise RuntimeError(f"{self.name} did not become healthy in 180 s")
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def stop(self) -> None:
        self._stop.set()
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)

    def pids(self) -> list[int]:
        """The server's process and all its descendants."""
        assert self.process is not None
        parents: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                parents[int(entry.name)] = int(fields[1])
        tree, frontier = {self.process.pid}, [self.process.pid]
        while frontier:
            parent = frontier.pop()
            children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
            tree.update(children)
            frontier.extend(children)
        return sorted(tree)

    def cpu_seconds(self) -> float:
        total = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime (own, not children's)
        return total / TICKS

    def rss_bytes(self) -> int:
        total = 0
        for pid in self.pids():
            try:
                total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
            except OSError:
                continue
        return total

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            self.peak_rss = max(self.peak_rss, self.rss_bytes())


# One OpenMP/BLAS thread per process, for every server alike.
ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def servers(bins: dict[str, Path], workers: int, with_unbatched: bool) -> list[Server]:
    base_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MLCORE_", "SAGEMAKER_"))},
        **ONE_THREAD,
    }
    model = DATA / "model"

    def mlcore_server(name: str, *extra: str) -> Server:
        port = free_port()
        return Server(
            name,
            [
                str(MLCORE_PYTHON),
                "-m",
                "mlcore",
                "serve",
                "--model-dir",
                str(model),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(workers),
                *extra,
            ],
            {**base_env, "PYTHONPATH": str(ROOT / "src")},
            f"http://127.0.0.1:{port}/invocations",
            f"http://127.0.0.1:{port}/ping",
            "instances",
        )

    mlcore = mlcore_server("mlcore serve")

    folder = DATA / "mlserver"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    shutil.copy(model / "model.joblib", folder / "model.joblib")
    port, grpc, metrics = free_port(), free_port(), free_port()
    (folder / "settings.json").write_text(
        json.dumps(
            {
                "http_port": port,
                "grpc_port": grpc,
                "metrics_port": metrics,
                "parallel_workers": workers,
            }
        )
    )
    (folder / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "churn",
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib"},
            }
        )
    )
    mlserver = Server(
        "MLServer 1.7.1",
        [str(bins["mlserver"] / "mlserver"), "start", str(folder)],
        base_env,
        f"http://127.0.0.1:{port}/v2/models/churn/infer",
        f"http://127.0.0.1:{port}/v2/health/ready",
        "v2",
        cwd=folder,
    )

    port = free_port()
    azureml = Server(
        "azureml-inference-server-http 1.5.1",
        [
            str(bins["azureml"] / "azmlinfsrv"),
            "--entry_script",
            str(ROOT / "azure" / "scoring" / "score.py"),
            "--port",
            str(port),
            "--worker_count",
            str(workers),
        ],
        {
            **base_env,
            # score.py imports mlcore (src/) and the Azure package mlops_azure (azure/).
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "azure")]),
            "AZUREML_MODEL_DIR": str(model),
        },
        f"http://127.0.0.1:{port}/score",
        f"http://127.0.0.1:{port}/",
        "instances",
    )
    items = [mlcore, mlserver, azureml]
    if with_unbatched:
        # The same server scoring every request alone: how much of the difference batching makes.
        items.append(
            mlcore_server(
                "unbatched-mlcore (--max-batch-bytes 1)",
                "--max-batch-bytes",
                "1",
            )
        )
    return items


def check_answers(items: list[Server], paths: dict[tuple[str, int], Path]) -> None:
    """Every server must give the same probabilities for the same rows before it is timed."""
    scores: dict[str, list[float]] = {}
    for server in items:
        body = paths[(server.body_kind, 100)].read_bytes()
        request = urllib.request.Request(
            server.url, data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            document = json.loads(answer.read())
        if server.body_kind == "v2":
            output = document["outputs"][0]
            scores[server.name] = [float(v) for v in output["data"][1::2]]  # P(class 1)
        else:
            scores[server.name] = [float(p["score"]) for p in document["predictions"]]
    reference = next(iter(scores.values()))
    for name, values in scores.items():
        worst = max(abs(a - b) for a, b in zip(values, reference, strict=True))
        if worst > 1e-9:
            raise RuntimeError(f"{name} scores differ from mlcore's by up to {worst}")
    log(f"all {len(scores)} servers give the same scores on the same 100 rows")


def load(server: Server, body: Path, concurrency: int, seconds: float) -> dict[str, Any]:
    cpu_before = server.cpu_seconds()
    result = subprocess.run(
        [
            sys.executable,
            str(BENCH / "serve_load.py"),
            server.url,
            str(body),
            str(concurrency),
            str(seconds),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    cpu = server.cpu_seconds() - cpu_before
    record: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    # The CPU delta spans the warm-up second too: divide by every request it served.
    total_requests = record["requests"] * (1 + 1.0 / seconds)
    record["cpu_ms_per_request"] = (
        1000 * cpu / total_requests if record["requests"] else float("nan")
    )
    return record


def table(results: dict[tuple[str, int, int], list[dict[str, Any]]], items: list[Server]) -> str:
    def median(name: str, size: int, concurrency: int, key: str) -> float:
        return statistics.median(r[key] for r in results[(name, size, concurrency)])

    ours, peers = items[0].name, items[1:]
    lines = [
        "| rows | clients | server | rps | p50 ms | p99 ms | CPU ms/request | errors |",
        "|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    ratio_lines = [
        "| rows | clients | "
        + " | ".join(f"rps vs {p.name.split()[0]} | p99 vs {p.name.split()[0]}" for p in peers)
        + " |",
        "|---:|---:|" + "---:|---:|" * len(peers),
    ]
    for size in SIZES:
        for concurrency in CONCURRENCY:
            for server in items:
                errors = sum(r["errors"] for r in results[(server.name, size, concurrency)])
                lines.append(
                    f"| {size} | {concurrency} | {server.name} | "
                    f"{median(server.name, size, concurrency, 'rps'):.1f} | "
                    f"{median(server.name, size, concurrency, 'p50_ms'):.1f} | "
                    f"{median(server.name, size, concurrency, 'p99_ms'):.1f} | "
                    f"{median(server.name, size, concurrency, 'cpu_ms_per_request'):.2f} | {errors} |"
                )
            cells = []
            for peer in peers:
                rps = median(ours, size, concurrency, "rps") / median(
                    peer.name, size, concurrency, "rps"
                )
                p99 = median(ours, size, concurrency, "p99_ms") / median(
                    peer.name, size, concurrency, "p99_ms"
                )
                cells.append(f"{rps:.2f}x | {p99:.2f}x")
            ratio_lines.append(f"| {size} | {concurrency} | " + " | ".join(cells) + " |")
    memory = ["| server | peak RSS MiB (all its processes) |", "|---|---:|"] + [
        f"| {s.name} | {s.peak_rss / 2**20:,.0f} |" for s in items
    ]
    return "\n".join(
        [
            *lines,
            "",
            f"Ratios, {ours} / peer (rps above 1 is faster; p99 below 1 is better):",
            "",
            *ratio_lines,
            "",
            *memory,
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds (medians)")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per run")
    parser.add_argument(
        "--workers",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="worker processes of every server (default: the vCPU count, mlcore's container default)",
    )
    parser.add_argument(
        "--with-unbatched",
        action="store_true",
        help="also run mlcore with --max-batch-bytes 1 (every request scored alone)",
    )
    args = parser.parse_args()

    bins = {name: ensure_venv(name) for name in PEERS}
    ensure_model()
    paths = bodies()
    items = servers(bins, args.workers, args.with_unbatched)
    results: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
    loads: list[float] = []  # the machine's 1-minute load average before each round and at the end
    try:
        for server in items:
            log(f"starting {server.name}")
            server.start()
        check_answers(items, paths)
        for round_number in range(1, args.repeats + 1):
            loads.append(os.getloadavg()[0])
            for size in SIZES:
                for concurrency in CONCURRENCY:
                    for server in items:
                        record = load(
                            server, paths[(server.body_kind, size)], concurrency, args.seconds
                        )
                        results.setdefault((server.name, size, concurrency), []).append(record)
                        log(
                            f"round {round_number}: {server.name}, {size} row(s), {concurrency} "
                            f"clients: {record['rps']:.1f} rps, p99 {record['p99_ms']:.1f} ms, "
                            f"{record['errors']} errors"
                        )
        loads.append(os.getloadavg()[0])
    finally:
        for server in items:
            server.stop()
    text = table(results, items)
    header = (
        f"{args.repeats} interleaved rounds of {args.seconds:g} s per run; medians. Machine: "
        f"{os.cpu_count()} vCPUs, shared with other work while it ran (1-minute load average "
        f"{min(loads):.1f} to {max(loads):.1f}). Every server: {args.workers} worker processes, "
        "OMP_NUM_THREADS=1."
    )
    print(header + "\n\n" + text)
    (DATA / "results.md").write_text(header + "\n\n" + text + "\n")
    (DATA / "results.json").write_text(
        json.dumps({f"{k[0]}|{k[1]}|{k[2]}": v for k, v in results.items()}, indent=1) + "\n"
    )


if __name__ == "__main__":
    main()
