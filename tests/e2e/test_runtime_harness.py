"""Proves the e2e harness with trivial handlers before it is trusted with the real function.

Why: the encoder's end-to-end tests run ``python -m awslambdaric <handler>`` against our own Runtime
API. If that plumbing were subtly wrong (keep-alive, deadlines, error shapes, init failures), those
tests would fail or, worse, pass for the wrong reason. Everything asserted here is what awslambdaric
4.2.2 really does on the wire, observed through the server. One process per handler, module scoped,
so the whole file runs in a few seconds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import (
    LambdaProcess,
    RuntimeExitedError,
    dockerfile_command,
    dockerfile_env,
    lambda_session,
)
from tests.e2e.runtime_api import RuntimeAPI

REPO = Path(__file__).resolve().parents[2]
RIC = ["python", "-m", "awslambdaric"]
ERROR_KEYS = {"errorMessage", "errorType", "requestId", "stackTrace"}


@pytest.fixture(scope="module")
def echo() -> Iterator[tuple[RuntimeAPI, LambdaProcess]]:
    with lambda_session([*RIC, "tests.e2e.echo_handler.handler"], cwd=REPO, ready_timeout=30) as session:
        yield session


@pytest.fixture(scope="module")
def boom() -> Iterator[tuple[RuntimeAPI, LambdaProcess]]:
    with lambda_session([*RIC, "tests.e2e.echo_handler.boom"], cwd=REPO, ready_timeout=30) as session:
        yield session


@pytest.fixture(scope="module")
def broken() -> Iterator[tuple[RuntimeAPI, LambdaProcess]]:
    with lambda_session([*RIC, "tests.e2e.broken_handler.handler"], cwd=REPO, ready_timeout=None) as session:
        yield session


def _header(headers: dict[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)


# --- successful invocations ------------------------------------------------------------------------


def test_echo_sequential_invocations_over_one_keep_alive_connection(echo: tuple[RuntimeAPI, LambdaProcess]) -> None:
    runtime, process = echo
    deadline_ms = 5000
    results = [runtime.invoke({"n": n, "text": "héllo"}, deadline_ms=deadline_ms, timeout=10) for n in range(3)]

    assert [r.kind for r in results] == ["response"] * 3
    assert len({r.request_id for r in results}) == 3
    for n, result in enumerate(results):
        body = result.json()
        assert body["echo"] == {"n": n, "text": "héllo"}
        assert body["request_id"] == result.request_id
        # The context's clock is our Lambda-Runtime-Deadline-Ms header: below the budget, not far below it.
        assert deadline_ms - 2000 < body["remaining_ms"] <= deadline_ms
        assert _header(result.headers, "Content-Type") == "application/json"
        assert result.error_type is None
    assert process.alive

    # awslambdaric's native client (libcurl, one reused easy handle) keeps one HTTP/1.1 connection:
    # every `next` and every `/response` arrived on the same client port.
    traffic = sorted((r for r in runtime.requests if "/invocation/" in r.path), key=lambda r: r.at)
    assert len({r.peer_port for r in traffic}) == 1, traffic
    assert [r.method for r in traffic[:6]] == ["GET", "POST"] * 3


def test_echo_large_payload_and_client_context(echo: tuple[RuntimeAPI, LambdaProcess]) -> None:
    """A ~1 MB event/response crosses the wire intact; a JSON client-context header is accepted."""
    runtime, _ = echo
    event = {"texts": ["x" * 1000] * 1000}
    result = runtime.invoke(event, client_context={"custom": {"tenant": "t1"}}, timeout=10)
    assert result.kind == "response", result.payload[:500]
    assert result.json()["echo"] == event


def test_init_time_is_measured(echo: tuple[RuntimeAPI, LambdaProcess]) -> None:
    runtime, process = echo
    assert process.init_s is not None and 0 < process.init_s < 30
    assert runtime.first_next_at is not None and runtime.init_errors == []
    assert process.env["LAMBDA_TASK_ROOT"] == str(REPO)
    assert process.env["_HANDLER"] == "tests.e2e.echo_handler.handler"
    assert process.env["AWS_LAMBDA_RUNTIME_API"] == runtime.address


# --- handler exceptions ----------------------------------------------------------------------------


def test_handler_exception_is_an_invocation_error(boom: tuple[RuntimeAPI, LambdaProcess]) -> None:
    runtime, process = boom
    result = runtime.invoke({"any": "thing"}, timeout=10)

    assert result.kind == "error"
    body = result.json()
    assert set(body) == ERROR_KEYS
    assert body["errorType"] == "ValueError"
    assert body["errorMessage"] == "boom"
    assert body["requestId"] == result.request_id
    assert any("echo_handler.py" in frame and "boom" in frame for frame in body["stackTrace"])
    # The native client sends the type in the body and an X-Ray cause header, but no
    # Lambda-Runtime-Function-Error-Type header for invocation errors.
    assert _header(result.headers, "Lambda-Runtime-Function-Error-Type") is None
    assert result.error_type == "ValueError"
    xray = json.loads(_header(result.headers, "Lambda-Runtime-Function-XRay-Error-Cause") or "{}")
    assert xray["exceptions"][0]["type"] == "ValueError"

    # The runtime survives a handler exception and serves the next invocation.
    assert runtime.invoke({}, timeout=10).json()["errorType"] == "ValueError"
    assert process.alive
    assert process.wait_for_output("[ERROR] ValueError: boom", 5), process.output_tail()  # logged to stdout


# --- init errors -----------------------------------------------------------------------------------


def test_import_failure_posts_init_error_and_exits(broken: tuple[RuntimeAPI, LambdaProcess]) -> None:
    runtime, process = broken
    error = runtime.wait_for_init_error(timeout=30)
    assert error is not None, process.output_tail()

    body = error.json()
    assert set(body) == ERROR_KEYS
    assert body["errorType"] == "RuntimeError" == error.error_type
    assert body["errorMessage"] == "broken at import"
    assert body["requestId"] == ""
    assert "broken_handler.py" in body["stackTrace"][-1]
    assert process.wait_exit(10) == 1
    assert runtime.next_calls == []  # it never asked for work
    assert len(runtime.init_errors) == 1

    started = time.monotonic()
    with pytest.raises(RuntimeExitedError, match="broken at import"):
        runtime.invoke({}, timeout=10)
    assert time.monotonic() - started < 2  # fails fast instead of waiting for the timeout


@pytest.mark.parametrize(
    ("handler", "error_type", "message"),
    [
        ("tests.e2e.no_such_module.handler", "Runtime.ImportModuleError", "Unable to import module"),
        ("tests.e2e.echo_handler.no_such_function", "Runtime.HandlerNotFound", "Handler 'no_such_function' missing"),
        ("handler_without_module", "Runtime.MalformedHandlerName", "Bad handler"),
    ],
)
def test_unloadable_handler_init_errors(handler: str, error_type: str, message: str) -> None:
    with lambda_session([*RIC, handler], cwd=REPO, ready_timeout=None) as (runtime, process):
        error = runtime.wait_for_init_error(timeout=30)
        assert error is not None, process.output_tail()
        assert error.error_type == error_type == error.json()["errorType"]
        assert message in error.json()["errorMessage"]
        assert error.json()["stackTrace"] == []
        assert process.wait_exit(10) == 1


# --- harness behaviour without a process ------------------------------------------------------------


def test_invoke_timeout_reports_diagnostics() -> None:
    with RuntimeAPI() as runtime:
        runtime.attach(diagnostics=lambda: "STDERR-TAIL-MARKER")
        with pytest.raises(TimeoutError, match=r"(?s)never picked up.*STDERR-TAIL-MARKER"):
            runtime.invoke({"x": 1}, timeout=0.2)
        assert runtime.wait_for_next(0.05) is False


# --- Dockerfile parsing ----------------------------------------------------------------------------


def test_real_dockerfile_runs_awslambdaric() -> None:
    dockerfile = REPO / "function" / "Dockerfile"
    command = dockerfile_command(dockerfile)
    assert command[:3] == RIC and len(command) == 4  # awslambdaric with the handler as CMD
    assert dockerfile_env(dockerfile).get("LAMBDA_TASK_ROOT") == "/var/task"


def test_dockerfile_reader_takes_the_final_stage_and_refuses_shell_form(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        'FROM python:3.11 AS build\nCMD ["build.handler"]\nENV A=1\n'
        "FROM python:3.11-slim\n# a comment\nENV B=2 \\\n    C=3\n"
        'ENTRYPOINT ["python", \\\n  "-m", "awslambdaric"]\nCMD ["function.app.handler"]\n'
    )
    assert dockerfile_command(dockerfile) == [*RIC, "function.app.handler"]
    assert dockerfile_env(dockerfile) == {"B": "2", "C": "3"}
    dockerfile.write_text("FROM scratch\nENTRYPOINT python -m awslambdaric\n")
    with pytest.raises(ValueError, match="exec form"):
        dockerfile_command(dockerfile)
