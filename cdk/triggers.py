"""What starts the model-build pipeline: a schedule, new data, and CI/CD after a deploy.

EventBridge has no ready-made target for SageMaker pipelines in aws-cdk-lib (aws-cdk issue
14887), so ``StartPipelineTarget`` is a small IRuleTarget that points a rule at the pipeline
with a role allowed to start only that pipeline.
"""

from __future__ import annotations

import jsii
from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk.interfaces.aws_events import IRuleRef
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from cdk.model_build import ModelBuild


@jsii.implements(events.IRuleTarget)
class StartPipelineTarget:
    """An EventBridge target that starts a SageMaker pipeline with its default parameters."""

    def __init__(
        self, model_build: ModelBuild, role: iam.IRole, *, retry_attempts: int = 3
    ) -> None:
        self._model_build = model_build
        self._role = role
        self._retry_attempts = retry_attempts

    # The parameters as events.IRuleTarget names and types them, so mypy sees the protocol.
    def bind(
        self,
        rule: IRuleRef,
        id: str | None = None,
    ) -> events.RuleTargetConfig:
        return events.RuleTargetConfig(
            arn=self._model_build.pipeline_arn,
            role=self._role,
            retry_policy=events.CfnRule.RetryPolicyProperty(
                maximum_retry_attempts=self._retry_attempts,
                maximum_event_age_in_seconds=int(Duration.hours(1).to_seconds()),
            ),
        )


class ModelBuildTriggers(Construct):
    """Start the model-build pipeline on a schedule, on new data, and from CI/CD.

    :param model_build: the pipeline to start.
    :param data_bucket: the bucket training data lands in (EventBridge notifications enabled).
    :param data_prefix: key prefix of the training data. Default: ``training-data``.
    :param ready_marker: the object name that says a data drop is complete; one run starts per
        marker, not per file. Default: ``_SUCCESS`` (the Hadoop/Spark convention).
    :param schedule: periodic retraining. Default: none.
    :param retrain_on_new_data: start a run when a ready marker lands. Default: true.
    :param ci_role_name: create a role with this name that CI/CD assumes to start the pipeline
        and wait for it after a deploy ("train on commit"). Default: no such role.
    :param ci_account: the account allowed to assume that role. Default: this stack's account.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        model_build: ModelBuild,
        data_bucket: s3.IBucket,
        data_prefix: str = "training-data",
        ready_marker: str = "_SUCCESS",
        schedule: events.Schedule | None = None,
        retrain_on_new_data: bool = True,
        ci_role_name: str | None = None,
        ci_account: str | None = None,
    ) -> None:
        super().__init__(scope, id_)
        if "/" in ready_marker or not ready_marker:
            raise ValueError(
                f"ready_marker must be a plain object name such as '_SUCCESS'; got {ready_marker!r}"
            )
        if ci_account is not None and ci_role_name is None:
            raise ValueError(
                "ci_account only makes sense with ci_role_name: name the role CI/CD assumes"
            )
        self.schedule_rule: events.Rule | None = None
        self.new_data_rule: events.Rule | None = None
        self.ci_role: iam.Role | None = None

        if schedule is not None or retrain_on_new_data:
            events_role = iam.Role(
                self,
                "EventsRole",
                assumed_by=iam.ServicePrincipal("events.amazonaws.com"),
                description=f"Lets EventBridge start the {model_build.pipeline_name} pipeline",
            )
            model_build.grant_start_execution(events_role)
            target = StartPipelineTarget(model_build, events_role)
            if schedule is not None:
                self.schedule_rule = events.Rule(
                    self,
                    "Schedule",
                    description=f"Periodic retraining with {model_build.pipeline_name}",
                    schedule=schedule,
                    targets=[target],
                )
            if retrain_on_new_data:
                self.new_data_rule = events.Rule(
                    self,
                    "NewData",
                    description=(
                        f"Retrain when s3://<data bucket>/{data_prefix}/.../{ready_marker} lands"
                    ),
                    event_pattern=events.EventPattern(
                        source=["aws.s3"],
                        detail_type=["Object Created"],
                        detail={
                            "bucket": {"name": [data_bucket.bucket_name]},
                            "object": {"key": [{"wildcard": f"{data_prefix}/*{ready_marker}"}]},
                        },
                    ),
                    targets=[target],
                )

        if ci_role_name is not None:
            principal: iam.IPrincipal = (
                iam.AccountPrincipal(ci_account) if ci_account else iam.AccountRootPrincipal()
            )
            self.ci_role = iam.Role(
                self,
                "CiRole",
                role_name=ci_role_name,
                assumed_by=principal,
                description=(
                    f"CI/CD assumes this to start {model_build.pipeline_name} after a deploy and "
                    "wait for the run"
                ),
                max_session_duration=Duration.hours(12),
            )
            model_build.grant_run(self.ci_role)
            NagSuppressions.add_resource_suppressions(
                self.ci_role,
                [
                    NagPackSuppression(
                        id="AwsSolutions-IAM5",
                        reason=(
                            "Execution ids are assigned when a run starts; the role may watch and "
                            "stop executions of this one pipeline only."
                        ),
                        applies_to=[{"regex": "/^Resource::arn:.*:pipeline/.*/execution/\\*$/"}],
                    )
                ],
                apply_to_children=True,
            )

    @staticmethod
    def ci_role_arn(stack: Stack, role_name: str, account: str | None = None) -> str:
        """The ARN a CI/CD step assumes, known before the stage is deployed."""
        return stack.format_arn(
            service="iam",
            region="",
            account=account or stack.account,
            resource="role",
            resource_name=role_name,
        )
