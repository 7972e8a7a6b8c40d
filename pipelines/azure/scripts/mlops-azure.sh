#!/usr/bin/env bash
# Run `python -m mlops_azure` from the repository root with the installed virtualenv.
# Inside AzureCLI@2 the command signs in with AzurePipelinesCredential (mlops_azure.credentials).
set -euo pipefail
cd "$(dirname "$0")/../../.."
export PYTHONPATH=azure
exec .venv/bin/python -m mlops_azure "$@"
