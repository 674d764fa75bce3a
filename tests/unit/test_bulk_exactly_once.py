"""Exactly once under at-least-once delivery, against moto (in-process) with a stand-in encoder.

Each test plays what AWS guarantees will happen: a message delivered twice and run concurrently
(the duplicate interleaved at every step boundary), two versions of one object in flight, every
message redelivered, throttling on every call, ids that collide, lines over S3 Vectors' limits.
The outcome must always be each line of the final version exactly once in the outputs and the
index, and a manifest that says ``complete`` only when that holds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bert2vec.bulk.config import BulkConfig
from bert2vec.bulk.s3_engine import Engine, WorkItem
from bert2vec.bulk.store import S3Store
from tests.bulk_support import (
    BUCKET,
    VBUCKET,
    VINDEX,
    HashEncoder,
    assert_exactly_once,
    etag_of,
    index_contents,
    lines_of,
    manifest_bytes,
    manifest_of,
    moto_aws,
    vector_key,
)

FORMATS = ["jsonl", "parquet", "npy", "s3vectors"]


@pytest.fixture
def aws() -> Iterator[dict[str, Any]]:
    with moto_aws() as env:
        yield env


def engine(aws: dict[str, Any], fmt: str = "jsonl", **cfg: Any) -> Engine:
    extra: dict[str, Any] = {"vector_bucket": VBUCKET, "vector_index": VINDEX} if fmt == "s3vectors" else {}
    config = BulkConfig(queue_url=aws["queue_url"], output_format=fmt, **extra, **cfg)
    return Engine(aws["s3"], HashEncoder(), config, aws["sqs"])


def forever() -> int:
    return 10_000_000


def texts(n: int, tag: str = "") -> list[str]:
    return [f"{tag}line {i} of the file, words {i % 5}" for i in range(1, n + 1)]


def put(aws: dict[str, Any], key: str, lines: list[str]) -> None:
    aws["s3"].put_object(Bucket=BUCKET, Key=key, Body=lines_of(lines))


def once_before(store: S3Store, method: str, when: Callable[..., bool], then: Callable[[], None]) -> None:
    """Run ``then`` once, just before ``store.<method>`` is first called with arguments matching ``when``."""
    real = getattr(store, method)
    fired = {"done": False}

    def hooked(*args: Any, **kwargs: Any) -> Any:
        if not fired["done"] and when(*args, **kwargs):
            fired["done"] = True
            then()
        return real(*args, **kwargs)

    setattr(store, method, hooked)


def drain(aws: dict[str, Any], eng: Engine, *, times: int = 1) -> int:
    """Run every queued shard message ``times`` times (a redelivery is the same body again)."""
    n = 0
    while msgs := aws["sqs"].receive_message(QueueUrl=aws["queue_url"], MaxNumberOfMessages=10).get("Messages", []):
        for msg in msgs:
            for _ in range(times):
                eng.run(WorkItem.from_message(msg["Body"]), forever)
            aws["sqs"].delete_message(QueueUrl=aws["queue_url"], ReceiptHandle=msg["ReceiptHandle"])
            n += 1
    return n


# ---- a duplicate of one message, interleaved at every step boundary ------------------------------

BOUNDARIES: dict[str, tuple[str, Callable[..., bool]]] = {
    "before a part upload": ("upload", lambda path, bucket, key: "/part-" in key),
    "after a part, before the commit": ("create", lambda bucket, key, data: "/_slices/" in key),
    "after the commit, before the manifest": ("create_or_replace", lambda bucket, key, *rest: key.endswith(".manifest.json")),
    "before saving progress (hand-off)": ("create", lambda bucket, key, data: "/_progress/" in key),
}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("boundary", list(BOUNDARIES))
def test_a_concurrent_duplicate_at_every_step_boundary(aws, fmt: str, boundary: str) -> None:
    key = "incoming/dup.txt"
    lines = texts(40)
    put(aws, key, lines)
    budget = {"n": 10**9}
    if boundary.startswith("before saving progress"):
        budget["n"] = 12  # A runs out of time inside the first slice and hands off

    def a_clock() -> int:
        budget["n"] -= 1
        return 10_000_000 if budget["n"] > 0 else 1

    a, b = engine(aws, fmt, chunk_bytes=512), engine(aws, fmt, chunk_bytes=512)
    method, when = BOUNDARIES[boundary]
    seen: dict[str, Any] = {}

    def duplicate_runs_to_the_end() -> None:
        seen["b"] = b.handle_object(BUCKET, key, forever)
        seen["manifest"] = manifest_bytes(aws["s3"], key)

    once_before(a.store, method, when, duplicate_runs_to_the_end)
    a.handle_object(BUCKET, key, a_clock)
    drain(aws, a)  # A's hand-off, if it made one, runs too
    assert seen["b"].status == "complete"
    assert_exactly_once(aws, key, lines, fmt)
    if seen["manifest"] is not None:  # a late or duplicate attempt never changes committed output
        assert manifest_bytes(aws["s3"], key) == seen["manifest"]


def test_a_worker_that_timed_out_after_its_hand_off_cannot_overwrite(aws) -> None:
    """The hand-off's message runs to the end while the old invocation is still uploading."""
    key = "incoming/late.txt"
    lines = texts(60)
    put(aws, key, lines)
    a = engine(aws, chunk_bytes=1 << 20)
    b = engine(aws, chunk_bytes=1 << 20)
    a.handle_object(BUCKET, key, lambda: 1)  # hands off after its first line (progress saved)
    (msg,) = aws["sqs"].receive_message(QueueUrl=aws["queue_url"]).get("Messages", [])
    item = WorkItem.from_message(msg["Body"])
    # The same message delivered twice: the first copy stalls before uploading, the second finishes.
    once_before(a.store, "upload", lambda path, bucket, k: "/part-" in k, lambda: b.run(item, forever))
    a.run(item, forever)
    assert_exactly_once(aws, key, lines, "jsonl")


def _several_slices(aws, key: str) -> tuple[Engine, list[str]]:
    """40 lines at ``key`` and an engine whose small chunks cut them into several slices."""
    lines = texts(40)
    put(aws, key, lines)
    return engine(aws, chunk_bytes=512), lines


def _handle_with_put_object(aws, eng, key: str, what: str, put_object: Callable[..., Any]) -> Any:
    """Run ``eng.handle_object`` through a client whose ``put_object`` is ``put_object`` (the rest is
    moto's). When ``what`` is the progress prefix, the clock runs out after a few reads, so the run
    hands over through a progress write — the write the failing ``put_object`` is aimed at."""
    eng.store.client = type("Client", (), {})()
    for name in ("get_object", "head_object", "get_paginator", "upload_file", "upload_fileobj", "delete_objects"):
        setattr(eng.store.client, name, getattr(aws["s3"], name))
    eng.store.client.put_object = put_object
    budget = {"n": 12 if what == "/_progress/" else 10**9}

    def clock() -> int:
        budget["n"] -= 1
        return 10_000_000 if budget["n"] > 0 else 1

    return eng.handle_object(BUCKET, key, clock)


@pytest.mark.parametrize("what", ["/_slices/", "/_progress/"])
def test_a_conditional_write_stored_but_its_answer_lost_is_recognised_as_won(aws, what: str) -> None:
    """S3 stored the commit (or progress), the answer was lost, the client's retry got 412: the
    attempt must see that the stored object is its own and go on — not stop as if it lost, which
    would leave the rest of the object to nobody."""
    from botocore.exceptions import ClientError

    key = "incoming/lost-answer.txt"
    eng, lines = _several_slices(aws, key)
    real_put = eng.store.client.put_object
    hit = {"n": 0}

    def stored_then_412(**kwargs: Any) -> Any:
        resp = real_put(**kwargs)
        if what in kwargs["Key"] and not hit["n"]:
            hit["n"] = 1
            raise ClientError({"Error": {"Code": "PreconditionFailed", "Message": "retry after a lost answer"},
                               "ResponseMetadata": {"HTTPStatusCode": 412}}, "PutObject")  # fmt: skip
        return resp

    outcome = _handle_with_put_object(aws, eng, key, what, stored_then_412)  # loses one answer
    assert hit["n"] == 1 and outcome.kind != "duplicate", outcome
    drain(aws, eng)
    assert_exactly_once(aws, key, lines, "jsonl")


# ---- two versions in flight --------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("at", ["before its first commit", "after its vectors, before its part upload"])
def test_a_version_race_leaves_only_the_newer_version(aws, fmt: str, at: str) -> None:
    key = "incoming/race.txt"
    v1, v2 = texts(10, "v1 "), texts(6, "v2 ")
    put(aws, key, v1)
    old, new = engine(aws, fmt), engine(aws, fmt)

    def v2_arrives_and_completes() -> None:
        put(aws, key, v2)
        assert new.handle_object(BUCKET, key, forever).status == "complete"

    if at.startswith("before"):
        once_before(old.store, "create", lambda bucket, k, data: "/_slices/" in k, v2_arrives_and_completes)
    else:
        once_before(old.store, "upload", lambda path, bucket, k: "/part-" in k, v2_arrives_and_completes)
    outcome = old.handle_object(BUCKET, key, forever)
    assert outcome.status is None  # the old version wrote no manifest
    assert_exactly_once(aws, key, v2, fmt)


def test_an_old_version_read_mid_way_stops_and_retracts_its_vectors(aws) -> None:
    key = "incoming/cut.txt"
    v1, v2 = texts(30, "v1 "), texts(4, "v2 ")
    put(aws, key, v1)
    old, new = engine(aws, "s3vectors", chunk_bytes=256), engine(aws, "s3vectors", chunk_bytes=256)

    def v2_arrives_and_completes() -> None:
        put(aws, key, v2)
        new.handle_object(BUCKET, key, forever)

    # v1 commits its first slice (vectors in the index), then finds the object changed on its next read.
    once_before(old.store, "create", lambda bucket, k, data: k.endswith("_slices/000001.json"), v2_arrives_and_completes)
    assert old.handle_object(BUCKET, key, forever).kind == "changed"
    assert_exactly_once(aws, key, v2, "s3vectors")


def test_stale_keys_of_every_earlier_run_go_even_after_failed_attempts_and_versions(aws) -> None:
    key = "incoming/history.txt"
    eng = engine(aws, "s3vectors")
    put(aws, key, texts(10, "v1 "))
    eng.handle_object(BUCKET, key, forever)
    aws["s3"].put_object(Bucket=BUCKET, Key=key, Body="UTF-16 now".encode("utf-16"))  # v2: a failed version
    assert eng.handle_object(BUCKET, key, forever).status == "failed"
    v3 = texts(6, "v3 ")
    put(aws, key, v3)
    calls = {"n": 0}
    real = eng.store.create

    def fails_once(bucket: str, k: str, data: dict[str, Any]) -> str:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("the first attempt of v3 dies")
        return real(bucket, k, data)

    eng.store.create = fails_once  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        eng.handle_object(BUCKET, key, forever)
    assert manifest_of(aws["s3"], key)["retryable"] is True
    m = eng.handle_object(BUCKET, key, forever)
    assert m.status == "complete"
    assert_exactly_once(aws, key, v3, "s3vectors")
    assert manifest_of(aws["s3"], key)["output"]["stale_vectors_deleted"] == 10


# ---- the key scheme: no silent overwrite -------------------------------------------------------


def test_ids_never_collide_across_objects_lines_or_types(aws) -> None:
    s3 = aws["s3"]
    eng = engine(aws, "s3vectors")
    s3.put_object(Bucket=BUCKET, Key="incoming/a.jsonl", Body=b'{"id": "doc-1", "text": "a one"}\n{"id": "a2", "text": "a two"}\n')
    s3.put_object(Bucket=BUCKET, Key="incoming/b.jsonl", Body=b'{"id": "doc-1", "text": "b one"}\n')
    s3.put_object(Bucket=BUCKET, Key="incoming/x.jsonl",
                  Body=b'{"id": "x", "text": "x1"}\n{"id": "x", "text": "x2"}\n{"id": "x", "text": "x3"}\n')  # fmt: skip
    s3.put_object(Bucket=BUCKET, Key="incoming/t.txt", Body=b"plain text\n")
    s3.put_object(Bucket=BUCKET, Key="incoming/p.jsonl", Body=b'{"id": "incoming/t.txt#1", "text": "pretender"}\n')
    s3.put_object(Bucket=BUCKET, Key="incoming/n.jsonl", Body=b'{"id": 1, "text": "int one"}\n{"id": "1", "text": "str one"}\n')
    for k in ("a.jsonl", "b.jsonl", "x.jsonl", "t.txt", "p.jsonl", "n.jsonl"):
        assert eng.handle_object(BUCKET, f"incoming/{k}", forever).status == "complete"
    index = index_contents(aws)
    by_object: dict[str, int] = {}
    for v in index.values():
        by_object[v["metadata"]["source_key"]] = by_object.get(v["metadata"]["source_key"], 0) + 1
    for k in ("a.jsonl", "b.jsonl", "x.jsonl", "t.txt", "p.jsonl", "n.jsonl"):  # encoded == vectors held
        assert by_object[f"incoming/{k}"] == manifest_of(s3, f"incoming/{k}")["counts"]["encoded"]
    assert index[vector_key("incoming/t.txt", 1, etag_of(s3, "incoming/t.txt"))]["metadata"]["text"] == "plain text"
    n_etag = etag_of(s3, "incoming/n.jsonl")
    assert [index[vector_key("incoming/n.jsonl", i, n_etag)]["metadata"]["id"] for i in (1, 2)] == ["1", "1"]
    # A new version of a.jsonl without doc-1 never touches b.jsonl's doc-1.
    s3.put_object(Bucket=BUCKET, Key="incoming/a.jsonl", Body=b'{"id": "a2", "text": "a two"}\n')
    eng.handle_object(BUCKET, "incoming/a.jsonl", forever)
    b_doc = vector_key("incoming/b.jsonl", 1, etag_of(s3, "incoming/b.jsonl"))
    assert index_contents(aws)[b_doc]["metadata"]["text"] == "b one"


# ---- per-line limits of S3 Vectors -------------------------------------------------------------


def test_one_line_over_a_limit_never_fails_the_file(aws) -> None:
    s3 = aws["s3"]
    eng = engine(aws, "s3vectors")
    rows = [{"id": "", "text": "empty id is fine: keys are positional"}, {"id": "k" * 3000, "text": "id too big"},
            {"id": "ok", "text": "fine"}]  # fmt: skip
    s3.put_object(Bucket=BUCKET, Key="incoming/limits.jsonl", Body="".join(json.dumps(r) + "\n" for r in rows).encode())
    assert eng.handle_object(BUCKET, "incoming/limits.jsonl", forever).status == "complete"
    m = manifest_of(s3, "incoming/limits.jsonl")
    assert m["counts"] == {**m["counts"], "encoded": 2, "rejected": 1}
    (err,) = [json.loads(x) for x in s3.get_object(Bucket=BUCKET, Key=m["output"]["errors_key"])["Body"].read().splitlines()]
    assert err["line"] == 2 and "filterable metadata" in err["reason"]
    assert len([v for v in index_contents(aws).values() if v["metadata"]["source_key"] == "incoming/limits.jsonl"]) == 2


def test_a_key_too_long_for_s3_vectors_is_hashed_and_still_found(aws) -> None:
    s3 = aws["s3"]
    eng = engine(aws, "s3vectors")
    key = "incoming/" + "d" * (1023 - len("incoming/") - 4) + ".txt"
    assert len(key.encode()) == 1023
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"a line\nanother\n")
    assert eng.handle_object(BUCKET, key, forever).status == "complete"
    index = [v for v in index_contents(aws).values() if v["metadata"]["source_key"] == key]
    assert len(index) == 2 and all(v["key"].startswith("sha256:") and len(v["key"]) <= 1024 for v in index)
    assert sorted(v["metadata"]["line"] for v in index) == [1, 2]


def test_a_validation_exception_is_bisected_to_the_line(aws, monkeypatch) -> None:
    s3 = aws["s3"]
    eng = engine(aws, "s3vectors")
    lines = texts(20)
    lines[6] = "poison for the index"
    put(aws, "incoming/poison.txt", lines)
    index = aws["vectors"]
    real_put = index.put_vectors

    def refuse(**params: Any) -> Any:
        """The index refuses one vector for a reason the checks before the call cannot know."""
        if any(v["metadata"].get("text") == "poison for the index" for v in params["vectors"]):
            raise index._invalid("PutVectors", "metadata is invalid")
        return real_put(**params)

    monkeypatch.setattr(index, "put_vectors", refuse)
    assert eng.handle_object(BUCKET, "incoming/poison.txt", forever).status == "complete"
    m = manifest_of(s3, "incoming/poison.txt")
    assert m["counts"]["encoded"] == 19 and m["counts"]["rejected"] == 1
    (err,) = [json.loads(x) for x in s3.get_object(Bucket=BUCKET, Key=m["output"]["errors_key"])["Body"].read().splitlines()]
    assert err["line"] == 7 and "S3 Vectors refused" in err["reason"]
    assert len([v for v in index_contents(aws).values() if v["metadata"]["source_key"] == "incoming/poison.txt"]) == 19


# ---- throttling and retry classes --------------------------------------------------------------

THROTTLES = {
    "s3": (503, "SlowDown"),
    "sqs": (400, "ThrottlingException"),
    "s3vectors": (429, "TooManyRequestsException"),
}


def _throttle_each_operation_once(client: Any, service: str, hit: dict[str, int]) -> None:
    status, code = THROTTLES[service]

    def hook(request: Any, **kwargs: Any) -> Any:
        op = kwargs.get("event_name", "").rsplit(".", 1)[-1]
        if hit.get(op):
            return None
        hit[op] = 1
        from botocore.awsrequest import AWSResponse

        from tests.conftest import RawBody

        if service == "sqs":
            body = json.dumps({"__type": code, "message": "slow down"}).encode()
            return AWSResponse(request.url, status, {"x-amzn-query-error": f"{code};Sender"}, RawBody(body))
        if service == "s3vectors":
            return AWSResponse(request.url, status, {"x-amzn-ErrorType": code}, RawBody(json.dumps({"message": "slow down"}).encode()))
        return AWSResponse(request.url, status, {}, RawBody(f"<Error><Code>{code}</Code><Message>x</Message></Error>".encode()))

    client.meta.events.register(f"before-send.{service}.*", hook)


def test_throttling_on_every_aws_call_is_retried(aws, monkeypatch) -> None:
    """Every S3, SQS and S3 Vectors operation answers throttling once. (botocore still hands the
    request to moto before the hook's answer is used, so each "throttled" call here also took
    effect — an answer lost after the work was done, harder than plain throttling: a message sent
    twice, a conditional write refused on its retry, a received message hidden until its
    visibility timeout, set to 0 here.) botocore's own backoff (up to a second per throttled call)
    is set to nothing: that the calls are retried is the point, not how long botocore waits. The
    S3 Vectors double answers each of its write and list operations' next call with throttling.)"""
    from botocore.retries.standard import ExponentialBackoff

    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0.0)
    key = "incoming/throttled.txt"
    lines = texts(40)
    put(aws, key, lines)
    aws["sqs"].set_queue_attributes(QueueUrl=aws["queue_url"], Attributes={"VisibilityTimeout": "0"})
    eng = engine(aws, "s3vectors", chunk_bytes=512, shard_bytes=1024)
    hits: dict[str, dict[str, int]] = {"s3": {}, "sqs": {}, "s3vectors": {}}
    _throttle_each_operation_once(aws["s3"], "s3", hits["s3"])
    _throttle_each_operation_once(aws["sqs"], "sqs", hits["sqs"])
    for op in ("PutVectors", "DeleteVectors", "ListVectors"):
        aws["vectors"].fail_next(op, "TooManyRequestsException")
    assert eng.handle_object(BUCKET, key, forever).kind == "fanned_out"
    drain(aws, eng)
    assert_exactly_once(aws, key, lines, "s3vectors")
    assert {"GetObject", "PutObject", "HeadObject", "ListObjectsV2"} <= set(hits["s3"])
    assert {"SendMessageBatch", "ReceiveMessage"} <= set(hits["sqs"])
    stats = aws["vectors"].stats
    assert stats.errors["TooManyRequestsException"] >= 1 and stats.retries == stats.injected_faults >= 1


@pytest.mark.parametrize(("status", "code"), [(429, "TooManyRequestsException"), (503, "ServiceUnavailableException")])
def test_index_throttling_past_the_retries_is_a_temporary_failure(aws, monkeypatch, status: int, code: str) -> None:
    import boto3
    from botocore.config import Config

    monkeypatch.setenv("BERT2VEC_LAZY_INIT", "1")  # the tests hand the handler their own engine
    from bert2vec.bulk.app import batch_operations
    from tests.conftest import load_event

    put(aws, "incoming/t.txt", texts(3))
    eng = engine(aws, "s3vectors")
    eng.vectors = boto3.client("s3vectors", config=Config(retries={"mode": "standard", "max_attempts": 1}))

    def always(request: Any, **kwargs: Any) -> Any:
        from botocore.awsrequest import AWSResponse

        from tests.conftest import RawBody

        return AWSResponse(request.url, status, {"x-amzn-ErrorType": code}, RawBody(b'{"message": "busy"}'))

    eng.vectors.meta.events.register("before-send.s3vectors.PutVectors", always)
    event = load_event("s3_batch_operations.json")
    event["tasks"][0]["s3Key"] = "incoming/t.txt"
    (result,) = batch_operations(event, None, eng)["results"]
    assert result["resultCode"] == "TemporaryFailure" and code in result["resultString"]


# ---- redelivery and idempotent finalize --------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_message_delivered_twice_and_the_manifest_is_byte_identical(aws, fmt: str) -> None:
    key = "incoming/twice.txt"
    lines = texts(80)
    put(aws, key, lines)
    eng = engine(aws, fmt, chunk_bytes=1024, shard_bytes=2048)
    eng.handle_object(BUCKET, key, forever)
    assert drain(aws, eng, times=2) >= 2
    first = manifest_bytes(aws["s3"], key)
    assert_exactly_once(aws, key, lines, fmt)
    last = WorkItem.from_message(json.dumps({  # the final message, delivered once more
        "v": 2, "bucket": BUCKET, "key": key, "etag": etag_of(aws["s3"], key), "size": len(lines_of(lines)),
        "format": {"kind": "txt", "gzip": False}, "unit": "bytes", "slice_size": 1024, "first_slice": 0, "layout": 2,
    }))  # fmt: skip
    eng.run(last, forever)
    assert manifest_bytes(aws["s3"], key) == first
    assert eng.handle_object(BUCKET, key, forever).kind == "duplicate"  # the upload event again
    assert manifest_bytes(aws["s3"], key) == first


# ---- Batch Operations --------------------------------------------------------------------------


def _task(key: str, version: str | None = None) -> dict[str, Any]:
    from tests.conftest import load_event

    event = load_event("s3_batch_operations.json")
    event["tasks"][0].update(s3Key=key, s3VersionId=version)
    return event


def test_batch_tasks_honour_the_version_and_say_when_it_changed_or_is_gone(aws, monkeypatch) -> None:
    monkeypatch.setenv("BERT2VEC_LAZY_INIT", "1")  # the tests hand the handler their own engine
    from bert2vec.bulk.app import batch_operations

    s3 = aws["s3"]
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=BUCKET, Key="incoming/v.txt", Body=lines_of(texts(5, "v1 ")))["VersionId"]
    eng = engine(aws)
    (r,) = batch_operations(_task("incoming/v.txt", v1), None, eng)["results"]
    assert r["resultCode"] == "Succeeded" and "5 lines encoded" in r["resultString"], r
    m = manifest_of(s3, "incoming/v.txt")
    assert m["input"]["version_id"] == v1 and m["counts"]["encoded"] == 5
    # The job listed v1, then v2 was uploaded: v1 must not replace v2's output.
    s3.put_object(Bucket=BUCKET, Key="incoming/v.txt", Body=lines_of(texts(3, "v2 ")))
    assert eng.handle_object(BUCKET, "incoming/v.txt", forever).status == "complete"
    before = manifest_bytes(s3, "incoming/v.txt")
    (old,) = batch_operations(_task("incoming/v.txt", v1), None, eng)["results"]
    assert old["resultCode"] == "Succeeded" and "no longer the object's current version" in old["resultString"], old
    assert manifest_bytes(s3, "incoming/v.txt") == before
    (gone,) = batch_operations(_task("incoming/v.txt", "not-a-version"), None, eng)["results"]
    assert gone["resultCode"] == "PermanentFailure" and "no longer exists" in gone["resultString"]
    # Overwritten while its task runs: said so, not "Succeeded | 0 lines encoded".
    s3.put_object(Bucket=BUCKET, Key="incoming/w.txt", Body=lines_of(texts(30)))
    eng_small = engine(aws, chunk_bytes=256)
    once_before(eng_small.store, "create", lambda b, k, d: k.endswith("_slices/000000.json"),
                lambda: s3.put_object(Bucket=BUCKET, Key="incoming/w.txt", Body=b"new\n"))  # fmt: skip
    (changed,) = batch_operations(_task("incoming/w.txt"), None, eng_small)["results"]
    assert changed["resultCode"] == "Succeeded" and "changed while it was read" in changed["resultString"]


def test_batch_suffixes_are_case_insensitive_and_other_objects_are_not_encoded(aws, monkeypatch) -> None:
    monkeypatch.setenv("BERT2VEC_LAZY_INIT", "1")  # the tests hand the handler their own engine
    from bert2vec.bulk.app import batch_operations

    s3 = aws["s3"]
    s3.put_object(Bucket=BUCKET, Key="incoming/Notes.TXT", Body=b"upper case suffix\n")
    s3.put_object(Bucket=BUCKET, Key="incoming/photo.png", Body=b"\x89PNG")
    eng = engine(aws)
    (ok,) = batch_operations(_task("incoming/Notes.TXT"), None, eng)["results"]
    assert ok["resultCode"] == "Succeeded" and "1 lines encoded" in ok["resultString"]
    (png,) = batch_operations(_task("incoming/photo.png"), None, eng)["results"]
    assert png["resultCode"] == "PermanentFailure" and "unsupported input" in png["resultString"]
    assert manifest_bytes(s3, "incoming/photo.png") is None  # a backfill writes nothing for non-inputs


def test_messages_queued_by_the_previous_release_still_run() -> None:
    old = {"v": 1, "bucket": "b", "key": "incoming/x.txt", "etag": "e", "size": 10, "format": {"kind": "txt", "gzip": False},
           "unit": "bytes", "chunk_size": 4, "first_chunk": 1, "end_chunk": 3, "first_line": 7, "hops": 2}  # fmt: skip
    item = WorkItem.from_message(json.dumps(old))
    assert (item.slice_size, item.first_slice, item.end_slice, item.first_line, item.hops) == (4, 1, 3, 7, 2)
    assert WorkItem.from_message(item.to_message("incoming/")) == item
    with pytest.raises(ValueError, match="unsupported shard message version"):
        WorkItem.from_message(json.dumps({**old, "v": 99}))


# ---- overwritten between the ETag check and the manifest write ------------------------------------


def _jsonl(rows: list[str], bad_line: int | None = None) -> bytes:
    out = [json.dumps({"text": t}) for t in rows]
    if bad_line is not None:
        out.insert(bad_line - 1, '{"text": "a line that is not JSON"')
    return ("\n".join(out) + "\n").encode()


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("check", [1, 2])
def test_an_overwrite_between_the_etag_check_and_the_manifest_write_never_wins(aws, fmt: str, check: int) -> None:
    """v1 passes an "is the input still at my ETag?" check — the one before the index clean-up (1),
    or the one right before the conditional manifest write (2) — then v2 is uploaded and completes
    before v1 writes its manifest and errors file: v1's writes must lose, and v1's vectors go."""
    key = "incoming/late-check.jsonl"
    v1, v2 = texts(10, "v1 "), texts(6, "v2 ")
    aws["s3"].put_object(Bucket=BUCKET, Key=key, Body=_jsonl(v1, bad_line=3))
    old, new = engine(aws, fmt), engine(aws, fmt)
    real = old.finalizer._is_at
    calls = {"n": 0}

    def check_then_v2_completes(bucket: str, k: str, etag: str) -> bool:
        answer = real(bucket, k, etag)
        calls["n"] += 1
        if calls["n"] == check:
            assert answer
            aws["s3"].put_object(Bucket=BUCKET, Key=key, Body=_jsonl(v2))
            assert new.handle_object(BUCKET, key, forever).status == "complete"
        return answer

    old.finalizer._is_at = check_then_v2_completes  # type: ignore[method-assign]
    outcome = old.handle_object(BUCKET, key, forever)
    assert calls["n"] > check and outcome.status is None, outcome  # the old version wrote no manifest
    assert_exactly_once(aws, key, v2, fmt)
    m = manifest_of(aws["s3"], key)
    assert aws["s3"].get_object(Bucket=BUCKET, Key=m["output"]["errors_key"])["Body"].read() == b""


def test_a_late_losing_attempt_of_an_old_version_takes_its_vectors_back(aws) -> None:
    """Two attempts of v1; B completes it. A (late) puts v1's vectors after v2's completion has
    deleted v1's keys, then loses its commit to B: A must notice v1 is gone and retract them."""
    import threading

    key = "incoming/late-loser.txt"
    v1, v2 = texts(10, "v1 "), texts(6, "v2 ")
    put(aws, key, v1)
    a, b, new = engine(aws, "s3vectors"), engine(aws, "s3vectors"), engine(aws, "s3vectors")
    at_state_delete, release = threading.Event(), threading.Event()
    real_delete = new.store.delete

    def paused_delete(bucket: str, keys: list[str]) -> None:
        at_state_delete.set()  # v2 has deleted v1's vectors; it is about to forget v1's run state
        assert release.wait(30)
        real_delete(bucket, keys)

    new.store.delete = paused_delete  # type: ignore[method-assign]
    done: dict[str, Any] = {}

    def v2_completes() -> None:
        done["v2"] = new.handle_object(BUCKET, key, forever)

    def b_then_v2_until_it_deletes() -> None:
        assert b.handle_object(BUCKET, key, forever).status == "complete"
        put(aws, key, v2)
        done["thread"] = threading.Thread(target=v2_completes)
        done["thread"].start()
        assert at_state_delete.wait(30)

    once_before(a.store, "put_json", lambda bucket, k, data: "/_vector_keys/" in k, b_then_v2_until_it_deletes)
    try:
        assert a.handle_object(BUCKET, key, forever).kind == "duplicate"
    finally:
        release.set()
        done["thread"].join(30)
    assert done["v2"].status == "complete"
    assert_exactly_once(aws, key, v2, "s3vectors")


def test_a_duplicate_that_loses_to_a_failed_slice_takes_its_vectors_back(aws) -> None:
    """One copy of the last unfinished shard message gives up on its last receive (its slice is committed
    failed, the manifest written) while another copy is still encoding it: when that copy puts its
    vectors and then loses the commit, the index must still hold exactly what the manifest counts."""
    key = "incoming/given-up.txt"
    put(aws, key, texts(10))
    d, f = (engine(aws, "s3vectors", chunk_bytes=64, shard_bytes=64) for _ in range(2))
    assert d.handle_object(BUCKET, key, forever).kind == "fanned_out"
    items = []
    while msgs := aws["sqs"].receive_message(QueueUrl=aws["queue_url"], MaxNumberOfMessages=10).get("Messages", []):
        items += [WorkItem.from_message(m["Body"]) for m in msgs]
    items.sort(key=lambda it: it.first_slice)
    last, *others = items  # the first shard (one slice, with lines) is the last to finish
    for it in others:
        d.run(it, forever)
    once_before(d.store, "put_json", lambda bucket, k, data: "/_vector_keys/" in k,
                lambda: f.fail(last, "RuntimeError: gave up on the last receive"))  # fmt: skip
    assert d.run(last, forever).kind == "duplicate"
    m = manifest_of(aws["s3"], key)
    assert m["status"] == "incomplete" and m["chunks"]["failed"][0]["chunk"] == last.first_slice
    held = [v for v in index_contents(aws).values() if v["metadata"]["source_key"] == key]
    assert len(held) == m["counts"]["encoded"] > 0


@pytest.mark.parametrize("what", ["/_slices/", "/_progress/", ".manifest.json"])
def test_a_conditional_write_answered_409_is_tried_again_not_taken_as_lost(aws, what: str) -> None:
    """S3 answers a conditional write ``409 ConditionalRequestConflict`` when a conflicting operation
    ran meanwhile; nothing was stored and AWS says to retry. Taking it for "another attempt won"
    would leave the slice (or the manifest) to nobody."""
    from botocore.exceptions import ClientError

    key = "incoming/conflict.txt"
    eng, lines = _several_slices(aws, key)
    real_put = eng.store.client.put_object
    hit = {"n": 0}

    def conflict_once(**kwargs: Any) -> Any:
        if what in kwargs["Key"] and not hit["n"]:
            hit["n"] = 1  # refused before anything is stored
            raise ClientError({"Error": {"Code": "ConditionalRequestConflict", "Message": "a conflicting operation"},
                               "ResponseMetadata": {"HTTPStatusCode": 409}}, "PutObject")  # fmt: skip
        return real_put(**kwargs)

    outcome = _handle_with_put_object(aws, eng, key, what, conflict_once)
    assert hit["n"] == 1 and outcome.kind != "duplicate", outcome
    drain(aws, eng)
    assert_exactly_once(aws, key, lines, "jsonl")


def test_a_duplicate_failing_late_never_hides_the_manifest_another_attempt_completed(aws) -> None:
    """An upload event and a Batch Operations task for one version run at once; B completes, then
    A fails (a transient error) and writes its ``retryable`` marker: B's result must stay."""
    key = "incoming/late-failure.txt"
    lines = texts(20)
    put(aws, key, lines)
    a, b = engine(aws), engine(aws)

    def b_completes_then_a_breaks() -> None:
        assert b.handle_object(BUCKET, key, forever).status == "complete"
        raise ConnectionResetError("connection reset by peer")

    once_before(a.store, "create", lambda bucket, k, data: "/_slices/" in k, b_completes_then_a_breaks)
    with pytest.raises(ConnectionResetError):
        a.handle_object(BUCKET, key, forever)
    assert "retryable" not in manifest_of(aws["s3"], key)
    assert_exactly_once(aws, key, lines, "jsonl")
    assert a.handle_object(BUCKET, key, forever).kind == "duplicate"  # A's retry


def test_a_task_naming_its_version_overwritten_while_it_runs_says_so(aws, monkeypatch) -> None:
    """Reads that name the version never see the overwrite (no 412): the run reaches its ETag check
    instead, writes no manifest, and the task's answer must say why — not "the manifest appears"."""
    monkeypatch.setenv("BERT2VEC_LAZY_INIT", "1")  # the tests hand the handler their own engine
    from bert2vec.bulk.app import batch_operations

    s3 = aws["s3"]
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    key = "incoming/versioned.txt"
    v1 = s3.put_object(Bucket=BUCKET, Key=key, Body=lines_of(texts(30, "v1 ")))["VersionId"]
    eng, new = engine(aws, "s3vectors", chunk_bytes=256), engine(aws, "s3vectors")
    v2 = texts(4, "v2 ")

    def v2_arrives_and_completes() -> None:
        put(aws, key, v2)
        assert new.handle_object(BUCKET, key, forever).status == "complete"

    once_before(eng.store, "create", lambda b, k, d: k.endswith("_slices/000000.json"), v2_arrives_and_completes)
    (r,) = batch_operations(_task(key, v1), None, eng)["results"]
    assert r["resultCode"] == "Succeeded" and "changed while it was read" in r["resultString"], r
    assert_exactly_once(aws, key, v2, "s3vectors")


def test_a_duplicate_skipping_a_slice_failed_by_its_twin_numbers_the_next_lines_right(aws) -> None:
    """One copy of a shard message gives its first slice up (committed failed, the rest re-queued);
    a second copy of the same message then skips that slice: the lines after it keep their numbers."""
    key = "incoming/renumber.txt"
    lines = texts(30)
    put(aws, key, lines)
    d, f = (engine(aws, chunk_bytes=64, shard_bytes=256) for _ in range(2))
    assert d.handle_object(BUCKET, key, forever).kind == "fanned_out"
    msgs = aws["sqs"].receive_message(QueueUrl=aws["queue_url"], MaxNumberOfMessages=10)["Messages"]
    items = sorted((WorkItem.from_message(m["Body"]) for m in msgs), key=lambda it: it.first_slice)
    for m in msgs:
        aws["sqs"].delete_message(QueueUrl=aws["queue_url"], ReceiptHandle=m["ReceiptHandle"])
    first = items[0]
    assert first.end_slice is not None and first.end_slice > 1
    assert f.fail(first, "RuntimeError: gave up on the last receive") is None  # slices 1.. re-queued
    for it in items:
        d.run(it, forever)  # the twin copy of the first shard, and the other shards
    drain(aws, d)
    m = manifest_of(aws["s3"], key)
    assert m["status"] == "incomplete"
    from tests.bulk_support import hash_vector, output_rows

    rows = output_rows(aws["s3"], m)
    assert rows and len({r[1] for r in rows}) == len(rows) == m["counts"]["encoded"]
    for _, line, vec in rows:
        assert (vec == hash_vector(lines[line - 1])).all(), f"line {line} carries another line's vector"


def test_a_duplicate_that_loses_a_progress_write_after_the_slice_failed_takes_its_vectors_back(aws) -> None:
    """L and X resume one slice from the same progress; X saves first and hands on, and its
    hand-off gives the slice up on its last receive (committed failed, manifest written). Only then
    does L put its vectors, and lose its progress write: they must not stay in the index."""
    key = "incoming/stale-progress.txt"
    put(aws, key, texts(30))
    p, x, lo, f = (engine(aws, "s3vectors", chunk_bytes=128, shard_bytes=128) for _ in range(4))
    assert p.handle_object(BUCKET, key, forever).kind == "fanned_out"

    def take_all() -> list[WorkItem]:
        found = []
        while msgs := aws["sqs"].receive_message(QueueUrl=aws["queue_url"], MaxNumberOfMessages=10).get("Messages", []):
            for m in msgs:
                found.append(WorkItem.from_message(m["Body"]))
                aws["sqs"].delete_message(QueueUrl=aws["queue_url"], ReceiptHandle=m["ReceiptHandle"])
        return sorted(found, key=lambda it: it.first_slice)

    first, *others = take_all()
    for it in others:
        p.run(it, forever)
    p.run(first, lambda: 1)  # one line, progress saved, handed on
    (resumed,) = take_all()

    def x_moves_on_and_its_hand_off_gives_up() -> None:
        x.run(resumed, lambda: 1)  # the next line; progress replaced, handed on
        (again,) = take_all()
        f.fail(again, "RuntimeError: gave up on the last receive")  # slice 0 failed, manifest written

    once_before(lo.store, "put_json", lambda bucket, k, data: "/_vector_keys/" in k, x_moves_on_and_its_hand_off_gives_up)
    assert lo.run(resumed, lambda: 1).kind == "duplicate"
    m = manifest_of(aws["s3"], key)
    assert m["status"] == "incomplete" and m["chunks"]["failed"][0]["chunk"] == 0
    held = [v for v in index_contents(aws).values() if v["metadata"]["source_key"] == key]
    assert len(held) == m["counts"]["encoded"] > 0


def test_an_overwrite_between_the_planners_head_and_its_first_read_is_changed_not_an_error(aws) -> None:
    key = "incoming/planning.txt"
    put(aws, key, texts(5, "v1 "))
    eng = engine(aws)
    v2 = texts(3, "v2 ")
    once_before(eng.store, "get_json", lambda bucket, k: k.endswith(".manifest.json"), lambda: put(aws, key, v2))
    assert eng.handle_object(BUCKET, key, forever).kind == "changed"  # not a retryable failure
    assert manifest_bytes(aws["s3"], key) is None
    assert eng.handle_object(BUCKET, key, forever).status == "complete"  # v2's own event
    assert_exactly_once(aws, key, v2, "jsonl")
