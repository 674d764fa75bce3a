"""ONNX Runtime doing what ``OVERLONG=chunk`` does, for ``bench/long_text.py``'s comparison.

    .venv-ref/bin/python -m bench.long_text_ort --onnx FILE --hf-dir DIR [--docs 16] [--stride 32]

The same documents (``bench.long_text.corpus``), the same windows: Hugging Face's fast tokenizer
cuts each document with ``max_length`` = max_seq_length and ``stride`` overlapping wordpieces
(the windowing our ``encode_long`` reproduces; tests/golden/make_long_golden.py checks they agree),
windows run through ONNX Runtime in length-sorted batches of 8 across all documents, each window
is mean-pooled over its mask, and a document's vector is the mean of its windows weighted by
their own wordpieces, then L2-normalised. Prints wordpieces/s of the documents (overlap not
counted twice), the figure ``bench/long_text.py`` prints for ours.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from bench.timing import best_of

MAX_SEQ = 256


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.long_text_ort", description=__doc__.split("\n\n")[0])
    p.add_argument("--onnx", required=True)
    p.add_argument("--hf-dir", required=True)
    p.add_argument("--docs", type=int, default=16)
    p.add_argument("--stride", type=int, default=32)
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args()

    import onnxruntime as ort
    from tokenizers import Tokenizer

    from bench.long_text import corpus

    docs, _ = corpus(a.docs)
    tok = Tokenizer.from_file(str(Path(a.hf_dir) / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=MAX_SEQ, stride=a.stride)
    so = ort.SessionOptions()
    so.intra_op_num_threads = len(os.sched_getaffinity(0))
    so.inter_op_num_threads = 1
    session = ort.InferenceSession(a.onnx, so, providers=["CPUExecutionProvider"])
    inputs = {i.name for i in session.get_inputs()}

    def run() -> tuple[np.ndarray, int]:
        windows: list[tuple[int, list[int]]] = []  # (document, ids with [CLS]/[SEP])
        for d, enc in enumerate(tok.encode_batch(docs)):
            for w in [enc, *enc.overflowing]:
                windows.append((d, w.ids))
        order = sorted(range(len(windows)), key=lambda i: len(windows[i][1]))
        sums: np.ndarray | None = None
        weights = np.zeros(len(docs))
        for s in range(0, len(order), 8):
            batch = [windows[i] for i in order[s : s + 8]]
            width = max(len(ids) for _, ids in batch)
            ids = np.zeros((len(batch), width), np.int64)
            mask = np.zeros_like(ids)
            for r, (_, w) in enumerate(batch):
                ids[r, : len(w)], mask[r, : len(w)] = w, 1
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            hidden = session.run(None, {k: v for k, v in feeds.items() if k in inputs})[0]
            m = mask[:, :, None].astype(np.float32)
            pooled = (hidden * m).sum(axis=1) / m.sum(axis=1)
            if sums is None:
                sums = np.zeros((len(docs), pooled.shape[1]), np.float64)
            for r, (d, w) in enumerate(batch):
                own = len(w) - 2
                sums[d] += pooled[r] * own
                weights[d] += own
        assert sums is not None
        vec = sums / weights[:, None]
        vec /= np.linalg.norm(vec, axis=1, keepdims=True)
        return vec.astype(np.float32), len(windows)

    best, (_, n_windows) = best_of(run, a.repeat)
    doc_pieces = sum(len(e.ids) - 2 for e in _whole(tok, docs))
    print(f"onnxruntime {ort.__version__}, intra {so.intra_op_num_threads} threads, stride {a.stride}, best of {a.repeat}")
    print(f"documents, {len(docs)} texts, {doc_pieces} wordpieces, {n_windows} windows: {best:.2f} s, "
          f"{doc_pieces / best:,.0f} wordpieces/s, {n_windows / best:.1f} windows/s")  # fmt: skip
    return 0


def _whole(tok, docs: list[str]):
    """Each document tokenised whole (no truncation), to count its wordpieces once."""
    from tokenizers import Tokenizer

    full = Tokenizer.from_str(tok.to_str())
    full.no_truncation()
    return full.encode_batch(docs)


if __name__ == "__main__":
    raise SystemExit(main())
