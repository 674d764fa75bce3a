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
    if status >= 400:
        assert body["error"] and body["error_type"]
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
    from function.service import Limits

    svc = app_module.init()
    monkeypatch.setattr(svc, "limits", Limits(max_texts=2000, max_text_chars=100_000))
    event = load_event("api_gateway_v2_encode.json")
    event["body"] = json.dumps({"texts": [f"text number {i}" for i in range(1200)]})
    status, body, _ = call(app_module, event, lambda_context)
    assert status == 413 and body["error_type"] == "response_too_large" and "S3" in body["error"]


def test_cors_headers_when_configured(default_model_dir, lambda_context) -> None:
    from function.routes import Routes, build_resolvers, cors_config

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
    from function.routes import event_kind

    assert event_kind(load_event("api_gateway_v1_encode.json")) == "rest"
    assert event_kind(load_event("api_gateway_v2_encode.json")) == "http"
    assert event_kind(load_event("function_url_encode.json")) == "url"
    assert event_kind(load_event("direct_encode.json")) == "direct"
    assert event_kind(["not", "a", "dict"]) == "direct"


@pytest.mark.parametrize(
    ("body", "is_b64", "fragment"),
    [
        ("", False, "request body is empty"),
        ("%%% not base64 %%%", True, "marked base64 but cannot be decoded"),
        (base64.b64encode(b"\xff\xfe not utf-8").decode(), True, "marked base64 but cannot be decoded"),
    ],
)
def test_missing_or_undecodable_body_is_400(app_module, lambda_context, body: str, is_b64: bool, fragment: str) -> None:
    event = load_event("api_gateway_v2_encode.json")
    event["body"], event["isBase64Encoded"] = body, is_b64
    status, err, _ = call(app_module, event, lambda_context)
    assert status == 400 and err["error_type"] == "malformed_json" and fragment in err["error"]
