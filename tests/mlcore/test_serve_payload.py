"""Payload parsing and content negotiation, without a server: the rules the endpoint applies."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from mlcore.data import DatasetSpec
from mlcore.serve.payload import (
    CSV,
    JSON,
    RequestError,
    choose_response_type,
    decode_response,
    encode_response,
    parse_request,
)

SPEC = DatasetSpec(target="y", numeric=("x", "z"), categorical=("city",))


def test_csv_fields_follow_csv_quoting_rules() -> None:
    frame = parse_request('1.5,2,"Paris, France"\n 3 ,,"say ""hi"""\n', CSV, SPEC)
    assert frame["x"].tolist() == [1.5, 3.0]
    assert frame["z"].iloc[0] == 2.0 and math.isnan(frame["z"].iloc[1])
    assert frame["city"].tolist() == ["Paris, France", 'say "hi"']


def test_blank_lines_are_not_records() -> None:
    assert len(parse_request("1,2,a\n\n3,4,b\n", CSV, SPEC)) == 2


def test_numeric_missing_tokens_are_missing_but_categorical_na_is_a_category() -> None:
    frame = parse_request("NA,null,NA\n", CSV, SPEC)
    assert frame[["x", "z"]].isna().all(axis=None)
    assert frame["city"].tolist() == ["NA"]


def test_every_problem_in_a_request_is_reported_at_once() -> None:
    with pytest.raises(RequestError) as raised:
        parse_request('{"instances": [{"x": "a", "z": "b", "city": {"n": 1}}]}', JSON, SPEC)
    message = raised.value.message
    assert "'x'" in message and "'z'" in message and "'city' has nested values" in message


def test_long_lists_of_bad_values_are_summarised() -> None:
    body = "".join(f"bad{i},1,a\n" for i in range(12))
    with pytest.raises(RequestError, match=r"record 5: 'bad4' and 7 more"):
        parse_request(body, CSV, SPEC)


def test_non_utf8_body_is_a_400() -> None:
    with pytest.raises(RequestError, match="not valid UTF-8") as raised:
        parse_request(b"\xff\xfe1,2,a", CSV, SPEC)
    assert raised.value.status == 400


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (None, JSON),
        ("", JSON),
        ("text/*", CSV),
        ("application/json;q=0, text/csv;q=0.1", CSV),
        ("text/csv;q=0.5, application/json", JSON),
    ],
)
def test_accept_negotiation(accept: str | None, chosen: str) -> None:
    assert choose_response_type(accept) == chosen


def test_accept_ruling_everything_out_is_406() -> None:
    with pytest.raises(RequestError, match="accept one of") as raised:
        choose_response_type("application/json;q=0, text/csv;q=0")
    assert raised.value.status == 406


@pytest.mark.parametrize("response_type", [JSON, CSV])
def test_encoded_predictions_decode_to_the_same_values(response_type: str) -> None:
    predictions = pd.DataFrame({"prediction": [1, 0, 1], "score": [0.9, 0.1, 0.6666666666666666]})
    rows = decode_response(encode_response(predictions, response_type), response_type)
    assert [int(r[0]) for r in rows] == [1, 0, 1]
    assert [r[1] for r in rows] == [0.9, 0.1, 0.6666666666666666]
