"""Payload parsing and content negotiation, without a server: the rules the endpoint applies."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlcore.data import DatasetSpec, coerce_features
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


# Finding 1 of issue 12: each of these bodies used to escape the parser as a 500.
HOSTILE_BODIES = {
    "deeply nested arrays (RecursionError in json.loads)": "[" * 100_000 + "]" * 100_000,
    "an integer of 4301 digits (ValueError from json.loads)": "[[" + "1" * 4301 + ', 1, "a"]]',
    "an integer of 400 digits (OverflowError converting to float)": "[[" + "1" * 400 + ', 1, "a"]]',
}


@pytest.mark.parametrize("body", HOSTILE_BODIES.values(), ids=HOSTILE_BODIES.keys())
def test_hostile_json_bodies_are_400s_with_a_message(body: str) -> None:
    with pytest.raises(RequestError) as raised:
        parse_request(body, JSON, SPEC)
    assert raised.value.status == 400
    assert raised.value.message


def test_an_integer_too_large_for_a_float_is_named_as_out_of_range() -> None:
    with pytest.raises(RequestError, match=r"'x' has infinite or out-of-range values \(record 2"):
        parse_request('[[1, 2, "a"], [' + "9" * 400 + ', 2, "b"]]', JSON, SPEC)


def test_a_deeply_nested_value_in_a_record_is_quoted_briefly() -> None:
    nested = "[" * 500 + "]" * 500
    with pytest.raises(RequestError, match="'city' has nested values") as raised:
        parse_request(f"[[1, 2, {nested}]]", JSON, SPEC)
    assert len(raised.value.message) < 300


def test_categorical_values_come_out_as_the_model_scores_them() -> None:
    """The parser's frame is already coerce_features' canonical form: no second conversion."""
    frame = parse_request('[[1, 2, 7], [3, null, "Paris"], [5, 6, null], [7, 8, 1.5]]', JSON, SPEC)
    assert frame["city"].tolist()[:2] == ["7", "Paris"]
    assert frame.equals(coerce_features(frame, SPEC))


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**600), max_value=10**600)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.sampled_from(["x", "z", "city", "instances", "other"]), children, max_size=5
        )
    ),
    max_leaves=30,
)


def _as_json(value: object) -> str:
    try:
        return json.dumps(value)
    except ValueError:  # an integer beyond str()'s digit limit: send its digits as they are
        return "1" * 5000


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.one_of(
        json_values.map(_as_json),
        st.builds(
            lambda records: json.dumps({"instances": records}), st.lists(json_values, max_size=4)
        ),
        st.text(max_size=200),
        st.binary(max_size=200),
    ),
    content_type=st.sampled_from([CSV, JSON, "text/csv; charset=utf-8", "application/xml", None]),
)
def test_any_body_is_parsed_or_refused_with_a_4xx_message(
    body: str | bytes, content_type: str | None
) -> None:
    try:
        frame = parse_request(body, content_type, SPEC)
    except RequestError as exc:
        assert 400 <= exc.status < 500 and exc.message
        return
    assert list(frame.columns) == list(SPEC.features)
    assert frame[list(SPEC.numeric)].dtypes.eq("float64").all()
    assert np.isfinite(
        frame[list(SPEC.numeric)].to_numpy()[frame[list(SPEC.numeric)].notna().to_numpy()]
    ).all()
