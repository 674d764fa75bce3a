"""Hugging Face text-embeddings-inference (TEI): ``POST /embed`` and ``POST /``, ``GET /info``,
``POST /tokenize``.

``{"inputs": str|[str], "normalize"?: bool, "truncate"?: bool, "truncation_direction"?,
"prompt_name"?, "dimensions"?, "encoding_format"?}`` (TEI's defaults: normalise, do not truncate)
→ ``[[float, ...], ...]``. Our ``long_text`` / ``stride`` extension works here as on ``/encode``
(with ``truncate`` it must agree). Options this server cannot honour are refused (422), never ignored:
there are no prompts, truncation keeps the start of a text (``"right"``), and normalisation is
baked into the exported model.
"""

from __future__ import annotations

from typing import Any

from bert2vec.core.contract import ModelCard
from bert2vec.core.errors import InvalidInputError, UnsupportedOptionError
from bert2vec.http.service import Encoded, EncodeRequest
from bert2vec.http.wire import bool_field, echo, require_object, texts_field, whole_number
from bert2vec.http.wire.native import long_text_choice

TRUNCATION_DIRECTIONS = {"right": "right", "Right": "right", "left": "left", "Left": "left"}


def _inputs(body: dict[str, Any]) -> EncodeRequest:
    if "inputs" not in body:
        raise InvalidInputError("'inputs' is required (a string or a list of strings)", param="inputs")
    prompt = body.get("prompt_name")
    if prompt is not None:
        raise UnsupportedOptionError(
            f"'prompt_name' {echo(prompt)}: this server has no prompts configured; prepend the prompt to each "
            "input yourself",
            param="prompt_name",
        )
    return EncodeRequest(
        texts_field(body["inputs"], "inputs"),
        bool_field(body, "normalize", True),
        "inputs",
        single=isinstance(body["inputs"], str),
        long_text=long_text_choice(body, truncate_default=False),
    )


def parse(body: Any, dimension: int | None = None) -> EncodeRequest:
    body = require_object(body)
    req = _inputs(body)
    direction = body.get("truncation_direction")
    if direction is not None:
        if not isinstance(direction, str) or direction not in TRUNCATION_DIRECTIONS:
            raise InvalidInputError(
                f"'truncation_direction' must be 'right' or 'left', got {echo(direction)}",
                param="truncation_direction",
            )
        if TRUNCATION_DIRECTIONS[direction] == "left":
            raise UnsupportedOptionError(
                "'truncation_direction' 'left' is not available: the exported model truncates inside its graph "
                'and keeps the start of each text ("right"); cut texts yourself to keep their end',
                param="truncation_direction",
            )
    dims = body.get("dimensions")
    if dims is not None and (dimension is None or whole_number(dims) != dimension):
        raise UnsupportedOptionError(
            f"'dimensions' {echo(dims)}: this model's vectors have {dimension} dimensions and cannot be "
            "shortened; omit it",
            param="dimensions",
        )
    fmt = body.get("encoding_format")
    if fmt not in (None, "float"):
        raise UnsupportedOptionError(
            f"'encoding_format' {echo(fmt)}: /embed answers float lists; POST /v1/embeddings offers base64",
            param="encoding_format",
        )
    return req


def render(enc: Encoded) -> list[list[float]]:
    return enc.vectors.tolist()


def parse_tokenize(body: Any) -> tuple[EncodeRequest, bool]:
    """``POST /tokenize``: ``{"inputs", "add_special_tokens"?: bool (default true)}``."""
    body = require_object(body)
    for key in ("long_text", "stride"):
        if body.get(key) is not None:
            raise UnsupportedOptionError(
                f"'{key}' does not apply to /tokenize: it lists the tokens of one window", param=key
            )
    req = _inputs(body)
    return req, bool(bool_field(body, "add_special_tokens", True))


def render_tokenize(
    ids: list[list[int]], vocab: list[str] | None, add_special_tokens: bool
) -> list[list[dict[str, Any]]]:
    """TEI's ``SimpleToken`` lists. ``start``/``stop`` (character offsets) are ``null``: the exported
    tokenizer reports ids only (TEI's schema allows ``null`` there).

    Every packed row is ``[CLS] ... [SEP]``: those two positions are the added special tokens.
    ``add_special_tokens: false`` drops exactly them — a ``[SEP]`` typed in the text is the text's
    own token and stays, as Hugging Face's BertTokenizer keeps it (id 102)."""

    def token(i: int, special: bool) -> dict[str, Any]:
        text = vocab[i] if vocab is not None and 0 <= i < len(vocab) else None
        return {"id": i, "text": text, "special": special, "start": None, "stop": None}

    out = []
    for row in ids:
        inner = [token(i, False) for i in row[1:-1]]
        out.append([token(row[0], True), *inner, token(row[-1], True)] if add_special_tokens else inner)
    return out


def info(card: ModelCard, *, max_texts: int, max_request_tokens: int, max_request_chars: int,
         version: str, runtime: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """``GET /info``: TEI's fields that apply, plus the exported settings a client cannot change.

    ``model_dtype`` is the dense kernels' type as exported; ``bf16_native`` (bf16 exports only) says
    whether this CPU runs it natively — False means emulated, slower than a float32 export."""
    runtime = runtime or {}
    bf16 = (runtime.get("precision") or card.precision) == "bf16"
    return {
        "model_id": card.name,
        "model_sha": card.checksum,
        "model_dtype": "bfloat16" if bf16 else "float32",
        "bf16_native": runtime.get("bf16_native") if bf16 else None,
        "model_type": {"embedding": {"pooling": card.pooling}},
        "dimension": card.vector_length,
        "pooling": card.pooling,
        "normalize": card.normalize,
        "max_input_length": card.max_seq_length,
        "max_concurrent_requests": 1,
        "max_batch_tokens": max_request_tokens,
        "max_batch_requests": None,
        "max_client_batch_size": max_texts,
        "max_request_chars": max_request_chars,
        "auto_truncate": False,
        "tokenization_workers": 1,
        "version": version,
    }
