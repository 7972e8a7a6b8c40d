"""One lock of the whole dependency tree, and nothing installs around it (issue 20, finding 4).

The image once resolved python-dateutil 4.0.0 where CI had 2.9.0.post0, because the images and
the Azure environments installed direct pins only and resolved the rest at build time. Every
install now reads lock/ with hash checking on. These tests read the install instructions
themselves (Dockerfiles with BuildKit's parser, the Makefile, the Azure conda specifications) and
fail when one of them would resolve anything the CI lock does not hold.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import dockerfile
import pytest
from packaging.requirements import Requirement

from tools.locks import (
    AZURE_DIFFERENCES,
    CI_LOCK,
    EXTRAS,
    LOCK_DIR,
    LOCKS,
    LOCKS_BY_NAME,
    ROOT,
    normalise,
    read_lock,
)

DOCKERFILES = ("pipelines/container/Dockerfile", "pipelines/monitoring/spark/Dockerfile")
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _lock(name: str) -> dict[str, str]:
    return {n: pin.version for n, pin in read_lock(LOCKS_BY_NAME[name].path).items()}


def test_every_lock_exists_and_every_entry_is_pinned_with_hashes() -> None:
    for lock in LOCKS:
        assert read_lock(lock.path), f"{lock.path} is empty"
    assert {p.name for p in LOCK_DIR.glob("*.txt")} == {lock.path.name for lock in LOCKS}


def test_an_entry_without_hashes_is_refused_with_the_fix(tmp_path: Path) -> None:
    lock = tmp_path / "lock.txt"
    lock.write_text("numpy==2.4.6 \\\n    --hash=sha256:" + "a" * 64 + "\npandas==3.1.1\n")
    with pytest.raises(
        ValueError, match=r"'pandas==3.1.1'\) is not name==version with --hash.*make lock"
    ):
        read_lock(lock)


def test_the_ci_lock_holds_every_pin_of_requirements_txt() -> None:
    ci = _lock("ci")
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = Requirement(line)
        name = normalise(requirement.name)
        assert name in ci, f"requirements.txt pins {name}, which lock/ci.txt lacks: make lock"
        assert requirement.specifier.contains(ci[name], prereleases=True), (
            f"requirements.txt asks {line!r}, lock/ci.txt holds {ci[name]}: make lock"
        )


def _satisfied(requirements: list[str], lock: dict[str, str], where: str) -> None:
    linux = {"sys_platform": "linux", "platform_system": "Linux", "os_name": "posix"}
    for text in requirements:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate(linux):
            continue
        name = normalise(requirement.name)
        assert name in lock, f"{where} lacks {name} ({text}): make lock"
        assert requirement.specifier.contains(lock[name], prereleases=True), (
            f"{where} holds {name} {lock[name]}, pyproject asks {text}: make lock"
        )


def test_the_runtime_and_extra_locks_hold_what_pyproject_declares() -> None:
    runtime = _lock("runtime")
    _satisfied(PYPROJECT["project"]["dependencies"], runtime, "lock/runtime.txt")
    _satisfied(PYPROJECT["project"]["dependencies"], _lock("runtime-py312"), "runtime-py312")
    optional = PYPROJECT["project"]["optional-dependencies"]
    assert set(EXTRAS) == set(optional), "tools/locks.py EXTRAS must list every extra"
    for extra in EXTRAS:
        added = _lock(f"extra-{extra}")
        _satisfied(optional[extra], runtime | added, f"lock/extra-{extra}.txt")
        # Only what the extra adds: an image installs runtime.txt and these side by side.
        assert not set(added) & set(runtime), f"lock/extra-{extra}.txt repeats runtime entries"


def test_the_build_lock_holds_what_building_mlcore_needs() -> None:
    declared = [
        line.strip()
        for line in (LOCK_DIR / "build.in").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert declared == PYPROJECT["build-system"]["requires"]
    for name in ("build", "build-py312"):
        _satisfied(declared, _lock(name), f"lock/{name}.txt")


def test_every_narrower_lock_holds_the_ci_locks_versions() -> None:
    ci = _lock("ci")
    for lock in LOCKS:
        if lock.name in ("ci", "build", "build-py312"):
            continue
        differs = {n for n, version in _lock(lock.name).items() if n in ci and ci[n] != version}
        declared = set(AZURE_DIFFERENCES.get(lock.name, {}))
        # Every difference is declared with its reason, and every declared one still differs.
        assert differs == declared, f"lock/{lock.name}.txt differs from lock/ci.txt in {differs}"


def test_the_azure_locks_hold_what_the_azure_requirements_pin() -> None:
    for name, file in (
        ("azure-job", "job"),
        ("azure-serving", "serving"),
        ("azure-control", "control"),
    ):
        lines = (ROOT / "azure" / f"requirements-{file}.txt").read_text().splitlines()
        requirements = [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]
        _satisfied(requirements, _lock(name), f"lock/{name}.txt")


# --- every install reads a lock -----------------------------------------------------------


def _pip_installs(command: str) -> list[list[str]]:
    """The argument lists of every ``pip install`` (or ``python -m pip install``) in a command."""
    # The image's install line gathers its lock files in $files first (one per extra).
    gathered = " ".join(re.findall(r'files="([^"]*)"', command)).replace("$files", "")
    command = re.sub(r'files="[^"]*"', "", command).replace("$files", gathered)
    installs = []
    for part in re.split(r"&&|;|\|\|", command.replace("\\\n", " ")):
        words = shlex.split(part)
        for i, word in enumerate(words):
            if word == "install" and i > 0 and Path(words[i - 1]).name in ("pip", "pip3"):
                installs.append(words[i + 1 :])
    return installs


def _check_install(args: list[str], where: str) -> None:
    """Either hash-checked from lock files only, or the local project with no resolution."""
    files = [args[i + 1] for i, a in enumerate(args) if a == "-r"]
    if "--require-hashes" in args:
        assert files, f"{where}: --require-hashes without a lock file: {args}"
        assert all(
            re.fullmatch(r"lock/[a-z0-9-]+\.txt|lock/extra-\$extra\.txt", f) for f in files
        ), f"{where}: installs from {files}, not lock/"
        named = [a for a in args if not a.startswith("-") and a not in files]
        assert named == [], f"{where}: names packages outside the lock: {named}"
    else:
        assert "--no-deps" in args, f"{where}: pip install without --require-hashes: {args}"
        assert files == [], f"{where}: requirements without hash checking: {args}"
        targets = [a for a in args if not a.startswith("-")]
        assert targets == ["."], f"{where}: only the local project installs without a lock"


@pytest.mark.parametrize("path", DOCKERFILES)
def test_the_images_install_only_from_the_lock_with_hashes(path: str) -> None:
    instructions = list(dockerfile.parse_file(str(ROOT / path)))
    runs = [i.value[0] for i in instructions if i.cmd == "RUN" and "pip install" in i.value[0]]
    assert len(runs) == 2, f"{path}: expected the locked install and mlcore's own"
    for run in runs:
        installs = _pip_installs(run)
        assert installs, f"{path}: cannot read {run!r}"
        for args in installs:
            _check_install(args, path)
    locked, project = runs
    assert "--require-hashes" in locked and "--no-index" in project
    # Every lock file a build names exists and is copied into the build first.
    for name in re.findall(r"lock/([a-z0-9-]+)\.txt", locked):
        assert (LOCK_DIR / f"{name}.txt").is_file()


@pytest.mark.parametrize("path", DOCKERFILES)
def test_the_images_copy_src_after_the_dependencies_and_keep_bytecode(path: str) -> None:
    instructions = list(dockerfile.parse_file(str(ROOT / path)))
    position = {
        "locked": next(n for n, i in enumerate(instructions) if "--require-hashes" in i.value[0]),
        "src": next(n for n, i in enumerate(instructions) if i.cmd == "COPY" and "src" in i.value),
    }
    # A code edit rebuilds only the layers after COPY src, not the dependency layer.
    assert position["locked"] < position["src"]
    for instruction in instructions:
        text = " ".join(instruction.value)
        assert "--no-compile" not in text, f"{path}: {instruction.original}"
        if instruction.cmd == "ENV":
            assert "PYTHONDONTWRITEBYTECODE" not in text, f"{path}: {instruction.original}"


def test_the_mlcore_image_runs_mlcore_under_tini() -> None:
    instructions = list(dockerfile.parse_file(str(ROOT / DOCKERFILES[0])))
    (entrypoint,) = [i for i in instructions if i.cmd == "ENTRYPOINT"]
    assert entrypoint.value[:3] == ("/usr/bin/tini", "--", "mlcore")
    assert any(
        i.cmd == "RUN" and "install -y --no-install-recommends tini" in i.value[0]
        for i in instructions
    )


def test_every_makefile_install_reads_a_lock_with_hashes() -> None:
    makefile = (ROOT / "Makefile").read_text()
    variables = dict(re.findall(r"^(\w+) := (.*)$", makefile, flags=re.M))
    recipes = [line.strip() for line in makefile.splitlines() if line.startswith("\t")]
    installs = 0
    for recipe in recipes:
        expanded = re.sub(r"\$\((\w+)\)", lambda m: variables.get(m[1], m[0]), recipe)
        if "pip install" not in expanded or "--upgrade pip" in expanded:
            continue
        for args in _pip_installs(expanded):
            _check_install([a for a in args if a not in ("--quiet", "-e")], f"Makefile: {recipe}")
            installs += 1
    assert installs >= 6  # demo, dev and azure: the locked set and mlcore each
    assert CI_LOCK.relative_to(ROOT).as_posix() in makefile
