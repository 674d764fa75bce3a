"""SnapStart's lifecycle through the real ``python -m awslambdaric`` process.

With ``AWS_LAMBDA_INITIALIZATION_TYPE=snap-start`` the runtime client, after init, runs the
before-snapshot hooks and parks in ``GET /runtime/restore/next`` (Lambda snapshots the memory
then); a restore answers that call, the after-restore hooks run, and only then does the client
poll for invocations. The Runtime API served by the test plays Lambda's part, so the order of
what the process did, and that it serves requests after the "restore", are observed on the wire.
"""

from __future__ import annotations

import json

from tests.conftest import REPO, load_event
from tests.e2e.harness import dockerfile_command, dockerfile_env, lambda_session
from tests.e2e.test_bulk_e2e import BUCKET, _command, _env, _manifest

DOCKERFILE = REPO / "function" / "Dockerfile"


def _hook_lines(output: str) -> list[str]:
    hooks = []
    for line in output.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and record.get("hook"):
            hooks.append(record["hook"])
    return hooks


def _snapstart_cycle(session) -> None:
    runtime, process = session
    assert runtime.wait_for_snapshot(180), process.output_tail()
    assert runtime.lifecycle == ["restore/next"]  # init done, hooks run, parked for the snapshot
    assert _hook_lines(process.output_tail(400)) == ["before_snapshot"]
    assert not runtime.next_calls  # no invocation is polled before the restore
    runtime.restore()
    assert runtime.wait_for_next(60), process.output_tail()
    assert runtime.lifecycle == ["restore/next", "restored", "next"]
    assert process.wait_for_output('"after_restore"', timeout=10), process.output_tail()
    assert _hook_lines(process.output_tail(400)) == ["before_snapshot", "after_restore"]
    assert not runtime.restore_errors


def test_encode_function_snapshot_restore_then_serves(default_model_dir) -> None:
    env = dockerfile_env(DOCKERFILE)
    env.update(MODEL_DIR=str(default_model_dir), AWS_LAMBDA_INITIALIZATION_TYPE="snap-start")
    with lambda_session(dockerfile_command(DOCKERFILE), cwd=REPO, env=env, ready_timeout=None) as session:
        _snapstart_cycle(session)
        result = session[0].invoke(load_event("direct_encode.json"), timeout=60)
        assert result.kind == "response", session[1].output_tail()
        assert len(result.json()["vectors"][0]) == 384


def test_bulk_worker_snapshot_restore_then_serves(default_model_dir, moto_endpoint, clients) -> None:
    s3, sqs, queue_url = clients
    env = _env(default_model_dir, moto_endpoint, queue_url)
    env["AWS_LAMBDA_INITIALIZATION_TYPE"] = "snap-start"
    with lambda_session(_command("function.bulk_app.s3_handler"), cwd=REPO, env=env, ready_timeout=None) as session:
        _snapstart_cycle(session)
        s3.put_object(Bucket=BUCKET, Key="incoming/restored.txt", Body=b"encoded after a restore\n")
        event = load_event("s3_object_created.json")
        event["Records"][0]["s3"]["object"]["key"] = "incoming/restored.txt"
        result = session[0].invoke(event, timeout=120)
        assert result.kind == "response", session[1].output_tail()
        assert result.json()["objects"][0]["status"] == "complete"
        assert _manifest(s3, "incoming/restored.txt")["counts"]["encoded"] == 1
