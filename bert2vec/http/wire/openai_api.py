"""OpenAI's ``POST /v1/embeddings``.

``{"input": str|[str], "model", "encoding_format": "float"|"base64"|null, "dimensions"?, "user"?}``
→ ``{"object": "list", "data": [{"object": "embedding", "index", "embedding"}], "model", "usage"}``;
``base64`` is little-endian float32, as the OpenAI client decodes it. Errors are OpenAI's object,
``{"error": {"message", "type", "param", "code"}}``: the OpenAI clients show ``error.message``
only when ``error`` is an object.

Over-long input is an error, as on OpenAI's own API (which refuses input over the model's context
length), unless the body carries our extension ``"long_text": "truncate" | "chunk"`` (the openai
client sends it with ``extra_body={"long_text": "chunk"}``; ``stride`` may go with ``chunk``).
"""

from __future__ import annotations

import base64
import contextlib
from typing import Any

import numpy as np

from bert2vec.core.contract import ModelCard
from bert2vec.core.errors import Bert2VecError, InvalidInputError, UnsupportedOptionError
from bert2vec.http.service import Encoded, EncodeRequest
from bert2vec.http.wire import echo, error_message, require_object, texts_field, whole_number
from bert2vec.http.wire.native import long_text_choice

ENCODING_FORMATS = ("float", "base64")

TOKEN_ARRAYS = (
    "'input' holds token ids (a list of integers or of lists of integers); this server takes text only, "
    "tokenized by the model's own tokenizer. LangChain's OpenAIEmbeddings sends tiktoken ids unless you "
    "set check_embedding_ctx_length=False: OpenAIEmbeddings(..., check_embedding_ctx_length=False)"
)


def _is_token_array(value: Any) -> bool:
    def ints(x: Any) -> bool:
        return isinstance(x, list) and bool(x) and all(isinstance(i, int) for i in x)

    return ints(value) or (isinstance(value, list) and bool(value) and all(ints(x) for x in value))


def parse(body: Any, dimension: int | None = None) -> tuple[EncodeRequest, str]:
    """The request and its ``encoding_format``; ``dimension``: the model's, which ``dimensions`` must equal."""
    body = require_object(body)
    if "input" not in body:
        raise InvalidInputError("'input' is required (a string or a list of strings)", param="input")
    fmt = body.get("encoding_format")
    if fmt is None:
        fmt = "float"
    if fmt not in ENCODING_FORMATS:
        raise InvalidInputError(
            f"'encoding_format' must be 'float' or 'base64', got {echo(fmt)}", param="encoding_format"
        )
    dims = body.get("dimensions")
    if dims is not None:
        if whole_number(dims) is None:
            raise InvalidInputError(f"'dimensions' must be an integer, got {echo(dims)}", param="dimensions")
        dims = whole_number(dims)
        if dimension is not None and dims != dimension:
            raise UnsupportedOptionError(
                f"'dimensions' is {echo(dims)}, but this model's vectors have {dimension} dimensions and cannot be "
                f"shortened; omit it or send {dimension}",
                param="dimensions",
            )
    if _is_token_array(body["input"]):
        raise InvalidInputError(TOKEN_ARRAYS, param="input")
    long_text = long_text_choice(body, truncate_default=False, read_truncate=False)  # OpenAI refuses over-long input
    req = EncodeRequest(texts_field(body["input"], "input"), None, "input", single=isinstance(body["input"], str),
                        long_text=long_text)  # fmt: skip
    return req, fmt


def render(enc: Encoded, model: str, encoding_format: str, max_seq_length: int) -> dict[str, Any]:
    if encoding_format == "base64":
        data = [base64.b64encode(v.astype("<f4").tobytes()).decode("ascii") for v in enc.vectors]
    else:
        data = enc.vectors.tolist()
    counts = enc.result.token_counts
    if enc.chunks is not None:  # every window as encoded: its wordpieces (overlaps included) + [CLS]/[SEP]
        stride = int(enc.stride or 0)
        tokens = int((counts - 2 + (enc.chunks - 1) * stride + 2 * enc.chunks).sum())
    else:
        tokens = int(np.minimum(counts, max_seq_length).sum())
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(data)],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def error_body(exc: Bert2VecError | None, status: int, *, message: str = "", error_type: str = "") -> dict[str, Any]:
    """OpenAI's error object; ``code`` carries our ``error_type``, ``type`` OpenAI's class of error."""
    return {
        "error": {
            "message": error_message(exc, message),
            "type": "invalid_request_error" if status < 500 else "server_error",
            "param": getattr(exc, "param", None),
            "code": error_type or (exc.error_type if exc else "error"),
        }
    }


def models(name: str, card: ModelCard) -> dict[str, Any]:
    """``GET /v1/models``: ``created`` is the export time (Unix seconds) when the card has it."""
    created = 0
    exported = card.exported_at
    if isinstance(exported, str):
        from datetime import datetime

        with contextlib.suppress(ValueError):
            created = int(datetime.fromisoformat(exported.replace("Z", "+00:00")).timestamp())
    return {"object": "list", "data": [{"id": name, "object": "model", "created": created, "owned_by": "bert2vec"}]}
