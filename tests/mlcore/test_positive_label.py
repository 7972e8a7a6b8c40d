"""The positive class and the decision threshold are explicit (issue 11, finding 9.3).

Before, the positive class was whichever label sorted last. Now it is declared in
``dataset.positive_label`` or chosen by a documented rule, recorded with the rule that
chose it, and stated in evaluation.json and the model card with the decision threshold.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import recall_score, roc_auc_score
from threadpoolctl import threadpool_limits

from mlcore.data import DatasetSpec, infer_spec, split_frame
from mlcore.errors import DataError
from mlcore.evaluation_job import run_evaluation
from mlcore.model import ModelBundle
from mlcore.problem import (
    RULE_CONVENTIONAL,
    RULE_DECLARED,
    RULE_MINORITY,
    choose_positive_label,
    class_metadata,
)
from mlcore.settings import MlopsSettings, TrainingSettings, load_settings
from mlcore.train import save_trained_model, train_model


@pytest.mark.parametrize(
    ("labels", "positive"),
    [
        ([0, 1, 1, 1], 1),
        ([-1, 1, -1], 1),
        ([True, False, False], True),
        (["no", "yes", "no"], "yes"),
        (["Y", "N", "N"], "Y"),
        (["negative", "positive", "positive"], "positive"),
    ],
)
def test_a_conventional_pair_gives_the_obvious_positive(
    labels: list[object], positive: object
) -> None:
    # Even when the positive is the more frequent class: the encoding says what it means.
    assert choose_positive_label(labels) == (positive, RULE_CONVENTIONAL)


def test_otherwise_the_rarer_class_is_positive_even_when_it_sorts_first() -> None:
    labels = ["alpha"] * 10 + ["zeta"] * 90
    assert choose_positive_label(labels) == ("alpha", RULE_MINORITY)


def test_a_tie_without_a_declared_label_asks_for_one() -> None:
    with pytest.raises(DataError, match=r"Set dataset\.positive_label"):
        choose_positive_label(["cat", "dog"] * 5)


def test_a_declared_label_wins_over_the_rules() -> None:
    assert choose_positive_label([0, 1, 1], declared=0) == (0, RULE_DECLARED)


def test_a_declared_label_that_is_not_a_class_says_how_to_quote_it() -> None:
    # YAML reads an unquoted `yes` as true.
    settings = load_settings(overrides={"dataset": {"positive_label": True}})
    with pytest.raises(DataError, match=r"not one of the target's classes \['no', 'yes'\].*quote"):
        choose_positive_label(["no", "yes"], declared=settings.dataset.positive_label)


def test_a_positive_label_on_a_multiclass_target_is_an_error() -> None:
    spec = DatasetSpec(target="y", numeric=("x",), positive_label="a")
    with pytest.raises(DataError, match="binary targets only"):
        class_metadata(spec, np.array(["a", "b", "c"]), pd.Series(["a", "b", "c"]))


@pytest.fixture(scope="module")
def stay_or_leave(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, Path]:
    """A binary table whose positive class ("leave", the rarer) sorts before the other."""
    rng = np.random.default_rng(5)
    n = 1_200
    signal = rng.normal(size=n)
    frame = pd.DataFrame(
        {
            "tenure": signal + rng.normal(scale=0.8, size=n),
            "plan": rng.choice(["basic", "plus"], size=n),
            "outcome": np.where(signal > 0.8, "leave", "stay"),
        }
    )
    path = tmp_path_factory.mktemp("stay") / "test.parquet"
    return frame, path


def _train(frame: pd.DataFrame, path: Path, spec: DatasetSpec, root: Path) -> ModelBundle:
    split = split_frame(frame, spec, seed=1)
    with threadpool_limits(limits=1):
        bundle = train_model(
            split.train, spec, TrainingSettings(hyperparameters={"max_iter": 30}, seed=1)
        )
    save_trained_model(bundle, root, reference=split.validation)
    split.test.to_parquet(path)
    return bundle


def test_training_records_the_rarer_class_and_scores_its_probability(
    stay_or_leave: tuple[pd.DataFrame, Path], tmp_path: Path
) -> None:
    frame, path = stay_or_leave
    bundle = _train(frame, path, infer_spec(frame, target="outcome"), tmp_path / "model")
    assert bundle.metadata["positive_label"] == "leave"
    assert bundle.metadata["positive_label_rule"] == RULE_MINORITY
    assert bundle.metadata["decision_threshold"] == 0.5
    test = pd.read_parquet(path)
    # The score column is P("leave"), though "leave" sorts first among the classes.
    np.testing.assert_allclose(bundle.predict(test)["score"], bundle.predict_proba(test)["leave"])


def test_the_decision_threshold_decides_the_predicted_label(
    stay_or_leave: tuple[pd.DataFrame, Path], tmp_path: Path
) -> None:
    frame, path = stay_or_leave
    spec = infer_spec(frame, target="outcome", decision_threshold=0.9)
    bundle = _train(frame, path, spec, tmp_path / "model")
    test = pd.read_parquet(path)
    predictions = bundle.predict(test)
    expected = np.where(bundle.predict_proba(test)["leave"] >= 0.9, "leave", "stay")
    assert (predictions["prediction"].to_numpy() == expected).all()
    assert (predictions["prediction"] == "leave").sum() < (predictions["score"] >= 0.5).sum()


def test_evaluation_and_model_card_state_the_positive_label_and_threshold(
    stay_or_leave: tuple[pd.DataFrame, Path], tmp_path: Path
) -> None:
    frame, path = stay_or_leave
    spec = infer_spec(frame, target="outcome", positive_label="stay", decision_threshold=0.3)
    _train(frame, path, spec, tmp_path / "model")
    run_evaluation(
        model_dir=tmp_path / "model",
        data=path,
        output_dir=tmp_path / "eval",
        settings=MlopsSettings.model_validate(
            {"project": "outcomes", "dataset": {"target": "outcome"}}
        ),
    )
    document = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert document["problem"] == {
        "problem_type": "binary_classification",
        "classes": ["leave", "stay"],
        "positive_label": "stay",
        "positive_label_rule": RULE_DECLARED,
        "decision_threshold": 0.3,
    }
    # Recall and AUC are about the declared positive label.
    test = pd.read_parquet(path)
    bundle = ModelBundle.load(tmp_path / "model")
    proba, pred = bundle.predict_proba(test)["stay"], bundle.predict(test)["prediction"]
    section = document["binary_classification_metrics"]
    assert section["recall"]["value"] == pytest.approx(
        recall_score(test["outcome"], pred, pos_label="stay")
    )
    assert section["auc"]["value"] == pytest.approx(roc_auc_score(test["outcome"] == "stay", proba))
    card = json.loads((tmp_path / "eval" / "model_card.json").read_text())
    assert card["metrics"]["positive_label"] == "stay"
    assert card["metrics"]["decision_threshold"] == 0.3
    markdown = (tmp_path / "eval" / "model_card.md").read_text()
    assert "**positive label**: 'stay' (declared in dataset.positive_label)" in markdown
    assert "probability is at least 0.3" in markdown
