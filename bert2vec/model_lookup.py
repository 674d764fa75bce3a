"""Which model ``bert-encode`` and ``Bert2Vec()`` use when none is named.

The order (docs/cli.md, docs/python-api.md): ``$MODEL_DIR`` if set (and then only it: a wrong
setting is an error, not a silent fallback); else ``./build/model`` in the current directory (what
``make run`` builds in a clone); else the per-user cache (``$BERT2VEC_CACHE/models/default``, else
platformdirs' user cache dir), where ``bert-export`` without ``--output`` and ``Bert2Vec()`` put
the embedded default. Nothing is looked up inside the installed package.
"""

from __future__ import annotations

import os
from pathlib import Path

from bert2vec.core import contract
from bert2vec.core.settings import env_model_dir
from bert2vec.export import user_cache

BUILD_MODEL = Path("build") / "model"


def is_exported(path: Path) -> bool:
    return (path / "saved_model.pb").is_file() and (path / contract.MODEL_CARD_FILENAME).is_file()


def find_default_model(cache_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """``$MODEL_DIR`` (as given), else the first of ``./build/model`` and the cache that holds an export."""
    model_dir = env_model_dir(os.environ)  # this variable alone: a pip user's other variables are not ours to check
    if model_dir:
        return Path(model_dir)
    for candidate in (BUILD_MODEL, user_cache.default_model_cache(cache_dir)):
        if is_exported(candidate):
            return candidate
    return None


def no_default_model_message(cache_dir: str | os.PathLike[str] | None = None) -> str:
    """Why no default was found and the exact command(s) that make one."""
    cache = user_cache.default_model_cache(cache_dir)
    steps = [s for s in (user_cache.default_model_install_hint(), "bert-export") if s]
    return (
        f"no model given and none found ($MODEL_DIR is not set; no export in ./{BUILD_MODEL} or in {cache}); "
        f"export the embedded default there once with `{' && '.join(steps)}`, or pass --model DIR"
    )
