"""The built image's S3 path: a file dropped into a moto server, the planner and worker containers, the manifest.

moto's server listens on 127.0.0.1; the containers share the host network, so boto3 inside them
reaches it through ``AWS_ENDPOINT_URL`` as the process-level e2e tests do. Small shard sizes make one
file fan out into several SQS messages, each handled by the worker container.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import load_event
from tests.e2e.lambda_checks import BUCKET, drain_shards, read_manifest
from tests.image.container import container_session


def _env(endpoint: str, queue_url: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1", "SHARD_QUEUE_URL": queue_url, "CHUNK_BYTES": "256",
        "SHARD_BYTES": "1024", "SHARD_MAX_RECEIVES": "3", "TIME_MARGIN_MS": "1000",
    }  # fmt: skip


@pytest.fixture(scope="module")
def planner(image, bulk_memory_mb, moto_endpoint, clients):
    env = _env(moto_endpoint, clients[2])
    command = ["function.bulk_app.s3_handler"]  # what template.yaml's ImageConfig.Command does to CMD
    with container_session(image, command=command, memory_mb=bulk_memory_mb, env=env) as session:
        yield session


@pytest.fixture(scope="module")
def worker(image, bulk_memory_mb, moto_endpoint, clients):
    env = _env(moto_endpoint, clients[2])
    command = ["function.bulk_app.sqs_handler"]
    with container_session(image, command=command, memory_mb=bulk_memory_mb, env=env) as session:
        yield session


def test_a_dropped_file_through_planner_and_worker_to_its_manifest(planner, worker, clients) -> None:
    s3, sqs, queue_url = clients
    lines = [f"line {i} of a file the image fans out" for i in range(1, 121)]
    key = "incoming/image/big.txt"
    s3.put_object(Bucket=BUCKET, Key=key, Body=("\n".join(lines) + "\n").encode())
    event = load_event("s3_object_created.json")
    event["Records"][0]["s3"]["object"]["key"] = key
    result = planner[0].invoke(event, timeout=180)
    assert result.kind == "response", planner[1].output_tail()
    summary = result.json()["objects"][0]
    assert summary["shards"] >= 4, summary

    handled = drain_shards(sqs, queue_url, worker)
    assert handled == summary["shards"]

    manifest = read_manifest(s3, key)
    assert manifest["status"] == "complete" and manifest["balanced"], manifest
    assert manifest["counts"]["encoded"] == 120
    seen = []
    for part in manifest["output"]["parts"]:
        body = s3.get_object(Bucket=BUCKET, Key=part["key"])["Body"].read().decode()
        rows = [json.loads(x) for x in body.splitlines()]
        assert all(len(r["embedding"]) == 384 for r in rows if "embedding" in r)
        seen += [r["line"] for r in rows]
    assert seen == list(range(1, 121))
