"""Local stand-ins for the two images' bases, built once and kept in buildah's storage.

No image registry is reachable from CI, so `make image-check` cannot pull the real bases:

- ``python:3.11.14-slim-bookworm`` (the mlcore image): a Debian bookworm root made by
  debootstrap from Debian's package registry, with the runtime libraries the official image
  keeps, and a CPython 3.11 laid out as the official image lays it out (prefix /usr/local,
  shared libpython, ``python``/``python3``/``pip`` links, ``LANG=C.UTF-8``, no bytecode in the
  standard library, ``CMD ["python3"]``);
- ``sagemaker-spark-processing:3.5-cpu-py312`` (the Spark image): the same Debian root with
  CPython 3.12 as ``/usr/local/bin/python3``, the Python packages the real image pins
  (:data:`SPARK_BASE_PINS`, from its Pipfile.runtime.lock), Java 17 and Apache pyspark 3.5 in
  place of EMR's Spark, and the real image's environment (PYTHONDONTWRITEBYTECODE,
  PYSPARK_PYTHON, SPARK_HOME, ...).

The CPython comes from this machine (pyenv's builds, 3.11.7 and 3.12.1 here; no registry
serves CPython builds, and Debian bookworm's own python3 is 3.11.2, older than the 3.11.4
that ``tarfile`` filters need). What differs from the real bases is listed in README,
"Checking the images"; :data:`DIFFERENCES` says it again for the report.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mlops-images"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
# What python:3.11-slim-bookworm installs besides minbase (its Dockerfile: ca-certificates,
# netbase, tzdata) and the shared libraries its CPython links to.
DEBIAN_PACKAGES = (
    "ca-certificates",
    "netbase",
    "tzdata",
    "libssl3",
    "libsqlite3-0",
    "libffi8",
    "libbz2-1.0",
    "liblzma5",
    "zlib1g",
    "libreadline8",
    "libncursesw6",
    "libuuid1",
    "libgdbm6",
    "libexpat1",
)
# The real Spark base's Python packages (aws/sagemaker-spark-container,
# smsparkbuild/py312/Pipfile.runtime.lock, April 2026): what mlcore's install must coexist with.
SPARK_BASE_PINS = (
    "boto3==1.42.38",
    "botocore==1.42.92",
    "numpy==1.26.4",
    "pandas==3.0.2",
    "pydantic==2.11.10",
    "pydantic-core==2.33.2",
    "python-dateutil==2.9.0.post0",
    "pyyaml==6.0.2",
    "joblib==1.5.3",
    "rich==15.0.0",
    "requests==2.33.0",
    "psutil==6.1.1",
    "typing-extensions==4.14.0",
    "packaging==26.1",
    "click==8.1.8",
    "tqdm==4.67.3",
)
# Apache Spark in place of EMR's (the real base's spark-core, spark-python from EMR's yum
# repository), at the version mlcore[spark] pins.
SPARK_PACKAGE = "pyspark==3.5.9"

#: Bump when _lay_out_cpython or ensure_base change: cached stand-ins are then rebuilt.
LAYOUT = 2

DIFFERENCES = {
    "mlcore": [
        "CPython 3.11.7 (this machine's pyenv build) instead of 3.11.14",
        "pip from that CPython's ensurepip instead of the official image's pip",
        "Debian packages from today's bookworm instead of the digest's snapshot",
    ],
    "spark": [
        "Debian bookworm instead of Amazon Linux 2023",
        "CPython 3.12.1 (pyenv) instead of Amazon Linux's python3.12",
        "Apache pyspark 3.5.9 in local mode instead of EMR Spark 3.5 on YARN "
        "(smspark-submit is absent: the job's spark-submit arguments run under pyspark's)",
        "OpenJDK 17 from Debian instead of Amazon Corretto 17",
    ],
}


@dataclass(frozen=True)
class Base:
    """One stand-in: its image name, CPython and what it adds."""

    name: str
    python: str
    pip_packages: tuple[str, ...] = ()
    debian_extra: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()

    @property
    def recipe_hash(self) -> str:
        """Changes whenever the recipe does: a cached base with another hash is rebuilt."""
        recipe = json.dumps(
            [
                LAYOUT,
                self.name,
                self.python,
                self.pip_packages,
                self.debian_extra,
                self.env,
                DEBIAN_PACKAGES,
            ],
        )
        return hashlib.sha256(recipe.encode()).hexdigest()[:16]


MLCORE_BASE = Base(
    "localhost/stand-in/python:3.11-slim-bookworm",
    python="3.11",
    env=(("LANG", "C.UTF-8"),),
)
SPARK_BASE = Base(
    "localhost/stand-in/sagemaker-spark-processing:3.5-cpu-py312",
    python="3.12",
    pip_packages=(*SPARK_BASE_PINS, SPARK_PACKAGE),
    debian_extra=("openjdk-17-jre-headless", "procps"),
    env=(
        ("PYTHONDONTWRITEBYTECODE", "1"),
        ("PYTHONUNBUFFERED", "1"),
        ("PYTHONHASHSEED", "0"),
        ("PYTHONIOENCODING", "UTF-8"),
        ("PIP_DISABLE_PIP_VERSION_CHECK", "1"),
        ("PYSPARK_PYTHON", "/usr/local/bin/python3"),
        ("SPARK_HOME", "/usr/local/lib/python3.12/site-packages/pyspark"),
        ("JAVA_HOME", "/usr/lib/jvm/java-17-openjdk-amd64"),
    ),
)


def run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, check=True, text=True, **kwargs)  # type: ignore[call-overload]


def in_root(root: Path, command: list[str], **kwargs: object) -> None:
    """``command`` chrooted into ``root`` with a clean environment (none of the host's PIP_*
    settings, which name host paths)."""
    env = {
        "PATH": "/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
    }
    run(["chroot", str(root), *command], env=env, **kwargs)


def find_cpython(version: str) -> Path:
    """The install prefix of a CPython ``version`` on this machine (shared libpython needed)."""
    candidates = [shutil.which(f"python{version}")]
    pyenv = Path.home() / ".pyenv" / "versions"
    if pyenv.is_dir():
        candidates += [
            str(p / "bin" / f"python{version}") for p in sorted(pyenv.glob(f"{version}.*"))
        ]
    for candidate in filter(None, candidates):
        out = subprocess.run(
            [
                candidate,
                "-c",
                "import sys, sysconfig; print(sys.base_prefix); print(sysconfig.get_config_var('Py_ENABLE_SHARED'))",
            ],
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            continue
        prefix, shared = out.stdout.split()
        if shared == "1" and prefix != "/usr":
            return Path(prefix)
    raise SystemExit(
        f"no CPython {version} built with --enable-shared outside /usr on this machine: install "
        f"one (for example `pyenv install {version}`) and run again"
    )


def debian_root(packages: tuple[str, ...]) -> Path:
    """A debootstrap'ed bookworm root as a tarball in the cache, made once per package set."""
    key = hashlib.sha256(" ".join(packages).encode()).hexdigest()[:12]
    tarball = CACHE / f"bookworm-minbase-{key}.tar"
    if tarball.is_file():
        return tarball
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as scratch:
        root = Path(scratch) / "root"
        print(f"debootstrap bookworm ({len(packages)} extra packages) ...", file=sys.stderr)
        run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(packages)}",
                "bookworm",
                str(root),
                DEBIAN_MIRROR,
            ],
            stdout=subprocess.DEVNULL,
        )
        # As the official image: the same apt sources a bookworm image has, an empty apt cache.
        (root / "etc/apt/sources.list").write_text(
            f"deb {DEBIAN_MIRROR} bookworm main\n"
            f"deb {DEBIAN_MIRROR} bookworm-updates main\n"
            "deb http://deb.debian.org/debian-security bookworm-security main\n"
        )
        shutil.rmtree(root / "var/cache/apt/archives", ignore_errors=True)
        (root / "var/cache/apt/archives/partial").mkdir(parents=True)
        run(["tar", "-C", str(root), "-cf", str(tarball) + ".part", "."])
        os.replace(str(tarball) + ".part", tarball)
    return tarball


def _lay_out_cpython(prefix: Path, root: Path, version: str) -> None:
    """``prefix``'s CPython under ``root``/usr/local as the official image has it: no
    site-packages but pip, no test suite, no static library, no bytecode."""
    target = root / "usr/local"
    library = Path("lib") / f"python{version}"
    skipped = {library / "site-packages"}

    def ignore(folder: str, names: list[str]) -> set[str]:
        here = Path(folder).relative_to(prefix)
        return {
            name
            for name in names
            if here / name in skipped
            # As the official image: no test suites (test, tests, idle_test folders).
            or (name in ("test", "tests", "idle_test") and (Path(folder) / name).is_dir())
            or name == "__pycache__"
            or name.endswith(".pyc")
            or (name.startswith("libpython") and name.endswith(".a"))
        }

    shutil.copytree(prefix, target, ignore=ignore, symlinks=True, dirs_exist_ok=True)
    (target / library / "site-packages").mkdir(exist_ok=True)
    for link, dest in (("python3", f"python{version}"), ("python", "python3")):
        path = target / "bin" / link
        path.unlink(missing_ok=True)
        path.symlink_to(dest)
    (root / "etc/ld.so.conf.d/usr-local.conf").write_text("/usr/local/lib\n")


def ensure_base(base: Base) -> str:
    """The stand-in's image name, built unless buildah already holds this recipe's build."""
    inspect = subprocess.run(
        ["buildah", "inspect", "--type", "image", base.name], capture_output=True, text=True
    )
    if inspect.returncode == 0:
        labels = json.loads(inspect.stdout)["OCIv1"]["config"].get("Labels") or {}
        if labels.get("stand-in-recipe") == base.recipe_hash:
            return base.name
    tarball = debian_root(DEBIAN_PACKAGES + base.debian_extra)
    prefix = find_cpython(base.python)
    print(f"building stand-in {base.name} (CPython from {prefix}) ...", file=sys.stderr)
    container = run(["buildah", "from", "scratch"], capture_output=True).stdout.strip()
    try:
        mount = Path(run(["buildah", "mount", container], capture_output=True).stdout.strip())
        run(["tar", "-C", str(mount), "-xf", str(tarball)])
        _lay_out_cpython(prefix, mount, base.python)
        in_root(mount, ["ldconfig"])
        python = f"/usr/local/bin/python{base.python}"
        in_root(mount, [python, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
        for link, dest in (("pip", f"pip{base.python}"), ("pip3", f"pip{base.python}")):
            path = mount / "usr/local/bin" / link
            path.unlink(missing_ok=True)
            path.symlink_to(dest)
        if base.pip_packages:
            with host_ca_for_pip(mount):
                in_root(
                    mount,
                    [
                        python,
                        "-m",
                        "pip",
                        "install",
                        "--quiet",
                        "--no-cache-dir",
                        "--root-user-action=ignore",
                        *base.pip_packages,
                    ],
                )
        # The official image deletes the standard library's bytecode; so does the stand-in
        # (pip compiled the Spark base's packages, as pipenv does in the real one).
        for cache in (mount / f"usr/local/lib/python{base.python}").glob("*/__pycache__"):
            if "site-packages" not in str(cache):
                shutil.rmtree(cache)
        for cache in (mount / f"usr/local/lib/python{base.python}/__pycache__",):
            shutil.rmtree(cache, ignore_errors=True)
        config = [
            "buildah",
            "config",
            "--cmd",
            "python3",
            "--label",
            f"stand-in-recipe={base.recipe_hash}",
        ]
        for key, value in (
            ("PATH", "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"),
            *base.env,
        ):
            config += ["--env", f"{key}={value}"]
        run([*config, container])
        run(["buildah", "unmount", container], stdout=subprocess.DEVNULL)
        run(
            ["buildah", "commit", "--quiet", "--rm", container, base.name],
            stdout=subprocess.DEVNULL,
        )
    except BaseException:
        subprocess.run(["buildah", "rm", container], capture_output=True)
        raise
    return base.name


class host_ca_for_pip:
    """Lets pip inside a root trust what the host trusts (a TLS-inspecting proxy's CA, as on
    these machines), for the time of one step, leaving nothing behind in the root."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.bundle = root / "tmp/host-ca.pem"
        self.conf = root / "etc/pip.conf"

    def __enter__(self) -> None:
        shutil.copy("/etc/ssl/certs/ca-certificates.crt", self.bundle)
        self.conf.write_text("[global]\ncert = /tmp/host-ca.pem\n")

    def __exit__(self, *exc: object) -> None:
        self.bundle.unlink(missing_ok=True)
        self.conf.unlink(missing_ok=True)


if __name__ == "__main__":
    for base in (MLCORE_BASE, SPARK_BASE):
        print(ensure_base(base))
