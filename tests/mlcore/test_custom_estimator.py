"""A team's own estimator, from a module outside mlcore, through train, evaluate, serve and drift."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from mlcore.cli import main
from mlcore.serve import serve_in_thread

pytestmark = pytest.mark.slow

TEAM_MODULE = textwrap.dedent(
    '''
    """The team's model: its own preprocessing and a gradient-boosted classifier."""
    from sklearn.compose import make_column_selector, make_column_transformer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OrdinalEncoder


    def build(n_estimators=50, learning_rate=0.1, random_state=None):
        encode = make_pipeline(
            SimpleImputer(strategy="most_frequent"),
            OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
        )
        columns = make_column_transformer(
            # mlcore hands over numbers as float64 and categories as strings.
            (SimpleImputer(strategy="median"), make_column_selector(dtype_include="number")),
            (encode, make_column_selector(dtype_exclude="number")),
        )
        model = GradientBoostingClassifier(
            n_estimators=n_estimators, learning_rate=learning_rate, random_state=random_state
        )
        return make_pipeline(columns, model)
    '''
)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project whose model lives in its own package (not mlcore), on the Python path."""
    root = tmp_path_factory.mktemp("team")
    (root / "lending_models").mkdir()
    (root / "lending_models" / "__init__.py").write_text("")
    (root / "lending_models" / "boosted.py").write_text(TEAM_MODULE)
    rng = np.random.default_rng(7)
    n = 1_500
    frame = pd.DataFrame(
        {
            "application": np.arange(n) + 50_000,
            "income_k": rng.gamma(4, 12, n),
            "debt_ratio": rng.uniform(0, 1, n),
            "purpose": rng.choice(["car", "home", "study"], n),
        }
    )
    risk = 2.5 * frame["debt_ratio"] - frame["income_k"] / 60 + (frame["purpose"] == "study")
    frame["defaulted"] = np.where(
        rng.uniform(size=n) < 1 / (1 + np.exp(-(risk - 0.8))), "yes", "no"
    )
    frame.to_csv(root / "loans.csv", index=False)
    (root / "mlops.yaml").write_text(
        textwrap.dedent(
            f"""
            project: lending
            dataset:
              path: {root / "loans.csv"}
              target: defaulted
              id_columns: [application]
              numeric: [income_k, debt_ratio]
              categorical: [purpose]
              slice_columns: [purpose]
            training:
              estimator: lending_models.boosted:build
              # The team's pipeline does its own preprocessing.
              preprocess: false
              hyperparameters: {{n_estimators: 40}}
            gate:
              primary_metric: auc
              min_metrics: {{auc: 0.6}}
            """
        )
    )
    return root


@pytest.fixture(scope="module")
def trained(project: Path) -> Path:
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(project))
        settings = ["--settings", str(project / "mlops.yaml")]
        assert main(["prep", "--output", str(project / "prep"), *settings]) == 0
        code = main(
            [
                "train",
                "--data",
                str(project / "prep" / "train"),
                "--model-dir",
                str(project / "model"),
                *settings,
            ]
        )
        assert code == 0
    return project / "model"


def test_the_metadata_names_the_team_estimator_and_its_hyperparameters(trained: Path) -> None:
    metadata = json.loads((trained / "metadata.json").read_text())
    assert metadata["estimator"] == "lending_models.boosted:build"
    assert metadata["preprocess"] is False
    assert metadata["hyperparameters"]["n_estimators"] == 40
    assert "application" not in metadata["spec"]["numeric"]


def test_the_gate_evaluates_the_custom_model(trained: Path, project: Path) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(project))
        code = main(
            [
                "evaluate",
                "--model-dir",
                str(trained),
                "--data",
                str(project / "prep" / "test"),
                "--output",
                str(project / "eval"),
                "--settings",
                str(project / "mlops.yaml"),
                "--fail-on-gate",
            ]
        )
    assert code == 0
    card = json.loads((project / "eval" / "model_card.json").read_text())
    assert card["model_details"]["name"] == "lending model"
    assert card["model_details"]["algorithm"] == "lending_models.boosted:build"
    assert set(card["quantitative_analyses"]["by_slice"]["purpose"]) == {"car", "home", "study"}


def test_serving_answers_the_sample_request_with_the_team_labels(
    trained: Path, project: Path
) -> None:
    request = (trained / "sample_request.json").read_text()
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(project))
        with serve_in_thread(trained) as url:
            response = httpx.post(
                f"{url}/invocations",
                content=request,
                headers={"Content-Type": "application/json"},
                timeout=30,
            )
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert len(predictions) == len(json.loads(request)["instances"])
    assert {p["prediction"] for p in predictions} <= {"yes", "no"}
    assert all(0 <= p["score"] <= 1 for p in predictions)


def test_drift_compares_traffic_with_the_custom_model_baseline(
    trained: Path, project: Path
) -> None:
    shifted = pd.read_parquet(project / "prep" / "test")
    shifted["debt_ratio"] = shifted["debt_ratio"] + 0.5
    shifted.to_csv(project / "shifted.csv", index=False)
    code = main(
        [
            "drift",
            "--baseline",
            str(trained),
            "--current",
            str(project / "shifted.csv"),
            "--output",
            str(project / "drift"),
        ]
    )
    assert code == 0
    report = json.loads((project / "drift" / "drift_report.json").read_text())
    assert "debt_ratio" in report["drifted_features"]
    assert "income_k" not in report["drifted_features"]
