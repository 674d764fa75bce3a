"""The bulk engine's structure, against moto with the hash stand-in encoder.

- Planning is a value: the planner answers with a decision (run, fan out, fail) and sends, runs and
  writes nothing itself; the engine carries the decision out.
- The slice a failed run was stuck on travels as data (the run's ``RunResult``) to ``fail``, so any
  engine — another invocation's — marks the right slice.
- Every S3 call of the bulk path goes through ``S3Store``; clients come from one factory and AWS
  errors are classified in one place (throttling, Batch Operations result codes).
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from bert2vec.bulk.outcome import Kind
from bert2vec.bulk.planner import Admitted, Done, Encode, FanOut
from bert2vec.bulk.s3_engine import WorkItem
from bert2vec.bulk.worker import RunResult
from tests.bulk_support import BUCKET, forever, lines_of, make_engine, manifest_bytes, manifest_of

BULK = Path(__file__).resolve().parents[2] / "bert2vec" / "bulk"


def queued(aws: dict[str, Any]) -> list[WorkItem]:
    msgs = aws["sqs"].receive_message(QueueUrl=aws["queue_url"], MaxNumberOfMessages=10).get("Messages", [])
    for msg in msgs:
        aws["sqs"].delete_message(QueueUrl=aws["queue_url"], ReceiptHandle=msg["ReceiptHandle"])
    return [WorkItem.from_message(m["Body"]) for m in msgs]


def texts(n: int) -> list[str]:
    return [f"line {i}: some words {i % 7}" for i in range(1, n + 1)]


# ---- the planner decides, the engine does -----------------------------------------------------


def test_a_fan_out_is_decided_by_the_planner_and_sent_by_the_engine(aws) -> None:
    key = "incoming/big.txt"
    aws["s3"].put_object(Bucket=BUCKET, Key=key, Body=lines_of(texts(120)))
    eng = make_engine(aws, chunk_bytes=512, shard_bytes=1024)
    admitted = eng.planner.admit(BUCKET, key)
    assert isinstance(admitted, Admitted)
    plan = eng.planner.plan(admitted)
    assert isinstance(plan, FanOut) and len(plan.shards) > 1
    assert queued(aws) == [], "planning sent nothing"
    outcome = eng.carry_out(plan, forever)
    assert outcome.kind is Kind.FANNED_OUT and outcome.shards == len(plan.shards)
    assert sorted(s.first_slice for s in queued(aws)) == [s.first_slice for s in plan.shards]


def test_a_small_object_is_planned_as_inline_work_and_run_by_the_engine(aws) -> None:
    key = "incoming/small.txt"
    aws["s3"].put_object(Bucket=BUCKET, Key=key, Body=lines_of(texts(5)))
    eng = make_engine(aws)
    admitted = eng.planner.admit(BUCKET, key)
    assert isinstance(admitted, Admitted)
    plan = eng.planner.plan(admitted)
    assert isinstance(plan, Encode) and plan.item.key == key
    assert manifest_bytes(aws["s3"], key) is None, "planning ran nothing"
    assert eng.carry_out(plan, forever).status == "complete"


def test_a_permanent_verdict_is_a_value_whose_manifest_the_engine_writes(aws) -> None:
    key = "incoming/utf16.txt"
    aws["s3"].put_object(Bucket=BUCKET, Key=key, Body="\ufeffhello\n".encode("utf-16"))
    eng = make_engine(aws)
    admitted = eng.planner.admit(BUCKET, key)
    assert isinstance(admitted, Admitted)
    plan = eng.planner.plan(admitted)
    assert isinstance(plan, Done) and plan.outcome.kind is Kind.FAILED and plan.failure is not None
    assert manifest_bytes(aws["s3"], key) is None, "the planner wrote nothing"
    eng.carry_out(plan, forever)
    m = manifest_of(aws["s3"], key)
    assert m["status"] == "failed" and m["error"] == plan.failure.error and "retryable" not in m


def test_an_ignored_key_is_answered_without_reading_anything(aws) -> None:
    eng = make_engine(aws)
    decided = eng.planner.admit(BUCKET, "vectors/some/output.jsonl")
    assert isinstance(decided, Done) and decided.outcome.kind is Kind.IGNORED and decided.failure is None


# ---- the stuck slice is data -------------------------------------------------------------------


def refuse_reads_from(s3: Any, lo: int, hi: int) -> Any:
    """S3 refuses (``InvalidObjectState``: not retried, not a lost race, not a deletion) every read
    of the object starting in ``[lo, hi)``; returns the undo."""
    from botocore.awsrequest import AWSResponse

    from tests.conftest import RawBody

    def refuse(request: Any, **_: Any) -> Any:
        rng = request.headers.get("Range", b"")
        rng = rng.decode() if isinstance(rng, bytes) else rng
        if rng.startswith("bytes=") and lo <= int(rng[6:].split("-")[0]) < hi:
            body = b"<Error><Code>InvalidObjectState</Code><Message>not now</Message></Error>"
            return AWSResponse(request.url, 403, {}, RawBody(body))
        return None

    s3.meta.events.register("before-send.s3.GetObject", refuse)
    return lambda: s3.meta.events.unregister("before-send.s3.GetObject", refuse)


def test_the_slice_a_run_was_stuck_on_reaches_fail_as_data(aws) -> None:
    """The run raises in a middle slice; a *different* engine (the message's last receive lands in
    another execution environment) marks exactly that slice failed and queues the rest again."""
    key = "incoming/poison.txt"
    lines = texts(40)
    body = lines_of(lines)
    aws["s3"].put_object(Bucket=BUCKET, Key=key, Body=body)
    eng = make_engine(aws, chunk_bytes=256, shard_bytes=1 << 20)
    admitted = eng.planner.admit(BUCKET, key)
    assert isinstance(admitted, Admitted)
    plan = eng.planner.plan(admitted)
    assert isinstance(plan, Encode)
    stuck = 2
    undo = refuse_reads_from(aws["s3"], stuck * 256, (stuck + 1) * 256)
    result = RunResult()
    with pytest.raises(Exception, match="InvalidObjectState"):
        eng.run(plan.item, forever, result)
    undo()
    assert result.stuck_slice == stuck
    other = make_engine(aws, chunk_bytes=256, shard_bytes=1 << 20)
    assert other.fail(plan.item, "ClientError: InvalidObjectState", result.stuck_slice) is None
    (rest,) = queued(aws)
    assert rest.first_slice == stuck + 1
    other.run(rest, forever)
    m = manifest_of(aws["s3"], key)
    assert [f["chunk"] for f in m["chunks"]["failed"]] == [stuck]
    assert m["status"] == "incomplete" and 0 < m["counts"]["encoded"] < len(lines)


def test_without_a_stuck_slice_fail_marks_the_messages_first(aws) -> None:
    key = "incoming/never-ran.txt"
    aws["s3"].put_object(Bucket=BUCKET, Key=key, Body=lines_of(texts(40)))
    eng = make_engine(aws, chunk_bytes=256, shard_bytes=1 << 20)
    admitted = eng.planner.admit(BUCKET, key)
    assert isinstance(admitted, Admitted)
    plan = eng.planner.plan(admitted)
    assert isinstance(plan, Encode)
    eng.fail(plan.item, "RuntimeError: died before any slice")
    (rest,) = queued(aws)
    assert rest.first_slice == 1


# ---- one way to S3, one client factory, one classifier -----------------------------------------

S3_OPERATIONS = {"head_object", "get_object", "put_object", "delete_objects", "get_paginator", "upload_file",
                 "upload_fileobj", "list_objects_v2", "copy_object", "delete_object"}  # fmt: skip


def test_every_s3_call_of_the_bulk_path_goes_through_the_store() -> None:
    offenders = []
    for path in sorted(BULK.glob("*.py")):
        if path.name == "store.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            called = isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in S3_OPERATIONS
            reached = isinstance(node, ast.Attribute) and node.attr == "client" and isinstance(node.value, ast.Attribute) \
                and node.value.attr == "store"  # fmt: skip
            if called or reached:
                offenders.append(f"{path.name}:{node.lineno}")
    allowed = {"s3_engine.py"}  # the SnapStart refresh swaps the store's client (Engine.s3)
    assert [o for o in offenders if o.split(":")[0] not in allowed] == []


def test_boto3_clients_are_made_in_one_place_only() -> None:
    root = BULK.parent
    makers = sorted(
        f"{path.relative_to(root)}:{node.lineno}"
        for path in root.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "client"
        and isinstance(node.func.value, ast.Name) and node.func.value.id == "boto3"
    )  # fmt: skip
    assert [m.split(":")[0] for m in makers] == ["aws/factory.py"]


def test_the_factory_gives_the_bulk_path_patient_retries_and_search_bounded_ones(aws) -> None:
    from bert2vec.aws.factory import PATIENT_ATTEMPTS, s3_client
    from bert2vec.http.search import CONNECT_TIMEOUT_S, MAX_ATTEMPTS, search_client

    bulk = s3_client().meta.config
    assert bulk.retries == {"mode": "standard", "total_max_attempts": PATIENT_ATTEMPTS + 1}  # botocore counts the first call
    search = search_client("http://127.0.0.1:9").meta.config
    assert search.retries == {"mode": "standard", "total_max_attempts": MAX_ATTEMPTS}
    assert search.connect_timeout == CONNECT_TIMEOUT_S


def _client_error(code: str, status: int) -> Exception:
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")


@pytest.mark.parametrize(("code", "status", "throttling", "result"), [
    ("SlowDown", 503, True, "TemporaryFailure"),
    ("TooManyRequestsException", 429, True, "TemporaryFailure"),
    ("ThrottlingException", 400, True, "TemporaryFailure"),
    ("Whatever", 429, True, "TemporaryFailure"),
    ("InternalError", 500, False, "TemporaryFailure"),
    ("AccessDenied", 403, False, "PermanentFailure"),
    ("NoSuchBucket", 404, False, "PermanentFailure"),
])  # fmt: skip
def test_one_classifier_for_throttling_and_batch_result_codes(code: str, status: int, throttling: bool, result: str) -> None:
    from bert2vec.aws.errors import is_throttling
    from bert2vec.bulk.outcome import task_failure

    exc = _client_error(code, status)
    assert is_throttling(exc) is throttling
    assert task_failure(exc) == (result, f"{code}: {exc}")
    assert task_failure(RuntimeError("a bug"))[0] == "TemporaryFailure"  # its retryable manifest is written
