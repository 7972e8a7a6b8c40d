"""Smoke test a freshly deployed endpoint: invoke it with the model's sample request.

The payload is the ``sample_request.json`` that ``mlcore train`` wrote from held-out rows
and ``mlcore evaluate`` copied beside ``evaluation.json`` (contract #1): the release reads it
from the folder of the package's evaluation report (``ModelMetrics.ModelQuality.Statistics``), in the
environment's own account, so every dataset is tested with records of its own schema.

The check is what a caller relies on: the call succeeds, the body is the inference
contract's JSON (``{"predictions": [{"prediction": ..., "score": ...}, ...]}``), there is
one prediction per record sent, and every score is a probability.

The release state machine calls :func:`handler`; people can run
``python -m pipelines.deploy.smoke --endpoint-name <name> --payload sample_request.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .promote import evaluation_report_url
from .targets import (
    SAMPLE_REQUEST_FILE,
    Environment,
    SessionFactory,
    TargetRef,
    assume_role_session,
)

logger = logging.getLogger(__name__)


class SmokeTestFailed(Exception):
    """The endpoint answered, but not as the inference contract promises (or not at all)."""


@dataclass(frozen=True)
class SmokeResult:
    endpoint_name: str
    records: int
    predictions: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_payload(text: str | bytes, *, source: str) -> dict[str, Any]:
    """A sample request: ``{"instances": [record, ...]}`` with at least one record."""
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"sample request {source} is not readable JSON: {exc}") from exc
    if (
        not isinstance(payload, dict)
        or not isinstance(payload.get("instances"), list)
        or not payload["instances"]
    ):
        raise ValueError(
            f'sample request {source} must be {{"instances": [record, ...]}} with records'
        )
    return payload


def load_payload(path: str | Path) -> dict[str, Any]:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ValueError(f"sample request {path} is not readable: {exc}") from exc
    return parse_payload(text, source=str(path))


def package_sample_request(sagemaker: Any, s3: Any, model_package_arn: str) -> dict[str, Any]:
    """The sample request stored beside the package's evaluation report."""
    package = sagemaker.describe_model_package(ModelPackageName=model_package_arn)
    report = evaluation_report_url(package)
    if not report:
        raise ValueError(
            f"{model_package_arn} records no evaluation report, so it has no sample request; "
            "retrain it with the current model-build pipeline"
        )
    url = f"{report.rsplit('/', 1)[0]}/{SAMPLE_REQUEST_FILE}"
    parsed = urlparse(url)
    try:
        body = s3.get_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))["Body"].read()
    except s3.exceptions.ClientError as exc:
        raise ValueError(
            f"no sample request at {url} for {model_package_arn} (mlcore evaluate writes it "
            f"beside evaluation.json): {exc}"
        ) from exc
    return parse_payload(body, source=url)


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


def handler(
    event: dict[str, Any], context: Any = None, *, sessions: SessionFactory = assume_role_session
) -> dict[str, Any]:
    """Lambda entry point: ``{"target": {...}, "model_package_arn": ...}``, through the
    target's deploy role."""
    arn = event.get("model_package_arn")
    if not isinstance(arn, str) or not arn.startswith("arn:"):
        raise ValueError(f"smoke test needs the deployed model_package_arn; got {arn!r}")
    env = Environment.open(TargetRef.from_dict(event.get("target")), sessions)
    if not env.descriptor.online_endpoint:
        return check_batch_model(env, arn).to_dict()
    payload = package_sample_request(env.client("sagemaker"), env.client("s3"), arn)
    return smoke_test(
        env.client("sagemaker-runtime"), endpoint_name=env.descriptor.endpoint_name, payload=payload
    ).to_dict()


def check_batch_model(env: Environment, model_package_arn: str) -> SmokeResult:
    """An environment without an endpoint: its batch model must be built from the package.

    Nothing is scored here (a transform job takes minutes); the next batch run scores with
    that model, and its starter checks the model against the pointer again.
    """
    from .release import batch_serving

    prefix = env.descriptor.batch_model_prefix
    served = batch_serving(env.client("sagemaker"), prefix)
    if served.model_package_arn != model_package_arn:
        raise SmokeTestFailed(
            f"{env.ref.environment} has no endpoint; its batch model ({prefix}<version>) is "
            f"built from {served.model_package_arn}, not from {model_package_arn}"
        )
    return SmokeResult(endpoint_name=f"{prefix}*", records=0, predictions=0)


def main(argv: Sequence[str] | None = None) -> int:
    import boto3

    parser = argparse.ArgumentParser(prog="python -m pipelines.deploy.smoke", description=__doc__)
    parser.add_argument("--endpoint-name", required=True)
    parser.add_argument(
        "--payload", required=True, help="the model's sample_request.json (from its model folder)"
    )
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
