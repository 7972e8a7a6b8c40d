"""One screen on what ``cdk deploy`` would create: stacks per environment, resources by type,
cdk-nag and cfn-lint status. Needs no AWS credentials and no network::

    python -m cdk.summary                 # synthesise into cdk.out, then summarise
    python -m cdk.summary --no-synth      # summarise an existing cdk.out (after `make synth`)

Exit code 0 when cdk-nag and cfn-lint report no errors, 1 otherwise.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent

# cfn-lint rules we do not apply, each with its reason.
CFN_LINT_IGNORED = {
    # A style preference ("use Fn::Sub over Fn::Join with ''"), raised on the Fn::Join that
    # CDK Pipelines itself writes into CodePipeline action configurations.
    "E3703",
}


@dataclass(frozen=True)
class StackSummary:
    """One synthesised stack: where it goes and what it holds."""

    environment: str
    stack_name: str
    path: str
    template: Path
    resources: Counter[str]
    nag_errors: tuple[str, ...] = ()
    nag_suppressed: int = 0
    lint_errors: tuple[str, ...] = ()


@dataclass(frozen=True)
class SynthSummary:
    stacks: tuple[StackSummary, ...]
    outdir: Path
    stages: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not any(s.nag_errors or s.lint_errors for s in self.stacks)


def iter_stacks(
    outdir: Path, environment: str = "toolchain"
) -> Iterator[tuple[str, dict[str, Any], Path]]:
    """(environment, manifest artifact, assembly dir) for every stack, nested stages included."""
    manifest_path = outdir / "manifest.json"
    if not manifest_path.exists():
        raise ValueError(
            f"{outdir} holds no cloud assembly (no manifest.json): run `make synth` first"
        )
    manifest = json.loads(manifest_path.read_text())
    for artifact_id, artifact in manifest.get("artifacts", {}).items():
        kind = artifact.get("type")
        if kind == "aws:cloudformation:stack":
            yield environment, artifact, outdir
        elif kind == "cdk:cloud-assembly":
            directory = outdir / artifact["properties"]["directoryName"]
            stage = artifact.get("displayName") or artifact_id.rsplit("-", 1)[-1]
            yield from iter_stacks(directory, stage.rsplit("/", 1)[-1].lower())


def nag_findings(outdir: Path) -> list[dict[str, str]]:
    """Every row of the cdk-nag reports (``AwsSolutions-*-NagReport.csv``) in ``outdir``."""
    rows: list[dict[str, str]] = []
    for report in sorted(outdir.glob("*-NagReport.csv")):
        with report.open(newline="") as handle:
            rows.extend(csv.DictReader(handle))
    return rows


def lint_template(template: Path) -> list[str]:
    """cfn-lint errors (not warnings) for one template, as ``RULE message (line)`` strings."""
    from cfnlint.api import ManualArgs, lint_file

    matches = lint_file(template, config=ManualArgs(ignore_checks=sorted(CFN_LINT_IGNORED)))
    return [
        f"{m.rule.id} {m.message} (line {m.linenumber})"
        for m in matches
        if m.rule.severity.lower() == "error"
    ]


def summarize(outdir: Path, *, lint: bool = True) -> SynthSummary:
    """Read a synthesised cloud assembly and check it with cdk-nag's reports and cfn-lint."""
    # The toolchain (CI/CD) stack first, then the environments in promotion order.
    found = sorted(iter_stacks(outdir), key=lambda item: item[0] != "toolchain")
    paths = [artifact.get("displayName", "") for _, artifact, _ in found]
    # A finding belongs to the stack whose construct path is its longest prefix (the CI/CD
    # stack's path is a prefix of the stages' paths).
    rows_by_path: dict[str, list[dict[str, str]]] = {path: [] for path in paths}
    for row in nag_findings(outdir):
        owners = [path for path in paths if row["Resource ID"].startswith(path + "/")]
        if owners:
            rows_by_path[max(owners, key=len)].append(row)
    stacks: list[StackSummary] = []
    for (environment, artifact, directory), path in zip(found, paths, strict=True):
        properties = artifact["properties"]
        template = directory / properties["templateFile"]
        body = json.loads(template.read_text())
        mine = rows_by_path[path]
        stacks.append(
            StackSummary(
                environment=environment,
                stack_name=properties.get("stackName", path),
                path=path,
                template=template,
                resources=Counter(r["Type"] for r in body.get("Resources", {}).values()),
                nag_errors=tuple(
                    f"{row['Rule ID']} {row['Resource ID']}"
                    for row in mine
                    if row["Compliance"] == "Non-Compliant" and row["Rule Level"] == "Error"
                ),
                nag_suppressed=sum(row["Compliance"] == "Suppressed" for row in mine),
                lint_errors=tuple(lint_template(template)) if lint else (),
            )
        )
    stages = tuple(dict.fromkeys(s.environment for s in stacks))
    return SynthSummary(stacks=tuple(stacks), outdir=outdir, stages=stages)


def synthesize(outdir: Path) -> None:
    """Synthesise the app from cdk.json and mlops.yaml into ``outdir``, in this process."""
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    from aws_cdk import App

    from cdk.assembly import build_app, cdk_json_context, silence_sagemaker_sdk_logging

    silence_sagemaker_sdk_logging()

    app = App(context=cdk_json_context(REPOSITORY_ROOT), outdir=str(outdir))
    build_app(app, repository_root=REPOSITORY_ROOT)
    app.synth()


def _grouped(resources: Counter[str]) -> Counter[str]:
    """Resource counts with a stage network's many EC2 types (VPC, subnets, routes, endpoints,
    security groups and their rules) on one line, so the summary stays one screen."""
    grouped: Counter[str] = Counter()
    for kind, count in resources.items():
        grouped["AWS::EC2::* (network)" if kind.startswith("AWS::EC2::") else kind] += count
    return grouped


def render(summary: SynthSummary) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console()
    stacks = Table(
        title="cdk deploy would create",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
    )
    for column in ("stack", "resources", "cdk-nag", "cfn-lint"):
        stacks.add_column(column)
    for stack in summary.stacks:
        nag = (
            f"[red]{len(stack.nag_errors)} errors[/red]"
            if stack.nag_errors
            else f"[green]pass[/green], {stack.nag_suppressed} justified"
        )
        lint = (
            f"[red]{len(stack.lint_errors)} errors[/red]"
            if stack.lint_errors
            else "[green]pass[/green]"
        )
        stacks.add_row(stack.stack_name, str(sum(stack.resources.values())), nag, lint)
    console.print(stacks)

    by_type = Table(
        title="Resources by type (AWS::)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
    )
    by_type.add_column("type")
    for environment in summary.stages:
        by_type.add_column(environment, justify="right")
    per_env = {
        env: sum((_grouped(s.resources) for s in summary.stacks if s.environment == env), Counter())
        for env in summary.stages
    }
    for kind in sorted(set().union(*per_env.values())):
        by_type.add_row(
            kind.removeprefix("AWS::"),
            *(str(per_env[env].get(kind, 0) or "") for env in summary.stages),
        )
    console.print(by_type)
    for stack in summary.stacks:
        for problem in (*stack.nag_errors, *stack.lint_errors):
            console.print(f"[red]{stack.stack_name}: {problem}[/red]")
    verdict = "[green]all checks pass[/green]" if summary.ok else "[red]checks failed[/red]"
    console.print(
        f"{len(summary.stacks)} stacks in {len(summary.stages)} environments: {verdict} "
        f"(templates in {summary.outdir})"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cdk.summary", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--outdir", type=Path, default=REPOSITORY_ROOT / "cdk.out")
    parser.add_argument("--no-synth", action="store_true", help="summarise an existing cdk.out")
    args = parser.parse_args(argv)
    # The summary is the output: library chatter (the SDK noting that a PipelineSession starts
    # no jobs, cfn-lint's line per template) would push it off the screen.
    warnings.filterwarnings(
        "ignore", message="Running within a PipelineSession", category=UserWarning
    )
    try:
        if not args.no_synth:
            synthesize(args.outdir)
        # The SageMaker SDK configures the root logger at INFO while it builds the definition.
        logging.getLogger().setLevel(logging.WARNING)
        logging.getLogger("cfnlint").setLevel(logging.WARNING)
        summary = summarize(args.outdir)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    render(summary)
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())
