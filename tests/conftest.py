"""Fixtures shared across the suite. Expensive ones (data, a trained model) are built once per session."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mlcore.data import CHURN_SPEC, Split, make_churn, split_frame
from mlcore.model import ModelBundle
from mlcore.settings import TrainingSettings


@pytest.fixture(scope="session")
def churn_frame() -> pd.DataFrame:
    """6,000 generated customers from the training period: small enough to train in a second."""
    return make_churn(6_000, start="2025-01-01", end="2025-09-30", seed=0)


@pytest.fixture(scope="session")
def churn_split(churn_frame: pd.DataFrame) -> Split:
    return split_frame(churn_frame, CHURN_SPEC, seed=42)


@pytest.fixture(scope="session")
def fast_training() -> TrainingSettings:
    return TrainingSettings(hyperparameters={"max_iter": 60, "learning_rate": 0.1}, seed=42)


@pytest.fixture(scope="session")
def trained_bundle(churn_split: Split, fast_training: TrainingSettings) -> ModelBundle:
    from mlcore.train import train_model

    return train_model(
        churn_split.train, CHURN_SPEC, fast_training, validation=churn_split.validation
    )


@pytest.fixture(scope="session")
def saved_model_dir(
    trained_bundle: ModelBundle, churn_split: Split, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A complete model directory (model, metadata, drift baseline), as `mlcore train` writes it."""
    from mlcore.train import save_trained_model

    return save_trained_model(
        trained_bundle, tmp_path_factory.mktemp("model"), reference=churn_split.validation
    )
