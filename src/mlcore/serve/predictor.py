"""The predictor every host shares: request body in, prediction body out.

The SageMaker-style HTTP app and the Azure ML scoring script both call
:meth:`Predictor.answer`, so a payload means the same thing on every cloud.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mlcore.model import ModelBundle
from mlcore.serve.payload import choose_response_type, encode_response, parse_request


@dataclass(frozen=True)
class Answer:
    """A prediction response: the encoded body, its media type and how many records it holds."""

    body: str
    media_type: str
    records: int


@dataclass(frozen=True)
class Predictor:
    """Scores request payloads with a loaded :class:`~mlcore.model.ModelBundle`."""

    bundle: ModelBundle

    @classmethod
    def load(cls, model: ModelBundle | str | Path) -> Predictor:
        """Wrap a bundle, or load one from a model directory."""
        return cls(model if isinstance(model, ModelBundle) else ModelBundle.load(model))

    def score(
        self, body: bytes | str, content_type: str | None
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Parse and check the payload, then predict; return (features, predictions).

        ``predictions`` has ``prediction`` (and ``score`` for classification), row for
        row with ``features``. Raises :class:`~mlcore.serve.payload.RequestError` (with
        its HTTP status) for a payload the model cannot score.
        """
        features = parse_request(body, content_type, self.bundle.spec)
        return features, self.bundle.predict(features)

    def predict(self, body: bytes | str, content_type: str | None) -> pd.DataFrame:
        """The predictions for a payload (see :meth:`score`)."""
        return self.score(body, content_type)[1]

    def answer(self, body: bytes | str, content_type: str | None, accept: str | None) -> Answer:
        """Predict and encode the result in the type ``accept`` asks for (JSON by default)."""
        # Negotiate first so a client that cannot read any of our types learns it before scoring.
        response_type = choose_response_type(accept)
        predictions = self.predict(body, content_type)
        return Answer(encode_response(predictions, response_type), response_type, len(predictions))
