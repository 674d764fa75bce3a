"""OpenAI's ``POST /v1/embeddings``.

``{"input": str|[str], "model", "encoding_format": "float"|"base64"}`` →
``{"object": "list", "data": [{"object": "embedding", "index", "embedding"}], "model", "usage"}``;
``base64`` is little-endian float32, as the OpenAI client decodes it.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from function.errors import InvalidInputError
from function.service import Encoded, EncodeRequest
from function.wire import require_object, texts_field

ENCODING_FORMATS = ("float", "base64")


def parse(body: Any) -> tuple[EncodeRequest, str]:
    """The request and its ``encoding_format``."""
    body = require_object(body)
    if "input" not in body:
        raise InvalidInputError("'input' is required (a string or a list of strings)")
    fmt = body.get("encoding_format", "float")
    if fmt not in ENCODING_FORMATS:
        raise InvalidInputError(f"'encoding_format' must be 'float' or 'base64', got {fmt!r}")
    req = EncodeRequest(texts_field(body["input"], "input"), None, True, "input", single=isinstance(body["input"], str))
    return req, fmt


def render(enc: Encoded, model: str, encoding_format: str, max_seq_length: int) -> dict[str, Any]:
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
