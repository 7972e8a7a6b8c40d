"""`make bench-images`: the mlcore image's size, cold start and rebuild time, before and after.

"before" is the Dockerfile as it was before issue 20 (``git show <ref>:pipelines/container/
Dockerfile``: src copied with the dependencies, ``--no-compile``, PYTHONDONTWRITEBYTECODE, full
MLflow for tracking), "after" the current one; both are built on the same stand-in base
(:mod:`tools.stand_in_bases`) with the extras the CDK app gives this repository's mlops.yaml.

For each: the image size; the cold start, from starting the container (``<image> serve``, as
SageMaker starts an endpoint's container) to the first 200 on /ping, median of ``--runs``; and
the rebuild after a one-line edit under src/ (the layer cache kept). The machine's load average
is recorded with the figures. Writes out/bench-images.md and .json and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from tools import image_check  # noqa: E402
from tools.stand_in_bases import MLCORE_BASE, ensure_base  # noqa: E402

BEFORE_TAG = "localhost/mlcore:bench-before"
AFTER_TAG = "localhost/mlcore:bench-after"
# The build context before issue 20: requirements.txt as constraints, no lock.
BEFORE_CONTEXT = ("pyproject.toml", "requirements.txt", "README.md", "LICENSE", "src")


def _build(
    dockerfile_text: str, files: tuple[str, ...], tag: str, extras: str, edit: bool
) -> float:
    """Build from a staged context; with ``edit``, a comment appended to a module under src/."""
    with tempfile.TemporaryDirectory() as scratch, image_check.pip_trusts_host_ca() as volumes:
        context = image_check.build_context(files, Path(scratch))
        dockerfile = context / "pipelines/container/Dockerfile"
        dockerfile.parent.mkdir(parents=True, exist_ok=True)
        dockerfile.write_text(dockerfile_text)
        if edit:
            with (context / "src/mlcore/__init__.py").open("a") as module:
                module.write(f"# bench edit {time.time()}\n")
        started = time.monotonic()
        subprocess.run(
            [
                "buildah", "bud", "--isolation", "chroot", "--layers", "--quiet",
                "--from", MLCORE_BASE.name, "-f", str(dockerfile), "-t", tag, *volumes,
                "--build-arg", f"MLCORE_EXTRAS={extras}", str(context),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        return time.monotonic() - started


def _model() -> Path:
    """A model directory to serve: the one `make image-check` trained in the image."""
    trained = ROOT / "out" / "image-check" / "serving" / "model"
    if trained.is_dir():
        return trained
    raise SystemExit("no trained model: run `make image-check` first (it trains one in the image)")


def _cold_starts(tag: str, model: Path, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        served = image_check.serve_and_check(tag, model, {"SAGEMAKER_REGION": "eu-west-1"})
        if served.ping != 200:
            raise SystemExit(f"{tag} did not answer /ping: {served.stderr[-800:]}")
        times.append(served.cold_start_s)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench-images", description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--before-ref", default="main~0", help="git revision of the 'before' Dockerfile"
    )
    args = parser.parse_args(argv)
    from cdk.container_image import BUILD_CONTEXT, image_extras
    from mlcore.settings import load_settings

    ensure_base(MLCORE_BASE)
    settings = load_settings(image_check.SETTINGS)
    after_extras = ",".join(image_extras(settings, tracking_server=True))
    # Before issue 20 the image took full MLflow for tracking.
    before_extras = after_extras.replace("tracking-client", "tracking")
    before_text = subprocess.run(
        ["git", "show", f"{args.before_ref}:pipelines/container/Dockerfile"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    if "--no-compile" not in before_text:
        raise SystemExit(
            f"{args.before_ref}'s Dockerfile is already the new one: pass --before-ref"
        )
    after_text = (ROOT / "pipelines/container/Dockerfile").read_text()
    model = _model()
    load_before = os.getloadavg()
    results = {}
    for label, text, files, tag, extras in (
        ("before", before_text, BEFORE_CONTEXT, BEFORE_TAG, before_extras),
        (
            "after",
            after_text,
            tuple(f for f in BUILD_CONTEXT if f != "pipelines/container"),
            AFTER_TAG,
            after_extras,
        ),
    ):
        first = _build(text, files, tag, extras, edit=False)
        rebuild = _build(text, files, tag, extras, edit=True)
        starts = _cold_starts(tag, model, args.runs)
        results[label] = {
            "extras": extras,
            "size_mb": round(image_check.image_size_mb(tag)),
            "first_build_s": round(first),
            "rebuild_after_src_edit_s": round(rebuild, 1),
            "cold_start_median_s": round(statistics.median(starts), 2),
            "cold_start_runs_s": [round(t, 2) for t in starts],
        }
    load_after = os.getloadavg()
    report = {
        "runs": args.runs,
        "load_average_1_5_15_before": [round(x, 2) for x in load_before],
        "load_average_1_5_15_after": [round(x, 2) for x in load_after],
        "cpus": os.cpu_count(),
        "results": results,
    }
    out = ROOT / "out"
    out.mkdir(exist_ok=True)
    (out / "bench-images.json").write_text(json.dumps(report, indent=2))
    table = [
        "| image | size | cold start to /ping 200 (median) | runs | rebuild after a src edit |",
        "|---|---|---|---|---|",
    ]
    for label, r in results.items():
        table.append(
            f"| {label} ({r['extras']}) | {r['size_mb']} MB | {r['cold_start_median_s']} s | "
            f"{', '.join(map(str, r['cold_start_runs_s']))} | {r['rebuild_after_src_edit_s']} s |"
        )
    table.append(
        f"\nLoad average (1, 5, 15 min) {report['load_average_1_5_15_before']} before, "
        f"{report['load_average_1_5_15_after']} after, on {report['cpus']} cores."
    )
    (out / "bench-images.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
