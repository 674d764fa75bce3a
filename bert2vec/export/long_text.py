"""Long texts inside the SavedModel: whole documents as overlapping windows, and the windows' spans.

``serving_default`` reads the first ``max_seq_length`` wordpieces of a text. The two signatures
added here read all of them, so any TensorFlow user of the exported model gets long-text support
without our Python:

``encode_long(text: string[None], stride: int32[]) -> {embedding [N, D], token_count [N], chunks [N]}``
    The text's vector: the mean of its window vectors (each pooled as the model pools, before any
    normalisation) weighted by the number of the text's wordpieces in the window, then
    L2-normalised when the model normalises.

``encode_chunks(text, stride) -> {chunk_embedding [W, D], text_index [W], start [W], end [W], token_count [N]}``
    One row per window, for retrieval: its vector (exactly as ``serving_default`` pools and
    normalises one text), the input it belongs to, and its span ``text[start:end]`` in the
    original string (character offsets, see *Spans*). Windows of one text are consecutive and in
    order.

Windows
-------
A text's wordpieces (the ids ``serving_default`` tokenises; no ``[CLS]``/``[SEP]``) are cut into
windows of ``window = max_seq_length - 2`` wordpieces that overlap by ``stride`` wordpieces (the
name and meaning of Hugging Face's ``stride`` for overflowing tokens): window ``k`` covers
wordpieces ``[k·(window - stride), k·(window - stride) + window)``, cut at the end of the text, and
the last window is the first that reaches the end. So a text of ``T <= window`` wordpieces is one
window (exactly what ``serving_default`` encodes), and ``T > window`` gives
``1 + ceil((T - window) / (window - stride))`` windows, none of them empty. Each window is encoded
as ``[CLS] window [SEP]``. A text with no wordpieces is one window ``[CLS] [SEP]`` of weight 1.
``stride`` must satisfy ``0 <= stride < window`` (the graph fails with ``InvalidArgumentError``
otherwise). ``token_count`` means what it means in ``serving_default``: the text's wordpieces + 2.

Windows of all texts in a call are encoded together, ``WINDOW_BATCH`` at a time, sorted by length
so each batch pads to similar lengths; a call therefore holds at most that many windows in the
encoder at once whatever the documents' sizes.

Spans
-----
The in-graph tokenizer normalises text (drops control and format characters, NFD + strips accents
and lower-cases for uncased models) before splitting it into words, so a wordpiece's characters
are not those of the original string. Words, however, map one to one: normalisation works
character by character, so splitting the *original* text with the tokenizer's own split rule
(special tokens, whitespace runs, each punctuation and CJK character) and normalising each word on
its own gives exactly the words, and then exactly the wordpieces, of the whole text. Each
wordpiece is thus attributed to the original word it came from, and a window's span is

    ``start`` = start of the original word of its first wordpiece,
    ``end``   = end of the original word of its last wordpiece,

in Unicode code points of the input (Python ``str`` indices: ``text[start:end]``), never bytes.
A word cut by a window boundary (``un ##believ | ##able``) belongs whole to both windows' spans;
characters the tokenizer drops inside a word (a zero-width space) are inside the span, those
between words are not. Input that is not valid UTF-8 is counted after replacing each invalid
sequence by U+FFFD, as the tokenizer reads it. Should the word-level tokenisation ever disagree
with the tokenizer's own (it does not on any text we know of), that text's windows all get the
whole text ``[0, len(text)]`` as their span rather than a wrong one; models whose tokenizer is a
TF Hub preprocess model (no access to its words) report ``start = end = -1``.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tensorflow_text as tf_text

from bert2vec.core import contract
from bert2vec.export.packing import pack
from bert2vec.export.pooling import Pooling
from bert2vec.export.tokenizer import WordTokenizer

__all__ = ["WINDOW_BATCH", "LongTextModule", "attach"]

#: Windows per encoder call inside the graph (the texts-per-batch size measured best for serving).
WINDOW_BATCH = 8
#: While-loop iterations (encoder batches) allowed in flight at once: side by side on several cores.
PARALLEL_BATCHES = 2


class LongTextModule(tf.Module):
    """The ``encode_long`` / ``encode_chunks`` functions over a serving module's tokenizer and encoder."""

    def __init__(
        self,
        tokenizer: tf.Module,
        encoder: tf.Module,
        *,
        pooling: Pooling,
        max_seq_length: int,
        vector_length: int,
    ) -> None:
        super().__init__(name="long_text")
        self.tokenizer = tokenizer
        self.encoder = encoder
        self._pooling = pooling
        self._max_seq_length = int(max_seq_length)
        self._window = int(max_seq_length) - 2
        self._dim = int(vector_length)
        # Spans need the tokenizer's words (our in-graph tokenizer); a TF Hub preprocess model hides them.
        self._spans = isinstance(tokenizer, WordTokenizer)
        spec = [
            tf.TensorSpec([None], tf.string, name=contract.INPUT_KEY),
            tf.TensorSpec([], tf.int32, name=contract.INPUT_STRIDE),
        ]
        self.encode_long = tf.function(self._encode_long, input_signature=spec)
        self.encode_chunks = tf.function(self._encode_chunks, input_signature=spec)

    def signatures(self) -> dict[str, Any]:
        """``encode_long`` and ``encode_chunks``, as the long-text SavedModel exports them."""
        return {contract.LONG_SIGNATURE_NAME: self.encode_long, contract.CHUNKS_SIGNATURE_NAME: self.encode_chunks}

    # ---- windows -----------------------------------------------------------------------------
    def _check_stride(self, stride: tf.Tensor) -> tf.Tensor:
        message = f"stride (the overlap of consecutive windows, in wordpieces) must be >= 0 and < {self._window} (max_seq_length - 2)"
        checks = [
            tf.debugging.assert_greater_equal(stride, 0, message=message),
            tf.debugging.assert_less(stride, self._window, message=message),
        ]
        with tf.control_dependencies(checks):
            return tf.identity(stride)

    def _windows(self, ids: tf.RaggedTensor, stride: tf.Tensor) -> dict[str, tf.Tensor]:
        """Cut each row of ``ids`` [B, (T)] into windows; every window's wordpieces and position."""
        window = self._window
        step = window - self._check_stride(stride)
        total = tf.cast(ids.row_lengths(), tf.int32)  # [B]
        n = 1 + tf.maximum(0, (total - window + step - 1) // step)  # windows per text, >= 1
        text_index = tf.repeat(tf.range(tf.shape(total)[0], dtype=tf.int32), n)  # [W]
        k = tf.ragged.range(n).flat_values  # window number inside its text
        first = k * step
        last = tf.minimum(first + window, tf.gather(total, text_index))  # exclusive
        base = tf.gather(tf.cast(ids.row_starts(), tf.int32), text_index)
        pieces = tf.gather(ids.flat_values, tf.ragged.range(base + first, base + last))  # [W, (<= window)]
        return {"pieces": pieces, "text_index": text_index, "first": first, "last": last, "total": total, "n": n}

    def _pool(self, pieces: tf.RaggedTensor) -> tf.Tensor:
        """Windows packed and pooled as ``serving_default`` packs and pools texts, not normalised."""
        tok = self.tokenizer
        word_ids, mask = pack(pieces, self._max_seq_length, cls_id=tok.cls_id, sep_id=tok.sep_id, pad_id=tok.pad_id)
        sequence_output, pooled_output = self.encoder(word_ids, mask)
        return self._pooling.pool(sequence_output, pooled_output, mask)

    def _encode_windows(self, pieces: tf.RaggedTensor) -> tf.Tensor:
        """Pooled (not normalised) vectors [W, D] of all windows, ``WINDOW_BATCH`` at a time, by length."""
        order = tf.argsort(tf.cast(pieces.row_lengths(), tf.int32), stable=True)
        count = tf.shape(order)[0]
        batches = (count + WINDOW_BATCH - 1) // WINDOW_BATCH

        def body(i: tf.Tensor, out: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            idx = order[i * WINDOW_BATCH : tf.minimum((i + 1) * WINDOW_BATCH, count)]
            emb = self._pool(tf.gather(pieces, idx))
            return i + 1, tf.tensor_scatter_nd_update(out, idx[:, tf.newaxis], emb)

        _, out = tf.while_loop(
            lambda i, _: i < batches,
            body,
            [tf.constant(0), tf.zeros([count, self._dim], tf.float32)],
            parallel_iterations=PARALLEL_BATCHES,
        )
        return tf.ensure_shape(out, [None, self._dim])

    # ---- signatures --------------------------------------------------------------------------
    def _encode_long(self, text: tf.Tensor, stride: tf.Tensor) -> dict[str, tf.Tensor]:
        win = self._windows(self.tokenizer.tokenize(text), stride)
        vectors = self._encode_windows(win["pieces"])
        weight = tf.cast(tf.maximum(win["last"] - win["first"], 1), tf.float32)  # text wordpieces in the window
        texts = tf.shape(win["total"])[0]
        summed = tf.math.unsorted_segment_sum(vectors * weight[:, tf.newaxis], win["text_index"], texts)
        emb = summed / tf.math.unsorted_segment_sum(weight, win["text_index"], texts)[:, tf.newaxis]
        return {
            contract.OUTPUT_EMBEDDING: tf.ensure_shape(self._pooling.finish(emb), [None, self._dim]),
            contract.OUTPUT_TOKEN_COUNT: win["total"] + 2,
            contract.OUTPUT_CHUNKS: win["n"],
        }

    def _encode_chunks(self, text: tf.Tensor, stride: tf.Tensor) -> dict[str, tf.Tensor]:
        ids = self.tokenizer.tokenize(text)
        win = self._windows(ids, stride)
        vectors = self._pooling.finish(self._encode_windows(win["pieces"]))
        start, end = self._spans_of(text, win) if self._spans else (-tf.ones_like(win["first"]),) * 2
        return {
            contract.OUTPUT_CHUNK_EMBEDDING: vectors,
            contract.OUTPUT_TEXT_INDEX: win["text_index"],
            contract.OUTPUT_START: start,
            contract.OUTPUT_END: end,
            contract.OUTPUT_TOKEN_COUNT: win["total"] + 2,
        }

    # ---- spans -------------------------------------------------------------------------------
    def _word_pieces(self, text: tf.Tensor) -> tuple[tf.RaggedTensor, tf.RaggedTensor, tf.Tensor]:
        """Per text, per wordpiece: the byte span [begin, end) of the original word it comes from.

        Mirrors ``BertTokenizerModule.tokenize`` step by step, except that the original text is
        split into words *before* normalising (see the module docstring), keeping offsets.
        Returns (begin, end) ragged [B, (T')] and the transcoded text they index.
        """
        tok: WordTokenizer = self.tokenizer
        text = tf.strings.unicode_transcode(
            text, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD, replace_control_characters=False
        )
        # The tokenizer turns NUL into U+FFFD (3 bytes); \x01 (1 byte) is dropped the same way and
        # equally stops a special token from matching, and keeps byte offsets those of the input.
        text = tf.strings.regex_replace(text, r"\x00", "\x01")
        pieces, p_begin, _ = tf_text.regex_split_with_offsets(text, tok.special_pattern, tok.special_pattern)
        flat = pieces.flat_values
        is_special = tf.strings.regex_full_match(flat, tok.special_pattern)
        words, w_begin, w_end = tf_text.regex_split_with_offsets(
            tf.where(is_special, "", flat), tok.split_pattern, tok.keep_pattern
        )
        one = tf.cast(is_special, tf.int64)
        special_len = tf.boolean_mask(tf.strings.length(flat), is_special)
        words = tf.concat([words, tf.RaggedTensor.from_row_lengths(tf.boolean_mask(flat, is_special), one)], axis=1)
        w_begin = tf.concat([w_begin, tf.RaggedTensor.from_row_lengths(tf.zeros_like(special_len, tf.int64), one)], 1)
        w_end = tf.concat([w_end, tf.RaggedTensor.from_row_lengths(tf.cast(special_len, tf.int64), one)], axis=1)
        shift = tf.repeat(p_begin.flat_values, words.row_lengths())  # piece start inside its text
        word_special = tf.repeat(is_special, words.row_lengths())
        w_begin = pieces.with_flat_values(w_begin).merge_dims(1, 2).with_flat_values(w_begin.flat_values + shift)
        w_end = pieces.with_flat_values(w_end).merge_dims(1, 2).with_flat_values(w_end.flat_values + shift)
        # Each original word, normalised alone and split again (normalisation can create a split
        # character, e.g. U+1FEF -> "`"), then wordpieces per sub-word as the tokenizer makes them.
        wv = words.flat_values
        subs = tf_text.regex_split(tok.normalize(tf.where(word_special, "", wv)), tok.split_pattern, tok.keep_pattern)
        special_subs = tf.RaggedTensor.from_row_lengths(
            tf.boolean_mask(wv, word_special), tf.cast(word_special, tf.int64)
        )
        subs = tf.concat([subs, special_subs], axis=1)
        per_sub = tok.wordpieces(subs.flat_values).row_lengths()
        per_word = tf.reduce_sum(subs.with_flat_values(per_sub), axis=1)  # wordpieces of each original word
        word_of_piece = tf.repeat(tf.range(tf.shape(per_word, out_type=tf.int64)[0]), per_word)
        per_text = tf.reduce_sum(w_begin.with_flat_values(per_word), axis=1)
        begin = tf.RaggedTensor.from_row_lengths(tf.gather(w_begin.flat_values, word_of_piece), per_text)
        end = tf.RaggedTensor.from_row_lengths(tf.gather(w_end.flat_values, word_of_piece), per_text)
        return begin, end, text

    def _spans_of(self, text: tf.Tensor, win: dict[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        """Character spans [W] of the windows (module docstring, *Spans*)."""
        begin, end, text = self._word_pieces(text)
        # Byte offsets -> code point offsets: search every text's character starts at once.
        _, char_starts = tf.strings.unicode_decode_with_offsets(text, "UTF-8")
        byte_base = tf.cumsum(tf.cast(tf.strings.length(text), tf.int64), exclusive=True)
        chars = char_starts.row_lengths()
        char_base = tf.cumsum(chars, exclusive=True)
        global_starts = char_starts.flat_values + tf.repeat(byte_base, chars)
        texts_of_begin = tf.repeat(tf.range(tf.shape(chars, out_type=tf.int64)[0]), begin.row_lengths())

        def to_chars(byte_offsets: tf.Tensor) -> tf.Tensor:
            at = byte_offsets + tf.gather(byte_base, texts_of_begin)
            return tf.searchsorted(global_starts, at, side="left", out_type=tf.int64) - tf.gather(
                char_base, texts_of_begin
            )

        begin_chars, end_chars = to_chars(begin.flat_values), to_chars(end.flat_values)
        # Window w of text b: its first and last wordpiece in that text's word-level tokenisation.
        b = win["text_index"]
        agrees = tf.equal(tf.cast(begin.row_lengths(), tf.int32), win["total"])  # same wordpieces as the tokenizer
        row_start = tf.gather(tf.cast(begin.row_starts(), tf.int32), b)
        limit = tf.maximum(tf.shape(begin_chars)[0] - 1, 0)
        pad = tf.zeros([1], tf.int64)  # so that gathering from no wordpieces at all is defined
        first = tf.gather(tf.concat([begin_chars, pad], 0), tf.clip_by_value(row_start + win["first"], 0, limit))
        last = tf.gather(tf.concat([end_chars, pad], 0), tf.clip_by_value(row_start + win["last"] - 1, 0, limit))
        empty = win["last"] <= win["first"]  # a text without wordpieces: [0, 0]
        n_chars = tf.gather(chars, b)
        start = tf.where(empty, tf.zeros_like(first), tf.where(tf.gather(agrees, b), first, tf.zeros_like(first)))
        stop = tf.where(empty, tf.zeros_like(last), tf.where(tf.gather(agrees, b), last, n_chars))
        return tf.cast(start, tf.int32), tf.cast(stop, tf.int32)


def attach(module: tf.Module) -> LongTextModule:
    """The long-text functions over a ``builder.ServingModule``'s tokenizer, encoder and pooling.

    Saved as a SavedModel of its own (``builder`` puts it in the export's ``long_text/``
    directory, signatures :meth:`LongTextModule.signatures`), not as signatures of the main one:
    loading them costs time and memory that a model never asked to chunk should not pay, and
    ``Encoder`` loads that directory on the first long-text call.
    """
    return LongTextModule(
        module.tokenizer,
        module.encoder,
        pooling=module.pooling,
        max_seq_length=module.max_seq_length,
        vector_length=module.vector_length,
    )
