"""Finding 6 of issue 12: capture that cannot be written, torn capture files, the time header,
and a writer's bounded memory of open files."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pandas as pd
import pytest

from mlcore.capture import OPEN_FILES_LIMIT, CaptureReadStats, CaptureWriter, read_capture
from mlcore.cli import main
from mlcore.data import CHURN_SPEC
from mlcore.errors import ConfigError
from mlcore.serve import serve_in_thread

pytestmark = pytest.mark.xdist_group("trained_model")

FEATURES = list(CHURN_SPEC.features)


@pytest.fixture(scope="module")
def body(churn_frame: pd.DataFrame) -> str:
    return churn_frame.iloc[:3][FEATURES].to_csv(header=False, index=False)


def post(url: str, body: str, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{url}/invocations", content=body, headers={"Content-Type": "text/csv", **headers}
    )


def test_the_server_refuses_to_start_when_the_capture_folder_cannot_be_written(
    saved_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("capture cannot go under a file")
    with (
        pytest.raises(ConfigError, match="cannot write data capture"),
        serve_in_thread(saved_model_dir, capture_dir=blocker / "capture"),
    ):
        pass
    argv = ["serve", "--model-dir", str(saved_model_dir), "--port", "0"]
    assert main([*argv, "--capture-dir", str(blocker / "capture")]) == 2
    assert "cannot write data capture" in capsys.readouterr().err


def test_capture_lost_after_start_is_answered_and_counted_in_the_metrics(
    saved_model_dir: Path, tmp_path: Path, body: str
) -> None:
    writer = CaptureWriter(tmp_path / "capture")
    with serve_in_thread(saved_model_dir, capture=writer) as url:
        assert post(url, body).status_code == 200
        # The disk goes away under the running server: the variant folder becomes a file.
        shutil.rmtree(writer.prefix)
        writer.prefix.write_text("not a folder any more")
        assert post(url, body).status_code == 200
        assert post(url, body).status_code == 200
        metrics = httpx.get(f"{url}/metrics").text
    assert "mlcore_capture_failures_total 2.0" in metrics
    assert writer.records_written == 1


def test_the_inference_time_header_is_ignored_unless_the_server_trusts_it(
    saved_model_dir: Path, tmp_path: Path, body: str
) -> None:
    before = datetime.now(UTC) - timedelta(minutes=1)
    with serve_in_thread(saved_model_dir, capture_dir=tmp_path) as url:
        assert (
            post(url, body, **{"X-Mlcore-Inference-Time": "1800-01-01T00:00:00Z"}).status_code
            == 200
        )
    captured = read_capture(tmp_path, CHURN_SPEC)
    assert (captured["inference_time"] >= pd.Timestamp(before)).all()
    assert not list(tmp_path.rglob("1800"))


def test_the_writer_remembers_a_bounded_number_of_hour_files(tmp_path: Path) -> None:
    writer = CaptureWriter(tmp_path)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for hour in range(300):
        writer.capture(
            request_body=b"1",
            request_content_type="text/csv",
            response_body=b"1",
            response_content_type="text/csv",
            inference_time=start + timedelta(hours=hour),
        )
    assert len(writer._files) == len(writer.files()) == OPEN_FILES_LIMIT
    assert len(list(tmp_path.rglob("*.jsonl"))) == 300  # every record is still on disk


@pytest.fixture
def torn_capture(saved_model_dir: Path, tmp_path: Path, body: str) -> Path:
    root = tmp_path / "capture"
    with serve_in_thread(saved_model_dir, capture_dir=root) as url:
        for _ in range(4):
            assert post(url, body).status_code == 200
    (file,) = list(root.rglob("*.jsonl"))
    whole = file.read_text().splitlines()[0]
    with file.open("a") as handle:
        handle.write(whole[: len(whole) // 2])  # the writer was stopped mid-append
    return root


def test_a_torn_final_line_is_skipped_and_counted(torn_capture: Path) -> None:
    stats = CaptureReadStats()
    frame = read_capture(torn_capture, CHURN_SPEC, stats=stats)
    assert len(frame) == 12 and stats.records == 4
    assert len(stats.broken_lines) == 1 and stats.broken_lines[0].endswith(":5")


def test_the_streaming_drift_job_reads_past_a_torn_final_line(
    torn_capture: Path, saved_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["drift", "--baseline", str(saved_model_dir), "--current", str(torn_capture)]
    assert main([*argv, "--output", str(tmp_path / "drift"), "--streaming"]) == 0
    report = json.loads((tmp_path / "drift" / "drift_report.json").read_text())
    assert report
