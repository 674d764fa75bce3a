"""Hugging Face model ids (``org/name`` or ``org/name@revision``) resolved with ``huggingface_hub``.

Only the files an export reads are fetched (config, vocabulary, tokenizer settings, safetensors
weights, sentence-transformers' module/pooling configs), into the standard hub cache, so the
usual environment applies: ``HF_HOME`` / ``HF_HUB_CACHE`` choose the cache, ``HF_HUB_OFFLINE=1``
uses only what is cached, ``HF_TOKEN`` authenticates. They are read when an id is resolved (not
when ``huggingface_hub`` was imported), so they can be set by the caller at any time.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from bert2vec.export.errors import HubUnavailableError, UnknownModelError

ALLOW_PATTERNS = [
    "config.json",
    "vocab.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "*.safetensors",
    "modules.json",
    "sentence_bert_config.json",
    "*Pooling/config.json",
]

_ID_RE = re.compile(r"(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?:@(?P<revision>[\w.\-/]+))?")


def parse_model_id(source: str) -> tuple[str, str | None] | None:
    """``(repo_id, revision)`` if ``source`` is spelled like a Hugging Face model id, else None."""
    m = _ID_RE.fullmatch(source)
    if m is None or ".." in source:
        return None
    return m.group("repo"), m.group("revision")


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def cache_dir() -> str | None:
    """The hub cache the environment asks for right now (None: huggingface_hub's default)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return None


def _one_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def resolve(repo_id: str, revision: str | None) -> tuple[Path, str]:
    """Local snapshot directory of ``repo_id`` at ``revision`` (default branch if None), and its commit."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:
        raise UnknownModelError(
            f"{repo_id}: not a local directory; resolving Hugging Face model ids needs the package "
            "huggingface_hub (pip install huggingface_hub)"
        ) from exc
    offline = _truthy(os.environ.get("HF_HUB_OFFLINE"))
    where = f"{repo_id}@{revision}" if revision else repo_id
    try:
        folder = snapshot_download(
            repo_id,
            revision=revision,
            cache_dir=cache_dir(),
            local_files_only=offline,
            allow_patterns=ALLOW_PATTERNS,
        )
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - the hub raises many types for "not available"
        cache = cache_dir() or "the default Hugging Face cache"
        mode = f"HF_HUB_OFFLINE is set and it is not in {cache}" if offline else f"cache: {cache}"
        raise HubUnavailableError(
            f"{where}: not a local directory, catalogue name or handle, and the Hugging Face Hub cannot "
            f"provide it ({mode}): {type(exc).__name__}: {_one_line(exc)}"
        ) from exc
    path = Path(folder)
    return path, path.name
