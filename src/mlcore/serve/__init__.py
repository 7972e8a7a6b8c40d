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

from mlcore.serve.app import create_app
from mlcore.serve.payload import RequestError
from mlcore.serve.predictor import Predictor
from mlcore.serve.server import ServeOptions, run_server, serve_in_thread

__all__ = [
    "Predictor",
    "RequestError",
    "ServeOptions",
    "create_app",
    "run_server",
    "serve_in_thread",
]
