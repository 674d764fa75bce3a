"""The S3 bulk path against moto (in-process ``mock_aws``) with the real exported default model.

Every test ends by checking the manifest's accounting: ``lines_read == encoded + rejected + blank``
and that the parts hold each encoded line exactly once.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from bert2vec.bulk.config import BulkConfig
from bert2vec.bulk.s3_engine import Engine, WorkItem
from tests.bulk_support import output_rows as read_outputs
from tests.conftest import RawBody as _Raw

BUCKET = "bert2vec-input"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any, str]]:
    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    from moto import mock_aws

    from bert2vec.bulk.s3_engine import s3_client, sqs_client

    with mock_aws():
        s3, sqs = s3_client(), sqs_client()
        s3.create_bucket(Bucket=BUCKET)
        queue_url = sqs.create_queue(QueueName="shards")["QueueUrl"]
        yield s3, sqs, queue_url


def make_engine(aws, encoder, **cfg: Any) -> Engine:
    s3, sqs, queue_url = aws
    return Engine(s3, encoder, BulkConfig(queue_url=queue_url, **cfg), sqs)


def forever() -> int:
    return 10_000_000


def manifest_of(s3, key: str, prefix: str = "incoming/", out: str = "vectors/") -> dict[str, Any]:
    rel = key[len(prefix) :]
    return json.loads(s3.get_object(Bucket=BUCKET, Key=f"{out}{rel}.manifest.json")["Body"].read())


def errors_of(s3, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    body = s3.get_object(Bucket=manifest["output"]["bucket"], Key=manifest["output"]["errors_key"])["Body"].read()
    return [json.loads(x) for x in body.decode().splitlines()]


def check_accounting(s3, manifest: dict[str, Any]) -> list[tuple[Any, int, np.ndarray]]:
    c = manifest["counts"]
    assert c["lines_read"] == c["encoded"] + c["rejected"] + c["blank"]
    assert manifest["balanced"] is True
    rows = read_outputs(s3, manifest)
    lines = [r[1] for r in rows]
    assert len(lines) == len(set(lines)) == c["encoded"], "every encoded line exactly once"
    assert lines == sorted(lines), "input order kept"
    assert len(errors_of(s3, manifest)) == c["rejected"]
    return rows


def put(s3, key: str, data: bytes) -> None:
    s3.put_object(Bucket=BUCKET, Key=key, Body=data)


def test_txt_with_bom_crlf_blank_and_invalid_utf8(aws, default_encoder) -> None:
    s3 = aws[0]
    data = "\ufeffhello world\r\n\r\n  \r\nsecond line\r\n".encode() + b"bad \xff\xfe byte\r\nlast line without newline"
    put(s3, "incoming/a.txt", data)
    eng = make_engine(aws, default_encoder)
    summary = eng.handle_object(BUCKET, "incoming/a.txt", forever)
    assert summary.status == "complete"
    m = manifest_of(s3, "incoming/a.txt")
    assert m["counts"]["lines_read"] == 6 and m["counts"]["blank"] == 2 and m["counts"]["rejected"] == 1
    rows = check_accounting(s3, m)
    assert [r[1] for r in rows] == [1, 4, 6]
    ref = default_encoder.encode(["hello world", "second line", "last line without newline"]).embeddings
    np.testing.assert_allclose(np.stack([r[2] for r in rows]), ref, atol=1e-6)
    (err,) = errors_of(s3, m)
    assert err["line"] == 5 and "UTF-8" in err["reason"]


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "npy"])
def test_output_formats_read_back(aws, default_encoder, fmt: str) -> None:
    s3 = aws[0]
    lines = [json.dumps({"id": f"doc-{i}", "text": f"sentence number {i} about dogs"}) for i in range(40)]
    put(s3, "incoming/docs.jsonl", ("\n".join(lines) + "\n").encode())
    eng = make_engine(aws, default_encoder, output_format=fmt, chunk_bytes=512, shard_bytes=1 << 20)
    eng.handle_object(BUCKET, "incoming/docs.jsonl", forever)
    m = manifest_of(s3, "incoming/docs.jsonl")
    assert m["output"]["format"] == fmt and len(m["output"]["parts"]) > 1
    rows = check_accounting(s3, m)
    assert [r[0] for r in rows] == [f"doc-{i}" for i in range(40)]
    ref = default_encoder.encode([f"sentence number {i} about dogs" for i in range(40)]).embeddings
    np.testing.assert_allclose(np.stack([r[2] for r in rows]), ref, atol=1e-6)


def test_jsonl_bad_rows_are_reported_per_line(aws, default_encoder) -> None:
    s3 = aws[0]
    data = b'{"text": "fine"}\n{"text": \n{"txt": "x"}\n{"text": 5}\n\n{"id": 7, "text": "ok"}\n'
    put(s3, "incoming/rows.jsonl", data)
    make_engine(aws, default_encoder).handle_object(BUCKET, "incoming/rows.jsonl", forever)
    m = manifest_of(s3, "incoming/rows.jsonl")
    rows = check_accounting(s3, m)
    assert [(r[0], r[1]) for r in rows] == [(1, 1), (7, 6)]
    assert [e["line"] for e in errors_of(s3, m)] == [2, 3, 4]
    assert m["counts"]["blank"] == 1


def test_csv_gz_and_zero_byte(aws, default_encoder) -> None:
    s3 = aws[0]
    csv_text = 'id,text\n1,"hello, world"\n2,"multi\nline"\n3,\n'
    put(s3, "incoming/t.csv.gz", gzip.compress(csv_text.encode()))
    put(s3, "incoming/empty.txt", b"")
    eng = make_engine(aws, default_encoder)
    eng.handle_object(BUCKET, "incoming/t.csv.gz", forever)
    eng.handle_object(BUCKET, "incoming/empty.txt", forever)
    m = manifest_of(s3, "incoming/t.csv.gz")
    rows = check_accounting(s3, m)
    assert [(r[0], r[1]) for r in rows] == [("1", 2), ("2", 3)]
    assert m["counts"]["rejected"] == 1
    empty = manifest_of(s3, "incoming/empty.txt")
    assert empty["status"] == "complete" and empty["counts"]["lines_read"] == 0
    check_accounting(s3, empty)


def _failed_manifest(aws, encoder, key: str, body: bytes) -> dict[str, Any]:
    """Drop ``body`` at ``key``, handle it, check the run and its manifest say ``failed``; the manifest."""
    put(aws[0], key, body)
    summary = make_engine(aws, encoder).handle_object(BUCKET, key, forever)
    assert summary.status == "failed"
    m = manifest_of(aws[0], key)
    assert m["status"] == "failed", m
    return m


def test_csv_without_the_text_column_gets_a_failed_manifest(aws, default_encoder) -> None:
    m = _failed_manifest(aws, default_encoder, "incoming/cols.csv", b"id,body\n1,hello\n")
    assert m["output"]["parts"] == []
    (failed,) = m["chunks"]["failed"]
    assert "'text'" in failed["error"] and "2 columns" in failed["error"]  # names the column wanted, counts the found
    assert "body" not in failed["error"]  # never a cell: without a header row that would be a record


def test_single_10mb_line_is_truncated_and_flagged(aws, default_encoder) -> None:
    s3 = aws[0]
    put(s3, "incoming/huge.txt", b"short one\n" + b"word " * (2 * 1024 * 1024) + b"\nafter\n")
    eng = make_engine(aws, default_encoder, chunk_bytes=1 << 20, shard_bytes=64 << 20)
    eng.handle_object(BUCKET, "incoming/huge.txt", forever)
    m = manifest_of(s3, "incoming/huge.txt")
    rows = check_accounting(s3, m)
    assert [r[1] for r in rows] == [1, 2, 3]
    assert m["counts"]["truncated"] == 1


def test_overlong_reject_policy(aws, default_encoder) -> None:
    s3 = aws[0]
    put(s3, "incoming/long.txt", ("ok\n" + "word " * 400 + "\n").encode())
    make_engine(aws, default_encoder, long_text="reject").handle_object(BUCKET, "incoming/long.txt", forever)
    m = manifest_of(s3, "incoming/long.txt")
    check_accounting(s3, m)
    (err,) = errors_of(s3, m)
    assert err["line"] == 2 and "402 tokens" in err["reason"]


def test_own_outputs_and_other_prefixes_are_ignored(aws, default_encoder) -> None:
    eng = make_engine(aws, default_encoder)
    assert "output prefix" in eng.handle_object(BUCKET, "vectors/a.txt.manifest.json", forever).detail
    assert "input prefix" in eng.handle_object(BUCKET, "elsewhere/a.txt", forever).detail


def test_unsupported_suffix_gets_a_failed_manifest(aws, default_encoder) -> None:
    m = _failed_manifest(aws, default_encoder, "incoming/report.pdf", b"%PDF-1.4")
    assert ".txt" in m["error"]


def test_duplicate_delivery_writes_one_output(aws, default_encoder) -> None:
    s3 = aws[0]
    put(s3, "incoming/dup.txt", b"one\ntwo\nthree\n")
    eng = make_engine(aws, default_encoder, chunk_bytes=4, shard_bytes=1 << 20)
    eng.handle_object(BUCKET, "incoming/dup.txt", forever)
    before = {o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="vectors/")["Contents"]}
    assert eng.handle_object(BUCKET, "incoming/dup.txt", forever).kind == "duplicate"
    after = {o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="vectors/")["Contents"]}
    assert before == after
    check_accounting(s3, manifest_of(s3, "incoming/dup.txt"))


def _drain(aws, eng: Engine, max_messages: int = 100, remaining_ms=forever) -> int:
    """Play the worker: run every queued shard message (and hand-offs) until the queue is empty."""
    s3, sqs, queue_url = aws
    n = 0
    while n < max_messages:
        msgs = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not msgs:
            return n
        for msg in msgs:
            eng.run(WorkItem.from_message(msg["Body"]), remaining_ms)
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=msg["ReceiptHandle"])
            n += 1
    return n


def _corpus(n: int) -> list[str]:
    return [f"line {i}: {'é' if i % 7 == 0 else ''}the quick brown fox {i % 13} jumps" for i in range(1, n + 1)]


def test_fan_out_over_sqs_encodes_every_line_exactly_once(aws, default_encoder) -> None:
    s3 = aws[0]
    texts = _corpus(300)
    data = ("\r\n".join(texts) + "\r\n").encode()
    put(s3, "incoming/big.txt", data)
    eng = make_engine(aws, default_encoder, chunk_bytes=512, shard_bytes=2048)
    summary = eng.handle_object(BUCKET, "incoming/big.txt", forever)
    assert summary.shards == -(-len(data) // 2048) and summary.shards >= 5
    assert _drain(aws, eng) == summary.shards
    m = manifest_of(s3, "incoming/big.txt")
    assert m["status"] == "complete" and m["counts"]["lines_read"] == 300 and m["counts"]["encoded"] == 300
    rows = check_accounting(s3, m)
    assert [r[1] for r in rows] == list(range(1, 301))
    sample = [0, 99, 299]
    ref = default_encoder.encode([texts[i] for i in sample]).embeddings
    np.testing.assert_allclose(np.stack([rows[i][2] for i in sample]), ref, atol=1e-6)


def test_worker_killed_mid_shard_then_retried(aws, default_encoder, monkeypatch) -> None:
    s3 = aws[0]
    put(s3, "incoming/kill.txt", ("\n".join(_corpus(120)) + "\n").encode())
    eng = make_engine(aws, default_encoder, chunk_bytes=512, shard_bytes=1 << 20)
    real = eng.worker._slice
    calls = {"n": 0}

    def dies_on_third(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise MemoryError("simulated crash mid-shard")
        return real(*args, **kwargs)

    monkeypatch.setattr(eng.worker, "_slice", dies_on_third)
    with pytest.raises(MemoryError):
        eng.handle_object(BUCKET, "incoming/kill.txt", forever)
    summary = eng.handle_object(BUCKET, "incoming/kill.txt", forever)  # the retry
    assert summary.slices_skipped == 2 and summary.status == "complete"
    rows = check_accounting(s3, manifest_of(s3, "incoming/kill.txt"))
    assert [r[1] for r in rows] == list(range(1, 121))


def _budget(calls_with_time: int):
    """A Lambda clock that runs out after ``calls_with_time`` looks (the engine looks once per record)."""
    calls = {"n": 0}

    def remaining() -> int:
        calls["n"] += 1
        return 60_000 if calls["n"] <= calls_with_time else 10

    return remaining


def test_time_budget_hands_off_mid_chunk_and_resumes_at_the_line(aws, default_encoder) -> None:
    s3 = aws[0]
    put(s3, "incoming/slow.txt", ("\n".join(_corpus(100)) + "\n").encode())
    eng = make_engine(aws, default_encoder, chunk_bytes=4096, shard_bytes=1 << 20, time_margin_ms=1000)
    summary = eng.handle_object(BUCKET, "incoming/slow.txt", _budget(30))
    assert summary.slices_done == 0 and summary.handed_off_from == 0  # stopped inside chunk 0
    progress = json.loads(s3.get_object(Bucket=BUCKET, Key=next(
        o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="vectors/")["Contents"] if "_progress/" in o["Key"]
    ))["Body"].read())  # fmt: skip
    assert progress["next_line"] > 1 and progress["resume"] > 0  # where the next invocation starts
    assert _drain(aws, eng) >= 1
    m = manifest_of(s3, "incoming/slow.txt")
    assert m["status"] == "complete"
    assert [p["segment"] for p in m["output"]["parts"] if p["chunk"] == 0][:2] == [0, 1]
    rows = check_accounting(s3, m)
    assert [r[1] for r in rows] == list(range(1, 101))


def test_a_budget_that_fits_one_record_runs_more_than_16_hand_offs(aws, default_encoder) -> None:
    """Lambda's recursive-loop detection would cut such a chain; ours counts hops itself instead."""
    s3, sqs, queue_url = aws
    put(s3, "incoming/tight.txt", ("\n".join(_corpus(30)) + "\n").encode())
    eng = make_engine(aws, default_encoder, chunk_bytes=512, shard_bytes=1 << 20, time_margin_ms=60_000)
    summary = eng.handle_object(BUCKET, "incoming/tight.txt", lambda: 5)
    assert summary.handed_off_from == 0
    hops = []
    n = 0
    while msgs := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        for msg in msgs:
            item = WorkItem.from_message(msg["Body"])
            hops.append(item.hops)
            eng.run(item, lambda: 5)
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=msg["ReceiptHandle"])
            n += 1
    assert n >= 29 and max(hops) > 16  # one record per invocation, still done
    rows = check_accounting(s3, manifest_of(s3, "incoming/tight.txt"))
    assert [r[1] for r in rows] == list(range(1, 31))


def test_a_chain_past_max_hops_ends_in_a_failed_manifest(aws, default_encoder) -> None:
    s3 = aws[0]
    put(s3, "incoming/endless.txt", ("\n".join(_corpus(40)) + "\n").encode())
    eng = make_engine(aws, default_encoder, chunk_bytes=512, shard_bytes=1 << 20, time_margin_ms=60_000, max_hops=3)
    eng.handle_object(BUCKET, "incoming/endless.txt", lambda: 5)
    assert _drain(aws, eng, remaining_ms=lambda: 5) == 3
    m = manifest_of(s3, "incoming/endless.txt")
    assert m["status"] == "failed" and "MAX_HOPS" in m["error"]
    assert {f["chunk"] for f in m["chunks"]["failed"]} == set(range(m["chunks"]["total"]))


class _PoisonedEncoder:
    """The real encoder, except that any batch holding ``poison`` raises (a text TensorFlow chokes on)."""

    def __init__(self, real: Any, poison: str) -> None:
        self._real, self._poison = real, poison
        self.card, self.vector_length, self.max_seq_length = real.card, real.vector_length, real.max_seq_length

    def encode(self, texts: list[str], batch_size: int = 8) -> Any:
        if self._poison in texts:
            raise RuntimeError("simulated kernel failure")
        return self._real.encode(texts, batch_size=batch_size)


def test_one_poisoned_line_is_rejected_alone(aws, default_encoder) -> None:
    s3 = aws[0]
    texts = _corpus(50)
    texts[20] = "POISON"
    put(s3, "incoming/poison-line.txt", ("\n".join(texts) + "\n").encode())
    eng = make_engine(aws, _PoisonedEncoder(default_encoder, "POISON"))
    assert eng.handle_object(BUCKET, "incoming/poison-line.txt", forever).status == "complete"
    m = manifest_of(s3, "incoming/poison-line.txt")
    rows = check_accounting(s3, m)
    assert m["counts"]["encoded"] == 49 and [r[1] for r in rows] == [i for i in range(1, 51) if i != 21]
    (error,) = errors_of(s3, m)
    assert error["line"] == 21 and "simulated kernel failure" in error["reason"]


def test_poison_shard_fails_only_its_chunk_and_the_rest_is_queued_again(aws, default_encoder) -> None:
    s3, sqs, queue_url = aws
    put(s3, "incoming/poison.txt", ("\n".join(_corpus(200)) + "\n").encode())
    eng = make_engine(aws, default_encoder, chunk_bytes=512, shard_bytes=2048)
    eng.handle_object(BUCKET, "incoming/poison.txt", forever)
    msgs = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    poison = WorkItem.from_message(msgs[1]["Body"])
    for msg in msgs:
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=msg["ReceiptHandle"])
    eng.in_progress = None  # the shard died before any chunk ran: its first chunk is the stuck one
    eng.fail(poison, "RuntimeError: simulated poison shard")
    for msg in msgs:
        if WorkItem.from_message(msg["Body"]).first_slice != poison.first_slice:
            eng.run(WorkItem.from_message(msg["Body"]), forever)
    assert _drain(aws, eng) == 1  # the chunks after the stuck one, queued again
    m = manifest_of(s3, "incoming/poison.txt")
    assert m["status"] == "incomplete"
    assert [f["chunk"] for f in m["chunks"]["failed"]] == [poison.first_slice]
    assert "simulated poison" in m["chunks"]["failed"][0]["error"]
    check_accounting(s3, m)
    encoded = {r[1] for r in read_outputs(s3, m)}
    assert len(encoded) == m["counts"]["encoded"] and 200 - len(encoded) < 40  # one 512-byte chunk lost, not four


def test_s3_slowdown_is_retried(aws, default_encoder, monkeypatch) -> None:
    from botocore.retries.standard import ExponentialBackoff

    # botocore's backoff (up to 1 s, 2 s, 4 s for throttling) is set to nothing: the retries are the point.
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0.0)
    s3 = aws[0]
    put(s3, "incoming/throttled.txt", b"alpha\nbeta\n")
    throttled = {"n": 0}

    def slow_down(request, **kwargs):
        if request.method == "GET" and "throttled.txt" in request.url and throttled["n"] < 3:
            throttled["n"] += 1
            from botocore.awsrequest import AWSResponse

            body = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
            return AWSResponse(request.url, 503, {}, _Raw(body))
        return None

    s3.meta.events.register("before-send.s3.GetObject", slow_down)
    eng = make_engine(aws, default_encoder)
    assert eng.handle_object(BUCKET, "incoming/throttled.txt", forever).status == "complete"
    assert throttled["n"] == 3
    check_accounting(s3, manifest_of(s3, "incoming/throttled.txt"))


def test_message_round_trip() -> None:
    item = WorkItem("b", "incoming/x.txt", "abc", 10, "txt", False, "bytes", 4, 1, 3, 7)
    assert WorkItem.from_message(item.to_message("incoming/")) == item
    assert replace(item, end_slice=None).total_slices == 3


# ---- hostile and unlucky inputs: every line accounted for, or a manifest that says why not ----


def test_a_gz_that_is_not_gzip_gets_a_failed_manifest(aws, default_encoder) -> None:
    s3 = aws[0]
    put(s3, "incoming/fake.txt.gz", b"plain text, not gzip\nsecond line\n")
    eng = make_engine(aws, default_encoder)
    assert eng.handle_object(BUCKET, "incoming/fake.txt.gz", forever).status == "failed"
    m = manifest_of(s3, "incoming/fake.txt.gz")
    assert m["status"] == "failed" and "BadGzipFile" in m["error"] and m["counts"]["lines_read"] == 0


def test_a_truncated_gzip_keeps_every_line_read_before_the_cut(aws, default_encoder) -> None:
    s3 = aws[0]
    texts = _corpus(1000)
    whole = gzip.compress(("\n".join(texts) + "\n").encode())
    put(s3, "incoming/cut.txt.gz", whole[: len(whole) * 2 // 3])
    eng = make_engine(aws, default_encoder, chunk_records=300)
    eng.handle_object(BUCKET, "incoming/cut.txt.gz", forever)
    m = manifest_of(s3, "incoming/cut.txt.gz")
    assert m["status"] == "incomplete" and "EOFError" in m["error"] and "after line" in m["error"]
    rows = check_accounting(s3, m)
    read = m["counts"]["lines_read"]
    assert 300 < read < 1000 and [r[1] for r in rows] == list(range(1, read + 1))
    assert f"after line {read}" in m["error"]


def test_csv_quote_that_never_closes_is_not_complete(aws, default_encoder) -> None:
    s3 = aws[0]
    rows = 'id,text\n1,"this quote never closes\n' + "".join(f"{i},row {i}\n" for i in range(2, 1002))
    put(s3, "incoming/quote.csv", rows.encode())
    eng = make_engine(aws, default_encoder)
    eng.handle_object(BUCKET, "incoming/quote.csv", forever)
    m = manifest_of(s3, "incoming/quote.csv")
    assert m["status"] == "incomplete" and m["counts"]["swallowed"] == 1000
    check_accounting(s3, m)
    (error,) = errors_of(s3, m)
    assert error["line"] == 2 and "runs to line 1002" in error["reason"]


@pytest.mark.parametrize(
    ("data", "why"),
    [
        ("one\ntwo\n".encode("utf-16"), "UTF-16 LE"),
        ("one\ntwo\n".encode("utf-32"), "UTF-32 LE"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "NUL bytes"),
    ],
)
def test_text_that_is_not_utf8_is_refused_not_encoded(aws, default_encoder, data: bytes, why: str) -> None:
    s3 = aws[0]
    put(s3, "incoming/foreign.txt", data)
    eng = make_engine(aws, default_encoder)
    assert eng.handle_object(BUCKET, "incoming/foreign.txt", forever).status == "failed"
    m = manifest_of(s3, "incoming/foreign.txt")
    assert m["status"] == "failed" and why in m["error"] and m["counts"]["encoded"] == 0


def test_lines_with_nothing_to_encode_are_rejected(aws, default_encoder) -> None:
    s3 = aws[0]
    put(s3, "incoming/controls.txt", "real text\n\u200b\u200d\n\x01\x02\n\u0301\nmore text\n".encode())
    eng = make_engine(aws, default_encoder)
    eng.handle_object(BUCKET, "incoming/controls.txt", forever)
    m = manifest_of(s3, "incoming/controls.txt")
    check_accounting(s3, m)
    assert m["counts"]["encoded"] == 2 and m["counts"]["rejected"] == 3
    assert {e["line"] for e in errors_of(s3, m)} == {2, 3, 4}


def test_an_old_version_never_replaces_a_newer_versions_manifest(aws, default_encoder) -> None:
    """v1 is still encoding when v2 is uploaded and finished: v1 must not write its manifest."""
    s3 = aws[0]
    key = "incoming/race.txt"
    put(s3, key, ("\n".join(_corpus(20)) + "\n").encode())
    v2_text = _corpus(5)
    v2_engine = make_engine(aws, default_encoder)

    class OverwritesMidway:
        def __init__(self, real: Any) -> None:
            self._real, self.fired = real, False
            self.card, self.vector_length, self.max_seq_length = real.card, real.vector_length, real.max_seq_length

        def encode(self, texts: list[str], batch_size: int = 8) -> Any:
            if not self.fired:  # v1 has read its lines; now v2 lands and is processed completely
                self.fired = True
                put(s3, key, ("\n".join(v2_text) + "\n").encode())
                assert v2_engine.handle_object(BUCKET, key, forever).status == "complete"
            return self._real.encode(texts, batch_size=batch_size)

    v1_engine = make_engine(aws, OverwritesMidway(default_encoder))
    summary = v1_engine.handle_object(BUCKET, key, forever)
    assert summary.status is None  # v1 finished its chunks but wrote no manifest
    m = manifest_of(s3, key)
    assert m["input"]["etag"] == s3.head_object(Bucket=BUCKET, Key=key)["ETag"].strip('"')
    assert m["counts"]["lines_read"] == 5
    check_accounting(s3, m)


def _respond(s3, operation: str, status: int, code: str, *, times: int, match: str = "") -> dict[str, int]:
    """Make S3 answer ``operation`` with an error ``times`` times (botocore's before-send hook)."""
    seen = {"n": 0}

    def hook(request, **kwargs):
        if match in request.url and seen["n"] < times:
            seen["n"] += 1
            from botocore.awsrequest import AWSResponse

            body = f"<Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
            return AWSResponse(request.url, status, {}, _Raw(body))
        return None

    s3.meta.events.register(f"before-send.s3.{operation}", hook)
    return seen


def test_access_denied_on_a_missing_key_gets_a_manifest_that_says_so(aws, default_encoder) -> None:
    s3 = aws[0]
    put(s3, "incoming/denied.txt", b"hello\n")
    _respond(s3, "HeadObject", 403, "AccessDenied", times=1)
    eng = make_engine(aws, default_encoder)
    summary = eng.handle_object(BUCKET, "incoming/denied.txt", forever)
    assert summary.status == "failed" and "access denied" in summary.detail
    m = manifest_of(s3, "incoming/denied.txt")
    assert m["status"] == "failed" and "s3:ListBucket" in m["error"]


def test_internal_errors_are_retried_by_the_client(aws, default_encoder) -> None:
    s3 = aws[0]
    put(s3, "incoming/flaky.txt", b"alpha\nbeta\n")
    seen = _respond(s3, "GetObject", 500, "InternalError", times=2, match="flaky.txt")
    eng = make_engine(aws, default_encoder)
    assert eng.handle_object(BUCKET, "incoming/flaky.txt", forever).status == "complete"
    assert seen["n"] == 2
    check_accounting(s3, manifest_of(s3, "incoming/flaky.txt"))


def test_a_connection_reset_mid_read_fails_the_try_and_the_retry_completes(aws, default_encoder, monkeypatch) -> None:
    s3 = aws[0]
    put(s3, "incoming/reset.txt", ("\n".join(_corpus(50)) + "\n").encode())
    eng = make_engine(aws, default_encoder, chunk_bytes=512)
    from bert2vec.bulk.source import InputObject

    real_open = InputObject.open
    resets = {"n": 0}

    class ResetsMidway:
        def __init__(self, body: Any) -> None:
            self._body, self._reads = body, 0

        def read(self, n: int = -1) -> bytes:
            self._reads += 1
            if self._reads == 1:
                return self._body.read(100)
            from botocore.exceptions import ResponseStreamingError

            raise ResponseStreamingError(error=ConnectionResetError(104, "Connection reset by peer"))

        def close(self) -> None:
            self._body.close()

    def flaky_open(self: InputObject, start: int = 0) -> Any:
        if start > 0 and resets["n"] == 0:
            resets["n"] += 1
            return ResetsMidway(real_open(self, start))
        return real_open(self, start)

    monkeypatch.setattr(InputObject, "open", flaky_open)
    with pytest.raises(Exception, match="Connection reset"):
        eng.handle_object(BUCKET, "incoming/reset.txt", forever)
    failed = manifest_of(s3, "incoming/reset.txt")
    assert failed["status"] == "failed" and failed["retryable"] is True  # visible while Lambda retries
    assert eng.handle_object(BUCKET, "incoming/reset.txt", forever).status == "complete"  # the retry
    rows = check_accounting(s3, manifest_of(s3, "incoming/reset.txt"))
    assert [r[1] for r in rows] == list(range(1, 51))  # no line twice, none lost


def test_a_20mb_line_is_fetched_about_once_not_once_per_chunk(aws, default_encoder) -> None:
    s3 = aws[0]
    line = ("word " * 4_000_000).encode()  # 20 MB, one line, then a short one
    put(s3, "incoming/one-line.txt", line + b"\nshort line\n")
    fetched = {"bytes": 0}

    def count(http_response=None, **kwargs):
        if http_response is not None:
            fetched["bytes"] += int(http_response.headers.get("Content-Length", 0))

    s3.meta.events.register("after-call.s3.GetObject", count)
    eng = make_engine(aws, default_encoder, chunk_bytes=1 << 20, shard_bytes=64 << 20)
    eng.handle_object(BUCKET, "incoming/one-line.txt", forever)
    m = manifest_of(s3, "incoming/one-line.txt")
    rows = check_accounting(s3, m)
    assert [r[1] for r in rows] == [1, 2] and m["counts"]["truncated"] == 1
    assert fetched["bytes"] < 2.2 * len(line)  # was ~10x: every chunk re-read the line's tail
