"""The bulk functions under `sam local invoke`, against a local S3/SQS (a moto server), to a manifest.

What docs/deploy.md tells a user to do, step by step: a moto server, a bucket and a queue in it, an
``--env-vars`` file pointing the functions at it (``AWS_ENDPOINT_URL`` and the queue; the template
declares both, empty/unresolved until deployed), then

    sam local invoke BulkPlannerFunction -e events/eventbridge_object_created.json --env-vars env.json
    sam local invoke BulkWorkerFunction  -e <events/sqs_shard.json with the queue's messages> --env-vars env.json

The functions run in containers on Docker's default bridge (sam local puts them there), so moto
listens on the bridge's host address (docker0), which the containers reach without any forwarding
or NAT; nothing leaves the machine.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import EVENTS, load_event
from tests.e2e.conftest import moto_clients, moto_server
from tests.sam.samlocal import answer, invoke

BUCKET = "bert2vec-input"


def bridge_address() -> str:
    """The host's address on Docker's default bridge (docker0), where containers reach the host."""
    out = subprocess.run(["docker", "network", "inspect", "bridge", "--format",
                          "{{range .IPAM.Config}}{{.Gateway}}{{end}}"], capture_output=True, text=True, timeout=30)  # fmt: skip
    if out.stdout.strip():
        return out.stdout.strip()
    found = re.search(r"inet (\d+\.\d+\.\d+\.\d+)/", subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "docker0"], capture_output=True, text=True, timeout=30).stdout)  # fmt: skip
    assert found, "Docker's default bridge (docker0) has no address: is dockerd running with --bridge=none?"
    return found.group(1)


@pytest.fixture(scope="module")
def moto_on_bridge() -> Iterator[str]:
    yield from moto_server(bridge_address())


@pytest.fixture(scope="module")
def aws(moto_on_bridge: str):
    return moto_clients(moto_on_bridge)


@pytest.fixture(scope="module")
def env_vars(tmp_path_factory: pytest.TempPathFactory, moto_on_bridge: str, aws) -> Path:
    """The --env-vars file: the endpoint, the real bucket and queue (the template's !Refs name
    resources that do not exist locally), and small shards so one file fans out."""
    common = {"AWS_ENDPOINT_URL": moto_on_bridge, "OUTPUT_BUCKET": BUCKET, "SHARD_QUEUE_URL": aws[2],
              "SLICE_BYTES": "256", "SHARD_BYTES": "1024", "TIME_MARGIN_MS": "1000"}  # fmt: skip
    path = tmp_path_factory.mktemp("sam-env") / "env.json"
    path.write_text(json.dumps({"BulkPlannerFunction": common, "BulkWorkerFunction": common}))
    return path


def test_planner_and_worker_to_a_manifest(built_template: Path, env_vars: Path, aws, tmp_path: Path) -> None:
    s3, sqs, queue_url = aws
    event = load_event("eventbridge_object_created.json")
    key = event["detail"]["object"]["key"]  # "incoming/my docs/café notes.txt"
    lines = [f"line {i} of a file sam local fans out" for i in range(1, 121)]
    body = ("\n".join(lines) + "\n").encode()
    s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    event["detail"]["object"].update(size=len(body), etag=s3.head_object(Bucket=BUCKET, Key=key)["ETag"].strip('"'))
    planner_event = tmp_path / "eventbridge.json"
    planner_event.write_text(json.dumps(event))

    planned = answer(invoke("BulkPlannerFunction", planner_event, template=built_template, env_vars=env_vars))
    summary = planned["objects"][0]
    assert summary["key"] == key and summary["shards"] >= 4, summary

    # The worker gets the queue's messages in the SQS event shape of events/sqs_shard.json.
    template = load_event("sqs_shard.json")["Records"][0]
    handled = 0
    while msgs := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]).get("Messages", []):
        records = [dict(template, messageId=m["MessageId"], body=m["Body"], receiptHandle=m["ReceiptHandle"]) for m in msgs]
        worker_event = tmp_path / f"sqs-{handled}.json"
        worker_event.write_text(json.dumps({"Records": records}))
        out = answer(invoke("BulkWorkerFunction", worker_event, template=built_template, env_vars=env_vars))
        assert out == {"batchItemFailures": []}, out
        for m in msgs:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
        handled += len(msgs)
    assert handled == summary["shards"]

    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key="vectors/my docs/café notes.txt.manifest.json")["Body"].read())
    assert manifest["status"] == "complete" and manifest["balanced"], manifest
    assert manifest["counts"]["encoded"] == 120
    seen = []
    for part in manifest["output"]["parts"]:
        seen += [json.loads(x)["line"] for x in s3.get_object(Bucket=BUCKET, Key=part["key"])["Body"].read().decode().splitlines()]
    assert seen == list(range(1, 121))


def test_events_folder_names_the_bulk_commands() -> None:
    """events/README.md shows the commands this module runs."""
    text = (EVENTS / "README.md").read_text(encoding="utf-8")
    assert "--env-vars" in text and "sam local invoke BulkPlannerFunction" in text
