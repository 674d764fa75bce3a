"""The S3 bulk path against moto (in-process ``mock_aws``) with the real exported default model.

Every test ends by checking the manifest's accounting: ``lines_read == encoded + rejected + blank``
and that the parts hold each encoded line exactly once.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from function.bulk.config import BulkConfig
from function.bulk.s3_engine import Engine, WorkItem

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

    from function.bulk.s3_engine import s3_client, sqs_client

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


def read_outputs(s3, manifest: dict[str, Any]) -> list[tuple[Any, int, np.ndarray]]:
    """Every (id, line, vector) in the manifest's parts, in part order."""
    import pyarrow.parquet as pq

    rows: list[tuple[Any, int, np.ndarray]] = []
    out = manifest["output"]
    for part in out["parts"]:
        key = part["key"]
        body = s3.get_object(Bucket=out["bucket"], Key=key)["Body"].read()
        if key.endswith(".jsonl"):
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
            ids_body = s3.get_object(Bucket=out["bucket"], Key=part["ids_key"])["Body"].read()
            ids = [json.loads(x) for x in ids_body.decode().splitlines()]
            rows.extend((i["id"], i["line"], vecs[n]) for n, i in enumerate(ids))
    return rows


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
    assert summary["status"] == "complete"
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


def test_csv_without_the_text_column_gets_a_failed_manifest(aws, default_encoder) -> None:
    s3 = aws[0]
    put(s3, "incoming/cols.csv", b"id,body\n1,hello\n")
    summary = make_engine(aws, default_encoder).handle_object(BUCKET, "incoming/cols.csv", forever)
    assert summary["status"] == "failed"
    m = manifest_of(s3, "incoming/cols.csv")
    assert m["status"] == "failed" and m["output"]["parts"] == []
    (failed,) = m["chunks"]["failed"]
    assert "text" in failed["error"] and "body" in failed["error"]  # names the column wanted and found


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
    make_engine(aws, default_encoder, overlong="reject").handle_object(BUCKET, "incoming/long.txt", forever)
    m = manifest_of(s3, "incoming/long.txt")
    check_accounting(s3, m)
    (err,) = errors_of(s3, m)
    assert err["line"] == 2 and "402 tokens" in err["reason"]


def test_own_outputs_and_other_prefixes_are_ignored(aws, default_encoder) -> None:
    eng = make_engine(aws, default_encoder)
    assert "output prefix" in eng.handle_object(BUCKET, "vectors/a.txt.manifest.json", forever)["ignored"]
    assert "input prefix" in eng.handle_object(BUCKET, "elsewhere/a.txt", forever)["ignored"]


def test_unsupported_suffix_gets_a_failed_manifest(aws, default_encoder) -> None:
    s3 = aws[0]
    put(s3, "incoming/report.pdf", b"%PDF-1.4")
    summary = make_engine(aws, default_encoder).handle_object(BUCKET, "incoming/report.pdf", forever)
    assert summary["status"] == "failed"
    m = manifest_of(s3, "incoming/report.pdf")
    assert m["status"] == "failed" and ".txt" in m["error"]


def test_duplicate_delivery_writes_one_output(aws, default_encoder) -> None:
    s3 = aws[0]
    put(s3, "incoming/dup.txt", b"one\ntwo\nthree\n")
    eng = make_engine(aws, default_encoder, chunk_bytes=4, shard_bytes=1 << 20)
    eng.handle_object(BUCKET, "incoming/dup.txt", forever)
    before = {o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="vectors/")["Contents"]}
    assert eng.handle_object(BUCKET, "incoming/dup.txt", forever)["skipped"] == "already encoded"
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
    assert summary["shards"] == -(-len(data) // 2048) and summary["shards"] >= 5
    assert _drain(aws, eng) == summary["shards"]
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
    real = eng._process_chunk
    calls = {"n": 0}

    def dies_on_third(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise MemoryError("simulated crash mid-shard")
        return real(*args, **kwargs)

    monkeypatch.setattr(eng, "_process_chunk", dies_on_third)
    with pytest.raises(MemoryError):
        eng.handle_object(BUCKET, "incoming/kill.txt", forever)
    summary = eng.handle_object(BUCKET, "incoming/kill.txt", forever)  # the retry
    assert summary["chunks_skipped"] == 2 and summary["status"] == "complete"
    rows = check_accounting(s3, manifest_of(s3, "incoming/kill.txt"))
    assert [r[1] for r in rows] == list(range(1, 121))


def test_time_budget_hands_the_rest_on(aws, default_encoder) -> None:
    s3 = aws[0]
    put(s3, "incoming/slow.txt", ("\n".join(_corpus(100)) + "\n").encode())
    eng = make_engine(aws, default_encoder, chunk_bytes=512, shard_bytes=1 << 20, time_margin_ms=1000)
    budget = iter([60_000] + [10] * 1000)  # chunk 0 always runs; chunk 1 fits; then the deadline is near
    summary = eng.handle_object(BUCKET, "incoming/slow.txt", lambda: next(budget))
    assert summary["chunks_done"] == 2 and summary["handed_off_from_chunk"] == 2
    assert _drain(aws, eng) == 1
    rows = check_accounting(s3, manifest_of(s3, "incoming/slow.txt"))
    assert [r[1] for r in rows] == list(range(1, 101))


def test_a_budget_too_small_for_one_chunk_still_makes_progress(aws, default_encoder) -> None:
    s3 = aws[0]
    put(s3, "incoming/tight.txt", ("\n".join(_corpus(60)) + "\n").encode())
    eng = make_engine(aws, default_encoder, chunk_bytes=512, shard_bytes=1 << 20, time_margin_ms=60_000)
    summary = eng.handle_object(BUCKET, "incoming/tight.txt", lambda: 5)
    assert summary["chunks_done"] == 1 and summary["handed_off_from_chunk"] == 1
    assert _drain(aws, eng, remaining_ms=lambda: 5) >= 2  # one chunk per invocation, still done
    rows = check_accounting(s3, manifest_of(s3, "incoming/tight.txt"))
    assert [r[1] for r in rows] == list(range(1, 61))


def test_poison_shard_is_reported_in_the_manifest(aws, default_encoder) -> None:
    s3, sqs, queue_url = aws
    put(s3, "incoming/poison.txt", ("\n".join(_corpus(200)) + "\n").encode())
    eng = make_engine(aws, default_encoder, chunk_bytes=512, shard_bytes=2048)
    eng.handle_object(BUCKET, "incoming/poison.txt", forever)
    msgs = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    poison = WorkItem.from_message(msgs[1]["Body"])
    for msg in msgs:
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=msg["ReceiptHandle"])
    eng.fail(poison, "RuntimeError: simulated poison shard")
    for msg in msgs:
        if WorkItem.from_message(msg["Body"]).first_chunk != poison.first_chunk:
            eng.run(WorkItem.from_message(msg["Body"]), forever)
    _drain(aws, eng)
    m = manifest_of(s3, "incoming/poison.txt")
    assert m["status"] == "incomplete"
    assert {f["chunk"] for f in m["chunks"]["failed"]} == set(range(poison.first_chunk, poison.end_chunk))
    assert all("simulated poison" in f["error"] for f in m["chunks"]["failed"])
    check_accounting(s3, m)


def test_s3_slowdown_is_retried(aws, default_encoder) -> None:
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
    assert eng.handle_object(BUCKET, "incoming/throttled.txt", forever)["status"] == "complete"
    assert throttled["n"] == 3
    check_accounting(s3, manifest_of(s3, "incoming/throttled.txt"))


class _Raw:
    """Minimal raw stream for a botocore AWSResponse."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **kwargs) -> Iterator[bytes]:
        yield self._data

    def read(self, *args) -> bytes:
        data, self._data = self._data, b""
        return data


def test_message_round_trip() -> None:
    item = WorkItem("b", "incoming/x.txt", "abc", 10, "txt", False, "bytes", 4, 1, 3, 7)
    assert WorkItem.from_message(item.to_message("incoming/")) == item
    assert replace(item, end_chunk=None).total_chunks == 3
