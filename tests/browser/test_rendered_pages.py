"""The HTML model card and drift report as a person sees them (issue 22, finding 9).

Each page is opened in headless Chromium (Debian's ``chromium``, driven by npm's
``playwright-core``, see inspect_page.mjs) and checked on what is rendered, not on the
source: the figures are decoded images with a real size on screen and nothing covering
them, the gate, metrics, header and summary are visible, and the page fetches nothing.
Screenshots go to pytest's temporary folder, never into the repository.

Without Chromium the tests skip, saying how to install it, unless MLCORE_REQUIRE_BROWSER is
set (CI sets it: .ci/run installs Chromium first), when a missing browser fails them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mlcore.data import CHURN_SPEC, Split, make_churn
from mlcore.drift import detect_drift, write_drift_outputs
from mlcore.drift.html import ReportContext
from mlcore.evaluation_job import run_evaluation
from mlcore.settings import DriftSettings, MlopsSettings

REPO = Path(__file__).resolve().parents[2]
INSPECTOR = Path(__file__).with_name("inspect_page.mjs")


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    node_ready = shutil.which("node") and (REPO / "node_modules" / "playwright-core").is_dir()
    if found and node_ready:
        return found
    missing = "Chromium (apt-get install chromium)" if not found else ""
    if not node_ready:
        missing += (" and " if missing else "") + "playwright-core (npm ci)"
    if os.environ.get("MLCORE_REQUIRE_BROWSER"):
        pytest.fail(f"MLCORE_REQUIRE_BROWSER is set but {missing} is not installed")
    pytest.skip(f"the rendered-page checks need {missing}")


def _inspect(page: Path, selectors: list[str], tmp_path: Path) -> dict[str, Any]:
    spec = {
        "file": str(page),
        "screenshot": str(tmp_path / f"{page.stem}.png"),
        "selectors": selectors,
        "chromium": _chromium(),
        "userDataDir": str(tmp_path / "chromium-profile"),  # fresh for every page
    }
    done = subprocess.run(
        ["node", str(INSPECTOR), json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report: dict[str, Any] = json.loads(done.stdout)
    assert Path(spec["screenshot"]).stat().st_size > 0
    return report


def _seen(element: dict[str, Any], *, min_width: float, min_height: float) -> bool:
    box = element["box"]
    return (
        element["visible"]
        and element["uncovered"]
        and box is not None
        and box["width"] >= min_width
        and box["height"] >= min_height
    )


@pytest.fixture(scope="module")
def evaluation(
    saved_model_dir: Path, churn_split: Split, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("rendered")
    churn_split.test.to_parquet(out / "test.parquet")
    run_evaluation(
        model_dir=saved_model_dir,
        data=out / "test.parquet",
        output_dir=out / "evaluation",
        settings=MlopsSettings(),
        model_name="churn v1",
    )
    return out / "evaluation"


def test_the_model_card_shows_its_gate_metrics_and_every_figure(
    evaluation: Path, tmp_path: Path
) -> None:
    card = json.loads((evaluation / "model_card.json").read_text())
    figures = card["quantitative_analyses"]["figures"]
    assert {f["name"] for f in figures} >= {
        "roc_curve",
        "precision_recall_curve",
        "calibration_curve",
        "confusion_matrix",
        "feature_importance",
    }
    page = _inspect(
        evaluation / "model_card.html", ["#gate", "#metrics", "#metrics tr", "figure img"], tmp_path
    )
    assert page["title"] == "Model card: churn v1"
    assert page["external"] == []  # self-contained: nothing fetched
    (gate,) = page["selectors"]["#gate"]
    assert _seen(gate, min_width=300, min_height=30) and "Quality gate PASSED" in gate["text"]
    (table,) = page["selectors"]["#metrics"]
    assert _seen(table, min_width=300, min_height=100)
    assert "95% interval" in table["text"] and "no-skill baseline" in table["text"]
    assert len(page["selectors"]["#metrics tr"]) == 1 + len(
        card["quantitative_analyses"]["overall"]
    )
    images = page["selectors"]["figure img"]
    assert len(images) == len(figures)
    for image in images:
        # Decoded (its natural size is the PNG's 600 x 450) and drawn at a readable size.
        assert (image["naturalWidth"], image["naturalHeight"]) == (600, 450), image
        assert _seen(image, min_width=300, min_height=220), image


@pytest.fixture(scope="module")
def drift_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reference = make_churn(4000, seed=1)
    current = make_churn(4000, seed=2, covariate_shift=1.0)
    # A sentinel in a tenth of the current rows: out of the reference's range.
    current.loc[current.index[:400], "tenure_months"] = -999
    report = detect_drift(
        reference,
        current,
        spec=CHURN_SPEC,
        settings=DriftSettings(domain_classifier={"enabled": False}),
    )
    out = tmp_path_factory.mktemp("drift")
    context = ReportContext(
        generated_at=pd.Timestamp("2026-03-02T07:00:00Z").to_pydatetime(),
        model_version="churn:3",
        model_sha256="sha256:0123456789abcdef",
        current_window_start="2026-03-01T00:00:00+00:00",
        current_window_end="2026-03-01T23:59:59+00:00",
    )
    write_drift_outputs(report, out, context=context)
    return out / "drift_report.html"


def test_the_drift_report_shows_its_header_a_worst_first_summary_and_every_chart(
    drift_page: Path, tmp_path: Path
) -> None:
    page = _inspect(
        drift_page,
        ["#header", "#verdict", "#summary", "#summary tr", "svg.distribution"],
        tmp_path,
    )
    assert page["external"] == []
    (header,) = page["selectors"]["#header"]
    assert _seen(header, min_width=300, min_height=60)
    for expected in (
        "generated at\t2026-03-02 07:00:00 UTC",
        "version churn:3 · sha256 0123456789ab",
        "the training baseline, 4,000 rows",
        "2026-03-01T00:00:00+00:00 to 2026-03-01T23:59:59+00:00",
        "engine\texact",
    ):
        assert expected in header["text"], (expected, header["text"])
    (verdict,) = page["selectors"]["#verdict"]
    assert _seen(verdict, min_width=300, min_height=30) and "dataset drift" in verdict["text"]
    (summary,) = page["selectors"]["#summary"]
    assert _seen(summary, min_width=500, min_height=200)
    rows = page["selectors"]["#summary tr"][1:]
    grades = [
        next(g for g in ("major", "moderate", "insufficient", "none") if g in r["text"])
        for r in rows
    ]
    order = ["major", "moderate", "insufficient", "none"]
    assert grades == sorted(grades, key=order.index) and grades[0] == "major"
    tenure = next(r for r in rows if r["text"].startswith("tenure_months"))
    assert "out of range (moderate): 10.0% outside the reference's range" in tenure["text"] or (
        "out of range (major): 10.0% outside the reference's range" in tenure["text"]
    )
    charts = page["selectors"]["svg.distribution"]
    assert len(charts) == len(rows)  # one chart per column, each drawn
    for chart in charts:
        assert _seen(chart, min_width=500, min_height=100), chart
