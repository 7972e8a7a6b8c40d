"""Data capture: records written in SageMaker's layout by the real server, read back by the monitors."""

from __future__ import annotations

import base64
import json
import threading
from datetime import datetime
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from mlcore.capture import (
    DEFAULT_ENDPOINT_NAME,
    CaptureWriter,
    capture_columns,
    iter_capture,
    read_capture,
)
from mlcore.data import CHURN_SPEC, DatasetSpec, coerce_features
from mlcore.errors import ConfigError, DataError
from mlcore.model import ModelBundle
from mlcore.serve import serve_in_thread

pytestmark = pytest.mark.xdist_group("trained_model")

FEATURES = list(CHURN_SPEC.features)
WINTER = "2026-01-15T10:30:00Z"


@pytest.fixture(scope="module")
def traffic(churn_frame: pd.DataFrame) -> pd.DataFrame:
    return churn_frame.iloc[:120].reset_index(drop=True)


@pytest.fixture(scope="module")
def captured(
    saved_model_dir: Path, traffic: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, list[dict[str, object]]]:
    """Send the traffic in 6 requests (CSV and JSON, answered as JSON and CSV); keep the responses."""
    root = tmp_path_factory.mktemp("capture")
    writer = CaptureWriter(root, endpoint_name="churn-prod", variant_name="blue")
    sent: list[dict[str, object]] = []
    with (
        # The replay of another period's traffic, as the demo does: the time header is trusted.
        serve_in_thread(saved_model_dir, capture=writer, trust_inference_time_header=True) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        for i, start in enumerate(range(0, len(traffic), 20)):
            batch = traffic.iloc[start : start + 20]
            headers = {"X-Amzn-SageMaker-Inference-Id": f"req-{i}"}
            if i == 5:
                headers["X-Mlcore-Inference-Time"] = WINTER
            if i % 2:
                headers["Accept"] = "text/csv"
            if i % 3:
                response = client.post(
                    "/invocations",
                    content=batch[FEATURES].to_csv(header=False, index=False),
                    headers={**headers, "Content-Type": "text/csv"},
                )
            else:
                records = json.loads(batch[FEATURES].to_json(orient="records"))
                response = client.post("/invocations", json={"instances": records}, headers=headers)
            assert response.status_code == 200, response.text
            sent.append({"rows": len(batch), "id": f"req-{i}"})
        # A rejected request is not captured.
        bad = client.post("/invocations", content="1,2", headers={"Content-Type": "text/csv"})
        assert bad.status_code == 400
    return root, sent


def capture_lines(root: Path) -> list[dict[str, object]]:
    return [
        json.loads(line)
        for f in sorted(root.rglob("*.jsonl"))
        for line in f.read_text().splitlines()
    ]


def test_each_successful_request_is_one_record_in_sagemakers_format(
    captured: tuple[Path, list[dict[str, object]]],
) -> None:
    root, sent = captured
    records = capture_lines(root)
    assert len(records) == len(sent)
    for record in records:
        assert record["eventVersion"] == "0"
        data = record["captureData"]
        assert isinstance(data, dict)
        request, response = data["endpointInput"], data["endpointOutput"]
        assert request["mode"] == "INPUT" and response["mode"] == "OUTPUT"
        assert (
            request["encoding"]
            == {"text/csv": "CSV", "application/json": "JSON"}[request["observedContentType"]]
        )
        assert response["encoding"] in ("CSV", "JSON")
        metadata = record["eventMetadata"]
        assert isinstance(metadata, dict)
        assert set(metadata) == {"eventId", "inferenceId", "inferenceTime"}
        assert pd.Timestamp(metadata["inferenceTime"]).tzinfo is not None
    assert sorted(r["eventMetadata"]["inferenceId"] for r in records) == sorted(  # type: ignore[index]
        str(s["id"]) for s in sent
    )


def test_files_follow_the_sagemaker_prefix_layout_by_inference_hour(
    captured: tuple[Path, list[dict[str, object]]],
) -> None:
    root, _ = captured
    files = sorted(root.rglob("*.jsonl"))
    for path in files:
        endpoint, variant, year, month, day, hour, _name = path.relative_to(root).parts
        assert (endpoint, variant) == ("churn-prod", "blue")
        assert len(year) == 4 and all(len(p) == 2 for p in (month, day, hour))
    winter = root / "churn-prod" / "blue" / "2026" / "01" / "15" / "10"
    (winter_file,) = list(winter.glob("*.jsonl"))
    (record,) = capture_lines(winter)
    assert record["eventMetadata"]["inferenceTime"] == WINTER  # type: ignore[index]
    assert winter_file.name.startswith("30-00-000-")


def test_read_capture_returns_what_was_sent_and_what_was_answered(
    captured: tuple[Path, list[dict[str, object]]],
    traffic: pd.DataFrame,
    trained_bundle: ModelBundle,
) -> None:
    root, sent = captured
    frame = read_capture(root, CHURN_SPEC).sort_values(["inference_id"], kind="stable")
    assert list(frame.columns) == capture_columns(CHURN_SPEC)
    assert len(frame) == sum(int(s["rows"]) for s in sent)  # type: ignore[call-overload]
    order = frame["inference_id"].str.removeprefix("req-").astype(int).argsort(kind="stable")
    frame = frame.iloc[order.to_numpy()].reset_index(drop=True)
    pd.testing.assert_frame_equal(
        coerce_features(frame, CHURN_SPEC), coerce_features(traffic, CHURN_SPEC)
    )
    expected = trained_bundle.predict(traffic)
    assert frame["prediction"].tolist() == expected["prediction"].tolist()
    np.testing.assert_allclose(frame["score"], expected["score"], rtol=0, atol=1e-12)
    assert frame["inference_id"].tolist() == [f"req-{i // 20}" for i in range(len(traffic))]
    assert str(frame["inference_time"].dt.tz) == "UTC"
    assert (frame["inference_time"].iloc[100:] == pd.Timestamp(WINTER)).all()


def test_iter_capture_yields_bounded_chunks_that_add_up_to_read_capture(
    captured: tuple[Path, list[dict[str, object]]],
) -> None:
    root, _ = captured
    chunks = list(iter_capture(root, CHURN_SPEC, chunk_rows=7))
    assert all(len(c) == 7 for c in chunks[:-1]) and 1 <= len(chunks[-1]) <= 7
    pd.testing.assert_frame_equal(
        pd.concat(chunks, ignore_index=True), read_capture(root, CHURN_SPEC)
    )


def test_sampling_percentage_captures_that_share_of_requests(tmp_path: Path) -> None:
    writer = CaptureWriter(tmp_path, sampling_percentage=30, seed=7)
    written = sum(
        writer.capture(
            request_body=b"1",
            request_content_type="text/csv",
            response_body=b"0",
            response_content_type="text/csv",
        )
        is not None
        for _ in range(2_000)
    )
    assert 520 <= written <= 680  # 30% of 2,000, within about 4.5 standard deviations
    assert writer.records_written == written == len(capture_lines(tmp_path))
    nothing = CaptureWriter(tmp_path / "off", sampling_percentage=0)
    assert (
        nothing.capture(
            request_body=b"1",
            request_content_type="text/csv",
            response_body=b"0",
            response_content_type="text/csv",
        )
        is None
    )


def test_concurrent_requests_each_leave_one_intact_record(
    saved_model_dir: Path, traffic: pd.DataFrame, tmp_path: Path
) -> None:
    body = traffic.iloc[:2][FEATURES].to_csv(header=False, index=False)
    with serve_in_thread(saved_model_dir, capture_dir=tmp_path) as url:

        def send(n: int) -> None:
            with httpx.Client(base_url=url, timeout=30) as client:
                for i in range(n):
                    response = client.post(
                        "/invocations",
                        content=body,
                        headers={
                            "Content-Type": "text/csv",
                            "X-Amzn-SageMaker-Inference-Id": f"{i}",
                        },
                    )
                    assert response.status_code == 200

        threads = [threading.Thread(target=send, args=(15,)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    # Every line parses and the server stopped with nothing left unwritten.
    assert len(capture_lines(tmp_path)) == 60
    assert len(read_capture(tmp_path, CHURN_SPEC)) == 120


def test_other_content_types_are_stored_base64_and_read_back(tmp_path: Path) -> None:
    spec = DatasetSpec(target="y", numeric=("a",), categorical=("c",), task="regression")
    writer = CaptureWriter(tmp_path, csv_content_types=("text/x-custom-csv",))
    writer.capture(
        request_body=b"1.5,x\n2.5,y\n",
        request_content_type="text/csv",  # not in this writer's CSV types: stored as BASE64
        response_body=b"10.0\n20.0\n",
        response_content_type="text/x-custom-csv",
    )
    (record,) = capture_lines(tmp_path)
    request = record["captureData"]["endpointInput"]  # type: ignore[index]
    assert request["encoding"] == "BASE64"
    assert base64.b64decode(request["data"]) == b"1.5,x\n2.5,y\n"
    response = record["captureData"]["endpointOutput"]  # type: ignore[index]
    assert response["encoding"] == "CSV" and response["data"] == "10.0\n20.0\n"
    # The reader decodes BASE64 and parses it by its observed content type.
    frame = read_capture(tmp_path, spec)
    assert frame["a"].tolist() == [1.5, 2.5] and frame["c"].tolist() == ["x", "y"]
    assert frame["prediction"].tolist() == [10.0, 20.0]


def test_regression_capture_has_no_score_column(tmp_path: Path) -> None:
    spec = DatasetSpec(target="y", numeric=("a",), categorical=("c",), task="regression")
    writer = CaptureWriter(tmp_path)
    writer.capture(
        request_body=b'{"instances": [{"a": 1, "c": "x"}, {"a": null, "c": "y"}]}',
        request_content_type="application/json",
        response_body=b'{"predictions": [{"prediction": 3.5}, {"prediction": 4.5}]}',
        response_content_type="application/json",
    )
    frame = read_capture(tmp_path, spec)
    assert list(frame.columns) == ["a", "c", "prediction", "inference_id", "inference_time"]
    assert frame["prediction"].tolist() == [3.5, 4.5]
    assert np.isnan(frame["a"].iloc[1]) and frame["inference_id"].isna().all()


def test_a_naive_inference_time_is_recorded_as_utc(tmp_path: Path) -> None:
    spec = DatasetSpec(target="y", numeric=("a",), task="regression")
    path = CaptureWriter(tmp_path).capture(
        request_body=b"1\n",
        request_content_type="text/csv",
        response_body=b"2.0\n",
        response_content_type="text/csv",
        inference_time=datetime(2026, 3, 1, 23, 59, 58),
    )
    assert path is not None and path.parent == tmp_path / DEFAULT_ENDPOINT_NAME / "AllTraffic" / (
        "2026/03/01/23"
    )
    assert read_capture(tmp_path, spec)["inference_time"].tolist() == [
        pd.Timestamp("2026-03-01T23:59:58Z")
    ]


def test_reading_a_missing_or_empty_capture_path_says_what_to_point_to(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_capture(tmp_path / "nowhere", CHURN_SPEC)
    with pytest.raises(DataError, match=r"no \.jsonl capture files"):
        read_capture(tmp_path, CHURN_SPEC)


def test_a_line_that_is_not_a_capture_record_is_reported_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"captureData": {}}\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:1 is not a SageMaker data-capture record"):
        read_capture(path, CHURN_SPEC)


def test_mismatched_request_and_response_counts_are_an_error(tmp_path: Path) -> None:
    spec = DatasetSpec(target="y", numeric=("a",), task="regression")
    CaptureWriter(tmp_path).capture(
        request_body=b"1\n2\n",
        request_content_type="text/csv",
        response_body=b"3.0\n",
        response_content_type="text/csv",
    )
    with pytest.raises(DataError, match="2 records but the response 1 predictions"):
        read_capture(tmp_path, spec)


def test_invalid_writer_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sampling_percentage must be between 0 and 100"):
        CaptureWriter(tmp_path, sampling_percentage=150)
    with pytest.raises(ConfigError, match="endpoint_name"):
        CaptureWriter(tmp_path, endpoint_name="a/b")


def test_an_inference_time_with_nanoseconds_is_truncated_to_microseconds() -> None:
    # pandas timestamps carry nanoseconds; the capture record's datetime cannot.
    from mlcore.capture import parse_inference_time

    when = parse_inference_time("2026-01-15T10:00:00.123456789+00:00")
    assert when.isoformat() == "2026-01-15T10:00:00.123456+00:00"
