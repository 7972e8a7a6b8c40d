from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from mlcore.data import CHURN_SPEC, DatasetSpec, Split
from mlcore.errors import ConfigError
from mlcore.evaluate import evaluate_model
from mlcore.model import (
    MANIFEST_FILE,
    METADATA_FILE,
    MODEL_FILE,
    SAMPLE_REQUEST_FILE,
    ModelBundle,
    file_sha256,
    model_sha256,
)
from mlcore.settings import TrainingSettings
from mlcore.train import (
    SageMakerTrainingPaths,
    run_sagemaker_training,
    save_trained_model,
    train_from_paths,
    train_model,
)


def test_same_data_and_parameters_give_identical_metrics(
    churn_split: Split, fast_training: TrainingSettings, trained_bundle: ModelBundle
) -> None:
    again = train_model(
        churn_split.train, CHURN_SPEC, fast_training, validation=churn_split.validation
    )
    assert again.metadata["validation_metrics"] == trained_bundle.metadata["validation_metrics"]


def test_trained_model_beats_chance_on_held_out_data(
    trained_bundle: ModelBundle, churn_split: Split
) -> None:
    assert evaluate_model(trained_bundle, churn_split.test)["auc"] > 0.75


def test_metadata_records_lineage(trained_bundle: ModelBundle, churn_split: Split) -> None:
    meta = trained_bundle.metadata
    assert meta["data_fingerprint"].startswith("sha256:")
    assert meta["hyperparameters"] == {"max_iter": 60, "learning_rate": 0.1}
    assert meta["seed"] == 42 and meta["training_rows"] == len(churn_split.train)
    assert {"numpy", "pandas", "scikit-learn", "python", "mlcore"} <= set(meta["library_versions"])
    assert meta["classes"] == [0, 1]


def test_git_commit_comes_from_the_ci_variable(
    churn_split: Split, fast_training: TrainingSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CODEBUILD_RESOLVED_SOURCE_VERSION", "abc123")
    bundle = train_model(churn_split.train.head(500), CHURN_SPEC, fast_training)
    assert bundle.metadata["git_commit"] == "abc123"


def test_saved_model_directory_loads_and_predicts(
    saved_model_dir: Path, churn_split: Split
) -> None:
    assert {"model.joblib", "metadata.json", "baseline"} <= {
        p.name for p in saved_model_dir.iterdir()
    }
    loaded = ModelBundle.load(saved_model_dir)
    predictions = loaded.predict(churn_split.test.head(10))
    assert list(predictions.columns) == ["prediction", "score"]
    assert predictions["score"].between(0, 1).all()


def test_unknown_hyperparameter_is_named_with_the_valid_ones(churn_split: Split) -> None:
    settings = TrainingSettings(hyperparameters={"max_iterations": 5})
    with pytest.raises(
        ConfigError, match=r"unknown hyperparameters \['max_iterations'\].*max_iter"
    ):
        train_model(churn_split.train, CHURN_SPEC, settings)


def test_algorithm_must_fit_the_task(churn_split: Split) -> None:
    with pytest.raises(ConfigError, match="'ridge' does not support classification"):
        train_model(
            churn_split.train, CHURN_SPEC, TrainingSettings(algorithm="ridge", hyperparameters={})
        )


def _sagemaker_layout(root: Path, split: Split, hyperparameters: dict[str, str]) -> None:
    (root / "input" / "data" / "train").mkdir(parents=True)
    (root / "input" / "data" / "validation").mkdir(parents=True)
    split.train.to_parquet(root / "input" / "data" / "train" / "part.parquet")
    split.validation.to_csv(root / "input" / "data" / "validation" / "part.csv", index=False)
    (root / "input" / "config").mkdir(parents=True)
    (root / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hyperparameters))


def test_sagemaker_contract_reads_channels_and_string_hyperparameters(
    tmp_path: Path, churn_split: Split
) -> None:
    small = Split(churn_split.train.head(1500), churn_split.validation.head(400), churn_split.test)
    _sagemaker_layout(
        tmp_path, small, {"target": "churned", "max_iter": "20", "seed": "7", "git_commit": "feed"}
    )
    assert run_sagemaker_training(root=tmp_path, environ={}) == 0
    meta = json.loads((tmp_path / "model" / "metadata.json").read_text())
    assert (
        meta["hyperparameters"]["max_iter"] == 20
        and meta["seed"] == 7
        and meta["git_commit"] == "feed"
    )
    assert meta["spec"]["target"] == "churned" and "customer_id" not in meta["spec"]["numeric"]
    assert (tmp_path / "model" / "baseline").is_dir()


def test_sagemaker_contract_honours_sm_environment_variables(
    tmp_path: Path, churn_split: Split
) -> None:
    data = tmp_path / "elsewhere"
    data.mkdir()
    churn_split.train.head(800).to_parquet(data / "train.parquet")
    environ = {
        "SM_CHANNEL_TRAIN": str(data),
        "SM_MODEL_DIR": str(tmp_path / "m"),
        "SM_HPS": json.dumps({"target": "churned", "max_iter": "10"}),
    }
    paths = SageMakerTrainingPaths.from_environ(environ, root=tmp_path / "opt_ml")
    assert paths.channels["train"] == data
    assert run_sagemaker_training(root=tmp_path / "opt_ml", environ=environ) == 0
    assert (tmp_path / "m" / "model.joblib").exists()


def test_sagemaker_failure_reason_is_written_for_the_job(tmp_path: Path) -> None:
    (tmp_path / "input" / "config").mkdir(parents=True)
    (tmp_path / "input" / "config" / "hyperparameters.json").write_text("{}")
    assert run_sagemaker_training(root=tmp_path, environ={}) == 1
    failure = (tmp_path / "output" / "failure").read_text()
    assert "no 'train' channel" in failure


def test_training_rejects_data_that_does_not_match_the_spec(
    churn_split: Split, fast_training: TrainingSettings
) -> None:
    from mlcore.data import DataValidationError

    with pytest.raises(DataValidationError, match="missing columns"):
        train_model(churn_split.train.drop(columns=["region"]), CHURN_SPEC, fast_training)


def test_regression_models_train_and_report_regression_metrics() -> None:
    import numpy as np

    from mlcore.data import DatasetSpec

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=600), "c": rng.choice(["a", "b"], 600)})
    frame["y"] = 3 * frame["x"] + (frame["c"] == "a") + rng.normal(scale=0.1, size=600)
    spec = DatasetSpec(target="y", numeric=("x",), categorical=("c",), task="regression")
    bundle = train_model(
        frame.iloc[:500],
        spec,
        TrainingSettings(algorithm="ridge", hyperparameters={}),
        validation=frame.iloc[500:],
    )
    assert bundle.metadata["validation_metrics"]["r2"] > 0.95


def test_the_manifest_records_the_sha256_of_every_file_that_shapes_predictions(
    saved_model_dir: Path,
) -> None:
    lines = (saved_model_dir / MANIFEST_FILE).read_text().splitlines()
    assert lines == [
        f"{file_sha256(saved_model_dir / name).removeprefix('sha256:')}  {name}"
        for name in (METADATA_FILE, MODEL_FILE)
    ]
    assert model_sha256(saved_model_dir) == file_sha256(saved_model_dir / MANIFEST_FILE)
    assert len(model_sha256(saved_model_dir)) == len("sha256:") + 64


def test_sample_request_holds_held_out_rows_the_model_accepts(
    saved_model_dir: Path, churn_split: Split
) -> None:
    request = json.loads((saved_model_dir / SAMPLE_REQUEST_FILE).read_text())
    instances = request["instances"]
    assert 1 <= len(instances) <= 5
    assert all(set(row) == set(CHURN_SPEC.features) for row in instances)
    # The rows are the first validation rows (held out from fitting), not training rows.
    expected = churn_split.validation[list(CHURN_SPEC.features)].head(len(instances))
    assert instances[0]["tenure_months"] == pytest.approx(expected.iloc[0]["tenure_months"])
    metadata = json.loads((saved_model_dir / "metadata.json").read_text())
    assert metadata["sample_request_source"] == "validation"
    predictions = ModelBundle.load(saved_model_dir).predict(pd.DataFrame(instances))
    assert len(predictions) == len(instances)


def test_sample_request_is_strict_json_with_missing_values_as_null(
    trained_bundle: ModelBundle, churn_split: Split, tmp_path: Path
) -> None:
    reference = churn_split.validation.copy()
    reference.loc[reference.index[0], "monthly_charges"] = float("nan")
    save_trained_model(trained_bundle, tmp_path, reference=reference, reference_source="train")
    text = (tmp_path / SAMPLE_REQUEST_FILE).read_text()
    assert "NaN" not in text
    request = json.loads(text)
    assert request["instances"][0]["monthly_charges"] is None
    assert json.loads((tmp_path / "metadata.json").read_text())["sample_request_source"] == "train"


@pytest.fixture(scope="module")
def wine() -> tuple[pd.DataFrame, DatasetSpec]:
    """Three classes with text labels: what XGBoost cannot take as they are."""
    from sklearn.datasets import load_wine

    data = load_wine(as_frame=True)
    frame = data.frame.rename(columns={"target": "cultivar"})
    frame["cultivar"] = frame["cultivar"].map({0: "barolo", 1: "grignolino", 2: "barbera"})
    spec = DatasetSpec(target="cultivar", numeric=tuple(data.feature_names), task="classification")
    return frame.sample(frac=1.0, random_state=0).reset_index(drop=True), spec


@pytest.mark.parametrize(
    ("algorithm", "hyperparameters"),
    [("xgboost", {"n_estimators": "30", "max_depth": "3"}), ("lightgbm", {"n_estimators": 30})],
)
def test_xgboost_and_lightgbm_train_on_text_labels_and_keep_them(
    wine: tuple[pd.DataFrame, DatasetSpec],
    algorithm: str,
    hyperparameters: dict[str, object],
    tmp_path: Path,
) -> None:
    frame, spec = wine
    settings = TrainingSettings(algorithm=algorithm, hyperparameters=hyperparameters)
    bundle = train_model(frame.iloc[:140], spec, settings, validation=frame.iloc[140:])
    assert bundle.metadata["algorithm"] == algorithm
    assert sorted(bundle.metadata["classes"]) == ["barbera", "barolo", "grignolino"]
    assert bundle.metadata["validation_metrics"]["accuracy"] > 0.8
    assert algorithm in bundle.metadata["library_versions"] or (
        f"{algorithm}-cpu" in bundle.metadata["library_versions"]
    )
    save_trained_model(bundle, tmp_path, reference=frame.iloc[140:])
    reloaded = ModelBundle.load(tmp_path)
    assert set(reloaded.predict(frame.head(5))["prediction"]) <= set(bundle.metadata["classes"])


def test_xgboost_hyperparameters_are_checked_by_name(
    wine: tuple[pd.DataFrame, DatasetSpec],
) -> None:
    frame, spec = wine
    with pytest.raises(
        ConfigError, match=r"unknown hyperparameters \['n_trees'\] for XGBClassifier"
    ):
        train_model(
            frame, spec, TrainingSettings(algorithm="xgboost", hyperparameters={"n_trees": 3})
        )


def test_a_missing_optional_library_names_the_extra_to_install(
    wine: tuple[pd.DataFrame, DatasetSpec], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "lightgbm", None)  # as if it were not installed
    frame, spec = wine
    with pytest.raises(ConfigError, match=r'pip install "mlcore\[lightgbm\]"'):
        train_model(frame, spec, TrainingSettings(algorithm="lightgbm"))


CUSTOM_MODULE = '''
from sklearn.ensemble import ExtraTreesClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def make_forest(n_trees=20, depth=None, random_state=None):
    """A team's own pipeline: scaling and extra trees."""
    return make_pipeline(
        StandardScaler(),
        ExtraTreesClassifier(n_estimators=n_trees, max_depth=depth, random_state=random_state),
    )


def make_regressor_without_proba(alpha=1.0):
    from sklearn.svm import LinearSVC

    return LinearSVC(C=alpha)
'''


@pytest.fixture
def team_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    package = tmp_path / "team_models"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "forest.py").write_text(CUSTOM_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "team_models.forest"


def test_a_custom_estimator_gets_its_hyperparameters_and_the_seed(
    churn_split: Split, team_models: str
) -> None:
    settings = TrainingSettings(
        estimator=f"{team_models}:make_forest", hyperparameters={"n_trees": "15", "depth": 6}
    )
    bundle = train_model(churn_split.train, CHURN_SPEC, settings, validation=churn_split.validation)
    forest = bundle.pipeline.named_steps["model"].steps[-1][1]
    assert (forest.n_estimators, forest.max_depth, forest.random_state) == (15, 6, 42)
    assert (
        bundle.metadata["algorithm"] == bundle.metadata["estimator"] == f"{team_models}:make_forest"
    )
    assert bundle.metadata["validation_metrics"]["auc"] > 0.7


def test_custom_hyperparameters_are_validated_against_the_factory_signature(
    churn_split: Split, team_models: str
) -> None:
    settings = TrainingSettings(
        estimator=f"{team_models}:make_forest", hyperparameters={"trees": 5}
    )
    with pytest.raises(ConfigError, match=r"unknown hyperparameters \['trees'\].*'n_trees'"):
        train_model(churn_split.train, CHURN_SPEC, settings)


def test_a_classifier_without_probabilities_is_refused_before_fitting(
    churn_split: Split, team_models: str
) -> None:
    settings = TrainingSettings(estimator=f"{team_models}:make_regressor_without_proba")
    with pytest.raises(ConfigError, match="has no predict_proba"):
        train_model(churn_split.train, CHURN_SPEC, settings)


def test_an_estimator_module_that_cannot_be_imported_says_where_to_put_it(
    churn_split: Split,
) -> None:
    settings = TrainingSettings(estimator="nowhere_to_be_found.models:make")
    with pytest.raises(ConfigError, match="Put the package under src/"):
        train_model(churn_split.train, CHURN_SPEC, settings)


def test_the_git_commit_carries_a_dirty_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess

    from mlcore.lineage import git_state

    for name in (
        "GIT_COMMIT",
        "CODEBUILD_RESOLVED_SOURCE_VERSION",
        "BUILD_SOURCEVERSION",
        "GITHUB_SHA",
    ):
        monkeypatch.delenv(name, raising=False)

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "a.txt").write_text("one\n")
    git("add", "a.txt")
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "first")
    clean = git_state(cwd=tmp_path)
    assert clean.commit is not None and len(clean.commit) == 40 and clean.dirty is False
    (tmp_path / "a.txt").write_text("two\n")
    assert git_state(cwd=tmp_path).dirty is True
    # A commit handed over by a pipeline, without git to look: the flag is unknown, not "clean".
    assert git_state("abc123", cwd=tmp_path / "nowhere").dirty is None


def test_metadata_records_whether_the_tree_was_dirty(
    churn_split: Split, fast_training: TrainingSettings
) -> None:
    bundle = train_model(
        churn_split.train.head(500), CHURN_SPEC, fast_training, commit="feed", dirty=True
    )
    assert (bundle.metadata["git_commit"], bundle.metadata["git_dirty"]) == ("feed", True)


def test_the_model_card_shows_whether_the_tree_was_dirty(
    churn_split: Split, fast_training: TrainingSettings
) -> None:
    from mlcore.evaluate import evaluate_bundle
    from mlcore.gate import evaluate_gate
    from mlcore.model_card import build_model_card, render_markdown
    from mlcore.settings import GateSettings

    bundle = train_model(
        churn_split.train.head(800), CHURN_SPEC, fast_training, commit="feed", dirty=True
    )
    report = evaluate_bundle(bundle, churn_split.test)
    card = build_model_card(
        bundle,
        report=report,
        slices={},
        gate=evaluate_gate(report, None, GateSettings()),
        evaluation_rows=len(churn_split.test),
        evaluation_fingerprint="sha256:x",
        name="churn v1",
    )
    assert card["model_details"]["git_dirty"] is True
    assert "**git dirty**: True" in render_markdown(card)


def _spec_channel_job(root: Path, churn_split: Split, target: str) -> dict[str, str]:
    """A training job with prep's spec channel and a target hyperparameter."""
    train = root / "input" / "data" / "train"
    train.mkdir(parents=True)
    churn_split.train.head(400).to_parquet(train / "part.parquet")
    (root / "input" / "data" / "spec").mkdir()
    CHURN_SPEC.save(root / "input" / "data" / "spec" / "spec.json")
    return {"SM_HPS": json.dumps({"target": target, "max_iter": "5"})}


def test_a_target_hyperparameter_that_contradicts_the_spec_channel_fails_the_job(
    tmp_path: Path, churn_split: Split
) -> None:
    # Issue 20: the hyperparameter used to be ignored silently whenever the spec existed.
    environ = _spec_channel_job(tmp_path, churn_split, target="tenure_months")
    assert run_sagemaker_training(root=tmp_path, environ=environ) == 1
    failure = (tmp_path / "output" / "failure").read_text()
    assert "'tenure_months'" in failure and "contradicts the dataset spec" in failure
    assert f"target is '{CHURN_SPEC.target}'" in failure
    assert not (tmp_path / "model" / "model.joblib").exists()


def test_a_target_hyperparameter_that_agrees_with_the_spec_channel_trains(
    tmp_path: Path, churn_split: Split
) -> None:
    # What the pipeline sends: the settings' target and prep's spec, which agree.
    environ = _spec_channel_job(tmp_path, churn_split, target=CHURN_SPEC.target)
    assert run_sagemaker_training(root=tmp_path, environ=environ) == 0
    assert (tmp_path / "model" / "model.joblib").exists()


def test_an_explicit_target_contradicting_an_explicit_spec_is_refused(
    tmp_path: Path, churn_split: Split
) -> None:
    data = tmp_path / "data.parquet"
    churn_split.train.head(200).to_parquet(data)
    CHURN_SPEC.save(tmp_path / "spec.json")
    with pytest.raises(ConfigError, match="contradicts the dataset spec"):
        train_from_paths(
            data=data,
            model_dir=tmp_path / "model",
            settings=TrainingSettings(),
            target="region",
            spec_path=tmp_path / "spec.json",
        )
