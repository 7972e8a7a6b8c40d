"""The SSM parameters naming the model package an environment serves (the *pointer*).

Two parameters make the pointer: the package ARN and the sha256 of its model file (contract
#1), which the serving stack sets as ``MLCORE_MODEL_SHA256`` on the deployed model. The
release flow writes both; the serving stack reads it on every deployment (a
CloudFormation parameter of type ``AWS::SSM::Parameter::Value<String>``). It must exist
before the serving stack is first deployed, so it belongs to a stack deployed earlier
(the environment's ReleaseState stack). It starts as ``none`` (no model
approved yet: the serving stack then creates no endpoint) and is created only if absent:
CloudFormation does not own its value, so no later deployment resets a released model.
Deleting the stack leaves the parameter in place, with the release history it holds.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import custom_resources as cr
from constructs import Construct

from cdk.custom_resources import suppress_custom_resource_provider

NO_MODEL = "none"


class ApprovedModelParameter(Construct):
    """Creates ``parameter_name`` with the value ``none`` unless it already exists.

    :param parameter_name: e.g. ``/mlops/<project>/prod/model-package-arn``.
    :param description: shown in the SSM console. Default: says it holds the package ARN.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        parameter_name: str,
        description: str = "Model package ARN this environment serves (written by the release flow)",
    ) -> None:
        super().__init__(scope, id_)
        if not parameter_name.startswith("/") or " " in parameter_name:
            raise ValueError(
                f"parameter_name must be an absolute SSM path without spaces, e.g. "
                f"/mlops/<project>/prod/model-package-arn; got {parameter_name!r}"
            )
        self.parameter_name = parameter_name
        self.parameter_arn = Stack.of(self).format_arn(
            service="ssm", resource="parameter", resource_name=parameter_name.lstrip("/")
        )
        put_if_absent = cr.AwsSdkCall(
            service="SSM",
            action="putParameter",
            parameters={
                "Name": parameter_name,
                "Value": NO_MODEL,
                "Type": "String",
                "Overwrite": False,
                "Description": description,
            },
            physical_resource_id=cr.PhysicalResourceId.of(parameter_name),
            ignore_error_codes_matching="ParameterAlreadyExists",
        )
        self.resource = cr.AwsCustomResource(
            self,
            "CreateIfAbsent",
            on_create=put_if_absent,
            on_update=put_if_absent,
            policy=cr.AwsCustomResourcePolicy.from_statements(
                [iam.PolicyStatement(actions=["ssm:PutParameter"], resources=[self.parameter_arn])]
            ),
            install_latest_aws_sdk=False,
        )
        suppress_custom_resource_provider(Stack.of(self))

    def grant_read(self, grantee: iam.IGrantable) -> iam.Grant:
        return iam.Grant.add_to_principal(
            grantee=grantee, actions=["ssm:GetParameter"], resource_arns=[self.parameter_arn]
        )

    def grant_read_write(self, grantee: iam.IGrantable) -> iam.Grant:
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["ssm:GetParameter", "ssm:PutParameter"],
            resource_arns=[self.parameter_arn],
        )
