"""The inference server over real HTTP: SageMaker's container contract and its error answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from mlcore.data import CHURN_SPEC
from mlcore.model import ModelBundle
from mlcore.serve import serve_in_thread

pytestmark = pytest.mark.xdist_group("trained_model")

FEATURES = list(CHURN_SPEC.features)


@pytest.fixture(scope="module")
def client(saved_model_dir: Path) -> Iterator[httpx.Client]:
    with (
        serve_in_thread(saved_model_dir, max_body_bytes=256 * 1024) as url,
        httpx.Client(base_url=url, timeout=30) as http,
    ):
        yield http


@pytest.fixture(scope="module")
def rows(churn_frame: pd.DataFrame) -> pd.DataFrame:
    # The first rows include missing values (the generator leaves ~2% of two columns empty).
    sample = churn_frame.iloc[:200].reset_index(drop=True)
    assert sample[FEATURES].isna().any().any()
    return sample


def csv_body(frame: pd.DataFrame) -> str:
    return frame[FEATURES].to_csv(header=False, index=False)


def json_records(frame: pd.DataFrame) -> list[dict[str, object]]:
    records: list[dict[str, object]] = json.loads(frame[FEATURES].to_json(orient="records"))
    return records


def post(
    client: httpx.Client, body: str | bytes, content_type: str | None, **headers: str
) -> httpx.Response:
    if content_type is not None:
        headers["Content-Type"] = content_type
    return client.post("/invocations", content=body, headers=headers)


def assert_client_error(response: httpx.Response, status: int, *fragments: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    message = response.json()["message"]
    for fragment in fragments:
        assert fragment in message, message


def test_ping_answers_200_once_the_model_is_loaded(client: httpx.Client) -> None:
    response = client.get("/ping")
    assert response.status_code == 200


def test_csv_invocation_returns_the_models_predictions_as_json(
    client: httpx.Client, rows: pd.DataFrame, trained_bundle: ModelBundle
) -> None:
    response = post(client, csv_body(rows), "text/csv")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    predictions = pd.DataFrame(response.json()["predictions"])
    expected = trained_bundle.predict(rows)
    assert predictions["prediction"].tolist() == expected["prediction"].tolist()
    np.testing.assert_allclose(predictions["score"], expected["score"], rtol=0, atol=1e-12)


def test_json_instances_and_bare_list_give_the_same_predictions_as_csv(
    client: httpx.Client, rows: pd.DataFrame
) -> None:
    batch = rows.iloc[:25]
    from_csv = post(client, csv_body(batch), "text/csv").json()
    from_instances = client.post("/invocations", json={"instances": json_records(batch)})
    from_list = client.post("/invocations", json=json_records(batch))
    from_arrays = client.post(
        "/invocations", json={"instances": json.loads(batch[FEATURES].to_json(orient="values"))}
    )
    for response in (from_instances, from_list, from_arrays):
        assert response.status_code == 200, response.text
        assert response.json() == from_csv


def test_json_records_may_carry_extra_keys_such_as_an_id(
    client: httpx.Client, rows: pd.DataFrame
) -> None:
    records = json_records(rows.iloc[:3])
    with_ids = [{**record, "customer_id": f"C{i}"} for i, record in enumerate(records)]
    plain = client.post("/invocations", json={"instances": records}).json()
    assert client.post("/invocations", json={"instances": with_ids}).json() == plain


def test_accept_text_csv_returns_one_prediction_line_per_record(
    client: httpx.Client, rows: pd.DataFrame, trained_bundle: ModelBundle
) -> None:
    batch = rows.iloc[:10]
    response = post(client, csv_body(batch), "text/csv", Accept="text/csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    lines = response.text.splitlines()
    expected = trained_bundle.predict(batch)
    assert len(lines) == len(batch)
    assert [int(line.split(",")[0]) for line in lines] == expected["prediction"].tolist()
    np.testing.assert_allclose([float(line.split(",")[1]) for line in lines], expected["score"])


@pytest.mark.parametrize(
    ("accept", "expected_type"),
    [
        ("application/json", "application/json"),
        ("*/*", "application/json"),
        ("text/html, text/csv;q=0.5", "text/csv"),
        ("application/json;q=0.2, text/csv;q=0.9", "text/csv"),
    ],
)
def test_accept_header_chooses_the_response_type(
    client: httpx.Client, rows: pd.DataFrame, accept: str, expected_type: str
) -> None:
    response = post(client, csv_body(rows.iloc[:2]), "text/csv", Accept=accept)
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == expected_type


def test_unsatisfiable_accept_header_gets_406(client: httpx.Client, rows: pd.DataFrame) -> None:
    response = post(client, csv_body(rows.iloc[:2]), "text/csv", Accept="application/xml")
    assert_client_error(response, 406, "application/xml", "text/csv")


def test_wrong_csv_column_count_gets_400_naming_the_record_and_expected_columns(
    client: httpx.Client, rows: pd.DataFrame
) -> None:
    lines = csv_body(rows.iloc[:3]).splitlines()
    lines[1] = lines[1].rsplit(",", 1)[0]  # drop the last field of record 2
    response = post(client, "\n".join(lines), "text/csv")
    assert_client_error(response, 400, "record 2 has 15", "expects 16", "age,tenure_months")


def test_non_numeric_value_in_a_numeric_column_gets_400_naming_column_and_value(
    client: httpx.Client, rows: pd.DataFrame
) -> None:
    batch = rows.iloc[:3][FEATURES].copy()
    batch["monthly_charges"] = batch["monthly_charges"].astype(object)
    batch.iloc[2, FEATURES.index("monthly_charges")] = "expensive"
    response = post(client, batch.to_csv(header=False, index=False), "text/csv")
    assert_client_error(response, 400, "'monthly_charges'", "record 3", "'expensive'")


def test_json_string_and_boolean_in_numeric_columns_are_rejected(
    client: httpx.Client, rows: pd.DataFrame
) -> None:
    records = json_records(rows.iloc[:2])
    records[0]["age"] = "forty"
    records[1]["num_devices"] = True
    response = client.post("/invocations", json={"instances": records})
    assert_client_error(response, 400, "'age'", "'forty'", "'num_devices'", "True")


def test_infinite_value_gets_400(client: httpx.Client, rows: pd.DataFrame) -> None:
    body = csv_body(rows.iloc[:1])
    response = post(client, "inf" + body[body.index(",") :], "text/csv")
    assert_client_error(response, 400, "'age'", "infinite")


def test_missing_values_are_accepted_as_empty_fields_and_nulls(
    client: httpx.Client, rows: pd.DataFrame
) -> None:
    record = json_records(rows.iloc[:1])[0]
    record["satisfaction_score"] = None
    record["region"] = None
    assert client.post("/invocations", json=[record]).status_code == 200
    fields = csv_body(rows.iloc[:1]).strip().split(",")
    fields[FEATURES.index("satisfaction_score")] = ""
    fields[FEATURES.index("discount_pct")] = "NA"
    assert post(client, ",".join(fields), "text/csv").status_code == 200


def test_json_record_without_a_feature_gets_400_naming_it(
    client: httpx.Client, rows: pd.DataFrame
) -> None:
    records = json_records(rows.iloc[:2])
    del records[1]["region"]
    response = client.post("/invocations", json={"instances": records})
    assert_client_error(response, 400, "record 2", "['region']", "null for a missing value")


@pytest.mark.parametrize("content_type", ["text/csv", "application/json"])
def test_empty_body_gets_400(client: httpx.Client, content_type: str) -> None:
    assert_client_error(post(client, b"", content_type), 400, "body is empty")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("{not json", "not valid JSON"),
        ('{"rows": []}', '"instances"'),
        ('{"instances": []}', "no records"),
        ('{"instances": {"age": 1}}', "must be a list"),
        ("[1, 2]", "record 1 is a int"),
    ],
)
def test_malformed_json_gets_400_saying_what_is_wrong(
    client: httpx.Client, body: str, fragment: str
) -> None:
    assert_client_error(post(client, body, "application/json"), 400, fragment)


def test_unknown_content_type_gets_415_listing_the_supported_ones(client: httpx.Client) -> None:
    response = post(client, b"<xml/>", "application/xml")
    assert_client_error(response, 415, "application/xml", "text/csv", "application/json")


def test_request_without_content_type_gets_415(client: httpx.Client) -> None:
    assert_client_error(post(client, b"1,2,3", None), 415, "no Content-Type")


def test_body_over_the_size_limit_gets_413(client: httpx.Client) -> None:
    assert_client_error(post(client, b"1" * (300 * 1024), "text/csv"), 413, "exceeds 262144 bytes")


def test_content_type_parameters_such_as_charset_are_accepted(
    client: httpx.Client, rows: pd.DataFrame
) -> None:
    response = post(client, csv_body(rows.iloc[:2]), "text/csv; charset=utf-8")
    assert response.status_code == 200


def test_unknown_route_and_wrong_method_get_json_errors(client: httpx.Client) -> None:
    assert_client_error(client.get("/predict"), 404, "/predict", "/invocations")
    assert_client_error(client.get("/invocations"), 405, "GET", "POST /invocations")


def test_the_inference_time_header_is_ignored_unless_trusted(
    client: httpx.Client, rows: pd.DataFrame
) -> None:
    response = post(
        client, csv_body(rows.iloc[:1]), "text/csv", **{"X-Mlcore-Inference-Time": "last tuesday"}
    )
    assert response.status_code == 200, response.text


def test_bad_inference_time_header_gets_400_when_trusted(
    saved_model_dir: Path, rows: pd.DataFrame
) -> None:
    with (
        serve_in_thread(saved_model_dir, trust_inference_time_header=True) as url,
        httpx.Client(base_url=url, timeout=30) as http,
    ):
        response = post(
            http, csv_body(rows.iloc[:1]), "text/csv", **{"X-Mlcore-Inference-Time": "last tuesday"}
        )
    assert_client_error(response, 400, "X-Mlcore-Inference-Time", "ISO 8601")


def test_execution_parameters_tell_batch_transform_the_payload_limit(client: httpx.Client) -> None:
    response = client.get("/execution-parameters")
    assert response.status_code == 200
    assert response.json()["BatchStrategy"] == "MULTI_RECORD"


def test_the_models_own_sample_request_is_accepted(
    client: httpx.Client, saved_model_dir: Path
) -> None:
    """Every cloud's smoke test and health check sends the model folder's sample_request.json as it is."""
    sample = saved_model_dir / "sample_request.json"
    response = post(client, sample.read_bytes(), "application/json")
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == len(json.loads(sample.read_text())["instances"])
