"""Shared fixtures: exported models built once per input, cached across sessions by content hash.

An export's cache key covers everything that can change its bytes: the options, the contents of
the source directory, and the code in ``export/`` and ``function/contract.py``. Editing the
exporter therefore invalidates the cache; nothing stale is ever tested.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
EVENTS = REPO / "events"
GOLDEN = REPO / "tests" / "golden"
CACHE_ROOT = Path(os.environ.get("BERT2VEC_FIXTURE_CACHE", REPO / ".cache" / "fixtures"))


def load_event(name: str) -> dict[str, Any]:
    """An event file from ``events/`` — the same files ``sam local invoke -e`` takes."""
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


def _hash_tree(digest: Any, root: Path, pattern: str = "*") -> None:
    for path in sorted(p for p in root.rglob(pattern) if p.is_file() and "__pycache__" not in p.parts):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())


def _export_code_digest() -> str:
    digest = hashlib.sha256()
    _hash_tree(digest, REPO / "export", "*.py")
    digest.update((REPO / "function" / "contract.py").read_bytes())
    return digest.hexdigest()


def cached_export(source: str | Path | None, **options: Any) -> Path:
    """Export ``source`` with ``options`` once; later calls (and sessions) reuse the directory."""
    from export.builder import ExportOptions, export_model

    digest = hashlib.sha256(_export_code_digest().encode())
    digest.update(json.dumps({"source": str(source), **options}, sort_keys=True, default=str).encode())
    if source is not None and Path(source).is_dir():
        _hash_tree(digest, Path(source))
    target = CACHE_ROOT / "exports" / digest.hexdigest()[:24]
    if not (target / "model_card.json").is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent)) / "model"
        export_model(staging, ExportOptions(source=None if source is None else str(source), **options))
        shutil.rmtree(target, ignore_errors=True)
        os.rename(staging, target)
        shutil.rmtree(staging.parent, ignore_errors=True)
    return target


@pytest.fixture(scope="session")
def default_model_dir() -> Path:
    """The embedded default (all-MiniLM-L6-v2) exported with its defaults."""
    return cached_export(None)


@pytest.fixture(scope="session")
def default_encoder(default_model_dir: Path):
    from function.encoder import Encoder

    return Encoder.load(default_model_dir)


@pytest.fixture(scope="session")
def golden() -> dict[str, Any]:
    """sentence-transformers' vectors for real text, made by tests/golden/make_minilm_golden.py."""
    import numpy as np

    meta = json.loads((GOLDEN / "minilm_golden.json").read_text(encoding="utf-8"))
    meta["vectors"] = np.load(GOLDEN / "minilm_golden.npz")["vectors"]
    return meta


@pytest.fixture
def lambda_context():
    """The same LambdaContext stand-in ``bert-encode --event`` uses."""
    from bert2vec.local_invoke import LocalContext

    return LocalContext("bert2vec-encode")


@pytest.fixture(scope="session")
def app_module(default_model_dir: Path):
    """``function.app`` imported the way Lambda imports it: init loads ``MODEL_DIR`` once."""
    os.environ["MODEL_DIR"] = str(default_model_dir)
    import function.app as app

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
