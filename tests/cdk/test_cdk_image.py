"""The mlcore image asset: one build context holding only what the Dockerfile copies, and the
mlcore extras the settings need installed in it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import dockerfile
import pytest

from cdk.container_image import (
    BUILD_CONTEXT,
    DOCKERFILE,
    EXTRAS_BUILD_ARG,
    REPOSITORY_ROOT,
    TRACKING_SERVER_EXTRAS,
    MlcoreImage,
    check_estimator_in_image,
    declared_extras,
    image_extras,
)
from mlcore.settings import MlopsSettings

pytestmark = pytest.mark.xdist_group("cdk_synth")


def _image_assets(synth: Any) -> list[Any]:
    # Lambda code assets sit beside the image asset; only a Docker build context holds a Dockerfile.
    return [
        p
        for p in synth.outdir.iterdir()
        if p.is_dir() and p.name.startswith("asset.") and (p / DOCKERFILE).is_file()
    ]


def test_every_environment_builds_the_one_image_even_when_only_dev_tracks_to_mlflow(
    synth: Any,
) -> None:
    # The shared synth gives dev alone an MLflow tracking server; a package trained in dev is
    # promoted to staging and prod by its image's digest, so all three build one image.
    assert len(_image_assets(synth)) == 1


def test_image_build_context_holds_only_what_the_dockerfile_needs(synth: Any) -> None:
    for asset in _image_assets(synth):
        files = {str(p.relative_to(asset)) for p in asset.rglob("*") if p.is_file()}
        assert DOCKERFILE in files
        assert "src/mlcore/cli.py" in files
        outside = [
            f for f in files if not any(f == c or f.startswith(c + "/") for c in BUILD_CONTEXT)
        ]
        assert outside == []
        assert not [f for f in files if "__pycache__" in f or ".egg-info" in f]


# The extras the image installs (issue 13: a configured xgboost, lightgbm or tracking server
# must work in every job). The Dockerfile is read with the `dockerfile` package, a binding of
# BuildKit's own parser (moby/buildkit frontend/dockerfile/parser), and its install line is run
# under /bin/sh, as `docker build` runs RUN in shell form, with a stand-in pip that records
# what it was asked to install.


def _instructions() -> list[Any]:
    return list(dockerfile.parse_file(str(REPOSITORY_ROOT / DOCKERFILE)))


def _install_line() -> str:
    (run,) = [i for i in _instructions() if i.cmd == "RUN" and "--require-hashes" in i.value[0]]
    return str(run.value[0])


def test_the_dockerfile_takes_the_extras_as_a_build_argument_defaulting_to_none() -> None:
    instructions = _instructions()
    args = [i for i in instructions if i.cmd == "ARG"]
    assert [a.value for a in args] == [(f'{EXTRAS_BUILD_ARG}=""',)]
    # Declared after FROM (an ARG before FROM is not visible to RUN) and before the install.
    order = [i.cmd for i in instructions]
    install = instructions.index(next(i for i in instructions if i.value[0] == _install_line()))
    assert order.index("FROM") < order.index("ARG") < install


def _pip_argv(tmp_path: Path, extras: str) -> list[str]:
    """Run the Dockerfile's install line with MLCORE_EXTRAS=extras; pip's argv."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    pip = bin_dir / "pip"
    pip.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$RECORD"\n')
    pip.chmod(0o755)
    record = tmp_path / "argv"
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "RECORD": str(record),
        EXTRAS_BUILD_ARG: extras,
    }
    subprocess.run(["/bin/sh", "-c", _install_line()], cwd=REPOSITORY_ROOT, env=env, check=True)
    return record.read_text().splitlines()


@pytest.mark.parametrize(
    "extras",
    [(), ("xgboost",), ("lightgbm", "tracking-client", "sagemaker-mlflow")],
    ids=["none", "one", "three"],
)
def test_the_install_line_installs_the_locks_of_exactly_the_extras_given(
    tmp_path: Path, extras: tuple[str, ...]
) -> None:
    argv = _pip_argv(tmp_path, ",".join(extras))
    assert argv[:2] == ["install", "--require-hashes"]
    files = argv[2:][1::2]
    assert argv[2:][::2] == ["-r"] * len(files)
    assert files == [
        "lock/runtime.txt",
        "lock/build.txt",
        *(f"lock/extra-{extra}.txt" for extra in extras),
    ]
    assert all((REPOSITORY_ROOT / f).is_file() for f in files)


def _settings(**training: Any) -> MlopsSettings:
    return MlopsSettings.model_validate({"training": training})


@pytest.mark.parametrize(
    ("training", "tracking_server", "expected"),
    [
        ({"algorithm": "logistic_regression"}, False, ()),
        ({"algorithm": "xgboost"}, False, ("xgboost",)),
        ({"algorithm": "lightgbm"}, True, ("lightgbm", "tracking-client", "sagemaker-mlflow")),
        # A custom estimator brings its own dependencies (it lives under src/).
        ({"estimator": "acme_models.boosting:make"}, False, ()),
    ],
)
def test_image_extras_follow_the_settings_and_the_tracking_server(
    training: dict[str, Any], tracking_server: bool, expected: tuple[str, ...]
) -> None:
    assert image_extras(_settings(**training), tracking_server=tracking_server) == expected


def test_tracking_in_the_settings_and_a_server_install_the_mlflow_client_once() -> None:
    # The image logs to a remote server: MLflow's client (mlflow-skinny), never the full
    # package with its server, UI and SQL store (issue 20: about 225 MB in every endpoint).
    settings = MlopsSettings.model_validate({"tracking": {"enabled": True}})
    assert image_extras(settings, tracking_server=True) == ("tracking-client", "sagemaker-mlflow")
    assert image_extras(settings, tracking_server=False) == ("tracking-client",)


def test_every_extra_the_image_may_install_is_declared_by_pyproject() -> None:
    assert {"xgboost", "lightgbm", *TRACKING_SERVER_EXTRAS} <= declared_extras(REPOSITORY_ROOT)


def test_an_extra_pyproject_does_not_declare_is_refused_at_synth() -> None:
    from aws_cdk import App, Stack

    with pytest.raises(ValueError, match=r"cannot install extras \['gpu'\].*pyproject.toml"):
        MlcoreImage(Stack(App(), "S"), "Image", extras=("xgboost", "gpu"))


def _docker_build_args(synth: Any, stage: str) -> dict[str, str]:
    (manifest,) = (synth.outdir / f"assembly-MlopsCicd-{stage.capitalize()}").glob(
        "*ModelBuild*.assets.json"
    )
    (image,) = json.loads(manifest.read_text())["dockerImages"].values()
    return dict(image["source"].get("dockerBuildArgs", {}))


def test_the_extras_any_environment_needs_reach_every_environments_image_asset(
    synth: Any,
) -> None:
    settings = synth.mlops.settings
    # The shared synth gives dev an MLflow tracking server (tests/cdk/conftest.py): every
    # environment's image installs its client, since they all run the one image.
    for stage in ("dev", "staging", "prod"):
        assert _docker_build_args(synth, stage) == {
            EXTRAS_BUILD_ARG: ",".join(image_extras(settings, tracking_server=True))
        }
        assert "sagemaker-mlflow" in _docker_build_args(synth, stage)[EXTRAS_BUILD_ARG]


# A custom estimator (training.estimator "package.module:factory") must be in the image: the
# Dockerfile installs the project, and setuptools packages only what it finds under src/
# (pyproject [tool.setuptools.packages.find] where = ["src"]).


def _project(root: Path, files: list[str]) -> Path:
    for name in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("")
    return root


@pytest.mark.parametrize(
    ("files", "estimator"),
    [
        (
            ["src/acme_models/__init__.py", "src/acme_models/boosting.py"],
            "acme_models.boosting:make",
        ),
        (
            ["src/acme_models/__init__.py", "src/acme_models/nets/__init__.py"],
            "acme_models.nets:make",
        ),
    ],
    ids=["module", "package"],
)
def test_an_estimator_under_src_is_in_the_image(
    tmp_path: Path, files: list[str], estimator: str
) -> None:
    check_estimator_in_image(estimator, _project(tmp_path, files))


@pytest.mark.parametrize(
    ("files", "estimator"),
    [
        (["models/__init__.py", "models/boosting.py"], "models.boosting:make"),
        (["src/acme_models/boosting.py"], "acme_models.boosting:make"),
        (["src/acme_models/__init__.py"], "acme_models.missing:make"),
    ],
    ids=["outside-src", "no-init", "no-module"],
)
def test_an_estimator_the_image_would_not_hold_is_refused_with_the_fix(
    tmp_path: Path, files: list[str], estimator: str
) -> None:
    module = estimator.partition(":")[0]
    with pytest.raises(ValueError, match="would not be in the mlcore image") as raised:
        check_estimator_in_image(estimator, _project(tmp_path, files))
    assert f"src/{module.replace('.', '/')}.py" in str(raised.value)


def test_this_repositorys_own_packages_count_as_in_the_image() -> None:
    check_estimator_in_image("mlcore.train:train_model")
    check_estimator_in_image(None)


def test_synth_stops_on_an_estimator_outside_src(tmp_path: Path, settings_file: Path) -> None:
    from aws_cdk import App

    from cdk.config import StageConfig
    from cdk.model_build_stack import ModelBuildStack
    from mlcore.settings import load_settings

    text = settings_file.read_text()
    custom = tmp_path / "mlops.yaml"
    custom.write_text(
        text.replace("training:\n", "training:\n  estimator: team_models.forest:make\n", 1).replace(
            "  algorithm: ", "  # algorithm: ", 1
        )
    )
    settings = load_settings(custom)
    assert settings.training.estimator == "team_models.forest:make"
    with pytest.raises(ValueError, match=r"'team_models\.forest' would not be in the mlcore image"):
        ModelBuildStack(
            App(),
            "ModelBuild",
            stage_name="dev",
            stage_config=StageConfig(),
            settings=settings,
            settings_file=custom,
            data_prefix="training-data",
            source_revision="abc1234",
        )
