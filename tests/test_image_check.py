"""The parts of `make image-check` that stand in for SageMaker (tools/image_check.py): how an
S3 input is laid out, how the definition's expressions resolve, which command a container runs.
The check itself needs root and buildah; it runs in CI through .ci/run, not here."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools import image_check
from tools.image_check import S3, Pipeline


def test_an_s3_prefix_input_is_every_object_under_the_prefix(tmp_path: Path) -> None:
    s3 = S3(tmp_path / "s3")
    for key in (
        "run/prep/train/a.parquet",
        "run/prep/train/b/c.parquet",
        "run/prep/test/t.parquet",
    ):
        (s3.root / "bucket" / key).parent.mkdir(parents=True, exist_ok=True)
        (s3.root / "bucket" / key).write_text(key)
    local = tmp_path / "local"
    assert s3.download_prefix("s3://bucket/run/prep/train", local) == 2
    assert sorted(p.relative_to(local).as_posix() for p in local.rglob("*.parquet")) == [
        "a.parquet",
        "b/c.parquet",
    ]
    # An object named exactly arrives under its own name (the settings file, spec.json).
    exact = tmp_path / "exact"
    s3.download_prefix("s3://bucket/run/prep/test/t.parquet", exact)
    assert (exact / "t.parquet").read_text() == "run/prep/test/t.parquet"
    with pytest.raises(FileNotFoundError, match="no object under s3://bucket/missing"):
        s3.download_prefix("s3://bucket/missing", tmp_path / "none")


def test_the_definitions_expressions_resolve_as_in_one_execution(tmp_path: Path) -> None:
    definition = {
        "Parameters": [{"Name": "InputDataUrl", "DefaultValue": "s3://data/in/"}],
        "Steps": [],
    }
    pipeline = Pipeline(definition, S3(tmp_path))
    pipeline.properties["Steps.Train.ModelArtifacts.S3ModelArtifacts"] = "s3://a/model.tar.gz"
    expression = {
        "Uri": {
            "Std:Join": {
                "On": "/",
                "Values": ["s3://a", {"Get": "Execution.PipelineExecutionId"}, "prep"],
            }
        },
        "Data": {"Get": "Parameters.InputDataUrl"},
        "Model": [{"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}],
    }
    assert pipeline.value(expression) == {
        "Uri": f"s3://a/{image_check.EXECUTION_ID}/prep",
        "Data": "s3://data/in/",
        "Model": ["s3://a/model.tar.gz"],
    }
    with pytest.raises(KeyError, match=r"no value for Steps\.Evaluate"):
        pipeline.value({"Get": "Steps.Evaluate.Properties"})


def test_a_container_entrypoint_replaces_the_images(monkeypatch: pytest.MonkeyPatch) -> None:
    config = {"Entrypoint": ["/usr/bin/tini", "--", "mlcore"], "Cmd": None}
    monkeypatch.setattr(image_check, "image_config", lambda image: config)
    # `<image> serve`: the image's ENTRYPOINT (tini) with SageMaker's argument.
    assert image_check.container_argv("img", None, ["serve"]) == [
        "/usr/bin/tini",
        "--",
        "mlcore",
        "serve",
    ]
    # A processing or training ContainerEntrypoint runs instead, with its arguments only.
    assert image_check.container_argv("img", ["mlcore", "prep"], ["--data", "/d"]) == [
        "mlcore",
        "prep",
        "--data",
        "/d",
    ]
