"""The Spark drift monitor: what runs inside SageMaker's PySpark processing job.

The job runs the Spark monitor image (``Dockerfile`` here: SageMaker's prebuilt Spark 3.5
processing image with mlcore installed into its Python 3.12). Its entry point,
``smspark-submit``, starts YARN on every instance and submits :data:`SPARK_APP` (baked into
the image) in client mode; the app calls ``mlcore drift --engine spark`` with the starter's
arguments. This package holds only constants so that the starter Lambda can import it.
"""

from __future__ import annotations

# SageMaker's Spark container entry point (aws/sagemaker-spark-container, smspark.cli): it
# passes the app and every argument after it to spark-submit --master yarn --deploy-mode client.
SPARK_SUBMIT = "smspark-submit"
# Where the Dockerfile copies drift_app.py in the image.
SPARK_APP = "/opt/mlcore/spark/drift_app.py"
# The prebuilt image the Spark monitor image is built from, as the SageMaker Python SDK names
# it (image_uris.retrieve("spark", ...)): Spark 3.5 (pyspark 3.5, contract 7) on Python 3.12,
# the only Spark 3.5 variant that can run mlcore (requires-python >= 3.11; the other is py39).
SPARK_FRAMEWORK = "spark"
SPARK_VERSION = "3.5"
SPARK_PY_VERSION = "py312"
