"""Command line: ``PYTHONPATH=azure python -m mlops_azure COMMAND --env ENV``.

* ``apply``: the workspace and registry (when absent), cluster, environments, settings,
  components, endpoint and the retrain wiring (``--dry-run --output DIR`` writes every
  definition instead, offline);
* ``train``: register the data snapshot, run the training pipeline, publish the model to
  the registry; prints ``name:version`` (and sets it as the Azure DevOps output ``model``);
* ``rollout --model name:version``: the gated blue/green rollout of that registry model,
  then the monitors follow it;
* ``rollback``: back to what served before; ``cleanup``: delete deployments whose grace
  period at 0% is over.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from azure.ai.ml import MLClient
from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError
from azure.mgmt.eventgrid import EventGridManagementClient
from azure.mgmt.monitor import MonitorManagementClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.privatedns import PrivateDnsManagementClient
from rich.console import Console
from rich.logging import RichHandler

from mlcore.errors import MlcoreError
from mlcore.settings import MlopsSettings, load_settings
from mlops_azure import assets
from mlops_azure.apply import (
    TrainingFailed,
    apply_event_grid,
    apply_workspace,
    data_files,
    ensure_workspace_and_registry,
    latest_model,
    run_training,
    write_dry_run,
)
from mlops_azure.config import (
    ENVIRONMENTS_DIR,
    SETTINGS_FILE,
    AzureEnvironment,
    coordinate_overrides,
    load_environment,
)
from mlops_azure.credentials import in_azure_pipelines, make_credential
from mlops_azure.definitions import (
    Definitions,
    build_definitions,
    deployment_builder,
    runtime_environment,
    spec_builder,
    training_job,
)
from mlops_azure.metrics import AzureMonitorMetrics, endpoint_resource_id
from mlops_azure.monitor_plan import MonitorPlan
from mlops_azure.network import (
    apply_managed_network,
    plan_network,
    workspace_resources,
    write_network_plan,
)
from mlops_azure.private_endpoints import apply_private_endpoints, subnet_location
from mlops_azure.promote import (
    RegistryModel,
    download_sample_request,
    publish,
    registry_model,
)
from mlops_azure.rollout import (
    DeploymentSpec,
    EndpointHealthCheck,
    EndpointRollout,
    Placed,
    RolloutError,
    RolloutResult,
    SyntheticLoad,
)
from mlops_azure.training_pipeline import model_name, new_run_key, reference_name

logger = logging.getLogger("mlops_azure")

EXIT_FAILED = 1
EXIT_CONFIG = 2
# Azure DevOps reads this line from a step's output as the output variable `model`.
OUTPUT_VARIABLE = "##vso[task.setvariable variable=model;isOutput=true]{value}"

Command = Callable[[argparse.Namespace, AzureEnvironment, MlopsSettings, Console], int]


class Clients:
    """The Azure clients of one environment, sharing one credential (built on first use)."""

    # Keyword options every client is built with (azure-core's per-client ``transport``,
    # for one): none outside tests.
    client_options: ClassVar[dict[str, Any]] = {}

    def __init__(self, env: AzureEnvironment) -> None:
        env.require_real_subscription()
        self.env = env
        self._credential: TokenCredential | None = None

    @property
    def credential(self) -> TokenCredential:
        if self._credential is None:
            self._credential = make_credential()
        return self._credential

    def workspace(self) -> MLClient:
        return MLClient(
            self.credential,
            subscription_id=self.env.subscription_id,
            resource_group_name=self.env.resource_group,
            workspace_name=self.env.workspace,
            **self.client_options,
        )

    def registry(self) -> MLClient:
        registry = self.env.registry
        return MLClient(
            self.credential,
            subscription_id=registry.subscription_id or self.env.subscription_id,
            resource_group_name=registry.resource_group or self.env.resource_group,
            registry_name=registry.name,
            **self.client_options,
        )

    def registry_admin(self) -> MLClient:
        """Scoped to the registry's resource group: where ``registries`` operations run."""
        registry = self.env.registry
        return MLClient(
            self.credential,
            subscription_id=registry.subscription_id or self.env.subscription_id,
            resource_group_name=registry.resource_group or self.env.resource_group,
            **self.client_options,
        )

    def metrics(self) -> AzureMonitorMetrics:
        env = self.env
        return AzureMonitorMetrics(
            MonitorManagementClient(self.credential, env.subscription_id, **self.client_options),
            endpoint_resource_id(
                env.subscription_id, env.resource_group, env.workspace, env.endpoint.name
            ),
        )

    def eventgrid(self) -> EventGridManagementClient:
        return EventGridManagementClient(
            self.credential, self.env.subscription_id, **self.client_options
        )

    def network(self, subscription_id: str) -> NetworkManagementClient:
        """Private endpoints live in their virtual network's subscription."""
        return NetworkManagementClient(self.credential, subscription_id, **self.client_options)

    def private_dns(self) -> PrivateDnsManagementClient:
        return PrivateDnsManagementClient(
            self.credential, self.env.subscription_id, **self.client_options
        )


def _definitions(
    args: argparse.Namespace, env: AzureEnvironment, settings: MlopsSettings, work_dir: Path
) -> Definitions:
    name, version = model_name(settings), args.model_version
    return build_definitions(
        env,
        settings,
        work_dir=work_dir,
        model=f"azureml://registries/{env.registry.name}/models/{name}/versions/{version}",
        reference_version=version,
        data_version=args.data_version,
        run_key=version,
        settings_file=Path(args.settings),
    )


def cmd_apply(
    args: argparse.Namespace, env: AzureEnvironment, settings: MlopsSettings, console: Console
) -> int:
    if args.dry_run:
        output = Path(args.output or f"out/azure/{env.name}")
        definitions = _definitions(args, env, settings, output)
        written = [
            *write_dry_run(definitions, output),
            write_network_plan(env, definitions, output),
        ]
        console.print(f"Wrote {len(written)} definitions to {output} (no Azure calls were made)")
        if not definitions.performance:
            console.print("No model-performance job: data.ground_truth_path is not set")
        for path in written:
            console.print(f"  {path}")
        return 0
    clients = Clients(env)
    client = clients.workspace()
    with tempfile.TemporaryDirectory(prefix="mlops-azure-") as tmp:
        definitions = _definitions(args, env, settings, Path(tmp))
        # A network that would block a job the kit runs is refused before anything changes.
        plan_network(env, definitions)
        # The monitors of the live deployment follow mlops.yaml: checked before anything changes.
        live = EndpointRollout(
            client,
            endpoint_name=env.endpoint.name,
            plan=env.rollout,
            health_check=lambda deployment: None,
            metrics=clients.metrics(),
            console=console,
        ).live_if_endpoint_exists()
        monitors = None
        if live is not None:
            model = _registry_model_of(clients, live.spec.model, env)
            monitors = _monitor_plan(env, settings, model, Path(args.settings), Path(tmp))
            monitors.check()
        ensure_workspace_and_registry(
            client, clients.registry_admin(), definitions, console=console
        )
        # Before the cluster and the endpoint: an online deployment in a managed network needs
        # the network provisioned first (Learn: how-to-managed-network).
        _apply_network(clients, client, env, definitions, console)
        apply_workspace(client, definitions, console=console)
        _apply_retrain_wiring(clients, env, definitions, console)
        if monitors is not None and live is not None:
            monitors.apply(client, live.colour, console=console)
    console.print(f"[green]Workspace {env.workspace} is up to date[/green]")
    return 0


def _apply_network(
    clients: Clients,
    client: MLClient,
    env: AzureEnvironment,
    definitions: Definitions,
    console: Console,
) -> None:
    resources = workspace_resources(client, env)
    apply_managed_network(client, env, definitions, resources, console=console)
    config = env.workspace_settings.private_endpoints
    if config is None:
        return
    subscription, _, _ = subnet_location(config)
    apply_private_endpoints(
        env,
        resources,
        network=clients.network(subscription),
        dns=clients.private_dns(),
        console=console,
    )


def _apply_retrain_wiring(
    clients: Clients, env: AzureEnvironment, definitions: Definitions, console: Console
) -> None:
    if env.retrain.enabled:
        apply_event_grid(clients.eventgrid(), env, definitions, console=console)
    else:
        console.print("Retraining on breached signals is off (retrain.enabled: false)")


def _registry_model_of(clients: Clients, reference: str, env: AzureEnvironment) -> RegistryModel:
    # azureml://registries/<registry>/models/<name>/versions/<version>
    parts = reference.split("/")
    return registry_model(clients.registry(), env.registry.name, f"{parts[5]}:{parts[7]}")


def cmd_train(
    args: argparse.Namespace, env: AzureEnvironment, settings: MlopsSettings, console: Console
) -> int:
    clients = Clients(env)
    client = clients.workspace()
    settings_file = Path(args.settings)
    # The steps read their thresholds from this asset (versioned by the file's hash).
    client.data.create_or_update(assets.build_settings_data(settings, settings_file))
    version = assets.snapshot_version(data_files(client, env, clients.credential))
    client.data.create_or_update(assets.build_training_data(env, settings, version))
    console.print(f"Training data {settings.project}-training-data:{version}")
    champion = latest_model(client, model_name(settings))
    console.print(f"Champion: {champion or 'none (first model)'}")
    run_key = new_run_key()
    with tempfile.TemporaryDirectory(prefix="mlops-azure-") as tmp:
        job = training_job(
            env,
            settings,
            environment=runtime_environment(env, settings),
            code_dir=Path(tmp) / "job-code",
            data_version=version,
            run_key=run_key,
            champion_model=champion,
            git_commit=args.git_commit,
            settings_file=settings_file,
        )
        job_name = run_training(client, job, console=console)
    published = publish(
        client,
        clients.registry(),
        registry_name=env.registry.name,
        model_name=model_name(settings),
        reference_name=reference_name(settings),
        version=run_key,
        job_name=job_name,
        console=console,
    )
    print(published.label)
    if in_azure_pipelines(os.environ):
        print(OUTPUT_VARIABLE.format(value=published.label))
    return 0


def _endpoint_rollout(
    clients: Clients,
    client: MLClient,
    env: AzureEnvironment,
    console: Console,
    request_file: Path | None,
) -> EndpointRollout:
    def no_request(deployment: str) -> None:
        raise RolloutError("no health-check request was prepared for this operation")

    return EndpointRollout(
        client,
        endpoint_name=env.endpoint.name,
        plan=env.rollout,
        health_check=(
            EndpointHealthCheck(
                client, env.endpoint.name, request_file, env.rollout.health_check_requests
            )
            if request_file
            else no_request
        ),
        metrics=clients.metrics(),
        console=console,
        load=(
            SyntheticLoad(
                client,
                env.endpoint.name,
                request_file,
                env.rollout.synthetic_requests_per_minute,
            )
            if request_file and env.rollout.synthetic_requests_per_minute
            else None
        ),
    )


def _roll_out(
    clients: Clients,
    env: AzureEnvironment,
    settings: MlopsSettings,
    console: Console,
    model: RegistryModel,
    previous: DeploymentSpec | None = None,
) -> RolloutResult:
    """Roll ``model`` out with the current environment and code, or ``previous`` exactly."""
    client = clients.workspace()
    with tempfile.TemporaryDirectory(prefix="mlops-azure-") as tmp:
        request = download_sample_request(clients.registry(), model, Path(tmp) / "model")
        rollout = _endpoint_rollout(clients, client, env, console, request)
        if previous is not None:
            assert previous.code_asset is not None
            build = spec_builder(env, settings, previous, code=previous.code_asset)
            return rollout.rollout(build, previous)
        serving = deployment_builder(
            env,
            settings,
            model=model.reference,
            model_sha256=model.model_sha256,
            environment=runtime_environment(env, settings, serving=True),
            code_dir=Path(tmp) / "serving-code",
        )
        return rollout.rollout(serving.build, serving.spec)


def _monitor_plan(
    env: AzureEnvironment,
    settings: MlopsSettings,
    model: RegistryModel,
    settings_file: Path,
    work_dir: Path,
) -> MonitorPlan:
    return MonitorPlan(
        env,
        settings,
        model=model,
        settings_file=settings_file,
        environment=runtime_environment(env, settings),
        work_dir=work_dir,
    )


def cmd_rollout(
    args: argparse.Namespace, env: AzureEnvironment, settings: MlopsSettings, console: Console
) -> int:
    clients = Clients(env)
    model = registry_model(clients.registry(), env.registry.name, args.model)
    with tempfile.TemporaryDirectory(prefix="mlops-azure-") as tmp:
        # Everything the SDK could refuse is refused here, while traffic is where it was.
        monitors = _monitor_plan(env, settings, model, Path(args.settings), Path(tmp))
        monitors.check()
        result = _roll_out(clients, env, settings, console, model)
        try:
            monitors.apply(clients.workspace(), result.live, console=console)
        except AzureError as exc:
            if not result.changed or result.retired is None:
                raise RolloutError(
                    f"{model.label} serves on {result.live!r}, but its monitors could not be "
                    f"pointed at it ({exc}); run `python -m mlops_azure apply` to retry them"
                ) from exc
            console.print(f"[red]Monitors could not follow {result.live!r}: {exc}[/red]")
            cmd_rollback(args, env, settings, console)
            raise RolloutError(
                f"the monitors of {model.label} could not be created ({exc}); the rollout was "
                f"rolled back: all traffic on {result.retired!r} again, with its monitors"
            ) from exc
    return 0


def cmd_rollback(
    args: argparse.Namespace, env: AzureEnvironment, settings: MlopsSettings, console: Console
) -> int:
    clients = Clients(env)
    client = clients.workspace()
    rollout = _endpoint_rollout(clients, client, env, console, None)

    def redeploy(spec: DeploymentSpec) -> RolloutResult:
        model = _registry_model_of(clients, spec.model, env)
        return _roll_out(clients, env, settings, console, model, previous=spec)

    colour = rollout.rollback(redeploy)
    live: Placed | None = rollout.live()
    if colour and live is not None:
        model = _registry_model_of(clients, live.spec.model, env)
        with tempfile.TemporaryDirectory(prefix="mlops-azure-") as tmp:
            monitors = _monitor_plan(env, settings, model, Path(args.settings), Path(tmp))
            monitors.check()
            monitors.apply(client, live.colour, console=console)
    return 0


def cmd_batch_deploy(
    args: argparse.Namespace, env: AzureEnvironment, settings: MlopsSettings, console: Console
) -> int:
    from mlops_azure.assets import build_settings_data
    from mlops_azure.batch import batch_config, deploy_batch

    if env.batch is None and args.if_configured:
        console.print(f"No batch scoring in {env.name}: its environment has no batch section")
        return 0
    batch_config(env)  # a stage without a batch section is refused before any call
    clients = Clients(env)
    model = registry_model(clients.registry(), env.registry.name, args.model)
    with tempfile.TemporaryDirectory(prefix="mlops-azure-") as tmp:
        deploy_batch(
            clients.workspace(),
            env,
            settings,
            model=model,
            settings_data=build_settings_data(settings, Path(args.settings)),
            work_dir=Path(tmp),
            console=console,
        )
    return 0


def cmd_cleanup(
    args: argparse.Namespace, env: AzureEnvironment, settings: MlopsSettings, console: Console
) -> int:
    clients = Clients(env)
    removed = _endpoint_rollout(clients, clients.workspace(), env, console, None).cleanup()
    console.print(f"Removed {removed or 'nothing'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mlops_azure", description="Azure ML definitions of the MLOps loop."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str, handler: Command) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.add_argument("--env", required=True, help="environment: ENVIRONMENTS/ENV.yaml")
        command.add_argument(
            "--environments",
            default=str(ENVIRONMENTS_DIR),
            help="folder of the per-environment Azure settings (default: azure/environments)",
        )
        command.add_argument(
            "--settings",
            default=os.environ.get("MLOPS_SETTINGS", str(SETTINGS_FILE)),
            help="lifecycle settings shared with AWS and the local run "
            "(default: $MLOPS_SETTINGS, else mlops.yaml)",
        )
        command.set_defaults(handler=handler)
        return command

    apply = add(
        "apply", "create or update the workspace's assets and the retrain wiring", cmd_apply
    )
    apply.add_argument(
        "--dry-run", action="store_true", help="write the definitions; no Azure calls"
    )
    apply.add_argument("--output", help="folder for --dry-run (default: out/azure/ENV)")
    apply.add_argument(
        "--model-version",
        default="1",
        help="registry model version the written deployment and monitors use (default: 1)",
    )
    apply.add_argument(
        "--data-version",
        default="dry-run",
        help="version the written training data asset gets; `train` uses the data's fingerprint",
    )
    train = add("train", "train, gate and publish a model to the registry", cmd_train)
    train.add_argument(
        "--git-commit", help="commit the model is trained from (recorded as lineage)"
    )
    rollout = add("rollout", "gated blue/green rollout of a registry model", cmd_rollout)
    rollout.add_argument(
        "--model", required=True, metavar="NAME:VERSION", help="the registry model (Train's output)"
    )
    add("rollback", "return the endpoint to what served before the last rollout", cmd_rollback)
    batch_deploy = add(
        "batch-deploy",
        "deploy a registry model to the batch endpoint and schedule its runs (batch section)",
        cmd_batch_deploy,
    )
    batch_deploy.add_argument(
        "--model", required=True, metavar="NAME:VERSION", help="the registry model (Train's output)"
    )
    batch_deploy.add_argument(
        "--if-configured",
        action="store_true",
        help="do nothing (exit 0) when the environment has no batch section, as in a pipeline "
        "that deploys every stage alike",
    )
    add("cleanup", "delete deployments whose grace period at 0% traffic is over", cmd_cleanup)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console(stderr=True)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False)],
    )
    # The SDK prints a notice for each experimental class it meets (the data collector and
    # the monitoring schema among them) on every run; keep them for --verbose.
    if not args.verbose:
        logging.getLogger("azure.ai.ml._utils._experimental").setLevel(logging.ERROR)
        # azure-core logs every request and response at INFO (http_logging_policy), and
        # azure-ai-ml each operation's telemetry: keep both for --verbose.
        logging.getLogger("azure").setLevel(logging.WARNING)
    try:
        env = load_environment(
            args.env,
            environments_dir=Path(args.environments),
            overrides=coordinate_overrides(os.environ, args.env),
        )
        settings = load_settings(args.settings)
        code: int = args.handler(args, env, settings, console)
    except (TrainingFailed, RolloutError) as exc:
        console.print(f"[red]failed:[/red] {exc}")
        return EXIT_FAILED
    except MlcoreError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return EXIT_CONFIG
    except AzureError as exc:
        console.print(f"[red]Azure error:[/red] {exc}")
        return EXIT_FAILED
    return code


if __name__ == "__main__":
    sys.exit(main())
