"""The Lambda memory an export needs, known before deploy (no TensorFlow: reads file sizes and the card).

Why: a model that does not fit dies out of memory on its first cold start, and nothing said so before.
The function's peak RSS grows with the bytes of its weights on disk (``variables/``), which the split
graph (``serving_parts_2``, one encoder copy per core) makes larger. Measured with ``bench/shapes.py``
(random weights, every catalogue shape, split and ``--no-split``; table in docs/deploy.md), the peak
RSS after one-text and bulk requests is ``BASE_MB + FACTOR * weights_mb`` within 6 % (measured 975 MB for
MiniLM, 1,656 MB for BERT-base, 3,107 MB for BERT-large, all with the split graph); the function needs that
plus a margin for Lambda's own processes and the page cache (``MARGIN``), rounded up to 64 MB.

The image build runs it on the model it just exported (function/Dockerfile):

    python -m bert2vec.export.sizing /opt/model --memory-size 2048

prints one line and exits 1 when the model needs more than ``--memory-size`` (the template's
``MemorySize``), naming the value to pass; ``--split-pays`` instead answers whether a function of that
size should keep the split graph (exit 0) or be exported with ``--no-split`` (exit 3).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

MB = 2**20
BASE_MB = 900.0  # TensorFlow, the runtime, the tokenizer and a request's working set
FACTOR = 1.2  # peak RSS per MB of weights on disk (fit over bench/shapes.py: MiniLM to BERT-large)
MARGIN = 1.15
ONE_VCPU_MB = 1769  # Lambda: 1,769 MB = one vCPU; below it the split graph never runs
NO_SPLIT_RATIO = 0.66  # variables/ without the split graph, over with it (BERT-large: 1,283 / 1,957 MB)
LAMBDA_MIN_MB, LAMBDA_MAX_MB = 128, 10240
PRICE_GB_S = 0.0000166667  # x86_64 on-demand, first tier (arm64: 0.0000133334)


def weights_mb(model_dir: Path | str) -> float:
    variables = Path(model_dir) / "variables"
    return sum(p.stat().st_size for p in variables.rglob("*") if p.is_file()) / MB


def _card(model_dir: Path | str) -> dict:
    try:
        return json.loads((Path(model_dir) / "model_card.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def has_split(model_dir: Path | str) -> bool:
    return bool(_card(model_dir).get("split_parts"))


def memory_for(weights: float) -> int:
    """The MemorySize (MB, a multiple of 64, within Lambda's range) for ``weights`` MB on disk."""
    need = (BASE_MB + FACTOR * weights) * MARGIN
    return int(min(max(math.ceil(need / 64) * 64, LAMBDA_MIN_MB), LAMBDA_MAX_MB + 64))


def required_memory_mb(model_dir: Path | str) -> int:
    return memory_for(weights_mb(model_dir))


def required_without_split_mb(model_dir: Path | str) -> int:
    w = weights_mb(model_dir)
    return memory_for(w * NO_SPLIT_RATIO if has_split(model_dir) else w)


def split_pays(model_dir: Path | str, memory_size: int) -> bool:
    """Keep the split graph only for 2+ vCPUs and when it fits in ``memory_size`` (else --no-split)."""
    if not has_split(model_dir):
        return False
    return memory_size > ONE_VCPU_MB and required_memory_mb(model_dir) <= memory_size


def lambda_cost_per_million(memory_mb: int, seconds_per_text: float, price_gb_s: float = PRICE_GB_S) -> float:
    """$ per million texts: GB-seconds at ``memory_mb`` for the compute alone (requests not counted)."""
    return memory_mb / 1024 * seconds_per_text * price_gb_s * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bert2vec.export.sizing", description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--memory-size", type=int, required=True, help="the function's MemorySize in MB")
    parser.add_argument("--bulk-memory-size", type=int, help="the bulk functions' BulkMemorySize in MB")
    parser.add_argument("--split-pays", action="store_true", help="exit 0 to keep the split graph, 3 for --no-split")
    args = parser.parse_args(argv)
    name = _card(args.model_dir).get("name", str(args.model_dir))
    if args.split_pays:  # exit 3 only when there is a split graph to leave out
        if not has_split(args.model_dir) or split_pays(args.model_dir, args.memory_size):
            return 0
        why = "one vCPU" if args.memory_size <= ONE_VCPU_MB else "the split graph does not fit"
        print(f"bert2vec: {name}: exporting again with --no-split for MemorySize {args.memory_size} ({why})")
        return 3
    need = required_memory_mb(args.model_dir)
    if need > LAMBDA_MAX_MB:
        print(f"bert2vec: {name} needs about {need} MB, more than Lambda's {LAMBDA_MAX_MB} MB: "
              f"export it with --no-split or a shorter --max-seq-length, or choose a smaller model")  # fmt: skip
        return 1
    sizes = {"MemorySize": args.memory_size, "BulkMemorySize": args.bulk_memory_size}
    short = [f"{param}={need}" for param, size in sizes.items() if size is not None and size < need]
    if short:
        given = ", ".join(f"{param} {size}" for param, size in sizes.items() if size is not None)
        print(f"bert2vec: {name} needs {need} MB (weights {weights_mb(args.model_dir):,.0f} MB) and the build "
              f"has {given}: pass --parameter-overrides {' '.join(short)}")  # fmt: skip
        return 1
    print(f"bert2vec: {name} needs {need} MB; MemorySize {args.memory_size} fits")
    return 0


if __name__ == "__main__":
    sys.exit(main())
