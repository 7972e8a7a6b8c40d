"""Model serving: SageMaker's inference container contract on uvicorn, and Azure ML scoring.

* :func:`create_app`: the ASGI app (``GET /ping``, ``POST /invocations``).
* :func:`serve_in_thread`: the real server on loopback in a background thread, for
  tests and the local demo.
* :func:`run_server`: the foreground server behind ``mlcore serve``.
* :class:`Predictor`: payload in, predictions out; shared with the Azure ML scoring
  script :mod:`mlcore.serve.azure_scoring`.

Payload formats are documented in :mod:`mlcore.serve.payload`; data capture in
:mod:`mlcore.capture`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlcore.serve.app import create_app
    from mlcore.serve.payload import RequestError
    from mlcore.serve.predictor import Predictor
    from mlcore.serve.server import ServeOptions, run_server, serve_in_thread

# Resolved on first use: mlcore.capture imports the payload parsers from this package,
# and the monitors that read capture should not pay for starlette and uvicorn.
_EXPORTS = {
    "create_app": "mlcore.serve.app",
    "RequestError": "mlcore.serve.payload",
    "Predictor": "mlcore.serve.predictor",
    "ServeOptions": "mlcore.serve.server",
    "run_server": "mlcore.serve.server",
    "serve_in_thread": "mlcore.serve.server",
}

__all__ = [
    "Predictor",
    "RequestError",
    "ServeOptions",
    "create_app",
    "run_server",
    "serve_in_thread",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mlcore.serve' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
