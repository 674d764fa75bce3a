"""``POST /search`` through the real handler and routes; the S3 Vectors calls are checked against
botocore's service model with ``Stubber`` (moto does not implement ``QueryVectors``)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.stub import ANY, Stubber

from function.search import VectorSearch
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
