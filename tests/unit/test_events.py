"""events/: every event is a real envelope that Powertools parses, and each has its expectations.

The end-to-end test sends every event through the real handler and checks the response against
``events/expectations.json``; here we only prove the files are what they claim to be.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes import (
    APIGatewayProxyEvent,
    APIGatewayProxyEventV2,
    LambdaFunctionUrlEvent,
)

from tests.conftest import EVENTS, load_event

EXPECTATIONS_FILE = "expectations.json"
EVENT_FILES = sorted(p.name for p in EVENTS.glob("*.json") if p.name != EXPECTATIONS_FILE)

ROUTES: dict[str, str] = {
    "/encode": "POST",
    "/v1/embeddings": "POST",
    "/embed": "POST",
    "/health": "GET",
    "/model": "GET",
}
SOURCES = {"rest", "http", "url", "direct"}
STATUSES = {200, 400, 404, 405, 413, 422}
BODY_KEYS = {
    "/encode": ["vectors", "dimension", "model", "token_counts", "truncated"],
    "/v1/embeddings": ["object", "data", "model", "usage"],
    "/embed": [],
    "/health": ["status", "model", "dimension"],
}
TEXT_FIELDS = {"/encode": ("text", "texts"), "/v1/embeddings": ("input",), "/embed": ("inputs",)}

HttpEvent = APIGatewayProxyEvent | APIGatewayProxyEventV2 | LambdaFunctionUrlEvent


def _expectations() -> dict[str, dict[str, Any]]:
    return json.loads((EVENTS / EXPECTATIONS_FILE).read_text(encoding="utf-8"))


EXPECTATIONS = _expectations()


def parse(name: str) -> HttpEvent:
    """The event as the Powertools data class of its front door (from its expectations entry)."""
    raw = load_event(name)
    source = EXPECTATIONS[name]["source"]
    if source == "rest":
        return APIGatewayProxyEvent(raw)
    if source == "http":
        return APIGatewayProxyEventV2(raw)
    if source == "url":
        return LambdaFunctionUrlEvent(raw)
    raise AssertionError(f"{name}: {source} events have no HTTP envelope")


def http_events() -> list[str]:
    return [n for n in EVENT_FILES if n in EXPECTATIONS and EXPECTATIONS[n]["source"] != "direct"]


def test_there_are_events() -> None:
    assert len(EVENT_FILES) >= 16


def test_every_event_has_expectations_and_vice_versa() -> None:
    assert sorted(EXPECTATIONS) == EVENT_FILES


def test_readme_lists_every_event() -> None:
    readme = (EVENTS / "README.md").read_text(encoding="utf-8")
    missing = [n for n in EVENT_FILES if f"`{n}`" not in readme]
    assert not missing, f"events/README.md does not describe {missing}"


@pytest.mark.parametrize("name", EVENT_FILES)
def test_event_is_a_json_object(name: str) -> None:
    assert isinstance(load_event(name), dict)


@pytest.mark.parametrize("name", sorted(EXPECTATIONS))
def test_expectation_entry_is_well_formed(name: str) -> None:
    exp = EXPECTATIONS[name]
    assert exp["status"] in STATUSES
    assert isinstance(exp["keys"], list) and all(isinstance(k, str) for k in exp["keys"])
    assert isinstance(exp["exact_keys"], bool)
    assert exp["body_type"] in {"object", "list"}
    assert exp["source"] in SOURCES
    if exp["status"] == 200:
        assert "error_type" not in exp
        path = exp["path"] or "/encode"  # a direct invoke is an /encode
        if path in BODY_KEYS:
            assert exp["keys"] == BODY_KEYS[path]
        assert (exp["body_type"] == "list") == (path == "/embed")
        if path in TEXT_FIELDS:
            assert isinstance(exp["vectors"], int) and exp["vectors"] >= 1
    else:
        assert exp["keys"] == ["error", "error_type"] and exp["exact_keys"] is True
        assert exp["body_type"] == "object"
        assert isinstance(exp["error_type"], str) and exp["error_type"]


@pytest.mark.parametrize("name", http_events())
def test_event_parses_with_powertools(name: str) -> None:
    exp = EXPECTATIONS[name]
    event = parse(name)
    assert event.http_method == exp["method"]
    assert event.path == exp["path"]
    if isinstance(event, APIGatewayProxyEvent):
        assert event.request_context.http_method == exp["method"]
        assert event.request_context.stage == "prod"
        assert event.request_context.resource_path == exp["path"]
        assert event.request_context.domain_name is None or ".lambda-url." not in event.request_context.domain_name
    else:
        raw = load_event(name)
        assert raw["version"] == "2.0"
        assert event.raw_path == exp["path"]
        assert event.request_context.http.method == exp["method"]
        assert event.request_context.stage == "$default"
        is_url = ".lambda-url." in event.request_context.domain_name
        assert is_url == isinstance(event, LambdaFunctionUrlEvent)


@pytest.mark.parametrize("name", http_events())
def test_event_dispatches_to_its_front_door(name: str) -> None:
    """The handler tells the front doors apart the same way the expectations do."""
    routes = pytest.importorskip("function.routes")
    if not hasattr(routes, "event_kind"):
        pytest.skip("function.routes has no event_kind()")
    assert routes.event_kind(load_event(name)) == EXPECTATIONS[name]["source"]


def test_direct_event_has_no_envelope() -> None:
    names = [n for n, e in EXPECTATIONS.items() if e["source"] == "direct"]
    assert names == ["direct_encode.json"]
    event = load_event("direct_encode.json")
    assert "requestContext" not in event and "httpMethod" not in event
    assert isinstance(event["texts"], list) and all(isinstance(t, str) and t.strip() for t in event["texts"])
    assert EXPECTATIONS["direct_encode.json"]["vectors"] == len(event["texts"])


def test_function_url_event_shape() -> None:
    event = LambdaFunctionUrlEvent(load_event("function_url_encode.json"))
    domain = event.request_context.domain_name
    assert domain == "abcdefg.lambda-url.us-east-1.on.aws"
    assert event.request_context.domain_prefix == "abcdefg"
    assert event.raw_event["routeKey"] == "$default"
    assert event.raw_path == "/encode"
    assert event.headers["content-type"] == "application/json"


@pytest.mark.parametrize("name", [n for n in http_events() if EXPECTATIONS[n]["method"] == "GET"])
def test_get_events_have_no_body(name: str) -> None:
    assert parse(name).body is None


@pytest.mark.parametrize("name", [n for n in http_events() if EXPECTATIONS[n]["method"] == "POST"])
def test_post_bodies(name: str) -> None:
    """Every POST body decodes (base64 where flagged); all but the malformed one are JSON objects."""
    exp = EXPECTATIONS[name]
    event = parse(name)
    assert event.body
    text = event.decoded_body
    if exp.get("error_type") == "malformed_json":
        with pytest.raises(json.JSONDecodeError):
            json.loads(text)
        return
    body = json.loads(text)
    assert isinstance(body, dict)
    fields = TEXT_FIELDS.get(exp["path"], ("texts",))
    field = next(f for f in fields if f in body)
    texts = body[field] if isinstance(body[field], list) else [body[field]]
    if exp["status"] == 200:
        assert exp["vectors"] == len(texts)
        assert all(isinstance(t, str) and t.strip() for t in texts)


def test_base64_event_decodes_to_json() -> None:
    raw = load_event("api_gateway_v1_encode_base64.json")
    assert raw["isBase64Encoded"] is True
    body = json.loads(base64.b64decode(raw["body"], validate=True).decode("utf-8"))
    assert isinstance(body["text"], str) and body["text"]
    assert json.loads(APIGatewayProxyEvent(raw).decoded_body) == body
    others = [n for n in http_events() if load_event(n).get("isBase64Encoded")]
    assert others == ["api_gateway_v1_encode_base64.json"]


def test_openai_events() -> None:
    floats = json.loads(parse("openai_embeddings.json").decoded_body)
    assert floats["encoding_format"] == "float" and floats["model"] == "bert2vec"
    assert isinstance(floats["input"], list) and len(floats["input"]) == 2
    b64 = json.loads(parse("openai_embeddings_base64.json").decoded_body)
    assert b64["encoding_format"] == "base64" and isinstance(b64["input"], str)


def test_bad_request_bodies() -> None:
    assert json.loads(parse("bad_empty_text.json").decoded_body) == {"texts": ["ok", ""]}
    assert json.loads(parse("bad_wrong_type.json").decoded_body) == {"texts": [1, 2]}
    assert json.loads(parse("bad_too_many_texts.json").decoded_body) == {"texts": ["x"] * 257}


def test_unroutable_events_miss_the_routes() -> None:
    unknown = EXPECTATIONS["bad_unknown_route.json"]
    assert unknown["status"] == 404 and unknown["path"] not in ROUTES
    wrong = EXPECTATIONS["bad_wrong_method.json"]
    assert wrong["status"] == 405 and ROUTES[wrong["path"]] != wrong["method"]
    for name, exp in EXPECTATIONS.items():
        if exp["status"] not in (404, 405) and exp["source"] != "direct":
            assert ROUTES.get(exp["path"]) == exp["method"], name
