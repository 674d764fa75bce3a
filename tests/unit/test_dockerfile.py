"""The function image's recipe, checked on the Dockerfile's text (fast: nothing is built or imported).

- The ``deps`` stage pins the same versions as pyproject.toml: the Dockerfile lists them because
  ``pip install ".[function]"`` would pull the full ``tensorflow`` wheel back in.
- x86_64 gets ``tensorflow-cpu``, arm64 ``tensorflow``; ``tensorflow-text`` goes in with --no-deps and
  the build checks that both agree on major.minor.
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


def test_pins_equal_pyproject() -> None:
    project = _pyproject()["project"]
    core = {_req_name(r): r for r in project["dependencies"] if _req_name(r) not in PIP_USER_ONLY}
    args = _args("deps")
    assert core.pop("tensorflow") == f"tensorflow=={args['TENSORFLOW_VERSION']}"
    assert core.pop("tensorflow-text") == f"tensorflow-text=={args['TENSORFLOW_TEXT_VERSION']}"
    wanted = sorted([*core.values(), *project["optional-dependencies"]["function"]])
    assert sorted(args["REQUIREMENTS"].split()) == wanted


def test_tensorflow_cpu_on_x86_64_tensorflow_elsewhere_text_without_deps() -> None:
    run = _runs("deps")
    assert re.search(r'x86_64\)\s*tf=tensorflow-cpu\s*;;\s*\*\)\s*tf=tensorflow\s*;;', run), run
    assert 'install "$tf==$TENSORFLOW_VERSION" $REQUIREMENTS' in run
    assert 'install --no-deps "tensorflow-text==$TENSORFLOW_TEXT_VERSION"' in run
    # The build fails if tensorflow and tensorflow_text disagree on major.minor.
    assert "import tensorflow as tf, tensorflow_text as text" in run
    assert "mm(tf.__version__) == mm(text.__version__)" in run


def test_trim_list_is_applied_and_spares_what_serving_imports() -> None:
    args = _args("deps")
    trimmed = {_norm(p) for p in args["TRIM_PACKAGES"].split()}
    assert trimmed, "TRIM_PACKAGES is empty"
    assert not trimmed & set(MUST_KEEP), trimmed & set(MUST_KEEP)
    direct = {_req_name(r) for r in args["REQUIREMENTS"].split()}
    assert not trimmed & direct, "a direct requirement of the image is trimmed"
    run = _runs("deps")
    assert "uninstall -y $TRIM_PACKAGES" in run
    assert '$TRIM_PATHS; do rm -rf "${site:?}/$path"' in run
    assert all(p.count("/") >= 1 and ".." not in p for p in args["TRIM_PATHS"].split())
    # pip never enters the venv the image ships; setuptools and wheel arrive as dependencies and go.
    assert "python -m venv --without-pip /opt/venv" in run
    assert {"setuptools", "wheel"} <= trimmed


def test_runtime_stage_ships_the_venv_and_runs_no_pip() -> None:
    runtime = _stages()["runtime"]
    assert ("COPY", "--from=deps /opt/venv /opt/venv") in runtime
    assert "pip" not in "\n".join(rest for ins, rest in runtime if ins == "RUN")
    env = "\n".join(rest for ins, rest in runtime if ins == "ENV")
    assert re.search(r"(^|\s)PATH=/opt/venv/bin:", env), "python must be the venv's"
    assert ("ENTRYPOINT", '["python", "-m", "awslambdaric"]') in runtime
    assert ("CMD", '["function.app.handler"]') in runtime


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
