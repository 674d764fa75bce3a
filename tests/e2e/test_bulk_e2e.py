"""End to end for the S3 path: moto's server + the real ``python -m awslambdaric`` processes.

The planner and worker run as the image would run them: the Dockerfile's ENTRYPOINT with the
handler that ``template.yaml`` puts in ``ImageConfig.Command``. boto3 inside them reaches moto's
server through ``AWS_ENDPOINT_URL``. They are fed ``events/s3_*.json``, ``events/eventbridge_*.json``
and ``events/sqs_*.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote_plus

import pytest

from tests.conftest import REPO, load_event
from tests.e2e.harness import dockerfile_command, dockerfile_env, lambda_session
from tests.e2e.lambda_checks import BUCKET, drain_shards, read_manifest

DOCKERFILE = REPO / "function" / "Dockerfile"


def _env(model_dir: Path, endpoint: str, queue_url: str) -> dict[str, str]:
    env = dockerfile_env(DOCKERFILE)
    env.update(
        MODEL_DIR=str(model_dir), LAMBDA_TASK_ROOT=str(REPO), AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
        SHARD_QUEUE_URL=queue_url, CHUNK_BYTES="256", SHARD_BYTES="1024", SHARD_MAX_RECEIVES="3", TIME_MARGIN_MS="1000",
    )  # fmt: skip
    return env


def _command(handler: str) -> list[str]:
    argv = dockerfile_command(DOCKERFILE)
    assert argv[-1] == "function.app.handler"
    return [*argv[:-1], handler]  # what ImageConfig.Command does to CMD


@pytest.fixture(scope="module")
def planner(default_model_dir, moto_endpoint, clients):
    env = _env(default_model_dir, moto_endpoint, clients[2])
    with lambda_session(_command("function.bulk_app.s3_handler"), cwd=REPO, env=env, ready_timeout=120) as session:
        yield session


@pytest.fixture(scope="module")
def worker(default_model_dir, moto_endpoint, clients):
    env = _env(default_model_dir, moto_endpoint, clients[2])
    with lambda_session(_command("function.bulk_app.sqs_handler"), cwd=REPO, env=env, ready_timeout=120) as session:
        yield session


def test_template_commands_match() -> None:
    text = (REPO / "template.yaml").read_text()
    assert "function.bulk_app.s3_handler" in text and "function.bulk_app.sqs_handler" in text


def test_s3_event_with_url_encoded_key(planner, clients) -> None:
    runtime, process = planner
    s3 = clients[0]
    event = load_event("s3_object_created.json")
    key = unquote_plus(event["Records"][0]["s3"]["object"]["key"])
    assert key == "incoming/my docs/café notes.txt"
    s3.put_object(Bucket=BUCKET, Key=key, Body="first line\r\n\r\nsecond line, café\r\n".encode())
    result = runtime.invoke(event, timeout=120)
    assert result.kind == "response", process.output_tail()
    summary = result.json()["objects"][0]
    assert summary["status"] == "complete", summary
    m = read_manifest(s3, key)
    assert m["counts"] == {**m["counts"], "lines_read": 3, "encoded": 2, "blank": 1, "rejected": 0}
    assert m["input"]["key"] == key


def test_eventbridge_event_and_duplicate_delivery(planner, clients) -> None:
    runtime, process = planner
    s3 = clients[0]
    event = load_event("eventbridge_object_created.json")
    key = event["detail"]["object"]["key"]
    if not s3.list_objects_v2(Bucket=BUCKET, Prefix=key).get("KeyCount"):
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"hello\n")
    first = runtime.invoke(event, timeout=120).json()["objects"][0]
    again = runtime.invoke(event, timeout=120).json()["objects"][0]
    assert "status" in first or first["outcome"] == "duplicate"
    assert again["outcome"] == "duplicate" and "already encoded" in again["detail"], process.output_tail()


def test_output_prefix_event_is_ignored(planner) -> None:
    runtime, _ = planner
    summary = runtime.invoke(load_event("s3_object_created_output_prefix.json")).json()["objects"][0]
    assert summary["outcome"] == "ignored" and "output prefix" in summary["detail"]


def test_fan_out_through_the_worker_process(planner, worker, clients) -> None:
    s3, sqs, queue_url = clients
    lines = [f"line {i} of a file big enough to fan out" for i in range(1, 121)]
    s3.put_object(Bucket=BUCKET, Key="incoming/big.txt", Body=("\n".join(lines) + "\n").encode())
    event = load_event("s3_object_created.json")
    event["Records"][0]["s3"]["object"]["key"] = "incoming/big.txt"
    summary = planner[0].invoke(event, timeout=120).json()["objects"][0]
    assert summary["shards"] >= 4, summary

    handled = drain_shards(sqs, queue_url, worker)  # events/sqs_shard.json, its body the real messages
    assert handled == summary["shards"]
    m = read_manifest(s3, "incoming/big.txt")
    assert m["status"] == "complete" and m["counts"]["encoded"] == 120 and m["balanced"]
    seen = []
    for part in m["output"]["parts"]:
        body = s3.get_object(Bucket=BUCKET, Key=part["key"])["Body"].read().decode()
        seen += [json.loads(x)["line"] for x in body.splitlines()]
    assert seen == list(range(1, 121))


def test_bad_shard_message_is_a_batch_item_failure(worker) -> None:
    runtime, _ = worker
    event = load_event("sqs_shard.json")
    event["Records"][0]["body"] = json.dumps({"v": 99})
    result = runtime.invoke(event, timeout=60).json()
    assert result == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}


def test_batch_operations_event_through_the_planner_process(planner, clients) -> None:
    runtime, process = planner
    s3 = clients[0]
    event = load_event("s3_batch_operations.json")
    key = event["tasks"][0]["s3Key"]
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"already in the bucket\nbefore the stack existed\n")
    result = runtime.invoke(event, timeout=120)
    assert result.kind == "response", process.output_tail()
    answer = result.json()
    assert answer["invocationId"] == event["invocationId"] and answer["treatMissingKeysAs"] == "PermanentFailure"
    (task,) = answer["results"]
    assert task["taskId"] == event["tasks"][0]["taskId"] and task["resultCode"] == "Succeeded", task
    assert read_manifest(s3, key)["counts"]["encoded"] == 2
    again = runtime.invoke(event, timeout=120).json()["results"][0]
    assert again["resultCode"] == "Succeeded" and "already encoded" in again["resultString"]
