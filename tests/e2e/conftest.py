"""Shared e2e fixtures: one moto server (S3 + SQS over real HTTP) per module that needs it."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

BUCKET = "bert2vec-input"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(scope="module")
def clients(moto_endpoint: str):
    import boto3

    kw = {"endpoint_url": moto_endpoint, "region_name": "us-east-1",
          "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}  # fmt: skip
    s3, sqs = boto3.client("s3", **kw), boto3.client("sqs", **kw)
    s3.create_bucket(Bucket=BUCKET)
    queue_url = sqs.create_queue(QueueName="bert2vec-shards")["QueueUrl"]
    return s3, sqs, queue_url


