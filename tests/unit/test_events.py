"""events/: every event is a real envelope that Powertools parses, and each has its expectations.

The end-to-end tests send every event through the handler its expectations entry names
(``handler``: the encode function's ``function.app.handler`` or a bulk handler) and check the
response against ``events/expectations.json``; here we only prove the files are what they claim to be.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import unicodedata
from typing import Any
from urllib.parse import unquote_plus

import pytest
from aws_lambda_powertools.utilities.data_classes import (
    APIGatewayProxyEvent,
    APIGatewayProxyEventV2,
    EventBridgeEvent,
    LambdaFunctionUrlEvent,
    S3Event,
    SQSEvent,
)

from bert2vec.http.route_table import ROUTES as DECLARED_ROUTES
from tests.conftest import EVENT_OBJECT_BYTES, EVENT_OBJECT_KEY, EVENTS, load_event

EXPECTATIONS_FILE = "expectations.json"
EVENT_FILES = sorted(p.name for p in EVENTS.glob("*.json") if p.name != EXPECTATIONS_FILE)

ROUTES: dict[str, str] = {r.path: r.method for r in DECLARED_ROUTES}  # the code's one declaration
SOURCES = {"rest", "http", "url", "direct"}
ENCODE_HANDLER = "function.app.handler"
PLANNER_HANDLER = "function.bulk_app.s3_handler"
WORKER_HANDLER = "function.bulk_app.sqs_handler"
# The bulk events' sources and the handler that takes each.
BULK_SOURCES = {"s3": PLANNER_HANDLER, "eventbridge": PLANNER_HANDLER, "sqs": WORKER_HANDLER, "s3batch": PLANNER_HANDLER}
INPUT_PREFIX = "incoming/"  # template.yaml defaults
OUTPUT_PREFIX = "vectors/"
INPUT_BUCKET = "bert2vec-input"
# The key of s3_object_created.json's object (EVENT_OBJECT_KEY) as S3 notifications carry it
# (form-encoded, UTF-8).
OBJECT_KEY_IN_S3_EVENT = "incoming/my+docs/caf%C3%A9+notes.txt"
SHARD_BODY: dict[str, Any] = {
    "v": 1,
    "bucket": "bert2vec-input",
    "key": "incoming/big.txt",
    "etag": "9b2cf535f27731c974343645a3985328",
    "size": 100000000,
    "format": {"kind": "txt", "gzip": False},
    "unit": "bytes",
    "chunk_size": 8388608,
    "first_chunk": 4,
    "end_chunk": 8,
    "first_line": 412345,
    "input_prefix": "incoming/",
}
STATUSES = {200, 400, 404, 405, 413, 422}
BODY_KEYS = {
    "/encode": ["vectors", "dimension", "model", "token_counts", "truncated"],
    "/v1/embeddings": ["object", "data", "model", "usage"],
    "/embed": [],
    "/": [],
    "/tokenize": [],
    "/health": ["status", "model", "dimension"],
}
LIST_BODIES = {"/embed", "/", "/tokenize"}  # TEI answers bare lists (vectors; token lists)
TEXT_FIELDS = {
    "/encode": ("text", "texts"),
    "/v1/embeddings": ("input",),
    "/embed": ("inputs",),
    "/": ("inputs",),
    "/tokenize": ("inputs",),
}
MAX_TEXTS = 2048  # bert2vec/core/defaults.py
MAX_REQUEST_TOKENS = 8_192
MAX_SEQ_LENGTH = 256  # the default model's

HttpEvent = APIGatewayProxyEvent | APIGatewayProxyEventV2 | LambdaFunctionUrlEvent


def _expectations() -> dict[str, dict[str, Any]]:
    return json.loads((EVENTS / EXPECTATIONS_FILE).read_text(encoding="utf-8"))


EXPECTATIONS = _expectations()
ENCODE_EVENTS = sorted(n for n, e in EXPECTATIONS.items() if e.get("handler") == ENCODE_HANDLER)
BULK_EVENTS = sorted(n for n, e in EXPECTATIONS.items() if e.get("handler") != ENCODE_HANDLER)


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
    return [n for n in EVENT_FILES if n in ENCODE_EVENTS and EXPECTATIONS[n]["source"] != "direct"]


def test_there_are_events() -> None:
    assert len(EVENT_FILES) >= 16


def test_every_event_has_expectations_and_vice_versa() -> None:
    assert sorted(EXPECTATIONS) == EVENT_FILES


def test_readme_lists_every_event() -> None:
    readme = (EVENTS / "README.md").read_text(encoding="utf-8")
    missing = [n for n in EVENT_FILES if f"`{n}`" not in readme]
    assert not missing, f"events/README.md does not describe {missing}"


def test_every_expectation_names_its_handler() -> None:
    handlers = {n: e.get("handler") for n, e in EXPECTATIONS.items()}
    assert set(handlers.values()) <= {ENCODE_HANDLER, PLANNER_HANDLER, WORKER_HANDLER}, handlers
    assert len(ENCODE_EVENTS) >= 16
    assert BULK_EVENTS == [
        "eventbridge_object_created.json",
        "eventbridge_object_deleted.json",
        "s3_batch_operations.json",
        "s3_object_created.json",
        "s3_object_created_output_prefix.json",
        "s3_object_removed.json",
        "sqs_shard.json",
    ]


@pytest.mark.parametrize("name", ENCODE_EVENTS)
def test_expectation_entry_is_well_formed(name: str) -> None:
    exp = EXPECTATIONS[name]
    assert exp["handler"] == ENCODE_HANDLER
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
        assert (exp["body_type"] == "list") == (path in LIST_BODIES)
        if path in TEXT_FIELDS:
            assert isinstance(exp["vectors"], int) and exp["vectors"] >= 1
    elif (exp["path"] or "").startswith("/v1/"):  # OpenAI's error object: {"error": {"message", ..., "code"}}
        assert exp["keys"] == ["error"] and exp["exact_keys"] is True
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
    from bert2vec.http import routes  # an import error here is a failure, never a skip

    assert routes.event_kind(load_event(name)) == EXPECTATIONS[name]["source"]


def test_direct_event_has_no_envelope() -> None:
    names = [n for n, e in EXPECTATIONS.items() if e["source"] == "direct"]  # {"inputs"}: tests/functional
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
    if exp.get("error_type") == "malformed_json" and load_event(name).get("isBase64Encoded"):  # not base64 at all
        with pytest.raises(binascii.Error):
            base64.b64decode(event.body, validate=True)
        return
    text = event.decoded_body
    if exp.get("error_type") == "malformed_json":
        try:
            body = json.loads(text)
        except json.JSONDecodeError:
            return
        texts = body["texts"]  # valid JSON, but a text holds a lone surrogate: no UTF-8 exists for it
        bad = [t for t in texts if any(0xD800 <= ord(c) <= 0xDFFF for c in t)]
        assert bad
        with pytest.raises(UnicodeEncodeError):
            bad[0].encode("utf-8")
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
    assert others == ["api_gateway_v1_encode_base64.json", "bad_invalid_base64.json"]


def test_openai_events() -> None:
    floats = json.loads(parse("openai_embeddings.json").decoded_body)
    assert floats["encoding_format"] == "float" and floats["model"] == "bert2vec"
    assert isinstance(floats["input"], list) and len(floats["input"]) == 2
    b64 = json.loads(parse("openai_embeddings_base64.json").decoded_body)
    assert b64["encoding_format"] == "base64" and isinstance(b64["input"], str)


def test_bad_request_bodies() -> None:
    assert json.loads(parse("bad_empty_text.json").decoded_body) == {"texts": ["ok", ""]}
    assert json.loads(parse("bad_wrong_type.json").decoded_body) == {"texts": [1, 2]}
    assert json.loads(parse("bad_too_many_texts.json").decoded_body) == {"texts": ["x"] * (MAX_TEXTS + 1)}


def test_budget_event_is_over_the_wordpiece_budget_only() -> None:
    """33 texts of 255 one-letter words: 257 wordpieces each, counted at max_seq_length = 256."""
    texts = json.loads(parse("bad_request_too_large.json").decoded_body)["texts"]
    assert len(texts) <= MAX_TEXTS and sum(map(len, texts)) <= 150_000  # within MAX_TEXTS / MAX_REQUEST_CHARS
    assert len(texts) * MAX_SEQ_LENGTH > MAX_REQUEST_TOKENS >= (len(texts) - 1) * MAX_SEQ_LENGTH
    assert all(len(t.split()) + 2 > MAX_SEQ_LENGTH for t in texts)


def test_blank_text_event_has_only_unreadable_characters() -> None:
    texts = json.loads(parse("bad_blank_text.json").decoded_body)["texts"]
    assert texts[0] == "ok"
    assert texts[1].strip() and {unicodedata.category(c) for c in texts[1]} <= {"Cc", "Cf", "Mn", "Me"}


def test_tei_and_openai_client_events() -> None:
    assert (
        json.loads(parse("tei_root.json").decoded_body)["inputs"]
        == json.loads(parse("openai_embeddings.json").decoded_body)["input"]
    )
    assert json.loads(parse("tei_tokenize.json").decoded_body) == {"inputs": "Serverless BERT on Lambda"}
    tokens = json.loads(parse("bad_openai_token_array.json").decoded_body)["input"]
    assert all(isinstance(i, int) for row in tokens for i in row)  # what LangChain sends by default
    assert json.loads(parse("bad_tei_prompt_name.json").decoded_body)["prompt_name"] == "query"


def test_unroutable_events_miss_the_routes() -> None:
    unknown = EXPECTATIONS["bad_unknown_route.json"]
    assert unknown["status"] == 404 and unknown["path"] not in ROUTES
    wrong = EXPECTATIONS["bad_wrong_method.json"]
    assert wrong["status"] == 405 and ROUTES[wrong["path"]] != wrong["method"]
    for name in ENCODE_EVENTS:
        exp = EXPECTATIONS[name]
        if exp["status"] not in (404, 405) and exp["source"] != "direct":
            assert ROUTES.get(exp["path"]) == exp["method"], name


# ---------------------------------------------------------------------------------------------
# bulk path: S3 / EventBridge Object Created and S3 Batch Operations -> planner, SQS shard -> worker
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", BULK_EVENTS)
def test_bulk_expectation_entry_is_well_formed(name: str) -> None:
    """The entries pin handler, status, source and what the handler returns (``returns``, asserted
    through the real handlers by tests/unit/test_bulk_events.py)."""
    exp = EXPECTATIONS[name]
    assert exp["source"] in BULK_SOURCES
    assert exp["handler"] == BULK_SOURCES[exp["source"]]
    assert exp["status"] == 200
    assert exp["keys"] == []
    assert isinstance(exp["returns"], dict) and exp["returns"]


def _s3_record(name: str) -> Any:
    event = S3Event(load_event(name))
    records = list(event.records)
    assert len(records) == 1
    return records[0]


def test_s3_event_key_is_url_encoded_as_s3_sends_it() -> None:
    raw = load_event("s3_object_created.json")
    record = _s3_record("s3_object_created.json")
    assert record.event_source == "aws:s3"
    assert record.event_name == "ObjectCreated:Put"
    assert record.s3.bucket.name == INPUT_BUCKET
    assert record.s3.bucket.arn == f"arn:aws:s3:::{INPUT_BUCKET}"
    key = record.s3.get_object.key  # as carried: form-encoded
    assert key == OBJECT_KEY_IN_S3_EVENT
    assert " " not in key and "é" not in key
    assert unquote_plus(key) == EVENT_OBJECT_KEY
    assert S3Event(raw).object_key == EVENT_OBJECT_KEY  # Powertools decodes it too
    assert record.s3.get_object.size == len(EVENT_OBJECT_BYTES) == 76
    assert record.s3.get_object.etag == hashlib.md5(EVENT_OBJECT_BYTES).hexdigest()


def test_output_prefix_event_is_outside_the_input_prefix() -> None:
    """The planner must ignore it: the trigger never matches it and the handler skips it."""
    record = _s3_record("s3_object_created_output_prefix.json")
    assert record.event_name.startswith("ObjectCreated:")
    assert record.s3.bucket.name == INPUT_BUCKET  # outputs default to the input bucket
    key = unquote_plus(record.s3.get_object.key)
    assert key.startswith(OUTPUT_PREFIX)
    assert not key.startswith(INPUT_PREFIX)
    assert re.fullmatch(r"[0-9a-f]{32}", record.s3.get_object.etag)


def test_eventbridge_event_shape() -> None:
    raw = load_event("eventbridge_object_created.json")
    event = EventBridgeEvent(raw)
    assert event.source == "aws.s3"
    assert event.detail_type == "Object Created"
    assert event.version == "0"
    assert event.resources == [f"arn:aws:s3:::{INPUT_BUCKET}"]
    assert re.fullmatch(r"\d{12}", event.account)
    detail = event.detail
    assert detail["bucket"]["name"] == INPUT_BUCKET
    assert detail["reason"] == "PutObject"
    assert {"request-id", "requester", "source-ip-address"} <= set(detail)
    # EventBridge carries the key as it is, NOT URL-encoded (events/README.md).
    assert detail["object"]["key"] == EVENT_OBJECT_KEY
    assert detail["object"]["size"] == len(EVENT_OBJECT_BYTES)
    assert detail["object"]["etag"] == hashlib.md5(EVENT_OBJECT_BYTES).hexdigest()


def test_s3_and_eventbridge_events_describe_the_same_object() -> None:
    s3 = _s3_record("s3_object_created.json").s3
    detail = EventBridgeEvent(load_event("eventbridge_object_created.json")).detail
    assert s3.bucket.name == detail["bucket"]["name"]
    assert unquote_plus(s3.get_object.key) == detail["object"]["key"]
    assert s3.get_object.size == detail["object"]["size"]
    assert s3.get_object.etag == detail["object"]["etag"]
    assert detail["object"]["key"].startswith(INPUT_PREFIX)


def test_sqs_shard_event() -> None:
    raw = load_event("sqs_shard.json")
    records = list(SQSEvent(raw).records)
    assert len(records) == 1
    record = records[0]
    assert record.event_source == "aws:sqs"
    assert record.event_source_arn.startswith("arn:aws:sqs:")
    assert record.message_id and record.receipt_handle
    assert record.attributes.approximate_receive_count == "1"
    assert isinstance(raw["Records"][0]["body"], str)  # string-encoded JSON, as SQS delivers it
    assert record.md5_of_body == hashlib.md5(record.body.encode()).hexdigest()
    body = json.loads(record.body)
    assert body == record.json_body == SHARD_BODY
    assert list(body) == list(SHARD_BODY)  # same field order as the planner writes
    assert body["key"].startswith(body["input_prefix"]) and body["input_prefix"] == INPUT_PREFIX
    assert 0 <= body["first_chunk"] < body["end_chunk"]
    assert body["end_chunk"] * body["chunk_size"] <= body["size"]


def test_batch_operations_event_is_what_powertools_reads() -> None:
    from aws_lambda_powertools.utilities.data_classes import S3BatchOperationEvent

    event = S3BatchOperationEvent(load_event("s3_batch_operations.json"))
    assert event.invocation_schema_version == "2.0" and event.job.user_arguments == {}
    (task,) = list(event.tasks)
    assert task.s3_bucket == INPUT_BUCKET and task.s3_key.startswith(INPUT_PREFIX) and task.s3_version_id is None
