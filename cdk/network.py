"""A stage's private network: the VPC its jobs, endpoint and functions run in, with no public path.

:class:`StageNetwork` either creates a VPC (private isolated subnets across availability
zones, no NAT or internet gateway, flow logs to a KMS-encrypted log group) or imports the
one named in cdk.json by its ids (no lookups: synth stays offline). It then adds:

- VPC endpoints for every AWS service the stage's runtimes call (:data:`GATEWAY_ENDPOINTS`,
  :data:`INTERFACE_ENDPOINTS`; ``tests/cdk/test_cdk_network.py`` derives the calls from the
  code and fails when one is missing), interface endpoints with private DNS, each with a
  policy that admits only principals of the accounts that act in this stage;
- least-privilege security groups: workloads may send HTTPS to the endpoints' security group
  and to the S3 (and DynamoDB) prefix lists, nothing else; SageMaker job instances may also
  talk to each other (multi-instance Spark jobs), over traffic SageMaker encrypts.

Everything that runs in the stage finds the network with :meth:`StageNetwork.of` (the
network registered for the construct's Stage), so a function, job or endpoint added later
is placed in it by the same constructs that place the existing ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aws_cdk import Aws, Names, RemovalPolicy, Stack, Stage
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import custom_resources as cr
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct, IConstruct

from cdk.checkov import FUNCTION_VPC_ACCESS
from cdk.custom_resources import suppress_custom_resource_provider

if TYPE_CHECKING:  # cdk.config imports the constructs that import this module
    from cdk.config import NetworkConfig

#: Gateway endpoints (free; traffic routed through the subnets' route tables), by the boto3
#: service name that needs them.
GATEWAY_ENDPOINTS: dict[str, str] = {"s3": "s3", "dynamodb": "dynamodb"}
#: Interface endpoints (PrivateLink, private DNS on): the endpoint service suffix
#: (``com.amazonaws.<region>.<suffix>``) for each boto3 service name the stage's code calls,
#: and for what SageMaker's containers need beside it (image pulls, logs, metrics, tokens).
INTERFACE_ENDPOINTS: dict[str, str] = {
    "sagemaker": "sagemaker.api",
    "sagemaker-runtime": "sagemaker.runtime",
    "sts": "sts",
    "ssm": "ssm",
    "events": "events",
    "cloudwatch": "monitoring",
    "logs": "logs",
    "kms": "kms",
    "ecr": "ecr.api",
    "ecr-images": "ecr.dkr",
    "cloudformation": "cloudformation",
}
#: What SageMaker's job and endpoint containers call besides the stage's own code: image
#: pulls (ECR API and registry, layers from S3), logs, metrics, KMS for encrypted volumes and
#: outputs, STS for the job role's credentials (SageMaker "Connect to resources in a VPC").
SAGEMAKER_CONTAINER_SERVICES = ("ecr", "ecr-images", "s3", "logs", "cloudwatch", "kms", "sts")
#: The bucket ECR serves image layers from (ECR "Interface VPC endpoints", minimum S3 gateway
#: endpoint policy): signed by ECR, so its requests carry no principal of the stage's accounts.
ECR_LAYER_BUCKET = "prod-{region}-starport-layer-bucket"
HTTPS = ec2.Port.tcp(443)


@dataclass(frozen=True)
class FunctionPlacement:
    """Where a Lambda function runs in a stage with a network: ``lambda_.Function``'s
    ``vpc``, ``vpc_subnets`` and ``security_groups``."""

    vpc: ec2.IVpc
    vpc_subnets: ec2.SubnetSelection
    security_groups: list[ec2.ISecurityGroup]


class StageNetwork(Construct):
    """The stage's VPC, its subnets and endpoints, and the security groups workloads use.

    :param config: the stage's ``network`` section (cdk.json).
    :param principal_accounts: the accounts whose principals may call AWS through this VPC's
        endpoints: the stage's own, plus, in the model-build stage, every account the release
        flow acts in (its functions act through each environment's deploy role from here).
    :param retain: keep the flow logs when the stack is deleted. Default: deleted.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: NetworkConfig,
        principal_accounts: Sequence[str],
        retain: bool = False,
    ) -> None:
        super().__init__(scope, id_)
        if not principal_accounts:
            raise ValueError(
                "StageNetwork needs principal_accounts: at least the stage's own account "
                "(Aws.ACCOUNT_ID for an environment-agnostic stage)"
            )
        self.config = config
        self.principal_accounts = list(dict.fromkeys(principal_accounts))
        self.vpc, self.subnets = self._vpc(config, retain)
        self.subnet_ids = [subnet.subnet_id for subnet in self.subnets]
        self.subnet_selection = ec2.SubnetSelection(subnets=self.subnets)

        self.endpoint_security_group: ec2.SecurityGroup | None = None
        if config.create_endpoints:
            self.endpoint_security_group = ec2.SecurityGroup(
                self,
                "EndpointSecurityGroup",
                vpc=self.vpc,
                description="The interface VPC endpoints of the stage: HTTPS from its workloads only",
                allow_all_outbound=False,
            )
        self.job_security_group = self._workload_group(
            "JobSecurityGroup",
            "SageMaker jobs and endpoint instances: HTTPS to the VPC endpoints and S3; "
            "traffic between the instances of one job",
            dynamodb=False,
        )
        # Instances of one multi-instance job (Spark) talk to each other: only within the group.
        self.job_security_group.add_ingress_rule(
            self.job_security_group, ec2.Port.all_tcp(), "between the instances of one job"
        )
        self.job_security_group.add_egress_rule(
            self.job_security_group, ec2.Port.all_tcp(), "between the instances of one job"
        )
        self.function_security_group = self._workload_group(
            "FunctionSecurityGroup",
            "Lambda functions: HTTPS to the VPC endpoints, S3 and DynamoDB only",
            dynamodb=True,
        )
        extra = [
            ec2.SecurityGroup.from_security_group_id(self, f"Extra{index}", group, mutable=False)
            for index, group in enumerate(config.security_group_ids)
        ]
        self.extra_security_groups = extra
        self.gateway_endpoints: dict[str, ec2.GatewayVpcEndpoint] = {}
        self.interface_endpoints: dict[str, ec2.InterfaceVpcEndpoint] = {}
        if config.create_endpoints:
            self._endpoints()
        stage = Stage.of(self)
        if stage is not None:
            _REGISTRY[stage.node.addr] = self

    # Where workloads find it.

    @staticmethod
    def of(scope: IConstruct) -> StageNetwork | None:
        """The network of ``scope``'s stage, or None when the stage has none."""
        stage = Stage.of(scope)
        if stage is None:
            return None
        network = _REGISTRY.get(stage.node.addr)
        if network is None or Stage.of(network) is not stage:
            return None
        return network

    @property
    def job_security_groups(self) -> list[ec2.ISecurityGroup]:
        return [self.job_security_group, *self.extra_security_groups]

    @property
    def function_security_groups(self) -> list[ec2.ISecurityGroup]:
        return [self.function_security_group, *self.extra_security_groups]

    @property
    def job_security_group_ids(self) -> list[str]:
        return [group.security_group_id for group in self.job_security_groups]

    def grant_network_interfaces(self, role: iam.IRole) -> iam.Policy:
        """What SageMaker needs in a role whose jobs or endpoint run in this VPC: create and
        remove its network interfaces there and describe the VPC (SageMaker developer guide,
        "Give SageMaker access to resources in your Amazon VPC"). A policy of its own, so
        that what needs it can depend on it (SageMaker checks the role when it creates)."""
        return self._vpc_access(
            role,
            [
                iam.PolicyStatement(
                    actions=[
                        "ec2:CreateNetworkInterface",
                        "ec2:CreateNetworkInterfacePermission",
                        "ec2:DeleteNetworkInterface",
                        "ec2:DeleteNetworkInterfacePermission",
                    ],
                    resources=["*"],
                    conditions={"ArnEquals": {"ec2:Vpc": self._vpc_arn()}},
                ),
                # The Describe actions have no resource types (Service Authorization Reference).
                iam.PolicyStatement(
                    actions=[
                        "ec2:DescribeNetworkInterfaces",
                        "ec2:DescribeVpcs",
                        "ec2:DescribeDhcpOptions",
                        "ec2:DescribeSubnets",
                        "ec2:DescribeSecurityGroups",
                    ],
                    resources=["*"],
                ),
            ],
            "SageMaker creates the job or endpoint instances' network interfaces (named at run "
            "time; limited to this VPC by ec2:Vpc) and describes the VPC, its subnets and "
            "security groups, which takes no resource-level permission.",
        )

    def job_conditions(self, *, isolated: bool | None = None) -> dict[str, dict[str, object]]:
        """IAM conditions that let a principal start SageMaker jobs only in this network
        (``isolated``: only with network isolation on as well)."""
        conditions: dict[str, dict[str, object]] = {
            "ForAllValues:StringEquals": {
                "sagemaker:VpcSubnets": self.subnet_ids,
                "sagemaker:VpcSecurityGroupIds": self.job_security_group_ids,
            },
            # ForAllValues also holds when the request names no subnet at all.
            "Null": {"sagemaker:VpcSubnets": "false"},
        }
        if isolated:
            conditions["Bool"] = {"sagemaker:NetworkIsolation": "true"}
        return conditions

    def function_placement(self, role: iam.IRole) -> tuple[FunctionPlacement, iam.Policy]:
        """The placement that puts a Lambda function in the private subnets behind the
        function security group, and the policy that lets Lambda attach it there (what
        AWSLambdaVPCAccessExecutionRole holds, inline: no managed policy). The function must
        depend on that policy: Lambda checks the role when it creates the function."""
        policy = self._vpc_access(
            role,
            [
                iam.PolicyStatement(
                    actions=[
                        "ec2:CreateNetworkInterface",
                        "ec2:DescribeNetworkInterfaces",
                        "ec2:DescribeSubnets",
                        "ec2:DeleteNetworkInterface",
                        "ec2:AssignPrivateIpAddresses",
                        "ec2:UnassignPrivateIpAddresses",
                    ],
                    resources=["*"],
                )
            ],
            "Lambda attaches the function to its VPC subnets with the execution role: the "
            "network interfaces do not exist before, and Describe* takes no resource-level "
            "permission (the actions of AWSLambdaVPCAccessExecutionRole).",
            suffix=FUNCTION_VPC_ACCESS,
        )
        placement = FunctionPlacement(
            vpc=self.vpc,
            vpc_subnets=self.subnet_selection,
            security_groups=self.function_security_groups,
        )
        return placement, policy

    def _vpc_access(
        self,
        role: iam.IRole,
        statements: list[iam.PolicyStatement],
        reason: str,
        *,
        suffix: str = "SageMakerVpcAccess",
    ) -> iam.Policy:
        if not isinstance(role, Construct):
            raise ValueError(f"the role of a workload in the network must be a Role; got {role}")
        # A child of the stack, not of the role or its function: the suppressions those carry
        # (with their reasons) must not extend to it, nor its reason to them.
        policy = iam.Policy(
            Stack.of(role),
            f"{Names.unique_id(role)}{suffix}",
            statements=statements,
            roles=[role],
        )
        NagSuppressions.add_resource_suppressions(
            policy,
            [NagPackSuppression(id="AwsSolutions-IAM5", reason=reason, applies_to=["Resource::*"])],
        )
        return policy

    # Building it.

    def _vpc_arn(self) -> str:
        return f"arn:{Aws.PARTITION}:ec2:{Aws.REGION}:{Aws.ACCOUNT_ID}:vpc/{self.vpc.vpc_id}"

    def _vpc(self, config: NetworkConfig, retain: bool) -> tuple[ec2.IVpc, list[ec2.ISubnet]]:
        if not config.create:
            assert config.vpc_id is not None  # NetworkConfig guarantees it
            vpc = ec2.Vpc.from_vpc_attributes(
                self,
                "Vpc",
                vpc_id=config.vpc_id,
                availability_zones=list(dict.fromkeys(config.availability_zones)),
                vpc_cidr_block=config.vpc_cidr,
            )
            subnets = [
                ec2.Subnet.from_subnet_attributes(
                    self,
                    f"Subnet{index}",
                    subnet_id=subnet,
                    availability_zone=zone,
                    route_table_id=route_table,
                )
                for index, (subnet, zone, route_table) in enumerate(
                    zip(
                        config.subnet_ids,
                        config.availability_zones,
                        config.route_table_ids or (None,) * len(config.subnet_ids),
                        strict=True,
                    )
                )
            ]
            return vpc, list(subnets)
        removal = RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY
        log_key = kms.Key(
            self,
            "FlowLogKey",
            description="Encrypts the stage VPC's flow logs",
            enable_key_rotation=True,
            removal_policy=removal,
        )
        log_key.add_to_resource_policy(
            iam.PolicyStatement(
                actions=[
                    "kms:Encrypt*",
                    "kms:Decrypt*",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:Describe*",
                ],
                principals=[iam.ServicePrincipal(f"logs.{Aws.REGION}.amazonaws.com")],
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:*"
                    }
                },
            )
        )
        flow_logs = logs.LogGroup(
            self,
            "FlowLogs",
            encryption_key=log_key,
            retention=logs.RetentionDays.ONE_YEAR,
            removal_policy=removal,
        )
        flow_log_role = iam.Role(
            self,
            "FlowLogRole",
            assumed_by=iam.ServicePrincipal("vpc-flow-logs.amazonaws.com"),
            description="Writes the stage VPC's flow logs to their encrypted log group",
        )
        vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(config.vpc_cidr or "10.0.0.0/16"),
            max_azs=config.max_azs,
            nat_gateways=0,
            # Nothing here uses the VPC's default security group. Restricting its rules takes a
            # custom resource whose CDK-made role holds an AWS managed policy (this kit's roles
            # hold none); cdk/checkov.py says so for CKV2_AWS_12.
            restrict_default_security_group=False,
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name="Private", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=20
                )
            ],
            flow_logs={
                "All": ec2.FlowLogOptions(
                    destination=ec2.FlowLogDestination.to_cloud_watch_logs(
                        flow_logs, flow_log_role
                    ),
                    traffic_type=ec2.FlowLogTrafficType.ALL,
                )
            },
        )
        return vpc, list(vpc.isolated_subnets)

    def _prefix_list(self, service: str, configured: str | None) -> str:
        if configured is not None:
            return configured
        # Managed prefix list ids differ per region; CloudFormation cannot read them, so a
        # deploy-time call does (configure network.<service>_prefix_list_id to skip it).
        name = f"com.amazonaws.{Aws.REGION}.{service}"
        call = cr.AwsSdkCall(
            service="EC2",
            action="describeManagedPrefixLists",
            parameters={"Filters": [{"Name": "prefix-list-name", "Values": [name]}]},
            physical_resource_id=cr.PhysicalResourceId.of(f"prefix-list-{service}"),
            output_paths=["PrefixLists.0.PrefixListId"],
        )
        lookup = cr.AwsCustomResource(
            self,
            f"{service.capitalize()}PrefixList",
            on_create=call,
            on_update=call,
            policy=cr.AwsCustomResourcePolicy.from_statements(
                [iam.PolicyStatement(actions=["ec2:DescribeManagedPrefixLists"], resources=["*"])]
            ),
            install_latest_aws_sdk=False,
        )
        NagSuppressions.add_resource_suppressions(
            lookup,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason=(
                        "ec2:DescribeManagedPrefixLists reads the id of an AWS-managed prefix "
                        "list; describing takes no resource-level permission."
                    ),
                    applies_to=["Resource::*"],
                )
            ],
            apply_to_children=True,
        )
        suppress_custom_resource_provider(Stack.of(self))
        return lookup.get_response_field("PrefixLists.0.PrefixListId")

    def _workload_group(self, id_: str, description: str, *, dynamodb: bool) -> ec2.SecurityGroup:
        group = ec2.SecurityGroup(
            self, id_, vpc=self.vpc, description=description, allow_all_outbound=False
        )
        if self.endpoint_security_group is not None:
            group.add_egress_rule(self.endpoint_security_group, HTTPS, "AWS APIs (VPC endpoints)")
            self.endpoint_security_group.add_ingress_rule(group, HTTPS, description[:200])
        else:
            # The VPC's own endpoints (create_endpoints false): HTTPS inside the VPC only.
            assert self.config.vpc_cidr is not None  # NetworkConfig guarantees it
            group.add_egress_rule(
                ec2.Peer.ipv4(self.config.vpc_cidr), HTTPS, "AWS APIs (the VPC's endpoints)"
            )
        group.add_egress_rule(
            ec2.Peer.prefix_list(self._prefix_list_id("s3")), HTTPS, "S3 (gateway endpoint)"
        )
        if dynamodb:
            group.add_egress_rule(
                ec2.Peer.prefix_list(self._prefix_list_id("dynamodb")),
                HTTPS,
                "DynamoDB (gateway endpoint)",
            )
        return group

    def _prefix_list_id(self, service: str) -> str:
        cache = self.__dict__.setdefault("_prefix_lists", {})
        if service not in cache:
            configured = {
                "s3": self.config.s3_prefix_list_id,
                "dynamodb": self.config.dynamodb_prefix_list_id,
            }[service]
            cache[service] = self._prefix_list(service, configured)
        return str(cache[service])

    def _account_condition(self) -> dict[str, dict[str, list[str]]]:
        return {"StringEquals": {"aws:PrincipalAccount": self.principal_accounts}}

    def _endpoints(self) -> None:
        for key, service in GATEWAY_ENDPOINTS.items():
            endpoint = ec2.GatewayVpcEndpoint(
                self,
                f"{_id(service)}Endpoint",
                vpc=self.vpc,
                service=ec2.GatewayVpcEndpointAwsService(service),
                subnets=[self.subnet_selection],
            )
            endpoint.add_to_policy(
                iam.PolicyStatement(
                    sid="PrincipalsOfTheStageAccounts",
                    principals=[iam.AnyPrincipal()],
                    actions=[f"{service}:*"],
                    resources=["*"],
                    conditions=self._account_condition(),
                )
            )
            if service == "s3":
                layers = ECR_LAYER_BUCKET.format(region=Aws.REGION)
                endpoint.add_to_policy(
                    iam.PolicyStatement(
                        sid="EcrImageLayers",
                        principals=[iam.AnyPrincipal()],
                        actions=["s3:GetObject"],
                        resources=[f"arn:{Aws.PARTITION}:s3:::{layers}/*"],
                    )
                )
            self.gateway_endpoints[key] = endpoint
        assert self.endpoint_security_group is not None
        for key, service in INTERFACE_ENDPOINTS.items():
            interface = ec2.InterfaceVpcEndpoint(
                self,
                f"{_id(service)}Endpoint",
                vpc=self.vpc,
                service=ec2.InterfaceVpcEndpointAwsService(service),
                private_dns_enabled=True,
                subnets=self.subnet_selection,
                security_groups=[self.endpoint_security_group],
                # Ingress comes from the workload groups only (added above), not the VPC range.
                open=False,
            )
            interface.add_to_policy(
                iam.PolicyStatement(
                    sid="PrincipalsOfTheStageAccounts",
                    principals=[iam.AnyPrincipal()],
                    actions=["*"],
                    resources=["*"],
                    conditions=self._account_condition(),
                )
            )
            self.interface_endpoints[key] = interface

    @property
    def s3_endpoint_id(self) -> str | None:
        """The id of the S3 gateway endpoint (``aws:SourceVpce`` of the stage's S3 requests)."""
        endpoint = self.gateway_endpoints.get("s3")
        if endpoint is not None:
            return endpoint.vpc_endpoint_id
        return self.config.s3_vpc_endpoint_id


_REGISTRY: dict[str, StageNetwork] = {}


def _id(service: str) -> str:
    return "".join(part.capitalize() for part in service.replace("-", ".").split("."))
