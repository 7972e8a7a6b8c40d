"""Wire formats of the inference endpoint: request bodies in, prediction bodies out.

Requests (``Content-Type``):

* ``text/csv``: one record per line, no header, the values in the model's feature
  order (``spec.features``). An empty field is a missing value; in a numeric column
  ``nan``, ``na``, ``null`` and ``none`` (any case) are missing values too.
* ``application/json``: either ``{"instances": [...]}`` or a bare list ``[...]``.
  Each instance is an object ``{"feature": value, ...}`` carrying every feature
  (``null`` for a missing value; extra keys such as an id are ignored) or an array
  of values in feature order. Numeric features take JSON numbers or numeric strings
  (not booleans); categorical features take strings or numbers.

Responses (``Accept``, JSON by default):

* ``application/json``: ``{"predictions": [{"prediction": 1, "score": 0.83}, ...]}``
  (``score`` only for classification: the probability of the positive class for a
  binary model, of the predicted class otherwise).
* ``text/csv``: one line per record, ``prediction,score`` (or ``prediction``), no header.

Every problem with a request raises :class:`RequestError` carrying the HTTP status
to answer with and a message that names the problem. Records are numbered from 1 in
messages, in the order they were sent.

The same parsers read captured traffic back (:mod:`mlcore.capture`), so what the
endpoint accepted is exactly what the monitor can read.
"""

from __future__ import annotations

import csv
import io
import json
import math
import reprlib
from collections.abc import Sequence
from operator import itemgetter
from typing import Any

import numpy as np
import pandas as pd

from mlcore.data import DatasetSpec
from mlcore.errors import DataError
from mlcore.model import PREDICTION_COLUMN, SCORE_COLUMN

CSV = "text/csv"
JSON = "application/json"
REQUEST_TYPES = (CSV, JSON)
RESPONSE_TYPES = (JSON, CSV)

# Tokens a client may use for a missing value in a numeric CSV field.
_MISSING_NUMBER_TOKENS = frozenset({"", "nan", "na", "null", "none"})
# How many offending values an error message quotes before it stops listing.
_MAX_EXAMPLES = 5


class RequestError(DataError):
    """A request the endpoint cannot answer; ``status`` is the HTTP status (4xx) to return."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def media_type(header: str | None) -> str:
    """The bare media type of a Content-Type or Accept entry: lower case, parameters dropped."""
    return (header or "").split(";", 1)[0].strip().lower()


def decode_request(
    body: bytes | str, content_type: str | None, spec: DatasetSpec
) -> list[Sequence[Any]]:
    """Split a request body into records (values in feature order), checking format and lengths."""
    kind = media_type(content_type)
    if not kind:
        raise RequestError(
            415, f"the request has no Content-Type; send one of {list(REQUEST_TYPES)}"
        )
    if kind not in REQUEST_TYPES:
        raise RequestError(
            415,
            f"unsupported Content-Type {kind!r}; send one of {list(REQUEST_TYPES)}",
        )
    text = _as_text(body)
    if not text.strip():
        raise RequestError(
            400,
            f"the request body is empty; send at least one record ({kind}) with the features "
            f"{list(spec.features)}",
        )
    if kind == CSV:
        return _decode_csv(text, spec)
    return _decode_json(text, spec)


def rows_to_frame(rows: Sequence[Sequence[Any]], spec: DatasetSpec) -> pd.DataFrame:
    """Build the feature frame from decoded records, checking every value's type.

    ``rows`` hold the values in feature order (as :func:`decode_request` returns them).
    Numeric features become float64 (missing values NaN); a value that is not a
    number or numeric string, or is a boolean, an infinity or too large for a float,
    is an error. Categorical values become strings, as
    :func:`~mlcore.data.coerce_features` makes them, so the model scores this frame
    without converting it again; ``None`` and empty strings become missing; nested
    objects and arrays are an error.
    """
    count = len(rows)
    # One object array per feature, straight from the records: no intermediate frame.
    # fromiter keeps each value as one object, even a list (which the checks then name).
    transposed = zip(*rows, strict=True) if count else (() for _ in spec.features)
    values_of = {
        name: np.fromiter(values, dtype=object, count=count)
        for name, values in zip(spec.features, transposed, strict=True)
    }
    problems: list[str] = []
    columns: dict[str, Any] = {}
    if spec.numeric:
        block = np.stack([values_of[c] for c in spec.numeric], axis=1)
        numbers = _fast_numbers(block)
        if numbers is None:  # something is not a plain number: find and name it, column by column
            numbers = np.column_stack(
                [_numeric_column(values_of[c], c, problems) for c in spec.numeric]
            )
        infinite = np.isinf(numbers)
        for j in np.flatnonzero(infinite.any(axis=0)):
            column = spec.numeric[j]
            problems.append(
                _describe(
                    f"numeric feature {column!r} has infinite or out-of-range values",
                    values_of[column],
                    infinite[:, j],
                )
                + " (the model needs finite numbers within the range of a 64-bit float)"
            )
        columns.update({c: numbers[:, j] for j, c in enumerate(spec.numeric)})
    for column in spec.categorical:
        values = values_of[column]
        nested = _IS_NESTED(values).astype(bool)
        if nested.any():
            problems.append(
                _describe(f"categorical feature {column!r} has nested values", values, nested)
            )
        missing = pd.isna(values) | (values == "")
        columns[column] = np.where(missing | nested, np.nan, _AS_TEXT(values))
    if problems:
        raise RequestError(400, "; ".join(problems))
    return pd.DataFrame(columns, columns=list(spec.features), index=pd.RangeIndex(count))


def parse_request(body: bytes | str, content_type: str | None, spec: DatasetSpec) -> pd.DataFrame:
    """Decode and type-check a request body: the feature frame the model scores."""
    return rows_to_frame(decode_request(body, content_type, spec), spec)


def choose_response_type(accept: str | None) -> str:
    """The response media type for an ``Accept`` header (JSON when absent or ``*/*``).

    Entries are tried in order of their ``q`` weight; ``q=0`` rules a type out.
    """
    if accept is None or not accept.strip():
        return JSON
    candidates: list[tuple[float, int, str]] = []
    for position, entry in enumerate(accept.split(",")):
        kind = media_type(entry)
        weight = _q_weight(entry)
        if kind and weight > 0:
            candidates.append((-weight, position, kind))
    for _, _, kind in sorted(candidates):
        if kind in RESPONSE_TYPES:
            return kind
        if kind in ("*/*", "application/*"):
            return JSON
        if kind == "text/*":
            return CSV
    raise RequestError(
        406,
        f"cannot answer in any type the Accept header lists ({accept!r}); accept one of {list(RESPONSE_TYPES)}",
    )


def prediction_records(predictions: pd.DataFrame) -> list[dict[str, Any]]:
    """``[{"prediction": ..., "score": ...}, ...]`` with plain Python values, one per row."""
    # tolist() gives plain Python numbers and strings, which json and csv both accept.
    return _records({c: predictions[c].tolist() for c in predictions.columns})


def encode_response(predictions: pd.DataFrame, response_type: str) -> str:
    """Serialise a prediction frame (``prediction`` and maybe ``score``) as JSON or CSV."""
    return encode_response_columns(
        {c: predictions[c].tolist() for c in predictions.columns}, response_type
    )


def encode_response_columns(columns: dict[str, list[Any]], response_type: str) -> str:
    """:func:`encode_response` for predictions given as plain lists per column."""
    if response_type == JSON:
        return json.dumps({"predictions": _records(columns)})
    if response_type == CSV:
        names = [c for c in (PREDICTION_COLUMN, SCORE_COLUMN) if c in columns]
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(
            zip(*(columns[c] for c in names), strict=True)
        )
        return buffer.getvalue()
    raise ValueError(f"unsupported response type {response_type!r}; use one of {RESPONSE_TYPES}")


def _records(columns: dict[str, list[Any]]) -> list[dict[str, Any]]:
    names = [c for c in (PREDICTION_COLUMN, SCORE_COLUMN) if c in columns]
    lists = [columns[c] for c in names]
    return [dict(zip(names, values, strict=True)) for values in zip(*lists, strict=True)]


def decode_response(body: str, content_type: str | None) -> list[list[Any]]:
    """Read a response body back into ``[prediction, score?]`` rows (for captured traffic)."""
    kind = media_type(content_type)
    if kind == JSON:
        document = json.loads(body)
        records = document.get("predictions") if isinstance(document, dict) else None
        if not isinstance(records, list):
            raise DataError('a JSON prediction body must be {"predictions": [...]}')
        return [
            [r.get(PREDICTION_COLUMN)] + ([r[SCORE_COLUMN]] if SCORE_COLUMN in r else [])
            for r in records
        ]
    if kind == CSV:
        return [
            [row[0], *(float(v) for v in row[1:])] for row in csv.reader(io.StringIO(body)) if row
        ]
    raise DataError(
        f"unsupported response Content-Type {kind!r}; expected one of {list(RESPONSE_TYPES)}"
    )


def _as_text(body: bytes | str) -> str:
    if isinstance(body, str):
        return body
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(400, f"the request body is not valid UTF-8 text: {exc}") from exc


def _decode_csv(text: str, spec: DatasetSpec) -> list[Sequence[Any]]:
    try:
        records: list[Sequence[Any]] = [row for row in csv.reader(io.StringIO(text)) if row]
    except csv.Error as exc:
        raise RequestError(400, f"the CSV body could not be parsed: {exc}") from exc
    n_features = len(spec.features)
    wrong = [(i, len(row)) for i, row in enumerate(records, start=1) if len(row) != n_features]
    if wrong:
        shown = ", ".join(f"record {i} has {n}" for i, n in wrong[:_MAX_EXAMPLES])
        more = f" (and {len(wrong) - _MAX_EXAMPLES} more)" if len(wrong) > _MAX_EXAMPLES else ""
        raise RequestError(
            400,
            f"wrong number of CSV columns: {shown}{more}; the model expects {n_features} "
            f"values per line, no header, in this order: {','.join(spec.features)}",
        )
    return records


def _decode_json(text: str, spec: DatasetSpec) -> list[Sequence[Any]]:
    try:
        document = json.loads(text)
    except RecursionError as exc:
        raise RequestError(
            400,
            "the JSON body is nested too deeply to read; send records as flat objects "
            '{"feature": value} or arrays of values',
        ) from exc
    except json.JSONDecodeError as exc:
        raise RequestError(400, f"the body is not valid JSON: {exc}") from exc
    except ValueError as exc:  # Python refuses integers of more than 4300 digits
        raise RequestError(
            400,
            "the JSON body holds an integer too long to read (over 4300 digits); "
            "send numbers a 64-bit float can hold",
        ) from exc
    if isinstance(document, dict):
        if "instances" not in document:
            raise RequestError(
                400,
                'a JSON object body must hold the records under "instances": '
                f'{{"instances": [{{...}}]}}; got keys {sorted(document)[:10]}',
            )
        instances = document["instances"]
    else:
        instances = document
    if not isinstance(instances, list):
        raise RequestError(
            400,
            f'"instances" must be a list of records, got {type(instances).__name__}',
        )
    if not instances:
        raise RequestError(400, "the request holds no records; send at least one instance")
    # itemgetter picks every feature of a record in one call, in C.
    getter = itemgetter(*spec.features)
    return [
        _json_instance(instance, i, spec, getter) for i, instance in enumerate(instances, start=1)
    ]


def _json_instance(
    instance: Any, number: int, spec: DatasetSpec, getter: itemgetter[Any]
) -> Sequence[Any]:
    features = spec.features
    if isinstance(instance, dict):
        try:
            values = getter(instance)
        except KeyError:
            missing = [f for f in features if f not in instance]
            raise RequestError(
                400,
                f"record {number} lacks features {missing}; send every feature of "
                f"{list(features)} (null for a missing value)",
            ) from None
        return values if len(features) > 1 else (values,)
    if isinstance(instance, list):
        if len(instance) != len(features):
            raise RequestError(
                400,
                f"record {number} has {len(instance)} values; the model expects "
                f"{len(features)} in this order: {list(features)}",
            )
        return instance
    raise RequestError(
        400,
        f"record {number} is a {type(instance).__name__}; each record must be an object "
        "{feature: value} or an array of values in feature order",
    )


# Element-wise type tests and conversions over object arrays, looped in C by numpy.
_IS_BOOL = np.frompyfunc(lambda v: isinstance(v, bool | np.bool_), 1, 1)
_IS_NESTED = np.frompyfunc(lambda v: isinstance(v, dict | list), 1, 1)
# Values that astype(float64) converts exactly as float() does (None to NaN).
_PLAIN_NUMBER_TYPES = frozenset({int, float, type(None)})
_AS_TEXT = np.frompyfunc(lambda v: v if isinstance(v, str) else _text(v), 1, 1)


def _text(value: Any) -> str:
    try:
        return str(value)
    except ValueError:  # an int beyond Python's digit limit for str(); still a category
        return f"<integer of {value.bit_length()} bits>"


def _fast_numbers(block: np.ndarray) -> np.ndarray | None:
    """Convert an object block of numbers, numeric strings and missing values in one pass.

    Returns None when any value needs a closer look (a non-numeric string, a
    boolean, a nested value), which the per-column path then names.
    """
    kinds = set(map(type, block.flat))  # one pass in C; JSON gives a handful of types
    if bool in kinds or np.bool_ in kinds:  # bool is an int: float(True) would slip through
        return None
    try:
        if kinds <= _PLAIN_NUMBER_TYPES:  # JSON numbers and nulls: None becomes NaN
            return block.astype(np.float64)
        missing = pd.isna(block) | (block == "")
        return np.where(missing, np.nan, block).astype(np.float64)
    except (ValueError, TypeError, OverflowError):
        return None


def _number(value: Any) -> float | None:
    """``float(value)`` as the fast path computes it; NaN when missing, None when not a number.

    An integer too large for a float becomes infinity, which the caller reports as out of range.
    """
    if value is None or isinstance(value, bool | np.bool_ | dict | list):
        return None if value is not None else math.nan
    if isinstance(value, str) and value.strip().lower() in _MISSING_NUMBER_TOKENS:
        return math.nan
    try:
        return float(value)
    except OverflowError:
        return math.inf
    except (ValueError, TypeError):
        return None


_NUMBER = np.frompyfunc(_number, 1, 1)


def _numeric_column(values: np.ndarray, column: str, problems: list[str]) -> np.ndarray:
    converted = _NUMBER(values)
    not_numeric = np.array([v is None for v in converted], dtype=bool)
    if not_numeric.any():
        problems.append(
            _describe(f"numeric feature {column!r} has non-numeric values", values, not_numeric)
            + " (send a number, or an empty field / null for a missing value)"
        )
    return np.where(not_numeric, np.nan, converted).astype(np.float64)


def _describe(what: str, values: np.ndarray, mask: np.ndarray) -> str:
    positions = np.flatnonzero(mask)
    examples = ", ".join(f"record {p + 1}: {_short(values[p])}" for p in positions[:_MAX_EXAMPLES])
    more = f" and {len(positions) - _MAX_EXAMPLES} more" if len(positions) > _MAX_EXAMPLES else ""
    return f"{what} ({examples}{more})"


# Bounded in depth and length: a client's deeply nested value must not exhaust the stack.
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlong = 3, 60, 60, 60


def _short(value: Any) -> str:
    text = _REPR.repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _q_weight(entry: str) -> float:
    for parameter in entry.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "q":
            try:
                weight = float(value)
            except ValueError:
                return 0.0
            return weight if math.isfinite(weight) else 0.0
    return 1.0
