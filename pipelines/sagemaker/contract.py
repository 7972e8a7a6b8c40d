"""Where the mlcore container keeps things: the paths the Dockerfile and the pipeline steps share.

The pipeline steps call the ``mlcore`` CLI inside the one container image built from
``pipelines/container/Dockerfile``. Keeping the paths in one module lets the tests check
that the Dockerfile and the steps agree.
"""

from __future__ import annotations

#: mlops.yaml as baked into the image; every step reads its settings from here.
CONTAINER_SETTINGS_PATH = "/opt/mlcore/mlops.yaml"

#: SageMaker Processing paths (the job downloads inputs to, and uploads outputs from, these).
PROCESSING_ROOT = "/opt/ml/processing"
PREP_DATA_DIR = f"{PROCESSING_ROOT}/input/data"
PREP_OUTPUT_DIR = f"{PROCESSING_ROOT}/output"
EVALUATE_MODEL_DIR = f"{PROCESSING_ROOT}/model"
EVALUATE_DATA_DIR = f"{PROCESSING_ROOT}/input/test"
EVALUATE_OUTPUT_DIR = f"{PROCESSING_ROOT}/evaluation"

#: Files mlcore writes that the pipeline reads back (PropertyFiles and model metrics).
LINEAGE_FILE = "lineage.json"
EVALUATION_FILE = "evaluation.json"
SPEC_FILE = "spec.json"

#: Training channels of the SageMaker training contract that ``mlcore train`` reads.
TRAINING_CHANNELS = ("train", "validation", "spec")
