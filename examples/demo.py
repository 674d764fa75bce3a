"""``make run``'s first step: encode a sample with the exported model through the Python API.

What a first look should show: the model, the vector's dimension and its first few values, and
that similar texts get similar vectors (cosine similarity of the sample to a paraphrase and to an
unrelated text). TensorFlow is imported the way the CLIs import it, without its C++ start-up lines.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

SAMPLE = "I enjoy taking long walks along the beach with my dog."
COMPARE = ("A man walks his dog along the shore.", "The quarterly tax report is due on Friday.")
LEADING = 6  # values of the vector shown


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m examples.demo")
    p.add_argument(
        "--model", default=None, help="exported model directory (default: $MODEL_DIR, ./build/model, the user cache)"
    )
    p.add_argument("text", nargs="?", default=SAMPLE, help="the text to encode (default: a sample sentence)")
    p.add_argument("others", nargs="*", default=list(COMPARE), help="texts to compare it with")
    args = p.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from bert2vec.core.tf_quiet import import_tensorflow

    import_tensorflow()  # before anything loads TensorFlow: no absl/oneDNN/CUDA banners
    from bert2vec import Bert2Vec
    from bert2vec.core.errors import Bert2VecError

    t0 = time.perf_counter()
    try:
        encoder = Bert2Vec(args.model).encoder
    except Bert2VecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    loaded = time.perf_counter() - t0
    texts = [args.text, *args.others]
    result = encoder.encode(texts)
    card = encoder.card
    print(f"model {encoder.name}: {encoder.vector_length} dimensions, pooling={card['pooling']}, "
          f"{'L2-normalised' if card['normalize'] else 'not normalised'} (loaded in {loaded:.1f} s)")
    vec = result.embeddings[0]
    lead = ", ".join(f"{x:+.4f}" for x in vec[:LEADING])
    print(f"\n{args.text!r}\n  → [{lead}, …]  ({len(vec)} values, {int(result.token_counts[0])} wordpieces)")
    print("\ncosine similarity to it:")
    for text, other in zip(args.others, result.embeddings[1:], strict=True):
        print(f"  {cosine(vec, other):+.3f}  {text!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
