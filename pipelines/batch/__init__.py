"""Batch scoring control plane (boto3 only): starts SageMaker Batch Transform runs."""
