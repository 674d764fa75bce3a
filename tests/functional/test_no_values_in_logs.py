"""Logs and stored manifests carry types, field names and counts, never the caller's values.

A marker goes through every rejection path the HTTP routes and the direct invoke have (option
values, unknown field names, ``/search`` filter operands, paths) and through the bulk path's
rejections (a CSV without a header row, bad JSONL lines); then every log line (stdout, stderr,
log records), every manifest and every errors file is searched for it. The caller's own HTTP
answer may still quote it: that is for them.
"""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest

from tests.bulk_support import BUCKET, forever, make_engine
from tests.conftest import load_event
from tests.functional.test_bulk_s3 import put

MARKER = "ZqxMarker7731"
NUMBER = 7731773  # the marker as a number, for fields that take numbers

HTTP_REJECTIONS: list[tuple[str, Any]] = [
    ("/encode", {"texts": ["a"], "long_text": MARKER}),
    ("/encode", {"texts": ["a"], "long_text": "chunk", "stride": MARKER}),
    ("/encode", {"texts": ["a"], "normalize": MARKER}),
    ("/encode", {"texts": ["a"], "truncate": MARKER}),
    ("/encode", '{"texts": ["' + MARKER + '" ' + MARKER + "]}"),  # malformed JSON
    ("/encode", {"texts": MARKER}),  # a string where a list belongs
    ("/encode", {"text": [MARKER]}),
    ("/encode", {"texts": [MARKER, 7]}),
    ("/encode", {"texts": [MARKER, " "]}),  # empty text
    ("/encode", {"texts": [MARKER * 7_000] * 2}),  # over the request budget
    ("/encode", {"texts": [MARKER] * 3000}),  # too many texts
    ("/encode", {"texts": [MARKER + " word" * 400], "long_text": "reject"}),  # too long for the model
    ("/v1/embeddings", {"input": [[NUMBER, 1]]}),  # token arrays
    ("/v1/embeddings", {"input": "a", "encoding_format": MARKER}),
    ("/v1/embeddings", {"input": "a", "dimensions": MARKER}),
    ("/v1/embeddings", {"input": "a", "dimensions": NUMBER}),
    ("/embed", {"inputs": "a", "prompt_name": MARKER}),
    ("/embed", {"inputs": "a", "truncation_direction": MARKER}),
    ("/", {"inputs": "a", "prompt_name": MARKER}),
    ("/tokenize", {"inputs": "a", "prompt_name": MARKER}),
    ("/search", {"query": "a", MARKER: 1}),  # the one route that refuses unknown fields
    ("/search", {"query": "a", "top_k": MARKER}),
    ("/search", {"query": "a", "top_k": NUMBER}),
    ("/search", {"query": "a", "filter": {"source_key": {"$eq": [MARKER]}}}),
    ("/search", {"query": "a", "filter": {"source_key": {"$in": MARKER}}}),
    ("/search", {"query": "a", "filter": {"line": {"$gt": MARKER}}}),
    ("/search", {"query": "a", "filter": {"source_key": {"$" + MARKER: 1}}}),
    ("/search", {"query": "a", "filter": {"$" + MARKER: []}}),
    ("/search", {"query": "a", "filter": {"$and": MARKER}}),
    ("/search", {"query": "a", "filter": {"line": {"$exists": MARKER}}}),
    ("/" + MARKER, {"inputs": "a"}),
]
DIRECT_REJECTIONS: list[dict[str, Any]] = [
    {"texts": ["a"], "long_text": MARKER},
    {"inputs": "a", "prompt_name": MARKER},
]


class Records(logging.Handler):
    """Every record any logger emits at INFO and above (the template's LogLevel default; libraries'
    DEBUG output is off in Lambda), with every attribute (Powertools puts ``extra`` there)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(json.dumps({k: str(v) for k, v in record.__dict__.items()}, ensure_ascii=False))


@pytest.fixture
def records():
    handler = Records()
    loggers = [logging.getLogger(), *(logging.getLogger(n) for n in list(logging.root.manager.loggerDict))]
    saved = [(lg, lg.level) for lg in loggers if isinstance(lg, logging.Logger)]
    for lg, level in saved:
        lg.addHandler(handler)
        if level == logging.NOTSET or level > logging.INFO:
            lg.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        for lg, level in saved:
            lg.removeHandler(handler)
            lg.setLevel(level)


def _leaks(texts: list[str]) -> list[str]:
    return [t for t in texts if MARKER in t or str(NUMBER) in t]


def test_rejected_requests_log_no_values(app_module, lambda_context, records, capfd) -> None:
    handler = app_module.logger.registered_handler  # the JSON lines Lambda would ship to CloudWatch
    shipped = io.StringIO()
    previous = handler.setStream(shipped)
    try:
        statuses = _reject_all(app_module, lambda_context)
    finally:
        handler.setStream(previous)
    assert all(400 <= s < 500 for _, s in statuses), statuses  # each one went down a rejection path
    out, err = capfd.readouterr()
    lines = shipped.getvalue().splitlines() + out.splitlines() + err.splitlines()
    rejected = [json.loads(line) for line in shipped.getvalue().splitlines() if "request rejected" in line]
    assert not _leaks(lines), _leaks(lines)
    assert not _leaks(records.texts), _leaks(records.texts)
    assert len(rejected) == sum(s != 404 for _, s in statuses), "one log line per rejection (an unknown path: none)"
    assert all({"status", "error_type"} <= set(r) for r in rejected)
    assert {r.get("param") for r in rejected} >= {"long_text", "encoding_format", "dimensions", "prompt_name", "filter"}


def _reject_all(app_module, lambda_context) -> list[tuple[str, int]]:
    statuses = []
    for path, body in HTTP_REJECTIONS:
        event = load_event("api_gateway_v2_encode.json")
        event["rawPath"] = event["requestContext"]["http"]["path"] = path
        event["body"] = body if isinstance(body, str) else json.dumps(body)
        out = app_module.handler(event, lambda_context)
        statuses.append((path, out["statusCode"]))
    for body in DIRECT_REJECTIONS:
        out = app_module.handler(body, lambda_context)
        statuses.append(("direct", out["status"]))
    return statuses


def _stored(s3) -> list[str]:
    """Every object the bulk path wrote outside the inputs (manifests, errors files, parts)."""
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []) if not o["Key"].startswith("incoming/")]
    return [f"{k}: " + s3.get_object(Bucket=BUCKET, Key=k)["Body"].read().decode("utf-8", "replace") for k in keys]


def test_bulk_rejections_store_and_log_no_values(aws, default_encoder, records, capfd) -> None:
    s3 = aws["s3"]
    # No header row: the first record would be taken as the header.
    put(s3, "incoming/people.csv", f"alice,{MARKER}@example.com,hello\nbob,b@example.com,hi\n".encode())
    put(s3, "incoming/rows.jsonl", "\n".join([
        '{"text": "fine"}',
        '{"text": "' + MARKER + '" ' + MARKER + "}",  # invalid JSON
        json.dumps({"txt": MARKER}),  # missing text field
        json.dumps({"text": [MARKER]}),  # not a string
        json.dumps({"text": {"x": MARKER}}),
        json.dumps([MARKER]),  # not an object
        json.dumps({"text": "\u200b" + MARKER[:0]}),  # nothing to encode
    ]).encode() + b"\n")  # fmt: skip
    eng = make_engine(aws, encoder=default_encoder)
    csv = eng.handle_object(BUCKET, "incoming/people.csv", forever)
    rows = eng.handle_object(BUCKET, "incoming/rows.jsonl", forever)
    assert csv.status == "failed" and rows.status == "complete", (csv, rows)
    stored = _stored(s3)
    out, err = capfd.readouterr()
    for texts in (stored, out.splitlines() + err.splitlines(), records.texts):
        assert not _leaks(texts), _leaks(texts)
    manifest = next(t for t in stored if t.startswith("vectors/people.csv.manifest.json"))
    assert "no column 'text'" in manifest and "3 columns" in manifest  # names the column, counts the rest
    errors_key = json.loads(s3.get_object(Bucket=BUCKET, Key="vectors/rows.jsonl.manifest.json")["Body"].read())["output"]["errors_key"]
    errors = next(t for t in stored if t.startswith(f"{errors_key}: "))
    assert errors.count('"reason"') == 6
