"""SnapStart's lifecycle through the real ``python -m awslambdaric`` process.

With ``AWS_LAMBDA_INITIALIZATION_TYPE=snap-start`` the runtime client, after init, runs the
before-snapshot hooks and parks in ``GET /runtime/restore/next`` (Lambda snapshots the memory
then); a restore answers that call, the after-restore hooks run, and only then does the client
poll for invocations. The Runtime API served by the test plays Lambda's part, so the order of
what the process did, and that it serves requests after the "restore", are observed on the wire.
"""

from __future__ import annotations

import pytest

from tests.conftest import REPO, load_event
from tests.e2e.harness import dockerfile_command, dockerfile_env, lambda_session
from tests.e2e.lambda_checks import read_manifest, snapstart_cycle
from tests.e2e.test_bulk_e2e import BUCKET, _command, _env

DOCKERFILE = REPO / "function" / "Dockerfile"


def test_encode_function_snapshot_restore_then_serves(default_model_dir) -> None:
    env = dockerfile_env(DOCKERFILE)
    env.update(MODEL_DIR=str(default_model_dir), AWS_LAMBDA_INITIALIZATION_TYPE="snap-start")
    with lambda_session(dockerfile_command(DOCKERFILE), cwd=REPO, env=env, ready_timeout=None) as session:
        snapstart_cycle(session)
        result = session[0].invoke(load_event("direct_encode.json"), timeout=60)
        assert result.kind == "response", session[1].output_tail()
        assert len(result.json()["vectors"][0]) == 384


@pytest.mark.slow  # the hooks are bootstrap.Startup's for both handlers (the encode function's test above); the bulk refresh is test_bootstrap's
def test_bulk_worker_snapshot_restore_then_serves(default_model_dir, moto_endpoint, clients) -> None:
    s3, sqs, queue_url = clients
    env = _env(default_model_dir, moto_endpoint, queue_url)
    env["AWS_LAMBDA_INITIALIZATION_TYPE"] = "snap-start"
    with lambda_session(_command("function.bulk_app.s3_handler"), cwd=REPO, env=env, ready_timeout=None) as session:
        snapstart_cycle(session)
        s3.put_object(Bucket=BUCKET, Key="incoming/restored.txt", Body=b"encoded after a restore\n")
        event = load_event("s3_object_created.json")
        event["Records"][0]["s3"]["object"]["key"] = "incoming/restored.txt"
        result = session[0].invoke(event, timeout=120)
        assert result.kind == "response", session[1].output_tail()
        assert result.json()["objects"][0]["status"] == "complete"
        assert read_manifest(s3, "incoming/restored.txt")["counts"]["encoded"] == 1
