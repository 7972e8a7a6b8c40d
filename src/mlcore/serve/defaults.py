"""Names and defaults of the serving contract, in a module that imports nothing.

``mlcore serve --help`` builds its parser from these without loading the server, and
the server, the capture writer and the predictor take them from here.
"""

# SageMaker's serving contract (docs: "Custom Inference Code with Hosting Services").
DEFAULT_MODEL_DIR = "/opt/ml/model"
DEFAULT_PORT = 8080
PORT_ENV = "SAGEMAKER_BIND_TO_PORT"
WORKERS_ENV = "SAGEMAKER_MODEL_SERVER_WORKERS"
# SageMaker real-time endpoints accept payloads up to 6 MB.
DEFAULT_MAX_BODY_BYTES = 6 * 1024 * 1024
# Request bodies the scoring thread scores together in one model call when they queue up
# (about 650 JSON records of 20 features): enough to spread a pipeline's fixed cost per
# call over many requests, small enough that no batch holds up the next for long.
DEFAULT_MAX_BATCH_BYTES = 256 * 1024

# mlcore's own: where to listen, and the registered hash of the model file (brief contract 1).
HOST_ENV = "MLCORE_SERVE_HOST"
MODEL_SHA256_ENV = "MLCORE_MODEL_SHA256"
# mlops.yaml's serving section as JSON: a container carries no settings file, so the
# deployment (the SageMaker Model's environment, Azure's deployment) hands the timeouts over.
SERVING_ENV = "MLCORE_SERVING"

# Data capture's folder names under the capture root.
DEFAULT_ENDPOINT_NAME = "local-endpoint"
DEFAULT_VARIANT_NAME = "AllTraffic"  # SageMaker's name for a single production variant
