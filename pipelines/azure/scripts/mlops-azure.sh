#!/usr/bin/env bash
# Run `python -m mlops_azure` from the repository root with the installed virtualenv.
# AzureCLI@2 has signed in with the service connection; DefaultAzureCredential uses that session.
set -euo pipefail
cd "$(dirname "$0")/../../.."
export PYTHONPATH=azure
exec .venv/bin/python -m mlops_azure "$@"
