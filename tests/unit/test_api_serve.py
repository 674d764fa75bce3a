"""``bert-encode --serve``'s translation: HTTP request → HTTP API (v2) event → HTTP response.

The server itself runs against the real handler and the real clients in
tests/functional/test_api_clients.py; here the two translations, parsed by Powertools.
"""

from __future__ import annotations

import base64
import json

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from bert2vec.cli.serve import http_api_event, proxy_response
from function.routes import event_kind


def test_request_becomes_an_http_api_event() -> None:
    body = json.dumps({"input": "héllo"}).encode()
    headers = [("Content-Type", "application/json"), ("X-Tag", "a"), ("x-tag", "b"), ("Cookie", "k=v; z=1")]
    raw = http_api_event("POST", "/v1/embeddings?x=1&x=2&y=", headers, body, host="127.0.0.1:8080", source_ip="::1")
    assert event_kind(raw) == "http"  # not a Function URL, not a direct invoke
    event = APIGatewayProxyEventV2(raw)
    assert (event.http_method, event.path, event.raw_path) == ("POST", "/v1/embeddings", "/v1/embeddings")
    assert event.request_context.stage == "$default" and event.request_context.http.source_ip == "::1"
    assert event.headers["x-tag"] == "a,b" and event.headers["content-type"] == "application/json"
    assert event.query_string_parameters == {"x": "1,2", "y": ""} and event.raw_query_string == "x=1&x=2&y="
    assert event.cookies == ["k=v", "z=1"]
    assert event.is_base64_encoded is False and json.loads(event.body) == {"input": "héllo"}


def test_binary_or_undecodable_bodies_travel_as_base64() -> None:
    for ctype, data in (("application/octet-stream", b"\x00\x01"), ("application/json", b"\xff\xfe")):
        raw = http_api_event("POST", "/encode", [("Content-Type", ctype)], data, host="h", source_ip="1.2.3.4")
        assert raw["isBase64Encoded"] is True and base64.b64decode(raw["body"]) == data
    raw = http_api_event("GET", "/health", [], b"", host="h", source_ip="1.2.3.4")
    assert "body" not in raw and raw["rawPath"] == "/health"


def test_proxy_response_becomes_http() -> None:
    out = {
        "statusCode": 405,
        "headers": {"Content-Type": "application/json", "Allow": "POST"},
        "multiValueHeaders": {"Vary": ["Origin", "Accept"]},
        "cookies": ["a=b"],
        "body": base64.b64encode(b'{"error": "x"}').decode(),
        "isBase64Encoded": True,
    }
    status, headers, data = proxy_response(out)
    assert status == 405 and data == b'{"error": "x"}'
    assert ("Allow", "POST") in headers and ("Vary", "Accept") in headers and ("Set-Cookie", "a=b") in headers
    # payload 2.0: a handler may return any JSON value (a direct-style answer) = 200 application/json
    assert proxy_response([[0.5]]) == (200, [("Content-Type", "application/json")], b"[[0.5]]")
