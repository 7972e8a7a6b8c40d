"""CDK constructs, stacks and stages for the AWS side of the MLOps kit.

Layout (one logical unit per module): ``config`` (typed settings from cdk.json),
``artifact_store`` (KMS key and buckets), ``container_image`` (the mlcore image), ``source``
(where CI/CD takes the code from), ``model_build`` (SageMaker pipeline, roles, model registry),
``triggers`` (schedule, new data, CI), ``cicd`` (the self-mutating pipeline),
``model_build_stack`` and ``stage`` (wiring per environment), ``assembly`` (the whole app) and
``summary`` (the one-screen synth report).
"""
