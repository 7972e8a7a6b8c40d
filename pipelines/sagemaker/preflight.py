"""The model-build pipeline's first step: is there data to train on, and who is the champion?

A Lambda step (``CheckInputs``) runs :func:`handler` with the execution's input data URL and
the model package group the pipeline registers into. It answers with strings (SageMaker
Lambda step outputs):

- ``has_data`` ``"true"``/``"false"`` and ``data_files``: whether any CSV or Parquet file lies
  under the input prefix, by the same rules as ``mlcore.data.io.load_table`` (recursive;
  ``_SUCCESS``, ``*.crc`` and hidden files are markers, not data). With no data (an empty
  bucket on the first deploy) the pipeline skips training and succeeds, and ``message`` says
  what to upload;
- ``has_champion``, ``champion_package_arn`` and ``champion_model_url``: the newest Approved
  package of the group, which ``mlcore evaluate --champion-dir`` compares the challenger with.

This module runs in Lambda with boto3 only: it cannot import mlcore, so the marker rule is
repeated here and a test checks that both agree.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

logger = logging.getLogger(__name__)

DATA_SUFFIXES = (".csv", ".parquet", ".pq")
NO_CHAMPION = "none"


@dataclass(frozen=True)
class Inputs:
    """What the pipeline learns before it starts any job."""

    input_data_url: str
    data_files: int
    champion_package_arn: str | None = None
    champion_model_url: str | None = None

    @property
    def message(self) -> str:
        if not self.data_files:
            return (
                f"no training data under {self.input_data_url} (only .csv/.parquet files count; "
                "_SUCCESS, .crc and hidden files are markers): training skipped. Upload the data, "
                "then a _SUCCESS object, to start a run"
            )
        champion = self.champion_package_arn or "no approved model yet"
        return f"{self.data_files} data file(s) under {self.input_data_url}; champion: {champion}"

    def outputs(self) -> dict[str, str]:
        """The Lambda step's output parameters (all strings)."""
        return {
            "has_data": "true" if self.data_files else "false",
            "data_files": str(self.data_files),
            "has_champion": "true" if self.champion_package_arn else "false",
            "champion_package_arn": self.champion_package_arn or NO_CHAMPION,
            # Never read when has_champion is false; a valid S3 URI keeps the definition valid.
            "champion_model_url": self.champion_model_url or self.input_data_url,
            "message": self.message,
        }


def handler(event: dict[str, Any], context: Any = None) -> dict[str, str]:
    """Lambda entry point (the pipeline's CheckInputs step)."""
    import boto3

    missing = [k for k in ("input_data_url", "model_package_group_name") if not event.get(k)]
    if missing:
        raise ValueError(f"the CheckInputs step needs {missing} in its inputs; got {sorted(event)}")
    inputs = check_inputs(
        input_data_url=event["input_data_url"],
        model_package_group_name=event["model_package_group_name"],
        s3=boto3.client("s3"),
        sagemaker=boto3.client("sagemaker"),
    )
    logger.info("%s", inputs.message)
    return inputs.outputs()


def check_inputs(
    *, input_data_url: str, model_package_group_name: str, s3: Any, sagemaker: Any
) -> Inputs:
    files = len(data_keys(s3, input_data_url))
    champion = current_champion(sagemaker, model_package_group_name) if files else None
    return Inputs(
        input_data_url=input_data_url,
        data_files=files,
        champion_package_arn=champion[0] if champion else None,
        champion_model_url=champion[1] if champion else None,
    )


def is_marker(relative_key: str) -> bool:
    """``_SUCCESS``, ``_temporary/...``, ``.hidden``, ``*.crc``: not data (as mlcore.data.io)."""
    parts = [p for p in relative_key.split("/") if p]
    return any(p.startswith(("_", ".")) for p in parts) or relative_key.lower().endswith(".crc")


def data_keys(s3: Any, url: str) -> list[str]:
    """Keys of the data files anywhere under the ``s3://bucket/prefix/`` URL."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"InputDataUrl must be an s3://bucket/prefix/ URI, got {url!r}")
    prefix = parsed.path.lstrip("/")
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=parsed.netloc, Prefix=prefix):
        for item in page.get("Contents", []):
            relative = item["Key"][len(prefix) :]
            if relative.lower().endswith(DATA_SUFFIXES) and not is_marker(relative):
                keys.append(item["Key"])
    return keys


def current_champion(sagemaker: Any, group: str) -> tuple[str, str] | None:
    """(package ARN, model data URL) of the newest Approved package in ``group``, if any."""
    summaries = sagemaker.list_model_packages(
        ModelPackageGroupName=group,
        ModelApprovalStatus="Approved",
        SortBy="CreationTime",
        SortOrder="Descending",
        MaxResults=1,
    ).get("ModelPackageSummaryList", [])
    if not summaries:
        return None
    arn = summaries[0]["ModelPackageArn"]
    package = sagemaker.describe_model_package(ModelPackageName=arn)
    urls = [
        c["ModelDataUrl"]
        for c in package.get("InferenceSpecification", {}).get("Containers", [])
        if c.get("ModelDataUrl")
    ]
    if not urls:
        raise ValueError(
            f"the approved package {arn} names no ModelDataUrl, so the challenger cannot be "
            "compared with it; reject it or register the champion with its model data"
        )
    return str(arn), str(urls[0])
