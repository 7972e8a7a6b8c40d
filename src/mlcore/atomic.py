"""Output folders that appear complete or not at all.

Every step's outputs (prep's splits, the model folder, evaluate's reports) are
written into a staging folder and published as the target only when everything was
written, so a crash or a full disk never leaves a partial folder that a later step
would take for complete:

* :func:`check_output_dir` runs before any work: the target must be (or become) a
  folder we can write, and one whose contents may be replaced, so a typo'd path fails
  at once, not after training.
* :func:`staged_output` yields the staging folder, then publishes it. Where it can,
  publishing is one ``rename`` onto the target (atomic). Where it cannot (the target is
  a mount point, as Azure ML mounts a job's outputs, or another filesystem), entries are
  moved in one by one with the ``last`` files (the ones a reader looks for first, such
  as ``metadata.json``) moved last, so an interrupted publish still does not look complete.

Nothing mlcore did not write is ever deleted: every published folder holds the marker
file :data:`OUTPUT_MARKER`, and an existing target is replaced only when it is empty or
holds that marker. Any other non-empty folder (a mistyped path to someone's work) is
refused with a ConfigError before any work, unless the caller passes ``overwrite=True``
(``--overwrite`` on the command line).

Published folders get the modes the process's umask gives a new folder (0755 under the
usual 022), like any folder ``mkdir`` creates, so a serving process running as another
user can read a model that a training job wrote.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from mlcore.errors import ConfigError, OutputError

logger = logging.getLogger(__name__)

# rename(2) cannot put a folder there: a mount point, another filesystem, a non-empty folder.
_CANNOT_RENAME = {errno.EXDEV, errno.EBUSY, errno.ENOTEMPTY, errno.EEXIST, errno.EPERM}
# The file in every folder mlcore publishes: its contents may be replaced by the next run.
OUTPUT_MARKER = ".mlcore-output"
_MARKER_TEXT = (
    "This folder was written by mlcore. mlcore replaces its contents when a step writes here "
    "again;\nwithout this file, mlcore refuses to write into a non-empty folder.\n"
)


def check_output_dir(
    path: str | Path, *, what: str = "output folder", overwrite: bool = False
) -> Path:
    """Raise ConfigError unless ``path`` is a folder, or can be created as one, that we can write
    and whose contents may be replaced.

    A folder may be replaced when it is empty, holds :data:`OUTPUT_MARKER` (mlcore wrote
    it) or ``overwrite`` is true. Nothing is created: the check walks up to the nearest
    existing ancestor.
    """
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise ConfigError(f"the {what} {target} is a file; give a folder path")
    if not overwrite:
        _refuse_foreign_contents(target, what)
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


def _refuse_foreign_contents(target: Path, what: str, *, ignore: str | None = None) -> None:
    """ConfigError when ``target`` is a non-empty folder without mlcore's marker.

    ``ignore`` names our own staging folder when it had to be made inside ``target``.
    """
    try:
        if not target.is_dir() or (target / OUTPUT_MARKER).exists():
            return
        entries = sorted(entry.name for entry in target.iterdir() if entry.name != ignore)
    except OSError as exc:
        raise ConfigError(f"the {what} {target} cannot be read: {exc}") from exc
    if entries:
        shown = ", ".join(entries[:5]) + (
            f" and {len(entries) - 5} more" if len(entries) > 5 else ""
        )
        raise ConfigError(
            f"the {what} {target} already holds files mlcore did not write ({shown}); nothing "
            "was changed. Give a new or empty folder, or pass --overwrite to replace its "
            "contents."
        )


def new_folder(parent: str | Path, *, prefix: str, suffix: str = "") -> Path:
    """Create a uniquely named folder in ``parent`` with the modes the umask gives.

    Unlike ``tempfile.mkdtemp`` (always 0700), the folder can be published as it is:
    it is as readable as any folder ``mkdir`` makes.
    """
    while True:
        path = Path(parent) / f"{prefix}{secrets.token_hex(6)}{suffix}"
        try:
            os.mkdir(path, 0o777)  # the kernel applies the umask
        except FileExistsError:
            continue
        return path


@contextmanager
def staged_output(
    target: str | Path, *, last: Sequence[str] = (), overwrite: bool = False
) -> Iterator[Path]:
    """Yield an empty staging folder; when the block succeeds, publish it as ``target``.

    An existing ``target`` is replaced when it is empty, mlcore wrote it (it holds
    :data:`OUTPUT_MARKER`) or ``overwrite`` is true; any other folder is refused with a
    ConfigError, before the block runs and again before publishing. When the block
    raises, the staging folder is removed and ``target`` is left as it was. ``last``
    names top-level entries to move last when the folder has to be published entry by
    entry. An OSError (a full disk) becomes an OutputError saying that nothing was
    published.
    """
    target = check_output_dir(target, overwrite=overwrite)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        stage_parent = target.parent if os.access(target.parent, os.W_OK) else target
        stage_parent.mkdir(parents=True, exist_ok=True)
        stage = new_folder(stage_parent, prefix=f".{target.name}.", suffix=".partial")
    except OSError as exc:
        raise OutputError(f"could not create {target}: {exc}") from exc
    try:
        try:
            yield stage
            (stage / OUTPUT_MARKER).write_text(_MARKER_TEXT)
            if not overwrite:  # nobody filled it meanwhile
                _refuse_foreign_contents(target, "output folder", ignore=stage.name)
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
            old = new_folder(target.parent, prefix=f".{target.name}.", suffix=".old")
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
    # The marker first: a folder left half-published can be replaced by the next run.
    others = sorted(
        (p for p in stage.iterdir() if p.name not in last),
        key=lambda p: (p.name != OUTPUT_MARKER, p.name),
    )
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
