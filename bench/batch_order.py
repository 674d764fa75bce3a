"""Bulk encoding with batches formed by characters (the default) vs by wordpieces (counted first).

    .venv/bin/python -m bench.batch_order DIR [--n 2000] [--rounds 3] [--batch-size 8]

Same corpus, same process, rounds interleaved; the wordpiece variant's time includes counting
(one tokenizer pass over all texts via the model's ``pack`` function). Reports texts/s per round
and the padded wordpieces each ordering runs.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bench import machine
from bench.corpus import load_corpus


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model_dir", type=Path)
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=8)
    args = p.parse_args(argv)
    from bert2vec.core.encoder import Encoder, form_batches, padded_work

    enc = Encoder.load(args.model_dir)
    texts = load_corpus(args.n)
    counts = enc.wordpiece_counts(texts)
    work = {
        "chars": padded_work(form_batches([len(t) for t in texts], args.batch_size), counts, enc.max_seq_length),
        "wordpieces": padded_work(form_batches(counts, args.batch_size), counts, enc.max_seq_length),
    }
    enc.encode(texts, args.batch_size)  # warm every padded shape
    enc.encode(texts, args.batch_size, lengths=counts)
    rates: dict[str, list[float]] = {"chars": [], "wordpieces": []}
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        enc.encode(texts, args.batch_size)
        rates["chars"].append(len(texts) / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        enc.encode(texts, args.batch_size, lengths=enc.wordpiece_counts(texts))
        rates["wordpieces"].append(len(texts) / (time.perf_counter() - t0))
    result = {"cpu": machine.cpu_description(), "texts": len(texts), "padded_wordpieces": work, "texts_per_s": rates}
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
