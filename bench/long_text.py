"""Long-document throughput: chunk mode (``encode_long``) next to sentence-length text.

    python -m bench.long_text --model DIR [--docs 16] [--repeat 3] [--stride 32]

Documents are whole CPython documentation topics (``pydoc_data.topics``) of 1,000-5,000
wordpieces; sentences are the same text split into sentences of 10-60 words. Both runs encode the
same wordpieces, so the ratio shows what windowing (overlap, the extra [CLS]/[SEP] per window,
full-length attention) costs per wordpiece. Prints wordpieces/s (of the texts, overlaps not
counted twice) and windows/s. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import re

import numpy as np

from bench.timing import best_of


def corpus(n_docs: int) -> tuple[list[str], list[str]]:
    from pydoc_data.topics import topics

    docs = [t for _, t in sorted((len(t), t) for t in topics.values() if 4_600 <= len(t) <= 20_000)][:n_docs]
    sentences = [
        s.strip()
        for d in docs
        for s in re.split(r"(?<=[.!?])\s+", re.sub(r"\s+", " ", d))
        if 10 <= len(s.split()) <= 60
    ]
    return docs, sentences


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.long_text", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, metavar="DIR", help="exported model directory")
    parser.add_argument("--docs", type=int, default=16, help="documents (default %(default)s)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs, best kept (default %(default)s)")
    parser.add_argument("--stride", type=int, default=None, help="window overlap (default: the serving default)")
    args = parser.parse_args()

    from bert2vec.core.tf_quiet import import_tensorflow

    import_tensorflow()
    from bert2vec.core.encoder import Encoder
    from bert2vec.core.long_text import LongTextEncoder, check_stride

    encoder = Encoder.load(args.model)
    long = LongTextEncoder(encoder)
    long.require()
    stride = check_stride(args.stride, encoder.max_seq_length)
    docs, sentences = corpus(args.docs)

    t_doc, res = best_of(lambda: long.encode(docs, stride=stride), args.repeat)
    doc_pieces = int((res.token_counts - 2).sum())
    windows = int(res.chunks.sum())
    t_sent, sres = best_of(lambda: encoder.encode(sentences), args.repeat)
    sent_pieces = int((np.minimum(sres.token_counts, encoder.max_seq_length) - 2).sum())

    print(f"model {encoder.name} (max_seq_length {encoder.max_seq_length}), stride {stride}, "
          f"workers {encoder.workers}, best of {args.repeat}")  # fmt: skip
    print(f"{'input':<34}{'texts':>7}{'wordpieces':>12}{'seconds':>9}{'wordpieces/s':>14}{'windows/s':>11}")
    print(f"{'documents, chunk (encode_long)':<34}{len(docs):>7}{doc_pieces:>12}{t_doc:>9.2f}"
          f"{doc_pieces / t_doc:>14,.0f}{windows / t_doc:>11.1f}")  # fmt: skip
    print(f"{'sentences (serving_default)':<34}{len(sentences):>7}{sent_pieces:>12}{t_sent:>9.2f}"
          f"{sent_pieces / t_sent:>14,.0f}{'':>11}")  # fmt: skip
    print(f"chunk mode reads {doc_pieces / t_doc / (sent_pieces / t_sent):.2f}x the wordpieces/s of sentences")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
