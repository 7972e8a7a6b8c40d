"""checkov over the whole four-account app: nothing fails but what cdk/checkov.py accepts.

checkov pins dependencies of its own, so it runs from its own environment: set ``CHECKOV`` to
its executable (``python3 -m venv .venv-checkov && .venv-checkov/bin/pip install checkov``,
then ``CHECKOV=.venv-checkov/bin/checkov``). Without it this module is skipped, and says so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cdk.checkov import ACCEPTED

pytestmark = pytest.mark.xdist_group("cdk_synth")

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]


def _checkov() -> str | None:
    candidates = [
        os.environ.get("CHECKOV"),
        str(REPOSITORY_ROOT / ".venv-checkov" / "bin" / "checkov"),
        shutil.which("checkov"),
    ]
    return next((c for c in candidates if c and Path(c).exists()), None)


CHECKOV = _checkov()


@pytest.mark.slow
@pytest.mark.skipif(CHECKOV is None, reason="checkov is not installed: see the module docstring")
def test_checkov_finds_nothing_the_app_does_not_accept_with_a_reason(
    four_accounts: Any, tmp_path: Path
) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    for template in four_accounts.outdir.glob("**/*.template.json"):
        shutil.copy(template, templates / template.name)
    completed = subprocess.run(
        [str(CHECKOV), "-d", str(templates), "--framework", "cloudformation", "-o", "json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    reports = json.loads(completed.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [
        f"{r['check_id']} {r['resource']} ({r['file_path']})"
        for report in reports
        for r in report["results"]["failed_checks"]
    ]
    skipped = {r["check_id"] for report in reports for r in report["results"]["skipped_checks"]}
    assert failed == [], "\n".join(failed)
    # Every accepted finding still occurs somewhere (an obsolete acceptance is removed).
    assert {rule.check_id for rule in ACCEPTED} <= skipped
