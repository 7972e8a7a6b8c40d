from __future__ import annotations

from pathlib import Path

import pytest

from mlcore.errors import ConfigError
from mlcore.settings import load_settings

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.reads_root_settings
def test_the_repository_settings_file_is_valid() -> None:
    # Whatever dataset the team configured: the file loads, and names its project.
    settings = load_settings(REPO / "mlops.yaml")
    assert settings.project and settings.dataset.target


def test_a_misspelt_key_is_an_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text("gate:\n  min_metric: {auc: 0.8}\n")
    with pytest.raises(ConfigError, match=r"gate.min_metric: Extra inputs are not permitted"):
        load_settings(tmp_path / "s.yaml")


def test_out_of_range_values_are_reported_with_their_path(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text("drift:\n  p_value_threshold: 5\n")
    with pytest.raises(ConfigError, match=r"drift.p_value_threshold"):
        load_settings(tmp_path / "s.yaml")


def test_overrides_merge_into_nested_sections() -> None:
    settings = load_settings(overrides={"gate": {"champion_tolerance": 0.02}})
    assert settings.gate.champion_tolerance == 0.02
    assert settings.gate.min_metrics == {"auc": 0.70}


def test_missing_and_malformed_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "absent.yaml")
    (tmp_path / "bad.yaml").write_text("gate: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(tmp_path / "bad.yaml")


def test_an_empty_dataset_section_means_the_built_in_example() -> None:
    from mlcore.data import CHURN_SPEC

    settings = load_settings(None)
    assert settings.dataset.is_example and settings.project == "churn"
    assert settings.dataset.target == CHURN_SPEC.target
    assert settings.dataset.id_columns == list(CHURN_SPEC.id_columns)


def test_settings_for_your_own_data_name_the_target_and_the_project(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text("dataset:\n  path: data/loans.csv\n")
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path / "s.yaml")
    assert "project: Field required" in str(info.value)
    assert "dataset.target: Field required" in str(info.value)


def test_own_data_inherits_no_example_columns() -> None:
    settings = load_settings(
        overrides={"project": "loans", "dataset": {"path": "x.csv", "target": "defaulted"}}
    )
    assert settings.dataset.timestamp is None
    assert settings.dataset.id_columns == [] and settings.dataset.slice_columns == []


def test_another_algorithm_starts_from_its_own_hyperparameter_defaults() -> None:
    settings = load_settings(overrides={"training": {"algorithm": "random_forest"}})
    assert settings.training.hyperparameters == {}


def test_an_estimator_and_an_algorithm_together_are_an_error(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(
        "training:\n  algorithm: ridge\n  estimator: my_models.forest:make\n"
    )
    with pytest.raises(
        ConfigError, match=r"set training\.algorithm or training\.estimator, not both"
    ):
        load_settings(tmp_path / "s.yaml")


def test_switching_preprocessing_off_needs_your_own_estimator() -> None:
    with pytest.raises(ConfigError, match=r"training\.preprocess: false is for your own estimator"):
        load_settings(overrides={"training": {"preprocess": False}})


def test_a_malformed_estimator_reference_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"training\.estimator"):
        load_settings(overrides={"training": {"estimator": "my_models.forest.make"}})


def test_settings_path_follows_option_then_environment_then_the_nearest_file_upward(
    tmp_path: Path,
) -> None:
    from mlcore.settings import resolve_settings_path

    project = tmp_path / "project"
    (project / ".git").mkdir(parents=True)
    (project / "mlops.yaml").write_text("project: here\n")
    deep = project / "notebooks" / "eda"
    deep.mkdir(parents=True)
    # From a subfolder, as git and ruff find theirs: the repository's file.
    assert resolve_settings_path(environ={}, cwd=deep) == project / "mlops.yaml"
    assert resolve_settings_path(environ={}, cwd=project) == project / "mlops.yaml"
    assert resolve_settings_path(environ={"MLOPS_SETTINGS": "/env.yaml"}, cwd=deep) == Path(
        "/env.yaml"
    )
    assert resolve_settings_path(
        "/opt.yaml", environ={"MLOPS_SETTINGS": "/env.yaml"}, cwd=deep
    ) == Path("/opt.yaml")


def test_the_search_stops_at_the_repository_top_and_finds_nothing_beyond(tmp_path: Path) -> None:
    from mlcore.settings import resolve_settings_path

    (tmp_path / "mlops.yaml").write_text("project: someone-elses\n")
    repository = tmp_path / "mine"
    (repository / ".git").mkdir(parents=True)
    assert resolve_settings_path(environ={}, cwd=repository) is None


def test_settings_resolution_is_written_once(tmp_path: Path) -> None:
    # settings.py re-exports the one resolution; no second implementation to drift apart.
    import mlcore.settings
    import mlcore.settings_file

    assert mlcore.settings.resolve_settings_path is mlcore.settings_file.resolve_settings_path


def test_auto_threads_follow_omp_num_threads_else_one_on_a_busy_machine_else_every_core() -> None:
    from mlcore.settings import TrainingSettings

    auto = TrainingSettings()
    assert auto.thread_count({"OMP_NUM_THREADS": "3"}, cores=8, load_average=20.0) == 3
    # More runnable processes than cores: spinning threads wait on each other (bench-threads).
    assert auto.thread_count({}, cores=2, load_average=13.0) == 1
    assert auto.thread_count({"OMP_WAIT_POLICY": "passive"}, cores=2, load_average=13.0) == 2
    assert auto.thread_count({}, cores=8, load_average=0.5) == 8
    assert TrainingSettings(threads=2).thread_count({"OMP_NUM_THREADS": "7"}) == 2
    with pytest.raises(ValueError, match=r"training\.threads"):
        TrainingSettings(threads=0)


def test_another_algorithm_starts_from_its_own_defaults_not_the_current_ones() -> None:
    from mlcore.settings import TrainingSettings

    boosting = TrainingSettings(hyperparameters={"learning_rate": 0.05, "max_iter": 300})
    assert boosting.with_algorithm("ridge").hyperparameters == {}
    assert boosting.with_algorithm("hist_gradient_boosting") is boosting
    assert TrainingSettings(algorithm="ridge").with_algorithm(
        "hist_gradient_boosting"
    ).hyperparameters == {"learning_rate": 0.08, "max_iter": 200, "max_leaf_nodes": 31}


def test_the_extras_the_settings_need() -> None:
    from mlcore.settings import required_extras

    assert required_extras(load_settings(None)) == ()
    xgb = load_settings(
        overrides={"training": {"algorithm": "xgboost"}, "tracking": {"enabled": True}}
    )
    assert required_extras(xgb) == ("xgboost", "tracking")


def test_the_suite_runs_on_fixture_settings_not_the_repository_file() -> None:
    import os

    from mlcore.settings import resolve_settings_path

    path = resolve_settings_path()
    assert path is not None and path.parent.name == "fixtures"
    assert os.environ["MLCORE_TRACKING"] == "off"
    assert path.resolve() != (REPO / "mlops.yaml").resolve()


def test_reading_the_root_settings_file_fails_the_test_that_does_it(
    pytester: pytest.Pytester,
) -> None:
    # The guard of tests/conftest.py, exercised on a copy of itself in a scratch project.
    conftest = (REPO / "tests" / "conftest.py").read_text().replace("pytest_plugins", "_plugins")
    root = pytester.path
    (root / "tests" / "fixtures").mkdir(parents=True)
    (root / "tests" / "conftest.py").write_text(conftest)
    (root / "tests" / "fixtures" / "mlops.yaml").write_text("project: fixture\n")
    (root / "mlops.yaml").write_text("project: theirs\n")
    (root / "tests" / "test_reads.py").write_text(
        "from pathlib import Path\n"
        "import pytest\n"
        "from mlcore.settings import load_settings, resolve_settings_path\n"
        "ROOT = Path(__file__).resolve().parents[1] / 'mlops.yaml'\n"
        "def test_reads_the_root_file():\n"
        "    assert load_settings(ROOT).project == 'theirs'\n"
        "@pytest.mark.reads_root_settings\n"
        "def test_marked_may_read_it():\n"
        "    assert load_settings(ROOT).project == 'theirs'\n"
        "def test_uses_the_fixture():\n"
        "    assert load_settings(resolve_settings_path()).project == 'fixture'\n"
    )
    (root / "pytest.ini").write_text(
        "[pytest]\nmarkers =\n    reads_root_settings: allowed\n    slow: slow\n"
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:xdist", "tests")
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["*test_reads_the_root_file*read the repository's mlops.yaml*"])


@pytest.mark.parametrize("engine", ["spark", "auto"])
def test_spark_with_a_windowed_reference_is_refused_with_both_ways_out(engine: str) -> None:
    # The Spark engine compares with the training baseline only (mlcore.drift.spark); both
    # clouds' monitors would otherwise pick Spark for a reference it cannot use.
    overrides = {
        "monitoring": {"engine": engine},
        "drift": {"reference": {"mode": "previous_window"}},
    }
    with pytest.raises(
        ConfigError, match=r"drift\.reference\.mode: training, or monitoring\.engine"
    ):
        load_settings(overrides=overrides)
    assert load_settings(overrides={"monitoring": {"engine": engine}}).monitoring.engine == engine
