"""A model folder is verified before anything in it is used (finding 4 of issue 12), and its
hash covers every file that shapes predictions (finding 3 of issue 23).

The tampered file below runs code when unpickled (it creates a marker file), so each
test that refuses it also proves that nothing was unpickled before the refusal.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
from pathlib import Path
from typing import Any

import joblib
import pytest

from mlcore.cli import main
from mlcore.data import CHURN_SPEC, Split
from mlcore.errors import ModelError
from mlcore.model import MANIFEST_FILE, ModelBundle, model_sha256, write_manifest
from mlcore.serve.predictor import Predictor

pytestmark = pytest.mark.xdist_group("trained_model")


class _RunsCode:
    """Unpickling this calls os.mkdir(marker): the shape of a malicious pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (str(self.marker),))


@pytest.fixture
def model_copy(saved_model_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(saved_model_dir, tmp_path / "model"))


def tamper(model_dir: Path, marker: Path, *, rewrite_manifest: bool) -> None:
    (model_dir / "model.joblib").write_bytes(pickle.dumps(_RunsCode(marker)))
    if rewrite_manifest:  # the attacker who can write the folder rewrites its manifest too
        write_manifest(model_dir)


def set_metadata(model_dir: Path, *, rewrite_manifest: bool = True, **changes: Any) -> None:
    path = model_dir / "metadata.json"
    metadata = json.loads(path.read_text())
    metadata.update(changes)
    path.write_text(json.dumps(metadata))
    if rewrite_manifest:
        write_manifest(model_dir)


def test_a_tampered_model_is_refused_before_unpickling_when_the_registered_hash_is_given(
    model_copy: Path, tmp_path: Path
) -> None:
    registered = model_sha256(model_copy)
    marker = tmp_path / "code-ran"
    tamper(model_copy, marker, rewrite_manifest=True)
    with pytest.raises(ModelError, match="not the model that was registered"):
        ModelBundle.load(model_copy, expected_sha256=registered)
    assert not marker.exists()


def test_mlcore_serve_refuses_a_tampered_model_with_exit_2_via_the_environment(
    model_copy: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MLCORE_MODEL_SHA256", model_sha256(model_copy))
    marker = tmp_path / "code-ran"
    tamper(model_copy, marker, rewrite_manifest=True)
    assert (
        main(["serve", "--model-dir", str(model_copy), "--host", "127.0.0.1", "--port", "0"]) == 2
    )
    assert "not the model that was registered" in capsys.readouterr().err
    assert not marker.exists()


def test_mlcore_serve_with_several_workers_refuses_a_tampered_model_with_exit_2(
    model_copy: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Several workers: the model is checked in a child process; its refusal is still exit 2.
    monkeypatch.setenv("MLCORE_MODEL_SHA256", model_sha256(model_copy))
    marker = tmp_path / "code-ran"
    tamper(model_copy, marker, rewrite_manifest=True)
    argv = ["serve", "--model-dir", str(model_copy), "--host", "127.0.0.1", "--port", "0"]
    assert main([*argv, "--workers", "2"]) == 2
    assert "not the model that was registered" in capsys.readouterr().err
    assert not marker.exists()


def test_mlcore_serve_takes_the_registered_hash_as_an_option(
    model_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registered = model_sha256(model_copy)
    marker = tmp_path / "code-ran"
    tamper(model_copy, marker, rewrite_manifest=True)
    argv = ["serve", "--model-dir", str(model_copy), "--model-sha256", registered, "--port", "0"]
    assert main(argv) == 2
    assert not marker.exists()


def test_a_model_file_that_does_not_match_its_manifest_is_refused_as_changed_or_torn(
    model_copy: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "code-ran"
    tamper(model_copy, marker, rewrite_manifest=False)
    with pytest.raises(ModelError, match="changed after training, or is torn"):
        ModelBundle.load(model_copy)
    assert not marker.exists()


def test_a_malformed_expected_hash_is_an_error_naming_the_format(model_copy: Path) -> None:
    with pytest.raises(ModelError, match="64 hex digits"):
        ModelBundle.load(model_copy, expected_sha256="md5:abc")


def test_the_registered_hash_loads_the_untouched_model(model_copy: Path) -> None:
    registered = model_sha256(model_copy)
    assert ModelBundle.load(model_copy, expected_sha256=registered.removeprefix("sha256:"))


def answers(model_dir: Path, split: Split) -> list[Any]:
    """The labels and scores the model gives 200 held-out rows sent as CSV (the features in the
    order the registered model's spec gives them)."""
    body = split.test.iloc[:200][list(CHURN_SPEC.features)].to_csv(header=False, index=False)
    predictor = Predictor(ModelBundle.load(model_dir))
    return predictor.predict(body, "text/csv").to_numpy().tolist()


@pytest.mark.parametrize(
    "edit",
    ["decision threshold", "positive label", "feature order"],
)
def test_an_edited_metadata_json_is_refused_with_the_registered_hash(
    model_copy: Path, saved_model_dir: Path, churn_split: Split, edit: str
) -> None:
    """Issue 23 finding 3: these edits changed 44 and 192 of 200 answers while the hash held."""
    registered = model_sha256(model_copy)
    metadata = json.loads((model_copy / "metadata.json").read_text())
    if edit == "decision threshold":
        changes: dict[str, Any] = {"decision_threshold": 0.99}
    elif edit == "positive label":
        changes = {"positive_label": 0}
    else:
        spec = metadata["spec"]
        spec["numeric"][0], spec["numeric"][1] = spec["numeric"][1], spec["numeric"][0]
        changes = {"spec": spec}
    # The attacker (or a careless hand) rewrites the manifest to match: only the registered
    # hash, kept outside the folder, can tell.
    set_metadata(model_copy, **changes)
    assert answers(model_copy, churn_split) != answers(saved_model_dir, churn_split)
    with pytest.raises(ModelError, match="not the model that was registered"):
        Predictor.load(model_copy, expected_sha256=registered)
    # Edited without rewriting the manifest, the folder's own check refuses it.
    (model_copy / MANIFEST_FILE).write_bytes(b"")
    with pytest.raises(ModelError):
        ModelBundle.load(model_copy)


def test_metadata_edited_without_the_manifest_is_refused_even_with_no_registered_hash(
    model_copy: Path,
) -> None:
    set_metadata(model_copy, rewrite_manifest=False, decision_threshold=0.99)
    with pytest.raises(ModelError, match=r"metadata\.json has sha256:.*changed after training"):
        Predictor.load(model_copy)


def test_the_models_hash_is_checkable_with_sha256sum(model_copy: Path) -> None:
    if shutil.which("sha256sum") is None:
        pytest.skip("sha256sum (GNU coreutils) is not installed")
    check = subprocess.run(
        ["sha256sum", "-c", MANIFEST_FILE], cwd=model_copy, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    printed = subprocess.run(
        ["sha256sum", MANIFEST_FILE], cwd=model_copy, capture_output=True, text=True, check=True
    )
    assert model_sha256(model_copy) == "sha256:" + printed.stdout.split()[0]


def rewrite_model(model_dir: Path, payload: bytes) -> None:
    """Replace model.joblib and its manifest, so loading gets past the hash checks."""
    (model_dir / "model.joblib").write_bytes(payload)
    write_manifest(model_dir)


def joblib_bytes(value: object, tmp_path: Path) -> bytes:
    path = tmp_path / "object.joblib"
    joblib.dump(value, path)
    return path.read_bytes()


def test_a_joblib_file_holding_a_dict_is_refused_at_load(model_copy: Path, tmp_path: Path) -> None:
    rewrite_model(model_copy, joblib_bytes({"not": "a model"}, tmp_path))
    with pytest.raises(ModelError, match=r"holds a builtins\.dict, not a scikit-learn Pipeline"):
        ModelBundle.load(model_copy)


def test_a_pipeline_that_cannot_score_the_sample_request_never_reports_healthy(
    model_copy: Path, tmp_path: Path, saved_model_dir: Path
) -> None:
    sample = json.loads((model_copy / "sample_request.json").read_text())
    for record in sample["instances"]:
        record["age"] = "forty"
    (model_copy / "sample_request.json").write_text(json.dumps(sample))
    with pytest.raises(ModelError, match=r"sample_request\.json cannot be scored"):
        Predictor.load(model_copy)


def test_a_model_folder_without_its_sample_request_is_refused_for_serving(
    model_copy: Path,
) -> None:
    (model_copy / "sample_request.json").unlink()
    with pytest.raises(ModelError, match=r"has no sample_request\.json"):
        Predictor.load(model_copy)


def _damage(model_dir: Path, how: str, tmp_path: Path) -> None:
    model = model_dir / "model.joblib"
    if how == "random bytes":
        rewrite_model(model_dir, os.urandom(4096))
    elif how == "truncated joblib":
        rewrite_model(model_dir, model.read_bytes()[: model.stat().st_size // 2])
    elif how == "broken metadata.json":
        (model_dir / "metadata.json").write_text('{"spec": {"target": ')
        write_manifest(model_dir)
    elif how == "a folder in place of model.joblib":
        model.unlink()
        model.mkdir()
    elif how == "numeric features given as a string":
        metadata = json.loads((model_dir / "metadata.json").read_text())
        metadata["spec"]["numeric"] = "abc"
        (model_dir / "metadata.json").write_text(json.dumps(metadata))
        write_manifest(model_dir)
    else:
        raise AssertionError(how)


DAMAGE = {
    "random bytes": "cannot load",
    "truncated joblib": "cannot load",
    "broken metadata.json": "is not valid JSON",
    "a folder in place of model.joblib": "model.joblib is a folder",
    "numeric features given as a string": "numeric must be a list of column names, got 'abc'",
}


@pytest.mark.parametrize(("how", "message"), DAMAGE.items(), ids=DAMAGE.keys())
def test_a_damaged_model_folder_is_exit_2_with_a_message_on_serve_and_evaluate(
    model_copy: Path,
    tmp_path: Path,
    churn_split: Any,
    how: str,
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _damage(model_copy, how, tmp_path)
    data = tmp_path / "test.parquet"
    churn_split.test.iloc[:50].to_parquet(data)
    serve = ["serve", "--model-dir", str(model_copy), "--host", "127.0.0.1", "--port", "0"]
    evaluate = ["evaluate", "--model-dir", str(model_copy), "--data", str(data)]
    evaluate += ["--output", str(tmp_path / "evaluation")]
    for argv in (serve, evaluate):
        assert main(argv) == 2, argv[0]
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
