"""Run state lives where no input key can reach it, and state the previous release wrote is carried on.

Part one: inputs named to look like another object's run state (its run directory, a file in it,
its slice errors file less the suffix, the index's model record) are uploaded, encoded, redelivered
and deleted next to the object they aim at; that object's files, key records and vectors stay as
they were, and its re-upload and deletion clean it up exactly. These tests look for the run
directory the way a user can — through the manifest — so they hold for any layout.

Part two replays ``tests/fixtures/old_run_layout.json`` (recorded by running the previous release:
runs under ``<OUTPUT_PREFIX><rel>/``, queued messages without a layout field, a deletion's clean-up
continuation) and lets this release go on from it: in-flight runs finish where they started, a
re-upload or deletion removes the old runs and their vectors, ``--reconcile`` sees both layouts.
"""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bert2vec.bulk.config import OWN_RUN_FILES, BulkConfig, OutputLayout
from bert2vec.bulk.s3_engine import Engine, WorkItem
from tests.bulk_support import (
    BUCKET,
    VBUCKET,
    VINDEX,
    Bucket,
    ModelEncoder,
    assert_exactly_once,
    created_event,
    deliver,
    etag_of,
    forever,
    index_contents,
    make_engine,
    manifest_of,
    texts,
    vectors_of,
)

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "old_run_layout.json"


def listing(aws: dict[str, Any], prefix: str) -> dict[str, str]:
    """{key: ETag} of every object under ``prefix``."""
    pages = aws["s3"].get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return {o["Key"]: o["ETag"] for page in pages for o in page.get("Contents", [])}


def run_dir_of(manifest: dict[str, Any]) -> str:
    """The run directory a manifest's errors file is in (found as a user finds it: by the manifest)."""
    return str(manifest["output"]["errors_key"])[: -len("errors.jsonl")]


def jsonl(lines: list[str], bad: int | None = None) -> bytes:
    rows = [json.dumps({"id": f"r{i}", "text": t}) for i, t in enumerate(lines, 1)]
    if bad:
        rows[bad - 1] = "{not json"
    return ("\n".join(rows) + "\n").encode()


# ---- part one: a namespace no input key can reach -------------------------------------------------


@pytest.mark.parametrize("fmt", ["s3vectors", "jsonl"])
def test_inputs_named_like_another_objects_run_state_never_touch_it(aws, monkeypatch, fmt: str) -> None:
    bucket, eng = Bucket(aws), make_engine(aws, fmt, chunk_bytes=256)
    key = "incoming/a.jsonl"
    v1 = texts(8, "a ")
    first = bucket.put(key, jsonl(v1, bad=3))
    deliver(eng, first, monkeypatch)
    m1 = manifest_of(aws["s3"], key)
    run_dir = run_dir_of(m1)
    home = run_dir.rsplit("/", 2)[0] + "/"  # where every run of a.jsonl is
    (slice_errors,) = [k for k in listing(aws, run_dir) if "/_slices/" in k and k.endswith(".errors.jsonl")]
    before, index_before = listing(aws, home), vectors_of(aws, key) if fmt == "s3vectors" else {}
    assert before and all(k.startswith(run_dir) for k in before)
    inside = "incoming/" + run_dir[len("vectors/") :]
    crafted = [
        f"incoming/a.jsonl/{m1['input']['etag']}~{m1['input']['epoch']}/part-zz.txt",  # the previous layout's run
        f"{inside}part-000000-0000-aaaaaaaaaaaa.jsonl.txt",  # a.jsonl's run directory, wherever it is
        f"{inside}_vector_keys/000000-0000-aaaaaaaaaaaa-00000.json.txt",
    ]
    for c in crafted:
        deliver(eng, bucket.put(c, texts(3, "x ")), monkeypatch)
    # Named like a.jsonl's slice errors file less its suffix: its deletion once removed "its" errors file.
    named_like = "incoming/" + slice_errors[len("vectors/") : -len(".errors.jsonl")]
    deliver(eng, bucket.put(named_like, texts(2)), monkeypatch)
    deliver(eng, bucket.delete(named_like), monkeypatch)
    deliver(eng, first, monkeypatch)  # a.jsonl's event again
    item = WorkItem(BUCKET, key, m1["input"]["etag"], m1["input"]["size"], "jsonl", False, "bytes", 256,
                    end_slice=m1["chunks"]["total"], epoch=m1["input"]["epoch"], output_format=fmt)  # fmt: skip
    eng.run(item, forever)  # a late duplicate of its last message: every slice committed, finalize again
    if fmt == "s3vectors":
        eng.index.retract(replace(item, etag="0" * 32))  # another version of a.jsonl takes its vectors back
    deliver(eng, bucket.delete(crafted[0]), monkeypatch)
    after = {k: e for k, e in listing(aws, home).items() if not k.endswith(".manifest.json")}
    assert after == before, "a.jsonl's parts, commits, errors and key records are exactly as they were"
    assert manifest_of(aws["s3"], key) == m1
    if fmt == "s3vectors":
        assert vectors_of(aws, key) == index_before
    for c in crafted[1:]:
        assert_exactly_once(aws, c, texts(3, "x "), fmt)
    v2 = texts(5, "b ")
    deliver(eng, bucket.put(key, jsonl(v2)), monkeypatch)
    m2 = assert_exactly_once(aws, key, v2, fmt)
    if fmt == "s3vectors":
        left = [k for k in listing(aws, run_dir) if ("/_vector_keys/" in k or "/_slices/" in k)
                and not k.endswith(".manifest.json")]  # fmt: skip
        assert left == [], "v1's key records and state went with its vectors"
        assert m2["output"]["stale_vectors_deleted"] == len(index_before)
    for c in crafted[1:]:
        assert_exactly_once(aws, c, texts(3, "x "), fmt)
    deliver(eng, bucket.delete(key), monkeypatch)
    assert manifest_of(aws["s3"], key)["status"] == "deleted"
    assert [k for k in listing(aws, home) if not k.endswith(".manifest.json")] == [], "every run of a.jsonl is gone"
    assert vectors_of(aws, key) == {} if fmt == "s3vectors" else True
    for c in crafted[1:]:
        assert_exactly_once(aws, c, texts(3, "x "), fmt)


KEY_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=24)
TAILS = st.one_of(KEY_TEXT, st.sampled_from([
    "part-000000-0000-aaaaaaaaaaaa.jsonl", "part-000000-0000-aaaaaaaaaaaa.jsonl.txt", "_slices/000000",
    "_slices/000000.json.txt", "_vector_keys/x.txt", "errors.jsonl.txt", "_cleanup.json", "x/y.txt",
]))  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(rel=KEY_TEXT, suffix=st.sampled_from([".txt", ".jsonl", ".csv.gz"]), tail=TAILS, long=st.booleans(),
       epoch=st.integers(0, 3))  # fmt: skip
def test_no_input_key_names_a_file_in_another_objects_runs(rel: str, suffix: str, tail: str, long: bool, epoch: int) -> None:
    """For any input a and any input c named from a's run directory or its output name, every file c's
    runs write is outside the directory holding a's runs, and c's manifest is never a file name
    the engine writes there."""
    cfg = BulkConfig()
    a_key = "incoming/" + ("x" * 900 if long else "") + rel + suffix
    a = OutputLayout.for_object(cfg, BUCKET, a_key, "0123456789abcdef0123456789abcdef", epoch)
    a_home = a.run.rsplit("/", 2)[0] + "/"
    for c_key in ("incoming/" + a.run[len("vectors/") :] + tail, "incoming/" + a.base[len("vectors/") :] + "/" + tail,
                  "incoming/" + a_home[len("vectors/") :] + tail):  # fmt: skip
        if c_key == a_key:
            continue
        c = OutputLayout.for_object(cfg, BUCKET, c_key, "fedcba9876543210fedcba9876543210", epoch)
        written = [c.part_key(0, 0, "aaaaaaaaaaaa", ".jsonl"), c.slice_errors_key(0, 0, "aaaaaaaaaaaa"),
                   c.progress_key(0), c.commit_key(0), c.errors_key, c.cleanup_key, c.run + "_staged",
                   f"{c.vector_keys_prefix}000000-0000-aaaaaaaaaaaa-00000.json"]  # fmt: skip
        assert not [k for k in written if k.startswith(a_home)], (a_key, c_key)
        if c.manifest_key.startswith(a.run):
            assert not OWN_RUN_FILES.fullmatch(c.manifest_key[len(a.run) :])


def test_an_index_named_like_a_manifest_keeps_its_model_record(aws, monkeypatch) -> None:
    """An S3 Vectors index may be called ``lines.manifest``; its model record must not be the manifest
    key of any input (here ``incoming/_indexes/<vector bucket>/lines``), or that input's deletion
    record would replace it and every later writer be refused (or a wrong model admitted)."""
    aws["vectors"].create_index(vectorBucketName=VBUCKET, indexName="lines.manifest", dataType="float32", dimension=8,
                                distanceMetric="cosine", metadataConfiguration={"nonFilterableMetadataKeys": ["text"]})  # fmt: skip

    def engine(checksum: str) -> Engine:
        return make_engine(aws, "s3vectors", ModelEncoder(checksum), vector_index="lines.manifest")

    bucket, a = Bucket(aws), engine("a" * 64)
    deliver(a, bucket.put("incoming/one.txt", texts(3)), monkeypatch)
    crafted = f"incoming/_indexes/{VBUCKET}/lines"
    deliver(a, bucket.put(crafted, texts(2)), monkeypatch)
    deliver(a, bucket.delete(crafted), monkeypatch)
    (again,) = deliver(engine("a" * 64), bucket.put("incoming/two.txt", texts(2)), monkeypatch)  # a new environment
    assert again["status"] == "complete", again
    (other,) = deliver(engine("b" * 64), bucket.put("incoming/three.txt", texts(2)), monkeypatch)
    assert other["outcome"] == "failed" and "holds vectors of model 'model-aaaa'" in manifest_of(aws["s3"], "incoming/three.txt")["error"]


def test_an_input_named_like_a_run_home_never_takes_it_for_its_old_runs(aws, monkeypatch) -> None:
    """``incoming/_runs/<a's hash>`` would have its previous-layout runs in ``vectors/_runs/<a's hash>/``,
    which is a's run home: a key the previous release never started a run for (no supported
    suffix) has no old runs to look for, so its deletion removes nothing of a's."""
    from bert2vec.bulk.config import object_hash

    bucket, eng = Bucket(aws), make_engine(aws, "s3vectors")
    key = "incoming/a.txt"
    deliver(eng, bucket.put(key, texts(4)), monkeypatch)
    home = f"vectors/_runs/{object_hash(BUCKET, key)}/"
    before = listing(aws, home)
    assert before and run_dir_of(manifest_of(aws["s3"], key)).startswith(home)
    crafted = "incoming/" + home[len("vectors/") : -1]
    deliver(eng, bucket.put(crafted, texts(2)), monkeypatch)  # a failed manifest: unsupported input
    deliver(eng, bucket.delete(crafted), monkeypatch)
    assert listing(aws, home) == before
    assert_exactly_once(aws, key, texts(4), "s3vectors")


# ---- part two: state the previous release wrote -------------------------------------------------


class Replayed:
    """The recorded state put back: inputs, outputs, the index, the queue; engines like the recorder's."""

    def __init__(self, aws: dict[str, Any]) -> None:
        self.state = json.loads(FIXTURE.read_text(encoding="utf-8"))
        self.aws = aws
        for where in ("inputs", "outputs"):
            for key, body in self.state[where].items():
                raw = body["text"].encode() if "text" in body else base64.b64decode(body["base64"])
                aws["s3"].put_object(Bucket=BUCKET, Key=key, Body=raw)
        vectors = self.state["vectors"]
        for i in range(0, len(vectors), 100):
            aws["vectors"].put_vectors(vectorBucketName=VBUCKET, indexName=VINDEX, vectors=vectors[i : i + 100])
        for body in self.state["messages"]:
            aws["sqs"].send_message(QueueUrl=aws["queue_url"], MessageBody=body)
        self.bucket = Bucket(aws)
        self.bucket.n = self.state["sequencer"]  # later events are newer than every recorded one
        self.vec = make_engine(aws, "s3vectors", ModelEncoder(), **self.state["engine"])
        self.files = make_engine(aws, "jsonl", ModelEncoder(), **self.state["engine"])

    def engine_for(self, body: dict[str, Any]) -> Engine:
        return self.files if body.get("output_format") == "jsonl" else self.vec

    def drain(self) -> int:
        """Every queued message, each through the engine of its format (a purge: the s3vectors one)."""
        from bert2vec.bulk.s3_engine import Deletion

        sqs, url, n = self.aws["sqs"], self.aws["queue_url"], 0
        while msgs := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            for msg in msgs:
                body = json.loads(msg["Body"])
                if "purge" in body:
                    self.vec.handle_deleted(Deletion.from_message(body), forever)
                else:
                    self.engine_for(body).run(WorkItem.from_message(body), forever)
                sqs.delete_message(QueueUrl=url, ReceiptHandle=msg["ReceiptHandle"])
                n += 1
        return n

    def recorded_parts(self, rel: str) -> set[str]:
        return {k for k in self.state["outputs"] if k.startswith(f"vectors/{rel}/") and "/part-" in k
                and "part-zz" not in k}  # fmt: skip

    def sequencer_of(self, key: str) -> str:
        from bert2vec.bulk.config import object_hash

        record = json.loads(self.state["outputs"][f"vectors/_objects/{object_hash(BUCKET, key)}.json"]["text"])
        return str(record["sequencer"])


def old_runs(aws: dict[str, Any], key: str) -> dict[str, list[str]]:
    """The object's runs in the previous layout: {run directory: files}."""
    from bert2vec.bulk.config import own_runs

    home = f"vectors/{key[len('incoming/') :]}/"
    return own_runs(home, listing(aws, home))


def new_home(key: str) -> str:
    from bert2vec.bulk.config import object_hash

    return f"vectors/_runs/{object_hash(BUCKET, key)}/"


def test_runs_in_flight_at_the_deploy_finish_where_they_started(aws, monkeypatch) -> None:
    """Shards, a mid-slice hand-off and a deletion's clean-up queued by the previous release: the
    runs go on in their old directories (their committed slices are not encoded again), the
    deletion goes on to the end; the next upload then goes to the object's run home and takes
    the old run with it."""
    old = Replayed(aws)
    assert old.drain() == 5
    for key, lines, fmt in (("incoming/big.txt", texts(40, "big "), "s3vectors"),
                            ("incoming/f-big.txt", texts(40, "fbig "), "jsonl")):  # fmt: skip
        m = assert_exactly_once(aws, key, lines, fmt)
        rel = key[len("incoming/") :]
        parts = {p["key"] for p in m["output"]["parts"]}
        assert old.recorded_parts(rel) <= parts, "slices the previous release committed are kept, not re-encoded"
        assert all(p.startswith(f"vectors/{rel}/") for p in parts) and m["output"]["errors_key"].startswith(f"vectors/{rel}/")
        assert listing(aws, new_home(key)) == {}
    gone = manifest_of(aws["s3"], "incoming/gone.txt")
    assert gone["status"] == "deleted" and vectors_of(aws, "incoming/gone.txt") == {}
    assert old_runs(aws, "incoming/gone.txt") == {} and listing(aws, new_home("incoming/gone.txt")) == {}
    deliver(old.vec, old.bucket.put("incoming/big.txt", texts(7, "v2 ")), monkeypatch)
    m = assert_exactly_once(aws, "incoming/big.txt", texts(7, "v2 "), "s3vectors")
    assert run_dir_of(m).startswith(new_home("incoming/big.txt"))
    assert m["output"]["stale_vectors_deleted"] == 40 and old_runs(aws, "incoming/big.txt") == {}


def test_a_duplicate_event_for_a_run_in_flight_goes_on_in_its_old_directory(aws, monkeypatch) -> None:
    """The previous release fanned big.txt out; its event comes again after the deploy (before the
    queued shards ran): the new plan goes on in the old run directory instead of starting a
    second run of the same version beside it."""
    old = Replayed(aws)
    (summary,) = deliver(old.vec, created_event("incoming/big.txt", old.sequencer_of("incoming/big.txt")), monkeypatch)
    assert summary["outcome"] == "fanned_out", summary
    old.drain()
    m = assert_exactly_once(aws, "incoming/big.txt", texts(40, "big "), "s3vectors")
    assert old.recorded_parts("big.txt") <= {p["key"] for p in m["output"]["parts"]}
    assert listing(aws, new_home("incoming/big.txt")) == {}


@pytest.mark.parametrize("change", ["upload", "delete"])
def test_completed_old_runs_are_cleaned_when_the_object_changes(aws, monkeypatch, change: str) -> None:
    """a.jsonl, old.txt (epoch 0, no ledger record) and f.txt (jsonl) completed under the previous
    release; an input crafted under a.jsonl's old run directory did too. A new upload or a
    deletion of each removes its old runs (parts, errors, state, key records) and, for s3vectors,
    the vectors its key records name — never the crafted object's, which keeps its own."""
    old = Replayed(aws)
    crafted = next(k for k in old.state["inputs"] if k.endswith("/part-zz.txt"))
    crafted_home = f"vectors/{crafted[len('incoming/') :]}/"
    crafted_files = listing(aws, crafted_home)
    assert crafted_files and all(k.startswith(f"vectors/a.jsonl/{crafted.split('/')[2]}/") for k in crafted_files)
    for key, fmt in (("incoming/a.jsonl", "s3vectors"), ("incoming/old.txt", "s3vectors"), ("incoming/f.txt", "jsonl")):
        eng = old.files if fmt == "jsonl" else old.vec
        old_vectors = vectors_of(aws, key)
        assert old_runs(aws, key) and (old_vectors or fmt == "jsonl")
        if change == "upload":
            body = jsonl(texts(3, "new ")) if key.endswith(".jsonl") else "\n".join(texts(3, "new ")).encode() + b"\n"
            deliver(eng, old.bucket.put(key, body), monkeypatch)
            m = assert_exactly_once(aws, key, texts(3, "new "), fmt)
            assert run_dir_of(m).startswith(new_home(key))
        else:
            deliver(eng, old.bucket.delete(key), monkeypatch)
            assert manifest_of(aws["s3"], key)["status"] == "deleted"
            assert vectors_of(aws, key) == {} and listing(aws, new_home(key)) == {}
        assert old_runs(aws, key) == {}, f"{key}: no run of the previous layout is left"
        assert not set(old_vectors) & set(vectors_of(aws, key)), f"{key}: the old version's vectors are gone"
    assert listing(aws, crafted_home) == crafted_files, "the crafted object's outputs are its own"
    assert_exactly_once(aws, crafted, texts(3, "crafted "), "s3vectors")
    deliver(old.vec, old.bucket.delete(crafted), monkeypatch)  # and its own deletion finds them
    assert listing(aws, crafted_home) == {} and vectors_of(aws, crafted) == {}


def test_reconcile_sees_both_layouts(aws, monkeypatch) -> None:
    """A dry run counts the previous release's run directories beside the drift; repairs (an orphan, an
    outdated object) remove old runs and their vectors; what is left is counted until it is gone."""
    from bert2vec.bulk.reconcile import reconcile

    old = Replayed(aws)
    drift = reconcile(old.vec, BUCKET, "incoming/")
    assert drift.summary() == {"objects": 6, "up_to_date": 4, "missing": 2, "outdated": 0, "orphaned": 1,
                               "stray_vectors": 0, "applied": False, "old_layout_runs": 7}  # fmt: skip
    old.drain()
    aws["s3"].delete_object(Bucket=BUCKET, Key="incoming/old.txt")  # no event
    aws["s3"].put_object(Bucket=BUCKET, Key="incoming/a.jsonl", Body=jsonl(texts(2, "v2 ")))  # no event
    old_vectors = {k for key in ("incoming/old.txt", "incoming/a.jsonl") for k in vectors_of(aws, key)}
    drift = reconcile(old.vec, BUCKET, "incoming/")
    assert (drift.orphaned, drift.outdated, drift.old_layout_runs) == (["incoming/old.txt"], ["incoming/a.jsonl"], 6)
    drift = reconcile(old.vec, BUCKET, "incoming/", apply=True)
    assert drift.outcomes == {"deleted": 1, "encoded": 1}
    assert not old_vectors & set(index_contents(aws)), "the repaired objects' old vectors are gone"
    assert old_runs(aws, "incoming/old.txt") == {} and old_runs(aws, "incoming/a.jsonl") == {}
    assert_exactly_once(aws, "incoming/a.jsonl", texts(2, "v2 "), "s3vectors")
    after = reconcile(old.vec, BUCKET, "incoming/")
    assert after.clean and after.summary()["old_layout_runs"] == 4  # big, f, f-big, the crafted object's


def test_the_index_model_record_of_the_previous_release_still_refuses_another_model(aws, monkeypatch) -> None:
    old = Replayed(aws)
    other = make_engine(aws, "s3vectors", ModelEncoder("b" * 64))
    (summary,) = deliver(other, old.bucket.put("incoming/new.txt", texts(2)), monkeypatch)
    assert summary["outcome"] == "failed"
    assert "holds vectors of model 'model-aaaa'" in manifest_of(aws["s3"], "incoming/new.txt")["error"]
    (summary,) = deliver(old.vec, old.bucket.put("incoming/new.txt", texts(2)), monkeypatch)
    assert summary["status"] == "complete", summary
    marks = [k for k in listing(aws, "vectors/_indexes/") if k.count("/") == 2]
    assert len(marks) == 1, "the record under its hashed name, carried over"
    record = json.loads(aws["s3"].get_object(Bucket=BUCKET, Key=marks[0])["Body"].read())
    legacy = json.loads(old.state["outputs"][f"vectors/_indexes/{VBUCKET}/{VINDEX}.json"]["text"])
    assert record["model"] == legacy["model"] and record["since"] == legacy["since"]


def test_a_message_of_the_previous_release_names_the_previous_layout(aws) -> None:
    """What the old release queued (no layout field) runs in the old place; what this one sends says
    where its run is, so a message never moves a run from one place to the other."""
    old = Replayed(aws)
    body = next(json.loads(m) for m in old.state["messages"] if "purge" not in json.loads(m))
    assert "layout" not in body
    item = WorkItem.from_message(body)
    assert old.vec.layout(item).run == f"vectors/big.txt/{item.etag}~1/"
    again = WorkItem.from_message(item.to_message("incoming/"))
    assert again.layout == item.layout and old.vec.layout(again).run == old.vec.layout(item).run
    fresh = replace(item, layout=WorkItem.layout)
    assert old.vec.layout(WorkItem.from_message(fresh.to_message("incoming/"))).run.startswith(new_home("incoming/big.txt"))
    assert etag_of(aws["s3"], "incoming/big.txt") == item.etag
