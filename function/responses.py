"""Response bodies in the three shapes users already speak: ours, OpenAI's and TEI's (GUIDE.md §7)."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from function.errors import Bert2VecError
from function.service import Encoded


def encode_body(enc: Encoded, model: str) -> dict[str, Any]:
    return {
        "vectors": enc.vectors.tolist(),
        "dimension": int(enc.vectors.shape[1]),
        "model": model,
        "token_counts": enc.result.token_counts.tolist(),
        "truncated": enc.result.truncated.tolist(),
    }


def openai_body(enc: Encoded, model: str, encoding_format: str, max_seq_length: int) -> dict[str, Any]:
    """OpenAI ``/v1/embeddings``; ``base64`` is little-endian float32, as the OpenAI client decodes it."""
    if encoding_format == "base64":
        data = [base64.b64encode(v.astype("<f4").tobytes()).decode("ascii") for v in enc.vectors]
    else:
        data = enc.vectors.tolist()
    tokens = int(np.minimum(enc.result.token_counts, max_seq_length).sum())
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(data)],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def tei_body(enc: Encoded) -> list[list[float]]:
    return enc.vectors.tolist()


def error_body(exc: Bert2VecError | None = None, *, message: str = "", error_type: str = "", **extra: Any) -> dict:
    """``{"error", "error_type"}`` — TEI's error shape, which OpenAI-style clients also display."""
    body = {"error": message or str(exc), "error_type": error_type or (exc.error_type if exc else "error")}
    body.update(extra)
    return body
