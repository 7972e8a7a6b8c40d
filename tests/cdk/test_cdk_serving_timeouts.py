"""mlops.yaml's ``serving:`` timeouts reach the endpoint's container (issue 20, finding 5).

The serving container carries no settings file, so before this the server always ran on the
built-in limits whatever the team set. The SageMaker Model now hands the section over as
``MLCORE_SERVING``; these tests read it from the synthesised template of every serving stack
(the four-account app, fixture settings with non-default timeouts) and start the server's
option resolution with exactly that environment.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import pytest
from mlops_testing.cloudformation import CloudAssembly

from mlcore.errors import ConfigError
from mlcore.serve.cli import add_serve_parser, options_from_args
from mlcore.serve.defaults import SERVING_ENV
from mlcore.serve.server import serving_from_environment
from mlcore.settings import load_settings

pytestmark = pytest.mark.xdist_group("cdk_synth")

_MODEL = "arn:aws:sagemaker:eu-west-1:{account}:model-package/acme-{environment}-models/3"


@pytest.fixture(scope="module")
def assembly(four_accounts: Any) -> CloudAssembly:
    return CloudAssembly.load(four_accounts.outdir)


def _model_environments(assembly: CloudAssembly) -> dict[str, dict[str, str]]:
    found = {}
    for environment in ("Dev", "Staging", "Prod"):
        stack = assembly.stack(f"{environment}-Serving")
        stack = stack.with_parameters(
            ModelPackageArn=_MODEL.format(account=stack.account, environment=environment.lower()),
            ModelSha256="sha256:" + "1" * 64,
        )
        (model,) = stack.resources("AWS::SageMaker::Model").values()
        (container,) = model["Properties"]["Containers"]
        found[environment] = container["Environment"]
    return found


def _serve_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_serve_parser(parser.add_subparsers())
    return parser.parse_args(["serve", *argv])


def test_every_endpoint_model_carries_the_serving_section_of_mlops_yaml(
    assembly: CloudAssembly, four_accounts: Any
) -> None:
    from mlops_fixture_four_account_app import SETTINGS_FILE

    expected = load_settings(SETTINGS_FILE).serving
    assert expected.scoring_timeout_seconds == 40  # the fixture's, not the default 50
    for environment, variables in _model_environments(assembly).items():
        assert json.loads(variables[SERVING_ENV]) == expected.model_dump(), environment


def test_the_container_serves_with_the_timeouts_its_model_was_given(
    assembly: CloudAssembly, monkeypatch: pytest.MonkeyPatch
) -> None:
    variables = _model_environments(assembly)["Prod"]
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MLOPS_SETTINGS", raising=False)
    monkeypatch.chdir("/")  # the container: no mlops.yaml anywhere up from here
    options = options_from_args(_serve_args())
    assert (
        options.header_timeout_seconds,
        options.body_timeout_seconds,
        options.scoring_timeout_seconds,
        options.keep_alive_seconds,
    ) == (8, 20, 40, 4)
    # What the app enforces per request, and what uvicorn is configured with.
    assert options.limits.scoring_timeout_seconds == 40
    assert options.limits.body_timeout_seconds == 20


def test_the_deployed_section_wins_over_a_settings_file(
    monkeypatch: pytest.MonkeyPatch, settings_file: Any
) -> None:
    monkeypatch.setenv(SERVING_ENV, json.dumps({"scoring_timeout_seconds": 12}))
    options = options_from_args(_serve_args("--settings", str(settings_file)))
    assert options.scoring_timeout_seconds == 12
    assert options.header_timeout_seconds == 10  # the rest: the section's defaults


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ('{"scoring_timeout_seconds": 0}', "scoring_timeout_seconds"),
        ('{"scoring_timout_seconds": 5}', "scoring_timout_seconds"),
        ("not json", "serving section"),
    ],
)
def test_a_broken_serving_variable_is_refused_with_what_to_fix(raw: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as refused:
        serving_from_environment({SERVING_ENV: raw})
    assert "mlops.yaml" in str(refused.value) and "deploy again" in str(refused.value)


def test_without_the_variable_nothing_changes() -> None:
    assert serving_from_environment({}) is None
