"""Run the function image's command as a local process, the way Lambda would run the container.

Why: there is no Docker engine in CI, yet the end-to-end tests must exercise exactly what the image
runs. So the command is *read from the Dockerfile* (ENTRYPOINT + CMD of the final stage) instead of
being duplicated in the tests, and :class:`LambdaProcess` starts it with the environment Lambda
provides, pointed at a :class:`~tests.e2e.runtime_api.RuntimeAPI`. If someone changes the image's
command, the tests run the new one (or fail clearly if it cannot be run without a shell).

Dockerfile semantics implemented (BuildKit's, the ones that decide what a container runs):

* the *final* stage (or ``target``) is the image; ``FROM <earlier stage>`` inherits that stage's
  ENTRYPOINT, CMD, ENV and WORKDIR; ``FROM <external image>`` starts empty because the base image's
  config is not visible here;
* the last ENTRYPOINT / CMD wins; setting ENTRYPOINT clears a CMD that was *inherited* (not one set
  in the same stage), as Docker does;
* exec form (JSON array) only: shell form would need ``/bin/sh -c`` semantics, which the harness
  deliberately refuses rather than approximates;
* line continuations with the escape character (``# escape=`` directive honoured), comment and
  blank lines inside continuations, heredoc bodies skipped, ``ARG``/``ENV`` substitution
  (``$X``, ``${X}``, ``${X:-d}``, ``${X:+a}``) in ``FROM``, ``ENV`` and ``WORKDIR``.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tests.e2e.runtime_api import RuntimeAPI, RuntimeExitedError

# ---------------------------------------------------------------------------------------------------
# Dockerfile parsing
# ---------------------------------------------------------------------------------------------------


class DockerfileError(ValueError):
    """The Dockerfile cannot be turned into a runnable argv (shell form, no command, bad stage...)."""


@dataclass(frozen=True)
class ShellForm:
    """A shell-form ENTRYPOINT/CMD, kept so the error can point at the offending line."""

    instruction: str
    text: str
    lineno: int


@dataclass
class ImageConfig:
    """The run-relevant config of one build stage (what ``docker inspect`` would show for it)."""

    name: str | None
    index: int
    base: str
    entrypoint: list[str] | ShellForm | None = None
    cmd: list[str] | ShellForm | None = None
    env: dict[str, str] = field(default_factory=dict)
    workdir: str | None = None
    cmd_set_in_stage: bool = False

    @property
    def command(self) -> list[str]:
        """ENTRYPOINT + CMD as one argv; raises :class:`DockerfileError` for shell form or nothing."""
        for part in (self.entrypoint, self.cmd):
            if isinstance(part, ShellForm):
                raise DockerfileError(
                    f"line {part.lineno}: {part.instruction} {part.text!r} is in shell form; write it in exec "
                    f'form (a JSON array such as ["python", "-m", "awslambdaric"]) so it runs without /bin/sh'
                )
        argv = [*(self.entrypoint or []), *(self.cmd or [])]  # type: ignore[misc]
        if not argv:
            raise DockerfileError(
                f"stage {self.name or self.index} (FROM {self.base}) defines no ENTRYPOINT/CMD; one inherited "
                "from an external base image cannot be seen from the Dockerfile"
            )
        return argv


_DIRECTIVE = re.compile(r"^#\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(.*?)\s*$")
_HEREDOC = re.compile(r"<<(-?)\s*([\"']?)([A-Za-z_][A-Za-z0-9_]*)\2")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _logical_lines(text: str) -> tuple[list[tuple[int, str]], str]:
    """(first line number, instruction text) pairs: continuations joined, comments/heredocs dropped.

    Also returns the escape character (``\\`` unless an ``# escape=`` directive says otherwise).
    """
    lines = text.splitlines()
    escape = "\\"
    i = 0
    while i < len(lines):  # parser directives: only at the very top, stop at the first other line
        m = _DIRECTIVE.match(lines[i])
        if not m:
            break
        if m.group(1).lower() == "escape":
            if m.group(2) not in ("\\", "`"):
                raise DockerfileError(f"line {i + 1}: invalid escape directive {m.group(2)!r}")
            escape = m.group(2)
        i += 1

    def skippable(line: str) -> bool:
        stripped = line.strip()
        return not stripped or stripped.startswith("#")

    out: list[tuple[int, str]] = []
    while i < len(lines):
        lineno, buf = i + 1, lines[i]
        i += 1
        if skippable(buf):
            continue
        while buf.rstrip().endswith(escape):
            buf = buf.rstrip()[: -len(escape)]
            while i < len(lines) and skippable(lines[i]):
                i += 1  # comment and empty lines inside a continuation are removed
            if i >= len(lines):
                break
            buf += lines[i]
            i += 1
        instruction = buf.split(None, 1)[0].upper()
        if instruction in ("RUN", "COPY", "ADD"):
            for m in _HEREDOC.finditer(buf):
                strip_tabs, terminator = m.group(1) == "-", m.group(3)
                while i < len(lines):
                    body_line = lines[i].lstrip("\t") if strip_tabs else lines[i]
                    i += 1
                    if body_line == terminator:
                        break
        out.append((lineno, buf.strip()))
    return out, escape


def _expand_var(text: str, pos: int, variables: Mapping[str, str]) -> tuple[str, int]:
    """Expand the ``$...`` reference starting at ``text[pos] == '$'``; returns (value, next pos)."""
    if pos + 1 < len(text) and text[pos + 1] == "{":
        depth, j = 1, pos + 2
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        if depth:
            raise DockerfileError(f"unterminated ${{...}} in {text!r}")
        inner = text[pos + 2 : j - 1]
        m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)(:?[-+])?(.*)$", inner, re.S)
        if not m:
            raise DockerfileError(f"unsupported substitution ${{{inner}}}")
        name, op, word = m.groups()
        value = variables.get(name)
        if op is None:
            return value or "", j
        is_set = value is not None and (value != "" or not op.startswith(":"))
        if op.endswith("-"):
            return (value if is_set else _process(word, variables, split=False)[0]) or "", j
        return (_process(word, variables, split=False)[0] if is_set else ""), j
    m = _NAME.match(text, pos + 1)
    if not m:
        return "$", pos + 1
    return variables.get(m.group(0), ""), m.end()


def _process(text: str, variables: Mapping[str, str], *, split: bool, escape: str = "\\") -> list[str]:
    """Docker's word processing: quotes removed, escapes applied, ``$VAR`` expanded, optional splitting."""
    words: list[str] = []
    cur: list[str] = []
    has_word = False
    i = 0
    while i < len(text):
        ch = text[i]
        if split and ch.isspace():
            if has_word:
                words.append("".join(cur))
                cur, has_word = [], False
            i += 1
            continue
        has_word = True
        if ch == escape:
            if i + 1 < len(text):
                cur.append(text[i + 1])
                i += 2
            else:
                cur.append(ch)
                i += 1
        elif ch == "'":
            end = text.find("'", i + 1)
            if end < 0:
                raise DockerfileError(f"unterminated single quote in {text!r}")
            cur.append(text[i + 1 : end])
            i = end + 1
        elif ch == '"':
            i += 1
            while i < len(text) and text[i] != '"':
                if text[i] == escape and i + 1 < len(text) and text[i + 1] in ('"', "$", escape):
                    cur.append(text[i + 1])
                    i += 2
                elif text[i] == "$":
                    value, i = _expand_var(text, i, variables)
                    cur.append(value)
                else:
                    cur.append(text[i])
                    i += 1
            if i >= len(text):
                raise DockerfileError(f"unterminated double quote in {text!r}")
            i += 1
        elif ch == "$":
            value, i = _expand_var(text, i, variables)
            cur.append(value)
        else:
            cur.append(ch)
            i += 1
    if has_word:
        words.append("".join(cur))
    return words if split else ["".join(cur)]


def _exec_form(args: str) -> list[str] | None:
    """Docker treats the arguments as exec form iff they parse as a JSON array of strings."""
    if not args.lstrip().startswith("["):
        return None
    try:
        value = json.loads(args)
    except ValueError:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return None
    return value


def parse_dockerfile(text: str, *, build_args: Mapping[str, str] | None = None) -> list[ImageConfig]:
    """Every stage of a Dockerfile, in order, with inheritance between stages applied."""
    build_args = dict(build_args or {})
    global_args: dict[str, str] = {}
    stages: list[ImageConfig] = []
    stage_args: dict[str, str] = {}

    logical, esc = _logical_lines(text)
    for lineno, line in logical:
        instruction, _, args = line.partition(" ")
        instruction, args = instruction.upper(), args.strip()
        if instruction == "FROM":
            words = [w for w in _process(args, global_args, split=True, escape=esc) if not w.startswith("--")]
            if len(words) not in (1, 3) or (len(words) == 3 and words[1].lower() != "as"):
                raise DockerfileError(f"line {lineno}: cannot parse FROM {args!r}")
            base = words[0]
            name = words[2].lower() if len(words) == 3 else None
            parent = next((s for s in reversed(stages) if s.name is not None and s.name == base.lower()), None)
            if parent is not None:
                stage = copy.deepcopy(parent)
                stage.name, stage.index, stage.base, stage.cmd_set_in_stage = name, len(stages), base, False
            else:
                stage = ImageConfig(name=name, index=len(stages), base=base)
            stages.append(stage)
            stage_args = {}
            continue
        if instruction == "ARG":
            for word in _process(args, {**global_args, **stage_args}, split=True, escape=esc):
                key, eq, default = word.partition("=")
                if not stages:
                    global_args[key] = build_args.get(key, default if eq else global_args.get(key, ""))
                else:
                    stage_args[key] = build_args.get(key, default if eq else global_args.get(key, ""))
            continue
        if not stages:
            if instruction == "ONBUILD":
                continue
            raise DockerfileError(f"line {lineno}: {instruction} before the first FROM")
        stage = stages[-1]
        variables = {**stage_args, **stage.env}  # ENV wins over ARG, as in Docker
        if instruction == "ENV":
            first = args.split(None, 1)
            if "=" not in first[0]:  # legacy form: ENV KEY the rest of the line
                if len(first) != 2:
                    raise DockerfileError(f"line {lineno}: ENV {args!r} has no value")
                stage.env[first[0]] = _process(first[1], variables, split=False, escape=esc)[0]
            else:
                for word in _process(args, variables, split=True, escape=esc):
                    key, eq, value = word.partition("=")
                    if not eq:
                        raise DockerfileError(f"line {lineno}: ENV word {word!r} is not KEY=VALUE")
                    stage.env[key] = value
        elif instruction == "WORKDIR":
            path = _process(args, variables, split=False, escape=esc)[0]
            stage.workdir = path if path.startswith("/") else os.path.join(stage.workdir or "/", path)
        elif instruction in ("ENTRYPOINT", "CMD"):
            parsed = _exec_form(args)
            value: list[str] | ShellForm = parsed if parsed is not None else ShellForm(instruction, args, lineno)
            if instruction == "CMD":
                stage.cmd, stage.cmd_set_in_stage = value, True
            else:
                stage.entrypoint = value
                if not stage.cmd_set_in_stage:
                    stage.cmd = None  # Docker: ENTRYPOINT resets an inherited CMD
    if not stages:
        raise DockerfileError("no FROM instruction")
    return stages


def image_config_from_text(
    text: str, *, target: str | None = None, build_args: Mapping[str, str] | None = None
) -> ImageConfig:
    """The config of the final stage, or of stage ``target`` (like ``docker build --target``)."""
    stages = parse_dockerfile(text, build_args=build_args)
    if target is None:
        return stages[-1]
    for stage in stages:
        if stage.name == target.lower():
            return stage
    raise DockerfileError(f"no stage named {target!r} (stages: {[s.name for s in stages]})")


def image_config(
    dockerfile: Path, *, target: str | None = None, build_args: Mapping[str, str] | None = None
) -> ImageConfig:
    return image_config_from_text(Path(dockerfile).read_text(encoding="utf-8"), target=target, build_args=build_args)


def dockerfile_command(dockerfile: Path, *, target: str | None = None) -> list[str]:
    """ENTRYPOINT + CMD (exec form) of the image the Dockerfile builds, e.g. ``["python", "-m", ...]``."""
    return image_config(dockerfile, target=target).command


def dockerfile_env(dockerfile: Path, *, target: str | None = None) -> dict[str, str]:
    """The image's ``ENV`` variables (final stage, inherited stages included). WORKDIR: see below."""
    return dict(image_config(dockerfile, target=target).env)


def dockerfile_workdir(dockerfile: Path, *, target: str | None = None) -> str | None:
    """The image's ``WORKDIR`` (None if only an external base image could have set it)."""
    return image_config(dockerfile, target=target).workdir


# ---------------------------------------------------------------------------------------------------
# The function process
# ---------------------------------------------------------------------------------------------------

_PYTHON_NAME = re.compile(r"python(3(\.\d+)?)?")
# Inherited variables that would change how awslambdaric behaves (multi-concurrency, telemetry fd,
# thread polling...) must come from the test, never leak in from whoever runs pytest.
_LAMBDA_ONLY_PREFIXES = ("AWS_LAMBDA_", "_LAMBDA_", "_X_AMZN_", "AWS_EXECUTION_ENV", "_HANDLER", "LAMBDA_")


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


class LambdaProcess:
    """The image's command running locally against a :class:`RuntimeAPI`; use as a context manager.

    ``argv`` is the container command (typically :func:`dockerfile_command`). A bare ``python`` /
    ``python3`` is replaced by this interpreter so the venv's packages are used. The environment is
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
        self.argv = [sys.executable if _PYTHON_NAME.fullmatch(argv[0]) else argv[0], *argv[1:]]
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
    "DockerfileError",
    "ImageConfig",
    "LambdaProcess",
    "RuntimeExitedError",
    "ShellForm",
    "dockerfile_command",
    "dockerfile_env",
    "dockerfile_workdir",
    "image_config",
    "image_config_from_text",
    "lambda_session",
    "parse_dockerfile",
]
