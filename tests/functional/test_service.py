"""Request validation and the three response shapes, on the real exported default model."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from function.errors import (
    EmptyInputError,
    InvalidInputError,
    PayloadTooLargeError,
    TextTooLargeError,
    TextTooLongForModelError,
    TooManyTextsError,
    UnsupportedOptionError,
)
from function.service import EncodeService, Limits, check_payload_size
from function.wire import native, openai_api, tei


@pytest.fixture(scope="module")
def service(default_encoder) -> EncodeService:
    return EncodeService(default_encoder, Limits(max_texts=4, max_text_chars=50))


def test_encode_body_shape(service: EncodeService) -> None:
    enc = service.encode(native.parse({"texts": ["hello world", "a dog on the beach"]}))
    body = native.render(enc, "m")
    assert set(body) == {"vectors", "dimension", "model", "token_counts", "truncated"}
    assert body["dimension"] == 384 and len(body["vectors"]) == 2
    assert body["token_counts"] == [4, 7] and body["truncated"] == [False, False]
    single = service.encode(native.parse({"text": "hello world"}))
    np.testing.assert_allclose(single.vectors[0], enc.vectors[0], atol=1e-5)


@pytest.mark.parametrize(
    ("body", "exc", "fragment"),
    [
        ({"texts": []}, EmptyInputError, "'texts' is empty"),
        ({"texts": ["ok", ""]}, EmptyInputError, "'texts[1]' is empty"),
        ({"texts": ["ok", "   "]}, EmptyInputError, "'texts[1]'"),
        ({"text": ""}, EmptyInputError, "'text' is empty"),
        ({"texts": [1, 2]}, InvalidInputError, "'texts[0]' must be a string, got int"),
        ({"text": ["a"]}, InvalidInputError, "'text' must be a string"),
        ({"texts": "a", "text": "b"}, InvalidInputError, "exactly one"),
        ({}, InvalidInputError, "exactly one"),
        ({"texts": ["a"], "truncate": "yes"}, InvalidInputError, "'truncate' must be true or false"),
        ({"texts": ["a"] * 5}, TooManyTextsError, "5 texts; at most 4"),
        ({"texts": ["x" * 51], "truncate": False}, TextTooLargeError, "'texts[0]' has 51 characters"),
        ({"texts": ["a"], "normalize": False}, UnsupportedOptionError, "--no-normalize"),
    ],
)
def test_bad_encode_requests(service: EncodeService, body, exc, fragment) -> None:
    with pytest.raises(exc, match=None) as err:
        service.encode(native.parse(body))
    assert fragment in str(err.value)


def test_bad_body_types() -> None:
    with pytest.raises(InvalidInputError, match="JSON object, got list"):
        native.parse(["a"])
    with pytest.raises(InvalidInputError, match="'input' is required"):
        openai_api.parse({"model": "x"})
    with pytest.raises(InvalidInputError, match="'encoding_format'"):
        openai_api.parse({"input": "a", "encoding_format": "int8"})
    with pytest.raises(InvalidInputError, match="'inputs' is required"):
        tei.parse({"input": "a"})


def test_too_long_for_model(default_encoder) -> None:
    svc = EncodeService(default_encoder, Limits())
    long_text = " ".join(["word"] * 300)
    with pytest.raises(TextTooLongForModelError, match=r"'texts\[1\]' has 302 tokens.*at most 256"):
        svc.encode(native.parse({"texts": ["short", long_text], "truncate": False}))
    enc = svc.encode(native.parse({"texts": ["short", long_text]}))
    assert enc.result.truncated.tolist() == [False, True]
    assert enc.result.token_counts.tolist() == [3, 302]


def test_chars_over_limit_are_cut_when_truncation_is_allowed(service: EncodeService) -> None:
    enc = service.encode(native.parse({"texts": ["y " * 40]}))
    assert enc.result.truncated.tolist() == [True]


def test_openai_shapes(service: EncodeService) -> None:
    req, fmt = openai_api.parse({"input": ["hello world", "dogs"], "model": "x", "encoding_format": "base64"})
    enc = service.encode(req)
    body = openai_api.render(enc, "m", fmt, 256)
    assert body["object"] == "list" and body["model"] == "m"
    assert body["usage"] == {"prompt_tokens": 4 + 3, "total_tokens": 4 + 3}
    first = body["data"][0]
    assert first["object"] == "embedding" and first["index"] == 0
    decoded = np.frombuffer(base64.b64decode(first["embedding"]), dtype="<f4")
    np.testing.assert_array_equal(decoded, enc.vectors[0].astype(np.float32))
    req, fmt = openai_api.parse({"input": "hello world"})
    assert fmt == "float" and req.texts == ["hello world"]


def test_tei_defaults(service: EncodeService) -> None:
    req = tei.parse({"inputs": "hello"})
    assert req.normalize is True and req.truncate is False and req.texts == ["hello"]
    body = tei.render(service.encode(req))
    assert len(body) == 1 and len(body[0]) == 384


def test_payload_limit() -> None:
    assert check_payload_size("{}") == "{}"
    with pytest.raises(PayloadTooLargeError, match="S3 bulk path"):
        check_payload_size("x" * (6 * 1024 * 1024))
