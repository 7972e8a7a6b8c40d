"""The gate really gates: the Azure pipeline's own commands, run locally, never register a worse model.

Each node of the built pipeline job runs here the way Azure ML runs it: the
component's command with its inputs and outputs bound to folders, in the code
snapshot, one node after another, stopping at the first failure (the pipeline
sets continue_on_step_failure to False). The ML is mlcore's real prep, train and
evaluate with the real quality gate. A model is registered when, and only when,
the register node wrote the pipeline output that Azure ML registers.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from azure.ai.ml.entities import PipelineJob
from mlops_azure.components import GATE_FAILED_EXIT_CODE, build_components
from mlops_azure.config import AzureEnvironment
from mlops_azure.definitions import Definitions
from mlops_azure.training_pipeline import REGISTERED_OUTPUT, build_training_pipeline

from mlcore.data import make_churn
from mlcore.model import model_sha256
from mlcore.settings import MlopsSettings

# One worker runs the module so the first model (the champion) is trained once.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("azure_gate")]

_BINDING = re.compile(r"^\$\{\{parent\.(inputs\.(\w+)|jobs\.(\w+)\.outputs\.(\w+))\}\}$")
_PLACEHOLDER = re.compile(r"\$\{\{(inputs|outputs)\.(\w+)\}\}")
_OPTIONAL = re.compile(r"\$\[\[(.*?)\]\]")
_PARENT_OUTPUT = re.compile(r"^\$\{\{parent\.outputs\.(\w+)\}\}$")


@dataclass
class LocalRun:
    exit_codes: dict[str, int]
    folder: Path

    @property
    def registered(self) -> Path:
        return self.folder / "pipeline-outputs" / REGISTERED_OUTPUT

    def output(self, node: str, name: str) -> Path:
        return self.folder / node / name


def _render(command: str, bound: dict[str, str]) -> str:
    """Substitute bound inputs and outputs; drop optional ``$[[...]]`` blocks whose inputs are unbound."""

    def optional(block: re.Match[str]) -> str:
        names = [m.group(2) for m in _PLACEHOLDER.finditer(block.group(1))]
        return block.group(1) if all(n in bound for n in names) else ""

    return _PLACEHOLDER.sub(lambda m: bound[m.group(2)], _OPTIONAL.sub(optional, command))


def run_pipeline_locally(job: PipelineJob, inputs: dict[str, Path], folder: Path) -> LocalRun:
    document = job._to_dict()
    exit_codes: dict[str, int] = {}
    for node_name, node in document["jobs"].items():
        bound: dict[str, str] = {}
        for name, value in node.get("inputs", {}).items():
            path = value["path"] if isinstance(value, dict) else value
            match = _BINDING.match(str(path))
            if match and match.group(2):
                if match.group(2) in inputs:
                    bound[name] = str(inputs[match.group(2)])
            elif match:
                bound[name] = str(folder / match.group(3) / match.group(4))
            else:
                bound[name] = str(path)
        component = node["component"]
        for name in component.get("outputs", {}):
            parent_output = _PARENT_OUTPUT.match(str(node.get("outputs", {}).get(name, "")))
            # A pipeline output lands where Azure ML registers it from; a node output in its node's folder.
            target = (
                folder / "pipeline-outputs" / parent_output.group(1)
                if parent_output
                else folder / node_name / name
            )
            target.mkdir(parents=True, exist_ok=True)
            bound[name] = str(target)

        command = _render(component["command"], bound)
        env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        }
        result = subprocess.run(
            ["bash", "-c", command],
            cwd=component["code"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        exit_codes[node_name] = result.returncode
        if result.returncode != 0:
            (folder / f"{node_name}.stderr").write_text(result.stderr)
            break  # continue_on_step_failure is False: nothing downstream runs
    return LocalRun(exit_codes=exit_codes, folder=folder)


SETTINGS_FILE = Path(__file__).parent / "fixtures" / "mlops.yaml"
# The churn generator's data on purpose, under the fixture project's column names.
RENAMED = {
    "churned": "will_leave",
    "event_time": "signup_time",
    "customer_id": "account_ref",
    "region": "area",
}
QUICK: dict[str, Any] = {}


def _settings_file(folder: Path, overrides: dict[str, Any]) -> Path:
    settings = yaml.safe_load(SETTINGS_FILE.read_text())
    for section, values in overrides.items():
        settings[section] = {**settings.get(section, {}), **values}
    path = folder / "mlops.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


def _raw_data(folder: Path, *, shuffle_labels: bool = False) -> Path:
    frame = make_churn(3_000, start="2025-01-01", end="2025-09-30", seed=3).rename(columns=RENAMED)
    if shuffle_labels:
        frame["will_leave"] = np.random.default_rng(0).permutation(frame["will_leave"].to_numpy())
    raw = folder / "raw"
    raw.mkdir(parents=True)
    frame.to_parquet(raw / "part-0.parquet", index=False)
    return raw


def _pipeline(
    env: AzureEnvironment, settings: MlopsSettings, definitions: Definitions, *, champion: bool
) -> PipelineJob:
    code = Path(definitions.components["prep"].code)
    return build_training_pipeline(
        env,
        settings,
        build_components(settings, definitions.environment, code=code),
        training_data="azureml:acme-risk-training-data:snapshot-1",
        settings_data="azureml:acme-risk-settings:1",
        run_key="20250101000000",
        champion_model="azureml:acme-risk-model:1" if champion else None,
    )


def _gate(run: LocalRun) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(
        (run.output("evaluate", "evaluation") / "gate.json").read_text()
    )
    return document


@pytest.fixture(scope="module")
def first_model(
    dev_env: AzureEnvironment,
    settings: MlopsSettings,
    definitions: Definitions,
    tmp_path_factory: pytest.TempPathFactory,
) -> LocalRun:
    folder = tmp_path_factory.mktemp("first")
    inputs = {"raw_data": _raw_data(folder), "settings_yaml": _settings_file(folder, QUICK)}
    return run_pipeline_locally(
        _pipeline(dev_env, settings, definitions, champion=False), inputs, folder / "run"
    )


def test_a_good_first_model_passes_the_gate_and_is_registered(first_model: LocalRun) -> None:
    assert first_model.exit_codes == {
        "prep": 0,
        "train": 0,
        "evaluate": 0,
        "reference": 0,
        "register": 0,
    }
    assert _gate(first_model)["passed"] is True
    assert (first_model.registered / "model.joblib").is_file()
    # Contract 1: the registered folder carries the health-check payload and the digest.
    assert (first_model.registered / "sample_request.json").is_file()
    assert model_sha256(first_model.registered).startswith("sha256:")
    # The prediction reference registered beside it: validation rows with predictions.
    reference = first_model.folder / "pipeline-outputs" / "registered_reference"
    assert (reference / "MLTable").is_file()
    frame = pd.read_parquet(reference / "reference.parquet")
    assert {"will_leave", "will_leave_score", "tenure_months"} <= set(frame.columns)
    assert (
        json.loads((first_model.registered / "evaluation" / "gate.json").read_text())["passed"]
        is True
    )


def test_a_challenger_worse_than_the_champion_is_not_registered(
    first_model: LocalRun,
    dev_env: AzureEnvironment,
    settings: MlopsSettings,
    definitions: Definitions,
    tmp_path: Path,
) -> None:
    # A one-split model clears the (lowered) floor but is far worse than the champion.
    weak = {
        "training": {"hyperparameters": {"max_iter": 1, "max_leaf_nodes": 2}},
        "gate": {"min_metrics": {"auc": 0.5}},
    }
    inputs = {
        "raw_data": _raw_data(tmp_path),
        "settings_yaml": _settings_file(tmp_path, weak),
        "champion": first_model.registered,
    }
    run = run_pipeline_locally(
        _pipeline(dev_env, settings, definitions, champion=True), inputs, tmp_path / "run"
    )
    assert run.exit_codes == {"prep": 0, "train": 0, "evaluate": GATE_FAILED_EXIT_CODE}
    gate = _gate(run)
    assert gate["passed"] is False
    assert gate["champion"] is not None
    assert any("champion" in reason for reason in gate["reasons"]), gate["reasons"]
    assert not run.registered.exists()


def test_a_challenger_below_the_thresholds_is_not_registered(
    dev_env: AzureEnvironment, settings: MlopsSettings, definitions: Definitions, tmp_path: Path
) -> None:
    inputs = {
        "raw_data": _raw_data(tmp_path, shuffle_labels=True),
        "settings_yaml": _settings_file(tmp_path, QUICK),
    }
    run = run_pipeline_locally(
        _pipeline(dev_env, settings, definitions, champion=False), inputs, tmp_path / "run"
    )
    assert run.exit_codes == {"prep": 0, "train": 0, "evaluate": GATE_FAILED_EXIT_CODE}
    gate = _gate(run)
    assert gate["passed"] is False and gate["champion"] is None
    assert any("auc" in reason for reason in gate["reasons"]), gate["reasons"]
    assert not run.registered.exists()
