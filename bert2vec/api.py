"""``Bert2Vec``: the vectorhub-style facade over :class:`bert2vec.core.encoder.Encoder`.

It lives beside, not inside, the Lambda function's code because it may run the export step, which
the image never ships.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bert2vec.core import contract
from bert2vec.core import long_text as long_texts
from bert2vec.core.bootstrap import load_model
from bert2vec.core.encoder import DEFAULT_BATCH_SIZE, Encoder
from bert2vec.core.errors import ModelNotFoundError
from bert2vec.export import user_cache
from bert2vec.model_lookup import find_default_model


def resolve_model(model: str | os.PathLike[str] | None, cache_dir: str | None = None) -> Path:
    """An exported model directory for ``model``, exporting it once into the cache if needed.

    ``None`` is the embedded default, found in the order of :mod:`bert2vec.model_lookup`
    (``$MODEL_DIR``, ``./build/model``, the per-user cache), else exported into the cache once.
    A directory holding a model card is used as it is; anything else is handed to ``bert-export``.
    """
    if model is None:
        found = find_default_model(cache_dir)
        if found is not None:
            return found
    if model is not None and (Path(model) / contract.MODEL_CARD_FILENAME).is_file():
        return Path(model)
    if model is None:
        target = user_cache.default_model_cache(cache_dir)
        hint = user_cache.default_model_install_hint()
        if hint:
            raise ModelNotFoundError(
                f"Bert2Vec() exports the embedded default (all-MiniLM-L6-v2) once into {target}, which needs the "
                f"export tooling and the model's weights: {hint}"
            )
    else:
        key = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(model))
        target = user_cache.cache_root(cache_dir) / "models" / key
    if not (target / contract.MODEL_CARD_FILENAME).is_file():
        missing = user_cache.missing_modules(user_cache.EXPORT_EXTRA_MODULES)
        if missing:
            raise ModelNotFoundError(
                f"{str(model)!r} is not an exported model directory, and exporting it needs the 'export' extra "
                f"(missing {', '.join(missing)}): {user_cache.INSTALL_EXPORT_EXTRA}"
            )
        from bert2vec.export.builder import ExportOptions, export_model
        from bert2vec.export.errors import ExportError

        if target.is_dir() and not any(target.iterdir()):
            target.rmdir()  # an empty leftover; anything else is refused by the exporter, never deleted
        try:
            export_model(target, ExportOptions(source=None if model is None else str(model), force=target.exists()))
        except ExportError as exc:  # one error family for callers: the model could not be had
            raise ModelNotFoundError(f"cannot export {'the embedded default' if model is None else repr(str(model))}: "
                                     f"{' '.join(str(exc).split())}") from exc  # fmt: skip
    return target


class Bert2Vec:
    """vectorhub-style facade: ``Bert2Vec().encode(text)`` → ``list[float]``.

    ``model`` may be an exported model directory, or anything ``bert-export --model`` accepts
    (catalogue name, TF Hub handle, HF checkpoint), which is then exported once into
    ``cache_dir`` (default ``$BERT2VEC_CACHE``, else the user cache dir) and reused. ``None`` (the
    default) finds or exports the embedded all-MiniLM-L6-v2 (:mod:`bert2vec.model_lookup`).
    """

    def __init__(self, model: str | os.PathLike[str] | None = None, *, cache_dir: str | None = None) -> None:
        self.encoder: Encoder = load_model(resolve_model(model, cache_dir), warm_up=())

    @property
    def vector_length(self) -> int:
        return self.encoder.vector_length

    def encode(self, text: str, *, long_text: str = "truncate", stride: int | None = None) -> list[float]:
        """One text's vector. ``long_text``: what happens past the model's ``max_seq_length``
        wordpieces — ``"truncate"`` (read the start), ``"reject"`` (raise
        ``TextTooLongForModelError``) or ``"chunk"`` (read it all as windows overlapping by
        ``stride`` wordpieces and average them; see docs/python-api.md)."""
        return self.bulk_encode([text], long_text=long_text, stride=stride)[0]

    def bulk_encode(
        self,
        texts: Sequence[str],
        batch_size: int = DEFAULT_BATCH_SIZE,
        *,
        long_text: str = "truncate",
        stride: int | None = None,
    ) -> list[list[float]]:
        result = long_texts.encode(self.encoder, list(texts), long_text=long_text, stride=stride, batch_size=batch_size)
        return result.embeddings.tolist()

    def encode_chunks(self, text: str, *, stride: int | None = None) -> list[dict[str, Any]]:
        """One entry per window of ``text`` (for retrieval): ``{"chunk", "start", "end", "vector"}``,
        where ``text[start:end]`` is the window's span (whole words, character offsets)."""
        policy = long_texts.LongTextPolicy.resolve(self.encoder, "chunk", stride, channel="python")
        got = long_texts.LongTextEncoder(self.encoder).encode_chunks([text], stride=policy.stride)
        return [
            {"chunk": k, "start": int(got.start[k]), "end": int(got.end[k]), "vector": got.embeddings[k].tolist()}
            for k in range(len(got.text_index))
        ]
