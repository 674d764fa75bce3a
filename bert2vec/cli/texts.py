"""``bert-encode TEXT...``: one JSON object per text on stdout.

``{"text", "vector", "token_count", "truncated"}``; ``vector`` holds the shortest decimals that
round-trip float32, so ``np.float32(v)`` gives back the model's exact output.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from bert2vec.cli.common import UsageError
from function.encoder import Encoder


def _vector_json(vector: np.ndarray) -> list[float]:
    """Shortest decimals that round-trip float32 (numpy formats them), as JSON numbers."""
    return [float(t) for t in np.asarray(vector, dtype=np.float32).astype(str).tolist()]


def encode_texts(texts: list[str], encoder: Encoder, batch_size: int) -> int:
    for i, text in enumerate(texts, 1):
        if not text.strip():
            raise UsageError(f"text {i} is empty or only whitespace")
    result = encoder.encode(texts, batch_size=batch_size)
    out = sys.stdout
    for i, text in enumerate(texts):
        row = {
            "text": text,
            "vector": _vector_json(result.embeddings[i]),
            "token_count": int(result.token_counts[i]),
            "truncated": bool(result.truncated[i]),
        }
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
    out.flush()
    return 0


