"""Promises the repository makes to a user who has just cloned it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_readme_quick_start_is_the_two_commands() -> None:
    readme = (REPO / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("##", 1)[0]
    commands = re.findall(r"^make \w+", quick_start, flags=re.MULTILINE)
    assert commands == ["make demo", "make test"]


def test_ci_runs_the_readme_test_command() -> None:
    assert re.search(r"^make test$", (REPO / ".ci" / "run").read_text(), flags=re.MULTILINE)


def test_setup_is_idempotent_once_installed() -> None:
    # `make -q` exits 0 only when the target is up to date: a second run installs nothing.
    for stamp in (".venv/.demo-installed", ".venv/.dev-installed"):
        result = subprocess.run(["make", "-q", stamp], cwd=REPO, capture_output=True, check=False)
        assert result.returncode == 0, f"{stamp} would be rebuilt: {result.stdout!r}"


def test_mlcore_declares_no_cloud_sdk_dependency_and_imports_none() -> None:
    pyproject = (REPO / "pyproject.toml").read_text()
    dependencies = pyproject.split("dependencies = [", 1)[1].split("]", 1)[0]
    for sdk in ("boto3", "sagemaker", "azure", "aws-cdk"):
        assert sdk not in dependencies
    offenders = [
        str(path.relative_to(REPO))
        for path in (REPO / "src" / "mlcore").rglob("*.py")
        if re.search(
            r"^\s*(import|from)\s+(boto3|botocore|sagemaker|azure|aws_cdk)\b",
            path.read_text(),
            re.MULTILINE,
        )
    ]
    assert offenders == []


def test_azure_folder_does_not_shadow_the_azure_namespace() -> None:
    assert not (REPO / "azure" / "__init__.py").exists()


def test_mlcore_imports_only_what_it_declares() -> None:
    # `make demo` installs only mlcore's declared dependencies: an undeclared import works in the
    # full dev venv and fails on a fresh clone. An optional extra (mlflow, xgboost, lightgbm) may be
    # imported only inside a function, so that mlcore without it still imports.
    import ast
    import sys
    import tomllib

    declared_as_imported = {
        "numpy": "numpy",
        "pandas": "pandas",
        "scipy": "scipy",
        "sklearn": "scikit-learn",
        "joblib": "joblib",
        "pyarrow": "pyarrow",
        "pydantic": "pydantic",
        "yaml": "pyyaml",
        "starlette": "starlette",
        "uvicorn": "uvicorn",
        "rich": "rich",
        "prometheus_client": "prometheus-client",
        "threadpoolctl": "threadpoolctl",
        "h11": "h11",
        "matplotlib": "matplotlib",
    }
    optional_as_imported = {
        "mlflow": "mlflow",
        "xgboost": "xgboost",
        "lightgbm": "lightgbm",
        "pyspark": "pyspark",
        "py4j": "pyspark",  # pyspark's own dependency, installed with it
    }
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    dependencies = " ".join(project["dependencies"]).lower()
    extras = " ".join(" ".join(group) for group in project["optional-dependencies"].values())
    imported: dict[str, str] = {}
    top_level_optional: dict[str, str] = {}
    for path in (REPO / "src" / "mlcore").rglob("*.py"):
        tree = ast.parse(path.read_text())
        module_level = set(map(id, tree.body))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top != "mlcore" and top not in sys.stdlib_module_names:
                    imported.setdefault(top, str(path.relative_to(REPO)))
                    if top in optional_as_imported and id(node) in module_level:
                        top_level_optional[top] = str(path.relative_to(REPO))
    undeclared = {
        top: where
        for top, where in imported.items()
        if not (
            (top in declared_as_imported and f"{declared_as_imported[top]}" in dependencies)
            or (top in optional_as_imported and optional_as_imported[top] in extras)
        )
    }
    assert undeclared == {}
    assert top_level_optional == {}


def test_the_extras_the_settings_name_are_declared_and_pinned() -> None:
    import tomllib

    from mlcore.pipeline_factory import OPTIONAL_EXTRAS

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert {*OPTIONAL_EXTRAS.values(), "tracking"} <= set(extras)
    pins = (REPO / "requirements.txt").read_text()
    for name in ("mlflow==", "xgboost-cpu==", "lightgbm=="):
        assert f"\n{name}" in pins


def test_the_declared_python_has_the_tarfile_filters_mlcore_relies_on() -> None:
    # mlcore.model unpacks model archives with tarfile's extraction filters (filter="data"),
    # which Python 3.11 gained in 3.11.4: Debian 12's 3.11.2 would install and then crash.
    import tomllib

    from packaging.specifiers import SpecifierSet

    assert 'extractall(target, filter="data")' in (REPO / "src/mlcore/model.py").read_text()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    supported = SpecifierSet(project["requires-python"])
    assert "3.11.3" not in supported and "3.11.2" not in supported
    assert "3.11.4" in supported and "3.12.0" in supported
