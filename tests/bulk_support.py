"""Helpers for the bulk path's tests: a fast stand-in encoder, the one moto set-up and the one
engine factory, and readers that collect what the outputs and the index really hold.

``HashEncoder`` has ``Encoder``'s interface and derives each vector from a hash of the text, so a
run is deterministic (a retry writes the same vector) and a test can say which text a vector came
from — without TensorFlow, in milliseconds. The tests that check the model itself use the real one.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from bert2vec.core.encoder import EncodeResult
from tests.conftest import load_event

if TYPE_CHECKING:
    import pytest

    from bert2vec.bulk.s3_engine import Engine

BUCKET = "bert2vec-input"
VBUCKET, VINDEX = "bert2vec-vectors", "lines"
DIM = 8


def hash_vector(text: str) -> np.ndarray:
    """The stand-in's vector for ``text``: 8 float32 from its SHA-256, unit length."""
    raw = np.frombuffer(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()[:DIM * 4], np.uint32)
    vec = (raw.astype(np.float64) / 2**32 - 0.5).astype(np.float32)
    return vec / np.linalg.norm(vec)


class HashEncoder:
    """Stands in for ``Encoder`` where the model is not what a test checks."""

    card: dict[str, Any] = {"name": "hash-stand-in", "vector_length": DIM, "normalize": True, "max_seq_length": 512}
    vector_length = DIM
    max_seq_length = 512
    workers = 1

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts: Sequence[str], batch_size: int = 8) -> EncodeResult:
        self.calls += 1
        counts = np.array([len(t.split()) + 2 for t in texts], np.int32)
        emb = np.stack([hash_vector(t) for t in texts]) if texts else np.zeros((0, DIM), np.float32)
        return EncodeResult(emb, counts, counts > self.max_seq_length)


_SESSION: list[Any] = []


def _shared_session() -> Any:
    import boto3

    if not _SESSION:
        _SESSION.append(boto3.Session())
    return _SESSION[0]


@contextlib.contextmanager
def moto_aws(*, vectors: bool = True, dimension: int = DIM) -> Iterator[dict[str, Any]]:
    """In-process moto with the input bucket, a shard queue and (optionally) a vector index of
    ``dimension`` (the stand-in's 8, or the real model's). The one AWS set-up of the bulk tests:
    the ``aws`` fixture (tests/conftest.py) is this."""
    import os

    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
    saved = {k: os.environ.get(k) for k in [*env, "AWS_ENDPOINT_URL"]}
    os.environ.update(env)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    from moto import mock_aws

    from bert2vec.aws.factory import s3_client, sqs_client

    try:
        with mock_aws():
            # moto drops boto3's default session on entry; hand back one kept for the whole run, so
            # each test does not re-read botocore's endpoint and service JSON (~0.3 s a test).
            import boto3

            boto3.DEFAULT_SESSION = _shared_session()
            s3, sqs = s3_client(), sqs_client()
            s3.create_bucket(Bucket=BUCKET)
            out: dict[str, Any] = {"s3": s3, "sqs": sqs, "queue_url": sqs.create_queue(QueueName="shards")["QueueUrl"]}
            if vectors:
                # S3 Vectors is the faithful double, not moto's: it enforces the documented limits,
                # paginates and throttles as AWS does. Every client the code builds is this one.
                from tests import s3vectors_double

                vec = s3vectors_double.FaithfulS3Vectors(max_attempts=10)
                undo = _install_everywhere(vec)
                vec.create_vector_bucket(vectorBucketName=VBUCKET)
                vec.create_index(vectorBucketName=VBUCKET, indexName=VINDEX, dataType="float32", dimension=dimension,
                                 distanceMetric="cosine", metadataConfiguration={"nonFilterableMetadataKeys": ["text"]})  # fmt: skip
                out["vectors"] = vec
            try:
                yield out
            finally:
                if vectors:
                    undo()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def make_engine(aws: dict[str, Any], fmt: str = "jsonl", encoder: Any = None, **cfg: Any) -> Engine:
    """The one engine factory of the bulk tests: ``aws``'s clients and queue, output ``fmt`` (an
    ``output_format`` in ``cfg`` wins), the test index for ``s3vectors``, the hash stand-in unless
    ``encoder`` is given."""
    from bert2vec.bulk.config import BulkConfig
    from bert2vec.bulk.s3_engine import Engine

    settings: dict[str, Any] = {"queue_url": aws["queue_url"], "output_format": fmt, **cfg}
    if settings["output_format"] == "s3vectors":
        settings = {"vector_bucket": VBUCKET, "vector_index": VINDEX, **settings}
    return Engine(aws["s3"], encoder or HashEncoder(), BulkConfig(**settings), aws["sqs"])


def forever() -> int:
    """``remaining_ms`` of an invocation that never runs out of time."""
    return 10_000_000


def _install_everywhere(double: Any) -> Any:
    """``s3_engine``/``vectors`` hand out ``double`` as their S3 Vectors client; returns the undo."""
    from _pytest.monkeypatch import MonkeyPatch

    from tests import s3vectors_double

    patch = MonkeyPatch()
    s3vectors_double.install(patch, double)
    return patch.undo


def lines_of(texts: list[str]) -> bytes:
    return ("\n".join(texts) + "\n").encode()


def etag_of(s3: Any, key: str) -> str:
    return str(s3.head_object(Bucket=BUCKET, Key=key)["ETag"].strip('"'))


def manifest_bytes(s3: Any, key: str, prefix: str = "incoming/", out: str = "vectors/") -> bytes | None:
    try:
        return bytes(s3.get_object(Bucket=BUCKET, Key=f"{out}{key[len(prefix):]}.manifest.json")["Body"].read())
    except s3.exceptions.NoSuchKey:
        return None


def manifest_of(s3: Any, key: str) -> dict[str, Any]:
    body = manifest_bytes(s3, key)
    assert body is not None, f"no manifest for {key}"
    return dict(json.loads(body))


def output_rows(s3: Any, manifest: dict[str, Any]) -> list[tuple[Any, int, np.ndarray | str]]:
    """(id, line, vector) of every row the manifest's parts hold (s3vectors: (id, line, key))."""
    import pyarrow.parquet as pq

    rows: list[tuple[Any, int, Any]] = []
    out = manifest["output"]
    for part in out["parts"]:
        body = s3.get_object(Bucket=out["bucket"], Key=part["key"])["Body"].read()
        key = part["key"]
        if key.endswith(".keys.jsonl"):
            rows.extend((r["id"], r["line"], r["key"]) for r in map(json.loads, body.decode().splitlines()))
        elif key.endswith(".jsonl"):
            for line in body.decode().splitlines():
                r = json.loads(line)
                rows.append((r["id"], r["line"], np.array(r["vector"], dtype=np.float32)))
        elif key.endswith(".parquet"):
            table = pq.read_table(io.BytesIO(body))
            vecs = np.array(table.column("vector").to_pylist(), dtype=np.float32)
            for i, (id_, line) in enumerate(zip(table.column("id").to_pylist(), table.column("line").to_pylist(), strict=True)):
                rows.append((id_, line, vecs[i]))
        elif key.endswith(".npy"):
            vecs = np.load(io.BytesIO(body))
            assert part["ids_key"] == key[: -len(".npy")] + ".ids.jsonl"
            ids = [json.loads(x) for x in s3.get_object(Bucket=out["bucket"], Key=part["ids_key"])["Body"].read().decode().splitlines()]
            rows.extend((i["id"], i["line"], vecs[n]) for n, i in enumerate(ids))
    return rows


def index_contents(aws: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    kwargs: dict[str, Any] = {"vectorBucketName": VBUCKET, "indexName": VINDEX, "returnMetadata": True, "returnData": True}
    while True:
        page = aws["vectors"].list_vectors(**kwargs)
        for v in page.get("vectors", []):
            assert v["key"] not in out, "a key twice"
            out[v["key"]] = v
        if not page.get("nextToken"):
            return out
        kwargs["nextToken"] = page["nextToken"]


def vector_key(key: str, line: int, etag: str, epoch: int = 0) -> str:
    """The documented key scheme; a run in a ledger epoch (objects brought by S3 events) adds ``~<epoch>``."""
    return f"{BUCKET}/{key}#{line}@{etag}" + (f"~{epoch}" if epoch else "")


def assert_exactly_once(aws: dict[str, Any], key: str, texts: list[str], fmt: str) -> dict[str, Any]:
    """The object's manifest is ``complete`` for the current version, its outputs hold every line of
    ``texts`` exactly once with that text's vector, and (s3vectors) the index holds exactly those
    vectors for this object — nothing of an older version, nothing twice."""
    s3 = aws["s3"]
    etag = etag_of(s3, key)
    m = manifest_of(s3, key)
    assert m["input"]["etag"] == etag, "the manifest describes the current version"
    assert m["status"] == "complete" and m["balanced"], m
    assert m["counts"]["encoded"] == len(texts)
    rows = output_rows(s3, m)
    assert sorted(r[1] for r in rows) == list(range(1, len(texts) + 1)), "every line exactly once"
    if fmt != "s3vectors":
        for _, line, vec in rows:
            np.testing.assert_array_equal(vec, hash_vector(texts[line - 1]))
        return m
    index = {k: v for k, v in index_contents(aws).items() if v["metadata"]["source_key"] == key}
    epoch = int(m["input"].get("epoch") or 0)
    assert set(index) == {vector_key(key, i, etag, epoch) for i in range(1, len(texts) + 1)}
    for v in index.values():
        line = v["metadata"]["line"]
        assert v["metadata"]["etag"] == etag and v["metadata"]["text"] == texts[line - 1]
        np.testing.assert_allclose(v["data"]["float32"], hash_vector(texts[line - 1]), atol=1e-7)
    return m


# Driving the handlers with the events S3 sends ------------------------------------------------


class ModelEncoder(HashEncoder):
    """The stand-in with a model checksum (what a deploy changes) and vectors that depend on it."""

    def __init__(self, checksum: str = "a" * 64) -> None:
        super().__init__()
        self.card = {**HashEncoder.card, "name": f"model-{checksum[:4]}", "checksum": checksum}
        self.salt = "" if checksum == "a" * 64 else checksum[:4]

    def encode(self, texts: list[str], batch_size: int = 8) -> Any:
        return super().encode([self.salt + t for t in texts], batch_size)




def texts(n: int, tag: str = "") -> list[str]:
    return [f"{tag}line {i} of the file, words {i % 5}" for i in range(1, n + 1)]


class Context:
    """What Lambda hands the handler (Powertools reads these)."""

    function_name = "BulkPlannerFunction"
    memory_limit_in_mb = 2048
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:BulkPlannerFunction"
    aws_request_id = "test"

    def __init__(self, remaining: Any = None) -> None:
        self.remaining = remaining or (lambda: 900_000)

    def get_remaining_time_in_millis(self) -> int:
        return int(self.remaining())


class Bucket:
    """The input bucket as S3 would report on it: every PUT and DELETE gets the next sequencer,
    and the event S3 would send for it is returned (to deliver now, late, twice or never)."""

    def __init__(self, aws: dict[str, Any]) -> None:
        self.s3 = aws["s3"]
        self.n = 0x0A1B2C3D4E5F0000

    def _seq(self) -> str:
        self.n += 1
        return f"{self.n:X}"

    def put(self, key: str, lines: list[str] | bytes, *, shape: str = "eventbridge") -> dict[str, Any]:
        body = lines if isinstance(lines, bytes) else lines_of(lines)
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        return created_event(key, self._seq(), shape)

    def delete(self, key: str, *, shape: str = "eventbridge", reason: str = "DeleteObject") -> dict[str, Any]:
        self.s3.delete_object(Bucket=BUCKET, Key=key)
        return deleted_event(key, self._seq(), shape, reason)


def created_event(key: str, sequencer: str, shape: str = "eventbridge") -> dict[str, Any]:
    if shape == "eventbridge":
        event = load_event("eventbridge_object_created.json")
        event["detail"]["object"].update(key=key, sequencer=sequencer)
        return event
    event = load_event("s3_object_created.json")
    event["Records"][0]["s3"]["object"].update(key=key.replace(" ", "+"), sequencer=sequencer)
    return event


def deleted_event(key: str, sequencer: str, shape: str = "eventbridge", reason: str = "DeleteObject") -> dict[str, Any]:
    if shape == "eventbridge":
        event = load_event("eventbridge_object_deleted.json")
        event["detail"]["object"].update(key=key, sequencer=sequencer)
        event["detail"]["reason"] = reason
        return event
    event = load_event("s3_object_removed.json")
    record = event["Records"][0]
    record["s3"]["object"].update(key=key.replace(" ", "+"), sequencer=sequencer)
    record["eventName"] = reason  # e.g. ObjectRemoved:Delete, LifecycleExpiration:Delete
    return event


def deliver(eng: Engine, event: dict[str, Any], monkeypatch: pytest.MonkeyPatch, remaining: Any = None) -> list[dict[str, Any]]:
    """The planner's real entry point, with this test's engine."""
    from bert2vec.bulk import app as bulk_app

    monkeypatch.setattr(bulk_app, "engine", lambda: eng)
    return list(bulk_app.s3_handler(copy.deepcopy(event), Context(remaining))["objects"])


def drain(aws: dict[str, Any], eng: Engine, monkeypatch: pytest.MonkeyPatch, budget: Any = lambda: forever) -> int:
    """Run every queued message through the worker's handler logic (shards, hand-offs, clean-ups);
    ``budget()`` gives each message (one invocation) its clock."""
    from bert2vec.bulk import app as bulk_app
    from bert2vec.bulk.s3_engine import Deletion, WorkItem

    monkeypatch.setattr(bulk_app, "engine", lambda: eng)
    n = 0
    while msgs := aws["sqs"].receive_message(QueueUrl=aws["queue_url"], MaxNumberOfMessages=10).get("Messages", []):
        for msg in msgs:
            body = json.loads(msg["Body"])
            if "purge" in body:
                eng.handle_deleted(Deletion.from_message(body), budget())
            else:
                eng.run(WorkItem.from_message(body), budget())
            aws["sqs"].delete_message(QueueUrl=aws["queue_url"], ReceiptHandle=msg["ReceiptHandle"])
            n += 1
    return n


def outputs_of(aws: dict[str, Any], key: str) -> list[str]:
    """Every output object in the key's run home (parts, state), in the previous layout's place for
    it, and its errors file of releases before run-scoped ones."""
    from bert2vec.bulk.config import object_hash

    rel = key[len("incoming/") :]
    found = []
    for prefix in (f"vectors/_runs/{object_hash(BUCKET, key)}/", f"vectors/{rel}/", f"vectors/{rel}.errors"):
        pages = aws["s3"].get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        found += [o["Key"] for page in pages for o in page.get("Contents", [])]
    return found


def vectors_of(aws: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in index_contents(aws).items() if v["metadata"]["source_key"] == key}


def assert_deleted(aws: dict[str, Any], key: str) -> dict[str, Any]:
    m = manifest_of(aws["s3"], key)
    assert m["status"] == "deleted" and m["input"]["key"] == key, m
    assert outputs_of(aws, key) == [], "parts, run state and the errors file are gone"
    assert vectors_of(aws, key) == {}, "no vector of a deleted object stays in the index"
    return m
