"""Test support shared across test folders: independent evaluations of what moto and our
fakes do not enforce (IAM decisions on synthesised templates).

``tests/support`` is on pytest's ``pythonpath`` (pyproject.toml), so tests import
``mlops_testing.cloudformation`` and ``mlops_testing.iam``.
"""
