"""The function image under Lambda's constraints, next to the same function as a bare process.

    .venv/bin/python -m bench.container [--image bert2vec:local] [--model build/model] [--n 200] [--json FILE]

What a user asks before deploying the image, each figure beside the bare process's, so the
container's own cost is visible:

- image size: real (``docker image inspect``) and per layer (``docker history``);
- init: start → first ``/next`` poll (on-demand) and start → ``restore/next`` (SnapStart's snapshot
  point); for the container, "start" is ``docker run`` (container creation included);
- first invoke after init, and the p50 of ``--n`` direct invokes of one text;
- peak memory: the container's cgroup (``memory.peak`` / ``memory.max_usage_in_bytes``: the
  process's memory *plus* the page cache of the files it read) vs the bare process's peak RSS, and
  the function process's own peak RSS in both (the container's PID 1 read from the host's /proc).

The container runs as ``make image-test`` runs it (``tests/image/container.py``: read-only root,
``/tmp`` only, uid 993, the template's ``MemorySize`` and its vCPU share); the bare process is the
Dockerfile's command in this venv (``tests/e2e/harness.py``) with the same CPU share unset — it sees
the whole machine's quota, as ``bench/function_latency.py`` does. Prints a markdown table and exits
0 with one line when Docker or the image is missing. Measure on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from tests.e2e.harness import LambdaProcess, dockerfile_command, dockerfile_env, lambda_session
from tests.e2e.runtime_api import RuntimeAPI
from tests.image.container import (
    container_session,
    docker,
    docker_unavailable,
    image_name,
    template_memory_mb,
    vcpu_share,
)

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "function" / "Dockerfile"
TEXT = "I enjoy taking long walks along the beach with my dog."
Session = Callable[..., AbstractContextManager[tuple[RuntimeAPI, LambdaProcess]]]


def _peak_mb(process: LambdaProcess) -> float:
    peak = getattr(process, "peak_memory_mb", None)
    return peak() if peak is not None else process.peak_rss_mb()


def image_layers(image: str) -> tuple[float, list[tuple[float, str]]]:
    """(image MB, [(layer MB, the instruction that made it)]) — empty layers left out."""
    size = int(docker("image", "inspect", "--format", "{{.Size}}", image).stdout.strip()) / 1e6
    rows = []
    out = docker("history", "--no-trunc", "--format", "{{json .}}", image).stdout
    for line in out.splitlines():
        layer = json.loads(line)
        mb = _parse_size(layer["Size"])
        if mb > 0.05:
            made_by = " ".join(layer["CreatedBy"].replace("/bin/sh -c #(nop) ", "").split())[:110]
            rows.append((mb, made_by or "the base image (python:3.11-slim-bookworm or its stand-in)"))
    return size, list(reversed(rows))


def _parse_size(text: str) -> float:
    units = {"B": 1e-6, "kB": 1e-3, "KB": 1e-3, "MB": 1.0, "GB": 1e3}
    number = text.rstrip("kKMGB")
    return float(number) * units.get(text[len(number):], float("nan"))


def on_demand(session: Session, n: int, **kwargs: Any) -> dict[str, float]:
    with session(ready_timeout=300, **kwargs) as (runtime, process):
        init_s = process.init_s or float("nan")
        first = runtime.invoke({"text": TEXT}, timeout=120).elapsed_s
        warm = [runtime.invoke({"text": TEXT}).elapsed_s * 1e3 for _ in range(n)]
        peak = _peak_mb(process)
        rss = process.peak_rss_mb()
    return {"init_s": init_s, "first_ms": first * 1e3, "p50_ms": statistics.median(warm), "peak_mb": peak,
            "peak_rss_mb": rss}  # fmt: skip


def snap_start(session: Session, **kwargs: Any) -> dict[str, float]:
    env = {**kwargs.pop("env", {}), "AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start"}
    with session(ready_timeout=None, env=env, **kwargs) as (runtime, process):
        assert runtime.wait_for_snapshot(300), process.output_tail()
        to_snapshot = time.monotonic() - (process.started_at or 0.0)
        runtime.restore()
        assert runtime.wait_for_next(60), process.output_tail()
        first = runtime.invoke({"text": TEXT}, timeout=120).elapsed_s
    return {"snapshot_s": to_snapshot, "first_after_restore_ms": first * 1e3}


def _bare_session(model: Path) -> Session:
    env = dockerfile_env(DOCKERFILE) | {"MODEL_DIR": str(model.resolve()), "LAMBDA_TASK_ROOT": str(REPO)}

    def session(**kwargs: Any) -> AbstractContextManager[tuple[RuntimeAPI, LambdaProcess]]:
        return lambda_session(dockerfile_command(DOCKERFILE), cwd=REPO, env=env | kwargs.pop("env", {}), **kwargs)

    return session


def _container_session(image: str, memory_mb: int) -> Session:
    def session(**kwargs: Any) -> AbstractContextManager[tuple[RuntimeAPI, LambdaProcess]]:
        return container_session(image, memory_mb=memory_mb, **kwargs)

    return session


def measure(image: str, model: Path, n: int) -> dict[str, Any]:
    memory_mb = template_memory_mb("MemorySize")
    size, layers = image_layers(image)
    result: dict[str, Any] = {"image": image, "memory_mb": memory_mb, "cpus": vcpu_share(memory_mb),
                              "image_mb": size, "layers": layers}  # fmt: skip
    for name, session in (("container", _container_session(image, memory_mb)), ("bare", _bare_session(model))):
        result[name] = on_demand(session, n) | snap_start(session)
    return result


def render(r: dict[str, Any], n: int) -> str:
    c, b = r["container"], r["bare"]
    rows = [
        ("init: start → first `/next` poll (on-demand)", f"{c['init_s']:.2f} s", f"{b['init_s']:.2f} s"),
        ("SnapStart: start → snapshot point (`restore/next`)", f"{c['snapshot_s']:.2f} s", f"{b['snapshot_s']:.2f} s"),
        ("first invoke after init (1 text, direct)", f"{c['first_ms']:.1f} ms", f"{b['first_ms']:.1f} ms"),
        ("first invoke after the restore", f"{c['first_after_restore_ms']:.1f} ms", f"{b['first_after_restore_ms']:.1f} ms"),
        (f"p50 of {n} direct invokes (1 text)", f"{c['p50_ms']:.1f} ms", f"{b['p50_ms']:.1f} ms"),
        ("peak memory (container: cgroup incl. page cache; bare: peak RSS)", f"{c['peak_mb']:.0f} MB", f"{b['peak_mb']:.0f} MB"),
        ("peak RSS of the function process (VmHWM)", f"{c['peak_rss_mb']:.0f} MB", f"{b['peak_rss_mb']:.0f} MB"),
    ]  # fmt: skip
    lines = [
        f"Image `{r['image']}`: {r['image_mb']:.0f} MB. Container: `--read-only --tmpfs /tmp --user 993:993 "
        f"--memory {r['memory_mb']}m --cpus {r['cpus']}` (the template's MemorySize and its vCPU share), "
        "`--network host`; the bare process: the same command in `.venv`, no memory or CPU cap.",
        "", "| measure | container | bare process |", "|---|---|---|",
        *(f"| {k} | {v1} | {v2} |" for k, v1, v2 in rows),
        "", "| layer MB | made by |", "|---|---|",
        *(f"| {mb:.1f} | `{what.replace('|', '/')}` |" for mb, what in r["layers"]),
    ]  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--image", default=image_name())
    p.add_argument("--model", type=Path, default=REPO / "build" / "model", help="the bare process's model")
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    reason = docker_unavailable(args.image)
    if reason is not None:
        print(f"(skipped: {reason})")
        return 0
    result = measure(args.image, args.model, args.n)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(render(result, args.n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
