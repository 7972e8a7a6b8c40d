"""The SageMaker model-build pipeline (SageMaker Python SDK v3) and its boto3 control plane."""
