"""Command line: ``PYTHONPATH=azure python -m mlops_azure COMMAND --env ENV``.

* ``apply``: compute, environment, data assets, components and the endpoint
  (``--dry-run --output DIR`` writes every entity as YAML instead, offline);
* ``train``: submit the training pipeline and wait; fails when the gate fails;
* ``rollout``: blue/green rollout of a registered model, then point the monitor at it;
* ``rollback``: back to the model that served before the latest rollout.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from azure.ai.ml import MLClient
from azure.core.exceptions import AzureError
from azure.identity import DefaultAzureCredential
from rich.console import Console
from rich.logging import RichHandler

from mlcore.errors import MlcoreError
from mlcore.settings import MlopsSettings, load_settings
from mlops_azure import assets
from mlops_azure.apply import (
    TrainingFailed,
    apply_workspace,
    latest_model,
    run_training,
    serving_deployment,
    write_dry_run,
)
from mlops_azure.config import (
    REPO_ROOT,
    SETTINGS_FILE,
    AzureEnvironment,
    coordinate_overrides,
    load_environment,
)
from mlops_azure.definitions import (
    Definitions,
    build_definitions,
    deployment_builder,
    monitor_for,
    runtime_environment,
    training_job,
)
from mlops_azure.progress import wait_for
from mlops_azure.promote import promote_live_model
from mlops_azure.rollout import EndpointHealthCheck, EndpointRollout, RolloutError, RolloutResult
from mlops_azure.training_pipeline import model_name

logger = logging.getLogger("mlops_azure")

EXIT_FAILED = 1
EXIT_CONFIG = 2

Command = Callable[[argparse.Namespace, AzureEnvironment, MlopsSettings, Console], int]


def make_client(env: AzureEnvironment) -> MLClient:
    """An MLClient for the environment's workspace; credentials come from the environment."""
    env.require_real_subscription()
    return MLClient(
        DefaultAzureCredential(),
        subscription_id=env.subscription_id,
        resource_group_name=env.resource_group,
        workspace_name=env.workspace,
    )


def _model_ref(settings: MlopsSettings, version: str) -> str:
    return f"azureml:{model_name(settings)}:{version}"


def cmd_apply(
    args: argparse.Namespace, env: AzureEnvironment, settings: MlopsSettings, console: Console
) -> int:
    def definitions(work_dir: Path) -> Definitions:
        return build_definitions(
            env,
            settings,
            work_dir=work_dir,
            model=_model_ref(settings, args.model_version),
            settings_file=Path(args.settings),
        )

    if args.dry_run:
        output = Path(args.output or f"out/azure/{env.name}")
        written = write_dry_run(definitions(output), output)
        console.print(f"Wrote {len(written)} definitions to {output} (no Azure calls were made)")
        for path in written:
            console.print(f"  {path}")
        return 0
    client = make_client(env)
    with tempfile.TemporaryDirectory(prefix="mlops-azure-") as tmp:
        apply_workspace(client, definitions(Path(tmp)), console=console)
    # Thresholds edited in mlops.yaml reach the monitor of the serving deployment now,
    # not only at the next rollout.
    live = serving_deployment(client, env.endpoint.name)
    if live:
        _point_monitor(client, env, settings, console, live)
    console.print(f"[green]Workspace {env.workspace} is up to date[/green]")
    return 0


def cmd_train(
    args: argparse.Namespace, env: AzureEnvironment, settings: MlopsSettings, console: Console
) -> int:
    client = make_client(env)
    # The steps read their thresholds from this asset; registering it here (idempotent: the
    # version is the file's hash) means an edited mlops.yaml needs no separate `apply`.
    client.data.create_or_update(assets.build_settings_data(settings, Path(args.settings)))
    champion = latest_model(client, model_name(settings))
    console.print(f"Champion: {champion or 'none (first model)'}")
    job = training_job(
        env,
        settings,
        environment=runtime_environment(env, settings),
        champion_model=champion,
        git_commit=args.git_commit,
        settings_file=Path(args.settings),
    )
    run_training(client, job, console=console)
    console.print(f"[green]Registered a new version of {model_name(settings)}[/green]")
    return 0


def _endpoint_rollout(client: MLClient, env: AzureEnvironment, console: Console) -> EndpointRollout:
    return EndpointRollout(
        client,
        endpoint_name=env.endpoint.name,
        plan=env.rollout,
        health_check=EndpointHealthCheck(
            client,
            env.endpoint.name,
            REPO_ROOT / env.rollout.health_check_request_file,
            env.rollout.health_check_requests,
        ),
        console=console,
    )


def _roll_out(
    client: MLClient,
    env: AzureEnvironment,
    settings: MlopsSettings,
    console: Console,
    model: str,
) -> RolloutResult:
    with tempfile.TemporaryDirectory(prefix="mlops-azure-") as tmp:
        build = deployment_builder(
            env,
            settings,
            model=model,
            environment=runtime_environment(env, settings, serving=True),
            code_dir=Path(tmp) / "serving-code",
        )
        return _endpoint_rollout(client, env, console).rollout(build)


def _point_monitor(
    client: MLClient,
    env: AzureEnvironment,
    settings: MlopsSettings,
    console: Console,
    live: str,
) -> None:
    monitor = monitor_for(env, settings, live)
    wait_for(
        client.schedules.begin_create_or_update(monitor),
        f"Monitor {monitor.name} -> {live}",
        console=console,
    )


def _environment(name: str) -> AzureEnvironment:
    # Coordinates from an Azure DevOps variable group (MLOPS_AZURE_<ENV>_*) win over the file.
    return load_environment(name, overrides=coordinate_overrides(os.environ, name))


def cmd_rollout(
    args: argparse.Namespace, env: AzureEnvironment, settings: MlopsSettings, console: Console
) -> int:
    client = make_client(env)
    model: str | None
    if args.promote_from:
        if args.model_version:
            raise MlcoreError("give --promote-from or --model-version, not both")
        source = _environment(args.promote_from)
        model = promote_live_model(
            make_client(source),
            client,
            source_endpoint=source.endpoint.name,
            source_label=f"{source.name} ({source.workspace})",
            console=console,
        )
    elif args.model_version:
        model = _model_ref(settings, args.model_version)
    else:
        model = latest_model(client, model_name(settings))
    if model is None:
        raise MlcoreError(f"no registered {model_name(settings)} to roll out: run `train` first")
    result = _roll_out(client, env, settings, console, model)
    _point_monitor(client, env, settings, console, result.live)
    return 0


def cmd_rollback(
    args: argparse.Namespace, env: AzureEnvironment, settings: MlopsSettings, console: Console
) -> int:
    client = make_client(env)
    live = _endpoint_rollout(client, env, console).rollback(
        lambda model: _roll_out(client, env, settings, console, model)
    )
    _point_monitor(client, env, settings, console, live)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mlops_azure", description="Azure ML definitions of the MLOps loop."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str, handler: Command) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.add_argument(
            "--env", required=True, help="environment: azure/environments/ENV.yaml"
        )
        command.add_argument(
            "--settings",
            default=str(SETTINGS_FILE),
            help="lifecycle settings shared with AWS and the local run (default: mlops.yaml)",
        )
        command.set_defaults(handler=handler)
        return command

    apply = add(
        "apply", "create or update compute, environment, data, components and endpoint", cmd_apply
    )
    apply.add_argument(
        "--dry-run", action="store_true", help="write YAML definitions; no Azure calls"
    )
    apply.add_argument("--output", help="folder for --dry-run (default: out/azure/ENV)")
    apply.add_argument(
        "--model-version",
        default="1",
        help="model version the dry-run deployment serves (default: 1)",
    )
    train = add("train", "submit the training pipeline and wait for it", cmd_train)
    train.add_argument(
        "--git-commit", help="commit the model is trained from (recorded as lineage)"
    )
    rollout = add("rollout", "blue/green rollout of a registered model", cmd_rollout)
    rollout.add_argument(
        "--model-version", help="version to roll out (default: the latest registered)"
    )
    rollout.add_argument(
        "--promote-from",
        metavar="ENV",
        help="first copy the model live on ENV's endpoint into this workspace, then roll it out",
    )
    add(
        "rollback",
        "return the endpoint to the model that served before the last rollout",
        cmd_rollback,
    )
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
    try:
        env = _environment(args.env)
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
