"""Output folders that appear complete or not at all.

Every step's outputs (prep's splits, the model folder, evaluate's reports) are
written into a staging folder and published as the target only when everything was
written, so a crash or a full disk never leaves a partial folder that a later step
would take for complete:

* :func:`check_output_dir` runs before any work: the target must be (or become) a
  folder we can write, so a typo'd path fails at once, not after training.
* :func:`staged_output` yields the staging folder, then publishes it. Where it can,
  publishing is one ``rename`` onto the target (atomic). Where it cannot (the target is
  a mount point, as Azure ML mounts a job's outputs, or another filesystem), entries are
  moved in one by one with the ``last`` files (the ones a reader looks for first, such
  as ``metadata.json``) moved last, so an interrupted publish still does not look complete.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from mlcore.errors import ConfigError, OutputError

logger = logging.getLogger(__name__)

# rename(2) cannot put a folder there: a mount point, another filesystem, a non-empty folder.
_CANNOT_RENAME = {errno.EXDEV, errno.EBUSY, errno.ENOTEMPTY, errno.EEXIST, errno.EPERM}


def check_output_dir(path: str | Path, *, what: str = "output folder") -> Path:
    """Raise ConfigError unless ``path`` is a folder, or can be created as one, that we can write.

    Nothing is created: the check walks up to the nearest existing ancestor.
    """
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise ConfigError(f"the {what} {target} is a file; give a folder path")
    probe = target
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"the {what} {target} cannot be created: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"the {what} {target} cannot be written: no write permission on {probe}")
    return target


@contextmanager
def staged_output(target: str | Path, *, last: Sequence[str] = ()) -> Iterator[Path]:
    """Yield an empty staging folder; when the block succeeds, publish it as ``target``.

    An existing ``target`` is replaced. When the block raises, the staging folder is
    removed and ``target`` is left as it was. ``last`` names top-level entries to move
    last when the folder has to be published entry by entry. An OSError (a full
    disk) becomes an OutputError saying that nothing was published.
    """
    target = check_output_dir(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    stage_parent = target.parent if os.access(target.parent, os.W_OK) else target
    stage_parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=stage_parent))
    try:
        try:
            yield stage
            _publish(stage, target, last)
        except OSError as exc:
            raise OutputError(
                f"could not write {target}: {exc}. Nothing was published there; free space or "
                "fix permissions and run the step again."
            ) from exc
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)


def _publish(stage: Path, target: Path, last: Sequence[str]) -> None:
    if stage.parent == target.parent:
        if not target.exists() or _is_empty_dir(target):
            try:
                os.replace(stage, target)  # replaces an empty folder atomically
                return
            except OSError as exc:
                if exc.errno not in _CANNOT_RENAME:
                    raise
        elif not os.path.ismount(target):
            # Swap a previous output out of the way, then in with the new one.
            old = Path(
                tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent)
            )
            try:
                os.replace(target, old / target.name)
            except OSError as exc:
                shutil.rmtree(old, ignore_errors=True)
                if exc.errno not in _CANNOT_RENAME:
                    raise
            else:
                try:
                    os.replace(stage, target)
                except BaseException:
                    os.replace(old / target.name, target)  # put the previous output back
                    raise
                finally:
                    shutil.rmtree(old, ignore_errors=True)
                return
    _publish_entries(stage, target, last)


def _publish_entries(stage: Path, target: Path, last: Sequence[str]) -> None:
    """Move entries into ``target`` one by one, the ``last`` ones after all others."""
    logger.info("publishing %s entry by entry (it is a mount point or another filesystem)", target)
    target.mkdir(parents=True, exist_ok=True)
    # First make a previous output stop looking complete, then replace it.
    for name in last:
        _remove(target / name)
    others = sorted(p for p in stage.iterdir() if p.name not in last)
    finals = [stage / name for name in last if (stage / name).exists()]
    for entry in others + finals:
        destination = target / entry.name
        _remove(destination)
        shutil.move(str(entry), str(destination))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and next(path.iterdir(), None) is None
