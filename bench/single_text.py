"""Single-text latency and bulk throughput of exported models, interleaved in one process.

    .venv/bin/python -m bench.single_text NAME=DIR [NAME=DIR ...] [--texts 200] [--rounds 5]
        [--bulk 512] [--batch-size 8] [--signature NAME=SIGNATURE]

Each ``NAME=DIR`` is an exported SavedModel loaded through ``bert2vec.core.encoder.Encoder`` (so the
encoder picks its graph by the CPU quota, as in Lambda); ``--signature NAME=MODEL:SIGNATURE``
adds a single-text-only variant that calls one signature of an already listed model directly
(e.g. ``after-unsplit=after:serving_default``). Rounds are interleaved: in every round each variant, in a
shuffled order, encodes the same real texts one call per text (warm), then one bulk pass of
``--bulk`` texts in batches of ``--batch-size``. Reported: median over rounds of each round's
p50/p90 and bulk texts/s, the range over rounds (the noise), and the CPU that other processes
used meanwhile — other work on the machine slows everything, a split graph most.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import machine
from bench.corpus import load_corpus
from bench.timing import quantile


class _Variant:
    def __init__(self, name: str, encoder: Any, signature: str | None = None) -> None:
        self.name, self.encoder, self.signature = name, encoder, signature
        self.p50: list[float] = []
        self.p90: list[float] = []
        self.bulk: list[float] = []
        self.foreign: list[float] = []

    def one(self, text: str) -> np.ndarray:
        if self.signature is None:
            return self.encoder.encode([text]).embeddings[0]
        import tensorflow as tf

        fn = self.encoder._loaded.signatures[self.signature]
        return fn(text=tf.constant([text]))["embedding"].numpy()[0]

    def many(self, texts: list[str], batch_size: int) -> None:
        self.encoder.encode(texts, batch_size=batch_size)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+", metavar="NAME=DIR")
    p.add_argument("--signature", action="append", default=[], metavar="NAME=MODEL:SIGNATURE")
    p.add_argument("--texts", type=int, default=200)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--bulk", type=int, default=512, help="texts per bulk pass (0 skips bulk)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)

    from bert2vec.core.encoder import Encoder

    variants: list[_Variant] = []
    by_name: dict[str, Any] = {}
    for item in args.models:
        name, _, path = item.partition("=")
        by_name[name] = Encoder.load(path)
        variants.append(_Variant(name, by_name[name]))
    for item in args.signature:
        name, _, sig = item.partition("=")
        base, _, sig = sig.partition(":")
        variants.append(_Variant(name, by_name[base], sig))
    texts = load_corpus(args.texts)
    bulk_texts = load_corpus(args.bulk) if args.bulk else []
    ref = {v.name: np.stack([v.one(t) for t in texts]) for v in variants}  # also the warm-up
    first = ref[variants[0].name]
    rng = random.Random(args.seed)
    for r in range(args.rounds):
        order = variants[:]
        rng.shuffle(order)
        for v in order:
            b0, p0, t0 = machine.busy_ticks(), machine.process_ticks(os.getpid()), time.perf_counter()
            lat = []
            for t in texts:
                s = time.perf_counter()
                v.one(t)
                lat.append(time.perf_counter() - s)
            if bulk_texts and v.signature is None:
                s = time.perf_counter()
                v.many(bulk_texts, args.batch_size)
                v.bulk.append(len(bulk_texts) / (time.perf_counter() - s))
            b1, p1, t1 = machine.busy_ticks(), machine.process_ticks(os.getpid()), time.perf_counter()
            v.p50.append(1e3 * quantile(lat, 0.5))
            v.p90.append(1e3 * quantile(lat, 0.9))
            v.foreign.append(max(0.0, (b1 - b0) - (p1 - p0)) / machine.TICKS / (t1 - t0))
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{v.name} {v.p50[-1]:.2f} ms" for v in variants), flush=True)

    cpu = machine.cpu_description()
    report: dict[str, Any] = {"machine": cpu, "texts": args.texts, "rounds": args.rounds, "bulk": args.bulk,
                              "batch_size": args.batch_size, "variants": {}}  # fmt: skip
    print(f"\n{cpu}\n")
    print("| variant | parts | single p50 (median of rounds) [range] | p90 | bulk texts/s [range] | other processes (cores) | min cos vs first |")
    print("|---|---|---|---|---|---|---|")
    for v in variants:
        cos = np.sum(ref[v.name] * first, axis=1) / (
            np.linalg.norm(ref[v.name], axis=1) * np.linalg.norm(first, axis=1)
        )
        e = {
            "parts": v.encoder.parts if v.signature is None else v.signature,
            "p50_ms": statistics.median(v.p50), "p50_range": [min(v.p50), max(v.p50)],
            "p90_ms": statistics.median(v.p90),
            "bulk_texts_per_s": statistics.median(v.bulk) if v.bulk else None,
            "bulk_range": [min(v.bulk), max(v.bulk)] if v.bulk else None,
            "foreign_cores": statistics.median(v.foreign), "min_cos_vs_first": float(cos.min()),
        }  # fmt: skip
        report["variants"][v.name] = e
        bulk = f"{e['bulk_texts_per_s']:.1f} [{e['bulk_range'][0]:.1f}–{e['bulk_range'][1]:.1f}]" if v.bulk else "–"
        print(f"| {v.name} | {e['parts']} | {e['p50_ms']:.2f} ms [{e['p50_range'][0]:.2f}–{e['p50_range'][1]:.2f}] | "
              f"{e['p90_ms']:.2f} ms | {bulk} | {e['foreign_cores']:.2f} | {e['min_cos_vs_first']:.7f} |")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
