"""The SavedModel's long-text signatures, run: ``encode_long`` and ``encode_chunks`` over groups of texts.

:class:`LongTextEncoder` wraps :class:`bert2vec.core.encoder.Encoder` (which runs ``serving_default``)
and asks it for the other signatures (``Encoder.signature``): it groups texts by length, calls the
signature side by side on the encoder's threads and puts the outputs back in input order. The window
arithmetic (window size, default stride, windows per text) is the graph's, restated here so budgets
can be priced without running it. What a channel *does* with a text over the model's limit — the
modes, the rejections and their wording — is :mod:`bert2vec.core.long_text`'s.

Models exported before the long-text signatures existed cannot chunk; :meth:`LongTextEncoder.require`
says so (re-export).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bert2vec.core import contract
from bert2vec.core.encoder import DEFAULT_BATCH_SIZE, Encoder
from bert2vec.core.errors import InvalidInputError, UnsupportedOptionError, echo

# Overlap of consecutive windows, in wordpieces. 32 is about one English sentence (~25-30
# wordpieces): text cut at a window boundary is seen whole, with context, by one of the two windows,
# at ~14 % more encoder work than no overlap for 256-wordpiece models (window 254, step 222) and
# ~7 % for 512. Models with windows under 128 wordpieces use a quarter of the window instead.
DEFAULT_STRIDE = 32
# Characters per call of the long-text signatures (texts are grouped, longest last, up to this or
# ``batch_size`` texts): ~32 full windows of English. The graph itself encodes windows 8 at a time,
# so this only balances work between cores and bounds one call's output.
GROUP_CHARS = 32_000


def window_size(max_seq_length: int) -> int:
    """Wordpieces of a text per window: ``max_seq_length`` minus ``[CLS]`` and ``[SEP]``."""
    return int(max_seq_length) - 2


def default_stride(max_seq_length: int) -> int:
    return min(DEFAULT_STRIDE, window_size(max_seq_length) // 4)


def check_stride(stride: Any, max_seq_length: int, name: str = "stride", shown: str | None = None) -> int:
    """``stride`` (None = the default) as a valid overlap for this model: ``0 <= stride < window``.
    ``shown``: how the caller's channel names the setting (``--stride``); default ``'stride'``."""
    if stride is None:
        return default_stride(max_seq_length)
    window = window_size(max_seq_length)
    shown = shown or f"'{name}'"
    if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)):
        raise InvalidInputError(f"{shown} must be a whole number of wordpieces, got {echo(stride)}", param=name)
    if not 0 <= stride < window:
        raise InvalidInputError(
            f"{shown} {echo(stride)}: the overlap of consecutive windows must be at least 0 and less than the window "
            f"of {window} wordpieces (max_seq_length {max_seq_length} minus [CLS] and [SEP])",
            param=name,
        )
    return int(stride)


def windows_for(token_counts: np.ndarray | Sequence[int], max_seq_length: int, stride: int) -> np.ndarray:
    """Windows per text, from ``token_count`` (wordpieces incl. [CLS]/[SEP]), as the graph cuts them."""
    window = window_size(max_seq_length)
    step = window - stride
    pieces = np.maximum(np.asarray(token_counts, dtype=np.int64) - 2, 0)
    return (1 + np.maximum(0, -(-(pieces - window) // step))).astype(np.int32)


@dataclass
class LongResult:
    """``encode_long``: one vector per text."""

    embeddings: np.ndarray  # float32 [N, D], input order
    token_counts: np.ndarray  # int32 [N], wordpieces incl. [CLS]/[SEP] (all of them are read)
    chunks: np.ndarray  # int32 [N], windows per text


@dataclass
class ChunkResult:
    """``encode_chunks``: one vector per window; windows of a text are consecutive and in order."""

    embeddings: np.ndarray  # float32 [W, D], pooled and normalised like one text of serving_default
    text_index: np.ndarray  # int32 [W], the input each window belongs to
    start: np.ndarray  # int32 [W], character offsets: texts[text_index[w]][start[w]:end[w]]
    end: np.ndarray  # int32 [W]
    token_counts: np.ndarray  # int32 [N]
    chunks: np.ndarray  # int32 [N]


class LongTextEncoder:
    """``chunk`` mode over an :class:`Encoder`: its SavedModel's ``encode_long`` / ``encode_chunks``."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        self._long = encoder.signature(contract.LONG_SIGNATURE_NAME)
        self._chunks = encoder.signature(contract.CHUNKS_SIGNATURE_NAME)

    @property
    def available(self) -> bool:
        return self._long is not None and self._chunks is not None

    def require(self, channel: str = "http") -> None:
        """One check and one message for "this model cannot chunk", worded for ``channel``."""
        if not self.available:
            raise UnsupportedOptionError(
                f"model {self.encoder.name} was exported without the long-text signatures "
                f"({contract.LONG_SIGNATURE_NAME}, {contract.CHUNKS_SIGNATURE_NAME}), so it cannot encode whole "
                "documents in chunks; re-export it with this version of bert-export (same --model and options, "
                f"without --no-long-text) to use {spelled(channel, 'chunk')}, or use truncate/reject",
                param="long_text",
            )

    def stride(self, stride: int | None) -> int:
        return check_stride(stride, self.encoder.max_seq_length)

    def _groups(self, texts: Sequence[str], batch_size: int) -> list[list[int]]:
        """Length-sorted groups of at most ``batch_size`` texts and about ``GROUP_CHARS`` characters."""
        groups: list[list[int]] = []
        current: list[int] = []
        chars = 0
        for i in sorted(range(len(texts)), key=lambda i: len(texts[i])):
            if current and (len(current) >= batch_size or chars + len(texts[i]) > GROUP_CHARS):
                groups.append(current)
                current, chars = [], 0
            current.append(i)
            chars += len(texts[i])
        if current:
            groups.append(current)
        return groups

    def _map(self, fn: Any, groups: list[list[int]]) -> list[Any]:
        return self.encoder.map_batches(fn, groups)

    @staticmethod
    def _check(texts: Sequence[str]) -> None:
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise InvalidInputError(f"texts[{i}]: expected a string, got {type(t).__name__}")

    def _run(
        self, signature: Any, texts: Sequence[str], stride: int | None, batch_size: int
    ) -> tuple[list[list[int]], list[dict[str, np.ndarray]]]:
        """Call ``signature`` on length-sorted groups (side by side, one per worker): groups and their outputs."""
        import tensorflow as tf

        self.require()
        self._check(texts)
        s = tf.constant(self.stride(stride), tf.int32)
        groups = self._groups(texts, max(1, batch_size))

        def run(idx: list[int]) -> dict[str, np.ndarray]:
            batch = tf.constant([texts[i] for i in idx], tf.string)
            out = signature(**{contract.INPUT_KEY: batch, contract.INPUT_STRIDE: s})
            return {k: v.numpy() for k, v in out.items()}

        return groups, self._map(run, groups)

    def encode(
        self, texts: Sequence[str], *, stride: int | None = None, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> LongResult:
        """Each text's whole-document vector (``encode_long``), input order kept."""
        groups, parts = self._run(self._long, texts, stride, batch_size)
        n = len(texts)
        emb = np.zeros((n, self.encoder.vector_length), np.float32)
        counts, chunks = np.zeros(n, np.int32), np.zeros(n, np.int32)
        for idx, got in zip(groups, parts, strict=True):
            emb[idx] = got[contract.OUTPUT_EMBEDDING]
            counts[idx] = got[contract.OUTPUT_TOKEN_COUNT]
            chunks[idx] = got[contract.OUTPUT_CHUNKS]
        return LongResult(emb, counts, chunks)

    def encode_chunks(
        self, texts: Sequence[str], *, stride: int | None = None, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> ChunkResult:
        """One vector per window with its span (``encode_chunks``), texts in input order."""
        groups, parts = self._run(self._chunks, texts, stride, batch_size)
        n = len(texts)
        counts = np.zeros(n, np.int32)
        for idx, got in zip(groups, parts, strict=True):
            counts[idx] = got[contract.OUTPUT_TOKEN_COUNT]
            got[contract.OUTPUT_TEXT_INDEX] = np.asarray(idx, np.int32)[got[contract.OUTPUT_TEXT_INDEX]]
        if parts:
            text_index = np.concatenate([p[contract.OUTPUT_TEXT_INDEX] for p in parts])
            order = np.argsort(text_index, kind="stable")  # back to input order, windows in order

            def cat(key: str) -> np.ndarray:
                return np.concatenate([p[key] for p in parts])[order]

            emb, start, end = cat(contract.OUTPUT_CHUNK_EMBEDDING), cat(contract.OUTPUT_START), cat(contract.OUTPUT_END)
            text_index = text_index[order]
        else:
            emb = np.zeros((0, self.encoder.vector_length), np.float32)
            text_index = start = end = np.zeros(0, np.int32)
        chunks = np.bincount(text_index, minlength=n).astype(np.int32)
        return ChunkResult(emb, text_index.astype(np.int32), start, end, counts, chunks)


# How each channel spells a long-text mode, so that one message reads right wherever it lands.
SPELLINGS = {
    "python": "long_text={!r}",
    "http": '"long_text": "{}"',
    "cli": "--long-text {}",
    "bulk": "LONG_TEXT={}",
}


def spelled(channel: str, mode: str) -> str:
    """``mode`` as a user of ``channel`` sets it (``--long-text chunk``, ``"long_text": "chunk"``...)."""
    return SPELLINGS[channel].format(mode)
