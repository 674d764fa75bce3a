"""Backfill with S3 Batch Operations and ``OUTPUT_FORMAT=s3vectors``, against moto (in-process).

Batch tasks go through exactly the planning, fan-out, idempotency and manifest logic of an upload
event; vectors land in an S3 Vectors index once per line, keyed so repeats overwrite.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from bert2vec.bulk.config import BulkConfig
from bert2vec.bulk.s3_engine import Engine, WorkItem
from tests.bulk_support import index_contents
from tests.conftest import RawBody as _Raw
from tests.conftest import load_event

BUCKET = "bert2vec-input"
VBUCKET, VINDEX = "bert2vec-vectors", "lines"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():  # fmt: skip
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("BERT2VEC_LAZY_INIT", "1")  # the tests hand the handler their own engine
    from moto import mock_aws

    from bert2vec.bulk.s3_engine import s3_client, sqs_client
    from bert2vec.bulk.vectors import s3vectors_client

    with mock_aws():
        s3, sqs, vec = s3_client(), sqs_client(), s3vectors_client()
        s3.create_bucket(Bucket=BUCKET)
        vec.create_vector_bucket(vectorBucketName=VBUCKET)
        vec.create_index(vectorBucketName=VBUCKET, indexName=VINDEX, dataType="float32", dimension=384,
                         distanceMetric="cosine")  # fmt: skip
        queue_url = sqs.create_queue(QueueName="shards")["QueueUrl"]
        yield {"s3": s3, "sqs": sqs, "vectors": vec, "queue_url": queue_url}


def make_engine(aws: dict[str, Any], encoder: Any, **cfg: Any) -> Engine:
    config = BulkConfig(queue_url=aws["queue_url"], output_format="s3vectors", vector_bucket=VBUCKET,
                        vector_index=VINDEX, **cfg)  # fmt: skip
    return Engine(aws["s3"], encoder, config, aws["sqs"])


def forever() -> int:
    return 10_000_000


def batch_event(*keys: str) -> dict[str, Any]:
    event = load_event("s3_batch_operations.json")
    template = event["tasks"][0]
    event["tasks"] = [dict(copy.deepcopy(template), taskId=f"task-{i}", s3Key=key) for i, key in enumerate(keys)]
    return event


def drain(aws: dict[str, Any], eng: Engine) -> int:
    n = 0
    while msgs := aws["sqs"].receive_message(QueueUrl=aws["queue_url"], MaxNumberOfMessages=10).get("Messages", []):
        for msg in msgs:
            eng.run(WorkItem.from_message(msg["Body"]), forever)
            aws["sqs"].delete_message(QueueUrl=aws["queue_url"], ReceiptHandle=msg["ReceiptHandle"])
            n += 1
    return n


def lines(n: int, tag: str = "") -> bytes:
    return ("\n".join(f"{tag}line {i}: the quick brown fox {i % 7}" for i in range(1, n + 1)) + "\n").encode()


def vkey(s3: Any, key: str, line: int) -> str:
    """The documented vector key of ``line`` of the current version of ``key``."""
    etag = s3.head_object(Bucket=BUCKET, Key=key)["ETag"].strip('"')
    return f"{BUCKET}/{key}#{line}@{etag}"


def results(response: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {r["taskId"]: (r["resultCode"], r["resultString"]) for r in response["results"]}


def test_batch_over_several_objects_puts_every_line_once(aws, default_encoder) -> None:
    from bert2vec.bulk.app import batch_operations

    s3 = aws["s3"]
    s3.put_object(Bucket=BUCKET, Key="incoming/a.txt", Body=lines(5, "a "))
    s3.put_object(Bucket=BUCKET, Key="incoming/b.jsonl", Body=b'{"id": "doc-1", "text": "first"}\n{"text": "second"}\n')
    s3.put_object(Bucket=BUCKET, Key="incoming/big.txt", Body=lines(200, "big "))  # fans out
    eng = make_engine(aws, default_encoder, chunk_bytes=1024, shard_bytes=2048)
    response = batch_operations(batch_event("incoming/a.txt", "incoming/b.jsonl", "incoming/big.txt"), None, eng)
    assert response["invocationSchemaVersion"] == "2.0" and response["treatMissingKeysAs"] == "PermanentFailure"
    got = results(response)
    assert got["task-0"][0] == got["task-1"][0] == got["task-2"][0] == "Succeeded"
    assert "fanned out" in got["task-2"][1]
    assert drain(aws, eng) >= 2
    index = index_contents(aws)
    expected = {vkey(s3, "incoming/a.txt", i) for i in range(1, 6)}
    expected |= {vkey(s3, "incoming/b.jsonl", i) for i in (1, 2)}
    expected |= {vkey(s3, "incoming/big.txt", i) for i in range(1, 201)}
    assert set(index) == expected
    assert index[vkey(s3, "incoming/b.jsonl", 1)]["metadata"]["id"] == "doc-1"  # ids are metadata, not keys
    meta = index[vkey(s3, "incoming/big.txt", 17)]["metadata"]
    assert meta["source_key"] == "incoming/big.txt" and meta["line"] == 17 and meta["text"].startswith("big line 17")
    ref = default_encoder.encode(["big line 17: the quick brown fox 3"]).embeddings[0]
    np.testing.assert_allclose(index[vkey(s3, "incoming/big.txt", 17)]["data"]["float32"], ref, atol=1e-6)
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key="vectors/big.txt.manifest.json")["Body"].read())
    assert manifest["status"] == "complete" and manifest["counts"]["encoded"] == 200
    assert manifest["output"]["vector_index"] == VINDEX


def test_mixed_outcomes_per_task(aws, default_encoder) -> None:
    from botocore.config import Config

    from bert2vec.bulk.app import batch_operations

    s3 = aws["s3"]
    s3.put_object(Bucket=BUCKET, Key="incoming/ok.txt", Body=lines(3))
    s3.put_object(Bucket=BUCKET, Key="incoming/report.pdf", Body=b"%PDF-1.7")
    s3.put_object(Bucket=BUCKET, Key="incoming/throttled.txt", Body=lines(3))
    import boto3

    impatient = boto3.client("s3", config=Config(retries={"mode": "standard", "max_attempts": 2}))

    def slow_down(request, **kwargs):
        if "throttled.txt" in request.url:
            from botocore.awsrequest import AWSResponse

            body = b"<Error><Code>SlowDown</Code><Message>reduce your request rate</Message></Error>"
            return AWSResponse(request.url, 503, {}, _Raw(body))
        return None

    impatient.meta.events.register("before-send.s3.*", slow_down)
    eng = Engine(impatient, default_encoder, make_engine(aws, default_encoder).cfg, aws["sqs"])
    response = batch_operations(
        batch_event("incoming/ok.txt", "incoming/gone.txt", "incoming/report.pdf", "incoming/throttled.txt"), None, eng
    )
    got = results(response)
    assert got["task-0"][0] == "Succeeded" and "complete" in got["task-0"][1]
    assert got["task-1"] == ("PermanentFailure", "not encoded: object no longer exists")
    assert got["task-2"][0] == "PermanentFailure" and "unsupported input" in got["task-2"][1]
    assert got["task-3"][0] == "TemporaryFailure" and "SlowDown" in got["task-3"][1]


def test_backfill_after_an_upload_event_does_not_double_the_output(aws, default_encoder) -> None:
    from bert2vec.bulk.app import batch_operations

    s3 = aws["s3"]
    s3.put_object(Bucket=BUCKET, Key="incoming/once.txt", Body=lines(4))
    eng = make_engine(aws, default_encoder)
    assert eng.handle_object(BUCKET, "incoming/once.txt", forever).status == "complete"
    before = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="vectors/")["Contents"]}
    got = results(batch_operations(batch_event("incoming/once.txt"), None, eng))
    assert got["task-0"][0] == "Succeeded" and "already encoded" in got["task-0"][1]
    assert {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="vectors/")["Contents"]} == before
    assert len(index_contents(aws)) == 4


def test_a_shorter_new_version_deletes_its_stale_vectors(aws, default_encoder) -> None:
    s3 = aws["s3"]
    eng = make_engine(aws, default_encoder)
    s3.put_object(Bucket=BUCKET, Key="incoming/shrinks.txt", Body=lines(10, "v1 "))
    eng.handle_object(BUCKET, "incoming/shrinks.txt", forever)
    assert len(index_contents(aws)) == 10
    s3.put_object(Bucket=BUCKET, Key="incoming/shrinks.txt", Body=lines(6, "v2 "))
    eng.handle_object(BUCKET, "incoming/shrinks.txt", forever)
    index = index_contents(aws)
    assert set(index) == {vkey(s3, "incoming/shrinks.txt", i) for i in range(1, 7)}
    etag = s3.head_object(Bucket=BUCKET, Key="incoming/shrinks.txt")["ETag"].strip('"')
    assert {v["metadata"]["etag"] for v in index.values()} == {etag}
    assert all(v["metadata"]["text"].startswith("v2 ") for v in index.values())
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key="vectors/shrinks.txt.manifest.json")["Body"].read())
    assert manifest["output"]["stale_vectors_deleted"] == 10  # every v1 key: keys carry the version


def test_long_texts_are_kept_out_of_metadata(aws, default_encoder) -> None:
    s3 = aws["s3"]
    eng = make_engine(aws, default_encoder, vector_text_max_bytes=32)
    s3.put_object(Bucket=BUCKET, Key="incoming/long.txt", Body=b"short\n" + b"long " * 20 + b"\n")
    eng.handle_object(BUCKET, "incoming/long.txt", forever)
    index = index_contents(aws)
    assert index[vkey(s3, "incoming/long.txt", 1)]["metadata"]["text"] == "short"
    assert "text" not in index[vkey(s3, "incoming/long.txt", 2)]["metadata"]



def test_real_model_duplicate_and_version_race_leave_one_clean_version(aws, default_encoder) -> None:
    """The two races the stand-in tests cover at every boundary, once on the real model: a duplicate
    of the message runs to the end while the first copy is about to commit, then v2 (fewer lines)
    completes while v1 is still writing."""
    s3 = aws["s3"]
    key = "incoming/raced.txt"
    s3.put_object(Bucket=BUCKET, Key=key, Body=lines(40, "v1 "))
    a, b = make_engine(aws, default_encoder, chunk_bytes=512), make_engine(aws, default_encoder, chunk_bytes=512)
    real_create = a.store.create
    fired = {"n": 0}

    def duplicate_first(bucket: str, k: str, data: dict[str, Any]) -> str:
        if "/_slices/" in k and not fired["n"]:
            fired["n"] = 1
            assert b.handle_object(BUCKET, key, forever).status == "complete"
        return real_create(bucket, k, data)

    a.store.create = duplicate_first  # type: ignore[method-assign]
    assert a.handle_object(BUCKET, key, forever).kind == "duplicate"  # A lost the commit and stopped
    assert len(index_contents(aws)) == 40
    s3.put_object(Bucket=BUCKET, Key=key, Body=lines(40, "v1b "))  # v1b encoding, then v2 overtakes it
    old, new = make_engine(aws, default_encoder), make_engine(aws, default_encoder)
    real_upload = old.store.upload

    def v2_overtakes(path: str, bucket: str, k: str) -> None:
        if "/part-" in k and not fired.get("v2"):
            fired["v2"] = 1
            s3.put_object(Bucket=BUCKET, Key=key, Body=lines(6, "v2 "))
            assert new.handle_object(BUCKET, key, forever).status == "complete"
        real_upload(path, bucket, k)

    old.store.upload = v2_overtakes  # type: ignore[method-assign]
    assert old.handle_object(BUCKET, key, forever).status is None
    index = index_contents(aws)
    assert set(index) == {vkey(s3, key, i) for i in range(1, 7)}
    assert all(v["metadata"]["text"].startswith("v2 ") for v in index.values())
    ref = default_encoder.encode(["v2 line 3: the quick brown fox 3"]).embeddings[0]
    np.testing.assert_allclose(index[vkey(s3, key, 3)]["data"]["float32"], ref, atol=1e-6)
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key="vectors/raced.txt.manifest.json")["Body"].read())
    assert manifest["status"] == "complete" and manifest["counts"]["encoded"] == 6
