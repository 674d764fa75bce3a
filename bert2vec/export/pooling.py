"""Token vectors → one vector per row, and its L2 normalisation: one definition for every signature.

``serving_default`` (and its ``serving_parts_*`` twins), ``encode_long`` and ``encode_chunks`` all
pool through :class:`Pooling`, so a window of ``encode_chunks`` is pooled and normalised exactly as
``serving_default`` pools and normalises a text of the same wordpieces. Written twice, the copies
could drift and the long-text vectors would stop matching the short ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

__all__ = ["Pooling", "l2_normalize"]

#: sentence-transformers' Pooling clamps the token count with this before dividing.
_MEAN_EPS = 1e-9
#: ``torch.nn.functional.normalize``'s eps on the norm.
_NORM_EPS = 1e-12


def l2_normalize(emb: tf.Tensor) -> tf.Tensor:
    """Rows divided by their L2 norm, ``torch.nn.functional.normalize`` semantics (eps on the norm)."""
    return emb / tf.maximum(tf.norm(emb, axis=-1, keepdims=True), _NORM_EPS)


@dataclass(frozen=True)
class Pooling:
    """A model's pooling (``contract.POOLINGS``) and whether it L2-normalises."""

    method: str
    normalize: bool

    def pool(self, sequence_output: tf.Tensor, pooled_output: tf.Tensor | None, mask: tf.Tensor) -> tf.Tensor:
        """float32 ``[B, D]`` from the encoder's outputs, *before* normalisation.

        ``mean`` averages the real (mask = 1) tokens, [CLS] and [SEP] included, as
        sentence-transformers does; ``cls`` is the [CLS] row; ``pooled`` is BERT's pooler output.
        """
        if self.method == "pooled":
            emb = pooled_output
        elif self.method == "cls":
            emb = sequence_output[:, 0]
        else:
            m = tf.cast(mask, sequence_output.dtype)[:, :, tf.newaxis]
            emb = tf.reduce_sum(sequence_output * m, axis=1) / tf.maximum(tf.reduce_sum(m, axis=1), _MEAN_EPS)
        return tf.cast(emb, tf.float32)

    def finish(self, emb: tf.Tensor) -> tf.Tensor:
        """``emb`` L2-normalised when the model normalises, else unchanged."""
        return l2_normalize(emb) if self.normalize else emb
