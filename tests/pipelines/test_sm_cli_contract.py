"""The pipeline steps run mlcore commands that exist, and do what the pipeline relies on.

The image is never built here (no Docker). Every command the pipeline runs is parsed with
mlcore's real argument parser; then the Prep, Train and Evaluate commands of the definition
are run for real (``mlcore.cli.main``) in an emulated container: the step's own arguments,
with ``/opt/ml`` mapped to a temporary folder, on a public dataset with fixture settings.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sm_fixtures import FIXTURE_SETTINGS, TARGETS

from cdk.container_image import BUILD_CONTEXT, DOCKERFILE
from mlcore.cli import build_parser
from mlcore.cli import main as mlcore_main
from mlcore.data import save_table
from pipelines.sagemaker import contract, preflight

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE_TEXT = (REPOSITORY_ROOT / DOCKERFILE).read_text()


def _instructions(keyword: str) -> list[str]:
    return [
        line.split(None, 1)[1]
        for line in DOCKERFILE_TEXT.splitlines()
        if line.startswith(keyword + " ")
    ]


def _parse(argv: list[str]) -> argparse.Namespace:
    try:
        return build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse reports unknown commands/arguments by exiting
        raise AssertionError(f"mlcore rejects {' '.join(argv)!r} (exit {exc.code})") from exc


def _command(step: dict[str, Any]) -> list[str]:
    app = step["Arguments"]["AppSpecification"]
    return [*app["ContainerEntrypoint"], *app["ContainerArguments"]]


@pytest.mark.parametrize("step_name", ["Prep", "Evaluate", "EvaluateVsChampion"])
def test_processing_step_command_parses_with_the_mlcore_cli(
    steps: dict[str, Any], step_name: str
) -> None:
    command = _command(steps[step_name])
    assert command[0] == "mlcore"
    args = _parse(command[1:])
    assert args.settings == f"{contract.PROCESSING_SETTINGS_DIR}/{TARGETS.settings_file_name}"


def test_prep_writes_where_the_pipeline_uploads_from(steps: dict[str, Any]) -> None:
    prep = steps["Prep"]["Arguments"]
    args = _parse(_command(steps["Prep"])[1:])
    (output,) = prep["ProcessingOutputConfig"]["Outputs"]
    assert args.output == output["S3Output"]["LocalPath"]
    local = {i["InputName"]: i["S3Input"]["LocalPath"] for i in prep["ProcessingInputs"]}
    assert args.data == local["data"]
    assert args.settings.startswith(local["settings"] + "/")


@pytest.mark.parametrize("step_name", ["Evaluate", "EvaluateVsChampion"])
def test_evaluate_reads_the_inputs_the_pipeline_downloads(
    steps: dict[str, Any], step_name: str
) -> None:
    evaluate = steps[step_name]["Arguments"]
    args = _parse(_command(steps[step_name])[1:])
    local = {i["InputName"]: i["S3Input"]["LocalPath"] for i in evaluate["ProcessingInputs"]}
    assert (args.model_dir, args.data) == (local["model"], local["test"])
    assert args.champion_dir == local.get("champion")
    (output,) = evaluate["ProcessingOutputConfig"]["Outputs"]
    assert args.output == output["S3Output"]["LocalPath"]
    # The gate is mlcore's; its decision (gate.json) is read by the PassedGate condition, so
    # a refused challenger ends the run without failing it.
    assert not args.fail_on_gate


def test_training_command_is_the_sagemaker_contract_with_explicit_settings(
    steps: dict[str, Any],
) -> None:
    command = steps["Train"]["Arguments"]["AlgorithmSpecification"]["ContainerEntrypoint"]
    args = _parse(command[1:])
    assert args.data is None and args.model_dir is None  # channels under /opt/ml/input/data
    assert (
        args.settings == f"{contract.TRAINING_CHANNEL_ROOT}/settings/{TARGETS.settings_file_name}"
    )


def test_serving_invocation_parses() -> None:
    # SageMaker hosting runs `<image> serve`.
    _parse(["serve"])


def test_dockerfile_entrypoint_is_the_mlcore_console_script() -> None:
    (entrypoint,) = _instructions("ENTRYPOINT")
    # Under tini, which forwards SageMaker's SIGTERM (PID 1 ignores signals it has no handler for).
    assert json.loads(entrypoint) == ["/usr/bin/tini", "--", "mlcore"]
    scripts = tomllib.loads((REPOSITORY_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["mlcore"] == "mlcore.cli:main"


def test_dockerfile_copies_only_files_in_the_build_context_that_exist() -> None:
    for copy in _instructions("COPY"):
        *sources, _destination = copy.split()
        for source in sources:
            assert (REPOSITORY_ROOT / source).exists(), source
            assert any(source == c or source.startswith(c + "/") for c in BUILD_CONTEXT), source


def test_the_image_carries_no_settings_file() -> None:
    # Finding 8: a baked-in mlops.yaml was a second copy that could disagree with the jobs'.
    assert "mlops.yaml" not in DOCKERFILE_TEXT.split("FROM", 1)[1].replace("# ", "#").split("#")[0]
    assert not [c for c in _instructions("COPY") if "mlops.yaml" in c]
    assert "mlops.yaml" not in BUILD_CONTEXT


def test_the_base_image_is_pinned_to_an_exact_release_and_digest() -> None:
    # Finding 10: `python:3.11-slim-bookworm` moved under every rebuild.
    (base,) = _instructions("FROM")
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-[a-z]+@sha256:[0-9a-f]{64}", base), base


def test_dockerfile_installs_the_lock_with_hashes() -> None:
    # The lock files per extra (tests/cdk/test_cdk_image.py runs the line; tests/test_locks.py
    # checks every install reads a lock).
    assert re.search(r"pip install --require-hashes \$files", DOCKERFILE_TEXT)
    assert "lock/runtime.txt" in DOCKERFILE_TEXT


def test_the_check_step_and_mlcore_agree_on_what_is_a_marker() -> None:
    # The CheckInputs Lambda cannot import mlcore; both must skip the same files.
    from mlcore.data.io import is_marker

    keys = [
        "2026-10/part-0.parquet",
        "2026-10/_SUCCESS",
        "2026-10/.part-0.parquet.crc",
        "2026-10/part-0.parquet.crc",
        "_temporary/0/part-1.parquet",
        ".hidden/x.csv",
        "a/b/c.csv",
        "a_b/c.csv",
        "README",
    ]
    assert [preflight.is_marker(k) for k in keys] == [is_marker(k) for k in keys]


# --- the steps run for real -------------------------------------------------------------------


class Container:
    """An emulated /opt/ml: the step's own command, with container paths under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, container_path: str) -> Path:
        return self.root / container_path.removeprefix("/opt/ml/")

    def run(self, command: list[str], *extra: str) -> int:
        argv = [str(self.path(a)) if a.startswith("/opt/ml/") else a for a in command[1:]]
        return mlcore_main([*argv, *extra])

    def put_settings(self, local_dir: str, source: Path = FIXTURE_SETTINGS) -> None:
        target = self.path(local_dir) / TARGETS.settings_file_name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)


def _frame() -> pd.DataFrame:
    data = load_breast_cancer(as_frame=True)
    frame = data.data.rename(columns=lambda c: c.replace(" ", "_"))
    frame["diagnosis"] = data.target
    return frame


def _train(
    steps: dict[str, Any],
    root: Path,
    prep_dir: Path,
    train_dir: Path,
    settings: Path = FIXTURE_SETTINGS,
) -> Path:
    """Run the Train step's command with its channels and hyperparameters."""
    container = Container(root)
    arguments = steps["Train"]["Arguments"]
    for channel, source in (
        ("train", train_dir),
        ("validation", prep_dir / "validation"),
        ("spec", prep_dir / contract.SPEC_FILE),
    ):
        target = container.path(f"{contract.TRAINING_CHANNEL_ROOT}/{channel}")
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            target.mkdir(parents=True)
            shutil.copy(source, target)
    container.put_settings(f"{contract.TRAINING_CHANNEL_ROOT}/settings", settings)
    hyperparameters = {
        k: v if isinstance(v, str) else "abc1234" for k, v in arguments["HyperParameters"].items()
    }
    config = container.path("/opt/ml/input/config/hyperparameters.json")
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps(hyperparameters))
    command = arguments["AlgorithmSpecification"]["ContainerEntrypoint"]
    # SageMaker names the job in every training container; a bare `mlcore train` follows
    # the training contract only there.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRAINING_JOB_NAME", "mlcore-train-contract-test")
        assert container.run(command, "--sagemaker-root", str(root)) == 0
    return root / "model"


@pytest.fixture(scope="module")
def built(steps: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Prep once; a champion trained on the data, a challenger trained on corrupted data."""
    base = tmp_path_factory.mktemp("steps")
    prep = Container(base / "prep")
    frame = _frame()
    save_table(frame.iloc[:300], prep.path(f"{contract.PREP_DATA_DIR}/2026-09/part-0.parquet"))
    save_table(frame.iloc[300:], prep.path(f"{contract.PREP_DATA_DIR}/2026-10/part-0.parquet"))
    prep.path(f"{contract.PREP_DATA_DIR}/2026-10/_SUCCESS").write_bytes(b"")
    prep.put_settings(contract.PROCESSING_SETTINGS_DIR)
    assert prep.run(_command(steps["Prep"])) == 0
    prep_dir = prep.path(contract.PREP_OUTPUT_DIR)

    champion = _train(steps, base / "champion", prep_dir, prep_dir / "train")
    # The challenger learnt from a drop in which every feature but one was scrambled: still
    # above the floors (AUC about 0.9), clearly below the champion (about 0.99).
    corrupted = pd.read_parquet(prep_dir / "train" / "train.parquet")
    rng = np.random.default_rng(0)
    kept = {"diagnosis", "mean_radius"}
    for column in [c for c in corrupted.columns if c not in kept]:
        corrupted[column] = rng.permutation(corrupted[column].to_numpy())
    save_table(corrupted, base / "corrupted" / "train.parquet")
    challenger = _train(steps, base / "challenger", prep_dir, base / "corrupted")
    return {"prep": prep_dir, "champion": champion, "challenger": challenger, "base": base}


def _evaluate(
    steps: dict[str, Any], built: dict[str, Path], step_name: str, name: str
) -> tuple[int, Path]:
    evaluate = Container(built["base"] / name)
    shutil.copytree(built["challenger"], evaluate.path(contract.EVALUATE_MODEL_DIR))
    shutil.copytree(built["prep"] / "test", evaluate.path(contract.EVALUATE_DATA_DIR))
    if step_name == "EvaluateVsChampion":
        shutil.copytree(built["champion"], evaluate.path(contract.EVALUATE_CHAMPION_DIR))
    evaluate.put_settings(contract.PROCESSING_SETTINGS_DIR)
    return evaluate.run(_command(steps[step_name])), evaluate.path(contract.EVALUATE_OUTPUT_DIR)


@pytest.mark.slow
def test_a_worse_challenger_is_refused_against_the_champion_and_not_registered(
    steps: dict[str, Any], built: dict[str, Path]
) -> None:
    # Finding 3: the tolerance of mlops.yaml now applies on AWS, with mlcore's own message.
    # The step succeeds; the PassedGateVsChampion condition reads the refusal from gate.json.
    code, output = _evaluate(steps, built, "EvaluateVsChampion", "versus")
    assert code == 0
    gate = json.loads((output / contract.GATE_FILE).read_text())
    assert gate["passed"] is False and gate["champion"] is not None
    assert any("worse than the champion's" in reason for reason in gate["reasons"])
    (condition,) = steps["PassedGateVsChampion"]["Arguments"]["Conditions"]
    path = condition["LeftValue"]["Std:JsonGet"]["Path"]
    assert gate[path] is not condition["RightValue"]


@pytest.mark.slow
def test_the_same_challenger_passes_the_floors_without_a_champion(
    steps: dict[str, Any], built: dict[str, Path]
) -> None:
    # So it was the champion, not a floor, that stopped it above.
    code, output = _evaluate(steps, built, "Evaluate", "alone")
    assert code == 0
    assert json.loads((output / contract.GATE_FILE).read_text())["passed"] is True


@pytest.mark.slow
def test_every_file_the_register_step_reads_exists_in_the_real_outputs(
    steps: dict[str, Any], built: dict[str, Path]
) -> None:
    # The register step's JsonGet paths must resolve in what mlcore writes, or SageMaker
    # fails the step after the gate has passed.
    code, output = _evaluate(steps, built, "Evaluate", "paths")
    assert code == 0
    files = {
        "Steps.Prep.PropertyFiles.Lineage": json.loads(
            (built["prep"] / contract.LINEAGE_FILE).read_text()
        ),
        "Steps.Evaluate.PropertyFiles.Gate": json.loads((output / contract.GATE_FILE).read_text()),
    }
    metadata = steps["RegisterModel"]["Arguments"]["CustomerMetadataProperties"]
    lookups = re.findall(
        r'"Std:JsonGet": \{"Path": "([^"]+)", "PropertyFile": \{"Get": "([^"]+)"\}',
        json.dumps(metadata, sort_keys=True),
    )
    assert lookups
    for path, file in lookups:
        value: Any = files[file]
        for part in path.split("."):
            assert isinstance(value, dict) and part in value, f"{file}: no {path}"
            value = value[part]
        assert value is not None, f"{file}: {path} is null"


# --- a custom estimator (training.estimator) through the Train step --------------------------

CUSTOM_ESTIMATOR = "acme_forest.models:make"
_FOREST_MODULE = """
from sklearn.ensemble import RandomForestClassifier


def make(n_estimators=10, random_state=0):
    return RandomForestClassifier(n_estimators=n_estimators, random_state=random_state)
"""


@pytest.fixture(scope="module")
def custom(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Settings naming a custom estimator, its module, and the pipeline built from them."""
    import os

    from mlcore.settings import load_settings
    from pipelines.sagemaker.definition import pipeline_definition

    root = tmp_path_factory.mktemp("custom")
    package = root / "acme_forest"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "models.py").write_text(_FOREST_MODULE)
    text = FIXTURE_SETTINGS.read_text()
    before = "  algorithm: logistic_regression\n  hyperparameters: {C: 1.0, max_iter: 500}\n"
    assert before in text
    settings_file = root / "mlops.yaml"
    settings_file.write_text(
        text.replace(
            before, f"  estimator: {CUSTOM_ESTIMATOR}\n  hyperparameters: {{n_estimators: 25}}\n"
        )
    )
    settings = load_settings(settings_file)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    definition = json.loads(
        pipeline_definition(
            "acme-dev-model-build",
            settings=settings,
            targets=TARGETS,
            settings_digest="sha256:custom",
        )
    )
    from sm_fixtures import all_steps

    return {"root": root, "settings": settings_file, "steps": all_steps(definition)}


def test_the_train_step_names_the_custom_estimator_instead_of_an_algorithm(
    custom: dict[str, Any],
) -> None:
    hyperparameters = custom["steps"]["Train"]["Arguments"]["HyperParameters"]
    assert hyperparameters["estimator"] == CUSTOM_ESTIMATOR
    assert "algorithm" not in hyperparameters
    assert hyperparameters["n_estimators"] == "25"
    # The registered package records what was trained.
    register = next(step for name, step in custom["steps"].items() if name.startswith("Register"))
    metadata = register["Arguments"]["CustomerMetadataProperties"]
    assert metadata["hp_estimator"] == CUSTOM_ESTIMATOR and "hp_algorithm" not in metadata


def test_the_train_step_trains_the_custom_estimator_in_the_container(
    custom: dict[str, Any], built: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import joblib

    # In the image the package is installed from src/; here it is importable from its folder.
    monkeypatch.syspath_prepend(str(custom["root"]))
    model_dir = _train(
        custom["steps"],
        custom["root"] / "container",
        built["prep"],
        built["prep"] / "train",
        settings=custom["settings"],
    )
    metadata = json.loads((model_dir / "metadata.json").read_text())
    assert metadata["estimator"] == CUSTOM_ESTIMATOR
    pipeline = joblib.load(model_dir / "model.joblib")
    # The fitted pipeline's last step is the factory's estimator, with the job's hyperparameter.
    estimator = pipeline.steps[-1][1]
    assert type(estimator).__name__ == "RandomForestClassifier"
    assert estimator.n_estimators == 25
