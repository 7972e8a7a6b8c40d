"""The mlcore image asset: one build context holding only what the Dockerfile copies."""

from __future__ import annotations

from typing import Any

import pytest

from cdk.container_image import BUILD_CONTEXT, DOCKERFILE

pytestmark = pytest.mark.xdist_group("cdk_synth")


def _image_assets(synth: Any) -> list[Any]:
    # Lambda code assets sit beside the image asset; only a Docker build context holds a Dockerfile.
    return [
        p
        for p in synth.outdir.iterdir()
        if p.is_dir() and p.name.startswith("asset.") and (p / DOCKERFILE).is_file()
    ]


def test_all_environments_share_one_image_asset(synth: Any) -> None:
    assert len(_image_assets(synth)) == 1


def test_image_build_context_holds_only_what_the_dockerfile_needs(synth: Any) -> None:
    (asset,) = _image_assets(synth)
    files = {str(p.relative_to(asset)) for p in asset.rglob("*") if p.is_file()}
    assert DOCKERFILE in files
    assert "src/mlcore/cli.py" in files
    outside = [f for f in files if not any(f == c or f.startswith(c + "/") for c in BUILD_CONTEXT)]
    assert outside == []
    assert not [f for f in files if "__pycache__" in f or ".egg-info" in f]
