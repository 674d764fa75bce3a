"""Long texts on the serving side: the three modes, the stride, and the model's long-text signatures.

A text over the model's ``max_seq_length`` wordpieces is handled by one of three modes, the same
everywhere a text enters (``/encode``, direct invokes, the Python API, ``bert-encode``, the S3
path):

* ``truncate`` (the default): the model reads the first ``max_seq_length`` wordpieces (``[SEP]``
  kept); the text is flagged ``truncated``;
* ``reject``: the text is refused, naming its token count and the limit;
* ``chunk``: the whole text is read as overlapping windows by the SavedModel's ``encode_long``
  signature (``bert2vec/export/long_text.py`` has the exact definition) and its vector is the
  wordpiece-weighted mean of the window vectors; ``encode_chunks`` gives one vector per window
  with its character span, for retrieval.

:class:`LongTextPolicy` is the one place these rules live: it resolves ``long_text`` and ``stride``
once for a model (checking once that the model can chunk) and applies them, returning per-text
outcomes — vectors, ``token_count``, ``truncated`` (the ``MAX_TEXT_CHARS`` cut ORed in) and
``chunks`` — and rejections as data (:class:`TooLong`, :class:`TooManyChars`) that word one
message for whichever channel shows it (``SPELLINGS``). HTTP, the Python API, the CLI and the bulk
pipeline only map those outcomes onto their own answer (a 4xx, an exception, an exit code, an
error-report line).

:class:`LongTextEncoder` wraps :class:`bert2vec.core.encoder.Encoder` (which runs
``serving_default``) and asks it for the other signatures (``Encoder.signature``). Models exported
before the long-text signatures existed cannot chunk; :meth:`LongTextEncoder.require` says so
(re-export).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bert2vec.core import contract
from bert2vec.core.encoder import DEFAULT_BATCH_SIZE, Encoder, EncodeResult
from bert2vec.core.errors import InvalidInputError, TextTooLongForModelError, UnsupportedOptionError, echo

MODES = ("truncate", "reject", "chunk")
DEFAULT_MODE = "truncate"
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


def check_mode(mode: Any, name: str = "long_text", shown: str | None = None) -> str:
    """``shown``: how the caller's channel names the setting (``--long-text``); default ``'long_text'``.
    The value is echoed cut short (``echo``): a client's 4 MB string must not come back whole."""
    if not isinstance(mode, str) or mode not in MODES:
        raise InvalidInputError(f"{shown or repr(name)} must be one of {', '.join(MODES)}, got {echo(mode)}", param=name)
    return mode


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


@dataclass(frozen=True)
class TooLong:
    """Why ``reject`` refused a text: its wordpieces over the model's limit (data; words in :meth:`message`)."""

    index: int
    token_count: int
    limit: int
    model: str
    can_chunk: bool

    def message(self, name: str, channel: str = "python", *, truncate_as: str | None = None) -> str:
        """The one rejection message. ``name``: how the channel points at the text (``'texts[3]'``);
        ``truncate_as``: how this caller asked for reject mode, when not by the mode's own name
        (HTTP's ``"truncate": false`` → ``'"truncate": true'``)."""
        cut = truncate_as or spelled(channel, "truncate")
        whole = f", or {spelled(channel, 'chunk')} to encode all of it" if self.can_chunk else ""
        return (
            f"{name} has {self.token_count} tokens; model {self.model} takes at most {self.limit} "
            f"(use {cut} to cut it, keeping [SEP]{whole})"
        )


@dataclass(frozen=True)
class TooManyChars:
    """A text over ``MAX_TEXT_CHARS`` in a mode that may not cut it (``reject``, or ``chunk``: reads texts whole)."""

    index: int
    chars: int
    limit: int
    mode: str

    def message(self, name: str, channel: str = "python", *, truncate_as: str | None = None) -> str:
        if self.mode == "chunk":
            how = f"{spelled(channel, 'chunk')} encodes whole texts and never cuts them: split the document"
        else:
            how = f"use {truncate_as or spelled(channel, 'truncate')} to cut it"
        return f"{name} has {self.chars} characters; at most {self.limit} (MAX_TEXT_CHARS); {how}"


@dataclass
class Outcomes(EncodeResult):
    """Per-text outcomes of a :class:`LongTextPolicy`: ``embeddings``/``token_counts``/``truncated`` as
    :class:`EncodeResult` (``truncated`` also flags the ``MAX_TEXT_CHARS`` cut), ``chunks`` windows
    per text in chunk mode, and the texts ``reject`` refused (their rows are not vectors to use)."""

    chunks: np.ndarray | None = None  # int32 [N], chunk mode only
    too_long: tuple[TooLong, ...] = ()


@dataclass(frozen=True)
class LongTextChoice:
    """What a caller asked for its texts over the model's limit, before any model is known.

    A request carries this one value (``mode`` and, for chunk, ``stride``) from its wire format to
    the service, which resolves it against the model exactly once (:meth:`LongTextPolicy.for_choice`).
    The mode is checked here, at construction, and nowhere after. ``truncate_as``: how the caller
    asked for truncation when not by the mode's own name (HTTP's ``"truncate": true``), so the
    rejection messages answer in the caller's words.
    """

    mode: str = DEFAULT_MODE
    stride: int | None = None  # chunk mode: overlap of consecutive windows; None: the model's default
    truncate_as: str | None = None

    def __post_init__(self) -> None:
        check_mode(self.mode)


@dataclass(frozen=True)
class LongTextPolicy:
    """``long_text`` and ``stride`` resolved once for one model: every channel (HTTP, Python API, CLI,
    bulk) applies this and only maps its outcomes onto its own way of answering."""

    mode: str
    stride: int | None  # chunk mode: the resolved overlap; None otherwise
    window: int  # wordpieces of a text per window (max_seq_length - 2)
    max_seq_length: int
    model: str  # the model's name, for reject's message ("" in truncate mode: no message to word)
    can_chunk: bool  # the model has the long-text signatures (reject's message offers chunk only then)

    @classmethod
    def resolve(
        cls,
        encoder: Encoder,
        long_text: Any = DEFAULT_MODE,
        stride: Any = None,
        *,
        channel: str = "http",
        names: dict[str, str] | None = None,
    ) -> LongTextPolicy:
        """Checks the mode, that ``stride`` goes only with chunk, that the model can chunk (one error)
        and that ``stride`` fits its window. Errors carry ``param`` (``long_text`` / ``stride``);
        ``names`` maps a param to how ``channel`` shows it (the CLI: ``{"stride": "--stride"}``)."""
        shown = names or {}
        mode = check_mode(long_text, shown=shown.get("long_text"))
        return cls._for_model(encoder, mode, stride, channel=channel, shown=shown)

    @classmethod
    def for_choice(cls, encoder: Encoder, choice: LongTextChoice, *, channel: str = "http") -> LongTextPolicy:
        """A request's :class:`LongTextChoice` resolved for ``encoder``; its mode was checked when it was made."""
        return cls._for_model(encoder, choice.mode, choice.stride, channel=channel, shown={})

    @classmethod
    def _for_model(cls, encoder: Encoder, mode: str, stride: Any, *, channel: str, shown: dict[str, str]) -> LongTextPolicy:
        """:meth:`resolve` past the mode's check: stride only with chunk, the model can chunk, the stride fits."""
        if mode == "truncate" and stride is None:  # nothing to check, nothing to word: any encoder-like will do
            return cls(mode, None, window_size(encoder.max_seq_length), encoder.max_seq_length, "", False)
        long = LongTextEncoder(encoder)
        if mode != "chunk":
            if stride is not None:
                raise InvalidInputError(
                    f"{shown.get('stride', repr('stride'))} applies only to {spelled(channel, 'chunk')}, "
                    f"not {spelled(channel, mode)}",
                    param="stride",
                )
            resolved = None
        else:
            long.require(channel)
            resolved = check_stride(stride, encoder.max_seq_length, shown=shown.get("stride"))
        return cls(mode, resolved, window_size(encoder.max_seq_length), encoder.max_seq_length, encoder.name,
                   long.available)  # fmt: skip

    def cut_chars(self, texts: Sequence[str], max_chars: int) -> tuple[list[str], list[bool], list[TooManyChars]]:
        """The ``MAX_TEXT_CHARS`` rule: ``truncate`` cuts (flagged), the others refuse. Returns the texts
        to encode (refused ones as given), which were cut, and the refusals."""
        kept, cut, refused = [], [], []
        for i, t in enumerate(texts):
            over = len(t) > max_chars
            if over and self.mode != "truncate":
                refused.append(TooManyChars(i, len(t), max_chars, self.mode))
            kept.append(t[:max_chars] if over and self.mode == "truncate" else t)
            cut.append(over and self.mode == "truncate")
        return kept, cut, refused

    def too_long(self, token_counts: np.ndarray | Sequence[int]) -> tuple[TooLong, ...]:
        """The texts ``reject`` refuses, from their wordpiece counts (incl. [CLS]/[SEP])."""
        if self.mode != "reject":
            return ()
        counts = np.asarray(token_counts)
        return tuple(TooLong(int(i), int(counts[i]), self.max_seq_length, self.model, self.can_chunk)
                     for i in np.flatnonzero(counts > self.max_seq_length))  # fmt: skip

    def windows(self, token_counts: np.ndarray | Sequence[int]) -> np.ndarray:
        """Windows per text in chunk mode (1 per text otherwise)."""
        if self.mode != "chunk":
            return np.ones(len(token_counts), np.int32)
        return windows_for(token_counts, self.max_seq_length, int(self.stride or 0))

    def apply(
        self,
        encoder: Encoder,
        texts: Sequence[str],
        *,
        cut: Sequence[bool] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        lengths: Sequence[int] | None = None,
    ) -> Outcomes:
        """Encode ``texts`` by this policy. ``cut``: which texts the ``MAX_TEXT_CHARS`` rule cut (ORed
        into ``truncated``); ``lengths``: exact wordpiece counts when known (the encoder batches by them)."""
        chars_cut = np.zeros(len(texts), bool) if cut is None else np.asarray(cut, bool)
        if self.mode == "chunk":
            long = LongTextEncoder(encoder).encode(texts, stride=self.stride, batch_size=batch_size)
            return Outcomes(long.embeddings, long.token_counts, chars_cut, long.chunks)
        result = (
            encoder.encode(texts, batch_size) if lengths is None else encoder.encode(texts, batch_size, lengths=lengths)
        )
        return Outcomes(result.embeddings, result.token_counts, result.truncated | chars_cut,
                        too_long=self.too_long(result.token_counts))  # fmt: skip


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero), as ``--normalize`` exports do in the graph."""
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def encode(
    encoder: Encoder,
    texts: Sequence[str],
    *,
    long_text: str = DEFAULT_MODE,
    stride: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    channel: str = "python",
) -> Outcomes:
    """``Encoder.encode`` with a long-text mode: ``truncate`` (what ``Encoder.encode`` does),
    ``reject`` (``TextTooLongForModelError`` naming the first text over ``max_seq_length``, its
    token count and the limit) or ``chunk`` (``chunks`` set). ``channel`` words the messages."""
    out = LongTextPolicy.resolve(encoder, long_text, stride, channel=channel).apply(
        encoder, texts, batch_size=batch_size
    )
    if out.too_long:
        first = out.too_long[0]
        raise TextTooLongForModelError(first.message(f"texts[{first.index}]", channel), param="long_text")
    return out
