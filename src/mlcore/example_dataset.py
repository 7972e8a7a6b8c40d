"""What an empty ``dataset`` section means: the built-in example data, generated on the fly.

``mlcore demo`` with no ``dataset.path`` and no ``dataset.target`` runs on the churn table
of :func:`mlcore.data.make_churn`; these are its columns, as settings name them. The
module imports nothing, so reading settings stays cheap for every command.
"""

from __future__ import annotations

from typing import Any

EXAMPLE_PROJECT = "churn"
EXAMPLE_TARGET = "churned"
EXAMPLE_TIMESTAMP = "event_time"
EXAMPLE_ID_COLUMN = "customer_id"

#: The ``dataset`` section equivalent to leaving it empty.
EXAMPLE_DATASET: dict[str, Any] = {
    "path": None,
    "target": EXAMPLE_TARGET,
    "timestamp": EXAMPLE_TIMESTAMP,
    "id_columns": [EXAMPLE_ID_COLUMN],
    "task": "classification",
    "slice_columns": ["region", "contract_type"],
}
