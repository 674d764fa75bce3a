"""Cold start and warm latency of the encode function, through the real awslambdaric process.

Runs the Dockerfile's exact command against the test suite's local Runtime API (no Docker here),
so the numbers include awslambdaric's polling loop and the JSON envelope, like a Lambda would.

    .venv/bin/python -m bench.function_latency --model build/model [--n 200]

Prints a markdown table. Measure on a quiet machine: a second busy process halves the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.timing import quantile
from tests.e2e.harness import dockerfile_command, dockerfile_env, lambda_session

REPO = Path(__file__).resolve().parents[1]
TEXT = "I enjoy taking long walks along the beach with my dog."


def _import_seconds(modules: str, repeat: int = 3) -> float:
    """Best-of-N wall time of a fresh interpreter importing ``modules`` (minus bare startup)."""

    def run(code: str) -> float:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        return time.perf_counter() - t0

    bare = min(run("pass") for _ in range(repeat))
    return min(run(f"import {modules}") for _ in range(repeat)) - bare


def _imported_after_s(modules: str, env: dict[str, str]) -> float:
    """Seconds from starting a fresh interpreter until it has imported ``modules`` — the same start
    point as init's, and the same environment (the Dockerfile's). Interpreter shutdown is not
    counted: the process prints a line once imported and is then killed, since TensorFlow's exit
    alone takes ~0.5-1 s, which a wall time to exit would add to the reference."""
    code = f"import sys, {modules}; sys.stdout.write('imported\\n'); sys.stdout.flush(); sys.stdin.read()"
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        elapsed = time.perf_counter() - t0
        if line.strip() != "imported":
            raise RuntimeError(f"importing {modules} failed")
        return elapsed
    finally:
        proc.kill()
        proc.wait()


def init_versus_import(command: list[str], env: dict[str, str], rounds: int) -> dict[str, float]:
    """On-demand init (process start → first ``/next`` poll through awslambdaric) and the bare
    ``import tensorflow, tensorflow_text`` (process start → imported), interleaved over ``rounds``
    fresh processes each; medians, and the median of the per-round differences."""
    inits, imports, loads, warms, tf_in = [], [], [], [], []
    for _ in range(rounds):
        imports.append(_imported_after_s("tensorflow, tensorflow_text", env))
        with lambda_session(command, cwd=REPO, env=env, ready_timeout=120) as (_, proc):
            inits.append(proc.init_s)
            ready = proc.model_ready(timeout=5)
        loads.append(ready["load_s"])
        warms.append(ready["warmup_s"])
        tf_in.append(ready["import_tf_s"])
    med = statistics.median
    return {"init_s": med(inits), "import_s": med(imports), "over_import_s": med([i - b for i, b in zip(inits, imports, strict=True)]),
            "load_s": med(loads), "warmup_s": med(warms), "import_tf_in_process_s": med(tf_in),
            "init_range": (min(inits), max(inits)), "import_range": (min(imports), max(imports)), "rounds": rounds}  # fmt: skip


def _memory_split_mb(pid: int) -> dict[str, float]:
    """RSS split into anonymous and file-backed pages (``/proc/<pid>/smaps_rollup``), in MB.

    A SnapStart restore pages the snapshot's memory back in: anonymous pages (the heap: weights,
    TensorFlow's state) come from the snapshot; file-backed pages (shared libraries, the mapped
    model files) too, but they compress and dedupe well. This is what a restore has to bring back.
    """
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1].isdigit():
            fields[parts[0].rstrip(":")] = int(parts[1]) / 1024
    rss, anon = fields.get("Rss", float("nan")), fields.get("Anonymous", float("nan"))
    return {"rss": rss, "anonymous": anon, "file_backed": rss - anon}


def snapstart(env: dict[str, str], dockerfile: Path) -> list[tuple[str, str]]:
    """Init as SnapStart runs it, the memory a snapshot would hold, and restore-to-serving locally.

    Honest limits: no process checkpoint tool works in these VMs, so no real restore is measured;
    "after restore" here is the after-restore hooks plus the first invoke in the *same* process,
    i.e. everything except paging the snapshot back in.
    """
    env = env | {"AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start"}
    with lambda_session(dockerfile_command(dockerfile), cwd=REPO, env=env, ready_timeout=None) as (runtime, proc):
        t0 = time.monotonic()
        assert runtime.wait_for_snapshot(300), proc.output_tail()
        to_snapshot = time.monotonic() - (proc.started_at or t0)
        memory = _memory_split_mb(proc.pid)
        t1 = time.monotonic()
        runtime.restore()
        assert runtime.wait_for_next(60), proc.output_tail()
        restored = time.monotonic() - t1
        first = runtime.invoke({"text": TEXT}).elapsed_s
        proc.wait_for_output('"after_restore"', timeout=10)
        hooks = {}
        for line in proc.stdout_tail(600).splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and record.get("hook"):
                hooks[record["hook"]] = float(record["seconds"])
    return [
        ("SnapStart: process start → snapshot point (init + before-snapshot warm-up)", f"{to_snapshot:.2f} s (billed once per published version, not per cold start)"),
        ("  of which: before-snapshot warm-up at every shape", f"{hooks.get('before_snapshot', float('nan')):.2f} s"),
        ("SnapStart: RSS at snapshot time (anonymous / file-backed)", f"{memory['rss']:.0f} MB ({memory['anonymous']:.0f} / {memory['file_backed']:.0f} MB)"),
        ("SnapStart: restore answered → polling for invokes (after-restore hooks)", f"{restored * 1e3:.0f} ms (hook {hooks.get('after_restore', float('nan')) * 1e3:.1f} ms); estimate, excludes paging the snapshot in"),
        ("SnapStart: first invoke after the restore", f"{first * 1e3:.1f} ms"),
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(REPO / "build" / "model"))
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--init-rounds", type=int, default=5, help="fresh processes for init vs bare import")
    args = p.parse_args(argv)

    dockerfile = REPO / "function" / "Dockerfile"
    env = dockerfile_env(dockerfile) | {"MODEL_DIR": str(Path(args.model).resolve()), "LAMBDA_TASK_ROOT": str(REPO)}
    env["POWERTOOLS_LOG_LEVEL"] = "INFO"
    event_v2 = json.loads((REPO / "events" / "api_gateway_v2_encode.json").read_text())
    event_v2["body"] = json.dumps({"text": TEXT})

    rows: list[tuple[str, str]] = []
    cold = init_versus_import(dockerfile_command(dockerfile), env, args.init_rounds)
    with lambda_session(dockerfile_command(dockerfile), cwd=REPO, env=env, ready_timeout=120) as (runtime, proc):
        init_s = proc.init_s
        ready = proc.model_ready(timeout=5)
        first = runtime.invoke({"text": TEXT}).elapsed_s
        direct = [runtime.invoke({"text": TEXT}).elapsed_s * 1e3 for _ in range(args.n)]
        http = [runtime.invoke(event_v2).elapsed_s * 1e3 for _ in range(args.n)]
        batch = [runtime.invoke({"texts": [TEXT] * 32}).elapsed_s * 1e3 for _ in range(max(10, args.n // 10))]
        rss = proc.peak_rss_mb()

    rows_snap = snapstart(env, dockerfile)
    tf_import = _import_seconds("tensorflow, tensorflow_text")
    pt_import = _import_seconds(
        "aws_lambda_powertools.event_handler, aws_lambda_powertools.logging, aws_lambda_powertools.metrics"
    )
    rows += [
        (f"on-demand init: process start → first `/next` poll, median of {cold['rounds']} fresh processes",
         f"{cold['init_s']:.2f} s [{cold['init_range'][0]:.2f}–{cold['init_range'][1]:.2f}]"),
        ("bare `import tensorflow, tensorflow_text`: process start → imported (exit not counted), interleaved",
         f"{cold['import_s']:.2f} s [{cold['import_range'][0]:.2f}–{cold['import_range'][1]:.2f}]"),
        ("init − bare import (median of the per-round differences; target ≤ 1.0 s)", f"{cold['over_import_s']:.2f} s"),
        ("  of which (medians): load SavedModel / warm-up call",
         f"{cold['load_s']:.2f} / {cold['warmup_s']:.2f} s (TensorFlow imported in-process in {cold['import_tf_in_process_s']:.2f} s)"),
        ("init of the latency session below", f"{init_s:.2f} s (bare import to exit, minus an empty interpreter: {tf_import:.2f} s)"),
        ("Powertools import (event_handler+logging+metrics)", f"{pt_import * 1e3:.0f} ms"),
        ("first invoke after init", f"{first * 1e3:.1f} ms"),
        (f"direct invoke, 1 text, p50 / p99 (n={args.n})", f"{statistics.median(direct):.1f} / {quantile(direct, 0.99):.1f} ms"),
        (f"HTTP API v2 event, 1 text, p50 / p99 (n={args.n})", f"{statistics.median(http):.1f} / {quantile(http, 0.99):.1f} ms"),
        ("direct invoke, 32 texts, p50", f"{statistics.median(batch):.1f} ms"),
        ("peak RSS of the function process", f"{rss:.0f} MB"),
        *rows_snap,
    ]
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())  # fmt: skip
    print(f"Machine: {cpu}, {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"threads used by TF: {ready.get('threads')}; model {Path(args.model).name}")
    print("\n| measure | value |\n|---|---|")
    for k, v in rows:
        print(f"| {k} | {v} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
