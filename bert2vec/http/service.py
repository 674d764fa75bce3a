"""Encode requests, validated and limited — the part of serving that knows nothing about AWS.

Every wire format (``bert2vec.http.wire``: ``/encode`` and direct invokes, OpenAI ``/v1/embeddings``,
TEI ``/embed``) is parsed into an ``EncodeRequest`` and served here, so limits and error wording
are identical everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from bert2vec.core import defaults
from bert2vec.core.encoder import DEFAULT_BATCH_SIZE, Encoder, EncodeResult, form_batches, padded_work
from bert2vec.core.errors import (
    EmptyInputError,
    RequestTooLargeError,
    TextTooLargeError,
    TextTooLongForModelError,
    TooManyTextsError,
    UnsupportedOptionError,
)
from bert2vec.core.long_text import LongTextChoice, LongTextPolicy, Outcomes, TooLong, l2_normalize
from bert2vec.core.settings import Settings

# Wordpieces one character can become. Every wordpiece covers at least one character of the
# normalised text, and normalisation (NFD for uncased models) turns one character into at most
# three that survive accent stripping: a Hangul syllable into its jamo ("한" → ᄒ ᅡ ᆫ).
WORDPIECES_PER_CHAR = 3


@dataclass(frozen=True)
class Limits:
    """Request limits, from the environment (docs/http-api.md, "Configuration")."""

    max_texts: int = defaults.MAX_TEXTS
    max_text_chars: int = defaults.MAX_TEXT_CHARS
    max_request_chars: int = defaults.MAX_REQUEST_CHARS
    max_request_tokens: int = defaults.MAX_REQUEST_TOKENS

    @classmethod
    def from_env(cls) -> Limits:
        """Raises ``ConfigError`` naming the variable for a value that is not a whole number."""
        return cls.from_settings(Settings.from_env())

    @classmethod
    def from_settings(cls, s: Settings) -> Limits:
        """The HTTP API's view of the settings."""
        return cls(s.max_texts, s.max_text_chars, s.max_request_chars, s.max_request_tokens)


class ModelTokenizer:
    """The exported model's own in-graph tokenizer, run without the encoder.

    Every SavedModel ``bert-export`` writes keeps, beside ``serving_default``, the serving module's
    ``pack`` function (texts → word ids padded to the batch's longest, mask, token_count): the
    exact tokenizer and truncation ``serving_default`` runs, minus BERT. It is not part of the
    signature contract, so a model without it still serves; only the exact wordpiece count
    (a bound from characters is used instead) and ``/tokenize`` are then unavailable.
    """

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        self._pack = encoder.function("pack")

    @property
    def available(self) -> bool:
        return self._pack is not None

    def _run(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        import tensorflow as tf

        word_ids, mask, token_count = self._pack(tf.constant(texts, dtype=tf.string))
        return word_ids.numpy(), mask.numpy(), token_count.numpy()

    def counts(self, texts: list[str]) -> np.ndarray:
        """Wordpieces per text incl. [CLS]/[SEP], before truncation (``token_count``'s meaning)."""
        return self._run(texts)[2]

    def ids(self, texts: list[str]) -> list[list[int]]:
        """The word ids the encoder sees: [CLS] ... [SEP], truncated to ``max_seq_length``."""
        word_ids, mask, _ = self._run(texts)
        return [row[: int(m.sum())].tolist() for row, m in zip(word_ids, mask, strict=True)]

    @cached_property
    def vocab(self) -> list[str] | None:
        """The vocabulary baked into the SavedModel's assets (id → token), if it is a plain vocab.txt."""
        path = Path(self.encoder.model_dir) / "assets" / "vocab.txt"
        try:
            with open(path, encoding="utf-8") as f:
                return [line.rstrip("\n") for line in f]
        except OSError:
            return None


@dataclass(frozen=True)
class EncodeRequest:
    texts: list[str]
    normalize: bool | None = None  # None: the model's own setting
    field: str = "texts"  # the request field named in error messages
    single: bool = False  # the field held one string rather than a list
    # What happens to a text over the model's max_seq_length (truncate | reject | chunk, and the
    # chunk overlap), as the wire format decided it; the service resolves it for the model once.
    long_text: LongTextChoice = LongTextChoice()

    def name(self, i: int) -> str:
        """How error messages point at text ``i``: ``'text'`` or ``'texts[3]'``."""
        return f"'{self.field}'" if self.single else f"'{self.field}[{i}]'"


@dataclass
class Encoded:
    request: EncodeRequest
    result: EncodeResult
    vectors: np.ndarray  # after any request-level normalisation
    chunks: np.ndarray | None = None  # chunk mode: windows per text
    stride: int | None = None  # chunk mode: the windows' overlap as resolved for the model


class EncodeService:
    """Checks a request against the limits and the model, then encodes it."""

    def __init__(self, encoder: Encoder, limits: Limits | None = None) -> None:
        self.encoder = encoder
        self.limits = limits or Limits.from_env()
        self.tokenizer = ModelTokenizer(encoder)
        self.batch_size = DEFAULT_BATCH_SIZE  # what the budget prices and the encoder runs

    def policy(self, req: EncodeRequest) -> LongTextPolicy:
        """The request's long-text choice resolved for this model (the mode, the stride and whether
        the model can chunk; errors name the field). :meth:`encode` calls it once per request and
        hands the result to every check, so one request is decided once."""
        return LongTextPolicy.for_choice(self.encoder, req.long_text)

    def check_texts(self, req: EncodeRequest, policy: LongTextPolicy | None = None) -> list[str]:
        """Count, emptiness, per-text size and the character budget; the texts cut as allowed.
        ``policy``: the request's, when the caller has resolved it already."""
        if not req.texts:
            raise EmptyInputError(f"'{req.field}' is empty; send at least one text", param=req.field)
        if len(req.texts) > self.limits.max_texts:
            raise TooManyTextsError(
                f"'{req.field}' has {len(req.texts)} texts; at most {self.limits.max_texts} per request "
                "(MAX_TEXTS). For bulk work upload a file to the S3 input prefix.",
                param=req.field,
            )
        for i, t in enumerate(req.texts):
            if not t.strip():
                raise EmptyInputError(f"{req.name(i)} is empty or only whitespace", param=req.field)
        policy = policy or self.policy(req)
        texts, cut, refused = policy.cut_chars(req.texts, self.limits.max_text_chars)
        if refused:
            first = refused[0]
            raise TextTooLargeError(
                first.message(req.name(first.index), "http", truncate_as=req.long_text.truncate_as)
                + (", or use the S3 bulk path" if policy.mode == "chunk" else ""),
                param=req.field,
            )
        chars = sum(len(t) for t in texts)
        if chars > self.limits.max_request_chars:
            raise RequestTooLargeError(
                f"the request has {chars} characters in {len(texts)} texts; at most "
                f"{self.limits.max_request_chars} per request (MAX_REQUEST_CHARS). Send fewer or shorter texts "
                f"(model {self.encoder.name} takes {self.encoder.max_seq_length} wordpieces per text, about 4 "
                "characters each in English); for bulk work use the S3 input prefix.",
                param=req.field,
            )
        return texts

    def _work(self, policy: LongTextPolicy, texts: list[str], counts: np.ndarray, *, exact: bool) -> int:
        """Wordpieces the encoder runs for texts of ``counts`` wordpieces (incl. [CLS]/[SEP]).

        Each batch is padded to its longest text, so it costs its size times that length (capped
        at ``max_seq_length``): the batches are priced as the encoder will form them — by
        characters when ``counts`` is the bound from characters (``exact`` false: the encoder is
        then given no counts), by wordpieces when they are exact. In chunk mode each window counts as ``max_seq_length``.
        """
        cap = self.encoder.max_seq_length
        if policy.mode == "chunk":
            return int(policy.windows(counts).sum()) * cap
        order = counts if exact else [len(t) for t in texts]
        return padded_work(form_batches(order, self.batch_size), counts, cap)

    def check_tokens(self, req: EncodeRequest, policy: LongTextPolicy, texts: list[str]) -> np.ndarray | None:
        """The wordpiece budget: the padded wordpieces the encoder will run (``_work``), so a
        request's cost is what it makes the model do, whatever the mix of its texts' lengths.

        A bound from characters (``WORDPIECES_PER_CHAR``) admits most requests without
        tokenising; only when the bound exceeds the budget are the texts counted exactly with the
        model's own tokenizer (a fraction of the encoding's cost), and then the encoder forms its
        batches by those counts, which pads least. Returns those counts, if any.
        """
        cap, budget = self.encoder.max_seq_length, self.limits.max_request_tokens
        bound = self._work(policy, texts, np.array([WORDPIECES_PER_CHAR * len(t) + 2 for t in texts]), exact=False)
        if bound <= budget:
            return None
        if not self.tokenizer.available:
            used, how = bound, "up to "
            counts = None
        else:
            counts = self.tokenizer.counts(texts).astype(np.int32)
            used, how = self._work(policy, texts, counts, exact=True), ""
        if used > budget:
            each = (
                f"each window of {cap - 2} wordpieces, overlapping by {policy.stride}, counts as "
                f"max_seq_length = {cap}"
                if policy.mode == "chunk"
                else f"texts run in batches of {self.batch_size} of similar length, each batch padded to its longest "
                f"text, at most max_seq_length = {cap}"
            )
            raise RequestTooLargeError(
                f"the request would run {how}{used} wordpieces through the model for its {len(texts)} texts ({each}); "
                f"at most {budget} per request (MAX_REQUEST_TOKENS). "
                + ("Send fewer or shorter documents per request"
                   if policy.mode == "chunk" else f"Send fewer texts per request — {max(1, budget // cap)} texts always fit —")
                + " or use the S3 bulk path.",
                param=req.field,
            )
        return counts

    def refuse_unreadable(self, req: EncodeRequest, counts: np.ndarray, too_long: tuple[TooLong, ...]) -> None:
        """Refuse the request for its first text the model cannot read as asked, given the texts'
        wordpiece counts and the policy's rejections for them (``reject`` mode's texts over
        ``max_seq_length``).

        A text the tokenizer turns into nothing (only control, format, zero-width, combining or
        space characters) would come back as the vector of a bare [CLS] [SEP]: refused first."""
        blank = np.flatnonzero(np.asarray(counts) <= 2)
        if blank.size:
            i = int(blank[0])
            raise EmptyInputError(
                f"{req.name(i)} has no characters the model can read (only control, zero-width, combining or "
                "space characters)",
                param=req.field,
            )
        if too_long:
            first = too_long[0]
            raise TextTooLongForModelError(
                first.message(req.name(first.index), "http", truncate_as=req.long_text.truncate_as), param=req.field
            )

    def validate(self, req: EncodeRequest, policy: LongTextPolicy | None = None) -> list[str]:
        """Return the texts to encode (over-long ones cut to ``max_text_chars`` when allowed).
        The long-text choice (mode, stride, whether this model can chunk) is resolved before the
        texts are looked at, so its errors come first."""
        policy = policy or self.policy(req)
        texts = self.check_texts(req, policy)
        if req.normalize is False and self.encoder.card.normalize:
            raise UnsupportedOptionError(
                f'"normalize": false is not available: model {self.encoder.name} was exported with '
                '--normalize (model card: "normalize": true); export it with --no-normalize to get raw vectors',
                param="normalize",
            )
        return texts

    def encode(self, req: EncodeRequest) -> Encoded:
        """Decide the request's long-text handling once, check it, encode it.

        When the budget needed exact wordpiece counts, unreadable texts are refused from them
        before any encoding; otherwise from the encoding's own counts and rejections."""
        policy = self.policy(req)
        texts = self.validate(req, policy)
        counts = self.check_tokens(req, policy, texts)
        if counts is not None:  # known before encoding: refuse before doing the work
            self.refuse_unreadable(req, counts, policy.too_long(counts))
        # With exact counts the encoder batches by wordpieces: the very batches the budget priced.
        out: Outcomes = policy.apply(
            self.encoder, texts, cut=[len(t) < len(o) for t, o in zip(texts, req.texts, strict=True)],
            batch_size=self.batch_size, lengths=None if counts is None else counts.tolist(),
        )  # fmt: skip
        if counts is None:
            self.refuse_unreadable(req, out.token_counts, out.too_long)
        vectors = out.embeddings
        if req.normalize and not self.encoder.card.normalize:
            vectors = l2_normalize(vectors)
        result = EncodeResult(out.embeddings, out.token_counts, out.truncated)
        return Encoded(req, result, vectors, out.chunks, policy.stride)

