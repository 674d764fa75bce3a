"""What the process-level e2e tests and the image tests both assert about a running function.

The two tiers run the same handlers two ways (a bare ``python -m awslambdaric`` process here, the built
container in tests/image), so the expectations, the SnapStart order on the wire and the S3 fan-out
drain are written once and the tiers differ only in how they start the function.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from tests.conftest import EVENTS, load_event

ALL_EXPECTATIONS: dict[str, dict[str, Any]] = json.loads((EVENTS / "expectations.json").read_text())
# The encode handler's events; the bulk handlers' events are exercised by tests/*/test_bulk*.
EXPECTATIONS = {
    name: want
    for name, want in ALL_EXPECTATIONS.items()
    if want.get("handler", "function.app.handler") == "function.app.handler"
}
BUCKET = "bert2vec-input"


def http_answer(result) -> tuple[int, Any]:
    """(status, decoded body) of an invocation result, whichever front door's envelope it came in."""
    out = result.json()
    if "statusCode" not in out:
        return int(out.get("status", 200)), out
    body = base64.b64decode(out["body"]).decode() if out.get("isBase64Encoded") else out["body"]
    return out["statusCode"], json.loads(body)


def assert_event_answered_as_expected(session, name: str) -> None:
    """Send ``events/<name>`` and check the status and keys ``events/expectations.json`` names."""
    runtime, process = session
    result = runtime.invoke(load_event(name), timeout=60)
    assert result.kind == "response", process.output_tail()
    status, body = http_answer(result)
    want = EXPECTATIONS[name]
    assert status == want["status"], body
    if isinstance(body, dict):
        assert set(want["keys"]) <= set(body), body
    else:
        assert isinstance(body, list) and all(isinstance(v, list) for v in body)


def hook_lines(output: str) -> list[str]:
    """The SnapStart hooks the function logged, in order (one JSON log line each)."""
    hooks = []
    for line in output.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and record.get("hook"):
            hooks.append(record["hook"])
    return hooks


def snapstart_cycle(session, *, hook_timeout: float = 10) -> None:
    """SnapStart's order on the wire: init, before-snapshot hooks, parked in ``restore/next``, no
    ``next`` before the restore, then after-restore hooks and the first ``next``. Each hook's log line
    is waited for (``hook_timeout``): a container's output reaches the test later than a process's."""
    runtime, process = session
    assert runtime.wait_for_snapshot(180), process.output_tail()
    assert runtime.lifecycle == ["restore/next"]  # init done, hooks run, parked for the snapshot
    assert process.wait_for_output('"before_snapshot"', timeout=hook_timeout), process.output_tail()
    assert hook_lines(process.output_tail(400)) == ["before_snapshot"]
    assert not runtime.next_calls  # no invocation is polled before the restore
    runtime.restore()
    assert runtime.wait_for_next(60), process.output_tail()
    assert runtime.lifecycle == ["restore/next", "restored", "next"]
    assert process.wait_for_output('"after_restore"', timeout=hook_timeout), process.output_tail()
    assert hook_lines(process.output_tail(400)) == ["before_snapshot", "after_restore"]
    assert not runtime.restore_errors


def read_manifest(s3, key: str) -> dict[str, Any]:
    """The manifest the bulk path wrote for ``incoming/<rel>`` (at ``vectors/<rel>.manifest.json``)."""
    rel = key[len("incoming/") :]
    return json.loads(s3.get_object(Bucket=BUCKET, Key=f"vectors/{rel}.manifest.json")["Body"].read())


def drain_shards(sqs, queue_url: str, worker) -> int:
    """Feed every queued shard message to the worker as SQS would (``events/sqs_shard.json``'s record,
    its body replaced), asserting each batch succeeds; the number of messages handled."""
    template = load_event("sqs_shard.json")
    handled = 0
    receive = {"QueueUrl": queue_url, "MaxNumberOfMessages": 10, "AttributeNames": ["All"]}
    while msgs := sqs.receive_message(**receive).get("Messages", []):
        records = [dict(template["Records"][0], messageId=m["MessageId"], body=m["Body"], receiptHandle=m["ReceiptHandle"])
                   for m in msgs]  # fmt: skip
        result = worker[0].invoke({"Records": records}, timeout=300)
        assert result.kind == "response", worker[1].output_tail()
        assert result.json() == {"batchItemFailures": []}
        for m in msgs:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
        handled += len(msgs)
    return handled
