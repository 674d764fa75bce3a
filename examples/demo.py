"""``make run``'s first step: encode a sample with the exported model through the Python API."""

from __future__ import annotations

import argparse
import json
import sys
import time

SAMPLE = "I enjoy taking long walks along the beach with my dog."


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m examples.demo")
    p.add_argument("--model", default=None, help="exported model directory (default: $MODEL_DIR or build/model)")
    p.add_argument("text", nargs="*", default=[SAMPLE])
    args = p.parse_args(argv)

    from bert2vec import Encoder
    from function.errors import Bert2VecError

    t0 = time.perf_counter()
    try:
        encoder = Encoder.load(args.model)
    except Bert2VecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    t1 = time.perf_counter()
    result = encoder.encode(args.text)
    t2 = time.perf_counter()
    for text, vec, count in zip(args.text, result.embeddings, result.token_counts, strict=True):
        print(json.dumps({"text": text, "model": encoder.name, "dimension": len(vec), "token_count": int(count),
                          "vector": [round(float(x), 6) for x in vec]}))
    print(f"# model {encoder.name} ({encoder.vector_length}-d, pooling={encoder.card['pooling']}, "
          f"normalize={encoder.card['normalize']}); load {t1 - t0:.2f} s, first encode {t2 - t1:.3f} s",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
