"""Failures that would otherwise be silent, sent to the environment's SNS topic.

- every Lambda function of the environment (monitor starter, publisher, retrain gate, the
  release flow's functions, the pipeline's CheckInputs, and any added later): an ``Errors``
  alarm per function;
- failed or stopped model-build executions: an EventBridge rule on SageMaker's "SageMaker
  Model Building Pipeline Execution Status Change" event;
- failed, timed-out or aborted release executions: an EventBridge rule on Step Functions'
  "Step Functions Execution Status Change" event of each release state machine (a state that
  raises without a Catch ends the execution FAILED and would tell nobody);
- failed or stopped batch transform jobs (cdk/batch): an EventBridge rule on SageMaker's
  "SageMaker Transform Job State Change" event for the environment's job-name prefixes.

Event shapes: SageMaker's "Events that Amazon SageMaker AI sends to Amazon EventBridge"
(detail.pipelineArn, detail.currentPipelineExecutionStatus) and Step Functions'
"Automating Step Functions event delivery with EventBridge" (detail.stateMachineArn,
detail.status).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as events_targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct, IConstruct

PIPELINE_STATUS_EVENT = "SageMaker Model Building Pipeline Execution Status Change"
STATE_MACHINE_STATUS_EVENT = "Step Functions Execution Status Change"
TRANSFORM_JOB_STATUS_EVENT = "SageMaker Transform Job State Change"
FAILED_TRANSFORM_STATUSES = ("Failed", "Stopped")
FAILED_PIPELINE_STATUSES = ("Failed", "Stopped")
FAILED_EXECUTION_STATUSES = ("FAILED", "TIMED_OUT", "ABORTED")


def functions_in(scopes: Iterable[IConstruct]) -> list[lambda_.Function]:
    """Every Lambda function defined under ``scopes`` (in construct-tree order)."""
    found: dict[str, lambda_.Function] = {}
    for scope in scopes:
        for child in scope.node.find_all():
            if isinstance(child, lambda_.Function):
                found.setdefault(child.node.path, child)
    return list(found.values())


def state_machines_in(scopes: Iterable[IConstruct]) -> list[sfn.StateMachine]:
    found: dict[str, sfn.StateMachine] = {}
    for scope in scopes:
        for child in scope.node.find_all():
            if isinstance(child, sfn.StateMachine):
                found.setdefault(child.node.path, child)
    return list(found.values())


class FailureAlarms(Construct):
    """Alarms and rules that put every control-plane failure of an environment on ``topic``.

    :param topic: the environment's alerts topic.
    :param functions: the Lambda functions to watch (an ``Errors`` alarm each).
    :param pipeline_names: model-build pipelines whose failed executions are reported.
    :param state_machines: release state machines whose failed executions are reported.
    :param prefix: the alarm name prefix, e.g. the endpoint name.
    :param transform_job_prefixes: names of batch transform jobs whose failures are reported
        start with one of these. Default: none.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        topic: sns.ITopic,
        functions: Sequence[lambda_.IFunction],
        pipeline_names: Sequence[str],
        state_machines: Sequence[sfn.IStateMachine],
        prefix: str,
        transform_job_prefixes: Sequence[str] = (),
    ) -> None:
        super().__init__(scope, id_)
        stack = Stack.of(self)
        action = cloudwatch_actions.SnsAction(topic)
        self.function_alarms: list[cloudwatch.Alarm] = []
        for index, function in enumerate(functions):
            alarm = cloudwatch.Alarm(
                self,
                f"FunctionErrors{index}",
                alarm_description=(
                    f"{function.node.path} raised an error: a control-plane step did not run "
                    "(see the function's log group)"
                ),
                metric=function.metric_errors(period=Duration.minutes(5), statistic="Sum"),
                threshold=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                evaluation_periods=1,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            alarm.add_alarm_action(action)
            self.function_alarms.append(alarm)

        self.pipeline_rule: events.Rule | None = None
        if pipeline_names:
            self.pipeline_rule = events.Rule(
                self,
                "ModelBuildFailed",
                description=f"{prefix}: a model-build execution failed or was stopped",
                event_pattern=events.EventPattern(
                    source=["aws.sagemaker"],
                    detail_type=[PIPELINE_STATUS_EVENT],
                    detail={
                        "pipelineArn": [
                            stack.format_arn(
                                service="sagemaker", resource="pipeline", resource_name=name
                            )
                            for name in pipeline_names
                        ],
                        "currentPipelineExecutionStatus": list(FAILED_PIPELINE_STATUSES),
                    },
                ),
                targets=[
                    events_targets.SnsTopic(
                        topic,
                        message=events.RuleTargetInput.from_text(
                            "Model-build execution "
                            f"{events.EventField.from_path('$.detail.pipelineExecutionArn')} "
                            f"ended {events.EventField.from_path('$.detail.currentPipelineExecutionStatus')}. "
                            "Nothing was registered; see the failed step in SageMaker Studio "
                            "(Pipelines) or: aws sagemaker list-pipeline-execution-steps "
                            "--pipeline-execution-arn <that arn>"
                        ),
                    )
                ],
            )

        self.release_rule: events.Rule | None = None
        if state_machines:
            self.release_rule = events.Rule(
                self,
                "ReleaseFailed",
                description=f"{prefix}: a release execution failed, timed out or was aborted",
                event_pattern=events.EventPattern(
                    source=["aws.states"],
                    detail_type=[STATE_MACHINE_STATUS_EVENT],
                    detail={
                        "stateMachineArn": [m.state_machine_arn for m in state_machines],
                        "status": list(FAILED_EXECUTION_STATUSES),
                    },
                ),
                targets=[
                    events_targets.SnsTopic(
                        topic,
                        message=events.RuleTargetInput.from_text(
                            f"Release execution {events.EventField.from_path('$.detail.executionArn')} "
                            f"ended {events.EventField.from_path('$.detail.status')}. Check which "
                            "model package each environment's SSM parameter names before the "
                            "next deploy (README: Approval, rollout and rollback)."
                        ),
                    )
                ],
            )

        self.batch_rule: events.Rule | None = None
        if transform_job_prefixes:
            self.batch_rule = events.Rule(
                self,
                "BatchFailed",
                description=f"{prefix}: a batch transform job failed or was stopped",
                event_pattern=events.EventPattern(
                    source=["aws.sagemaker"],
                    detail_type=[TRANSFORM_JOB_STATUS_EVENT],
                    detail={
                        "TransformJobName": [{"prefix": p} for p in transform_job_prefixes],
                        "TransformJobStatus": list(FAILED_TRANSFORM_STATUSES),
                    },
                ),
                targets=[
                    events_targets.SnsTopic(
                        topic,
                        message=events.RuleTargetInput.from_text(
                            "Batch transform job "
                            f"{events.EventField.from_path('$.detail.TransformJobName')} ended "
                            f"{events.EventField.from_path('$.detail.TransformJobStatus')}: "
                            f"{events.EventField.from_path('$.detail.FailureReason')}. Its "
                            "files were not scored; see the job's log group "
                            "(/aws/sagemaker/TransformJobs) and README: Batch scoring on AWS."
                        ),
                    )
                ],
            )
