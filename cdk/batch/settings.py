"""``stages.<name>.batch`` in cdk.json: a scheduled batch-scoring path for one environment.

Each run scores the files that arrived under ``input_prefix`` since the previous run with
SageMaker Batch Transform, on the model package the environment has released (the same
pointer its endpoint serves), and writes the scored rows under ``output_prefix``. Both
prefixes are keys in the environment's artifact bucket (encrypted with its key). An invalid
value raises one ``ValueError`` that names the key, what was received and the fix.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mlcore.serve.defaults import DEFAULT_MAX_BODY_BYTES
from mlcore.settings import ScheduleExpression

_PREFIX = r"^[a-z0-9][a-z0-9/_-]*[a-z0-9]$"
_INSTANCE = r"^ml\.[a-z0-9]+\.[a-z0-9]+$"
#: Key prefixes of the artifact bucket that other parts of the kit write or read: a batch
#: prefix inside one would let the transform job read models or overwrite monitor reports.
RESERVED_PREFIXES = (
    "model-build",
    "promoted",
    "data-capture",
    "monitoring",
    "ground-truth",
    "training-data",
)
#: The serving container answers 413 to a larger body, which fails the transform job.
MAX_PAYLOAD_MB = DEFAULT_MAX_BODY_BYTES // (1024 * 1024)


class BatchConfig(BaseModel):
    """A scheduled Batch Transform over new files under ``input_prefix``.

    :param schedule: an EventBridge Scheduler expression (``rate(1 day)``,
        ``cron(0 2 * * ? *)``); each run scores the files that arrived since the last one.
    :param input_prefix: where data drops land in the artifact bucket: headerless CSV, the id
        columns (``dataset.id_columns`` in mlops.yaml) first, then the model's features in
        the model's order (the serving contract's ``text/csv``).
    :param output_prefix: where each run writes ``<run>/scored/<file>.out`` (every input row
        with the prediction and score appended) and ``<run>/manifest/manifest.json``.
    :param instance_type: the transform instances. Default: ``ml.m5.large``.
    :param instance_count: how many. Default: 1.
    :param max_payload_mb: the largest request one instance is sent (rows are batched up to
        it). Default and maximum: 6, the largest body the serving container accepts.
    :param max_concurrent_transforms: parallel requests per instance. Default: 1 (the serving
        container scores one request at a time per worker).
    :param invocation_timeout_seconds: how long SageMaker waits for one request. Default: 60
        (the serving container gives up on a request by itself after
        ``serving.scoring_timeout_seconds`` in mlops.yaml, 50 s by default).
    :param lookback_hours: how far before the previous run a run looks for files it has not
        scored (S3 stamps an object with the time its upload began, so a long upload may
        complete after a run with a time before it). Every file is scored once, by key and
        ETag. Default: 48.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    schedule: ScheduleExpression
    input_prefix: str = Field(pattern=_PREFIX, max_length=200)
    output_prefix: str = Field(pattern=_PREFIX, max_length=200)
    instance_type: str = Field("ml.m5.large", pattern=_INSTANCE)
    instance_count: int = Field(1, ge=1, le=100)
    max_payload_mb: int = Field(MAX_PAYLOAD_MB, ge=1, le=MAX_PAYLOAD_MB)
    max_concurrent_transforms: int = Field(1, ge=1, le=64)
    invocation_timeout_seconds: int = Field(60, ge=1, le=3600)
    lookback_hours: int = Field(48, ge=0, le=24 * 30)

    @model_validator(mode="after")
    def _prefixes_are_apart(self) -> BatchConfig:
        problems = []
        for name in ("input_prefix", "output_prefix"):
            value: str = getattr(self, name)
            clash = [r for r in RESERVED_PREFIXES if _overlaps(value, r)]
            if clash:
                problems.append(
                    f"{name} {value!r} overlaps {clash[0]!r}, which the kit uses for models, "
                    "captured data or reports; choose another prefix, e.g. batch/input"
                )
        if _overlaps(self.input_prefix, self.output_prefix):
            problems.append(
                f"input_prefix {self.input_prefix!r} and output_prefix {self.output_prefix!r} "
                "overlap: a run would score the previous run's output; use separate prefixes, "
                "e.g. batch/input and batch/output"
            )
        if self.max_payload_mb * self.max_concurrent_transforms > 100:
            problems.append(
                f"max_payload_mb ({self.max_payload_mb}) x max_concurrent_transforms "
                f"({self.max_concurrent_transforms}) exceeds the 100 MB SageMaker allows; "
                "lower one of them"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _overlaps(a: str, b: str) -> bool:
    """One prefix is the other or holds it (as key folders)."""
    a, b = a.rstrip("/") + "/", b.rstrip("/") + "/"
    return a.startswith(b) or b.startswith(a)
