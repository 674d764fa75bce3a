"""``bert-encode TEXT...``: one JSON object per text on stdout.

``{"text", "vector", "token_count", "truncated"}`` (+ ``chunks`` with ``--overlong chunk``);
``vector`` holds the shortest decimals that round-trip float32, so ``np.float32(v)`` gives back the
model's exact output. ``--overlong reject`` refuses a text over the model's ``max_seq_length``.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from bert2vec.cli.common import CliError, UsageError
from bert2vec.function import long_text
from bert2vec.function.encoder import Encoder
from bert2vec.function.errors import TextTooLongForModelError


def _vector_json(vector: np.ndarray) -> list[float]:
    """Shortest decimals that round-trip float32 (numpy formats them), as JSON numbers."""
    return [float(t) for t in np.asarray(vector, dtype=np.float32).astype(str).tolist()]


def encode_texts(
    texts: list[str], encoder: Encoder, batch_size: int, *, overlong: str = "truncate", stride: int | None = None
) -> int:
    for i, text in enumerate(texts, 1):
        if not text.strip():
            raise UsageError(f"text {i} is empty or only whitespace")
    try:
        result = long_text.encode(encoder, texts, long_text=overlong, stride=stride, batch_size=batch_size)
    except TextTooLongForModelError as exc:  # --overlong reject
        raise CliError(f"{exc}".replace("long_text='truncate'", "--overlong truncate").replace("'chunk'", "chunk")) from exc
    chunks = getattr(result, "chunks", None)
    out = sys.stdout
    for i, text in enumerate(texts):
        row = {
            "text": text,
            "vector": _vector_json(result.embeddings[i]),
            "token_count": int(result.token_counts[i]),
            "truncated": bool(result.truncated[i]),
        }
        if chunks is not None:
            row["chunks"] = int(chunks[i])
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
    out.flush()
    return 0


