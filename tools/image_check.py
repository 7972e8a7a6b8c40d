"""`make image-check`: build both images and run every job in them as the clouds run them.

1. Builds the mlcore image and the Spark monitor image with buildah (chroot isolation: these
   machines have no Docker engine and `podman run` fails on setrlimit) on local stand-ins for
   their bases (:mod:`tools.stand_in_bases`), from the build context the CDK asset holds.
2. Synthesises the model-build pipeline definition from this repository's mlops.yaml
   (:func:`pipelines.sagemaker.definition.pipeline_definition`) and runs Prep, Train, Evaluate
   and EvaluateVsChampion in the image exactly as the definition asks: the container entry
   point and arguments, the /opt/ml paths of every channel, the environment. A small S3
   stand-in on disk resolves the definition's S3 URIs, parameters and step properties, and
   lays each input out as SageMaker does (an S3Prefix input: every object under the prefix).
3. Serves the trained model as SageMaker does (``<image> serve``, the model package's
   environment, the model extracted read-only under /opt/ml/model) as a non-root user, and
   checks /ping and /invocations; then stops it with SIGTERM and times the stop.
4. Deliberate failures: a missing settings file in Train, an invalid one in Prep, a refused
   gate in Evaluate; the reason must land where SageMaker reads it (/opt/ml/output/failure
   for training, /opt/ml/output/message for processing).
5. The Azure endpoint's scoring script (azure/scoring/score.py) in the mlcore image with the
   Azure serving lock installed, and the Spark image's drift app under Spark.

Prints each check and the build times and image sizes; exits 1 when any check fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "src")]
os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")

from tools.stand_in_bases import MLCORE_BASE, SPARK_BASE, ensure_base  # noqa: E402

MLCORE_IMAGE = "localhost/mlcore:image-check"
SPARK_IMAGE = "localhost/mlcore-spark:image-check"
SETTINGS = ROOT / "mlops.yaml"
EXECUTION_ID = "image-check-1"
SERVE_USER = "1000:1000"
HOST_CA = "/etc/ssl/certs/ca-certificates.crt"


# --- building --------------------------------------------------------------------------


@dataclass
class Built:
    image: str
    seconds: float
    size_mb: float


def image_size_mb(image: str) -> float:
    """The image's size as buildah reports it (uncompressed, all layers), in MB."""
    listing = subprocess.run(
        ["buildah", "images", "--json", image], capture_output=True, text=True, check=True
    ).stdout
    number, unit = json.loads(listing)[0]["size"].split()
    return float(number) * {"kB": 1e-3, "MB": 1.0, "GB": 1e3}[unit]


def build_context(build_files: tuple[str, ...], dest: Path) -> Path:
    """The files the CDK asset's build context holds, and nothing else."""
    for name in build_files:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(
                source, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
            )
        else:
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


@contextlib.contextmanager
def pip_trusts_host_ca() -> Iterator[list[str]]:
    """buildah volumes that let pip in a build trust the host's CA bundle (a TLS-inspecting
    proxy on these machines); nothing of it stays in the image."""
    with tempfile.TemporaryDirectory() as scratch:
        conf = Path(scratch) / "pip.conf"
        conf.write_text("[global]\ncert = /run/host-ca.pem\n")
        yield ["-v", f"{HOST_CA}:/run/host-ca.pem:ro", "-v", f"{conf}:/etc/pip.conf:ro"]


def build(
    dockerfile: str,
    build_files: tuple[str, ...],
    tag: str,
    *,
    base: str,
    build_args: dict[str, str],
) -> Built:
    with tempfile.TemporaryDirectory() as scratch, pip_trusts_host_ca() as volumes:
        context = build_context((*build_files, dockerfile), Path(scratch))
        command = [
            "buildah", "bud", "--isolation", "chroot", "--layers", "--quiet",
            "--from", base, "-f", dockerfile, "-t", tag, *volumes,
        ]  # fmt: skip
        for key, value in build_args.items():
            command += ["--build-arg", f"{key}={value}"]
        started = time.monotonic()
        for attempt in (1, 2):
            done = subprocess.run(
                [*command, str(context)],
                cwd=context,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            if done.returncode == 0:
                break
            sys.stderr.write(done.stderr)
            if attempt == 2 or TRANSIENT_BUILD_ERROR not in done.stderr:
                raise subprocess.CalledProcessError(done.returncode, done.args, stderr=done.stderr)
            print(
                f"buildah: transient chroot error building {tag}; building once more",
                file=sys.stderr,
            )
        seconds = time.monotonic() - started
    return Built(tag, seconds, image_size_mb(tag))


# buildah 1.28's chroot runner can fail to seal its in-memory copy of itself under load
# ("Close_Fd sealing memfd copy: Device or resource busy": seen once in a fresh-clone CI run,
# gone on the rerun, with the layers built so far reused). A build that fails with exactly
# this message is tried once more; any other failure stops the check.
TRANSIENT_BUILD_ERROR = "sealing memfd copy: Device or resource busy"


def build_images(extras: tuple[str, ...]) -> dict[str, Built]:
    from cdk.container_image import BUILD_CONTEXT, DOCKERFILE, EXTRAS_BUILD_ARG
    from cdk.monitoring import spark_image

    mlcore_base = ensure_base(MLCORE_BASE)
    spark_base = ensure_base(SPARK_BASE)
    return {
        "mlcore": build(
            DOCKERFILE,
            BUILD_CONTEXT,
            MLCORE_IMAGE,
            base=mlcore_base,
            build_args={EXTRAS_BUILD_ARG: ",".join(extras)},
        ),
        "spark": build(
            spark_image.DOCKERFILE,
            spark_image.BUILD_CONTEXT,
            SPARK_IMAGE,
            base=spark_base,
            build_args={"BASE_IMAGE": spark_base},
        ),
    }


# --- running a container as SageMaker does ----------------------------------------------


def image_config(image: str) -> dict[str, Any]:
    out = subprocess.run(
        ["buildah", "inspect", "--type", "image", image], capture_output=True, text=True, check=True
    ).stdout
    return dict(json.loads(out)["OCIv1"]["config"])


def container_argv(
    image: str, entrypoint: list[str] | None, arguments: list[str] | None
) -> list[str]:
    """What a container runs: a job's ContainerEntrypoint replaces the image's ENTRYPOINT (and
    its CMD); its arguments (or SageMaker's "train" / "serve") follow."""
    config = image_config(image)
    head = list(entrypoint) if entrypoint else list(config.get("Entrypoint") or [])
    tail = list(arguments) if arguments is not None else list(config.get("Cmd") or [])
    return head + tail


@contextlib.contextmanager
def container(image: str) -> Iterator[str]:
    name = subprocess.run(
        ["buildah", "from", "--pull-never", image], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        yield name
    finally:
        subprocess.run(["buildah", "rm", name], capture_output=True)


def run_command(
    name: str,
    argv: list[str],
    *,
    env: dict[str, str],
    volumes: list[tuple[Path, str, bool]],
    user: str | None = None,
) -> list[str]:
    command = ["buildah", "run", "--isolation", "chroot"]
    if user:
        command += ["--user", user]
    for key, value in env.items():
        command += ["-e", f"{key}={value}"]
    for host, inside, read_only in volumes:
        command += ["-v", f"{host}:{inside}{':ro' if read_only else ''}"]
    return [*command, name, "--", *argv]


@dataclass
class JobResult:
    returncode: int
    stderr: str
    opt_ml: Path
    seconds: float

    def reason(self, kind: str) -> str:
        path = self.opt_ml / "output" / ("failure" if kind == "training" else "message")
        return path.read_text() if path.is_file() else ""


# --- the S3 stand-in and the definition's expressions --------------------------------------


@dataclass
class S3:
    """Buckets as folders: s3://bucket/key is root/bucket/key."""

    root: Path

    def path(self, uri: str) -> Path:
        if not uri.startswith("s3://"):
            raise ValueError(f"not an S3 URI: {uri!r}")
        return self.root / uri[len("s3://") :]

    def download_prefix(self, uri: str, local: Path) -> int:
        """SageMaker's S3Prefix input: every object whose key starts with the prefix, at its
        key relative to the prefix (an object named exactly: under its last key segment)."""
        bucket_key = uri[len("s3://") :]
        bucket, _, prefix = bucket_key.partition("/")
        count = 0
        for file in sorted((self.root / bucket).rglob("*")):
            key = file.relative_to(self.root / bucket).as_posix()
            if file.is_dir() or not key.startswith(prefix):
                continue
            relative = key[len(prefix) :].lstrip("/") or key.rsplit("/", 1)[-1]
            (local / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, local / relative)
            count += 1
        if count == 0:
            raise FileNotFoundError(f"no object under {uri} (SageMaker fails the job so)")
        return count

    def upload_dir(self, local: Path, uri: str) -> None:
        target = self.path(uri.rstrip("/"))
        shutil.copytree(local, target, dirs_exist_ok=True)


@dataclass
class Pipeline:
    """The synthesised definition, evaluated as SageMaker evaluates it for one execution."""

    definition: dict[str, Any]
    s3: S3
    properties: dict[str, str] = field(default_factory=dict)

    @property
    def steps(self) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        pending = list(self.definition["Steps"])
        while pending:
            step = pending.pop()
            found[step["Name"]] = step
            pending += step["Arguments"].get("IfSteps", []) + step["Arguments"].get("ElseSteps", [])
        return found

    def value(self, expression: Any) -> Any:
        if isinstance(expression, dict) and "Get" in expression:
            path = expression["Get"]
            if path == "Execution.PipelineExecutionId":
                return EXECUTION_ID
            if path.startswith("Parameters."):
                name = path.split(".", 1)[1]
                (parameter,) = [p for p in self.definition["Parameters"] if p["Name"] == name]
                return parameter["DefaultValue"]
            if path in self.properties:
                return self.properties[path]
            raise KeyError(f"the check has no value for {path}")
        if isinstance(expression, dict) and "Std:Join" in expression:
            join = expression["Std:Join"]
            return join["On"].join(str(self.value(v)) for v in join["Values"])
        if isinstance(expression, dict):
            return {k: self.value(v) for k, v in expression.items()}
        if isinstance(expression, list):
            return [self.value(v) for v in expression]
        return expression


# --- the jobs -----------------------------------------------------------------------------


def _fresh_opt_ml(work: Path, job: str) -> Path:
    opt_ml = work / "jobs" / job / "opt_ml"
    shutil.rmtree(opt_ml.parent, ignore_errors=True)
    (opt_ml / "output").mkdir(parents=True)
    return opt_ml


def run_processing(
    pipeline: Pipeline, step: str, work: Path, *, request: dict[str, Any] | None = None
) -> JobResult:
    """A processing step (or a monitor's CreateProcessingJob request) in the image."""
    args = pipeline.value(request or pipeline.steps[step]["Arguments"])
    opt_ml = _fresh_opt_ml(work, step)
    for channel in args.get("ProcessingInputs", []):
        s3_input = channel["S3Input"]
        local = opt_ml / Path(s3_input["LocalPath"]).relative_to("/opt/ml")
        local.mkdir(parents=True, exist_ok=True)
        if s3_input.get("S3DataType") == "ManifestFile":
            manifest = json.loads(pipeline.s3.path(s3_input["S3Uri"]).read_text())
            prefix, keys = manifest[0]["prefix"], manifest[1:]
            for key in keys:
                (local / key).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(pipeline.s3.path(prefix + key), local / key)
        else:
            pipeline.s3.download_prefix(s3_input["S3Uri"], local)
    outputs = args.get("ProcessingOutputConfig", {}).get("Outputs", [])
    for output in outputs:
        (opt_ml / Path(output["S3Output"]["LocalPath"]).relative_to("/opt/ml")).mkdir(
            parents=True, exist_ok=True
        )
    # SageMaker writes the job's description here; mlcore tells a processing job by it.
    (opt_ml / "config").mkdir(exist_ok=True)
    (opt_ml / "config" / "processingjobconfig.json").write_text(json.dumps(args))
    app = args["AppSpecification"]
    image = MLCORE_IMAGE if "spark" not in app.get("ImageUri", "") else SPARK_IMAGE
    argv = container_argv(image, app.get("ContainerEntrypoint"), app.get("ContainerArguments", []))
    result = _run_job(image, argv, args.get("Environment") or {}, opt_ml)
    if result.returncode == 0:
        for output in outputs:
            local = opt_ml / Path(output["S3Output"]["LocalPath"]).relative_to("/opt/ml")
            pipeline.s3.upload_dir(local, output["S3Output"]["S3Uri"])
    return result


def run_training(pipeline: Pipeline, work: Path, *, step: str = "Train") -> JobResult:
    """The training step in the image: channels under /opt/ml/input/data, the hyperparameters
    and input configuration SageMaker writes, the job variables it sets; then model.tar.gz."""
    args = pipeline.value(pipeline.steps[step]["Arguments"])
    opt_ml = _fresh_opt_ml(work, step)
    config = opt_ml / "input" / "config"
    config.mkdir(parents=True)
    channels = {}
    for channel in args["InputDataConfig"]:
        local = opt_ml / "input" / "data" / channel["ChannelName"]
        local.mkdir(parents=True)
        pipeline.s3.download_prefix(channel["DataSource"]["S3DataSource"]["S3Uri"], local)
        channels[channel["ChannelName"]] = {
            "TrainingInputMode": channel.get("InputMode", "File"),
            "S3DistributionType": "FullyReplicated",
            "RecordWrapperType": "None",
        }
    (config / "hyperparameters.json").write_text(json.dumps(args.get("HyperParameters", {})))
    (config / "inputdataconfig.json").write_text(json.dumps(channels))
    (config / "resourceconfig.json").write_text(
        json.dumps(
            {"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"}
        )
    )
    (opt_ml / "model").mkdir()
    spec = args["AlgorithmSpecification"]
    # SageMaker runs "<image> train" unless the job names a ContainerEntrypoint, which then
    # runs with the ContainerArguments alone (CreateTrainingJob, AlgorithmSpecification).
    default = [] if spec.get("ContainerEntrypoint") else ["train"]
    argv = container_argv(
        MLCORE_IMAGE, spec.get("ContainerEntrypoint"), spec.get("ContainerArguments", default)
    )
    env = {
        **(args.get("Environment") or {}),
        "TRAINING_JOB_NAME": f"pipelines-{EXECUTION_ID}-{step}",
        "TRAINING_JOB_ARN": f"arn:aws:sagemaker:eu-west-1:123456789012:training-job/pipelines-{EXECUTION_ID}-{step}",
    }
    result = _run_job(MLCORE_IMAGE, argv, env, opt_ml)
    if result.returncode == 0:
        # SageMaker packs /opt/ml/model into model.tar.gz under the output path.
        uri = f"{args['OutputDataConfig']['S3OutputPath'].rstrip('/')}/{env['TRAINING_JOB_NAME']}/output/model.tar.gz"
        target = pipeline.s3.path(uri)
        target.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(target, "w:gz") as archive:
            for item in sorted((opt_ml / "model").iterdir()):
                archive.add(item, arcname=item.name)
        pipeline.properties[f"Steps.{step}.ModelArtifacts.S3ModelArtifacts"] = uri
    return result


def _run_job(image: str, argv: list[str], env: dict[str, str], opt_ml: Path) -> JobResult:
    with container(image) as name:
        started = time.monotonic()
        done = subprocess.run(
            run_command(name, argv, env=env, volumes=[(opt_ml, "/opt/ml", False)]),
            capture_output=True,
            text=True,
        )
        return JobResult(done.returncode, done.stderr, opt_ml, time.monotonic() - started)


# --- serving --------------------------------------------------------------------------------


def free_port(preferred: int) -> int:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            probe.bind(("127.0.0.1", 0))
            return int(probe.getsockname()[1])


def http(
    method: str, url: str, body: bytes | None = None, content_type: str = ""
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method)
    if content_type:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@dataclass
class Serving:
    cold_start_s: float
    ping: int
    invocations: int
    body: str
    stop_s: float
    stderr: str


def serve_and_check(
    image: str,
    model_dir: Path,
    env: dict[str, str],
    *,
    traffic: list[dict[str, Any]] | None = None,
    capture: Path | None = None,
) -> Serving:
    """``<image> serve`` as a non-root user over a read-only model directory: the time from
    container start to a 200 on /ping, one CSV request, and the time SIGTERM takes to stop it.

    Chroot isolation shares the host's network: the server listens on the host's 8080 (another
    port through SAGEMAKER_BIND_TO_PORT when 8080 is taken, said in the report)."""
    port = free_port(8080)
    env = dict(env)
    if port != 8080:
        env["SAGEMAKER_BIND_TO_PORT"] = str(port)
    argv = container_argv(image, None, ["serve"])
    with container(image) as name, tempfile.TemporaryFile("w+") as log:
        command = run_command(
            name, argv, env=env, volumes=[(model_dir, "/opt/ml/model", True)], user=SERVE_USER
        )
        started = time.monotonic()
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        ping, cold = 0, float("nan")
        try:
            while time.monotonic() - started < 120 and process.poll() is None:
                with contextlib.suppress(OSError):
                    ping, _ = http("GET", f"http://127.0.0.1:{port}/ping")
                    if ping == 200:
                        cold = time.monotonic() - started
                        break
                time.sleep(0.05)
            statuses, body = [0], b""
            if ping == 200:
                # The model's own sample request (JSON), and its rows as headerless CSV in the
                # feature order, SageMaker's two content types for this model package.
                sample = json.loads((model_dir / "sample_request.json").read_text())
                rows = sample["instances"]
                csv = "\n".join(",".join(str(v) for v in row.values()) for row in rows) + "\n"
                statuses = []
                for payload, content_type in (
                    (json.dumps(sample).encode(), "application/json"),
                    (csv.encode(), "text/csv"),
                ):
                    status, body = http(
                        "POST", f"http://127.0.0.1:{port}/invocations", payload, content_type
                    )
                    statuses.append(status)
                if traffic and capture:
                    record_traffic(f"http://127.0.0.1:{port}/invocations", traffic, capture)
        finally:
            stopping = time.monotonic()
            _signal_job(process, argv[0], signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                for pid in _descendants(process.pid):
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
                process.wait()
            stop = time.monotonic() - stopping
        log.seek(0)
        return Serving(
            cold, ping, max(statuses), body.decode(errors="replace")[:300], stop, log.read()[-2000:]
        )


def record_traffic(url: str, rows: list[dict[str, Any]], capture: Path, batch: int = 50) -> None:
    """Send ``rows`` in JSON batches and keep each request and response as SageMaker's data
    capture records them (one JSON line per request, captureData with endpointInput/Output)."""
    lines = []
    for start in range(0, len(rows), batch):
        request = json.dumps({"instances": rows[start : start + batch]})
        status, response = http("POST", url, request.encode(), "application/json")
        if status != 200:
            raise RuntimeError(f"/invocations answered {status}: {response[:300]!r}")
        lines.append(
            json.dumps(
                {
                    "captureData": {
                        "endpointInput": {
                            "observedContentType": "application/json",
                            "mode": "INPUT",
                            "data": request,
                            "encoding": "JSON",
                        },
                        "endpointOutput": {
                            "observedContentType": "application/json",
                            "mode": "OUTPUT",
                            "data": response.decode(),
                            "encoding": "JSON",
                        },
                    },
                    "eventMetadata": {
                        "eventId": f"e{start}",
                        "inferenceTime": "2026-03-02T09:30:00Z",
                    },
                    "eventVersion": "0",
                }
            )
        )
    capture.write_text("\n".join(lines) + "\n")


def _children(pid: int) -> list[str]:
    """``pid``'s child processes, whichever of its threads started them (buildah is Go: its
    threads each have their own children file)."""
    return [
        c
        for task in Path(f"/proc/{pid}/task").iterdir()
        for c in (task / "children").read_text().split()
    ]


def _descendants(root: int) -> list[int]:
    found, pending = [], [root]
    while pending:
        pid = pending.pop()
        with contextlib.suppress(OSError):
            children = [int(c) for c in _children(pid)]
            found += children
            pending += children
    return found


def _signal_job(process: subprocess.Popen[Any], first: str, signum: int) -> None:
    """Signal the container's first process (``first``: its argv[0]), as a runtime does on a
    stop. Chroot isolation has no PID namespace: it is found among buildah's descendants."""
    pending = [process.pid]
    while pending:
        pid = pending.pop()
        with contextlib.suppress(OSError):
            argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
            if argv0 == first:
                os.kill(pid, signum)
                return
            pending += map(int, _children(pid))


# --- the whole check ------------------------------------------------------------------------


@dataclass
class Report:
    lines: list[tuple[bool, str, str]] = field(default_factory=list)

    def check(self, ok: bool, name: str, detail: str = "") -> bool:
        self.lines.append((ok, name, detail))
        print(
            f"{'PASS' if ok else 'FAIL'}  {name}" + (f"  ({detail})" if detail else ""), flush=True
        )
        return ok

    @property
    def failed(self) -> int:
        return sum(not ok for ok, _, _ in self.lines)


def synthesise(settings_path: Path) -> tuple[dict[str, Any], Any]:
    from mlcore.settings import load_settings
    from pipelines.sagemaker.definition import PipelineTargets, pipeline_definition

    settings = load_settings(settings_path)
    targets = PipelineTargets(
        role_arn="arn:aws:iam::123456789012:role/jobs",
        image_uri="123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlcore:check",
        artifact_bucket="artifacts",
        model_package_group_name="churn-dev-models",
        default_input_data_url="s3://data/training-data/",
        region="eu-west-1",
        settings_s3_uri=f"s3://cdk-assets/{settings_path.name}",
        check_function_arn="arn:aws:lambda:eu-west-1:123456789012:function:check",
    )
    definition = json.loads(
        pipeline_definition("churn-dev-model-build", settings=settings, targets=targets)
    )
    return definition, settings


def tail(text: str, lines: int = 6) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])


def check_pipeline(report: Report, work: Path) -> Pipeline:
    from mlcore.data.synthetic import make_churn

    definition, _ = synthesise(SETTINGS)
    s3 = S3(work / "s3")
    pipeline = Pipeline(definition, s3)
    # The deployment's inputs: the settings artifact and a churn data set under the data prefix.
    settings_uri = pipeline.value(pipeline.steps["Prep"]["Arguments"])["ProcessingInputs"]
    for channel in settings_uri:
        if channel["InputName"] == "settings":
            s3.path(channel["S3Input"]["S3Uri"]).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(SETTINGS, s3.path(channel["S3Input"]["S3Uri"]))
    data_dir = s3.path(pipeline.value({"Get": "Parameters.InputDataUrl"}))
    data_dir.mkdir(parents=True, exist_ok=True)
    frame = make_churn(3000, seed=7)
    frame.to_parquet(data_dir / "churn.parquet")

    prep = run_processing(pipeline, "Prep", work)
    report.check(
        prep.returncode == 0,
        "Prep (mlcore prep, ContainerEntrypoint)",
        f"{prep.seconds:.1f} s; {tail(prep.stderr, 2)}",
    )
    train = run_training(pipeline, work)
    report.check(
        train.returncode == 0,
        "Train (ContainerEntrypoint mlcore train, /opt/ml/input)",
        f"{train.seconds:.1f} s; {tail(train.stderr, 2)}",
    )
    model_files = (
        sorted(p.name for p in (train.opt_ml / "model").iterdir()) if train.returncode == 0 else []
    )
    report.check(bool(model_files), "Train wrote /opt/ml/model", ", ".join(model_files)[:120])
    evaluate = run_processing(pipeline, "Evaluate", work)
    report.check(
        evaluate.returncode == 0,
        "Evaluate (model.tar.gz input, gate.json)",
        f"{evaluate.seconds:.1f} s; {tail(evaluate.stderr, 2)}",
    )
    # The champion: the model just trained, as CheckInputs would find it approved.
    pipeline.properties["Steps.CheckInputs.OutputParameters['champion_model_url']"] = (
        pipeline.properties.get(
            "Steps.Train.ModelArtifacts.S3ModelArtifacts", "s3://artifacts/none"
        )
    )
    versus = run_processing(pipeline, "EvaluateVsChampion", work)
    report.check(
        versus.returncode == 0,
        "EvaluateVsChampion (--champion-dir)",
        f"{versus.seconds:.1f} s; {tail(versus.stderr, 2)}",
    )

    # Serving as the registered model package asks: its container environment, `serve`.
    if train.returncode == 0:
        inference = pipeline.steps["RegisterModel"]["Arguments"]["InferenceSpecification"]
        (container_spec,) = pipeline.value(inference)["Containers"]
        model_dir = work / "serving" / "model"
        shutil.rmtree(model_dir, ignore_errors=True)
        model_dir.mkdir(parents=True)
        with tarfile.open(s3.path(container_spec["ModelDataUrl"])) as archive:
            archive.extractall(model_dir, filter="data")
        for path in [model_dir, *model_dir.rglob("*")]:
            path.chmod(0o555 if path.is_dir() else 0o444)
        features = list(json.loads((model_dir / "sample_request.json").read_text())["instances"][0])
        traffic = json.loads(frame[features].tail(600).to_json(orient="records"))
        served = serve_and_check(
            MLCORE_IMAGE,
            model_dir,
            container_spec.get("Environment", {}),
            traffic=traffic,
            capture=work / "serving" / "capture.jsonl",
        )
        report.check(
            served.ping == 200,
            "serve: /ping 200 as user 1000, model read-only",
            f"cold start {served.cold_start_s:.2f} s; {tail(served.stderr, 2) if served.ping != 200 else ''}",
        )
        report.check(
            served.invocations == 200,
            "serve: /invocations 200 on JSON and on CSV",
            served.body[:120],
        )
        report.check(
            served.stop_s < 10,
            "serve: SIGTERM stops the container promptly",
            f"{served.stop_s:.2f} s",
        )
    return pipeline


def check_failures(report: Report, pipeline: Pipeline, work: Path) -> None:
    """Deliberate failures: the reason must be where SageMaker reads it."""
    steps = pipeline.steps
    settings_uri = next(
        c["S3Input"]["S3Uri"]
        for c in pipeline.value(steps["Prep"]["Arguments"])["ProcessingInputs"]
        if c["InputName"] == "settings"
    )
    settings_path = pipeline.s3.path(settings_uri)
    good = settings_path.read_text()
    try:
        settings_path.write_text(good.replace("training:\n", "training:\n  no_such_key: 1\n", 1))
        prep = run_processing(pipeline, "Prep", work)
        message = prep.reason("processing")
        report.check(
            prep.returncode != 0 and "no_such_key" in message,
            "bad settings: Prep's reason in /opt/ml/output/message",
            message[:160] or tail(prep.stderr, 2),
        )
        # A settings file the job cannot find: the training job names the path it looked at.
        settings_path.unlink()
        settings_path.mkdir()
        (settings_path / "other.yaml").write_text(good)
        train = run_training(pipeline, work)
        failure = train.reason("training")
        report.check(
            train.returncode != 0 and bool(failure),
            "missing settings: Train's reason in /opt/ml/output/failure",
            failure[:160] or tail(train.stderr, 2),
        )
    finally:
        if settings_path.is_dir():
            shutil.rmtree(settings_path)
        settings_path.write_text(good)
    # A gate no model can pass: Evaluate refuses, and says so where the console shows it.
    gated = good.replace("min_metrics: {auc: 0.70}", "min_metrics: {auc: 0.9999}")
    if gated == good:
        report.check(False, "gate refusal", "could not raise the auc floor in mlops.yaml")
        return
    try:
        settings_path.write_text(gated)
        evaluate = run_processing(pipeline, "Evaluate", work)
        message = evaluate.reason("processing")
        report.check(
            "quality gate failed" in message,
            "gate refusal: Evaluate's reason in /opt/ml/output/message",
            message[:160] or tail(evaluate.stderr, 2),
        )
    finally:
        settings_path.write_text(good)


def check_azure_scoring(report: Report, pipeline: Pipeline, work: Path) -> None:
    """azure/scoring/score.py in the mlcore image with the Azure serving lock installed on top,
    as Azure ML's inference server calls it: init() with AZUREML_MODEL_DIR, then run()."""
    model_dir = work / "serving" / "model"
    if not model_dir.is_dir():
        report.check(False, "Azure scoring", "no trained model")
        return
    code = work / "azure-code"
    shutil.rmtree(code, ignore_errors=True)
    sys.path.insert(0, str(ROOT / "azure"))
    from mlops_azure.definitions import stage_serving_code

    stage_serving_code(code)
    script = (
        "import json, sys\n"
        "sys.path.insert(0, '/var/azureml-app')\n"
        "import score\n"
        "score.init()\n"
        "print(json.dumps(score.run(sys.argv[1]), default=str)[:300])\n"
    )
    # The model's own sample request: {"instances": [...]}, the body Azure's endpoint takes.
    sample = (model_dir / "sample_request.json").read_text()
    with container(MLCORE_IMAGE) as name, pip_trusts_host_ca() as ca:
        lock = ROOT / "lock" / "azure-serving.txt"
        volumes = [
            (Path(ca[1].split(":")[0]), "/run/host-ca.pem", True),
            (lock, "/tmp/azure-serving.txt", True),
        ]
        conf = ca[3].split(":")[0]
        install = subprocess.run(
            run_command(
                name,
                ["pip", "install", "--quiet", "--require-hashes", "-r", "/tmp/azure-serving.txt"],
                env={"PIP_CONFIG_FILE": "/run/pip.conf"},
                volumes=[*volumes, (Path(conf), "/run/pip.conf", True)],
            ),
            capture_output=True,
            text=True,
        )
        report.check(
            install.returncode == 0,
            "Azure serving lock installs in the image (--require-hashes)",
            tail(install.stderr, 2),
        )
        done = subprocess.run(
            run_command(
                name,
                ["python", "-c", script, sample],
                env={
                    "AZUREML_MODEL_DIR": "/var/azureml-app/model",
                    "AZUREML_ENTRY_SCRIPT": "score.py",
                },
                volumes=[
                    (code, "/var/azureml-app", False),
                    (model_dir, "/var/azureml-app/model", True),
                ],
                user=SERVE_USER,
            ),
            capture_output=True,
            text=True,
        )
        report.check(
            done.returncode == 0 and '"predictions"' in done.stdout,
            "Azure score.py init() and run() in the image",
            (done.stdout.strip().splitlines() or [tail(done.stderr, 3)])[-1][:200],
        )


def monitor_request(pipeline: Pipeline, work: Path, engine: str) -> dict[str, Any]:
    """The drift monitor's CreateProcessingJob request as the starter Lambda makes it
    (:func:`pipelines.monitoring.jobs.start_monitor_run`), against moto's S3, SageMaker, SSM
    and DynamoDB holding one hour of captured traffic; the objects it names are then copied
    into the S3 stand-in the job reads from."""
    from datetime import UTC, datetime

    import boto3
    from moto import mock_aws

    from pipelines.monitoring import jobs

    # (A bucket named "monitoring" would reach moto's CloudWatch, whose host name that is.)
    bucket, endpoint, table, parameter = (
        "monitor-data",
        "churn-dev",
        "monitor-state",
        "/mlops/churn/dev/package",
    )
    hour = datetime(2026, 3, 2, 9, tzinfo=UTC)
    model_uri = pipeline.properties["Steps.Train.ModelArtifacts.S3ModelArtifacts"]
    with mock_aws():
        clients = {
            n: boto3.client(n, region_name="eu-west-1")
            for n in ("s3", "sagemaker", "ssm", "dynamodb")
        }
        clients["s3"].create_bucket(
            Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
        clients["dynamodb"].create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        # The served model's own capture (serve_and_check recorded requests and responses).
        capture = (work / "serving" / "capture.jsonl").read_bytes()
        clients["s3"].put_object(
            Bucket=bucket,
            Key=f"data-capture/{endpoint}/AllTraffic/{hour:%Y/%m/%d/%H}/part.jsonl",
            Body=capture,
        )
        clients["s3"].put_object(
            Bucket=bucket, Key="model/model.tar.gz", Body=pipeline.s3.path(model_uri).read_bytes()
        )
        clients["s3"].put_object(
            Bucket=bucket, Key=f"assets/{SETTINGS.name}", Body=SETTINGS.read_bytes()
        )
        clients["sagemaker"].create_model_package_group(ModelPackageGroupName="churn-models")
        package = clients["sagemaker"].create_model_package(
            ModelPackageGroupName="churn-models",
            InferenceSpecification={
                "Containers": [
                    {"Image": "mlcore", "ModelDataUrl": f"s3://{bucket}/model/model.tar.gz"}
                ],
                "SupportedContentTypes": ["application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
            ModelApprovalStatus="Approved",
        )["ModelPackageArn"]
        clients["ssm"].put_parameter(Name=parameter, Value=package, Type="String")
        requests: list[dict[str, Any]] = []
        clients["sagemaker"].meta.events.register(
            "provide-client-params.sagemaker.CreateProcessingJob",
            lambda params, **_: requests.append(json.loads(json.dumps(params))),
        )
        config = jobs.MonitorJobConfig(
            endpoint_name=endpoint,
            capture_s3_uri=f"s3://{bucket}/data-capture",
            reports_s3_uri=f"s3://{bucket}/reports/{endpoint}",
            model_package_parameter=parameter,
            settings_s3_uri=f"s3://{bucket}/assets/{SETTINGS.name}",
            image_uri="123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlcore:check",
            role_arn="arn:aws:iam::123456789012:role/monitor-job",
            state_table=table,
            kms_key_arn="arn:aws:kms:eu-west-1:123456789012:key/abc",
            drift_engine=engine,  # type: ignore[arg-type]
            spark_image_uri="123456789012.dkr.ecr.eu-west-1.amazonaws.com/spark-monitor:check",
            spark_min_capture_mb=0,
        )
        jobs.start_monitor_run(
            config,
            monitor="drift",
            scheduled_time=hour.replace(hour=10, minute=5),
            **{n: clients[n] for n in ("s3", "sagemaker", "ssm", "dynamodb")},
        )
        (request,) = requests
        for page in clients["s3"].get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                target = pipeline.s3.path(f"s3://{bucket}/{item['Key']}")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(
                    clients["s3"].get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                )
    return request


def check_drift_monitor(report: Report, pipeline: Pipeline, work: Path) -> None:
    if (
        "Steps.Train.ModelArtifacts.S3ModelArtifacts" not in pipeline.properties
        or not (work / "serving" / "capture.jsonl").is_file()
    ):
        report.check(False, "drift monitor", "no trained model or no capture")
        return
    request = monitor_request(pipeline, work, "streaming")
    result = run_processing(pipeline, "DriftMonitor", work, request=request)
    reports = sorted(
        p.name for p in (result.opt_ml / "processing" / "output").rglob("*") if p.is_file()
    )
    report.check(
        result.returncode in (0, 3) and bool(reports),
        "drift monitor (the starter's request, mlcore drift --streaming over the capture manifest)",
        f"exit {result.returncode}, {result.seconds:.1f} s; {', '.join(reports)[:100] or tail(result.stderr, 3)}",
    )


def check_spark_image(report: Report) -> None:
    """The Spark image imports mlcore on its Python 3.12 and runs the drift app under Spark."""
    with container(SPARK_IMAGE) as name:
        done = subprocess.run(
            run_command(
                name,
                [
                    "/usr/local/bin/python3",
                    "-c",
                    "import mlcore, numpy, pyspark; print(mlcore.__version__, numpy.__version__, pyspark.__version__)",
                ],
                env={},
                volumes=[],
            ),
            capture_output=True,
            text=True,
        )
        report.check(
            done.returncode == 0,
            "Spark image: mlcore, numpy and pyspark import on Python 3.12",
            (done.stdout.strip() or tail(done.stderr, 3)),
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make image-check", description=__doc__)
    parser.add_argument("--work", type=Path, default=ROOT / "out" / "image-check")
    parser.add_argument("--skip-build", action="store_true", help="use the images built last time")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit(
            "make image-check needs root: buildah with chroot isolation (CI runs as root)"
        )
    for tool in ("buildah", "debootstrap"):
        if shutil.which(tool) is None:
            raise SystemExit(
                f"{tool} is missing: apt-get install buildah debootstrap (.ci/run does)"
            )
    from cdk.container_image import image_extras
    from mlcore.settings import load_settings

    # The extras the CDK app builds the image with for this mlops.yaml (a tracking server
    # in dev: MLflow's client and the SageMaker plugin).
    extras = image_extras(load_settings(SETTINGS), tracking_server=True)
    report = Report()
    started = time.monotonic()
    if not args.skip_build:
        for name, built in build_images(extras).items():
            report.check(
                True, f"build {name} image", f"{built.seconds:.0f} s, {built.size_mb:.0f} MB"
            )
    args.work.mkdir(parents=True, exist_ok=True)
    pipeline = check_pipeline(report, args.work)
    check_failures(report, pipeline, args.work)
    check_drift_monitor(report, pipeline, args.work)
    check_azure_scoring(report, pipeline, args.work)
    check_spark_image(report)
    print(
        f"\n{len(report.lines) - report.failed} of {len(report.lines)} checks passed in {time.monotonic() - started:.0f} s"
    )
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
