"""Our own shape: ``POST /encode`` and direct invokes.

``{"text": str}`` or ``{"texts": [str]}`` (+ ``normalize``, ``truncate``) →
``{"vectors", "dimension", "model", "token_counts", "truncated"}``.
"""

from __future__ import annotations

from typing import Any

from function.errors import InvalidInputError
from function.service import Encoded, EncodeRequest
from function.wire import bool_field, require_object, texts_field


def parse(body: Any) -> EncodeRequest:
    body = require_object(body)
    if ("text" in body) == ("texts" in body):
        raise InvalidInputError("give exactly one of 'text' (a string) or 'texts' (a list of strings)")
    field = "text" if "text" in body else "texts"
    if field == "text" and not isinstance(body["text"], str):
        raise InvalidInputError(f"'text' must be a string, got {type(body['text']).__name__}")
    return EncodeRequest(
        texts_field(body[field], field),
        bool_field(body, "normalize", None),
        bool(bool_field(body, "truncate", True)),
        field,
        single=field == "text",
    )


def render(enc: Encoded, model: str) -> dict[str, Any]:
    return {
        "vectors": enc.vectors.tolist(),
        "dimension": int(enc.vectors.shape[1]),
        "model": model,
        "token_counts": enc.result.token_counts.tolist(),
        "truncated": enc.result.truncated.tolist(),
    }
