"""End to end: the container's exact ENTRYPOINT + CMD, fed every ``events/*.json``.

There is no Docker engine here, so the test runs the command the Dockerfile's final stage would run
(``python -m awslambdaric function.app.handler``) in a directory laid out like the image's
``/var/task`` (the repository root: it holds the ``function/`` package), with the environment the
Dockerfile sets, against a Lambda Runtime API served by the test on 127.0.0.1. One process is
started for the whole module, so TensorFlow loads once.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import EVENTS, REPO
from tests.e2e.harness import dockerfile_command, dockerfile_env, lambda_session
from tests.e2e.lambda_checks import ALL_EXPECTATIONS, EXPECTATIONS, assert_event_answered_as_expected

DOCKERFILE = REPO / "function" / "Dockerfile"


def _env(model_dir: Path) -> dict[str, str]:
    env = dockerfile_env(DOCKERFILE)
    env["MODEL_DIR"] = str(model_dir)  # the image bakes the model at /opt/model
    env["LAMBDA_TASK_ROOT"] = str(REPO)
    return env


@pytest.fixture(scope="module")
def lambda_function(default_model_dir: Path):
    argv = dockerfile_command(DOCKERFILE)
    assert argv == ["python", "-m", "awslambdaric", "function.app.handler"]
    with lambda_session(argv, cwd=REPO, env=_env(default_model_dir), ready_timeout=120) as (runtime, process):
        yield runtime, process


def test_init_is_logged_with_timings(lambda_function) -> None:
    runtime, process = lambda_function
    assert process.init_s is not None and process.init_s < 60
    ready = process.model_ready(timeout=5)
    assert ready["threads_applied"] is True  # pools sized from the quota before TF ran anything


def _one_per_front_door_and_outcome() -> list[str]:
    """Every event's full answer is asserted once, in process (tests/functional/test_function_app.py
    ``test_every_event``: status, keys, error shape); what this tier adds is the runtime boundary, so
    it sends one success and one error per front door (the first of each by name)."""
    chosen: dict[tuple[str, bool], str] = {}
    for name in sorted(EXPECTATIONS):
        chosen.setdefault((EXPECTATIONS[name]["source"], EXPECTATIONS[name]["status"] >= 400), name)
    return sorted(chosen.values())


@pytest.mark.parametrize("name", _one_per_front_door_and_outcome())
def test_each_front_door_through_awslambdaric(lambda_function, name: str) -> None:
    assert_event_answered_as_expected(lambda_function, name)


def test_every_event_file_has_an_expectation() -> None:
    files = {p.name for p in EVENTS.glob("*.json") if p.name != "expectations.json"}
    assert files == set(ALL_EXPECTATIONS)


def test_direct_invoke_is_deterministic(lambda_function) -> None:
    runtime, _ = lambda_function
    first = runtime.invoke({"texts": ["I enjoy taking long walks along the beach with my dog."]})
    again = runtime.invoke({"texts": ["I enjoy taking long walks along the beach with my dog."]})
    a, b = first.json(), again.json()
    assert a["dimension"] == 384 and a["vectors"] == b["vectors"]
    assert a["truncated"] == [False] and a["token_counts"] == [14]  # [CLS] 11 words "." [SEP]


def test_missing_model_is_an_init_error(tmp_path: Path) -> None:
    argv = dockerfile_command(DOCKERFILE)
    with lambda_session(argv, cwd=REPO, env=_env(tmp_path / "nothing"), ready_timeout=None) as (runtime, process):
        init_error = runtime.wait_for_init_error(timeout=90)
        assert init_error is not None, process.output_tail()
        error = json.loads(init_error.payload)
        assert error["errorType"] == "ModelNotFoundError"
        assert "bert-export" in error["errorMessage"] and str(tmp_path / "nothing") in error["errorMessage"]
