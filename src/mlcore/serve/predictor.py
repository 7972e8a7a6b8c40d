"""The predictor every host shares: request body in, prediction body out.

The SageMaker-style HTTP app and the Azure ML scoring script both call
:meth:`Predictor.answer`, :meth:`Predictor.answer_many` or :meth:`Predictor.score`,
so a payload means the same thing on every cloud.

:meth:`Predictor.answer_many` scores several requests in one model call (the HTTP
server's scoring thread hands it whatever requests are waiting): each request is
decoded, checked and answered on its own, exactly as :meth:`Predictor.answer` would
answer it alone, and one request's error never fails another. A request whose caller
stopped waiting while it was decoded (``still_wanted``) is left out of the model call.

:meth:`Predictor.load` is the one way serving loads a model folder: it checks every
file that shapes predictions against the model's hash before using any of them (see
:meth:`~mlcore.model.ModelBundle.load`),
then scores the folder's ``sample_request.json`` once, so a model that loads but
cannot predict never reports healthy.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pandas as pd

from mlcore.errors import ModelError
from mlcore.model import SAMPLE_REQUEST_FILE, ModelBundle
from mlcore.serve.defaults import MODEL_SHA256_ENV
from mlcore.serve.payload import (
    JSON,
    RequestError,
    choose_response_type,
    decode_request,
    encode_response,
    encode_response_columns,
    parse_request,
    rows_to_frame,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Answer:
    """A prediction response: the encoded body, its media type and how many records it holds."""

    body: str
    media_type: str
    records: int


class Abandoned(Exception):
    """The caller stopped waiting for this request (its deadline passed, or it disconnected),
    so it was not scored."""


@dataclass(frozen=True)
class Payload:
    """One request to score: its body, ``Content-Type`` and ``Accept`` header."""

    body: bytes | str
    content_type: str | None
    accept: str | None = None


def expected_sha256_from_environment() -> str | None:
    """``$MLCORE_MODEL_SHA256``, or None when unset or empty."""
    return os.environ.get(MODEL_SHA256_ENV, "").strip() or None


@dataclass(frozen=True)
class Predictor:
    """Scores request payloads with a loaded :class:`~mlcore.model.ModelBundle`."""

    bundle: ModelBundle

    @classmethod
    def load(
        cls, model: ModelBundle | str | Path, *, expected_sha256: str | None = None
    ) -> Predictor:
        """Wrap a bundle, or load, verify and warm up a model directory.

        ``expected_sha256`` defaults to ``$MLCORE_MODEL_SHA256``. A bundle already in
        memory is taken as it is (its caller loaded it). Raises ModelError.
        """
        if isinstance(model, ModelBundle):
            return cls(model)
        expected = expected_sha256 or expected_sha256_from_environment()
        if expected is None:
            logger.warning(
                "%s is not set: the model's files are checked against its own manifest only, "
                "which catches corruption and edits but not a substituted model folder",
                MODEL_SHA256_ENV,
            )
        predictor = cls(ModelBundle.load(model, expected_sha256=expected))
        predictor.warm_up(Path(model) / SAMPLE_REQUEST_FILE)
        return predictor

    def warm_up(self, sample_request: Path) -> None:
        """Score the stored sample request once; raise ModelError if the model cannot."""
        if not sample_request.is_file():
            raise ModelError(
                f"{sample_request.parent} has no {sample_request.name}, the request every health "
                "check sends; retrain with this mlcore to write it"
            )
        try:
            answer = self.answer(sample_request.read_bytes(), JSON, JSON)
        except (RequestError, OSError) as exc:
            raise ModelError(f"{sample_request} cannot be scored: {exc}") from exc
        except Exception as exc:  # a model that unpickles but fails can raise anything
            raise ModelError(
                f"the model failed its warm-up prediction on {sample_request}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        logger.info("warm-up prediction on %s: %d record(s) scored", sample_request, answer.records)

    def score(
        self, body: bytes | str, content_type: str | None
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Parse and check the payload, then predict; return (features, predictions).

        ``predictions`` has ``prediction`` (and ``score`` for classification), row for
        row with ``features``. Raises :class:`~mlcore.serve.payload.RequestError` (with
        its HTTP status) for a payload the model cannot score.
        """
        features = parse_request(body, content_type, self.bundle.spec)
        # parse_request already built the canonical feature frame: no second conversion.
        return features, self.predict_frame(features)

    def predict_frame(self, features: pd.DataFrame) -> pd.DataFrame:
        """The one model call: predictions for a feature frame :func:`parse_request` built."""
        return self.bundle.predict_features(features)

    def predict(self, body: bytes | str, content_type: str | None) -> pd.DataFrame:
        """The predictions for a payload (see :meth:`score`)."""
        return self.score(body, content_type)[1]

    def answer(self, body: bytes | str, content_type: str | None, accept: str | None) -> Answer:
        """Predict and encode the result in the type ``accept`` asks for (JSON by default)."""
        # Negotiate first so a client that cannot read any of our types learns it before scoring.
        response_type = choose_response_type(accept)
        predictions = self.predict(body, content_type)
        return Answer(encode_response(predictions, response_type), response_type, len(predictions))

    def answer_many(
        self,
        payloads: Sequence[Payload],
        *,
        still_wanted: Callable[[int], bool] | None = None,
    ) -> list[Answer | Exception]:
        """Answer several requests with one model call; one result per payload, in order.

        A result is the :class:`Answer` :meth:`answer` would give that payload alone, or
        the exception it would raise (a :class:`RequestError` for a payload the model
        cannot score). The predictions are those of the payloads scored one by one: a
        fitted pipeline scores each row on its own. ``still_wanted(position)`` is asked
        once the payloads are decoded, before the model call: a payload no longer wanted
        gets :class:`Abandoned` and is not scored.
        """
        spec = self.bundle.spec
        results: list[Answer | Exception | None] = [None] * len(payloads)
        decoded: list[tuple[int, str, list[Sequence[Any]]]] = []  # (position, response type, rows)
        for position, payload in enumerate(payloads):
            try:
                response_type = choose_response_type(payload.accept)
                rows = decode_request(payload.body, payload.content_type, spec)
            except RequestError as exc:
                results[position] = exc
                continue
            decoded.append((position, response_type, rows))
        if still_wanted is not None:
            wanted = []
            for item in decoded:
                if still_wanted(item[0]):
                    wanted.append(item)
                else:
                    results[item[0]] = Abandoned(f"payload {item[0]} of the batch")
            decoded = wanted
        if decoded:
            try:
                features = rows_to_frame([row for _, _, rows in decoded for row in rows], spec)
            except RequestError:
                # Some payload has a bad value: check each alone, so its error names its records.
                decoded = self._keep_valid(decoded, results)
                features = rows_to_frame([row for _, _, rows in decoded for row in rows], spec)
            self._predict_and_encode(decoded, features, results)
        unanswered = [i for i, result in enumerate(results) if result is None]
        if unanswered:  # a fault here, not the client's: the scorer answers 500
            raise RuntimeError(f"no result for payloads {unanswered} of the batch")
        return cast(list[Answer | Exception], results)

    def _keep_valid(
        self,
        decoded: list[tuple[int, str, list[Sequence[Any]]]],
        results: list[Answer | Exception | None],
    ) -> list[tuple[int, str, list[Sequence[Any]]]]:
        valid = []
        for item in decoded:
            try:
                rows_to_frame(item[2], self.bundle.spec)
            except RequestError as exc:
                results[item[0]] = exc
                continue
            valid.append(item)
        return valid

    def _predict_and_encode(
        self,
        decoded: list[tuple[int, str, list[Sequence[Any]]]],
        features: pd.DataFrame,
        results: list[Answer | Exception | None],
    ) -> None:
        if not decoded:
            return
        try:
            predictions = self.predict_frame(features)
        except Exception as exc:
            if len(decoded) == 1:
                results[decoded[0][0]] = exc
                return
            # One payload the model chokes on must not fail the others: score each alone.
            logger.warning("a batch of %d requests failed; scoring them one by one", len(decoded))
            start = 0
            for item in decoded:
                end = start + len(item[2])
                single = features.iloc[start:end].reset_index(drop=True)
                self._predict_and_encode([item], single, results)
                start = end
            return
        # Plain Python lists once for the whole batch; each answer encodes its slice.
        columns = {name: predictions[name].tolist() for name in predictions.columns}
        start = 0
        for position, response_type, rows in decoded:
            end = start + len(rows)
            body = encode_response_columns(
                {name: values[start:end] for name, values in columns.items()}, response_type
            )
            results[position] = Answer(body, response_type, end - start)
            start = end
