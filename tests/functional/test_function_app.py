"""The handler in-process on every ``events/*.json`` (the files ``sam local invoke -e`` takes).

The end-to-end twin of this file (tests/e2e) runs the same events through the real awslambdaric
process; this one adds the cases that need to reach inside (CORS, 500s, oversized responses).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pytest

from tests.conftest import EVENTS, load_event

ALL_EXPECTATIONS: dict[str, dict[str, Any]] = json.loads((EVENTS / "expectations.json").read_text())
# The encode handler's events; the bulk handlers' events are exercised by tests/*/test_bulk*.
EXPECTATIONS = {
    name: want
    for name, want in ALL_EXPECTATIONS.items()
    if want.get("handler", "function.app.handler") == "function.app.handler"
}


def call(app_module, event: dict[str, Any], ctx) -> tuple[int, Any, dict[str, str]]:
    """Invoke and return (status, parsed body, headers) whatever the front door."""
    out = app_module.handler(event, ctx)
    if isinstance(out, list):  # direct invoke with {"inputs"}: TEI's list of vectors
        return 200, out, {}
    if "statusCode" not in out:  # direct invoke: the body itself, errors carry "status"
        return int(out.get("status", 200)), out, {}
    body = out["body"]
    if out.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    headers = {k.lower(): v for k, v in (out.get("headers") or {}).items()}
    for k, v in (out.get("multiValueHeaders") or {}).items():
        headers.setdefault(k.lower(), v[0])
    return out["statusCode"], json.loads(body) if body else None, headers


@pytest.mark.parametrize("name", sorted(EXPECTATIONS))
def test_every_event(app_module, lambda_context, name: str) -> None:
    want = EXPECTATIONS[name]
    status, body, headers = call(app_module, load_event(name), lambda_context)
    assert status == want["status"], body
    if isinstance(body, dict):
        assert set(want["keys"]) <= set(body), body
        if want["exact_keys"]:
            assert set(body) == set(want["keys"]), body
    else:
        assert want["body_type"] == "list" and len(body) == want["vectors"]
    if status >= 400 and (want["path"] or "").startswith("/v1/"):  # OpenAI's error object
        assert set(body["error"]) == {"message", "type", "param", "code"}
        assert body["error"]["message"] and body["error"]["code"] == want["error_type"]
    elif status >= 400:
        assert body["error"] and body["error_type"] == want["error_type"]
    if status == 405:
        assert headers.get("allow") in ("POST", "GET")


def test_encode_vectors_match_the_core(app_module, default_encoder, lambda_context) -> None:
    status, body, _ = call(app_module, load_event("api_gateway_v1_encode.json"), lambda_context)
    texts = json.loads(load_event("api_gateway_v1_encode.json")["body"])["texts"]
    assert status == 200
    np.testing.assert_allclose(body["vectors"], default_encoder.encode(texts).embeddings, atol=1e-6)
    assert body["dimension"] == 384 and body["model"] == "all-MiniLM-L6-v2"


def test_openai_base64_decodes_to_the_float_vector(app_module, lambda_context) -> None:
    status, b64, _ = call(app_module, load_event("openai_embeddings_base64.json"), lambda_context)
    assert status == 200
    event = load_event("openai_embeddings_base64.json")
    float_event = dict(event, body=json.dumps(dict(json.loads(event["body"]), encoding_format="float")))
    _, flt, _ = call(app_module, float_event, lambda_context)
    vec = np.frombuffer(base64.b64decode(b64["data"][0]["embedding"]), dtype="<f4")
    np.testing.assert_allclose(vec, flt["data"][0]["embedding"], atol=1e-7)
    assert b64["usage"]["prompt_tokens"] == flt["usage"]["prompt_tokens"] > 0


def test_health_and_model(app_module, lambda_context) -> None:
    status, body, _ = call(app_module, load_event("health.json"), lambda_context)
    assert (status, body["status"]) == (200, "ok")
    status, card, _ = call(app_module, load_event("model.json"), lambda_context)
    assert status == 200 and card["vector_length"] == 384 and card["pooling"] == "mean"


def test_unexpected_error_is_500_with_request_id_and_no_trace(app_module, lambda_context, monkeypatch, caplog) -> None:
    def boom(*args, **kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(app_module.init(), "encode", boom)
    status, body, _ = call(app_module, load_event("api_gateway_v2_encode.json"), lambda_context)
    assert status == 500
    assert body == {"error": "internal error", "error_type": "internal", "request_id": lambda_context.aws_request_id}
    assert "secret internal detail" not in json.dumps(body)
    (record,) = [r for r in caplog.records if r.getMessage() == "unexpected error"]
    assert record.exc_info and "secret internal detail" in str(record.exc_info[1])  # the trace goes to the log only


def test_response_over_6mb_is_413_pointing_to_s3(app_module, lambda_context, monkeypatch) -> None:
    from bert2vec.http.service import Limits

    svc = app_module.init()
    monkeypatch.setattr(svc, "limits", Limits(max_texts=2000, max_text_chars=100_000))
    event = load_event("api_gateway_v2_encode.json")
    event["body"] = json.dumps({"texts": [f"text number {i}" for i in range(1200)]})
    status, body, _ = call(app_module, event, lambda_context)
    assert status == 413 and body["error_type"] == "response_too_large" and "S3" in body["error"]


def test_cors_headers_when_configured(default_model_dir, lambda_context) -> None:
    from bert2vec.http.routes import Routes, build_resolvers, cors_config

    app_module_routes = Routes(lambda: None, None, None)  # health works without a model
    resolvers = build_resolvers(app_module_routes, cors_config("https://a.example, https://b.example"))
    event = load_event("health.json")
    event.setdefault("headers", {})["origin"] = "https://b.example"
    event.setdefault("multiValueHeaders", {})["origin"] = ["https://b.example"]
    out = resolvers["rest"].resolve(event, lambda_context)
    headers = {k.lower(): v for k, v in (out.get("multiValueHeaders") or {}).items()}
    headers.update({k.lower(): v for k, v in (out.get("headers") or {}).items()})
    allow = headers.get("access-control-allow-origin")
    assert allow in ("https://b.example", ["https://b.example"])
    assert out["statusCode"] == 503  # no model: health says loading, not ok
    assert cors_config("") is None


def test_event_kind_detection() -> None:
    from bert2vec.http.routes import event_kind

    assert event_kind(load_event("api_gateway_v1_encode.json")) == "rest"
    assert event_kind(load_event("api_gateway_v2_encode.json")) == "http"
    assert event_kind(load_event("function_url_encode.json")) == "url"
    assert event_kind(load_event("direct_encode.json")) == "direct"
    assert event_kind(["not", "a", "dict"]) == "direct"


@pytest.mark.parametrize(
    ("body", "is_b64", "fragment"),
    [
        ("", False, "request body is empty"),
        ("%%% not base64 %%%", True, "is not valid base64"),
        ("=", True, "is not valid base64"),
        ("%%%", True, "is not valid base64"),  # a lenient decoder turns it into b"": "body is empty"
        (base64.b64encode(b"\xff\xfe not utf-8").decode(), True, "not UTF-8 text"),
        (base64.b64encode('{"text": "café"}'.encode("latin-1")).decode(), True, "not UTF-8 text (invalid"),
    ],
)
def test_missing_or_undecodable_body_is_400(app_module, lambda_context, body: str, is_b64: bool, fragment: str) -> None:
    event = load_event("api_gateway_v2_encode.json")
    event["body"], event["isBase64Encoded"] = body, is_b64
    status, err, _ = call(app_module, event, lambda_context)
    assert status == 400 and err["error_type"] == "malformed_json" and fragment in err["error"]


# ---------------------------------------------------------------------------------------------
# hardening: every request a client can send gets a 4xx, never a 500
# ---------------------------------------------------------------------------------------------


def post(app_module, ctx, path: str, body: str | Any) -> tuple[int, Any, dict[str, str]]:
    """POST ``body`` (a JSON value, or raw text when a str) to ``path`` through an HTTP API (v2) event."""
    event = load_event("api_gateway_v2_encode.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["body"] = body if isinstance(body, str) else json.dumps(body)
    return call(app_module, event, ctx)


SURROGATE = '"half a pair: \\ud800"'  # the JSON escape of a lone high surrogate


@pytest.mark.parametrize(
    ("path", "raw", "field"),
    [
        ("/encode", '{"texts": ["ok", ' + SURROGATE + "]}", "'texts[1]'"),
        ("/encode", '{"text": ' + SURROGATE + "}", "'text'"),
        ("/v1/embeddings", '{"input": [' + SURROGATE + "]}", "'input[0]'"),
        ("/embed", '{"inputs": ' + SURROGATE + "}", "'inputs'"),
        ("/", '{"inputs": ["a", ' + SURROGATE + "]}", "'inputs[1]'"),
    ],
)
def test_lone_surrogates_are_400_naming_the_field(app_module, lambda_context, path, raw, field) -> None:
    status, body, _ = post(app_module, lambda_context, path, raw)
    err = body["error"]["message"] if path.startswith("/v1/") else body["error"]
    kind = body["error"]["code"] if path.startswith("/v1/") else body["error_type"]
    assert (status, kind) == (400, "malformed_json"), body
    assert field in err and "surrogate" in err


def test_lone_surrogate_in_a_direct_invoke(app_module, lambda_context) -> None:
    for event in ({"texts": ["ok", "\ud800"]}, {"inputs": "x\udfff"}):
        out = app_module.handler(event, lambda_context)
        assert out["status"] == 400 and out["error_type"] == "malformed_json" and "surrogate" in out["error"]


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("[" * 100_000 + "]" * 100_000, "too deeply"),
        ('{"texts": [' * 50_000 + "]}" * 50_000, "too deeply"),
        ('{"texts": ["a"], "n": ' + "9" * 5_000 + "}", "4300"),
    ],
)
def test_hostile_json_is_400(app_module, lambda_context, raw: str, fragment: str) -> None:
    status, body, _ = post(app_module, lambda_context, "/encode", raw)
    assert (status, body["error_type"]) == (400, "malformed_json"), body
    assert fragment in body["error"] and len(body["error"]) < 300


def test_echoed_values_are_capped_in_body_and_log(app_module, lambda_context, caplog) -> None:
    huge = "z" * (4 * 1024 * 1024)
    caplog.set_level("INFO")
    status, body, _ = post(app_module, lambda_context, "/v1/embeddings", {"input": "a", "encoding_format": huge})
    assert status == 400 and body["error"]["param"] == "encoding_format"
    assert len(json.dumps(body)) < 600 and "4194304 characters" in body["error"]["message"]
    assert all(len(r.getMessage()) + len(str(r.__dict__.get("error", ""))) < 2_000 for r in caplog.records)
    status, body, _ = post(app_module, lambda_context, "/" + "p" * 100_000, {"inputs": "a"})
    assert status == 404 and len(body["error"]) < 1_200 and "(100001 characters)" in body["error"]


@pytest.mark.parametrize(
    ("dimensions", "status"),
    [(384, 200), (384.0, 200), (None, 200), (256, 400), (1536, 400), ("384", 400), (True, 400), (384.5, 400)],
)
def test_openai_dimensions_must_be_the_models(app_module, lambda_context, dimensions, status: int) -> None:
    """OpenAI answers invalid requests 400 (the openai client's BadRequestError); a whole float is
    the integer, as on every route."""
    got, body, _ = post(app_module, lambda_context, "/v1/embeddings", {"input": "a", "dimensions": dimensions})
    assert got == status, body
    if status == 400:
        assert body["error"]["param"] == "dimensions" and body["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    "text",
    ["\u200b", "\x00", "\x01\x02\x7f", "\u0301\u0302", "\ufeff\u200c\u200d", "\u200b \u0301\x00", "\u00ad\u2060"],
    ids=["zero-width", "nul", "controls", "combining", "bom-zwnj-zwj", "mixed", "soft-hyphen-word-joiner"],
)
def test_text_with_nothing_readable_is_empty_input(app_module, default_encoder, lambda_context, text: str) -> None:
    assert text.strip() and default_encoder.encode([text]).token_counts.tolist() == [2]  # a bare [CLS] [SEP]
    for path, body in (("/encode", {"texts": ["ok", text]}), ("/embed", {"inputs": ["ok", text]})):
        status, out, _ = post(app_module, lambda_context, path, body)
        assert (status, out["error_type"]) == (400, "empty_input"), out
        assert "[1]'" in out["error"]
    status, out, _ = post(app_module, lambda_context, "/v1/embeddings", {"input": text})
    assert (status, out["error"]["code"], out["error"]["param"]) == (400, "empty_input", "input")


def test_an_enclosing_mark_is_read_as_unknown_not_empty(app_module, lambda_context) -> None:
    """Only what the tokenizer drops makes a text empty: U+20DD (Me) becomes [UNK], a real wordpiece."""
    status, out, _ = post(app_module, lambda_context, "/encode", {"text": "\u20dd"})
    assert status == 200 and out["token_counts"] == [3]


def test_request_budget_is_413_with_the_numbers(app_module, lambda_context) -> None:
    # 33 texts of 257 wordpieces: each counts max_seq_length = 256, 8,448 > 8,192
    status, body, _ = post(app_module, lambda_context, "/encode", {"texts": ["a " * 255] * 33})
    assert (status, body["error_type"]) == (413, "request_too_large"), body
    assert "8448 wordpieces" in body["error"] and "8192" in body["error"] and "MAX_REQUEST_TOKENS" in body["error"]
    # 150,001 characters, few wordpieces
    status, body, _ = post(app_module, lambda_context, "/encode", {"texts": ["x" * 75_000, "y" * 75_001]})
    assert (status, body["error_type"]) == (413, "request_too_large"), body
    assert "150001 characters" in body["error"] and "MAX_REQUEST_CHARS" in body["error"]


def test_requests_over_the_character_bound_are_counted_exactly(app_module, default_encoder, lambda_context) -> None:
    """80 texts of 500 characters: the bound says 80 x 256 > 16,384, the tokenizer says 80 x 102."""
    texts = [f"{i} " + "word " * 99 for i in range(80)]
    status, body, _ = post(app_module, lambda_context, "/encode", {"texts": texts})
    assert status == 200, body
    assert sum(body["token_counts"]) == 80 * 102
    np.testing.assert_allclose(body["vectors"], default_encoder.encode(texts).embeddings, atol=1e-6)


def test_openai_takes_2048_inputs_and_null_encoding_format(app_module, lambda_context) -> None:
    texts = [f"{w} {i % 7}" for i, w in enumerate(["cat", "dog", "sea", "sun"] * 512)]  # 4 wordpieces each
    # 2,048 x 384 floats fit Lambda's 6 MB only as base64; 8,192 wordpieces is the whole budget
    status, body, _ = post(app_module, lambda_context, "/v1/embeddings", {"input": texts, "encoding_format": "base64"})
    assert status == 200 and len(body["data"]) == 2048 and body["data"][-1]["index"] == 2047
    status, body, _ = post(app_module, lambda_context, "/v1/embeddings", {"input": "t1", "encoding_format": None})
    assert status == 200 and isinstance(body["data"][0]["embedding"], list)  # null = float
    status, body, _ = post(app_module, lambda_context, "/v1/embeddings", {"input": texts + ["one more"]})
    assert (status, body["error"]["code"]) == (413, "too_many_texts")


@pytest.mark.parametrize("tokens", [[1, 2, 3], [[1, 2, 3], [4, 5]]])
def test_openai_token_arrays_point_to_langchains_setting(app_module, lambda_context, tokens) -> None:
    status, body, _ = post(app_module, lambda_context, "/v1/embeddings", {"input": tokens, "model": "x"})
    assert status == 400
    assert body["error"]["type"] == "invalid_request_error" and body["error"]["param"] == "input"
    assert "check_embedding_ctx_length=False" in body["error"]["message"]


def test_openai_errors_use_openais_object_everywhere_under_v1(app_module, lambda_context) -> None:
    event = load_event("openai_embeddings.json")
    event["requestContext"]["http"]["method"] = "GET"
    status, body, headers = call(app_module, event, lambda_context)
    assert status == 405 and headers["allow"] == "POST" and body["error"]["code"] == "method_not_allowed"
    status, body, _ = post(app_module, lambda_context, "/v1/embeddings", "{")
    assert status == 400 and body["error"]["code"] == "malformed_json"
    status, body, _ = post(app_module, lambda_context, "/embed", "{")  # TEI keeps {"error", "error_type"}
    assert status == 400 and body["error_type"] == "malformed_json"


def test_openai_500_is_an_openai_error_object(app_module, lambda_context, monkeypatch) -> None:
    monkeypatch.setattr(app_module.init(), "encode", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("secret")))
    status, body, _ = post(app_module, lambda_context, "/v1/embeddings", {"input": "a"})
    assert status == 500 and body["error"]["type"] == "server_error" and "secret" not in json.dumps(body)


@pytest.mark.parametrize(
    ("options", "status", "fragment"),
    [
        ({"prompt_name": "query"}, 422, "no prompts configured"),
        ({"truncation_direction": "left"}, 422, "'left' is not available"),
        ({"truncation_direction": "Left"}, 422, "'left' is not available"),
        ({"truncation_direction": "up"}, 422, "must be 'right' or 'left'"),
        ({"normalize": False}, 422, '"normalize": true'),
        ({"dimensions": 128}, 422, "384 dimensions"),
        ({"encoding_format": "base64"}, 422, "/v1/embeddings"),
        ({"truncation_direction": "right", "prompt_name": None, "normalize": True, "dimensions": 384}, 200, ""),
        ({"truncation_direction": "Right", "encoding_format": "float"}, 200, ""),
    ],
)
def test_tei_options(app_module, lambda_context, options, status: int, fragment: str) -> None:
    for path in ("/embed", "/"):
        got, body, _ = post(app_module, lambda_context, path, {"inputs": "hello", **options})
        assert got == status, body
        if status != 200:
            assert body["error_type"] in ("unsupported_option", "validation") and fragment in body["error"]


def test_tei_root_direct_inputs_and_embed_agree_with_the_core(app_module, default_encoder, lambda_context) -> None:
    texts = ["I enjoy taking long walks along the beach with my dog.", "Serverless BERT on Lambda"]
    want = default_encoder.encode(texts).embeddings
    for path in ("/", "/embed"):
        status, body, _ = post(app_module, lambda_context, path, {"inputs": texts})
        assert status == 200
        np.testing.assert_allclose(body, want, atol=1e-6)
    out = app_module.handler({"inputs": texts}, lambda_context)  # SageMaker / TEI-style direct payload
    np.testing.assert_allclose(out, want, atol=1e-6)
    out = app_module.handler({"inputs": "Serverless BERT on Lambda"}, lambda_context)
    np.testing.assert_allclose(out, want[1:], atol=1e-6)
    out = app_module.handler({"inputs": []}, lambda_context)
    assert out["status"] == 400 and out["error_type"] == "empty_input"


def test_tei_info(app_module, lambda_context) -> None:
    status, info, _ = call(app_module, load_event("tei_info.json"), lambda_context)
    assert status == 200
    assert info["model_id"] == "all-MiniLM-L6-v2" and info["dimension"] == 384
    assert (info["pooling"], info["normalize"], info["max_input_length"]) == ("mean", True, 256)
    assert (info["max_client_batch_size"], info["max_batch_tokens"], info["max_request_chars"]) == (2048, 8192, 150000)
    assert info["model_type"] == {"embedding": {"pooling": "mean"}}


def test_tei_tokenize_uses_the_models_tokenizer(app_module, default_encoder, lambda_context) -> None:
    status, body, _ = post(app_module, lambda_context, "/tokenize", {"inputs": ["Serverless BERT", "hi"]})
    assert status == 200 and len(body) == 2
    first = body[0]
    assert [t["text"] for t in first] == ["[CLS]", "server", "##less", "bert", "[SEP]"]
    assert [t["special"] for t in first] == [True, False, False, False, True]
    assert [t["id"] for t in first][0] == 101 and first[-1]["id"] == 102
    assert all(t["start"] is None and t["stop"] is None for t in first)  # the exported tokenizer has no offsets
    assert len(first) == default_encoder.encode(["Serverless BERT"]).token_counts[0]
    status, body, _ = post(app_module, lambda_context, "/tokenize", {"inputs": "hi", "add_special_tokens": False})
    assert status == 200 and [t["text"] for t in body[0]] == ["hi"]
    long = "word " * 400
    status, body, _ = post(app_module, lambda_context, "/tokenize", {"inputs": long})
    assert len(body[0]) == 256 and body[0][-1]["text"] == "[SEP]"  # what the encoder sees: truncated, [SEP] kept


# ---------------------------------------------------------------------------------------------
# direct invokes, OpenAI conventions, TEI details
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["texts", "inputs"])
def test_a_direct_invoke_over_6mb_is_the_same_413_object(app_module, lambda_context, monkeypatch, key) -> None:
    """2,048 one-letter texts: 17 MB as JSON floats. The answer is the error object, not a result
    the runtime would refuse after all the work."""
    out = app_module.handler({key: ["a"] * 2048}, lambda_context)
    assert isinstance(out, dict) and out["status"] == 413 and out["error_type"] == "response_too_large", out
    assert "S3 bulk path" in out["error"]
    small = app_module.handler({key: ["a"] * 2}, lambda_context)
    assert len(small if key == "inputs" else small["vectors"]) == 2


def test_openai_models_lists_the_served_model(app_module, lambda_context) -> None:
    event = load_event("health.json")
    event["path"] = event["resource"] = "/v1/models"
    event["requestContext"]["resourcePath"] = event["requestContext"]["path"] = "/v1/models"
    status, body, _ = call(app_module, event, lambda_context)
    assert status == 200 and body["object"] == "list"
    (model,) = body["data"]
    assert model["id"] == "all-MiniLM-L6-v2" and model["object"] == "model" and model["created"] > 1_700_000_000


def test_openai_413_text_fits_v1(app_module, lambda_context) -> None:
    """Over-long input is refused on /v1 by default, so the 413 must not claim the model reads the start.
    200 texts of ~900 characters: what LangChain's default chunk_size=1000 sends."""
    status, body, _ = post(app_module, lambda_context, "/v1/embeddings", {"input": ["word " * 180] * 200})
    assert (status, body["error"]["code"]) == (413, "request_too_large"), body
    assert "reads only" not in body["error"]["message"] and "MAX_REQUEST_CHARS" in body["error"]["message"]
    status, body, _ = post(app_module, lambda_context, "/v1/embeddings", {"input": ["word " * 180] * 100})
    assert (status, body["error"]["code"]) == (413, "request_too_large"), body
    message = body["error"]["message"]
    assert "reads only" not in message and "has that is" not in message
    assert "would run" in message and "32 texts always fit" in message


def test_texts_must_be_a_list_and_text_a_string(app_module, lambda_context) -> None:
    status, body, _ = post(app_module, lambda_context, "/encode", {"texts": "abc"})
    assert (status, body["error_type"]) == (422, "validation") and "'texts' must be a list of strings" in body["error"]
    status, body, _ = post(app_module, lambda_context, "/encode", {"text": "abc"})
    assert status == 200


@pytest.mark.parametrize(("path", "field"), [("/embed", "inputs"), ("/v1/embeddings", "input"), ("/encode", "text")])
def test_whole_float_integers_are_integers_on_every_route(app_module, lambda_context, path, field) -> None:
    body: dict[str, Any] = {field: "a " * 400, "long_text": "chunk", "stride": 16.0}
    if path != "/encode":
        body["dimensions"] = 384.0
    status, out, _ = post(app_module, lambda_context, path, body)
    assert status == 200, out
    body["stride"] = 16.5
    status, out, _ = post(app_module, lambda_context, path, body)
    assert status in (400, 422) and "'stride' must be a whole number" in json.dumps(out)


def test_embed_honours_long_text_and_stride(app_module, default_encoder, lambda_context) -> None:
    from bert2vec.core.long_text import LongTextEncoder

    text = "the quick brown fox jumps over the lazy dog " * 60  # ~540 wordpieces
    status, got, _ = post(app_module, lambda_context, "/embed", {"inputs": text, "long_text": "chunk", "stride": 8})
    assert status == 200, got
    want = LongTextEncoder(default_encoder).encode([text], stride=8).embeddings
    np.testing.assert_allclose(got, want, atol=1e-6)
    status, truncated, _ = post(app_module, lambda_context, "/embed", {"inputs": text, "truncate": True})
    assert status == 200 and not np.allclose(truncated, want, atol=1e-3)  # chunking changed the vector
    status, err, _ = post(app_module, lambda_context, "/embed", {"inputs": text, "stride": 8})
    assert (status, err["error_type"]) == (422, "validation") and "'stride' applies only" in err["error"]
    status, err, _ = post(app_module, lambda_context, "/embed", {"inputs": text, "long_text": "sideways"})
    assert status == 422 and "'long_text' must be one of" in err["error"]


def test_a_huge_number_is_echoed_cut(app_module, lambda_context) -> None:
    stride = int("9" * 4_000)
    raw = json.dumps({"text": "a b c", "long_text": "chunk", "stride": stride})
    status, body, _ = post(app_module, lambda_context, "/encode", raw)
    assert (status, body["error_type"]) == (422, "validation"), body
    assert "(4000 characters)" in body["error"] and body["error"].endswith("[SEP])")  # the explanation survives


def test_tokenize_keeps_a_literal_special_token_as_bert_tokenizer_does(app_module, default_model_dir,
                                                                       lambda_context) -> None:  # fmt: skip
    transformers = pytest.importorskip("transformers")
    hf = transformers.BertTokenizerFast(str(default_model_dir / "assets" / "vocab.txt"), do_lower_case=True)
    for text in ("a [SEP] b", "[CLS] hello [SEP]", "[SEP]"):
        status, body, _ = post(app_module, lambda_context, "/tokenize", {"inputs": text, "add_special_tokens": False})
        assert status == 200
        assert [t["id"] for t in body[0]] == hf(text, add_special_tokens=False)["input_ids"], text
        assert not any(t["special"] for t in body[0])
        status, body, _ = post(app_module, lambda_context, "/tokenize", {"inputs": text})
        assert [t["id"] for t in body[0]] == hf(text)["input_ids"], text
        assert [t["special"] for t in body[0]][0] and body[0][-1]["special"]
    status, err, _ = post(app_module, lambda_context, "/tokenize", {"inputs": "a", "long_text": "chunk"})
    assert (status, err["error_type"]) == (422, "unsupported_option")
