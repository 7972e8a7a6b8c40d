"""The dependency locks: every package every environment installs, at one version, with hashes.

``requirements.txt`` names the direct pins (what CI, the images and the Azure environments ask
for); ``lock/`` holds what they resolve to, the whole tree, each file with a sha256 of every
distribution pip may take. Every install (Makefile, both Dockerfiles, the Azure ML conda
environments) reads a file here with hash checking on, so nothing resolves anew in the cloud: a
version CI never installed cannot be installed there.

Why uv's ``pip compile --generate-hashes``: it writes plain pip requirements files (pip, conda's
pip section and Docker builds read them as they are, with no uv at install time), it resolves
for another Python or platform than the one it runs on (the Spark image is Python 3.12, CI
3.11), it takes the CI lock as constraints so each narrower lock holds CI's very versions, and
it resolves this tree in about a minute where pip-tools takes several. uv is on PyPI, pinned in
requirements.txt like the rest of the tool chain. pip's own ``pip lock`` (25.1+) writes
pylock.toml, which neither pip install nor conda reads yet.

``python -m tools.locks`` (``make lock``) re-resolves every file; run it after editing
requirements.txt, pyproject.toml or azure/requirements-*.txt, and commit ``lock/``.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK_DIR = ROOT / "lock"
CI_LOCK = LOCK_DIR / "ci.txt"
#: Where the images and jobs run: CPython on x86-64 Linux with glibc (Debian bookworm in the
#: mlcore image, Amazon Linux 2023 in the Spark image, Ubuntu 22.04 in Azure ML's base image).
PLATFORM = "x86_64-manylinux_2_28"
#: The mlcore extras a job may need (pyproject [project.optional-dependencies]); each has a lock
#: of what it adds to the runtime lock, so an image or environment installs exactly the extras
#: its settings need and still nothing CI did not install.
EXTRAS = ("tracking", "tracking-client", "xgboost", "lightgbm", "spark", "sagemaker-mlflow")

#: Packages whose version in an Azure ML environment cannot be CI's, and why. Everything else
#: in those environments is held to the CI lock; tests/test_locks.py fails on any other
#: difference, and on an entry here that no longer differs.
AZURE_DIFFERENCES: dict[str, dict[str, str]] = {
    "azure-job": {
        "mlflow-skinny": "azureml-mlflow 1.62.0.post6 requires mlflow-skinny<=3.15.0",
        "azure-storage-blob": "azureml-mlflow 1.62.0.post6 requires azure-storage-blob<=12.27.1",
        "pytz": "azureml-mlflow 1.62.0.post6 requires pytz<=2025.2",
    },
    "azure-serving": {
        "pydantic": "azureml-inference-server-http 1.5.1 requires pydantic~=2.12.0",
        "pydantic-core": "pydantic 2.12.5 requires its own pydantic-core",
        "opentelemetry-api": "azureml-inference-server-http 1.5.1 pins opentelemetry-api==1.33.0",
        "opentelemetry-sdk": "azureml-inference-server-http 1.5.1 pins opentelemetry-sdk==1.33.0",
        "opentelemetry-semantic-conventions": "opentelemetry-sdk 1.33.0 pins 0.54b0",
        "azure-monitor-opentelemetry-exporter": "the releases that take opentelemetry 1.33",
        "importlib-metadata": "opentelemetry-api 1.33.0 requires importlib-metadata<8.7",
        "wrapt": "the opentelemetry 1.33 line requires wrapt<2",
    },
}


@dataclass(frozen=True)
class Lock:
    """One lock file: what it resolves and for which Python."""

    name: str
    inputs: tuple[str, ...]
    python: str = "3.11"
    extra: str | None = None
    #: Whether the CI lock constrains it (every lock but the CI lock itself).
    constrained: bool = True
    purpose: str = ""

    @property
    def path(self) -> Path:
        return LOCK_DIR / f"{self.name}.txt"


LOCKS: tuple[Lock, ...] = (
    Lock(
        "ci",
        ("requirements.txt", "pyproject.toml"),
        constrained=False,
        purpose="make install: tests, lint, synth and the cloud tool chains",
    ),
    Lock("runtime", ("pyproject.toml",), purpose="mlcore's runtime: the mlcore image, make demo"),
    *(
        Lock(
            f"extra-{extra}",
            ("pyproject.toml",),
            extra=extra,
            purpose=f"what mlcore[{extra}] adds to runtime.txt",
        )
        for extra in EXTRAS
    ),
    Lock(
        "build",
        ("lock/build.in",),
        purpose="what the images build mlcore with (pyproject [build-system] requires)",
    ),
    Lock(
        "build-py312",
        ("lock/build.in",),
        python="3.12",
        purpose="what the Spark image builds mlcore with",
    ),
    Lock(
        "runtime-py312",
        ("pyproject.toml",),
        python="3.12",
        purpose="mlcore's runtime on the Spark image's Python 3.12",
    ),
    Lock(
        "azure-control",
        ("azure/requirements-control.txt", "pyproject.toml"),
        purpose="make install-azure: the Azure stages of pipelines/azure-pipelines.yml",
    ),
    Lock(
        "azure-job",
        ("pyproject.toml", "azure/requirements-job.txt"),
        purpose="the Azure ML job environment and the serverless Spark session",
    ),
    Lock(
        "azure-serving",
        ("pyproject.toml", "azure/requirements-serving.txt"),
        purpose="the Azure ML endpoint's environment",
    ),
    Lock(
        "azure-batch",
        ("pyproject.toml", "azure/requirements-batch.txt"),
        purpose="the scheduled Azure batch run: mlcore's runtime plus azure-ai-ml to invoke the "
        "endpoint (without azureml-mlflow, whose azure-storage-blob<=12.27.1 azure-ai-ml 1.35.2 "
        "cannot share)",
    ),
)
LOCKS_BY_NAME = {lock.name: lock for lock in LOCKS}


@dataclass(frozen=True)
class Pin:
    """One locked package: ``name==version`` and the hashes pip checks the download against."""

    name: str
    version: str
    hashes: tuple[str, ...]

    @property
    def requirement(self) -> str:
        """The entry as one line of a requirements file (conda's pip section takes it too)."""
        return " ".join([f"{self.name}=={self.version}", *(f"--hash={h}" for h in self.hashes)])


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


_ENTRY = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)")


def read_lock(path: Path) -> dict[str, Pin]:
    """normalised name -> :class:`Pin` for every entry of a lock file.

    Raises ``ValueError`` on an entry that is not ``name==version`` with at least one hash:
    pip would refuse it in hash-checking mode, so the lock would not install.
    """
    pins: dict[str, Pin] = {}
    # Continuation lines (a trailing backslash) belong to the entry above them.
    logical = re.sub(r"\\\n\s*", " ", path.read_text())
    for number, raw in enumerate(logical.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        match = _ENTRY.match(line)
        hashes = tuple(re.findall(r"--hash=(sha256:[0-9a-f]{64})", line))
        if match is None or not hashes:
            raise ValueError(
                f"{path}: entry {number} ({line[:80]!r}) is not name==version with --hash=sha256:"
                "...; re-create the lock with `make lock`"
            )
        name = normalise(match["name"])
        pins[name] = Pin(name, match["version"], hashes)
    return pins


def _uv(lock: Lock, output: Path, constraints: Path | None) -> None:
    command = [
        sys.executable,
        "-m",
        "uv",
        "pip",
        "compile",
        *lock.inputs,
        "--generate-hashes",
        "--python-version",
        lock.python,
        "--python-platform",
        PLATFORM,
        "--custom-compile-command",
        "make lock",
        "--quiet",
        "-o",
        str(output),
    ]
    if lock.name == "ci":
        command.append("--all-extras")
    if lock.extra:
        command += ["--extra", lock.extra]
    if constraints is not None:
        command += ["-c", str(constraints)]
    subprocess.run(command, cwd=ROOT, check=True)


def _constraints_for(lock: Lock) -> Path:
    """The CI lock as constraints, less the packages that must differ in ``lock`` (written
    beside the locks under a stable name, as uv quotes the path in its comments)."""
    differ = set(AZURE_DIFFERENCES.get(lock.name, {}))
    if not differ:
        return CI_LOCK.relative_to(ROOT)
    kept = [pin.requirement for name, pin in read_lock(CI_LOCK).items() if name not in differ]
    path = LOCK_DIR / f".ci-less-{'-'.join(sorted(differ))}.txt"
    path.write_text("\n".join(kept) + "\n")
    return path.relative_to(ROOT)


def _drop(source: Path, names: set[str], header: str) -> str:
    """``source`` without the entries (and their via-comments) of ``names``."""
    blocks = re.split(r"\n(?=[A-Za-z0-9])", source.read_text())
    kept = [
        block
        for block in blocks
        if not (_ENTRY.match(block) and normalise(_ENTRY.match(block)["name"]) in names)  # type: ignore[index]
    ]
    body = "\n".join(b for b in kept if _ENTRY.match(b))
    return header + body.rstrip("\n") + "\n"


def relock(names: list[str] | None = None) -> None:
    """Re-resolve the named locks (all by default) from their inputs; CI's first."""
    LOCK_DIR.mkdir(exist_ok=True)
    selected = [lock for lock in LOCKS if names is None or lock.name in names]
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        for lock in selected:
            print(f"locking {lock.path.relative_to(ROOT)} ({lock.purpose})", file=sys.stderr)
            if not lock.constrained:
                _uv(lock, lock.path, None)
                continue
            constraints = _constraints_for(lock)
            if lock.extra is None:
                try:
                    _uv(lock, lock.path, constraints)
                finally:  # a failed resolution must not leave a stray file in lock/
                    if constraints != CI_LOCK.relative_to(ROOT):
                        (ROOT / constraints).unlink()
                continue
            # The extra's lock holds only what it adds to the runtime lock, so an image installs
            # runtime.txt plus one file per extra it needs, and no entry twice.
            closure = scratch / f"{lock.name}-closure.txt"
            _uv(lock, closure, constraints)
            runtime = set(read_lock(LOCKS_BY_NAME["runtime"].path))
            header = (
                f"# What mlcore[{lock.extra}] adds to lock/runtime.txt, at the CI lock's versions.\n"
                "# Written by `make lock` (tools/locks.py); install together with runtime.txt.\n"
            )
            lock.path.write_text(_drop(closure, runtime, header))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.locks", description=__doc__)
    parser.add_argument(
        "locks", nargs="*", help=f"locks to renew (default: all of {list(LOCKS_BY_NAME)})"
    )
    args = parser.parse_args(argv)
    unknown = [n for n in args.locks if n not in LOCKS_BY_NAME]
    if unknown:
        parser.error(f"unknown locks {unknown}; known: {list(LOCKS_BY_NAME)}")
    relock(args.locks or None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
