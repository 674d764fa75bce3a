"""The typed records that cross modules and outlive releases: the manifest, counts, slice commits.

Each is read back from what an *earlier release* wrote — the shapes below are copied from the
writers in git history (the first bulk release's finalizer, the release before the word "slice"
reached the manifest, the local CLI, the deletion record in docs/s3-bulk.md) — because S3 keeps
them across deploys: a duplicate event, ``bert-encode --reconcile`` or a slice committed mid-run
by the previous release must still be understood. And what this release writes reads back equal.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from bert2vec.bulk.outcome import Kind, Outcome
from bert2vec.bulk.state import Commit, KeyRecord, Progress
from bert2vec.files import manifest as manifests
from bert2vec.files.manifest import (
    MANIFEST_VERSION,
    FailedSlice,
    Manifest,
    Output,
    Part,
    Slices,
    Source,
    SourceFormat,
    Timings,
)
from bert2vec.files.pipeline import Counts

MODEL = {"name": "bert-tiny", "source": "hf:prajjwal1/bert-tiny", "vector_length": 128, "pooling": "cls",
         "normalize": True, "max_seq_length": 128, "checksum": "a" * 64}  # fmt: skip

# The first bulk release's finalizer: no segments, no epoch, counts without swallowed/chunks.
V1_FIRST_RELEASE: dict[str, Any] = {
    "version": 1,
    "status": "incomplete",
    "input": {"bucket": "in", "key": "incoming/docs.jsonl", "etag": "e1", "size": 2048,
              "format": {"kind": "jsonl", "gzip": False}},
    "model": MODEL,
    "output": {"bucket": "in", "format": "parquet", "errors_key": "vectors/incoming/docs.jsonl.errors.jsonl",
               "parts": [{"chunk": 0, "rows": 3, "first_line": 1, "last_line": 4,
                          "key": "vectors/incoming/docs.jsonl.part-000000.parquet"}]},
    "counts": {"lines_read": 4, "encoded": 3, "rejected": 0, "blank": 1, "truncated": 0, "tokens": 30,
               "encode_seconds": 0.5},
    "balanced": True,
    "chunks": {"total": 2, "unit": "bytes", "chunk_size": 1024, "failed": [{"chunk": 1, "error": "poison"}]},
    "timings": {"started_at": "2025-11-25T12:00:00+00:00", "finished_at": "2025-11-25T12:01:00+00:00",
                "encode_seconds": 0.5},
}  # fmt: skip

# The release before this one: segments, epoch, a Batch Operations version, the index's clean-up.
V1_LAST_RELEASE: dict[str, Any] = {
    "version": 1,
    "status": "complete",
    "input": {"bucket": "in", "key": "incoming/docs.jsonl", "etag": "e2", "size": 4096, "epoch": 3,
              "version_id": "v-7", "format": {"kind": "jsonl", "gzip": True}},
    "model": MODEL,
    "output": {"bucket": "in", "format": "s3vectors", "errors_key": "vectors/incoming/docs.jsonl/e2~3/errors.jsonl",
               "vector_bucket": "vb", "vector_index": "lines", "stale_vectors_deleted": 2,
               "parts": [{"chunk": 0, "segment": 0, "rows": 2, "first_line": 1, "last_line": 2,
                          "key": "vectors/incoming/docs.jsonl/e2~3/000000-0000-a.npy",
                          "ids_key": "vectors/incoming/docs.jsonl/e2~3/000000-0000-a.ids.jsonl"},
                         {"chunk": 0, "segment": 1, "rows": 1, "first_line": 3, "last_line": 3,
                          "key": "vectors/incoming/docs.jsonl/e2~3/000000-0001-b.npy"}]},
    "counts": {"lines_read": 3, "encoded": 3, "rejected": 0, "blank": 0, "truncated": 1, "swallowed": 0,
               "tokens": 700, "encode_seconds": 0.25, "chunks": 6},
    "balanced": True,
    "chunks": {"total": 1, "unit": "bytes", "chunk_size": 1048576, "failed": []},
    "timings": {"started_at": "2025-11-25T12:00:00+00:00", "finished_at": "2025-11-25T12:01:00+00:00",
                "encode_seconds": 0.25},
}  # fmt: skip

V1_RETRYABLE: dict[str, Any] = {
    "version": 1, "status": "failed", "retryable": True, "error": "ClientError: SlowDown",
    "input": {"bucket": "in", "key": "incoming/docs.jsonl", "etag": "e2", "size": 4096, "epoch": 3},
    "model": MODEL, "output": {"bucket": "in", "format": "jsonl", "parts": []},
    "counts": {"lines_read": 0, "encoded": 0, "rejected": 0, "blank": 0, "truncated": 0, "swallowed": 0,
               "tokens": 0, "encode_seconds": 0.0},
    "balanced": True,
}  # fmt: skip

# docs/s3-bulk.md, "The index mirrors the bucket".
V1_DELETED: dict[str, Any] = {
    "version": 1, "status": "deleted",
    "input": {"bucket": "bert2vec-input", "key": "incoming/docs.jsonl", "epoch": 3, "sequencer": "0A1B2C3D4E5F6789AB"},
    "deleted": {"reason": "DeleteObject (Permanently Deleted)", "at": "2025-11-25T12:05:00Z"},
}  # fmt: skip

# bert-encode --input docs.csv --output - --manifest m.json (stdin has no size; no errors file kept).
V1_LOCAL: dict[str, Any] = {
    "version": 1, "status": "complete",
    "input": {"path": "-", "size": None, "format": {"kind": "csv", "gzip": False}},
    "model": MODEL,
    "output": {"format": "npy", "errors_path": None,
               "parts": [{"chunk": 0, "path": "-", "rows": 2, "first_line": 1, "last_line": 2,
                          "ids_path": "/tmp/m.ids.jsonl"}]},
    "counts": {"lines_read": 2, "encoded": 2, "rejected": 0, "blank": 0, "truncated": 0, "swallowed": 0,
               "tokens": 12, "encode_seconds": 0.01},
    "balanced": True,
    "timings": {"started_at": "2025-11-25T12:00:00+00:00", "finished_at": "2025-11-25T12:00:01+00:00",
                "encode_seconds": 0.01, "wall_seconds": 1.2},
}  # fmt: skip

OLD = {"first release": V1_FIRST_RELEASE, "last release": V1_LAST_RELEASE, "retryable": V1_RETRYABLE,
       "deleted": V1_DELETED, "local": V1_LOCAL}  # fmt: skip


def _in_old_words(written: dict[str, Any]) -> dict[str, Any]:
    """What a version-2 manifest says, without what version 2 added (its number, the slice names)."""
    d = copy.deepcopy(written)
    d["version"] = 1
    d.pop("slices", None)
    for part in (d.get("output") or {}).get("parts", []):
        del part["slice"]
    return d


# ---- the manifest ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(OLD))
def test_every_earlier_manifest_reads_and_loses_nothing_when_written_again(name: str) -> None:
    old = OLD[name]
    m = Manifest.from_json(json.dumps(old))
    assert m.version == 1 and m.status == old["status"]
    again = m.to_dict()
    # Every field an earlier release wrote is written back the same (old words included); counts
    # it did not keep yet (the first release had no ``swallowed``) come back as 0.
    if "counts" in old:
        added = {k: v for k, v in again["counts"].items() if k not in old["counts"]}
        assert added == ({"swallowed": 0} if name == "first release" else {})
        again["counts"] = {k: v for k, v in again["counts"].items() if k in old["counts"]}
    assert _in_old_words(again) == old
    assert again["version"] == 1  # as read: a re-dump does not pretend to be another version


def test_the_version_1_words_read_as_slices() -> None:
    m = Manifest.from_dict(V1_FIRST_RELEASE)
    assert m.slices == Slices(total=2, unit="bytes", slice_size=1024, failed=[FailedSlice(1, "poison")])
    assert [p.slice for p in m.output.parts] == [0]
    assert m.counts == Counts(lines_read=4, encoded=3, blank=1, tokens=30, encode_seconds=0.5)
    assert m.answers("e1", 0) and not m.answers("e1", 1) and not m.answers("other", 0)


def test_a_newer_manifest_keeps_reading_when_it_grows_fields() -> None:
    newer = {**V1_LAST_RELEASE, "version": MANIFEST_VERSION + 1, "provenance": {"x": 1},
             "counts": {**V1_LAST_RELEASE["counts"], "bytes_read": 99}}  # fmt: skip
    m = Manifest.from_dict(newer)
    assert m.version == MANIFEST_VERSION + 1 and m.counts is not None and m.counts.encoded == 3


def test_only_a_final_verdict_on_the_same_version_and_epoch_answers_an_event() -> None:
    assert Manifest.from_dict(V1_LAST_RELEASE).answers("e2", 3)
    assert not Manifest.from_dict(V1_LAST_RELEASE).answers("e2", 4)  # a later epoch is encoded afresh
    assert not Manifest.from_dict(V1_RETRYABLE).answers("e2", 3)  # a retry is not a duplicate
    assert not Manifest.from_dict(V1_DELETED).answers("", 3)


def _s3_manifest(**over: Any) -> Manifest:
    counts = over.pop("counts", Counts(lines_read=4, encoded=3, blank=1, tokens=30, encode_seconds=0.123))
    fields: dict[str, Any] = dict(
        status=manifests.status_of(counts, 1, 2),
        input=Source(bucket="in", key="incoming/a.txt", etag="e", size=10, format=SourceFormat("txt", False), epoch=2),
        model_card={**MODEL, "extra": "not summarised"},
        output=Output(format="jsonl", bucket="in", errors_key="vectors/a/errors.jsonl",
                      parts=[Part(slice=0, segment=0, rows=3, first_line=1, last_line=4, key="vectors/a/p")]),
        counts=counts,
        slices=Slices(total=2, unit="bytes", slice_size=512, failed=[FailedSlice(1, "poison")]),
        timings=Timings("2025-11-25T12:00:00+00:00", "2025-11-25T12:00:09+00:00", 0.123),
        error="slice 1: poison",
    )  # fmt: skip
    fields.update(over)
    return Manifest.result(**fields)


def test_a_new_manifest_says_slices_and_keeps_the_old_words_beside_them() -> None:
    counts = Counts(lines_read=4, encoded=3, blank=1, tokens=30, encode_seconds=0.123456)
    written = json.loads(_s3_manifest(counts=counts).to_json())
    assert written["version"] == MANIFEST_VERSION == 2 and written["status"] == "incomplete"
    assert written["slices"] == {"total": 2, "unit": "bytes", "slice_size": 512,
                                 "failed": [{"slice": 1, "error": "poison"}]}  # fmt: skip
    assert written["chunks"] == {"total": 2, "unit": "bytes", "chunk_size": 512,
                                 "failed": [{"chunk": 1, "error": "poison"}]}  # fmt: skip
    assert written["output"]["parts"] == [{"slice": 0, "chunk": 0, "segment": 0, "rows": 3, "first_line": 1,
                                           "last_line": 4, "key": "vectors/a/p"}]  # fmt: skip
    assert written["model"] == MODEL and written["counts"]["encode_seconds"] == 0.123
    assert written["input"]["epoch"] == 2 and "version_id" not in written["input"] and "retryable" not in written


@pytest.mark.parametrize(
    "manifest",
    [
        _s3_manifest(),
        _s3_manifest(status="failed", output=Output(format="npy", bucket="in"), counts=Counts(), slices=None,
                     timings=None, error="refused", retryable=True),
        Manifest.deletion(Source(bucket="in", key="incoming/a.txt", epoch=4, sequencer="0A"), "DeleteObject", "t"),
        Manifest.from_dict(V1_LOCAL),
    ],
    ids=["complete", "retryable", "deleted", "local"],
)
def test_what_is_written_reads_back_equal_and_writes_the_same_bytes(manifest: Manifest) -> None:
    body = manifest.to_json()
    assert Manifest.from_json(body) == manifest
    assert Manifest.from_json(body).to_json() == body == manifests.dumps(json.loads(body))


# ---- counts ----------------------------------------------------------------------------------
def test_counts_read_what_any_release_wrote() -> None:
    assert Counts.from_dict({}) == Counts() == Counts.from_dict(None)  # a failed slice's commit
    old = Counts.from_dict({"lines_read": 2, "encoded": 2, "rejected": 0, "blank": 0, "truncated": 0,
                            "tokens": 9, "encode_seconds": 0.5})  # fmt: skip  (before swallowed / chunks)
    assert old == Counts(lines_read=2, encoded=2, tokens=9, encode_seconds=0.5) and old.balanced()
    newer = Counts.from_dict({**Counts(encoded=1).to_dict(), "bytes_read": 7})  # a newer release's field
    assert newer == Counts(encoded=1)
    c = Counts(lines_read=3, encoded=2, blank=1, tokens=5, encode_seconds=0.1234, chunks=4)
    assert Counts.from_dict(c.to_dict()) == Counts(lines_read=3, encoded=2, blank=1, tokens=5, encode_seconds=0.123,
                                                    chunks=4)  # fmt: skip


# What the previous release's worker committed for a slice (counts as a plain dict).
OLD_COMMIT: dict[str, Any] = {
    "slice": 0, "final": True, "finished_at": "2025-11-25T12:01:00+00:00", "attempt": "a1",
    "counts": {"lines_read": 3, "encoded": 3, "rejected": 0, "blank": 0, "truncated": 0, "swallowed": 0,
               "tokens": 21, "encode_seconds": 0.2},
    "segments": [{"segment": 0, "attempt": "a1", "parts": ["vectors/x/000000-0000-a1.jsonl"], "rows": 3,
                  "errors_key": None, "first_line": 1, "last_line": 3,
                  "counts": {"lines_read": 3, "encoded": 3, "rejected": 0, "blank": 0, "truncated": 0,
                             "swallowed": 0, "tokens": 21, "encode_seconds": 0.2}}],
    "rows": 3, "first_line": 1, "last_line": 3, "next_line": 4, "started_at": "2025-11-25T12:00:00+00:00",
    "failed": False, "error": None, "read_error": None, "model": "a" * 64, "v": 1,
}  # fmt: skip


def test_a_commit_of_the_previous_release_reads_with_typed_counts_and_writes_back_the_same() -> None:
    commit = Commit.from_dict(OLD_COMMIT)
    assert commit.counts == Counts(lines_read=3, encoded=3, tokens=21, encode_seconds=0.2)
    assert commit.segments[0].counts.encoded == 3
    assert commit.to_dict() == OLD_COMMIT
    failed = Commit.from_dict({"slice": 1, "final": True, "finished_at": "t", "failed": True, "error": "x",
                               "counts": {}, "segments": []})  # fmt: skip
    assert failed.counts == Counts() and Commit.from_dict(failed.to_dict()) == failed
    progress = Progress.from_dict({"slice": 0, "resume": 10, "next_line": 2, "first_line": 1, "started_at": "t",
                                   "segments": OLD_COMMIT["segments"], "v": 1})  # fmt: skip
    assert progress.to_dict()["segments"] == OLD_COMMIT["segments"]


def test_an_outcome_reports_the_manifests_counts() -> None:
    counts = Counts(lines_read=2, encoded=2, tokens=4, encode_seconds=0.0004)
    out = Outcome(Kind.ENCODED, "incoming/a.txt", manifest_key="vectors/a.txt.manifest.json", status="complete",
                  counts=counts)  # fmt: skip
    assert out.lines_encoded() == 2 and out.describe().startswith("complete: 2 lines encoded")
    assert out.summary()["counts"] == counts.to_dict() == json.loads(json.dumps(out.summary()))["counts"]


def test_the_duplicate_check_and_reconcile_read_manifests_of_earlier_releases(monkeypatch) -> None:
    """Planted in the shapes older releases wrote: a finished one answers its upload (a duplicate, not
    encoded again) and is up to date for reconcile; a retryable stand-in and a deletion record are not."""
    from bert2vec.bulk.config import BulkConfig
    from bert2vec.bulk.reconcile import reconcile
    from bert2vec.bulk.s3_engine import Engine
    from tests.bulk_support import BUCKET, HashEncoder, lines_of, moto_aws

    monkeypatch.setenv("BERT2VEC_LAZY_INIT", "1")
    with moto_aws() as aws:
        s3 = aws["s3"]
        eng = Engine(s3, HashEncoder(), BulkConfig(queue_url=aws["queue_url"]), aws["sqs"])
        planted = {"done": V1_FIRST_RELEASE, "retry": {**V1_RETRYABLE, "input": {**V1_RETRYABLE["input"], "epoch": 0}},
                   "gone": V1_DELETED}  # fmt: skip
        for name, old in planted.items():
            key = f"incoming/{name}.txt"
            s3.put_object(Bucket=BUCKET, Key=key, Body=lines_of([f"{name} line one", f"{name} line two"]))
            etag = s3.head_object(Bucket=BUCKET, Key=key)["ETag"].strip('"')
            shaped = {**old, "input": {**old["input"], "bucket": BUCKET, "key": key,
                                       **({"etag": etag} if "etag" in old["input"] else {})}}  # fmt: skip
            s3.put_object(Bucket=BUCKET, Key=f"vectors/{name}.txt.manifest.json", Body=json.dumps(shaped).encode())
        drift = reconcile(eng, BUCKET, "incoming/")
        assert (drift.up_to_date, sorted(drift.missing), drift.orphaned) == (1, ["incoming/gone.txt",
                                                                                 "incoming/retry.txt"], [])  # fmt: skip
        assert eng.handle_object(BUCKET, "incoming/done.txt", lambda: 900_000).kind is Kind.DUPLICATE
        encoded = eng.handle_object(BUCKET, "incoming/retry.txt", lambda: 900_000)
        assert encoded.kind is Kind.ENCODED and encoded.counts == Counts.from_dict(encoded.summary()["counts"])
        written = json.loads(s3.get_object(Bucket=BUCKET, Key="vectors/retry.txt.manifest.json")["Body"].read())
        assert written["version"] == MANIFEST_VERSION and written["slices"]["total"] == 1 and written["chunks"]
        assert Manifest.from_dict(written).counts == encoded.counts and encoded.counts.encoded == 2


def test_a_vector_key_record_of_the_previous_release_reads_and_writes_back_the_same() -> None:
    old = {"source_bucket": "in", "source_key": "incoming/a.txt", "etag": "e1",
           "keys": ["in/incoming/a.txt#1@e1~2", "in/incoming/a.txt#2@e1~2"]}  # fmt: skip
    record = KeyRecord.from_dict(old)
    assert record.belongs_to("in", "incoming/a.txt") and not record.belongs_to("in", "incoming/a.txt.x")
    assert record.keys == old["keys"] and record.to_dict() == old
    # Unreadable or not one of ours: names no object, lists nothing (so no clean-up acts on it).
    for junk in (None, {}, {"keys": None}, {"source_key": "incoming/a.txt"}):
        stray = KeyRecord.from_dict(junk)
        assert stray.keys == [] or not stray.belongs_to("in", "incoming/a.txt")
