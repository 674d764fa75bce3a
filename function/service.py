"""Encode requests, validated and limited — the part of serving that knows nothing about AWS.

Every wire format (``function.wire``: ``/encode`` and direct invokes, OpenAI ``/v1/embeddings``,
TEI ``/embed``) is parsed into an ``EncodeRequest`` and served here, so limits and error wording
are identical everywhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from function import defaults
from function.encoder import Encoder, EncodeResult
from function.errors import (
    EmptyInputError,
    PayloadTooLargeError,
    TextTooLargeError,
    TextTooLongForModelError,
    TooManyTextsError,
    UnsupportedOptionError,
)

LAMBDA_SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Request limits, from the environment (see the README's configuration table)."""

    max_texts: int = defaults.MAX_TEXTS
    max_text_chars: int = defaults.MAX_TEXT_CHARS

    @classmethod
    def from_env(cls) -> Limits:
        return cls(
            max_texts=int(os.environ.get("MAX_TEXTS", cls.max_texts)),
            max_text_chars=int(os.environ.get("MAX_TEXT_CHARS", cls.max_text_chars)),
        )


@dataclass(frozen=True)
class EncodeRequest:
    texts: list[str]
    normalize: bool | None = None  # None: the model's own setting
    truncate: bool = True
    field: str = "texts"  # the request field named in error messages
    single: bool = False  # the field held one string rather than a list

    def name(self, i: int) -> str:
        """How error messages point at text ``i``: ``'text'`` or ``'texts[3]'``."""
        return f"'{self.field}'" if self.single else f"'{self.field}[{i}]'"


@dataclass
class Encoded:
    request: EncodeRequest
    result: EncodeResult
    vectors: np.ndarray  # after any request-level normalisation


class EncodeService:
    """Checks a request against the limits and the model, then encodes it."""

    def __init__(self, encoder: Encoder, limits: Limits | None = None) -> None:
        self.encoder = encoder
        self.limits = limits or Limits.from_env()

    def validate(self, req: EncodeRequest) -> list[str]:
        """Return the texts to encode (over-long ones cut to ``max_text_chars`` when allowed)."""
        if not req.texts:
            raise EmptyInputError(f"'{req.field}' is empty; send at least one text")
        if len(req.texts) > self.limits.max_texts:
            raise TooManyTextsError(
                f"'{req.field}' has {len(req.texts)} texts; at most {self.limits.max_texts} per request "
                "(MAX_TEXTS). For bulk work upload a file to the S3 input prefix."
            )
        texts = []
        for i, t in enumerate(req.texts):
            if not t.strip():
                raise EmptyInputError(f"{req.name(i)} is empty or only whitespace")
            if len(t) > self.limits.max_text_chars:
                if not req.truncate:
                    raise TextTooLargeError(
                        f"{req.name(i)} has {len(t)} characters; at most {self.limits.max_text_chars} "
                        "(MAX_TEXT_CHARS) unless \"truncate\": true"
                    )
                t = t[: self.limits.max_text_chars]
            texts.append(t)
        model_normalized = bool(self.encoder.card.get("normalize"))
        if req.normalize is False and model_normalized:
            raise UnsupportedOptionError(
                f"\"normalize\": false is not available: model {self.encoder.name} was exported with "
                "--normalize; export it with --no-normalize to get raw vectors"
            )
        return texts

    def encode(self, req: EncodeRequest) -> Encoded:
        texts = self.validate(req)
        result = self.encoder.encode(texts)
        if not req.truncate and result.truncated.any():
            i = int(np.argmax(result.truncated))
            raise TextTooLongForModelError(
                f"{req.name(i)} has {int(result.token_counts[i])} tokens; model {self.encoder.name} takes "
                f"at most {self.encoder.max_seq_length} (send \"truncate\": true to cut it, keeping [SEP])"
            )
        truncated = result.truncated | np.array([len(t) > len(c) for t, c in zip(req.texts, texts, strict=True)])
        result = EncodeResult(result.embeddings, result.token_counts, truncated)
        vectors = result.embeddings
        if req.normalize and not self.encoder.card.get("normalize"):
            vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return Encoded(req, result, vectors)


def check_payload_size(body: str) -> str:
    """Refuse a response Lambda could not return synchronously (6 MB), pointing at the S3 path."""
    size = len(body.encode("utf-8"))
    if size > LAMBDA_SYNC_PAYLOAD_BYTES - 16 * 1024:  # leave room for the HTTP envelope
        raise PayloadTooLargeError(
            f"the response would be {size} bytes, over Lambda's 6 MB synchronous limit; send fewer "
            "texts per request, use \"encoding_format\": \"base64\", or use the S3 bulk path"
        )
    return body
