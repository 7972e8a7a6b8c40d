"""mlcore: the shared ML layer of the MLOps kit.

The same code runs inside SageMaker and Azure ML jobs, in CI and on a laptop:
data loading and validation, training, evaluation and the quality gate, drift
detection and model serving. It imports no cloud SDK.
"""

__version__ = "0.1.0"
