"""Azure ML SDK v2 definitions of the MLOps loop, and the commands that apply them.

The folder above this package (``azure/``) is deliberately not a package: it would
shadow the ``azure`` namespace that ``azure.ai.ml`` and ``azure.identity`` live in.
Run the commands with ``PYTHONPATH=azure python -m mlops_azure ...``.
"""

from __future__ import annotations
