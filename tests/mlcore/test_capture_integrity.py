"""Finding 2 of issue 23: capture records are written whole or not at all, and every reader
skips a broken line wherever it is, and counts it.

The full disk is real where this machine allows it: a 64 KiB tmpfs mounted in a private
mount and user namespace (``unshare -Urm``), so no root is needed and nothing is left
mounted. Where unshare is refused, that test skips; the injected one (``os.write`` storing
half a record, as a full disk does, then ENOSPC) runs everywhere.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mlcore.capture import CaptureReadStats, CaptureWriter, iter_capture, read_capture
from mlcore.cli import main
from mlcore.data import CHURN_SPEC, Split
from mlcore.model import ModelBundle
from mlcore.serve import Predictor
from mlcore.serve.payload import CSV, JSON

pytestmark = pytest.mark.xdist_group("trained_model")

FEATURES = list(CHURN_SPEC.features)


def csv_rows(split: Split, start: int, rows: int) -> bytes:
    frame = split.test.iloc[start : start + rows][FEATURES]
    return frame.to_csv(header=False, index=False).encode()


def capture_request(writer: CaptureWriter, predictor: Predictor, body: bytes, **extra: Any) -> Any:
    answer = predictor.answer(body, CSV, JSON)
    return writer.capture(
        request_body=body,
        request_content_type=CSV,
        response_body=answer.body.encode(),
        response_content_type=JSON,
        **extra,
    )


# The child runs inside its own mount namespace, on a tmpfs of 64 KiB: it captures until the
# disk is full, frees the space a filler file held, captures again, then reads everything back.
FULL_DISK_CHILD = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from mlcore.capture import CaptureReadStats, CaptureWriter, read_capture
    from mlcore.data import CHURN_SPEC

    disk, body, answer = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    filler = disk / "filler"
    filler.write_bytes(b"x" * 32768)
    writer = CaptureWriter(disk / "capture")

    def capture():
        try:
            writer.capture(
                request_body=body.read_bytes(), request_content_type="text/csv",
                response_body=answer.read_bytes(), response_content_type="application/json",
            )
            return True
        except OSError:
            return False

    before = [capture() for _ in range(40)]
    filler.unlink()  # space comes back
    after = [capture() for _ in range(2)]
    stats = CaptureReadStats()
    frame = read_capture(disk / "capture", CHURN_SPEC, stats=stats)
    print(json.dumps({
        "failed": before.count(False), "written": writer.records_written,
        "after": after, "rows": len(frame), "records": stats.records,
        "broken": stats.broken_lines,
    }))
    """
)


def test_a_real_full_disk_costs_only_the_records_it_could_not_hold(
    trained_bundle: ModelBundle, churn_split: Split, tmp_path: Path
) -> None:
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed: no private tmpfs to fill")
    probe = subprocess.run(
        ["unshare", "-Urm", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {tmp_path}"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a private tmpfs here (user namespaces refused): {probe.stderr}")
    disk = tmp_path / "disk"
    disk.mkdir()
    body = csv_rows(churn_split, 0, 40)  # about 3 KiB: a record spans pages, so it tears
    (tmp_path / "body.csv").write_bytes(body)
    answer = Predictor(trained_bundle).answer(body, CSV, JSON).body
    (tmp_path / "answer.json").write_text(answer)
    mount = ["unshare", "-Urm", "sh", "-c", 'mount -t tmpfs -o size=64k tmpfs "$0" && exec "$@"']
    child = [sys.executable, "-c", FULL_DISK_CHILD, str(disk)]
    child += [str(tmp_path / "body.csv"), str(tmp_path / "answer.json")]
    result = subprocess.run(
        [*mount, str(disk), *child],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.splitlines()[-1])
    assert outcome["failed"] > 0, "the disk never filled: the test proves nothing"
    assert outcome["after"] == [True, True]  # space came back: capture goes on
    # Every record written is read back whole; nothing broken sits between them.
    assert outcome["broken"] == []
    assert outcome["records"] == outcome["written"]
    assert outcome["rows"] == 40 * outcome["written"]


def test_a_write_cut_short_is_rolled_back_and_the_next_record_starts_a_new_file(
    trained_bundle: ModelBundle,
    churn_split: Split,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    predictor = Predictor(trained_bundle)
    writer = CaptureWriter(tmp_path)
    first = capture_request(writer, predictor, csv_rows(churn_split, 0, 3))
    size = first.stat().st_size
    real_write = os.write

    def half_then_full(fd: int, data: bytes) -> int:
        real_write(fd, data[: len(data) // 2])  # what a disk that fills mid-record stores
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("mlcore.capture.os.write", half_then_full)
    with pytest.raises(OSError, match="No space left"):
        capture_request(writer, predictor, csv_rows(churn_split, 3, 3))
    assert first.stat().st_size == size  # the half record is gone
    monkeypatch.setattr("mlcore.capture.os.write", lambda fd, data: real_write(fd, data[:10]))
    with pytest.raises(OSError, match="only 10 of"):  # a short write is a failure too
        capture_request(writer, predictor, csv_rows(churn_split, 6, 3))
    monkeypatch.undo()
    later = capture_request(writer, predictor, csv_rows(churn_split, 9, 3))
    assert later != first  # after a failure the writer moved on to a new file
    assert first.stat().st_size == size
    assert sorted(tmp_path.rglob("*.jsonl")) == sorted([first, later])  # no empty leftovers
    stats = CaptureReadStats()
    frame = read_capture(tmp_path, CHURN_SPEC, stats=stats)
    assert (stats.records, len(frame), stats.broken_lines) == (2, 6, [])


@pytest.fixture
def broken_capture(trained_bundle: ModelBundle, churn_split: Split, tmp_path: Path) -> Path:
    """Six one-row requests; an older writer's failed append glued half a record to the third,
    and a killed writer left half a record at the end."""
    root = tmp_path / "capture"
    writer = CaptureWriter(root)
    predictor = Predictor(trained_bundle)
    for i in range(6):
        body = csv_rows(churn_split, i, 1)
        capture_request(writer, predictor, body, inference_id=f"request-{i}")
    (file,) = writer.files()
    lines = file.read_text().splitlines(keepends=True)
    torn = lines[0][: len(lines[0]) // 2]
    file.write_text("".join([lines[0], lines[1], torn + lines[2], *lines[3:], torn]))
    return root


def test_a_broken_line_anywhere_is_skipped_and_counted(broken_capture: Path) -> None:
    stats = CaptureReadStats()
    frame = read_capture(broken_capture, CHURN_SPEC, stats=stats)
    assert stats.records == 5 and len(frame) == 5
    assert [where.rsplit(":", 1)[1] for where in stats.broken_lines] == ["3", "7"]
    assert "request-2" not in set(frame["inference_id"])  # glued to the torn half: lost
    streamed = pd.concat(list(iter_capture(broken_capture, CHURN_SPEC, chunk_rows=2)))
    assert streamed["inference_id"].tolist() == frame["inference_id"].tolist()


@pytest.mark.parametrize("engine", [[], ["--streaming"]], ids=["exact", "streaming"])
def test_the_drift_job_reads_past_a_broken_line(
    broken_capture: Path, saved_model_dir: Path, tmp_path: Path, engine: list[str]
) -> None:
    argv = ["drift", "--baseline", str(saved_model_dir), "--current", str(broken_capture)]
    assert main([*argv, "--output", str(tmp_path / "drift"), *engine]) == 0
    report = json.loads((tmp_path / "drift" / "drift_report.json").read_text())
    assert report["current_rows"] == 5


def test_the_quality_job_reads_past_a_broken_line(
    broken_capture: Path, saved_model_dir: Path, churn_split: Split, tmp_path: Path
) -> None:
    labels = pd.DataFrame(
        {
            "inference_id": [f"request-{i}" for i in range(6)],
            CHURN_SPEC.target: churn_split.test[CHURN_SPEC.target].iloc[:6].tolist(),
        }
    )
    labels.to_csv(tmp_path / "labels.csv", index=False)
    argv = ["quality", "--current", str(broken_capture), "--labels", str(tmp_path / "labels.csv")]
    argv += ["--baseline", str(saved_model_dir), "--output", str(tmp_path / "quality")]
    assert main(argv) == 0
    report = json.loads((tmp_path / "quality" / "quality_report.json").read_text())
    assert report["rows"] == 5


def test_a_json_line_that_is_not_a_capture_record_is_still_an_error(broken_capture: Path) -> None:
    """A wrong file is not a torn write: it must not pass for an empty hour of traffic."""
    (file,) = list(broken_capture.rglob("*.jsonl"))
    file.write_text('{"not": "a capture record"}\n' + file.read_text())
    with pytest.raises(Exception, match=r":1 is not a SageMaker data-capture record"):
        read_capture(broken_capture, CHURN_SPEC)
