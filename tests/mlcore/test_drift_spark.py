"""The Spark engine gives the streaming engine's report, whatever the partitioning (issue 14).

One local SparkSession for the whole test session (2 cores, UI off, 2 shuffle partitions), and
small tables of binary, multiclass and regression data with their own column names. The module
is one xdist group, so only one test worker starts a JVM.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from tabular_datasets import KINDS, Kind, make_dataset

from mlcore.cli import main
from mlcore.data import DatasetSpec
from mlcore.drift import DriftReport, build_baseline, detect_drift, registry
from mlcore.drift._common import DriftTest
from mlcore.drift.outputs import write_drift_outputs
from mlcore.drift.results import TestResult
from mlcore.drift.spark import detect_drift_spark, detect_drift_spark_path, require_pyspark
from mlcore.drift.streaming import detect_drift_streaming, detect_drift_streaming_path
from mlcore.errors import ConfigError, DataError
from mlcore.settings import Bands, DriftSettings

pytestmark = [
    pytest.mark.xdist_group("spark"),
    # pyspark 3.5 leaves the socket that brings collected rows to the driver to the collector.
    pytest.mark.filterwarnings("ignore:unclosed <socket:ResourceWarning"),
]
SITES = ("Lyon", "Porto", "Turku")  # tabular_datasets' categorical column
FIXTURE_SETTINGS = Path(__file__).resolve().parents[1] / "fixtures" / "mlops.yaml"

# The domain classifier trains on a random sample of rows; it has its own test below.
QUICK = DriftSettings(domain_classifier={"enabled": False})
OUTPUT_FILES = ("drift_report.json", "statistics.json", "constraint_violations.json")


class Case:
    """One dataset: its baseline (with a prediction column) and its current rows as Parquet."""

    def __init__(self, kind: Kind, folder: Path) -> None:
        data = make_dataset(kind, rows=700, seed=3)
        frame = data.frame.copy()
        rng = np.random.default_rng(5)
        target = frame[data.target]
        if kind == "regression":
            frame["model output"] = target + rng.normal(0, 10, len(frame))
        else:  # a model that is right 80% of the time
            labels = np.array(sorted(target.unique()))
            wrong = rng.choice(labels, len(frame))
            frame["model output"] = np.where(rng.random(len(frame)) < 0.8, target, wrong)
        numeric = [c for c in frame.columns if c not in (data.target, "site", "recorded_at")]
        numeric.remove("model output")
        self.spec = DatasetSpec(
            target=data.target,
            numeric=tuple(numeric),
            categorical=("site",),
            timestamp="recorded_at",
            task="regression" if kind == "regression" else "classification",
        )
        split = int(len(frame) * 0.6)
        self.reference = frame.iloc[:split].reset_index(drop=True)
        self.current = frame.iloc[split:].reset_index(drop=True)
        self.baseline = build_baseline(
            self.reference, self.spec, QUICK, prediction_columns=("model output",)
        )
        self.path = folder / f"{kind}.parquet"
        self.current.to_parquet(self.path, index=False)
        self.streaming = detect_drift_streaming_path(self.baseline, self.path, settings=QUICK)


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[Kind, Case]:
    folder = tmp_path_factory.mktemp("spark-cases")
    return {kind: Case(kind, folder) for kind in KINDS}


def assert_same_document(spark_doc: Any, streaming_doc: Any, where: str = "") -> None:
    """Equal documents; floats equal up to rounding (the moments merge in another order)."""
    if isinstance(streaming_doc, dict):
        assert isinstance(spark_doc, dict) and spark_doc.keys() == streaming_doc.keys(), where
        for key, value in streaming_doc.items():
            assert_same_document(spark_doc[key], value, f"{where}.{key}")
    elif isinstance(streaming_doc, list):
        assert isinstance(spark_doc, list) and len(spark_doc) == len(streaming_doc), where
        for i, (mine, theirs) in enumerate(zip(spark_doc, streaming_doc, strict=True)):
            assert_same_document(mine, theirs, f"{where}[{i}]")
    elif isinstance(streaming_doc, float) and not isinstance(spark_doc, bool):
        assert isinstance(spark_doc, int | float), where
        assert math.isclose(spark_doc, streaming_doc, rel_tol=1e-9, abs_tol=1e-12), where
    else:
        assert spark_doc == streaming_doc, where


def assert_same_report(spark_report: DriftReport, streaming_report: DriftReport) -> None:
    assert spark_report.mode == "spark"
    mine, theirs = spark_report.to_dict(), streaming_report.to_dict()
    mine.pop("mode")
    theirs.pop("mode")
    assert_same_document(mine, theirs)


def by_site_with_empty_partitions(frame: Any) -> Any:
    """Each site hashed into 2 partitions of its own: one holds the site, one is empty (a union
    keeps its inputs' partitions)."""
    parts = [frame.where(frame.site == site).repartition(2, "site") for site in SITES]
    return parts[0].union(parts[1]).union(parts[2])


PARTITIONINGS: dict[str, Callable[[Any], Any]] = {
    "one partition": lambda frame: frame.coalesce(1),
    "round robin into 5": lambda frame: frame.repartition(5),
    "one site per partition, two empty": by_site_with_empty_partitions,
}


@pytest.mark.parametrize("partitioning", PARTITIONINGS)
@pytest.mark.parametrize("kind", KINDS)
def test_spark_report_equals_streaming_report_on_any_partitioning(
    spark: Any, cases: dict[Kind, Case], kind: Kind, partitioning: str
) -> None:
    case = cases[kind]
    frame = PARTITIONINGS[partitioning](spark.read.parquet(str(case.path)))
    report = detect_drift_spark(case.baseline, frame, settings=QUICK)
    assert_same_report(report, case.streaming)


def test_the_site_partitioning_has_empty_and_single_category_partitions(
    spark: Any, cases: dict[Kind, Case]
) -> None:
    # The premise of the "one site per partition" case above, checked rather than assumed.
    from pyspark.sql import functions as F

    frame = by_site_with_empty_partitions(spark.read.parquet(str(cases["binary"].path)))
    per_partition = frame.groupBy(F.spark_partition_id().alias("p")).agg(
        F.countDistinct("site").alias("sites")
    )
    filled = {r["p"]: r["sites"] for r in per_partition.collect()}
    assert frame.rdd.getNumPartitions() == 6
    assert len(filled) == 3 and set(filled.values()) == {1}


@pytest.mark.parametrize("kind", KINDS)
def test_spark_statistics_are_within_the_streaming_bound_of_the_exact_ones(
    spark: Any, cases: dict[Kind, Case], kind: Kind
) -> None:
    case = cases[kind]
    report = detect_drift_spark_path(case.baseline, str(case.path), settings=QUICK, spark=spark)
    exact = detect_drift(case.baseline, case.current, settings=QUICK)
    assert report.grade == exact.grade
    for feature in exact.features:
        mine = report.feature(feature.name)
        if feature.kind == "numeric":
            ks = mine.test("ks")
            lower, bound = ks.parameters["plug_in"], ks.parameters["error_bound"]
            exact_d = feature.test("ks").parameters["plug_in"]
            assert lower <= exact_d + 1e-12 <= lower + bound + 2e-12
            w, exact_w = mine.test("wasserstein"), feature.test("wasserstein")
            exact_value = exact_w.parameters["plug_in"]
            assert w.parameters["plug_in_lower"] <= exact_value + 1e-12
            assert exact_value <= w.parameters["plug_in_upper"] + 1e-12
            assert w.statistic <= exact_w.statistic + 1e-12
        else:
            assert mine.test("chi2").statistic == pytest.approx(feature.test("chi2").statistic)
        assert mine.checks == feature.checks


def test_an_empty_window_is_insufficient_data_as_in_streaming(
    spark: Any, cases: dict[Kind, Case]
) -> None:
    case = cases["multiclass"]
    empty = spark.read.parquet(str(case.path)).where("false").repartition(3)
    report = detect_drift_spark(case.baseline, empty, settings=QUICK)
    streaming = detect_drift_streaming(case.baseline, [case.current.iloc[:0]], settings=QUICK)
    assert report.grade == "insufficient_data" and report.current_rows == 0
    assert_same_report(report, streaming)


def test_a_window_below_the_minimum_is_insufficient_data_as_in_streaming(
    spark: Any, cases: dict[Kind, Case], tmp_path: Path
) -> None:
    case = cases["regression"]
    few = case.current.iloc[: QUICK.min_window - 1]
    few.to_parquet(tmp_path / "few.parquet", index=False)
    report = detect_drift_spark(
        case.baseline, spark.read.parquet(str(tmp_path / "few.parquet")), settings=QUICK
    )
    streaming = detect_drift_streaming(case.baseline, [few], settings=QUICK)
    assert report.grade == "insufficient_data"
    assert_same_report(report, streaming)


def test_missing_and_extra_columns_are_reported_as_in_streaming(
    spark: Any, cases: dict[Kind, Case], tmp_path: Path
) -> None:
    case = cases["binary"]
    dropped = case.spec.numeric[1]
    current = case.current.drop(columns=[dropped]).assign(**{"new sensor": 1.0})
    path = tmp_path / "current"
    path.mkdir()
    current.iloc[:100].to_parquet(path / "a.parquet", index=False)
    current.iloc[100:].to_parquet(path / "b.parquet", index=False)
    report = detect_drift_spark_path(case.baseline, str(path), settings=QUICK, spark=spark)
    streaming = detect_drift_streaming_path(case.baseline, path, settings=QUICK)
    assert report.missing_columns == (dropped,) and report.extra_columns == ("new sensor",)
    assert_same_report(report, streaming)


def test_type_violations_give_the_streaming_constraint_violations(
    spark: Any, cases: dict[Kind, Case], tmp_path: Path
) -> None:
    case = cases["multiclass"]
    current = case.current.copy()
    text_column, whole_column = case.spec.numeric[0], case.spec.numeric[4]
    # Text among numbers (a broken upstream export), and fractions in a whole-number column.
    current[text_column] = current[text_column].astype(str).where(current.index % 7 != 0, "N/A")
    current[whole_column] = current[whole_column] + 0.5
    path = tmp_path / "typed.parquet"
    current.to_parquet(path, index=False)
    spark_out, streaming_out = tmp_path / "spark", tmp_path / "streaming"
    report = detect_drift_spark_path(case.baseline, str(path), settings=QUICK, spark=spark)
    streaming = detect_drift_streaming_path(case.baseline, path, settings=QUICK)
    write_drift_outputs(report, spark_out)
    write_drift_outputs(streaming, streaming_out)
    violations = json.loads((spark_out / "constraint_violations.json").read_text())
    kinds = {(v["feature_name"], v["constraint_check_type"]) for v in violations["violations"]}
    assert (text_column, "data_type_check") in kinds
    assert violations == json.loads((streaming_out / "constraint_violations.json").read_text())
    assert report.feature(text_column).data_type.examples == ("N/A",)


def test_a_check_added_to_the_registry_runs_on_the_spark_engine(
    spark: Any, cases: dict[Kind, Case], monkeypatch: pytest.MonkeyPatch
) -> None:
    def rows_seen(pair: Any, settings: DriftSettings) -> TestResult:
        return TestResult(
            method="rows_seen",
            statistic=float(pair.current.n_total),
            p_value=None,
            bands=Bands(moderate=1e9, major=2e9),
            alpha=settings.p_value_threshold,
            grade="none",
        )

    check = DriftTest(
        name="rows_seen",
        kinds=("numeric", "categorical"),
        implementations={"exact": rows_seen, "streaming": rows_seen},
    )
    monkeypatch.setattr(registry, "CHECKS", (*registry.CHECKS, check))
    case = cases["regression"]
    report = detect_drift_spark(
        case.baseline, spark.read.parquet(str(case.path)).repartition(3), settings=QUICK
    )
    site = next(c for c in report.feature("site").checks if c.method == "rows_seen")
    assert site.statistic == len(case.current)


def test_the_domain_classifier_runs_on_a_sample_of_the_spark_rows(
    spark: Any, cases: dict[Kind, Case]
) -> None:
    case = cases["binary"]
    settings = DriftSettings(domain_classifier={"enabled": True, "max_rows": 150})
    baseline = build_baseline(case.reference, case.spec, settings)
    frame = spark.read.parquet(str(case.path)).repartition(4)
    result = detect_drift_spark(baseline, frame, settings=settings).domain_classifier
    assert result is not None and result.statistic is not None
    assert result.parameters["current_size"] == 150


def test_the_domain_classifier_gives_one_auc_whatever_the_partitioning(
    spark: Any, cases: dict[Kind, Case]
) -> None:
    # Issue 28, item 4: each partition's sample was seeded by partition id and batch, so the AUC
    # ranged 0.692-0.711 over six layouts of the same data. Rows are now chosen by a hash of
    # their content: every layout, and the exact engine, give the classifier the same rows.
    case = cases["multiclass"]
    settings = DriftSettings(domain_classifier={"enabled": True, "max_rows": 150})
    baseline = build_baseline(case.reference, case.spec, settings)
    exact = detect_drift(baseline, case.current, settings=settings).domain_classifier
    assert exact is not None and exact.statistic is not None
    for partitioning in PARTITIONINGS.values():
        frame = partitioning(spark.read.parquet(str(case.path)))
        result = detect_drift_spark(baseline, frame, settings=settings).domain_classifier
        assert result is not None and result.statistic == exact.statistic


def test_heavy_tails_and_class_probabilities_grade_as_in_the_exact_engine(
    spark: Any, tmp_path: Path
) -> None:
    # Issue 28, item 1 (a Pareto column with nothing that matters planted grades none) and
    # issue 21, finding 7 (a shift between two runner-up classes' probabilities is found), on
    # the Spark engine as on the others.
    rng = np.random.default_rng(11)
    n = 20_000

    def window(beta: tuple[float, float]) -> Any:
        import pandas as pd

        top = rng.uniform(0.5, 0.9, n)
        split = rng.beta(*beta, n)
        return pd.DataFrame(
            {
                "pareto": rng.pareto(1.0, n) + 1,
                "prediction": "a",
                "score": top,
                "probability_b": (1 - top) * split,
                "probability_c": (1 - top) * (1 - split),
                "y": "a",
            }
        )

    spec = DatasetSpec(target="y", numeric=("pareto",))
    outputs = ("prediction", "score", "probability_b", "probability_c")
    baseline = build_baseline(window((2, 5)), spec, QUICK, prediction_columns=outputs)
    current = window((5, 2)).drop(columns="y")
    current.loc[rng.random(n) < 0.003, "pareto"] = 1.0  # real, far too small to matter
    current.to_parquet(tmp_path / "current.parquet", index=False)
    frame = spark.read.parquet(str(tmp_path / "current.parquet")).repartition(3)
    report = detect_drift_spark(baseline, frame, settings=QUICK)
    exact = detect_drift(baseline, current, settings=QUICK)
    assert report.feature("pareto").grade == exact.feature("pareto").grade == "none"
    grades = {p.name: p.grade for p in report.predictions}
    assert grades == {p.name: p.grade for p in exact.predictions}
    assert grades["score"] == "none" and grades["probability_b"] == "major"


def _capture(case: Case, root: Path, *, torn: bool = False) -> Path:
    from datetime import UTC, datetime, timedelta

    from mlcore.capture import CaptureWriter

    writer = CaptureWriter(root, endpoint_name="scoring", variant_name="blue")
    features = case.current[list(case.spec.features)]
    start = datetime(2026, 3, 1, tzinfo=UTC)
    for i in range(0, len(features), 4):
        rows = features.iloc[i : i + 4]
        outputs = case.current["model output"].iloc[i : i + 4]
        predictions = [{"prediction": v} for v in outputs.tolist()]
        writer.capture(
            request_body=json.dumps({"instances": rows.to_dict("records")}).encode(),
            request_content_type="application/json",
            response_body=json.dumps({"predictions": predictions}).encode(),
            response_content_type="application/json",
            inference_time=start + timedelta(minutes=3 * i),
        )
    if torn:  # a writer stopped mid-append leaves half a record without its newline
        with writer.files()[-1].open("a") as handle:
            handle.write('{"captureData": {"endpointIn')
    return root


def test_cli_engine_spark_on_captured_data_writes_the_streaming_files(
    spark: Any, cases: dict[Kind, Case], tmp_path: Path
) -> None:
    case = cases["multiclass"]
    capture = _capture(case, tmp_path / "capture", torn=True)
    baseline_dir = tmp_path / "baseline"
    case.baseline.save(baseline_dir)
    # The fixture settings without the domain classifier, which trains on a random sample.
    settings = yaml.safe_load(FIXTURE_SETTINGS.read_text())
    settings["drift"]["domain_classifier"] = {"enabled": False}
    (tmp_path / "mlops.yaml").write_text(yaml.safe_dump(settings))
    common = ["drift", "--baseline", str(baseline_dir), "--current", str(capture)]
    common += ["--settings", str(tmp_path / "mlops.yaml")]
    assert main([*common, "--output", str(tmp_path / "spark"), "--engine", "spark"]) == 0
    assert main([*common, "--output", str(tmp_path / "streaming"), "--streaming"]) == 0
    for name in OUTPUT_FILES:
        mine = json.loads((tmp_path / "spark" / name).read_text())
        theirs = json.loads((tmp_path / "streaming" / name).read_text())
        if name == "drift_report.json":
            assert mine.pop("mode") == "spark" and theirs.pop("mode") == "streaming"
            assert mine["current_rows"] == len(case.current)
            # The two runs were generated seconds apart; the rest of the header is equal.
            mine["context"].pop("generated_at"), theirs["context"].pop("generated_at")
        assert_same_document(mine, theirs, name)
    assert (tmp_path / "spark" / "drift_report.html").is_file()


def test_a_broken_capture_record_is_a_data_error_naming_the_file(
    spark: Any, cases: dict[Kind, Case], tmp_path: Path
) -> None:
    case = cases["regression"]
    capture = _capture(case, tmp_path / "capture")
    first = sorted(capture.rglob("*.jsonl"))[0]
    first.write_text('{"not": "a capture record"}\n' + first.read_text())
    with pytest.raises(DataError, match=r"a Spark task failed: .*\.jsonl:1 is not a SageMaker"):
        detect_drift_spark_path(case.baseline, str(capture), settings=QUICK, spark=spark)


def test_a_missing_path_is_a_data_error(
    spark: Any, cases: dict[Kind, Case], tmp_path: Path
) -> None:
    with pytest.raises(DataError, match="data path does not exist"):
        detect_drift_spark_path(cases["binary"].baseline, str(tmp_path / "nowhere"), spark=spark)


# --- without a JVM: the switch and its errors ---


def test_without_pyspark_the_cli_names_the_extra(
    cases: dict[Kind, Case],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cases["binary"].baseline.save(tmp_path / "baseline")
    monkeypatch.setitem(sys.modules, "pyspark", None)  # what an absent package looks like
    argv = ["drift", "--baseline", str(tmp_path / "baseline"), "--current", "s3://bucket/x"]
    assert main([*argv, "--output", str(tmp_path / "out"), "--engine", "spark"]) != 0
    assert "pip install 'mlcore[spark]'" in capsys.readouterr().err
    with pytest.raises(ConfigError, match=r"pip install 'mlcore\[spark\]'"):
        require_pyspark()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--streaming", "--engine", "exact"], "--streaming means --engine streaming"),
        (["--spark-master", "local[2]"], "--spark-master applies to --engine spark"),
        (["--engine", "spark", "--reference", "ref.parquet"], "compares the current data with"),
    ],
)
def test_contradictory_engine_flags_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    argv = ["drift", "--baseline", str(tmp_path), "--current", "x", "--output", str(tmp_path)]
    assert main([*argv, *flags]) != 0
    assert message in capsys.readouterr().err
