"""Shared e2e fixtures: one moto server (S3 + SQS over real HTTP) per module that needs it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

BUCKET = "bert2vec-input"


def moto_server(host: str = "127.0.0.1") -> Iterator[str]:
    """A moto server (S3 + SQS over real HTTP) on ``host``, any free port; yields its endpoint."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address=host, port=0, verbose=False)
    server.start()
    port = server._server.server_port  # type: ignore[union-attr]
    yield f"http://{host}:{port}"
    server.stop()


def moto_clients(endpoint: str) -> tuple[Any, Any, str]:
    """S3 and SQS clients on ``endpoint``, with the input bucket and the shard queue created."""
    import boto3

    kw = {"endpoint_url": endpoint, "region_name": "us-east-1",
          "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}  # fmt: skip
    s3, sqs = boto3.client("s3", **kw), boto3.client("sqs", **kw)
    s3.create_bucket(Bucket=BUCKET)
    return s3, sqs, sqs.create_queue(QueueName="bert2vec-shards")["QueueUrl"]


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    yield from moto_server()


@pytest.fixture(scope="module")
def clients(moto_endpoint: str):
    return moto_clients(moto_endpoint)
