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

Running the SavedModel's long-text signatures (:class:`LongTextEncoder`) and the window arithmetic
live in :mod:`bert2vec.core.long_text_signatures`; they are importable from here too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bert2vec.core.encoder import DEFAULT_BATCH_SIZE, Encoder, EncodeResult
from bert2vec.core.errors import InvalidInputError, TextTooLongForModelError, echo
from bert2vec.core.long_text_signatures import (
    DEFAULT_STRIDE,
    GROUP_CHARS,
    SPELLINGS,
    ChunkResult,
    LongResult,
    LongTextEncoder,
    check_stride,
    default_stride,
    spelled,
    window_size,
    windows_for,
)

# The signatures' runner and the window arithmetic are imported from here by every channel.
__all__ = [
    "DEFAULT_MODE", "DEFAULT_STRIDE", "GROUP_CHARS", "MODES", "SPELLINGS", "ChunkResult", "LongResult",
    "LongTextChoice", "LongTextEncoder", "LongTextPolicy", "Outcomes", "TooLong", "TooManyChars", "check_mode",
    "check_stride", "default_stride", "encode", "l2_normalize", "spelled", "window_size", "windows_for",
]  # fmt: skip

MODES = ("truncate", "reject", "chunk")
DEFAULT_MODE = "truncate"


def check_mode(mode: Any, name: str = "long_text", shown: str | None = None) -> str:
    """``shown``: how the caller's channel names the setting (``--long-text``); default ``'long_text'``.
    The value is echoed cut short (``echo``): a client's 4 MB string must not come back whole."""
    if not isinstance(mode, str) or mode not in MODES:
        raise InvalidInputError(f"{shown or repr(name)} must be one of {', '.join(MODES)}, got {echo(mode)}", param=name)
    return mode


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
