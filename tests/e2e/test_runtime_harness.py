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
    DockerfileError,
    LambdaProcess,
    RuntimeExitedError,
    dockerfile_command,
    dockerfile_env,
    dockerfile_workdir,
    image_config,
    image_config_from_text,
    lambda_session,
    parse_dockerfile,
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
    config = image_config(dockerfile)
    assert config.entrypoint == RIC  # what the harness runs, with the handler as CMD
    command = dockerfile_command(dockerfile)
    assert command[:3] == RIC and len(command) == 4
    assert dockerfile_workdir(dockerfile) == "/var/task"
    assert dockerfile_env(dockerfile).get("LAMBDA_TASK_ROOT") == "/var/task"


def test_multi_stage_final_stage_wins_and_from_resets() -> None:
    text = """
FROM python:3.11 AS build
ENTRYPOINT ["python", "-m", "awslambdaric"]
CMD ["build.handler"]

FROM python:3.11-slim
ENV ONLY_FINAL=1
"""
    stages = parse_dockerfile(text)
    assert [s.name for s in stages] == ["build", None]
    assert stages[0].command == ["python", "-m", "awslambdaric", "build.handler"]
    assert stages[1].env == {"ONLY_FINAL": "1"}
    with pytest.raises(DockerfileError, match="no ENTRYPOINT/CMD"):
        _ = stages[1].command
    assert image_config_from_text(text, target="BUILD").command[-1] == "build.handler"


def test_stage_inheritance_env_workdir_and_last_cmd_wins(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        """ARG BASE=python:3.11-slim
FROM ${BASE} AS Base
ENV A=1 QUOTED="two words"
WORKDIR /var
WORKDIR task
ENTRYPOINT ["python", "-m", "awslambdaric"]
CMD ["first.handler"]

FROM base AS final
ARG SUFFIX=z
ENV B=${A}-$SUFFIX C=${MISSING:-dflt} LEGACY_UNUSED=x
ENV LEGACY value with spaces
CMD ["second.handler"]
CMD ["function.app.handler"]
""",
        encoding="utf-8",
    )
    config = image_config(dockerfile)
    assert config.base == "base" and config.name == "final"
    assert dockerfile_command(dockerfile) == ["python", "-m", "awslambdaric", "function.app.handler"]
    assert dockerfile_env(dockerfile) == {
        "A": "1",
        "QUOTED": "two words",
        "B": "1-z",
        "C": "dflt",
        "LEGACY_UNUSED": "x",
        "LEGACY": "value with spaces",
    }
    assert dockerfile_workdir(dockerfile) == "/var/task"
    assert parse_dockerfile(dockerfile.read_text())[0].base == "python:3.11-slim"


def test_entrypoint_resets_inherited_cmd_but_not_own_cmd() -> None:
    base = 'FROM scratch AS base\nENTRYPOINT ["a"]\nCMD ["inherited"]\n'
    assert image_config_from_text(base + 'FROM base\nENTRYPOINT ["b"]\n').command == ["b"]
    assert image_config_from_text(base + 'FROM base\nCMD ["own"]\nENTRYPOINT ["b"]\n').command == ["b", "own"]
    assert image_config_from_text(base + "FROM base\n").command == ["a", "inherited"]


def test_continuation_lines_comments_heredocs_and_escape_directive() -> None:
    text = """# syntax=docker/dockerfile:1
# a comment that ends directives
FROM scratch
RUN <<EOF
CMD ["not", "an", "instruction"]
EOF
ENTRYPOINT ["python", \\
# a comment inside a continuation is dropped

    "-m", "awslambdaric"]
CMD [ \\
  "tests.e2e.echo_handler.handler" \\
]
"""
    assert image_config_from_text(text).command == [*RIC, "tests.e2e.echo_handler.handler"]

    backtick = '# escape=`\nFROM scratch\nENV P=C:\\\\dir\nCMD ["x", `\n  "y"]\n'
    config = image_config_from_text(backtick)
    assert config.command == ["x", "y"]
    assert config.env == {"P": "C:\\\\dir"}


def test_shell_form_is_rejected_clearly() -> None:
    text = "FROM scratch\nENTRYPOINT python -m awslambdaric\n"
    with pytest.raises(DockerfileError, match=r"line 2: ENTRYPOINT .*shell form.*exec form"):
        _ = image_config_from_text(text).command
    malformed_json = 'FROM scratch\nCMD ["python", "-m",]\n'  # Docker falls back to shell form too
    with pytest.raises(DockerfileError, match="shell form"):
        _ = image_config_from_text(malformed_json).command
    # Shell form in a stage that is not the image does not matter.
    ok = 'FROM scratch AS tools\nCMD echo hi\nFROM scratch\nCMD ["ok"]\n'
    assert image_config_from_text(ok).command == ["ok"]
