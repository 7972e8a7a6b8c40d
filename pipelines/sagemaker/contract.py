"""Where the mlcore container keeps things: the paths the Dockerfile and the pipeline steps share.

The pipeline steps call the ``mlcore`` CLI inside the one container image built from
``pipelines/container/Dockerfile``; every step gets the settings file as an input (the image
carries none). Keeping the paths in one module lets the tests check
that the Dockerfile and the steps agree.
"""

from __future__ import annotations

#: SageMaker Processing paths (the job downloads inputs to, and uploads outputs from, these).
PROCESSING_ROOT = "/opt/ml/processing"
PREP_DATA_DIR = f"{PROCESSING_ROOT}/input/data"
PREP_OUTPUT_DIR = f"{PROCESSING_ROOT}/output"
EVALUATE_MODEL_DIR = f"{PROCESSING_ROOT}/model"
EVALUATE_DATA_DIR = f"{PROCESSING_ROOT}/input/test"
EVALUATE_OUTPUT_DIR = f"{PROCESSING_ROOT}/evaluation"
EVALUATE_CHAMPION_DIR = f"{PROCESSING_ROOT}/champion"
#: The settings artifact (one file, named by its S3 key) in every processing job.
PROCESSING_SETTINGS_DIR = f"{PROCESSING_ROOT}/input/settings"
#: Training channels are downloaded under here, one folder per channel.
TRAINING_CHANNEL_ROOT = "/opt/ml/input/data"

#: Files mlcore writes that the pipeline reads back (PropertyFiles and model metrics).
LINEAGE_FILE = "lineage.json"
EVALUATION_FILE = "evaluation.json"
GATE_FILE = "gate.json"
#: The model card as CreateModelPackage's ModelCard member (mlcore.model_package_card).
MODEL_CARD_FILE = "model_package_card.json"
SPEC_FILE = "spec.json"

#: Training channels of the SageMaker training contract that ``mlcore train`` reads.
TRAINING_CHANNELS = ("train", "validation", "spec", "settings")
