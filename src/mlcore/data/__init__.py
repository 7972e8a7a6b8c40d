"""Data loading, dataset specs, validation, splitting, fingerprints and example data."""

from mlcore.data.io import load_table, sample_table, save_table
from mlcore.data.spec import DatasetSpec, Task, infer_spec
from mlcore.data.split import Split, fingerprint, partition, split_frame
from mlcore.data.synthetic import CHURN_SPEC, make_churn
from mlcore.data.validate import (
    DataValidationError,
    check_declared_columns,
    coerce_features,
    drop_unlabelled,
    validate_frame,
)

__all__ = [
    "CHURN_SPEC",
    "DataValidationError",
    "DatasetSpec",
    "Split",
    "Task",
    "check_declared_columns",
    "coerce_features",
    "drop_unlabelled",
    "fingerprint",
    "infer_spec",
    "load_table",
    "make_churn",
    "partition",
    "sample_table",
    "save_table",
    "split_frame",
    "validate_frame",
]
