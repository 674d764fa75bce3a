"""The request budget against a hostile mix, beside an honest request, on one core.

    python -m bench.request_budget [--model DIR] [--cpu 0] [--repeat 3] [--bulk 2000] [--json OUT]

(a smoke run of the script itself: ``MAX_REQUEST_TOKENS=2048 ... --groups 2 --repeat 1 --bulk 50``)

The hostile mix: 232 texts of 88 characters; in every 8, one Hangul text of 260 wordpieces and
seven ``"a" + 87 spaces`` (3 wordpieces). It counts 8,033 wordpieces (each text at most 256), but
batched by characters every batch of 8 pads to 256: 59,392 wordpieces run. The budget now prices
batches as the encoder forms them, so the service refuses that request (413); this script times

* the mix as it ran before (``Encoder.encode`` batching by characters: the unpriced work),
* the service refusing it (tokenizer pass only),
* the largest hostile mix the service accepts (at the budget, batched by wordpieces),
* an honest request at the budget: 32 English paragraphs of 256 wordpieces,

and, with ``--bulk N``, bulk throughput on N texts of the benchmark corpus batched by characters
vs by wordpieces (counted with the model's ``pack`` tokenizer, whose cost is included).

It pins itself to one core (``--cpu``; ``taskset -c 0`` does the same) before TensorFlow starts.
Run it on a quiet machine; docs/http-api.md ("Request budget") quotes its figures.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from bench.timing import best_of

HANGUL_260 = "각" * 29 + " " + "각" * 29 + " " + "각" * 28  # 88 characters, 260 wordpieces
SPACES_3 = "a" + " " * 87  # 88 characters, 3 wordpieces
ENGLISH_256 = "serverless embeddings on lambda " * 80  # well over 256 wordpieces: cut to 256


def hostile_mix(groups: int) -> list[str]:
    return [HANGUL_260 if i % 8 == 0 else SPACES_3 for i in range(8 * groups)]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.request_budget", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, metavar="DIR", help="exported model (default: $MODEL_DIR or build/model)")
    parser.add_argument("--cpu", type=int, default=0, help="the one core to run on (default %(default)s)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per request, best kept (default %(default)s)")
    parser.add_argument("--bulk", type=int, default=0, metavar="N", help="also time bulk batching on N corpus texts")
    parser.add_argument("--json", default=None, metavar="OUT", help="also write the figures as JSON")
    parser.add_argument("--groups", type=int, default=29, help="hostile mix: groups of 8 texts (default %(default)s = 232 texts)")
    args = parser.parse_args()

    os.sched_setaffinity(0, {args.cpu})  # before TensorFlow sizes its pools
    os.environ["TF_NUM_THREADS"] = "1"
    from bert2vec.core.tf_quiet import import_tensorflow

    import_tensorflow()
    from bert2vec.core.encoder import Encoder, form_batches, padded_work
    from bert2vec.core.errors import RequestTooLargeError
    from bert2vec.http.service import EncodeRequest, EncodeService, Limits

    encoder = Encoder.load(args.model, workers=1)
    service = EncodeService(encoder, Limits.from_env())  # MAX_REQUEST_TOKENS etc. as the function reads them
    cap, budget = encoder.max_seq_length, service.limits.max_request_tokens
    rows: list[dict[str, Any]] = []

    def row(name: str, texts: list[str], seconds: float, wordpieces: int, outcome: str) -> None:
        rows.append({"request": name, "texts": len(texts), "wordpieces_run": wordpieces, "seconds": round(seconds, 3),
                     "wordpieces_per_s": round(wordpieces / seconds) if wordpieces else None, "outcome": outcome})  # fmt: skip

    counts = service.tokenizer.counts
    mix = hostile_mix(args.groups)
    mix_counts = counts(mix).tolist()
    old_work = padded_work(form_batches([len(t) for t in mix]), mix_counts, cap)
    seconds, _ = best_of(lambda: encoder.encode(mix, lengths=[len(t) for t in mix]), args.repeat)
    row("hostile mix, batched by characters (before the fix: accepted)", mix, seconds, old_work, "200 (then)")

    def refuse() -> str:
        try:
            service.encode(EncodeRequest(mix))
        except RequestTooLargeError as exc:
            return str(exc)
        raise AssertionError("the hostile mix was accepted")

    seconds, message = best_of(refuse, args.repeat)
    row("hostile mix, through the service now", mix, seconds, 0, "413: " + message[:60] + "...")

    groups = max(g for g in range(1, args.groups + 1) if padded_work(form_batches(c := counts(hostile_mix(g)).tolist()), c, cap) <= budget)
    accepted = hostile_mix(groups)
    work = padded_work(form_batches(c := counts(accepted).tolist()), c, cap)
    seconds, _ = best_of(lambda: service.encode(EncodeRequest(accepted)), args.repeat)
    row(f"largest hostile mix accepted ({groups} x 8 texts)", accepted, seconds, work, "200")

    honest = [f"{i} {ENGLISH_256}" for i in range(budget // cap)]
    work = padded_work(form_batches(c := counts(honest).tolist()), c, cap)
    seconds, _ = best_of(lambda: service.encode(EncodeRequest(honest)), args.repeat)
    row(f"honest: {len(honest)} English paragraphs at max_seq_length", honest, seconds, work, "200")

    bulk: dict[str, Any] = {}
    if args.bulk:
        from bench.corpus import load_corpus

        texts = load_corpus(args.bulk)
        by_chars, _ = best_of(lambda: encoder.encode(texts, lengths=[len(t) for t in texts]), 1)
        by_pieces, _ = best_of(lambda: encoder.encode(texts, lengths=counts(texts).tolist()), 1)
        c = counts(texts).tolist()
        bulk = {"texts": len(texts), "by_characters_texts_per_s": round(len(texts) / by_chars, 1),
                "by_wordpieces_texts_per_s": round(len(texts) / by_pieces, 1),
                "padded_by_characters": padded_work(form_batches([len(t) for t in texts]), c, cap),
                "padded_by_wordpieces": padded_work(form_batches(c), c, cap)}  # fmt: skip

    print(f"model {encoder.name}, one core (cpu {args.cpu}), MAX_REQUEST_TOKENS {budget}, best of {args.repeat}\n")
    print("| request | texts | wordpieces run | time | wordpieces/s | answer |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['request']} | {r['texts']} | {r['wordpieces_run']:,} | {r['seconds']:.2f} s | "
              f"{r['wordpieces_per_s'] or '—'} | {r['outcome']} |")  # fmt: skip
    if bulk:
        print(f"\nbulk, {bulk['texts']} corpus texts: by characters {bulk['by_characters_texts_per_s']} texts/s "
              f"({bulk['padded_by_characters']:,} padded wordpieces), by wordpieces {bulk['by_wordpieces_texts_per_s']} "
              f"texts/s ({bulk['padded_by_wordpieces']:,}, tokenizer pass included)")  # fmt: skip
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"model": encoder.name, "cpu": args.cpu, "budget": budget, "requests": rows, "bulk": bulk}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
