"""Run the function image's command as a local process, the way Lambda would run the container.

Why: there is no Docker engine in CI, yet the end-to-end tests must exercise exactly what the image
runs. So the command is *read from the Dockerfile* (the final stage's exec-form ENTRYPOINT + CMD,
and its ENV) instead of being duplicated in the tests, and :class:`LambdaProcess` starts it with
the environment Lambda provides, pointed at a :class:`~tests.e2e.runtime_api.RuntimeAPI`. If
someone changes the image's command, the tests run the new one. The reader is deliberately small:
it understands the Dockerfile this project owns (continuation lines, exec form, ``ENV K=V ...``)
and fails loudly on anything else rather than guessing.

A bare ``python`` in that command runs this interpreter (``sys.executable``), unless the environment
variable ``BERT2VEC_E2E_PYTHON`` names another one: then the function runs on that interpreter's
packages, e.g. a venv built like the image's (``.cache/venv-lean``, see ``bench/image_size.py``)::

    BERT2VEC_E2E_PYTHON=.cache/venv-lean/bin/python pytest tests/e2e/test_function_e2e.py

The tests themselves still run here; only the function process changes interpreter.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from tests.e2e.runtime_api import RuntimeAPI, RuntimeExitedError

# ---------------------------------------------------------------------------------------------------
# The two things the tests read from the Dockerfile
# ---------------------------------------------------------------------------------------------------


def _final_stage(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the last stage, continuation lines joined, comments dropped."""
    text = Path(dockerfile).read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    instructions = [tuple(line.split(None, 1)) for line in lines if line and not line.startswith("#")]
    instructions = [(i[0].upper(), i[1] if len(i) > 1 else "") for i in instructions]
    froms = [n for n, (ins, _) in enumerate(instructions) if ins == "FROM"]
    if not froms:
        raise ValueError(f"{dockerfile}: no FROM instruction")
    return instructions[froms[-1] :]


def _exec_form(instruction: str, args: str) -> list[str]:
    try:
        argv = json.loads(args)
    except json.JSONDecodeError:
        argv = None
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        raise ValueError(f"{instruction} {args!r} is not exec form (a JSON array of strings)")
    return argv


def dockerfile_command(dockerfile: Path) -> list[str]:
    """ENTRYPOINT + CMD (exec form) of the final stage, e.g. ``["python", "-m", "awslambdaric", ...]``."""
    found = {ins: _exec_form(ins, args) for ins, args in _final_stage(dockerfile) if ins in ("ENTRYPOINT", "CMD")}
    if not found:
        raise ValueError(f"{dockerfile}: the final stage sets neither ENTRYPOINT nor CMD")
    return found.get("ENTRYPOINT", []) + found.get("CMD", [])


def dockerfile_env(dockerfile: Path) -> dict[str, str]:
    """The final stage's ``ENV KEY=VALUE ...`` variables (no substitution: ours uses none)."""
    env: dict[str, str] = {}
    for ins, args in _final_stage(dockerfile):
        if ins == "ENV":
            for word in shlex.split(args):
                key, sep, value = word.partition("=")
                if not sep:
                    raise ValueError(f"ENV {args!r}: write KEY=VALUE")
                env[key] = value
    return env


# ---------------------------------------------------------------------------------------------------
# The function process
# ---------------------------------------------------------------------------------------------------

_PYTHON_NAME = re.compile(r"python(3(\.\d+)?)?")
E2E_PYTHON_VAR = "BERT2VEC_E2E_PYTHON"
# Inherited variables that would change how awslambdaric behaves (multi-concurrency, telemetry fd,
# thread polling...) must come from the test, never leak in from whoever runs pytest.
_LAMBDA_ONLY_PREFIXES = ("AWS_LAMBDA_", "_LAMBDA_", "_X_AMZN_", "AWS_EXECUTION_ENV", "_HANDLER", "LAMBDA_")


def function_python() -> str:
    """The interpreter that stands for the image's ``python``: ``$BERT2VEC_E2E_PYTHON`` or this one."""
    chosen = os.environ.get(E2E_PYTHON_VAR, "").strip()
    if not chosen:
        return sys.executable
    path = Path(chosen).expanduser()
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise FileNotFoundError(f"{E2E_PYTHON_VAR}={chosen}: not an executable file")
    return str(path.absolute())  # not resolved: a venv's bin/python symlink is what selects the venv


class _Tail:
    """Drain a pipe on a thread into a bounded ring buffer (a full pipe would block the function)."""

    def __init__(self, stream: IO[bytes], name: str, maxlen: int, echo: IO[str] | None) -> None:
        self.lines: collections.deque[str] = collections.deque(maxlen=maxlen)
        self._lock = threading.Condition()
        self._thread = threading.Thread(target=self._run, args=(stream, name, echo), name=name, daemon=True)
        self._thread.start()

    def _run(self, stream: IO[bytes], name: str, echo: IO[str] | None) -> None:
        with stream:
            for raw in iter(stream.readline, b""):
                # awslambdaric joins the lines of one error record with "\r"; show them as lines.
                text = raw.decode("utf-8", errors="replace").rstrip("\n").replace("\r", "\n")
                with self._lock:
                    self.lines.append(text)
                    self._lock.notify_all()
                if echo is not None:
                    echo.write(f"[{name}] {text}\n")

    def tail(self, n: int) -> str:
        with self._lock:
            return "\n".join(list(self.lines)[-n:])

    def wait_for(self, needle: str, timeout: float) -> bool:
        """True once a line containing ``needle`` has been read (pipes lag behind the HTTP posts)."""
        end = time.monotonic() + timeout
        with self._lock:
            while not any(needle in line for line in self.lines):
                remaining = end - time.monotonic()
                if remaining <= 0 or not self._thread.is_alive():
                    return any(needle in line for line in self.lines)
                self._lock.wait(min(remaining, 0.1))
            return True

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


def peak_rss_mb(pid: int) -> float:
    """A process's peak resident memory (``VmHWM`` in ``/proc/<pid>/status``), in MB; NaN if absent."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class LambdaProcess:
    """The image's command running locally against a :class:`RuntimeAPI`; use as a context manager.

    ``argv`` is the container command (typically :func:`dockerfile_command`). A bare ``python`` /
    ``python3`` is replaced by :func:`function_python` (this interpreter, or ``$BERT2VEC_E2E_PYTHON``). The environment is
    this process's (minus Lambda-specific variables), then Lambda's standard variables, then ``env``;
    ``AWS_LAMBDA_RUNTIME_API``, ``LAMBDA_TASK_ROOT`` (= ``cwd``, standing in for ``/var/task``) and
    ``_HANDLER`` are always set by the harness.
    """

    def __init__(
        self,
        argv: Sequence[str],
        runtime: RuntimeAPI,
        *,
        cwd: Path,
        env: Mapping[str, str] | None = None,
        handler: str | None = None,
        function_name: str = "bert2vec-encode",
        memory_mb: int = 2048,
        inherit_env: bool = True,
        tail_lines: int = 1000,
        echo: bool = False,
    ) -> None:
        if not argv:
            raise ValueError("empty argv")
        self.argv = [function_python() if _PYTHON_NAME.fullmatch(argv[0]) else argv[0], *argv[1:]]
        self.runtime = runtime
        self.cwd = Path(cwd)
        self.handler = handler if handler is not None else argv[-1]
        self._user_env = dict(env or {})
        self.function_name = function_name
        self.memory_mb = memory_mb
        self.inherit_env = inherit_env
        self.tail_lines = tail_lines
        self.echo = echo
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at: float | None = None
        self.env: dict[str, str] = {}
        self._stdout: _Tail | None = None
        self._stderr: _Tail | None = None

    def _build_env(self) -> dict[str, str]:
        base = {}
        if self.inherit_env:
            base = {k: v for k, v in os.environ.items() if not k.startswith(_LAMBDA_ONLY_PREFIXES)}
        lambda_env = {
            "AWS_LAMBDA_FUNCTION_NAME": self.function_name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{self.function_name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": time.strftime("%Y/%m/%d/[$LATEST]") + uuid.uuid4().hex,
            "PYTHONUNBUFFERED": "1",
        }
        forced = {
            "AWS_LAMBDA_RUNTIME_API": self.runtime.address,
            "LAMBDA_TASK_ROOT": str(self.cwd),
            "_HANDLER": self.handler,
        }
        return {**base, **lambda_env, **self._user_env, **forced}

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> LambdaProcess:
        self.env = self._build_env()
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # own process group: stop() also reaps anything the handler spawned
        )
        echo = sys.stderr if self.echo else None
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._stdout = _Tail(self.proc.stdout, f"lambda-stdout-{self.proc.pid}", self.tail_lines, echo)
        self._stderr = _Tail(self.proc.stderr, f"lambda-stderr-{self.proc.pid}", self.tail_lines, echo)
        self.runtime.attach(diagnostics=self.output_tail, alive=lambda: self.alive)
        return self

    def stop(self, grace: float = 5.0) -> int | None:
        """SIGTERM the process group, SIGKILL after ``grace`` seconds; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.proc.wait(grace)
        for tail in (self._stdout, self._stderr):
            if tail is not None:
                tail.join(2.0)
        return self.proc.returncode

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, sig)  # pgid == pid thanks to start_new_session
        except ProcessLookupError:
            pass

    def __enter__(self) -> LambdaProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- state ----------------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def peak_rss_mb(self) -> float:
        """The function process's peak RSS so far (while it runs)."""
        return peak_rss_mb(self.pid or 0)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def wait_exit(self, timeout: float) -> int:
        """Wait for the process to exit on its own (e.g. after posting an init error)."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"process {self.pid} still running after {timeout}s" + self._diag()) from None

    def wait_ready(self, timeout: float = 60.0) -> float:
        """Wait until init is over, i.e. the runtime's first ``next`` arrived; returns the init seconds.

        The Runtime API has no readiness signal other than that first ``next`` (Lambda reports the
        same moment as "Init Duration"). Raises ``RuntimeExitedError`` if the process dies first and
        ``TimeoutError`` if it is still initialising after ``timeout`` seconds.
        """
        if not self.runtime.wait_for_next(timeout):
            raise TimeoutError(f"no `next` call within {timeout}s of start" + self._diag())
        init_s = self.init_s
        assert init_s is not None
        return init_s

    @property
    def init_s(self) -> float | None:
        """Seconds from process start to its first ``next`` call (None until that happens)."""
        if self.started_at is None:
            return None
        calls = [t for t in list(self.runtime.next_calls) if t >= self.started_at]
        return calls[0] - self.started_at if calls else None

    # --- output ---------------------------------------------------------------------------------

    def stdout_tail(self, lines: int = 60) -> str:
        return self._stdout.tail(lines) if self._stdout else ""

    def stderr_tail(self, lines: int = 60) -> str:
        return self._stderr.tail(lines) if self._stderr else ""

    def wait_for_output(self, needle: str, timeout: float = 5.0, *, stream: str = "stdout") -> bool:
        """Wait until ``stream`` ("stdout" or "stderr") has printed a line containing ``needle``.

        Why: output is drained by reader threads, so a log line written just before the runtime
        posted its result may not be in the ring buffer yet when ``invoke()`` returns.
        """
        tail = {"stdout": self._stdout, "stderr": self._stderr}[stream]
        return tail is not None and tail.wait_for(needle, timeout)

    def model_ready(self, timeout: float = 5.0) -> dict[str, Any]:
        """The start-up's ``model ready`` log record (its timings, threads); raises ``TimeoutError``
        with both streams' tails if the process has not logged it within ``timeout`` seconds."""
        if not self.wait_for_output('"message":"model ready"', timeout):
            raise TimeoutError(f"no 'model ready' log line within {timeout}s" + self._diag())
        return next(json.loads(x) for x in self.stdout_tail(400).splitlines() if '"model ready"' in x)

    def output_tail(self, lines: int = 60) -> str:
        """Both streams: awslambdaric logs errors (``[ERROR] ...``) to *stdout*, Python tracebacks go to stderr."""
        rc = self.returncode
        state = "running" if rc is None else f"exited with code {rc}"
        return (
            f"--- process {self.pid} ({state}): {' '.join(self.argv)}\n"
            f"--- stdout (last {lines} lines):\n{self.stdout_tail(lines)}\n"
            f"--- stderr (last {lines} lines):\n{self.stderr_tail(lines)}"
        )

    def _diag(self) -> str:
        return "\n" + self.output_tail()


@contextlib.contextmanager
def lambda_session(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    ready_timeout: float | None = 60.0,
    **process_kwargs: Any,
) -> Iterator[tuple[RuntimeAPI, LambdaProcess]]:
    """A RuntimeAPI plus the process attached to it, torn down in the right order (process first).

    With ``ready_timeout`` set, waits for init to finish (first ``next``); pass None when init is
    expected to fail and the test wants to look at the init error instead.
    """
    with RuntimeAPI() as runtime, LambdaProcess(argv, runtime, cwd=cwd, env=env, **process_kwargs) as process:
        if ready_timeout is not None:
            process.wait_ready(ready_timeout)
        yield runtime, process


__all__ = [
    "LambdaProcess",
    "RuntimeExitedError",
    "dockerfile_command",
    "dockerfile_env",
    "function_python",
    "lambda_session",
]
