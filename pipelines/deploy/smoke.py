"""Smoke test a freshly deployed endpoint: invoke it with a sample payload and check the answer.

The check is what a caller relies on: the call succeeds, the body is the inference
contract's JSON (``{"predictions": [{"prediction": ..., "score": ...}, ...]}``), there is
one prediction per record sent, and every score is a probability. The sample payload is
``smoke_payload.json`` beside this module (records of the churn example; replace it with
records of your own data, in the same ``{"instances": [...]}`` shape).

The release state machine calls :func:`handler`; people can run
``python -m pipelines.deploy.smoke --endpoint-name churn-staging``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_PAYLOAD = Path(__file__).with_name("smoke_payload.json")


class SmokeTestFailed(Exception):
    """The endpoint answered, but not as the inference contract promises (or not at all)."""


@dataclass(frozen=True)
class SmokeResult:
    endpoint_name: str
    records: int
    predictions: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_payload(path: str | Path = DEFAULT_PAYLOAD) -> dict[str, Any]:
    try:
        payload = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"smoke payload {path} is not readable JSON: {exc}") from exc
    if (
        not isinstance(payload, dict)
        or not isinstance(payload.get("instances"), list)
        or not payload["instances"]
    ):
        raise ValueError(
            f'smoke payload {path} must be {{"instances": [record, ...]}} with records'
        )
    return payload


def smoke_test(runtime: Any, *, endpoint_name: str, payload: dict[str, Any]) -> SmokeResult:
    """Invoke ``endpoint_name`` with ``payload``; raise :class:`SmokeTestFailed` on a bad answer."""
    records = len(payload["instances"])
    try:
        response = runtime.invoke_endpoint(
            EndpointName=endpoint_name,
            ContentType="application/json",
            Accept="application/json",
            Body=json.dumps(payload).encode(),
        )
    except runtime.exceptions.ClientError as exc:
        raise SmokeTestFailed(f"invoking {endpoint_name} failed: {exc}") from exc
    body = response["Body"].read()
    try:
        document = json.loads(body)
    except json.JSONDecodeError as exc:
        raise SmokeTestFailed(f"{endpoint_name} answered with non-JSON: {body[:200]!r}") from exc
    predictions = document.get("predictions") if isinstance(document, dict) else None
    if not isinstance(predictions, list):
        raise SmokeTestFailed(
            f'{endpoint_name} answered without a "predictions" list: {str(document)[:200]}'
        )
    if len(predictions) != records:
        raise SmokeTestFailed(
            f"{endpoint_name} returned {len(predictions)} predictions for {records} records"
        )
    problems = []
    for number, item in enumerate(predictions, start=1):
        if not isinstance(item, dict) or item.get("prediction") is None:
            problems.append(f"prediction {number} has no value: {item!r}")
            continue
        score = item.get("score")
        if score is not None and not (
            isinstance(score, int | float) and math.isfinite(score) and 0 <= score <= 1
        ):
            problems.append(f"prediction {number} has score {score!r}, not a probability")
    if problems:
        raise SmokeTestFailed(f"{endpoint_name}: " + "; ".join(problems[:5]))
    logger.info(
        "%s answered %d predictions for %d records", endpoint_name, len(predictions), records
    )
    return SmokeResult(endpoint_name, records, len(predictions))


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Lambda entry point: ``{"target": {"endpoint_name": ...}}``."""
    import boto3

    endpoint_name = event.get("target", {}).get("endpoint_name")
    if not endpoint_name:
        raise ValueError(f"smoke test needs target.endpoint_name; got {event}")
    payload = load_payload(os.environ.get("SMOKE_PAYLOAD_FILE", DEFAULT_PAYLOAD))
    return smoke_test(
        boto3.client("sagemaker-runtime"), endpoint_name=endpoint_name, payload=payload
    ).to_dict()


def main(argv: Sequence[str] | None = None) -> int:
    import boto3

    parser = argparse.ArgumentParser(prog="python -m pipelines.deploy.smoke", description=__doc__)
    parser.add_argument("--endpoint-name", required=True)
    parser.add_argument("--payload", default=str(DEFAULT_PAYLOAD))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        result = smoke_test(
            boto3.client("sagemaker-runtime"),
            endpoint_name=args.endpoint_name,
            payload=load_payload(args.payload),
        )
    except SmokeTestFailed as exc:
        print(f"smoke test failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result.to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
