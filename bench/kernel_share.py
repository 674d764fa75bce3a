"""How much of one text's latency is oneDNN's kernels, and how much is everything around them.

    .venv/bin/python -m bench.kernel_share DIR [--signature serving_parts_2] [--calls 50]

Runs the exported signature the way ``Encoder`` does for one text (one intra-op thread, one
inter-op slot per CPU, called eagerly on this thread) on the benchmark corpus's median text, in a
child process with ``ONEDNN_VERBOSE=1``, and sums the execution time oneDNN itself reports for
every primitive (matmuls, layer norm, softmax, reorders) per call. Beside it: the wall time of the
same call without the trace (a second child, so verbose logging cannot slow it).

Why: at one text the matmuls are small enough that the question is no longer "how fast is the
GEMM" but "what share of the call is GEMM at all". Kernel time is split over the graph's branches,
so ``kernel ms / branches`` is the least the call could take if everything else cost nothing; the
rest of the wall time is TensorFlow's: op dispatch, allocation, the executor's hand-offs between
branches, the eager call.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bert2vec.core.encoder import PARTS_SIGNATURE

CHILD = r"""
import json, os, statistics, sys, time
import tensorflow as tf, tensorflow_text  # noqa: F401
from bert2vec.core.cpu import configure_tensorflow_threads, usable_cpus
from bench.corpus import load_corpus
threads = usable_cpus()
configure_tensorflow_threads(threads)
texts = sorted(load_corpus(2000), key=len)
text = texts[len(texts) // 2]
fn = tf.saved_model.load(sys.argv[1]).signatures[sys.argv[2]]
calls = int(sys.argv[3])
x = tf.constant([text])
for _ in range(30):
    out = fn(x)
sys.stdout.write("@@MARK\n"); sys.stdout.flush()
walls = []
for _ in range(calls):
    t0 = time.perf_counter(); fn(x)["embedding"].numpy(); walls.append(time.perf_counter() - t0)
sys.stdout.flush()
print("@@RESULT " + json.dumps({"wall_ms": statistics.median(walls) * 1e3, "threads": threads,
      "wordpieces": int(out["token_count"].numpy()[0]), "chars": len(text)}))
"""


def _child(model_dir: Path, signature: str, calls: int, verbose: bool) -> str:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    if verbose:
        env["ONEDNN_VERBOSE"] = "1"
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-c", CHILD, str(model_dir), signature, str(calls)], cwd=repo, env=env,
                          capture_output=True, text=True, check=True)  # fmt: skip
    return proc.stdout


def parse_verbose(stdout: str, calls: int) -> dict[str, Any]:
    """Per-call oneDNN execution time by (primitive, implementation, shape), after the warm-up mark."""
    timed = stdout.split("@@MARK", 1)[1]
    per: dict[tuple[str, str, str], list[float]] = collections.defaultdict(lambda: [0.0, 0.0])
    for line in timed.splitlines():
        if not line.startswith("onednn_verbose") or ",exec," not in line:
            continue
        fields = line.split(",")
        i = fields.index("exec")
        key = (fields[i + 2], fields[i + 3] or "-", fields[-2])
        per[key][0] += 1
        per[key][1] += float(fields[-1])
    rows = sorted(
        ({"primitive": k[0], "impl": k[1], "shape": k[2], "per_call": n / calls, "ms": ms / calls} for k, (n, ms) in per.items()),
        key=lambda r: -r["ms"],
    )
    return {"kernel_ms": sum(r["ms"] for r in rows), "rows": rows}


def measure(model_dir: Path, signature: str = "serving_parts_2", calls: int = 50) -> dict[str, Any]:
    kernels = parse_verbose(_child(model_dir, signature, calls, verbose=True), calls)
    plain = _child(model_dir, signature, calls, verbose=False)
    result = json.loads(plain.split("@@RESULT ", 1)[1])
    # Kernels overlap only across a split graph's branches (serving_parts_<n>); the unsplit graph
    # runs each op on one thread (one intra-op thread per op), so its kernels add up on one core.
    parts = PARTS_SIGNATURE.fullmatch(signature)
    branches = int(parts.group(1)) if parts else 1
    return {"model": str(model_dir), "signature": signature, "calls": calls, "branches": min(branches, result["threads"]),
            **result, **kernels}  # fmt: skip


def render(r: dict[str, Any], top: int = 10) -> str:
    floor = r["kernel_ms"] / r["branches"]
    lines = [
        f"{r['signature']} of {r['model']}, the corpus's median text ({r['chars']} characters, {r['wordpieces']} "
        f"wordpieces), {r['threads']} threads, median of {r['calls']} calls:",
        f"  wall {r['wall_ms']:.2f} ms; oneDNN kernels {r['kernel_ms']:.2f} ms in all, {floor:.2f} ms per branch if "
        f"evenly split over {r['branches']}; everything else ≥ {r['wall_ms'] - floor:.2f} ms ({(r['wall_ms'] - floor) / r['wall_ms']:.0%} of the call)",
        f"  {'primitive':<20}{'implementation':<26}{'shape':<28}{'calls':>6}{'ms':>8}",
    ]
    for row in r["rows"][:top]:
        lines.append(f"  {row['primitive']:<20}{row['impl']:<26}{row['shape']:<28}{row['per_call']:>6.0f}{row['ms']:>8.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model_dir", type=Path)
    p.add_argument("--signature", default="serving_parts_2")
    p.add_argument("--calls", type=int, default=50)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    result = measure(args.model_dir, args.signature, args.calls)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    print(render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
