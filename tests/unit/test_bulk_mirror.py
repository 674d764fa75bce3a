"""The index mirrors the bucket: deletions, late and out-of-order events, late writers, deploys.

Every test drives the real planner entry point (``bulk_app.s3_handler``) with the event shapes S3
sends (EventBridge "Object Created"/"Object Deleted", S3 notification records) where the case is
about events, against moto (in-process) with the stand-in encoder. The end state is always
compared with what the bucket holds *now*: a deleted object has no vectors, parts or errors file
and a ``deleted`` manifest; a present one is exactly once in the outputs and the index.
"""

from __future__ import annotations

import collections
import json
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from bert2vec.bulk.s3_engine import WorkItem
from tests.bulk_support import (
    BUCKET,
    VBUCKET,
    VINDEX,
    Bucket,
    Context,
    ModelEncoder,
    assert_deleted,
    assert_exactly_once,
    created_event,
    deleted_event,
    deliver,
    drain,
    forever,
    hash_vector,
    index_contents,
    lines_of,
    make_engine,
    manifest_bytes,
    manifest_of,
    output_rows,
    outputs_of,
    texts,
    vectors_of,
)
from tests.conftest import load_event

FORMATS = ["jsonl", "parquet", "npy", "s3vectors"]


# ---- 1. deletions end to end ---------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "shape", "reason"), [
    *((fmt, "eventbridge", "DeleteObject") for fmt in ("jsonl", "parquet", "npy")),
    ("s3vectors", "eventbridge", "DeleteObject"),
    ("s3vectors", "eventbridge", "Lifecycle Expiration"),
    ("s3vectors", "s3", "ObjectRemoved:Delete"),
    ("s3vectors", "s3", "ObjectRemoved:DeleteMarkerCreated"),
    ("s3vectors", "s3", "LifecycleExpiration:Delete"),
])  # fmt: skip
def test_a_deleted_object_leaves_the_index_and_the_outputs(aws, monkeypatch, fmt: str, shape: str, reason: str) -> None:
    bucket, eng = Bucket(aws), make_engine(aws, fmt, chunk_bytes=256)
    key, other = "incoming/a b.jsonl", "incoming/a b.jsonl.keep.txt"  # the other's output dir extends a's name
    body = b"".join(json.dumps({"id": f"d{i}", "text": t}).encode() + b"\n" for i, t in enumerate(texts(12)))
    deliver(eng, bucket.put(key, body + b"{not json\n", shape=shape), monkeypatch)
    deliver(eng, bucket.put(other, texts(5), shape=shape), monkeypatch)
    assert manifest_of(aws["s3"], key)["status"] == "complete"
    (summary,) = deliver(eng, bucket.delete(key, shape=shape, reason=reason), monkeypatch)
    assert summary["outcome"] == "deleted", summary
    m = assert_deleted(aws, key)
    assert reason in m["deleted"]["reason"]
    assert_exactly_once(aws, other, texts(5), fmt)  # a deletion never touches another object's outputs
    first = manifest_bytes(aws["s3"], key)
    (again,) = deliver(eng, deleted_event(key, m["input"]["sequencer"], shape, reason), monkeypatch)
    assert manifest_bytes(aws["s3"], key) == first, "a redelivered deletion writes the same record"
    assert again["outcome"] == "deleted"


def test_a_deletion_under_a_crafted_key_never_empties_another_objects_outputs(aws, monkeypatch) -> None:
    bucket, eng = Bucket(aws), make_engine(aws, "s3vectors")
    deliver(eng, bucket.put("incoming/a.txt", texts(4)), monkeypatch)
    etag = manifest_of(aws["s3"], "incoming/a.txt")["input"]["etag"]
    crafted = f"incoming/a.txt/{etag}~1/part-000000-0000-aaaaaaaaaaaa.jsonl.txt"
    deliver(eng, bucket.put(crafted, texts(3, "x ")), monkeypatch)
    deliver(eng, bucket.delete(crafted), monkeypatch)
    assert_exactly_once(aws, "incoming/a.txt", texts(4), "s3vectors")
    assert vectors_of(aws, crafted) == {}


# ---- order by S3's sequencer, not by arrival ----------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "s3vectors"])
def test_a_late_delete_never_removes_the_re_created_object(aws, monkeypatch, fmt: str) -> None:
    bucket, eng = Bucket(aws), make_engine(aws, fmt)
    key = "incoming/back.txt"
    deliver(eng, bucket.put(key, texts(5, "v1 ")), monkeypatch)
    late_delete = bucket.delete(key)
    deliver(eng, bucket.put(key, texts(3, "v2 ")), monkeypatch)
    (summary,) = deliver(eng, late_delete, monkeypatch)
    assert summary["outcome"] == "late", summary
    assert_exactly_once(aws, key, texts(3, "v2 "), fmt)


@pytest.mark.parametrize("fmt", ["jsonl", "s3vectors"])
def test_a_late_create_never_brings_a_deleted_object_back(aws, monkeypatch, fmt: str) -> None:
    bucket, eng = Bucket(aws), make_engine(aws, fmt)
    key = "incoming/gone.txt"
    first = bucket.put(key, texts(5))
    deliver(eng, first, monkeypatch)
    deliver(eng, bucket.delete(key), monkeypatch)
    (summary,) = deliver(eng, first, monkeypatch)  # the create again, after the delete
    assert summary["outcome"] == "late"
    assert_deleted(aws, key)


@pytest.mark.parametrize("fmt", ["jsonl", "s3vectors"])
def test_delete_then_the_same_bytes_again_is_encoded_again(aws, monkeypatch, fmt: str) -> None:
    """A re-upload of the same bytes after a deletion is new: never answered "already encoded"."""
    bucket, eng = Bucket(aws), make_engine(aws, fmt)
    key = "incoming/again.txt"
    deliver(eng, bucket.put(key, texts(6)), monkeypatch)
    deliver(eng, bucket.delete(key), monkeypatch)
    (summary,) = deliver(eng, bucket.put(key, texts(6)), monkeypatch)
    assert summary["outcome"] == "encoded" and summary["status"] == "complete", summary
    assert_exactly_once(aws, key, texts(6), fmt)


def test_a_delete_during_the_read_then_the_same_bytes_again_is_never_stuck(aws, monkeypatch) -> None:
    """The in-flight read of v1 gets 404 (deleted under it); the same bytes come back: encoded."""
    bucket, eng = Bucket(aws), make_engine(aws, "s3vectors", chunk_bytes=256)
    key = "incoming/flap.txt"
    lines = texts(30)
    create = bucket.put(key, lines)
    events: dict[str, Any] = {}
    real = eng.store.create

    def delete_before_second_commit(b: str, k: str, data: dict[str, Any]) -> str:
        if k.endswith("_slices/000001.json") and "deleted" not in events:
            events["deleted"] = bucket.delete(key)
        return real(b, k, data)

    monkeypatch.setattr(eng.store, "create", delete_before_second_commit)
    (summary,) = deliver(eng, create, monkeypatch)
    assert summary["outcome"] == "changed", summary  # a 404 is never "still current"
    assert manifest_bytes(aws["s3"], key) is None and vectors_of(aws, key) == {}
    deliver(eng, events["deleted"], monkeypatch)
    assert_deleted(aws, key)
    deliver(eng, bucket.put(key, lines), monkeypatch)
    assert_exactly_once(aws, key, lines, "s3vectors")


def test_the_same_etag_restored_while_the_version_between_completes_is_repaired_by_uploading_again(
    aws, monkeypatch
) -> None:  # fmt: skip
    """v1 → v2 → v1's bytes again while v2's completion deletes v1's keys: the restored version's keys
    carry their own epoch, so v2's clean-up never touches them; and uploading again re-encodes."""
    bucket = Bucket(aws)
    a, b = make_engine(aws, "s3vectors"), make_engine(aws, "s3vectors")
    key = "incoming/aba.txt"
    v1, v2 = texts(5, "one "), texts(4, "two ")
    deliver(a, bucket.put(key, v1), monkeypatch)
    v2_event = bucket.put(key, v2)
    real = b.index.clean
    restored: dict[str, Any] = {}

    def v1_comes_back_first(*args: Any, **kwargs: Any) -> int:
        restored["event"] = bucket.put(key, v1)
        restored["summary"] = deliver(a, restored["event"], monkeypatch)
        return real(*args, **kwargs)

    monkeypatch.setattr(b.index, "clean", v1_comes_back_first)
    deliver(b, v2_event, monkeypatch)
    assert restored["summary"][0]["status"] == "complete"
    assert_exactly_once(aws, key, v1, "s3vectors")
    (again,) = deliver(a, bucket.put(key, v1), monkeypatch)  # the documented repair still works
    assert again["status"] == "complete"
    assert_exactly_once(aws, key, v1, "s3vectors")


# ---- 2. a writer that loses, retracts ------------------------------------------------------------


def test_a_late_writer_of_v1_never_outlives_v2(aws, monkeypatch) -> None:
    """v1 is about to put its last slice's vectors when v2 is uploaded and completes (deleting v1's
    run state and keys): v1's late vectors must not stay beside v2's."""
    bucket = Bucket(aws)
    old, new = make_engine(aws, "s3vectors", chunk_bytes=256), make_engine(aws, "s3vectors", chunk_bytes=256)
    key = "incoming/late.txt"
    v1, v2 = texts(20, "v1 "), texts(3, "v2 ")
    v1_event = bucket.put(key, v1)
    real = old.store.put_json
    state: dict[str, Any] = {}

    def v2_completes_before_v1s_last_vectors(b: str, k: str, data: dict[str, Any]) -> str:
        if "/_vector_keys/000002-" in k and "done" not in state:
            state["done"] = deliver(new, bucket.put(key, v2), monkeypatch)
        return real(b, k, data)

    monkeypatch.setattr(old.store, "put_json", v2_completes_before_v1s_last_vectors)
    (summary,) = deliver(old, v1_event, monkeypatch)
    assert state["done"][0]["status"] == "complete"
    assert summary["outcome"] in ("changed", "in_progress"), summary
    assert_exactly_once(aws, key, v2, "s3vectors")


def test_a_late_old_shard_after_a_delete_never_replaces_the_newer_manifest(aws, monkeypatch) -> None:
    bucket = Bucket(aws)
    eng = make_engine(aws, "jsonl", chunk_bytes=256, shard_bytes=512)
    key = "incoming/shards.txt"
    v1_event = bucket.put(key, texts(40, "v1 "))
    deliver(eng, v1_event, monkeypatch)  # fanned out: its shards wait in the queue
    msgs = aws["sqs"].receive_message(QueueUrl=aws["queue_url"], MaxNumberOfMessages=10)["Messages"]
    assert len(msgs) > 1
    deliver(eng, bucket.put(key, texts(3, "v2 ")), monkeypatch)
    assert_exactly_once(aws, key, texts(3, "v2 "), "jsonl")
    deliver(eng, bucket.delete(key), monkeypatch)
    recorded = manifest_bytes(aws["s3"], key)
    for msg in msgs:  # v1's shards, late
        eng.run(WorkItem.from_message(msg["Body"]), forever)
    assert manifest_bytes(aws["s3"], key) == recorded
    assert_deleted(aws, key)


# ---- 6. one model per manifest and per index ------------------------------------------------------


@pytest.mark.parametrize("change", ["model", "format"])
def test_a_deploy_mid_file_never_mixes_two_models_or_formats(aws, monkeypatch, change: str) -> None:
    bucket = Bucket(aws)
    key = "incoming/deploy.txt"
    lines = texts(60)
    old = make_engine(aws, "jsonl", ModelEncoder("a" * 64), chunk_bytes=256, shard_bytes=512)
    deliver(old, bucket.put(key, lines), monkeypatch)
    msgs = aws["sqs"].receive_message(QueueUrl=aws["queue_url"], MaxNumberOfMessages=2)["Messages"]
    for msg in msgs[:1]:  # the old image runs one shard; the deploy lands; the new image runs the rest
        old.run(WorkItem.from_message(msg["Body"]), forever)
        aws["sqs"].delete_message(QueueUrl=aws["queue_url"], ReceiptHandle=msg["ReceiptHandle"])
    new_model = ModelEncoder("b" * 64) if change == "model" else ModelEncoder("a" * 64)
    new = make_engine(aws, "jsonl" if change == "model" else "parquet", new_model, chunk_bytes=256, shard_bytes=512)
    drain(aws, new, monkeypatch)
    m = manifest_of(aws["s3"], key)
    assert m["status"] == "complete" and m["model"]["checksum"] == new_model.card["checksum"]
    rows = output_rows(aws["s3"], m)
    assert sorted(r[1] for r in rows) == list(range(1, 61))
    assert {p["key"].rsplit(".", 1)[-1] for p in m["output"]["parts"]} == {"jsonl" if change == "model" else "parquet"}
    for _, line, vec in rows:
        np.testing.assert_array_equal(vec, hash_vector(new_model.salt + lines[line - 1]))


def test_an_index_holds_one_models_vectors(aws, monkeypatch) -> None:
    bucket = Bucket(aws)
    first = make_engine(aws, "s3vectors", ModelEncoder("a" * 64))
    deliver(first, bucket.put("incoming/one.txt", texts(3)), monkeypatch)
    assert all(v["metadata"]["model"] == "a" * 16 for v in vectors_of(aws, "incoming/one.txt").values())
    other = make_engine(aws, "s3vectors", ModelEncoder("b" * 64))
    (summary,) = deliver(other, bucket.put("incoming/two.txt", texts(3)), monkeypatch)
    m = manifest_of(aws["s3"], "incoming/two.txt")
    assert summary["outcome"] == "failed" and m["status"] == "failed"
    assert "holds vectors of model 'model-aaaa'" in m["error"] and "new index" in m["error"]
    assert vectors_of(aws, "incoming/two.txt") == {}


# ---- 5. clean-up that fits: paced, deadline-aware, resumable ------------------------------------


class Killed(BaseException):
    """Lambda ended the invocation at its timeout (nothing in the code can catch that)."""


class LambdaTime:
    """One clock for the index's rate limits, the pacer and each invocation's deadline (fake: hours
    of index time run in milliseconds). Sleeping past the deadline is Lambda killing the invocation."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.deadline = float("inf")
        self.invocations = 0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        if self.now > self.deadline:
            raise Killed(f"timed out {self.now - self.deadline:.1f} s past the deadline")

    def budget(self, seconds: float) -> Any:
        """A new invocation with ``seconds`` to run: its ``remaining_ms``."""
        self.invocations += 1
        self.deadline = self.now + seconds
        return lambda: int((self.deadline - self.now) * 1000)


@pytest.fixture
def lambda_time(aws, monkeypatch) -> LambdaTime:
    from bert2vec.bulk import index_cleanup, vectors

    t = LambdaTime()
    index = aws["vectors"]  # the documented 2,500 vectors/s per index, on this clock
    monkeypatch.setattr(index, "clock", t.clock)
    monkeypatch.setattr(index, "_sleep", t.sleep)
    for name, value in (("clock", t.clock), ("sleep", t.sleep), ("_window", collections.deque())):
        monkeypatch.setattr(vectors.PACER, name, value)
    # Scaled down with the file (10,000 vectors, not millions): invocations of 3 s, a 0.5 s margin.
    monkeypatch.setattr(index_cleanup, "CLEANUP_MARGIN_MS", 500)
    return t


@pytest.mark.parametrize("deadline_check", [True, False])
def test_a_big_files_old_vectors_are_retracted_across_invocations(aws, monkeypatch, lambda_time, deadline_check: bool) -> None:
    """v2 replaces a v1 whose vectors take longer to delete, at the index's documented write rate,
    than one invocation has: the clean-up is paced (never throttled), stops before the deadline and
    is handed on, and each hand-off goes on where the last stopped. Without the deadline check the
    invocation is killed mid-clean-up — on every receive, since each starts as long as the last."""
    t = lambda_time
    bucket = Bucket(aws)
    eng = make_engine(aws, "s3vectors", chunk_bytes=1 << 20, window=512, time_margin_ms=100)
    key = "incoming/big.txt"
    v1, v2 = texts(10_000, "v1 "), texts(3, "v2 ")
    deliver(eng, bucket.put(key, v1), monkeypatch)  # 4 s of index time to put, no deadline in the way
    assert len(vectors_of(aws, key)) == 10_000
    if not deadline_check:
        monkeypatch.setattr(eng.index, "_check_budget", lambda *args: None)
        with pytest.raises(Killed):
            deliver(eng, bucket.put(key, v2), monkeypatch, t.budget(3))
        return
    (summary,) = deliver(eng, bucket.put(key, v2), monkeypatch, t.budget(3))
    assert summary["outcome"] == "in_progress", summary  # 4 s of deletes do not fit 3 s less the margin
    hops = drain(aws, eng, monkeypatch, lambda: t.budget(3))
    assert 2 <= hops <= 4
    assert aws["vectors"].stats.throttled == 0, "paced to the index's rate, never leaning on throttling"
    m = assert_exactly_once(aws, key, v2, "s3vectors")
    assert m["output"]["stale_vectors_deleted"] == 10_000


# ---- repair drift: reconcile ------------------------------------------------------------------------


def test_reconcile_finds_and_repairs_every_kind_of_drift(aws, monkeypatch) -> None:
    """Events lost or coalesced: an upload never announced, an overwrite never announced, a deletion
    never announced, vectors of an object nobody knows. A dry run counts and changes nothing;
    ``apply`` leaves the index and the outputs equal to the bucket; a second run finds nothing."""
    from bert2vec.bulk.reconcile import reconcile

    bucket, eng = Bucket(aws), make_engine(aws, "s3vectors")
    s3 = aws["s3"]
    deliver(eng, bucket.put("incoming/ok.txt", texts(3, "ok ")), monkeypatch)
    deliver(eng, bucket.put("incoming/changed.txt", texts(4, "v1 ")), monkeypatch)
    deliver(eng, bucket.put("incoming/gone.txt", texts(2, "gone ")), monkeypatch)
    s3.put_object(Bucket=BUCKET, Key="incoming/new.txt", Body=lines_of(texts(5, "new ")))  # no event
    s3.put_object(Bucket=BUCKET, Key="incoming/changed.txt", Body=lines_of(texts(2, "v2 ")))  # no event
    s3.delete_object(Bucket=BUCKET, Key="incoming/gone.txt")  # no event
    aws["vectors"].put_vectors(vectorBucketName=VBUCKET, indexName=VINDEX, vectors=[{
        "key": "stray", "data": {"float32": hash_vector("x").tolist()},
        "metadata": {"source_bucket": BUCKET, "source_key": "incoming/ghost.txt", "etag": "0", "line": 1}}])  # fmt: skip
    before = index_contents(aws)
    drift = reconcile(eng, BUCKET, "incoming/")
    assert drift.summary() == {"objects": 3, "up_to_date": 1, "missing": 1, "outdated": 1, "orphaned": 1,
                               "stray_vectors": 1, "applied": False}  # fmt: skip
    assert index_contents(aws) == before, "a dry run changes nothing"
    drift = reconcile(eng, BUCKET, "incoming/", apply=True)
    assert drift.outcomes == {"deleted": 1, "encoded": 2}
    for key, lines in (("incoming/ok.txt", texts(3, "ok ")), ("incoming/changed.txt", texts(2, "v2 ")),
                       ("incoming/new.txt", texts(5, "new "))):  # fmt: skip
        assert_exactly_once(aws, key, lines, "s3vectors")
    assert_deleted(aws, "incoming/gone.txt")
    assert "stray" not in index_contents(aws)
    assert reconcile(eng, BUCKET, "incoming/").clean


# ---- changing the model: a new index, a backfill, the switch ---------------------------------------


def test_changing_the_model_writes_a_new_index_by_backfill(aws, monkeypatch) -> None:
    """The documented upgrade path: model B gets a new index, a backfill fills it, model A's index
    is untouched until the switch; each index holds one model's vectors."""
    from bert2vec.bulk.app import batch_operations

    bucket = Bucket(aws)
    a = make_engine(aws, "s3vectors", ModelEncoder("a" * 64))
    keys = ["incoming/one.txt", "incoming/two.txt"]
    for key in keys:
        deliver(a, bucket.put(key, texts(3, key)), monkeypatch)
    old_index = index_contents(aws)
    aws["vectors"].create_index(vectorBucketName=VBUCKET, indexName="lines-b", dataType="float32", dimension=8,
                                distanceMetric="cosine", metadataConfiguration={"nonFilterableMetadataKeys": ["text"]})  # fmt: skip
    b_model = ModelEncoder("b" * 64)
    b = make_engine(aws, "s3vectors", b_model, vector_index="lines-b", output_prefix="vectors-b/")
    for key in keys:
        event = load_event("s3_batch_operations.json")
        event["tasks"][0]["s3Key"] = key
        (result,) = batch_operations(event, None, b)["results"]
        assert result["resultCode"] == "Succeeded", result
    assert index_contents(aws) == old_index, "model A's index is untouched until the switch"
    new_index = aws["vectors"].contents(VBUCKET, "lines-b")
    assert len(new_index) == 6 and {v["metadata"]["model"] for v in new_index.values()} == {"b" * 16}
    for v in new_index.values():
        meta = v["metadata"]
        text = texts(3, meta["source_key"])[meta["line"] - 1]
        np.testing.assert_allclose(v["data"], hash_vector(b_model.salt + text), atol=1e-7)


def test_bert_encode_reconcile_is_a_dry_run_unless_applied(aws, monkeypatch, capsys) -> None:
    """The command a user runs: counts as JSON on stdout, a line on stderr, nothing changed, no model
    loaded; ``--apply`` alone is a usage error."""
    from bert2vec.cli import main

    bucket, eng = Bucket(aws), make_engine(aws, "jsonl")
    deliver(eng, bucket.put("incoming/a.txt", texts(2)), monkeypatch)
    aws["s3"].put_object(Bucket=BUCKET, Key="incoming/b.txt", Body=lines_of(texts(1)))  # no event
    monkeypatch.setenv("OUTPUT_FORMAT", "jsonl")
    capsys.readouterr()  # the handler's own log lines
    assert main(["--reconcile", f"s3://{BUCKET}/incoming/"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == {"objects": 2, "up_to_date": 1, "missing": 1, "outdated": 0, "orphaned": 0,
                               "stray_vectors": 0, "applied": False}  # fmt: skip
    assert "drift found; run again with --apply" in err
    assert manifest_bytes(aws["s3"], "incoming/b.txt") is None
    assert main(["--apply"]) == 2
    assert "--apply goes with --reconcile" in capsys.readouterr().err


# ---- 8. the errors file and the manifest are one unit ----------------------------------------------


def test_a_finalizer_dying_between_errors_file_and_manifest_leaves_each_manifest_its_own_errors(aws, monkeypatch) -> None:
    bucket = Bucket(aws)
    old, new = make_engine(aws, "jsonl"), make_engine(aws, "jsonl")
    key = "incoming/errs.jsonl"

    def body(tag: str, bad: int) -> bytes:
        rows = [json.dumps({"text": t}) for t in texts(5, tag)]
        rows[bad - 1] = "{not json"
        return ("\n".join(rows) + "\n").encode()

    deliver(old, bucket.put(key, body("v1 ", 2)), monkeypatch)
    m1 = manifest_of(aws["s3"], key)

    def errors_of(m: dict[str, Any]) -> list[int]:
        raw = aws["s3"].get_object(Bucket=BUCKET, Key=m["output"]["errors_key"])["Body"].read()
        return [json.loads(x)["line"] for x in raw.splitlines()]

    assert errors_of(m1) == [2]
    real = new.store.create_or_replace

    def die_before_the_manifest(b: str, k: str, *args: Any, **kwargs: Any) -> str:
        if k.endswith(".manifest.json"):
            raise Killed("the finalizer was killed after writing the errors file")
        return real(b, k, *args, **kwargs)

    monkeypatch.setattr(new.store, "create_or_replace", die_before_the_manifest)
    with pytest.raises(Killed):
        deliver(new, bucket.put(key, body("v2 ", 4)), monkeypatch)
    assert manifest_of(aws["s3"], key) == m1 and errors_of(m1) == [2], "v1's manifest still names v1's rejections"
    monkeypatch.setattr(new.store, "create_or_replace", real)
    drain(aws, new, monkeypatch)
    deliver(new, created_event(key, f"{bucket.n:X}"), monkeypatch)  # the event's redelivery completes it
    m2 = manifest_of(aws["s3"], key)
    assert m2["input"]["etag"] != m1["input"]["etag"] and errors_of(m2) == [4]


# ---- 7. bounded disk ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_tiny_lines_never_make_a_part_bigger_than_the_disk_bound(aws, monkeypatch, fmt: str) -> None:
    """Output rows are far bigger than input lines (3-letter lines): a slice is cut into segments by
    the bytes its part takes on local disk, each uploaded and removed before the next, so /tmp holds
    at most the bound plus one encode window — and every line is still exactly once."""
    from bert2vec.bulk import worker

    monkeypatch.setattr(worker, "PART_MAX_BYTES", 4096)
    bucket, eng = Bucket(aws), make_engine(aws, fmt, window=16)
    key = "incoming/tiny.txt"
    lines = [f"w{i:02d}" for i in range(300)]
    seen: list[int] = []
    real_upload = eng.store.upload

    def measured_upload(path: str, b: str, k: str) -> None:
        import os

        seen.append(os.path.getsize(path))
        real_upload(path, b, k)

    monkeypatch.setattr(eng.store, "upload", measured_upload)
    deliver(eng, bucket.put(key, lines), monkeypatch)
    m = assert_exactly_once(aws, key, lines, fmt)
    assert len(m["output"]["parts"]) > 1, "one slice, cut into several parts"
    window_bytes = 16 * 400  # a window of rows, generously (an 8-float jsonl row is ~150 bytes)
    assert max(seen) <= 4096 + window_bytes, seen


# ---- 9. linear cost ---------------------------------------------------------------------------------


def test_finalize_reads_grow_linearly_with_the_slices(aws, monkeypatch) -> None:
    """Every shard's finish used to read every commit present (reads x4 when slices doubled); one
    listing now tells a shard that slices are still missing, and only the last finisher reads them."""
    def commit_reads(n_lines: int, key: str) -> int:
        bucket, eng = Bucket(aws), make_engine(aws, "jsonl", chunk_bytes=256, shard_bytes=512)
        reads = {"n": 0}
        real = eng.store.read

        def counted(b: str, k: str) -> Any:
            if "/_slices/" in k:
                reads["n"] += 1
            return real(b, k)

        monkeypatch.setattr(eng.store, "read", counted)
        deliver(eng, bucket.put(key, texts(n_lines)), monkeypatch)
        drain(aws, eng, monkeypatch)
        assert_exactly_once(aws, key, texts(n_lines), "jsonl")
        return reads["n"]

    small, large = commit_reads(80, "incoming/small.txt"), commit_reads(160, "incoming/large.txt")
    assert large <= 2.3 * small, (small, large)


def test_the_scheduled_reconcile_and_a_deletions_continuation_go_through_the_real_handlers(aws, monkeypatch, lambda_time) -> None:
    """The template's schedule sends ``{"bert2vec": "reconcile", "bucket"}`` to the planner; a
    deletion whose clean-up outlives its invocation continues as a ``purge`` message through the
    worker's SQS handler (partial batch responses), until the object is gone from the index."""
    from bert2vec.bulk import app as bulk_app

    t = lambda_time
    bucket, eng = Bucket(aws), make_engine(aws, "s3vectors", chunk_bytes=1 << 20, window=512, time_margin_ms=100)
    monkeypatch.setattr(bulk_app, "engine", lambda: eng)
    key = "incoming/many.txt"
    deliver(eng, bucket.put(key, texts(10_000)), monkeypatch)
    (summary,) = deliver(eng, bucket.delete(key), monkeypatch, t.budget(3))
    assert summary["outcome"] == "in_progress", summary  # 4 s of deletes, 3-s invocations
    rounds = 0
    while msgs := aws["sqs"].receive_message(QueueUrl=aws["queue_url"], MaxNumberOfMessages=1).get("Messages", []):
        event = load_event("sqs_shard.json")
        event["Records"][0].update(body=msgs[0]["Body"], messageId=msgs[0]["MessageId"])
        assert bulk_app.sqs_handler(event, Context(t.budget(3))) == {"batchItemFailures": []}
        aws["sqs"].delete_message(QueueUrl=aws["queue_url"], ReceiptHandle=msgs[0]["ReceiptHandle"])
        rounds += 1
    assert 1 <= rounds <= 3
    assert_deleted(aws, key)
    aws["s3"].put_object(Bucket=BUCKET, Key="incoming/unannounced.txt", Body=lines_of(texts(2)))
    answer = bulk_app.s3_handler({"bert2vec": "reconcile", "bucket": BUCKET}, Context(t.budget(30)))
    assert answer["reconcile"]["missing"] == 1 and answer["reconcile"]["outcomes"] == {"encoded": 1}
    assert_exactly_once(aws, "incoming/unannounced.txt", texts(2), "s3vectors")


def test_a_gz_is_decompressed_once_and_fans_out(aws, monkeypatch) -> None:
    """A ``.gz`` used to be one stream, re-read from byte 0 by every hand-off (26x the object in one
    run). It is now decompressed once into the run directory and sliced like a plain file: it fans
    out, hand-offs read their own byte ranges, the input is read twice (a sniff and the staging)
    however many invocations it takes, and the copy is removed when the manifest is written."""
    import gzip

    bucket = Bucket(aws)
    eng = make_engine(aws, "jsonl", chunk_bytes=256, shard_bytes=1024, time_margin_ms=0)
    key = "incoming/big.jsonl.gz"
    lines = texts(120)
    body = gzip.compress(b"".join(json.dumps({"text": t}).encode() + b"\n" for t in lines))
    reads = {"n": 0}
    real_get = aws["s3"].get_object

    def counting_get(**kwargs: Any) -> Any:
        if kwargs["Key"] == key:
            reads["n"] += 1
        return real_get(**kwargs)

    monkeypatch.setattr(aws["s3"], "get_object", counting_get)
    (summary,) = deliver(eng, bucket.put(key, body), monkeypatch)
    assert summary["outcome"] == "fanned_out", summary
    budget = {"calls": 0}

    def short_invocation() -> Any:  # each invocation gets through a few lines, then hands off
        budget["calls"] = 0

        def remaining() -> int:
            budget["calls"] += 1
            return 10_000_000 if budget["calls"] < 8 else 1

        return remaining

    hops = drain(aws, eng, monkeypatch, short_invocation)
    assert hops > 10
    m = assert_exactly_once(aws, key, lines, "jsonl")
    assert m["input"]["format"] == {"kind": "jsonl", "gzip": True} and m["input"]["size"] == len(body)
    assert reads["n"] == 2, reads
    assert not [k for k in outputs_of(aws, key) if k.endswith("/_staged")]


def test_a_crafted_key_inside_another_objects_run_directory_is_never_touched_by_its_runs(aws, monkeypatch) -> None:
    """An input named after a.txt's run directory (``incoming/<a's run directory>/part-...``). A late
    duplicate of a.txt's last message finalizes again (dropping losers' parts, counting commits,
    retracting): none of it may touch the crafted object's outputs or vectors."""
    bucket, eng = Bucket(aws), make_engine(aws, "s3vectors")
    deliver(eng, bucket.put("incoming/a.txt", texts(4)), monkeypatch)
    m = manifest_of(aws["s3"], "incoming/a.txt")
    run_dir = m["output"]["errors_key"][len("vectors/") : -len("errors.jsonl")]
    crafted = f"incoming/{run_dir}part-000000-0000-aaaaaaaaaaaa.jsonl.txt"
    deliver(eng, bucket.put(crafted, texts(3, "x ")), monkeypatch)
    item = WorkItem(BUCKET, "incoming/a.txt", m["input"]["etag"], m["input"]["size"], "txt", False, "bytes", 1 << 20,
                    end_slice=1, epoch=m["input"]["epoch"], output_format="s3vectors")  # fmt: skip
    eng.run(item, forever)  # the late duplicate: every slice committed, finalize again
    eng.index.retract(replace(item, etag="0" * 32))  # a retraction of another version of a.txt
    assert_exactly_once(aws, crafted, texts(3, "x "), "s3vectors")
    assert_exactly_once(aws, "incoming/a.txt", texts(4), "s3vectors")


def test_bert_encode_reconcile_refuses_a_bad_url_or_a_prefix_outside_the_inputs(aws, monkeypatch, capsys) -> None:
    from bert2vec.cli import main

    assert main(["--reconcile", "not-an-s3-url"]) == 2
    assert "s3://" in capsys.readouterr().err
    assert main(["--reconcile", f"s3://{BUCKET}/vectors/"]) == 2
    assert "is not under the input prefix 'incoming/'" in capsys.readouterr().err


def test_sequencers_compare_after_padding_and_case_folding() -> None:
    """S3's sequencers of one key are hex strings of varying length: compared left-padded."""
    from bert2vec.bulk.ledger import sequencer_order

    assert sequencer_order("0A1B", "A1B") == 0 and sequencer_order("a1b", "0A1B") == 0
    assert sequencer_order("FF", "100") == -1 and sequencer_order("100", "FF") == 1
    assert sequencer_order("0A1B2C3D4E5F6789AB", "0A1B2C3D4E5F678901") == 1
