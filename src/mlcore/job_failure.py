"""Why a SageMaker job failed, written where SageMaker reads it.

SageMaker shows a failed job's reason only if the container wrote one:

- a training job's ``FailureReason`` (DescribeTrainingJob, the pipeline's step) comes from
  ``/opt/ml/output/failure``;
- a processing job's ``ExitMessage`` (DescribeProcessingJob) is the first 1 KB of
  ``/opt/ml/output/message``, which must be UTF-8 (otherwise the job fails with a
  ClientError); both fields hold at most 1024 characters.

Every ``mlcore`` command writes its one-line reason there when it fails inside such a job
(argument and settings errors, a refused gate, any unexpected exception) and never on a
laptop or in CI: whether this is a SageMaker job is decided by what SageMaker itself sets
(:func:`mlcore.tracking.sagemaker_job`), not by the existence of ``/opt/ml``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

logger = logging.getLogger(__name__)

#: The root of SageMaker's container contract.
SAGEMAKER_ROOT = Path("/opt/ml")
#: DescribeTrainingJob FailureReason and DescribeProcessingJob ExitMessage: at most 1 KB.
MAX_REASON_BYTES = 1024
_ELLIPSIS = " ..."


def failure_file(
    environ: Mapping[str, str] | None = None, *, root: Path | None = None
) -> Path | None:
    """Where SageMaker reads this job's failure reason; None outside a SageMaker job.

    ``root`` is the container contract's root (default ``/opt/ml``; ``mlcore train
    --sagemaker-root`` emulates it in a folder).
    """
    from mlcore.tracking import sagemaker_job

    env = os.environ if environ is None else environ
    root = SAGEMAKER_ROOT if root is None else Path(root)
    kind = sagemaker_job(env, processing_config=root / "config" / "processingjobconfig.json")
    if kind == "training":
        return Path(env.get("SM_OUTPUT_DIR") or root / "output") / "failure"
    if kind == "processing":
        return root / "output" / "message"
    return None


def fit_reason(reason: str, limit: int = MAX_REASON_BYTES) -> str:
    """``reason`` on one line, cut to ``limit`` UTF-8 bytes (on a character boundary)."""
    text = " ".join(reason.split())
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text
    room = limit - len(_ELLIPSIS.encode("utf-8"))
    return encoded[:room].decode("utf-8", errors="ignore").rstrip() + _ELLIPSIS


def report_job_failure(
    reason: str,
    environ: Mapping[str, str] | None = None,
    *,
    root: Path | None = None,
    keep_existing: bool = False,
) -> Path | None:
    """Write ``reason`` where SageMaker reads it, inside a SageMaker job; else do nothing.

    With ``keep_existing``, a reason already written (by the code that failed, which knows
    more) is left as it is.

    Returns the file written, or None. A file that cannot be written is logged, never
    raised: the job is failing already, and its exit code still says so.
    """
    path = failure_file(environ, root=root)
    if path is None:
        return None
    if keep_existing and path.is_file() and path.stat().st_size > 0:
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # The newline counts: the whole file fits SageMaker's 1 KB.
        path.write_text(fit_reason(reason, MAX_REASON_BYTES - 1) + "\n", encoding="utf-8")
    except OSError as exc:
        logger.warning("could not write the failure reason to %s: %s", path, exc)
        return None
    return path
