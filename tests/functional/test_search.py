"""``POST /search`` through the real handler and routes; the S3 Vectors calls are checked against
botocore's service model with ``Stubber`` (moto does not implement ``QueryVectors``)."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.stub import ANY, Stubber

from bert2vec.http.search import MAX_ATTEMPTS, VectorSearch, search_client
from tests.conftest import load_event


def post(app_module, ctx, body: Any) -> tuple[int, Any]:
    event = load_event("api_gateway_v2_encode.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/search"
    event["body"] = json.dumps(body)
    response = app_module.handler(event, ctx)
    return response["statusCode"], json.loads(response["body"])


@pytest.fixture
def stubbed(app_module, monkeypatch: pytest.MonkeyPatch):
    client = boto3.client("s3vectors", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    sent: list[dict[str, Any]] = []
    client.meta.events.register("provide-client-params.s3vectors.QueryVectors", lambda params, **kw: sent.append(params))
    monkeypatch.setattr(app_module.routes, "vector_search", VectorSearch("bert2vec-vectors", "lines", client))
    with Stubber(client) as stub:
        yield stub, sent


def test_not_configured_is_404(app_module, lambda_context, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_module.routes, "vector_search", VectorSearch(None, None))
    status, body = post(app_module, lambda_context, {"query": "a dog on the beach"})
    assert status == 404 and body["error_type"] == "not_configured" and "OutputFormat=s3vectors" in body["error"]


def test_search_embeds_the_query_and_returns_neighbours(app_module, lambda_context, stubbed, default_encoder) -> None:
    stub, sent = stubbed
    found = {"vectors": [
        {"key": "incoming/a.txt#3", "distance": 0.12, "metadata": {"source_key": "incoming/a.txt", "line": 3, "text": "dogs"}},
        {"key": "doc-9", "distance": 0.4, "metadata": {"line": 9}},
    ], "distanceMetric": "cosine"}  # fmt: skip
    expected = {"vectorBucketName": "bert2vec-vectors", "indexName": "lines", "topK": 2, "queryVector": ANY,
                "returnMetadata": True, "returnDistance": True, "filter": {"source_key": {"$eq": "incoming/a.txt"}}}  # fmt: skip
    stub.add_response("query_vectors", found, expected)
    status, body = post(app_module, lambda_context, {"query": "a dog on the beach", "top_k": 2,
                                                     "filter": {"source_key": {"$eq": "incoming/a.txt"}}})  # fmt: skip
    assert status == 200, body
    assert body["index"] == "lines" and [r["key"] for r in body["results"]] == ["incoming/a.txt#3", "doc-9"]
    assert body["results"][0] == {"key": "incoming/a.txt#3", "distance": 0.12, "metadata": found["vectors"][0]["metadata"]}
    (params,) = sent
    ref = default_encoder.encode(["a dog on the beach"]).embeddings[0]
    np.testing.assert_allclose(params["queryVector"]["float32"], ref, atol=1e-6)
    stub.assert_no_pending_responses()


def test_search_refuses_to_rank_another_models_vectors(app_module, lambda_context, stubbed) -> None:
    """Vectors tagged with another model's checksum (a deploy of another model over the same index)
    are never ranked against this model's query: 409 ``index_model_mismatch``. Untagged vectors
    (written before the tag) and this model's own pass."""
    stub, _ = stubbed
    mine = app_module.routes.service().encoder.card["checksum"][:16]
    ours = {"key": "a", "distance": 0.1, "metadata": {"model": mine}}
    untagged = {"key": "b", "distance": 0.2, "metadata": {}}
    stub.add_response("query_vectors", {"vectors": [ours, untagged], "distanceMetric": "cosine"})
    status, body = post(app_module, lambda_context, {"query": "a dog"})
    assert status == 200, body
    theirs = {"key": "c", "distance": 0.3, "metadata": {"model": "0" * 16}}
    stub.add_response("query_vectors", {"vectors": [ours, theirs], "distanceMetric": "cosine"})
    status, body = post(app_module, lambda_context, {"query": "a dog"})
    assert status == 409 and body["error_type"] == "index_model_mismatch", body
    assert "0" * 16 in body["error"] and "new index" in body["error"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "'query' must be a string"),
        ({"query": 7}, "'query' must be a string"),
        ({"query": "x", "top_k": 0}, "from 1 to 30"),
        ({"query": "x", "top_k": 31}, "from 1 to 30"),
        ({"query": "x", "top_k": True}, "from 1 to 30"),
        ({"query": "x", "top_k": "5"}, "from 1 to 30"),
        ({"query": "x", "filter": ["a"]}, "'filter' must be an object"),
        ({"query": "x", "k": 3}, "unknown field"),
    ],
)
def test_bad_search_requests_are_422(app_module, lambda_context, stubbed, body: Any, fragment: str) -> None:
    status, err = post(app_module, lambda_context, body)
    assert status == 422 and err["error_type"] == "validation" and fragment in err["error"]


def test_an_empty_query_is_400_like_encode(app_module, lambda_context, stubbed) -> None:
    status, err = post(app_module, lambda_context, {"query": "   "})
    assert status == 400 and err["error_type"] == "empty_input"


# ---- the filter is checked before the call ----------------------------------------------------


@pytest.mark.parametrize(
    ("flt", "fragment"),
    [
        ({"genre": {"$regex": "a.*"}}, "unknown operator '$regex'"),
        ({"$not": {"a": 1}}, "unknown operator '$not'"),
        ({"year": {"$gt": "2020"}}, "expected a number"),
        ({"genre": {"$in": []}}, "non-empty array"),
        ({"genre": {"$in": [{"a": 1}]}}, "expected a string, number or boolean"),
        ({"genre": {"$exists": 1}}, "$exists takes true or false"),
        ({"$and": []}, "non-empty array of filters"),
        ({"$or": [{}]}, "non-empty object"),
        ({"genre": {}}, "an empty object"),
        ({"genre": None}, "expected a string, number or boolean"),
        ({"": 1}, "field name is empty"),
        ({"text": "x" * 3_000_000}, "at most 16384"),
    ],
)
def test_a_bad_filter_is_422_naming_where(app_module, lambda_context, stubbed, flt: Any, fragment: str) -> None:
    status, err = post(app_module, lambda_context, {"query": "x", "filter": flt})
    assert status == 422 and err["error_type"] == "validation" and fragment in err["error"], err
    assert len(err["error"]) < 1_200
    stubbed[0].assert_no_pending_responses()  # nothing was sent to AWS


def test_a_filter_nested_too_deep_is_422(app_module, lambda_context, stubbed) -> None:
    flt: dict[str, Any] = {"a": 1}
    for _ in range(400):
        flt = {"$and": [flt]}
    status, err = post(app_module, lambda_context, {"query": "x", "filter": flt})
    assert status == 422 and "deeper than 10 levels" in err["error"]


def test_every_documented_operator_passes_to_query_vectors(app_module, lambda_context, stubbed) -> None:
    stub, sent = stubbed
    flt = {"$and": [{"genre": "drama"}, {"genre": {"$ne": "x", "$in": ["a", 1, True], "$nin": ["b"]}},
                    {"$or": [{"year": {"$gt": 1, "$gte": 2.5, "$lt": 3, "$lte": 4}}, {"seen": {"$exists": False}}]},
                    {"n": {"$eq": 3}}]}  # fmt: skip
    stub.add_response("query_vectors", {"vectors": [], "distanceMetric": "cosine"}, {**_expected(), "filter": flt})
    status, body = post(app_module, lambda_context, {"query": "x", "top_k": 3.0, "filter": flt})
    assert status == 200 and body["results"] == []
    assert sent[0]["topK"] == 3  # a whole float is the integer, as on every route


def _expected() -> dict[str, Any]:
    return {"vectorBucketName": "bert2vec-vectors", "indexName": "lines", "topK": ANY, "queryVector": ANY,
            "returnMetadata": True, "returnDistance": True}  # fmt: skip


def test_a_filter_from_python_with_nan_is_refused_too() -> None:
    from bert2vec.core.errors import InvalidInputError
    from bert2vec.http.search_filter import check_filter

    for value in (float("nan"), float("inf")):
        with pytest.raises(InvalidInputError, match="not a finite number"):
            check_filter({"year": {"$lt": value}})


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_nan_and_infinity_are_not_json(app_module, lambda_context, stubbed, literal: str) -> None:
    event = load_event("api_gateway_v2_encode.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/search"
    event["body"] = '{"query": "x", "filter": {"year": {"$gt": ' + literal + "}}}"
    response = app_module.handler(event, lambda_context)
    err = json.loads(response["body"])
    assert response["statusCode"] == 400 and err["error_type"] == "malformed_json" and literal in err["error"]


# ---- AWS errors become answers a caller can act on ---------------------------------------------


@pytest.mark.parametrize(
    ("code", "http_status", "with_filter", "status", "error_type", "fragment"),
    [
        ("ValidationException", 400, True, 422, "validation", "S3 Vectors refused the 'filter': bad key"),
        ("ValidationException", 400, False, 503, "search_unavailable", "refused the query"),
        ("NotFoundException", 404, False, 503, "search_unavailable", "does not exist"),
        ("AccessDeniedException", 403, False, 503, "search_unavailable", "may not query"),
        ("TooManyRequestsException", 429, False, 429, "search_throttled", "retry after 1 s"),
        ("ServiceUnavailableException", 503, False, 429, "search_throttled", "busy"),
    ],
)
def test_aws_errors_are_mapped(app_module, lambda_context, stubbed, code, http_status, with_filter, status,
                               error_type, fragment) -> None:  # fmt: skip
    stub, _ = stubbed
    stub.add_client_error("query_vectors", code, "bad key", http_status)
    body = {"query": "x", **({"filter": {"k": 1}} if with_filter else {})}
    event = load_event("api_gateway_v2_encode.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/search"
    event["body"] = json.dumps(body)
    response = app_module.handler(event, lambda_context)
    err = json.loads(response["body"])
    assert (response["statusCode"], err["error_type"]) == (status, error_type) and fragment in err["error"], err
    assert ("Retry-After" in response.get("headers", {})) == (status == 429)


class FakeS3Vectors:
    """A local endpoint that answers every call with ``status``/``code`` (or never, ``hang``)."""

    def __init__(self, status: int = 429, code: str = "TooManyRequestsException", hang: bool = False) -> None:
        import http.server
        import threading

        self.calls = 0
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                outer.calls += 1
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if hang:
                    time.sleep(5)
                    return
                data = json.dumps({"message": "slow down"}).encode()
                self.send_response(status)
                self.send_header("x-amzn-ErrorType", code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)


def test_throttling_answers_429_within_seconds_with_the_functions_client(app_module, lambda_context, aws_env,
                                                                         monkeypatch) -> None:  # fmt: skip
    fake = FakeS3Vectors()
    try:
        client = search_client(fake.url)  # the function's own config: bounded attempts and timeouts
        monkeypatch.setattr(app_module.routes, "vector_search", VectorSearch("bert2vec-vectors", "lines", client))
        t0 = time.monotonic()
        status, err = post(app_module, lambda_context, {"query": "a dog"})
        elapsed = time.monotonic() - t0
    finally:
        fake.close()
    assert (status, err["error_type"]) == (429, "search_throttled"), err
    assert fake.calls == MAX_ATTEMPTS and elapsed < 10  # not 11 attempts over 89 s


def test_an_index_that_does_not_answer_is_503_after_the_read_timeout(app_module, lambda_context, aws_env,
                                                                     monkeypatch) -> None:  # fmt: skip
    fake = FakeS3Vectors(hang=True)
    try:
        client = search_client(fake.url, read_timeout=0.5)
        monkeypatch.setattr(app_module.routes, "vector_search", VectorSearch("bert2vec-vectors", "lines", client))
        status, err = post(app_module, lambda_context, {"query": "a dog"})
    finally:
        fake.close()
    assert (status, err["error_type"]) == (503, "search_unavailable") and "did not answer in time" in err["error"]
    assert fake.calls == MAX_ATTEMPTS


def test_the_search_client_is_bounded(aws_env) -> None:
    client = search_client("http://127.0.0.1:9")
    cfg = client.meta.config
    assert cfg.retries["total_max_attempts"] == MAX_ATTEMPTS and cfg.read_timeout <= 5 and cfg.connect_timeout <= 2
