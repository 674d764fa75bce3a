"""Installed size of the function image, x86_64 and arm64, before and after the lean runtime stage.

    python -m bench.image_size [--model build/model] [--json FILE]

There is no Docker engine here, so the image is rebuilt piece by piece, exactly as
``function/Dockerfile`` builds it (its ``deps`` stage's ARGs are read, not copied):

- ``.cache/venv-lean``: the image's venv: ``python -m venv --without-pip``, ``tensorflow-cpu``
  (``tensorflow`` on arm64) + REQUIREMENTS, ``tensorflow-text`` with ``--no-deps``, then
  TRIM_PACKAGES uninstalled and TRIM_PATHS deleted. The end-to-end tests run against it with
  ``BERT2VEC_E2E_PYTHON=.cache/venv-lean/bin/python pytest tests/e2e``.
- ``.cache/venv-full``: the former recipe (``pip install ".[function]"``: full ``tensorflow`` and
  every dependency, nothing removed), for the "before" column.
- ``.cache/wheels-aarch64``: the manylinux aarch64 wheels of the arm64 venv (this machine cannot
  install them). arm64 sizes are their unpacked bytes after the same trims, plus the bytecode pip
  writes at install time, taken from the x86_64 venv (the Python sources are the same).
- The base image (python:3.11-slim-bookworm) cannot be pulled here. Its size is an *estimate*: the
  Debian packages of priority "required" plus the libraries CPython links, as installed on this
  Debian 12 machine, plus this machine's CPython 3.11 tree with what the official image deletes
  (tests, ``*.pyc``, ``libpython*.a``, site-packages) removed and its pip/setuptools/wheel added.

The venvs and wheels are built once (PyPI the first time); later runs work offline. Prints a
markdown table; ``--json`` also writes the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "function" / "Dockerfile"
CACHE = REPO / ".cache"
MB = 1e6
AARCH64_PLATFORMS = ("manylinux_2_28_aarch64", "manylinux_2_27_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64")
# Libraries the official image keeps for CPython's extension modules (besides "required" packages).
PYTHON_RUNTIME_DEBS = (
    "ca-certificates", "netbase", "tzdata", "libssl3", "libsqlite3-0", "libffi8", "libbz2-1.0", "liblzma5",
    "zlib1g", "libreadline8", "libncursesw6", "libuuid1", "libexpat1", "libgdbm6", "libdb5.3", "libtirpc3", "libnsl2",
)  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# The Dockerfile's deps stage
# ---------------------------------------------------------------------------------------------------


def stage_args(stage: str = "deps", dockerfile: Path = DOCKERFILE) -> dict[str, str]:
    """``ARG NAME=default`` of one ``FROM ... AS stage`` (quotes removed, continuations joined)."""
    text = dockerfile.read_text(encoding="utf-8").replace("\\\n", " ")
    args: dict[str, str] = {}
    current = None
    for line in (raw.strip() for raw in text.splitlines()):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0].upper() == "FROM":
            current = words[3] if len(words) >= 4 and words[2].upper() == "AS" else None
        elif words[0].upper() == "ARG" and current == stage:
            for word in shlex.split(line[3:]):
                name, _, value = word.partition("=")
                args[name] = value
    if not args:
        raise ValueError(f"{dockerfile}: stage {stage!r} declares no ARG")
    if stage == "deps":
        args.update(image_requirements())
    return args


def image_requirements() -> dict[str, str]:
    """The deps stage's inputs, now in function/requirements.in (its hashed locks are what the image
    installs): TENSORFLOW_VERSION, TENSORFLOW_TEXT_VERSION and the rest as REQUIREMENTS."""
    lines = (REPO / "function" / "requirements.in").read_text(encoding="utf-8").splitlines()
    reqs = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    out = {"REQUIREMENTS": " ".join(r for r in reqs if not r.startswith(("tensorflow==", "tensorflow-text==")))}
    for r in reqs:
        if r.startswith("tensorflow=="):
            out["TENSORFLOW_VERSION"] = r.split("==", 1)[1]
        elif r.startswith("tensorflow-text=="):
            out["TENSORFLOW_TEXT_VERSION"] = r.split("==", 1)[1]
    lock = REPO / "function" / f"requirements-{platform.machine()}.txt"
    out["LOCK"] = lock.read_text(encoding="utf-8") if lock.is_file() else ""
    return out


def tensorflow_dist(machine: str) -> str:
    """The Dockerfile's choice: tensorflow-cpu on x86_64 (no such wheel for arm64)."""
    return "tensorflow-cpu" if machine == "x86_64" else "tensorflow"


# ---------------------------------------------------------------------------------------------------
# Building the environments (once)
# ---------------------------------------------------------------------------------------------------


def _pip(target_python: Path, *args: str) -> None:
    cmd = [sys.executable, "-m", "pip", "--python", str(target_python), "--disable-pip-version-check", *args]
    subprocess.run(cmd, check=True)


def site_packages(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python3*/site-packages"))
    if not found:
        raise FileNotFoundError(f"{venv}: no site-packages")
    return found[0]


def _recipe(args: dict[str, str], *, lean: bool) -> str:
    """What a build depends on; a build stamped with another recipe is redone."""
    keys = ["TENSORFLOW_VERSION", "TENSORFLOW_TEXT_VERSION", "REQUIREMENTS"]
    keys += ["TRIM_PACKAGES", "TRIM_PATHS", "LOCK"] if lean else []
    return json.dumps({"lean": lean, **{k: args[k] for k in keys}}, sort_keys=True)


def build_venv(venv: Path, args: dict[str, str], *, lean: bool) -> Path:
    """The deps stage's RUN, step for step (lean) or the former one-line install (full)."""
    stamp = venv / ".image-size-built"
    recipe = _recipe(args, lean=lean)
    if stamp.is_file() and stamp.read_text() == recipe:
        return venv  # built from the same Dockerfile ARGs: reuse (offline)
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    requirements = args["REQUIREMENTS"].split()
    tf, tf_text = args["TENSORFLOW_VERSION"], args["TENSORFLOW_TEXT_VERSION"]
    lock = REPO / "function" / f"requirements-{platform.machine()}.txt"
    if lean and lock.is_file():  # what the image installs: the hashed lock, nothing resolved
        _pip(py, "install", "--quiet", "--require-hashes", "--no-deps", "--only-binary", ":all:", "-r", str(lock))
    elif lean:
        _pip(py, "install", "--quiet", f"{tensorflow_dist(platform.machine())}=={tf}", *requirements)
        _pip(py, "install", "--quiet", "--no-deps", f"tensorflow-text=={tf_text}")
    if lean:
        _pip(py, "uninstall", "--quiet", "-y", *args["TRIM_PACKAGES"].split())
        site = site_packages(venv)
        for path in args["TRIM_PATHS"].split():
            shutil.rmtree(site / path, ignore_errors=True)
    else:
        _pip(py, "install", "--quiet", f"tensorflow=={tf}", f"tensorflow-text=={tf_text}", *requirements)
    stamp.write_text(recipe)
    return venv


def download_aarch64(directory: Path, args: dict[str, str]) -> Path:
    """The arm64 venv's wheels: tensorflow + REQUIREMENTS with dependencies, tensorflow-text alone."""
    stamp = directory / ".downloaded"
    recipe = _recipe(args, lean=False)  # the trims are applied when measuring
    if stamp.is_file() and stamp.read_text() == recipe:
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    common = ["download", "--quiet", "--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp",
              "-d", str(directory)]  # fmt: skip
    for plat in AARCH64_PLATFORMS:
        common += ["--platform", plat]
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    tf = f"{tensorflow_dist('aarch64')}=={args['TENSORFLOW_VERSION']}"
    subprocess.run([*pip, *common, tf, *args["REQUIREMENTS"].split()], check=True)
    subprocess.run([*pip, *common, "--no-deps", f"tensorflow-text=={args['TENSORFLOW_TEXT_VERSION']}"], check=True)
    stamp.write_text(recipe)
    return directory


# ---------------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------------


def du_bytes(path: Path) -> int:
    """``du -sb``: apparent size of files and directories, hard links once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            st = os.lstat(os.path.join(root, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total + os.lstat(path).st_size


def bytecode_overhead(site: Path) -> int:
    """What installing adds to the wheels' files: ``*.pyc`` and directory entries."""
    wheel_files = sum(p.stat().st_size for p in site.rglob("*") if p.is_file() and not p.is_symlink() and p.suffix != ".pyc")
    return du_bytes(site) - wheel_files


def _dist_name(wheel: Path) -> str:
    return wheel.name.split("-")[0].lower().replace("_", "-").replace(".", "-")


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def wheels_unpacked(directory: Path, trim_packages: list[str], trim_paths: list[str]) -> int:
    """Bytes the wheels in ``directory`` unpack to, without trimmed distributions and paths."""
    dropped = {_norm(p) for p in trim_packages}
    prefixes = tuple(p.rstrip("/") + "/" for p in trim_paths)
    total = 0
    for wheel in sorted(directory.glob("*.whl")):
        if _dist_name(wheel) in dropped:
            continue
        with zipfile.ZipFile(wheel) as zf:
            total += sum(i.file_size for i in zf.infolist() if not i.is_dir() and not i.filename.startswith(prefixes))
    return total


def base_image_estimate() -> dict[str, int]:
    """python:3.11-slim-bookworm, estimated from this Debian 12 machine (see the module docstring)."""
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Priority} ${Installed-Size}\n"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    debian_kib = 0
    for line in out.splitlines():
        name, priority, size = (line.split() + ["", "", ""])[:3]
        if size.isdigit() and (priority == "required" or name.split(":")[0] in PYTHON_RUNTIME_DEBS):
            debian_kib += int(size)
    prefix = Path(sys.base_prefix)
    python = 0
    for root, dirs, files in os.walk(prefix):
        dirs[:] = [d for d in dirs if d not in ("test", "tests", "idle_test", "site-packages", "__pycache__")]
        for name in files:
            if name.endswith((".pyc", ".pyo")) or (name.startswith("libpython") and name.endswith(".a")):
                continue
            python += os.lstat(os.path.join(root, name)).st_size
    # The official image adds pip, setuptools and wheel to the system site-packages.
    tools = 0
    for venv in (CACHE / "venv-pip-tools",):
        if not (venv / ".image-size-built").is_file():
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "wheel"], check=True)
            (venv / ".image-size-built").touch()
        tools = du_bytes(site_packages(venv))
    return {"debian": debian_kib * 1024, "python": python, "pip_setuptools_wheel": tools}


def measure(model: Path) -> dict[str, object]:
    args = stage_args()
    lean = site_packages(build_venv(CACHE / "venv-lean", args, lean=True))
    full = site_packages(build_venv(CACHE / "venv-full", args, lean=False))
    wheels = download_aarch64(CACHE / "wheels-aarch64", args)
    trims = args["TRIM_PACKAGES"].split(), args["TRIM_PATHS"].split()
    base = base_image_estimate()
    base_total = sum(base.values())
    model_bytes = du_bytes(model)
    function_bytes = du_bytes(REPO / "bert2vec" / "function")
    lean_bytes, full_bytes = du_bytes(lean), du_bytes(full)
    arm_after = wheels_unpacked(wheels, *trims) + bytecode_overhead(lean)
    arm_before = wheels_unpacked(wheels, [], []) + bytecode_overhead(full)
    rows = {
        "x86_64 before (tensorflow, nothing removed)": full_bytes,
        "x86_64 after (tensorflow-cpu, trimmed)": lean_bytes,
        "arm64 before (tensorflow, nothing removed; estimate)": arm_before,
        "arm64 after (tensorflow, trimmed; estimate)": arm_after,
    }
    return {
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "base_image_estimate": base,
        "model_bytes": model_bytes,
        "model": str(model),
        "function_bytes": function_bytes,
        "site_packages": rows,
        "image": {k: base_total + v + model_bytes + function_bytes for k, v in rows.items()},
        "dockerfile": {k: args[k] for k in ("TENSORFLOW_VERSION", "TENSORFLOW_TEXT_VERSION", "TRIM_PACKAGES", "TRIM_PATHS")},
    }


def markdown(res: dict[str, object]) -> str:
    base = res["base_image_estimate"]
    assert isinstance(base, dict)
    site, image = res["site_packages"], res["image"]
    assert isinstance(site, dict) and isinstance(image, dict)
    lines = [
        f"Base image python:3.11-slim-bookworm (estimate): {sum(base.values()) / MB:,.0f} MB "
        f"(Debian {base['debian'] / MB:,.0f} + CPython {base['python'] / MB:,.0f} + pip/setuptools/wheel "
        f"{base['pip_setuptools_wheel'] / MB:,.0f}); model {res['model_bytes'] / MB:,.0f} MB ({res['model']}); "
        f"function/ {res['function_bytes'] / MB:,.1f} MB.",
        "",
        "| environment | site-packages | image (base + packages + model) |",
        "|---|---:|---:|",
    ]
    lines += [f"| {name} | {site[name] / MB:,.0f} MB | {image[name] / 1e9:,.2f} GB |" for name in site]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=REPO / "build" / "model", help="an exported model directory")
    p.add_argument("--json", type=Path, help="also write the figures here")
    a = p.parse_args(argv)
    if not (a.model / "saved_model.pb").is_file():
        p.error(f"{a.model}: not an exported model (make export-default, or bert-export --output DIR)")
    res = measure(a.model)
    print(markdown(res))
    if a.json:
        a.json.write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
