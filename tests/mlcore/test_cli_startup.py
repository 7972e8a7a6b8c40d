"""Finding 8 of issue 12: the help paths import no heavy module (a test of imports, not of time;
the start-up time itself is measured in the README)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from mlcore.cli import COMPONENT_COMMANDS, build_parser

HEAVY = (
    "pandas",
    "numpy",
    "sklearn",
    "scipy",
    "pyarrow",
    "joblib",
    "starlette",
    "uvicorn",
    "pydantic",
)

_PROBE = """
import json, sys
from mlcore.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


@pytest.mark.parametrize(
    "argv", [["--help"], ["drift", "--help"], ["serve", "--help"]], ids=" ".join
)
def test_help_imports_no_heavy_module(argv: list[str]) -> None:
    # A fresh interpreter: this test process has imported everything already.
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded = set(json.loads(result.stdout.splitlines()[-1]))
    assert "usage: mlcore" in result.stdout
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


def _subcommand_help(parser: argparse.ArgumentParser, name: str) -> str | None:
    for action in parser._subparsers._group_actions:  # type: ignore[union-attr]
        for choice in getattr(action, "_choices_actions", []):
            if choice.dest == name:
                return str(choice.help)
    return None


@pytest.mark.parametrize("name", sorted(COMPONENT_COMMANDS))
def test_the_help_line_shown_without_loading_a_component_is_its_own(name: str) -> None:
    placeholder = _subcommand_help(build_parser(["--help"]), name)
    assert placeholder == _subcommand_help(build_parser([name]), name)


def test_the_drift_parsers_chunk_default_is_the_streaming_engines() -> None:
    from mlcore.drift.cli import DEFAULT_CHUNK_ROWS
    from mlcore.drift.streaming import DEFAULT_CHUNK_ROWS as ENGINE_DEFAULT

    assert DEFAULT_CHUNK_ROWS == ENGINE_DEFAULT
