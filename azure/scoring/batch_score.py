"""Azure ML batch deployment entry script: ``mlcore batch``'s scoring, unchanged.

Everything is in :mod:`mlcore.serve.azure_batch_scoring` (no cloud SDK is needed to score
files): the model checked against ``MLCORE_MODEL_SHA256``, each file of the mini-batch
scored in chunks into the job's output folder, with the scored rows in the data-capture
layout the drift job reads.
"""

from mlcore.serve.azure_batch_scoring import init, run

__all__ = ["init", "run"]
