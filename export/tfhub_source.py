"""TF Hub sources: resolve handles through ``tensorflow_hub`` and wrap restored models.

The restored encoder (TF Hub encoder v3/v4 interface) and preprocess model
(``bert_*_preprocess/3`` interface) are wrapped as-is, so the exported vectors are exactly what
TF Hub users compute with ``hub.load``. Only ``tensorflow_hub.resolve`` is used — never
``hub.KerasLayer`` — because that is a tf-keras layer that breaks inside Keras 3 and is not needed
to call a SavedModel.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import tensorflow as tf

from export.errors import HubUnavailableError, IncompatibleModelError, SourceFormatError
from export.sources import is_handle, is_savedmodel_dir

__all__ = ["HubEncoder", "HubPreprocessTokenizer", "is_handle", "is_savedmodel_dir", "load_savedmodel", "resolve_handle"]


def resolve_handle(handle: str) -> Path:
    """Local directory for ``handle``, downloading into ``TFHUB_CACHE_DIR`` if needed."""
    import tensorflow_hub as hub

    try:
        return Path(hub.resolve(handle))
    except Exception as exc:  # noqa: BLE001 - hub raises many unrelated types for "unreachable"
        cache = os.environ.get("TFHUB_CACHE_DIR", "<tensorflow_hub default cache>")
        key = hashlib.sha1(handle.encode("utf-8")).hexdigest()
        raise HubUnavailableError(
            f"cannot resolve TF Hub handle {handle!r}: {type(exc).__name__}: {exc}. "
            f"Without network access, place the uncompressed SavedModel at "
            f"$TFHUB_CACHE_DIR/{key}/ (TFHUB_CACHE_DIR={cache})"
        ) from exc


def load_savedmodel(path: Path, what: str) -> tf.Module:
    import tensorflow_text  # noqa: F401 - registers the ops preprocess models use

    if not is_savedmodel_dir(path):
        raise SourceFormatError(
            f"{path}: expected a TF-Hub-format {what} (a SavedModel directory with saved_model.pb)"
        )
    try:
        return tf.saved_model.load(str(path))
    except Exception as exc:  # noqa: BLE001 - surface any load failure as a user error
        raise SourceFormatError(f"{path}: cannot load the {what} SavedModel: {exc}") from exc


def _variables(obj: tf.Module) -> list[tf.Variable]:
    return list(getattr(obj, "variables", []) or [])


def _find_variable(obj: tf.Module, *fragments: str) -> tf.Variable | None:
    for var in _variables(obj):
        name = var.name.lower()
        if any(f in name for f in fragments):
            return var
    return None


class HubEncoder(tf.Module):
    """Adapter: restored TF Hub encoder → ``(sequence_output, pooled_output)``."""

    def __init__(self, restored: tf.Module, where: str) -> None:
        super().__init__(name="hub_encoder")
        if not callable(restored):
            raise SourceFormatError(f"{where}: the SavedModel is not callable; expected a TF Hub BERT encoder")
        self.restored = restored
        self._where = where

    def __call__(self, word_ids: tf.Tensor, mask: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor | None]:
        inputs = {
            "input_word_ids": word_ids,
            "input_mask": mask,
            "input_type_ids": tf.zeros_like(word_ids),
        }
        outputs = self.restored(inputs, training=False)
        if not isinstance(outputs, dict) or "sequence_output" not in outputs:
            raise SourceFormatError(
                f"{self._where}: encoder returned {type(outputs).__name__}; expected the TF Hub BERT "
                "encoder dict with 'sequence_output' and 'pooled_output'"
            )
        return outputs["sequence_output"], outputs.get("pooled_output")

    def vocab(self) -> tuple[Path | None, bool | None]:
        """The encoder's own ``vocab_file`` asset and ``do_lower_case`` flag, if it has them."""
        vocab = getattr(self.restored, "vocab_file", None)
        lower = getattr(self.restored, "do_lower_case", None)
        path = Path(vocab.asset_path.numpy().decode()) if vocab is not None else None
        return path, (bool(lower.numpy()) if lower is not None else None)

    def max_position(self) -> int:
        var = _find_variable(self.restored, "position_embedding")
        return int(var.shape[0]) if var is not None else 512

    def vocab_rows(self) -> int | None:
        var = _find_variable(self.restored, "word_embeddings")
        return int(var.shape[0]) if var is not None else None


class HubPreprocessTokenizer(tf.Module):
    """Adapter: restored ``bert_*_preprocess/3`` → tokenizer with the builder's interface.

    Uses the model's own ``tokenize`` (so tokens equal the preprocess model's), but not its
    ``bert_pack_inputs``: packing is ours, to pad each batch only to its longest text.
    """

    def __init__(self, restored: tf.Module, where: str) -> None:
        super().__init__(name="hub_preprocess")
        tokenize = getattr(restored, "tokenize", None)
        specials_fn = getattr(tokenize, "get_special_tokens_dict", None)
        if tokenize is None or specials_fn is None:
            raise SourceFormatError(
                f"{where}: expected a TF Hub BERT preprocess model with .tokenize and "
                ".tokenize.get_special_tokens_dict() (the bert_*_preprocess/3 interface)"
            )
        self.restored = restored
        specials = {k: int(v.numpy()) for k, v in specials_fn().items()}
        self.cls_id = specials["start_of_sequence_id"]
        self.sep_id = specials["end_of_segment_id"]
        self.pad_id = specials["padding_id"]
        self.vocab_size = specials["vocab_size"]
        self.lower_case = None  # not exposed by the interface; recorded from the encoder if known

    def tokenize(self, text: tf.Tensor) -> tf.RaggedTensor:
        pieces = self.restored.tokenize(text)  # [B, (words), (wordpieces)]
        if pieces.ragged_rank == 2:
            pieces = pieces.merge_dims(1, 2)
        return tf.cast(pieces, tf.int32)


def check_vocab_matches(encoder: HubEncoder, vocab_size: int, where: str) -> None:
    rows = encoder.vocab_rows()
    if rows is not None and rows != vocab_size:
        raise IncompatibleModelError(
            f"{where}: the tokenizer's vocabulary has {vocab_size} entries but the encoder's word "
            f"embedding matrix has {rows} rows; they must be equal (wrong preprocess model?)"
        )
