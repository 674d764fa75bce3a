"""Hugging Face text-embeddings-inference's ``POST /embed``.

``{"inputs": str|[str], "normalize"?: bool, "truncate"?: bool}`` (TEI's defaults: normalise, do
not truncate) → ``[[float, ...], ...]``.
"""

from __future__ import annotations

from typing import Any

from function.errors import InvalidInputError
from function.service import Encoded, EncodeRequest
from function.wire import bool_field, require_object, texts_field


def parse(body: Any) -> EncodeRequest:
    body = require_object(body)
    if "inputs" not in body:
        raise InvalidInputError("'inputs' is required (a string or a list of strings)")
    return EncodeRequest(
        texts_field(body["inputs"], "inputs"),
        bool_field(body, "normalize", True),
        bool(bool_field(body, "truncate", False)),
        "inputs",
        single=isinstance(body["inputs"], str),
    )


def render(enc: Encoded) -> list[list[float]]:
    return enc.vectors.tolist()
