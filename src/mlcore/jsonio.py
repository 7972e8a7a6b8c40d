"""JSON output that stays valid: NaN and infinities become null instead of bare NaN tokens."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def json_safe(value: Any) -> Any:
    """Recursively replace non-finite floats with None and numpy scalars with Python ones."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dumps(data: Any, **options: Any) -> str:
    """``json.dumps`` that never emits NaN or Infinity: what the CLI prints on stdout."""
    return json.dumps(json_safe(data), default=str, allow_nan=False, **options)


def write_json(path: str | Path, data: Any) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps(data, indent=2) + "\n")
    return path
