"""The prediction-drift reference: held-out rows with the model's own predictions, as MLTable.

Azure's prediction drift compares the production ``model_outputs`` with the reference
on the columns both share, and Learn advises validation data holding predictions as
that reference. This writes exactly mlcore's drift baseline frame (validation features
beside the model's predictions), with the prediction under the target's name and the
score beside it, the names the scoring script logs (:func:`output_columns`).

The folder also carries the model's drift baseline (``baseline/``, as training wrote it),
so the Spark drift job (:mod:`mlops_azure.jobs.spark_drift`) reads the baseline of exactly
the live model from the same registered asset: Spark jobs take data inputs only (uri_file,
uri_folder, mltable), never a model. The MLTable file names only the Parquet file, so
Azure's monitor reads what it did before.

Run as ``python -m mlops_azure.jobs.reference --model-dir DIR --data PATH --output DIR``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import yaml

from mlcore.data import load_table
from mlcore.errors import DataError, MlcoreError
from mlcore.model import BASELINE_DIR, PREDICTION_COLUMN, SCORE_COLUMN, ModelBundle
from mlcore.train import reference_with_predictions

REFERENCE_FILE = "reference.parquet"
MLTABLE_FILE = "MLTable"
SCORE_SUFFIX = "_score"


def output_columns(target: str) -> tuple[str, str]:
    """(prediction, score) column names in model_outputs and in the reference."""
    return target, f"{target}{SCORE_SUFFIX}"


def azure_outputs(predictions: pd.DataFrame, target: str) -> pd.DataFrame:
    """mlcore's ``prediction``/``score`` columns renamed to the target's name and its score."""
    prediction, score = output_columns(target)
    return predictions.rename(columns={PREDICTION_COLUMN: prediction, SCORE_COLUMN: score})


def build_reference(bundle: ModelBundle, frame: pd.DataFrame) -> pd.DataFrame:
    """Features of ``frame`` beside the model's predictions, named as the collector logs them."""
    features = set(bundle.spec.features)
    clashes = sorted(features & set(output_columns(bundle.spec.target)))
    if clashes:
        raise DataError(
            f"features {clashes} have the names the model's outputs are logged under; rename "
            "those columns in the data (Azure compares reference and outputs by column name)"
        )
    return azure_outputs(reference_with_predictions(bundle, frame), bundle.spec.target)


def write_reference(frame: pd.DataFrame, output: Path) -> Path:
    """Write the Parquet file and the MLTable file that reads it; returns the folder."""
    output.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(output / REFERENCE_FILE, index=False)
    document = {
        "type": "mltable",
        "paths": [{"file": f"./{REFERENCE_FILE}"}],
        "transformations": ["read_parquet"],
    }
    (output / MLTABLE_FILE).write_text(yaml.safe_dump(document, sort_keys=False))
    return output


def copy_baseline(model_dir: Path, output: Path) -> Path:
    """The model's drift baseline into ``output/baseline``: what the Spark drift job compares with."""
    source = model_dir / BASELINE_DIR
    if not source.is_dir():
        raise DataError(
            f"{model_dir} has no {BASELINE_DIR}/ folder: the model was not saved by mlcore train"
        )
    target = output / BASELINE_DIR
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlops_azure.jobs.reference")
    parser.add_argument("--model-dir", required=True, help="model folder written by mlcore train")
    parser.add_argument("--data", required=True, help="held-out rows (prep's validation split)")
    parser.add_argument("--output", required=True, help="folder for the MLTable reference")
    args = parser.parse_args(argv)
    try:
        bundle = ModelBundle.load(args.model_dir)
        reference = build_reference(bundle, load_table(args.data))
        write_reference(reference, Path(args.output))
        copy_baseline(Path(args.model_dir), Path(args.output))
    except MlcoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(reference)} reference rows to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
