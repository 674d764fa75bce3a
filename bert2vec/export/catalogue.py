"""Catalogue of the Google BERT variants on TF Hub that vectorhub's ``Bert2Vec`` offered, plus the
small BERTs, mapped to their TF2 encoder and matching preprocess handles.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

TFHUB = "https://tfhub.dev/tensorflow/"


@dataclass(frozen=True)
class CatalogueEntry:
    """One named variant: where its encoder and preprocess models live, and its vector length."""

    name: str
    handle: str
    preprocess: str
    vector_length: int
    max_position: int = 512


def _seed(name: str, encoder: str, preprocess: str, dim: int) -> CatalogueEntry:
    return CatalogueEntry(name, f"{TFHUB}{encoder}/4", f"{TFHUB}{preprocess}/3", dim)


_SEEDS = [
    _seed("bert_cased_L-12_H-768_A-12", "bert_en_cased_L-12_H-768_A-12", "bert_en_cased_preprocess", 768),
    _seed("bert_cased_L-24_H-1024_A-16", "bert_en_cased_L-24_H-1024_A-16", "bert_en_cased_preprocess", 1024),
    _seed("bert_chinese_L-12_H-768_A-12", "bert_zh_L-12_H-768_A-12", "bert_zh_preprocess", 768),
    _seed(
        "bert_multi_cased_L-12_H-768_A-12",
        "bert_multi_cased_L-12_H-768_A-12",
        "bert_multi_cased_preprocess",
        768,
    ),
    _seed("bert_uncased_L-12_H-768_A-12", "bert_en_uncased_L-12_H-768_A-12", "bert_en_uncased_preprocess", 768),
    _seed(
        "bert_uncased_L-24_H-1024_A-16",
        "bert_en_uncased_L-24_H-1024_A-16",
        "bert_en_uncased_preprocess",
        1024,
    ),
]


def _small_berts() -> list[CatalogueEntry]:
    out = []
    for layers in (2, 4, 6, 8, 10, 12):
        for hidden in (128, 256, 512, 768):
            suffix = f"L-{layers}_H-{hidden}_A-{hidden // 64}"
            out.append(
                CatalogueEntry(
                    f"small_bert_uncased_{suffix}",
                    f"{TFHUB}small_bert/bert_en_uncased_{suffix}/2",
                    f"{TFHUB}bert_en_uncased_preprocess/3",
                    hidden,
                )
            )
    return out


CATALOGUE: dict[str, CatalogueEntry] = {e.name: e for e in _SEEDS + _small_berts()}


def _aliases(name: str) -> list[str]:
    """Spellings users bring along: vectorhub's ``google/`` prefix, TF Hub's small_bert path."""
    key = name.strip()
    candidates = [key]
    if key.startswith("google/"):
        candidates.append(key[len("google/") :])
    if key.startswith("small_bert/bert_en_uncased_"):
        candidates.append("small_bert_uncased_" + key[len("small_bert/bert_en_uncased_") :])
    return candidates


def lookup(name: str) -> CatalogueEntry | None:
    """The entry for ``name`` or one of its aliases, else None."""
    for candidate in _aliases(name):
        if candidate in CATALOGUE:
            return CATALOGUE[candidate]
    return None


def close_names(name: str, n: int = 5) -> list[str]:
    """Catalogue names that look like ``name``, for 'did you mean' messages."""
    return difflib.get_close_matches(_aliases(name)[-1], list(CATALOGUE), n=n, cutoff=0.5)
