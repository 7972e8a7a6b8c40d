"""Fixtures shared across the suite. Expensive ones (data, a trained model) are built once per session.

The suite never reads the repository's root ``mlops.yaml``: that file is the team's, and
describes whatever dataset they configured. Every test, and every subprocess a test
starts, reads ``tests/fixtures/mlops.yaml`` through ``$MLOPS_SETTINGS`` (settings
resolution: ``--settings`` > ``$MLOPS_SETTINGS`` > ``./mlops.yaml``), and a test that
opens the root file anyway fails (``reads_root_settings`` marks the few that check the
file itself).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# One OpenMP thread per test process, set before scikit-learn loads its OpenMP runtime:
# pytest -n 2 already uses both cores, and on a busy machine HistGradientBoosting's
# spinning threads made the suite's models many times slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pandas as pd
import pytest

from mlcore.data import CHURN_SPEC, Split, make_churn, split_frame
from mlcore.model import ModelBundle
from mlcore.settings import MlopsSettings, TrainingSettings, load_settings

# pytester runs the root-settings guard below in a scratch project (tests/mlcore/test_settings.py).
pytest_plugins = ("pytester",)

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
FIXTURE_SETTINGS = Path(__file__).resolve().parent / "fixtures" / "mlops.yaml"
ROOT_SETTINGS = REPOSITORY_ROOT / "mlops.yaml"

# Set at import, before any test module is collected: some read settings at import time.
os.environ["MLOPS_SETTINGS"] = str(FIXTURE_SETTINGS)
# No test tracks to MLflow unless it asks to (and then into its own temporary store).
os.environ["MLCORE_TRACKING"] = "off"
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.pop("MLFLOW_RUN_ID", None)

_root_settings_reads: list[str] = []
_READS_BEFORE = pytest.StashKey[int]()


def _watch_root_settings(event: str, args: tuple[object, ...]) -> None:
    # An audit hook sees every open in this process, whoever calls it (our code, a cloud SDK).
    if event != "open" or not args or not isinstance(args[0], str | Path):
        return
    name = os.fspath(args[0])
    if name.endswith("mlops.yaml") and os.path.realpath(name) == str(ROOT_SETTINGS):
        _root_settings_reads.append(_reader())


def _reader() -> str:
    """The innermost frame of this repository's code (not a library's) that opened the file."""
    frame = sys._getframe(2)
    while frame is not None:
        code = frame.f_code.co_filename
        if code.startswith(str(REPOSITORY_ROOT)) and "/.venv/" not in code and code != __file__:
            return f"{Path(code).relative_to(REPOSITORY_ROOT)}:{frame.f_lineno}"
        frame = frame.f_back
    return "outside the repository's code"


sys.addaudithook(_watch_root_settings)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> object:
    # Counted from before setup: module and session fixtures set up for this test count too.
    item.stash[_READS_BEFORE] = len(_root_settings_reads)
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> object:
    """Fail a test that read the root mlops.yaml: it would break when a team changes its dataset."""
    result = yield
    reads = _root_settings_reads[item.stash.get(_READS_BEFORE, len(_root_settings_reads)) :]
    if reads and item.get_closest_marker("reads_root_settings") is None:
        pytest.fail(
            f"{item.nodeid} read the repository's mlops.yaml (from {sorted(set(reads))}); "
            "tests use tests/fixtures/mlops.yaml: take the `settings_file` or `fixture_settings` "
            "fixture, or mlcore.settings.resolve_settings_path() (which honours $MLOPS_SETTINGS)"
        )
    return result


def pytest_collection_finish(session: pytest.Session) -> None:
    if _root_settings_reads:
        raise pytest.UsageError(
            f"collecting the tests read the repository's mlops.yaml (from {sorted(set(_root_settings_reads))}); "
            "read tests/fixtures/mlops.yaml through $MLOPS_SETTINGS instead"
        )


@pytest.fixture(scope="session")
def settings_file() -> Path:
    """The settings file every test runs with (also in $MLOPS_SETTINGS)."""
    return FIXTURE_SETTINGS


@pytest.fixture(scope="session")
def fixture_settings(settings_file: Path) -> MlopsSettings:
    return load_settings(settings_file)


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


# Local Spark executors run this interpreter, which has mlcore and the pinned libraries. Set at
# collection, so it holds for whichever test starts this process's JVM first.
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """The one local SparkSession of a test run: a JVM takes 20-60 s to start on 2 cores.

    Every module that uses it marks its tests ``xdist_group("spark")``, so under
    ``pytest -n 2 --dist loadgroup`` they share one worker and this one session. No test may
    stop it.
    """
    from pyspark.sql import SparkSession

    # py4j logs "Closing down clientserver connection" from __del__ at interpreter exit, after
    # pytest has closed the captured streams; its info lines are not needed.
    logging.getLogger("py4j").setLevel(logging.WARNING)

    session = (
        SparkSession.builder.master("local[2]")
        .appName("mlops-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        # A JVM that lives for a minute: quick compilation and a small collector start faster.
        .config("spark.driver.extraJavaOptions", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def four_accounts() -> object:
    """The whole app in toolchain, dev, staging and prod accounts, with fixture settings
    (tests/fixtures/four_account_app.py): synthesised once per test process, for tests/cdk and
    tests/deploy alike."""
    import importlib.util

    # Loaded by path under one module name: tests/ is no package (and site-packages may hold
    # one called "tests"), and one module means one cached synth for every test folder.
    name = "mlops_fixture_four_account_app"
    if name not in sys.modules:
        path = Path(__file__).resolve().parent / "fixtures" / "four_account_app.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name].four_account_app()
