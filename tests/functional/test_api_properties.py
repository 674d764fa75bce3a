"""Property: whatever a client sends to any route, the answer is 200 or a 4xx with an error type —
never a 500 — through the real handler (HTTP API v2 events and direct invokes) and the real model."""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bert2vec.local_invoke import LocalContext
from tests.conftest import load_event

ROUTES = ["/encode", "/v1/embeddings", "/embed", "/", "/tokenize", "/search", "/info", "/nope"]
KEYS = ["text", "texts", "input", "inputs", "normalize", "truncate", "encoding_format", "dimensions", "model",
        "truncation_direction", "prompt_name", "query", "top_k", "filter", "add_special_tokens", "long_text",
        "stride"]  # fmt: skip

SHORT_TEXT = st.text(min_size=0, max_size=12)  # lone surrogates and control characters included
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(10**6), 10**6), st.floats(allow_nan=False), SHORT_TEXT)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(SHORT_TEXT, inner, max_size=3), max_leaves=8)
BODIES = st.one_of(
    st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=4),  # plausible requests with wrong values
    VALUES,  # any JSON at all
)


def _raw(body: Any) -> str:
    return json.dumps(body, ensure_ascii=True)  # \ud800 escapes survive as JSON, as a client would send them


def _status(out: Any) -> tuple[int, Any]:
    if isinstance(out, list):
        return 200, out
    if "statusCode" in out:
        body = out["body"]
        if out.get("isBase64Encoded"):
            body = base64.b64decode(body).decode()
        return out["statusCode"], json.loads(body)
    return int(out.get("status", 200)), out


def _error_type(body: Any) -> str | None:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):  # OpenAI's shape
        return body["error"].get("type")
    return body.get("error_type") if isinstance(body, dict) else None


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(route=st.sampled_from(ROUTES), body=BODIES, garbage=st.one_of(st.none(), st.text(max_size=20)))
@example(route="/embed", body={"truncation_direction": [], "inputs": ["a"]}, garbage=None)  # was a 500 (found by CI)
def test_any_http_body_is_200_or_a_4xx_with_an_error_type(app_module, route: str, body: Any, garbage: str | None) -> None:
    event = load_event("api_gateway_v2_encode.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = route
    event["body"] = garbage if garbage is not None else _raw(body)
    status, answer = _status(app_module.handler(event, LocalContext()))
    assert status == 200 or (400 <= status < 500 and _error_type(answer)), (status, answer)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=BODIES)
@example(body={"truncation_direction": [], "inputs": []})  # raised TypeError (unhashable list), found by CI
def test_any_direct_invoke_is_answered_never_raised(app_module, body: Any) -> None:
    status, answer = _status(app_module.handler(json.loads(_raw(body)), LocalContext()))
    assert status == 200 or (400 <= status < 500 and _error_type(answer)), (status, answer)
