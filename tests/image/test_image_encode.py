"""The built image's encode function under Lambda's constraints: every event, SnapStart, init failures.

Each event file of the encode handler goes through the container and is compared with
``events/expectations.json`` (status and keys), the same table the process-level e2e tests use. One
container serves the module, like one warm Lambda environment.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import load_event
from tests.e2e.lambda_checks import EXPECTATIONS, assert_event_answered_as_expected, snapstart_cycle
from tests.image.container import container_session, docker, vcpu_share

TEXT = "I enjoy taking long walks along the beach with my dog."


@pytest.fixture(scope="module")
def encode_function(image: str, encode_memory_mb: int):
    with container_session(image, memory_mb=encode_memory_mb) as session:
        yield session


def test_init_runs_as_lambda_runs_it(encode_function, encode_memory_mb: int) -> None:
    runtime, process = encode_function
    ready = process.model_ready(timeout=10)
    assert ready["threads_applied"] is True
    assert process.env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == str(encode_memory_mb)
    assert 0 < process.peak_memory_mb() <= encode_memory_mb


def test_the_function_sees_lambdas_limits(encode_function, encode_memory_mb: int) -> None:
    """From inside the running container: uid 993, only /tmp writable, the template's memory and CPU share."""
    _, process = encode_function
    probe = (
        "import os, pathlib; from bert2vec.core.cpu import cpu_quota; "
        "limit = next(p.read_text().strip() for p in map(pathlib.Path, ('/sys/fs/cgroup/memory.max', "
        "'/sys/fs/cgroup/memory/memory.limit_in_bytes')) if p.is_file()); "
        "root = next(line.split()[3] for line in open('/proc/mounts') if line.split()[1] == '/'); "
        "print(os.getuid(), root.split(',')[0], os.access('/tmp', os.W_OK), cpu_quota(), limit)"
    )
    uid, root_mode, tmp_writable, quota, limit = docker("exec", process.name, "python", "-c", probe).stdout.split()
    assert (uid, root_mode, tmp_writable) == ("993", "ro", "True")
    assert float(quota) == pytest.approx(vcpu_share(encode_memory_mb), abs=0.01)
    assert int(limit) == encode_memory_mb * 2**20


@pytest.mark.parametrize("name", sorted(EXPECTATIONS))
def test_every_event_through_the_image(encode_function, name: str) -> None:
    assert_event_answered_as_expected(encode_function, name)


def test_direct_invoke_matches_the_bare_process_vectors(encode_function, default_encoder) -> None:
    """The image's model (exported in the build) and the test suite's export give the same vectors."""
    import numpy as np

    runtime, _ = encode_function
    answer = runtime.invoke({"texts": [TEXT]}).json()
    assert answer["dimension"] == 384 and answer["token_counts"] == [14]
    local = default_encoder.encode([TEXT]).embeddings[0]
    assert float(np.dot(np.asarray(answer["vectors"][0], dtype=np.float32), local)) > 0.99999


def test_snap_start_lifecycle_in_the_image(image: str, encode_memory_mb: int) -> None:
    env = {"AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start"}
    with container_session(image, memory_mb=encode_memory_mb, env=env, ready_timeout=None) as session:
        snapstart_cycle(session, hook_timeout=20)  # container output arrives later
        result = session[0].invoke(load_event("direct_encode.json"), timeout=60)
        assert result.kind == "response", session[1].output_tail()
        assert len(result.json()["vectors"][0]) == 384


@pytest.mark.parametrize(
    ("case", "env", "docker_args", "path"),
    [
        ("MODEL_DIR names no directory", {"MODEL_DIR": "/opt/no-such-model"}, [], "/opt/no-such-model"),
        ("the baked model is missing", {}, ["--tmpfs", "/opt/model"], "/opt/model"),
    ],
)
def test_model_failures_are_init_errors_not_hangs(image, encode_memory_mb, case, env, docker_args, path) -> None:
    with container_session(
        image, memory_mb=encode_memory_mb, env=env, docker_args=docker_args, ready_timeout=None
    ) as (runtime, process):
        init_error = runtime.wait_for_init_error(timeout=120)
        assert init_error is not None, f"{case}: no init error\n{process.output_tail()}"
        error = json.loads(init_error.payload)
        assert error["errorType"] == "ModelNotFoundError", error
        assert path in error["errorMessage"]
        process.wait_exit(60)  # the container ends: Lambda would retry init, not wait on a hung one
        assert not runtime.next_calls
