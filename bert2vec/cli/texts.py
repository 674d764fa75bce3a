"""``bert-encode TEXT...``: one JSON object per text on stdout.

``{"text", "vector", "token_count", "truncated"}`` (+ ``chunks`` with ``--long-text chunk``);
``vector`` holds the shortest decimals that round-trip float32, so ``np.float32(v)`` gives back the
model's exact output. ``--long-text reject`` refuses a text over the model's ``max_seq_length``.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from bert2vec.cli.common import CliError, UsageError
from bert2vec.core.encoder import Encoder
from bert2vec.core.long_text import LongTextPolicy


def _vector_json(vector: np.ndarray) -> list[float]:
    """Shortest decimals that round-trip float32 (numpy formats them), as JSON numbers."""
    return [float(t) for t in np.asarray(vector, dtype=np.float32).astype(str).tolist()]


def encode_texts(texts: list[str], encoder: Encoder, batch_size: int, *, policy: LongTextPolicy | None = None) -> int:
    """``policy``: the resolved ``--long-text`` / ``--stride`` (default: truncate)."""
    policy = policy or LongTextPolicy.resolve(encoder, channel="cli")
    for i, text in enumerate(texts, 1):
        if not text.strip():
            raise UsageError(f"text {i} is empty or only whitespace")
    result = policy.apply(encoder, texts, batch_size=batch_size)
    if result.too_long:  # --long-text reject: refused before anything is printed
        first = result.too_long[0]
        raise CliError(first.message(f"text {first.index + 1}", "cli"))
    chunks = result.chunks
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
