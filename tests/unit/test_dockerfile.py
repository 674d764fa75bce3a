"""The function image's recipe, checked on the Dockerfile's text (fast: nothing is built or imported).

- The ``deps`` stage installs a hashed lock (``function/requirements-<arch>.txt``, resolved from
  ``function/requirements.in`` by scripts/lock-image-deps.sh) with ``--require-hashes --no-deps``;
  requirements.in has the same pins as pyproject.toml, and each lock satisfies it.
- x86_64 gets ``tensorflow-cpu``, arm64 ``tensorflow``; ``tensorflow-text`` is locked without its
  dependencies and the build checks that both agree on major.minor.
- The serving stage has no pip, no pip.conf, no build host CA and no build arg.
- The trim list (one ARG) removes only packages serving never imports; the ones it must keep are
  named here with the reason, found by removing each in a venv built like the image.
- Custom models: the export stage copies ``models/``, and ``.dockerignore`` lets it through.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "function" / "Dockerfile"

# Kept in the image, with why: removing any of them breaks `import tensorflow`, `import
# tensorflow_text`, loading the SavedModel or a handler (checked one by one in a venv built like the image).
MUST_KEEP = {
    "keras": "import tensorflow_text defines a tf.keras layer",
    "rich": "imported by keras",
    "optree": "imported by keras",
    "ml-dtypes": "imported by tensorflow",
    "absl-py": "imported by tensorflow",
    "wrapt": "imported by tensorflow",
    "gast": "imported by tensorflow (autograph)",
    "astunparse": "imported by tensorflow (autograph)",
    "opt-einsum": "imported by tensorflow",
    "termcolor": "imported by tensorflow",
    "flatbuffers": "imported by tensorflow",
    "six": "imported by tensorflow",
    "packaging": "imported by tensorflow",
    "typing-extensions": "imported by tensorflow",
    "protobuf": "SavedModel protos",
    "numpy": "everything",
    "requests": "imported by tensorflow",
    "idna": "imported by requests",
    "charset-normalizer": "a declared requirement of requests",
    "urllib3": "botocore",
    "certifi": "TLS roots for botocore and requests",
    "tensorflow": "serving",
    "tensorflow-cpu": "serving",
    "tensorflow-text": "serving (the tokenizer ops)",
}


# Core dependencies of the pip package that serving never imports, with why they are core.
PIP_USER_ONLY = {
    "platformdirs": "the per-user model cache of Bert2Vec()/bert-export/bert-encode; the image sets MODEL_DIR",
}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _req_name(req: str) -> str:
    return _norm(re.split(r"[\s<>=!~;\[]", req, maxsplit=1)[0])


def _instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    out = []
    for line in (raw.strip() for raw in text.splitlines()):
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _stages() -> dict[str, list[tuple[str, str]]]:
    stages: dict[str, list[tuple[str, str]]] = {}
    current = None
    for ins, rest in _instructions():
        if ins == "FROM":
            words = rest.split()
            current = words[2] if len(words) >= 3 and words[1].upper() == "AS" else f"stage{len(stages)}"
            stages[current] = []
        elif current is not None:
            stages[current].append((ins, rest))
    return stages


def _args(stage: str) -> dict[str, str]:
    args: dict[str, str] = {}
    for ins, rest in _stages()[stage]:
        if ins == "ARG":
            for word in shlex.split(rest):
                name, _, value = word.partition("=")
                args[name] = value
    return args


def _runs(stage: str) -> str:
    return "\n".join(rest for ins, rest in _stages()[stage] if ins == "RUN")


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def test_stages_are_exporter_deps_runtime() -> None:
    assert list(_stages()) == ["exporter", "deps", "runtime"]


REQUIREMENTS_IN = REPO / "function" / "requirements.in"
LOCKS = {arch: REPO / "function" / f"requirements-{arch}.txt" for arch in ("x86_64", "aarch64")}


def _requirements_in() -> list[str]:
    lines = REQUIREMENTS_IN.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _lock(arch: str) -> dict[str, tuple[str, list[str]]]:
    """{name: (version, [sha256, ...])} of a lock file."""
    text = LOCKS[arch].read_text(encoding="utf-8").replace("\\\n", " ")
    out: dict[str, tuple[str, list[str]]] = {}
    for line in text.splitlines():
        if line and not line.startswith((" ", "#")):
            spec, *rest = line.split()
            name, _, version = spec.partition("==")
            out[_norm(name)] = (version, [w.split(":", 1)[1] for w in rest if w.startswith("--hash=sha256:")])
    return out


def test_requirements_in_equals_pyproject() -> None:
    project = _pyproject()["project"]
    core = [r for r in project["dependencies"] if _req_name(r) not in PIP_USER_ONLY]
    assert sorted(_requirements_in()) == sorted([*core, *project["optional-dependencies"]["function"]])


def test_locks_pin_every_package_with_hashes_and_satisfy_requirements_in() -> None:
    from packaging.requirements import Requirement

    for arch in LOCKS:
        lock = _lock(arch)
        assert len(lock) > 20, arch
        for name, (version, hashes) in lock.items():
            assert version and hashes and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), (arch, name)
        for line in _requirements_in():
            req = Requirement(line)
            name = _norm(req.name)
            if name == "tensorflow" and arch == "x86_64":
                name = "tensorflow-cpu"  # the same version and vectors, half the size
            assert name in lock, (arch, name)
            assert req.specifier.contains(lock[name][0], prereleases=True), (arch, line, lock[name][0])
    assert "tensorflow" not in _lock("x86_64") and "tensorflow-cpu" not in _lock("aarch64")
    # the two locks differ only in the TensorFlow wheel
    x86, arm = _lock("x86_64"), _lock("aarch64")
    assert {k: v[0] for k, v in x86.items() if k != "tensorflow-cpu"} == {k: v[0] for k, v in arm.items() if k != "tensorflow"}


def test_deps_stage_installs_the_hashed_lock_of_its_architecture_without_resolving() -> None:
    deps = _stages()["deps"]
    assert ("COPY", "function/requirements-x86_64.txt function/requirements-aarch64.txt /tmp/lock/") in deps
    run = _runs("deps")
    assert "--require-hashes --no-deps --only-binary :all:" in run
    assert '-r "/tmp/lock/requirements-$(uname -m).txt"' in run
    installs = [line for line in run.replace("\\", "").split(";") if " install " in line]
    assert len(installs) == 1, installs  # nothing else is installed in the venv the image ships
    # The build fails if tensorflow and tensorflow_text disagree on major.minor.
    assert "import tensorflow as tf, tensorflow_text as text" in run
    assert "mm(tf.__version__) == mm(text.__version__)" in run


def test_trim_list_is_applied_and_spares_what_serving_imports() -> None:
    args = _args("deps")
    trimmed = {_norm(p) for p in args["TRIM_PACKAGES"].split()}
    assert trimmed, "TRIM_PACKAGES is empty"
    assert not trimmed & set(MUST_KEEP), trimmed & set(MUST_KEEP)
    direct = {_req_name(r) for r in _requirements_in()}
    assert not trimmed & direct, "a direct requirement of the image is trimmed"
    assert trimmed <= set(_lock("x86_64")), trimmed - set(_lock("x86_64"))
    run = _runs("deps")
    assert "uninstall -y $TRIM_PACKAGES" in run
    assert '$TRIM_PATHS; do rm -rf "${site:?}/$path"' in run
    assert all(p.count("/") >= 1 and ".." not in p for p in args["TRIM_PATHS"].split())
    # pip never enters the venv the image ships; setuptools and wheel arrive as dependencies and go.
    assert "python -m venv --without-pip /opt/venv" in run
    assert {"setuptools", "wheel"} <= trimmed


def test_runtime_stage_ships_the_venv_and_no_installer() -> None:
    runtime = _stages()["runtime"]
    assert ("COPY", "--from=deps /opt/venv /opt/venv") in runtime
    runs = "\n".join(rest for ins, rest in runtime if ins == "RUN")
    assert " install" not in runs  # nothing is installed here
    # the base image's pip, ensurepip's bundled wheels and every pip.conf / the build host's CA go
    for gone in ("for mod in pip ensurepip", "/usr/local/bin/pip*", "/usr/bin/pip*", "/usr/share/python-wheels",
                 "/etc/pip.conf", "/etc/ssl/build-host-ca.crt", "/etc/xdg/pip", "/root/.config/pip"):  # fmt: skip
        assert gone in runs, gone
    assert not any(ins == "ARG" for ins, _ in runtime), "no build arg (an index URL, a token) reaches the serving stage"
    env = "\n".join(rest for ins, rest in runtime if ins == "ENV")
    assert "PIP_" not in env
    assert re.search(r"(^|\s)PATH=/opt/venv/bin:", env), "python must be the venv's"
    assert ("ENTRYPOINT", '["python", "-m", "awslambdaric"]') in runtime
    assert ("CMD", '["function.app.handler"]') in runtime


def test_an_index_url_reaches_only_the_build_stages() -> None:
    for stage in ("exporter", "deps"):
        assert "PIP_INDEX_URL" in _args(stage), stage
    assert "index-url" not in DOCKERFILE.read_text(encoding="utf-8")
    base = (REPO / "scripts" / "base-image.sh").read_text(encoding="utf-8")
    assert "index-url" not in base and "PIP_INDEX_URL\"" not in base


def test_every_stage_quiets_tensorflow() -> None:
    for name, instructions in _stages().items():
        env = " ".join(rest for ins, rest in instructions if ins == "ENV")
        assert "TF_CPP_MIN_LOG_LEVEL=3" in env.split(), name


def test_custom_models_reach_the_export_stage() -> None:
    exporter = _stages()["exporter"]
    assert ("COPY", "models/ models/") in exporter
    assert (REPO / "models" / "README.md").is_file()
    export_run = next(rest for ins, rest in exporter if ins == "RUN" and "bert-export" in rest)
    assert '${BERT_MODEL:+--model "$BERT_MODEL"}' in export_run
    assert {"BERT_MODEL", "EXPORT_ARGS"} <= set(_args("exporter"))


def test_dockerignore_keeps_models_and_drops_local_state() -> None:
    patterns = [
        line.strip() for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]  # fmt: skip
    for needed in (".venv", ".cache", "build", "tests", "bench"):
        assert needed in patterns, needed
    for path in ("models", "models/README.md", "models/my-bert/config.json"):
        assert not [p for p in patterns if fnmatch.fnmatch(path, p.strip("/"))], (path, patterns)
