"""Wordpiece rows → the encoder's padded ``[CLS] ... [SEP]`` input: one algorithm for every signature.

``serving_default`` packs texts (cut to ``max_seq_length``) and ``encode_long`` / ``encode_chunks``
pack windows (never longer than ``max_seq_length - 2``) with this same function, so a window holding
a whole text gets exactly the ids and mask ``serving_default`` gives that text.
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["pack"]


def pack(
    ids: tf.RaggedTensor, max_seq_length: int, *, cls_id: int, sep_id: int, pad_id: int
) -> tuple[tf.Tensor, tf.Tensor]:
    """``(word_ids, mask)``, int32 ``[B, W]``: ``[CLS]``, the first ``max_seq_length - 2`` ids, ``[SEP]``, padding.

    ``W`` is this batch's longest packed row (dynamic padding), never more than ``max_seq_length``;
    truncation keeps the closing ``[SEP]``. Dense index arithmetic rather than ragged
    slice/concat/``to_tensor``: the same ids without the ragged ops' validation branches, which
    would run on every call for input known to be valid.
    """
    cls_id, sep_id, pad_id = int(cls_id), int(sep_id), int(pad_id)
    lengths = tf.cast(ids.row_lengths(), tf.int32)
    kept = tf.minimum(lengths, max_seq_length - 2)[:, tf.newaxis]  # room for [CLS] ... [SEP]
    width = tf.reduce_max(tf.concat([kept[:, 0] + 2, [0]], axis=0))  # this batch's longest
    pos = tf.range(width)[tf.newaxis, :]  # [1, W]
    values = tf.concat([tf.cast(ids.flat_values, tf.int32), [pad_id]], axis=0)  # never empty
    starts = tf.cast(ids.row_starts(), tf.int32)[:, tf.newaxis]
    pieces = tf.gather(values, tf.clip_by_value(starts + pos - 1, 0, tf.size(values) - 1))
    word_ids = tf.where(
        (pos >= 1) & (pos <= kept),
        pieces,
        tf.where(pos == 0, cls_id, tf.where(pos == kept + 1, sep_id, pad_id)),
    )
    mask = tf.cast(pos <= kept + 1, tf.int32)
    return word_ids, mask
