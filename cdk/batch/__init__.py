"""Batch scoring on AWS: a scheduled SageMaker Batch Transform of an environment's released model."""

from cdk.batch.settings import BatchConfig

__all__ = ["BatchConfig"]
