"""The one mlcore container image that processing, training and serving all run.

Built by the CDK CLI at deploy time from ``pipelines/container/Dockerfile`` (a Docker-capable
machine or the CI/CD pipeline's asset stage does the build); synth only fingerprints the
files the image is built from, so it needs no Docker.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path

from aws_cdk import IgnoreMode
from aws_cdk import aws_ecr_assets as ecr_assets
from constructs import Construct

from mlcore.settings import MlopsSettings, required_extras

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = "pipelines/container/Dockerfile"

# Only what the Dockerfile copies is part of the build context (and of the asset hash), so an
# edit to tests or infrastructure code does not rebuild and redeploy the image.
BUILD_CONTEXT = (
    "pyproject.toml",
    "lock",
    "README.md",
    "LICENSE",
    "src",
    "pipelines/container",
)


#: The Dockerfile's build argument naming the extras to install (``mlcore[<extras>]``).
EXTRAS_BUILD_ARG = "MLCORE_EXTRAS"
#: What a job needs to log to a SageMaker managed MLflow tracking server (cdk/tracking.py):
#: MLflow's client and the plugin that signs requests to the server's ARN.
TRACKING_SERVER_EXTRAS = ("tracking-client", "sagemaker-mlflow")
#: Extras the image replaces with a leaner one: a job logs to a remote server, so MLflow's
#: client (mlflow-skinny) does; the full package's server, UI and SQL store (Flask, gunicorn,
#: SQLAlchemy, about 225 MB) would only weigh on every job and endpoint start.
IMAGE_SUBSTITUTES = {"tracking": "tracking-client"}


def image_extras(settings: MlopsSettings, *, tracking_server: bool) -> tuple[str, ...]:
    """The mlcore extras an environment's image installs: what the settings need
    (:func:`mlcore.settings.required_extras`, with MLflow's client for ``tracking``), and
    the MLflow client and SageMaker plugin where the environment has a tracking server its
    jobs log to."""
    extras = []
    for extra in required_extras(settings):
        extra = IMAGE_SUBSTITUTES.get(extra, extra)
        if extra not in extras:
            extras.append(extra)
    if tracking_server:
        extras += [extra for extra in TRACKING_SERVER_EXTRAS if extra not in extras]
    return tuple(extras)


def app_image_extras(
    settings: MlopsSettings, *, tracking_servers: Iterable[bool]
) -> tuple[str, ...]:
    """The extras of the one image every stage of an app builds.

    A package trained in the model-build stage reaches the other stages with its image, found
    by digest in each stage's repository (:mod:`pipelines.deploy.promote`), so every stage
    must build the very same image, whatever optional features it has: the image installs what
    any stage needs (``tracking_servers``: whether each stage has a tracking server).
    """
    return image_extras(settings, tracking_server=any(tracking_servers))


def declared_extras(root: Path) -> set[str]:
    """The extras ``pyproject.toml`` declares (``[project.optional-dependencies]``)."""
    with (root / "pyproject.toml").open("rb") as file:
        project = tomllib.load(file).get("project", {})
    return set(project.get("optional-dependencies", {}))


def check_estimator_in_image(estimator: str | None, root: Path = REPOSITORY_ROOT) -> None:
    """Raise ``ValueError`` unless the image would hold the module of ``training.estimator``.

    The image installs the project in ``root`` (``pip install .``), whose packages
    setuptools finds under ``src/`` (``[tool.setuptools.packages.find] where = ["src"]``);
    the same discovery is run here, so a factory in a folder outside ``src/``, or in a
    folder without ``__init__.py``, fails at synth rather than as an ImportError in the job.
    """
    if estimator is None:
        return
    from setuptools import find_packages

    module = estimator.partition(":")[0]
    packages = set(find_packages(where=str(root / "src")))
    parent, _, name = module.rpartition(".")
    in_image = module in packages or (
        parent in packages and (root / "src" / parent.replace(".", "/") / f"{name}.py").is_file()
    )
    if not in_image:
        top = module.split(".")[0]
        raise ValueError(
            f"training.estimator {estimator!r}: module {module!r} would not be in the mlcore "
            f"image, which installs only the packages under {root / 'src'} (found: "
            f"{sorted(p for p in packages if '.' not in p)}). Move it to "
            f"src/{module.replace('.', '/')}.py with an __init__.py in src/{top}/ and each "
            "folder below it, or set training.algorithm instead"
        )


class MlcoreImage(Construct):
    """The mlcore image as a CDK Docker image asset (ENTRYPOINT ``mlcore``).

    :param extras: mlcore extras to install (``pip install "mlcore[<extras>]"``), each one
        ``pyproject.toml`` declares; see :func:`image_extras`. Default: none, mlcore alone.
    :param directory: the repository to build from. Default: this repository.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        extras: Sequence[str] = (),
        directory: Path | None = None,
    ) -> None:
        super().__init__(scope, id_)
        root = directory or REPOSITORY_ROOT
        missing = [path for path in (*BUILD_CONTEXT, DOCKERFILE) if not (root / path).exists()]
        if missing:
            raise ValueError(
                f"cannot build the mlcore image from {root}: missing {missing}; "
                "pass the repository root as directory"
            )
        declared = declared_extras(root)
        unknown = [e for e in extras if e not in declared or not re.fullmatch(r"[a-z0-9-]+", e)]
        if unknown:
            raise ValueError(
                f"the mlcore image cannot install extras {unknown}: {root / 'pyproject.toml'} "
                f"declares {sorted(declared)} under [project.optional-dependencies]; add them "
                "there or fix the setting that asks for them"
            )
        self.extras = tuple(extras)
        self.asset = ecr_assets.DockerImageAsset(
            self,
            "Asset",
            directory=str(root),
            file=DOCKERFILE,
            platform=ecr_assets.Platform.LINUX_AMD64,
            ignore_mode=IgnoreMode.DOCKER,
            exclude=[
                "*",
                *(f"!{path}" for path in BUILD_CONTEXT),
                "**/__pycache__",
                "**/*.egg-info",
            ],
            display_name="mlcore",
            # Part of the asset's hash: environments needing other extras get their own image.
            build_args={EXTRAS_BUILD_ARG: ",".join(self.extras)},
        )
        self.image_uri = self.asset.image_uri
        self.repository = self.asset.repository
