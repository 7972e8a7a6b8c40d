"""A company can adopt the kit: one licence, Apache-2.0, stated everywhere a tool reads it."""

from __future__ import annotations

import json
import tomllib
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_repository_carries_the_apache_licence_and_every_manifest_names_it() -> None:
    text = (REPO / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    assert json.loads((REPO / "package.json").read_text())["license"] == "Apache-2.0"
    lock = json.loads((REPO / "package-lock.json").read_text())
    assert lock["packages"][""]["license"] == "Apache-2.0"


def test_the_installed_mlcore_declares_the_licence() -> None:
    # What pip show and licence scanners read: the installed distribution's metadata.
    assert metadata.metadata("mlcore")["License-Expression"] == "Apache-2.0"
