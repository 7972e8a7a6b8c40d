"""One image for every stage: whatever optional features each stage has, a package trained in
the model-build stage can be promoted to every other stage.

Promotion finds the package's image by digest in the target stage's repository
(pipelines.deploy.promote.same_image_in_target); the CI/CD pipeline builds each image asset
once per asset hash and publishes that one image to every stage's repository. So a package
promotes only if every stage's mlcore image asset has the model-build stage's hash.

The apps here are built in-process from cdk.json's context with per-stage options set through
the same context keys a user has, one account per stage. Every per-stage option is tried: the
boolean ones of StageConfig and of its nested settings (found by introspection, so a new
option is covered without editing this test), each in a stage of its own, beside a
model-build stage without options and beside one with every option it accepts. A combination
the configuration refuses is skipped (it does not synthesise). The publishing is played in
moto (one image per asset hash, its digest derived from that hash); the check that decides is
promote's own.
"""

from __future__ import annotations

import hashlib
import json
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws
from pydantic import BaseModel, ValidationError

from cdk.config import StageConfig, load_aws_config
from pipelines.deploy.promote import same_image_in_target
from pipelines.deploy.targets import Environment, TargetDescriptor, TargetRef, assume_role_session

pytestmark = [pytest.mark.xdist_group("cdk_synth"), pytest.mark.slow]

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
SETTINGS = REPOSITORY_ROOT / "tests" / "fixtures" / "aws_settings.yaml"
REGION = "eu-west-1"


def _bool_options(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, bool]]:
    """(dotted path, value) for every boolean setting of ``model`` and the models it nests."""
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        annotation = field.annotation
        arguments = set(typing.get_args(annotation)) - {type(None)}
        if annotation is bool or arguments == {bool}:
            yield (path, True)
            yield (path, False)
        nested = [a for a in {annotation, *arguments} if isinstance(a, type)]
        for candidate in nested:
            if issubclass(candidate, BaseModel):
                yield from _bool_options(candidate, f"{path}.")


def _options() -> list[tuple[str, object]]:
    found: list[tuple[str, object]] = list(dict.fromkeys(_bool_options(StageConfig)))
    # Options that are not booleans but switch features on.
    model_monitor = {
        "analyzer_image_uri": f"468650794304.dkr.ecr.{REGION}.amazonaws.com/analyzer",
        "baseline_statistics_s3_uri": "s3://baselines/statistics.json",
        "baseline_constraints_s3_uri": "s3://baselines/constraints.json",
    }
    found += [("endpoint.serverless", {}), ("monitoring.model_monitor", model_monitor)]
    return found


def _set(stage: dict[str, Any], path: str, value: object) -> None:
    node = stage
    *parents, leaf = path.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def _copy(value: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(json.dumps(value)))


def _context(build: dict[str, Any], targets: dict[str, dict[str, Any]]) -> dict[str, Any]:
    context = json.loads((REPOSITORY_ROOT / "cdk.json").read_text())["context"]
    mlops = _copy(context["mlops"])
    mlops["settings_file"] = str(SETTINGS)
    mlops["toolchain"] = {"account": "400000000000", "region": REGION}
    stages = {"dev": _copy(build), **{name: _copy(t) for name, t in targets.items()}}
    for index, stage in enumerate(stages.values()):
        stage.update({"account": f"{100000000000 + index}", "region": REGION})
    mlops["stages"] = stages
    mlops["model_build_stage"] = "dev"
    return {**context, "mlops": mlops}


def _stage_configs(
    build: dict[str, Any], targets: dict[str, dict[str, Any]]
) -> dict[str, StageConfig] | None:
    """The stages as the configuration reads them, or None where it refuses them."""
    try:
        config = load_aws_config(_context(build, targets))
    except (ValueError, ValidationError):
        return None
    return {
        name: stage.model_copy(update={"account": None}) for name, stage in config.stages.items()
    }


def _combinations() -> list[tuple[str, dict[str, Any], dict[str, dict[str, Any]]]]:
    """Apps to build: (name, model-build stage options, target stages with one option each).

    Targets whose configuration equals one already there are left out (an option set to its
    default), so each app builds only stages that differ.
    """
    options = _options()
    # The model-build stage with every option it accepts, each kept where the config does.
    loaded: dict[str, Any] = {}
    for path, value in options:
        if path in {p for p, _ in _flattened(loaded)}:
            continue
        trial = _copy(loaded)
        _set(trial, path, value)
        if _stage_configs(trial, {}) is not None:
            loaded = trial
    apps = []
    for name, build in (("plain", {}), ("loaded", loaded)):
        targets: dict[str, dict[str, Any]] = {"t0": {}}
        for index, (path, value) in enumerate(options, start=1):
            stage: dict[str, Any] = {}
            _set(stage, path, value)
            configs = _stage_configs(build, {**targets, f"t{index}": stage})
            if configs is None:
                continue  # the configuration refuses it: it does not synthesise
            if configs[f"t{index}"] in [configs[t] for t in targets]:
                continue
            targets[f"t{index}"] = stage
        apps.append((name, build, targets))
    return apps


def _flattened(options: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, object]]:
    for key, value in options.items():
        if isinstance(value, dict) and value:
            yield from _flattened(value, f"{prefix}{key}.")
        yield (f"{prefix}{key}", value)


COMBINATIONS = _combinations()


def test_the_combinations_cover_the_options_that_change_what_a_stage_installs() -> None:
    # The finding: MLflow on in one stage only, either the model-build stage or another.
    (_, plain, plain_targets), (_, loaded, loaded_targets) = COMBINATIONS
    assert plain == {} and loaded["mlflow"]["enabled"] is True
    assert {"enabled": True} in [t.get("mlflow") for t in plain_targets.values()]
    assert {} in loaded_targets.values()
    assert len(plain_targets) >= 8


def _build(context: dict[str, Any], outdir: Path) -> Any:
    from aws_cdk import App

    from cdk.assembly import build_app

    app = App(context=context, outdir=str(outdir))
    return build_app(app, repository_root=REPOSITORY_ROOT, nag=False)


def _manifest(asset_hash: str) -> str:
    """The image the pipeline builds from one asset: its layers follow its inputs (moto derives
    an image's digest from its layer digests)."""
    layer = hashlib.sha256(f"mlcore image {asset_hash}".encode()).hexdigest()
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": 7,
                "digest": f"sha256:{layer[::-1]}",
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": 7,
                    "digest": f"sha256:{layer}",
                }
            ],
        }
    )


def _environment(name: str, account: str, repository: str) -> Environment:
    ref = TargetRef(name, f"arn:aws:iam::{account}:role/deploy", REGION, f"/mlops/acme/{name}")
    descriptor = TargetDescriptor(
        environment=name,
        stack_name=f"{name}-Serving",
        model_package_parameter="/p",
        model_sha256_parameter="/s",
        endpoint_name=f"acme-{name}",
        model_package_group=f"acme-{name}-models",
        artifact_bucket=f"acme-{name}-artifacts",
        image_repository=repository,
        cloudformation_role_arn=f"arn:aws:iam::{account}:role/cfn",
        release_approval=False,
    )
    return Environment(ref, descriptor, assume_role_session(ref.role_arn, REGION))


@pytest.mark.parametrize(
    ("name", "build", "targets"), COMBINATIONS, ids=[c[0] for c in COMBINATIONS]
)
def test_a_package_trained_in_the_model_build_stage_promotes_to_every_stage(
    name: str,
    build: dict[str, Any],
    targets: dict[str, dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aws_cdk import Stack

    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    mlops = _build(_context(build, targets), tmp_path / "cdk.out")
    with mock_aws():
        environments: dict[str, Environment] = {}
        uris: dict[str, str] = {}
        for stage_name, stage in mlops.stages.items():
            image = stage.model_build_stack.image
            stack = Stack.of(image)
            repository = str(stack.resolve(image.repository.repository_name))
            environment = _environment(stage_name, str(stack.account), repository)
            ecr = environment.client("ecr")
            if repository not in [
                r["repositoryName"] for r in ecr.describe_repositories()["repositories"]
            ]:
                ecr.create_repository(repositoryName=repository)
            # Publishing: the one image built from this asset, under the asset's tag.
            ecr.put_image(
                repositoryName=repository,
                imageTag=image.asset.image_tag,
                imageManifest=_manifest(image.asset.asset_hash),
            )
            environments[stage_name] = environment
            uris[stage_name] = (
                f"{stack.account}.dkr.ecr.{REGION}.amazonaws.com/{repository}:{image.asset.image_tag}"
            )
        refused = {}
        for stage_name, target in environments.items():
            try:
                same_image_in_target(environments["dev"], target, uris["dev"])
            except ValueError as exc:
                refused[stage_name] = {"options": targets.get(stage_name), "error": str(exc)[:200]}
        assert refused == {}, json.dumps(refused, indent=1)
