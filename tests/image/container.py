"""The built function image run the way Lambda runs it, against the tests' Runtime API.

Why: ``tests/e2e`` runs the image's command as a local process; this runs the *image*, so what only
the image can get wrong (a package the trim removed, a file written outside ``/tmp``, the baked model
path, the non-root user, the memory cap) fails here. Lambda's constraints, reproduced with
``docker run``:

* a read-only root file system with a writable ``/tmp`` only (``--read-only --tmpfs /tmp``);
* a non-root uid without a passwd entry (Lambda's sandbox user is 993);
* memory capped at the template's ``MemorySize`` (no swap), CPUs at its vCPU share (1,769 MB = one
  vCPU, never more than this machine has);
* the Runtime API on 127.0.0.1, reached through ``--network host`` (no bridge network, no NAT: the
  machine's network stays as it is).

:class:`ContainerProcess` is a :class:`~tests.e2e.harness.LambdaProcess` whose command is
``docker run``; the Lambda variables go into the container (``-e NAME``, values from the client's
environment, so nothing lands in the process list) and the image's own ``ENV`` (``MODEL_DIR``,
``LAMBDA_TASK_ROOT``, ``PATH``) stays in force unless a test overrides it.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tests.e2e.harness import LambdaProcess, peak_rss_mb
from tests.e2e.runtime_api import RuntimeAPI

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template.yaml"
IMAGE_VAR = "BERT2VEC_IMAGE"
DEFAULT_IMAGE = "bert2vec:local"
LAMBDA_UID = "993:993"
MB_PER_VCPU = 1769
# Kept for the container; every other variable of the harness's environment is Lambda's or the test's.
_HOST_ONLY = {"LAMBDA_TASK_ROOT"}


def image_name() -> str:
    return os.environ.get(IMAGE_VAR, "").strip() or DEFAULT_IMAGE


def docker(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=check)


def docker_unavailable(image: str) -> str | None:
    """Why the image tests cannot run here (one line), or None when they can."""
    try:
        info = docker("info", "--format", "{{.ServerVersion}}", timeout=30, check=False)
    except FileNotFoundError:
        return "Docker is not installed (the docker client is missing)"
    except subprocess.TimeoutExpired:
        return "the Docker engine does not answer"
    if info.returncode != 0:
        return "Docker cannot start: " + (info.stderr.strip().splitlines() or ["no engine"])[-1]
    if docker("image", "inspect", image, check=False).returncode != 0:
        return f"image {image} is not built (`make image`)"
    return None


def template_memory_mb(parameter: str) -> int:
    """The default of a ``*MemorySize`` parameter in template.yaml (what a default deploy gets)."""
    from cfnlint.decode import decode

    template, matches = decode(str(TEMPLATE))
    assert not matches, matches
    return int(template["Parameters"][parameter]["Default"])


def vcpu_share(memory_mb: int) -> float:
    """Lambda's CPU for a memory size, capped at what this machine has (Docker refuses more)."""
    return round(min(memory_mb / MB_PER_VCPU, 6.0, float(os.cpu_count() or 1)), 2)


class ContainerProcess(LambdaProcess):
    """``docker run`` of the image under Lambda's constraints; the harness's waits and output work as-is."""

    def __init__(
        self,
        image: str,
        runtime: RuntimeAPI,
        *,
        command: Sequence[str] = (),
        memory_mb: int,
        env: dict[str, str] | None = None,
        docker_args: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        self.image = image
        self.command = list(command)
        self.docker_args = list(docker_args)
        self.name = f"bert2vec-test-{uuid.uuid4().hex[:12]}"
        self.container_env: dict[str, str] = {}
        handler = self.command[-1] if self.command else "function.app.handler"
        super().__init__(["docker"], runtime, cwd=REPO, env=env, handler=handler, memory_mb=memory_mb,
                         inherit_env=False, **kwargs)  # fmt: skip

    def docker_run_argv(self) -> list[str]:
        names = [arg for name in self.container_env for arg in ("-e", name)]
        return [
            "docker", "run", "--rm", "--name", self.name, "--network", "host",
            "--read-only", "--tmpfs", "/tmp", "--user", LAMBDA_UID,
            "--memory", f"{self.memory_mb}m", "--memory-swap", f"{self.memory_mb}m",
            "--cpus", str(vcpu_share(self.memory_mb)),
            *names, *self.docker_args, self.image, *self.command,
        ]  # fmt: skip

    def start(self) -> ContainerProcess:
        self.container_env = {k: v for k, v in super()._build_env().items() if k not in _HOST_ONLY}
        self.argv = self.docker_run_argv()
        super().start()
        return self

    def _build_env(self) -> dict[str, str]:
        """The docker client's environment: this one, plus the values ``-e NAME`` hands to the container."""
        return {**os.environ, **self.container_env}

    def stop(self, grace: float = 5.0) -> int | None:
        # PID 1 in a container ignores SIGTERM without a handler, and signalling the client does not
        # reach it reliably: remove the container itself.
        if self.proc is not None:
            docker("rm", "--force", self.name, check=False)
        return super().stop(grace)

    def container_id(self) -> str:
        return docker("inspect", "--format", "{{.Id}}", self.name).stdout.strip()

    def peak_rss_mb(self) -> float:
        """The function process's own peak RSS (``VmHWM`` of the container's PID 1, read from the
        host's /proc): comparable with a bare process's, unlike the cgroup figure, which adds the
        page cache of every file the container read (the model, the libraries)."""
        return peak_rss_mb(int(docker("inspect", "--format", "{{.State.Pid}}", self.name).stdout.strip()))

    def peak_memory_mb(self) -> float:
        """The container's peak memory (cgroup v2 ``memory.peak``, v1 ``memory.max_usage_in_bytes``)."""
        cid = self.container_id()
        candidates = [
            Path(f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/memory.peak"),
            Path(f"/sys/fs/cgroup/docker/{cid}/memory.peak"),
            Path(f"/sys/fs/cgroup/memory/docker/{cid}/memory.max_usage_in_bytes"),
            Path(f"/sys/fs/cgroup/memory/system.slice/docker-{cid}.scope/memory.max_usage_in_bytes"),
        ]
        for path in candidates:
            if path.is_file():
                return int(path.read_text().split()[0]) / 2**20
        stats = docker("stats", "--no-stream", "--format", "{{json .}}", self.name).stdout
        usage = json.loads(stats)["MemUsage"].split("/")[0].strip()  # current, not peak: the fallback
        number, unit = float(usage.rstrip("KMGiB")), usage.lstrip("0123456789.")
        return number * {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024, "B": 1 / 2**20}.get(unit, float("nan"))


@contextlib.contextmanager
def container_session(
    image: str,
    *,
    command: Sequence[str] = (),
    memory_mb: int,
    env: dict[str, str] | None = None,
    docker_args: Sequence[str] = (),
    ready_timeout: float | None = 180.0,
    **kwargs: Any,
) -> Iterator[tuple[RuntimeAPI, ContainerProcess]]:
    """A Runtime API and the container attached to it, torn down container first.

    With ``ready_timeout`` set, waits for init to end (the first ``next``); pass None when init is
    expected to fail or the test drives SnapStart's lifecycle itself.
    """
    with RuntimeAPI() as runtime, ContainerProcess(
        image, runtime, command=command, memory_mb=memory_mb, env=env, docker_args=docker_args, **kwargs
    ) as process:
        if ready_timeout is not None:
            process.wait_ready(ready_timeout)
        yield runtime, process
