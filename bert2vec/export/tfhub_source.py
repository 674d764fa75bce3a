"""TF Hub sources: resolve handles through ``tensorflow_hub``, rebuild or wrap restored models.

An encoder (TF Hub encoder v3/v4 interface) whose variables have TF Model Garden's ``BertEncoder``
layout — every TF2 BERT Google put on TF Hub — is rebuilt on the project's tuned graph
(``bert2vec.export.bert_graph``) from those variables (``bert2vec.export.tfhub_weights``), with the activation the
restored graph computes (erf or tanh GELU). Before the restored model is let go, both are run on
the same probe batch and must agree, so the exported vectors are what TF Hub users compute with
``hub.load`` (to float32 rounding), from a SavedModel that loads about 3x faster and encodes a
little faster than one that wraps Google's Keras graph. An encoder with any other layout, or
one that disagrees on the probe, is wrapped as-is, with a warning. The preprocess model
(``bert_*_preprocess/3`` interface) is always wrapped: its ``tokenize`` defines the tokens.

Only ``tensorflow_hub.resolve`` is used — never ``hub.KerasLayer`` — because that is a tf-keras
layer that breaks inside Keras 3 and is not needed to call a SavedModel.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import tensorflow as tf

from bert2vec.export import tfhub_weights
from bert2vec.export.errors import HubUnavailableError, IncompatibleModelError, SourceFormatError, warn
from bert2vec.export.sources import is_handle, is_savedmodel_dir

# Largest difference between the rebuilt and the restored encoder on the probe batch, relative to
# the largest output value (at least 1), for the rebuilt one to be used. Float32 rounding stays
# near 1e-6; mixed-up weights land far above. (Random test weights cannot tell erf from tanh GELU
# apart, trained ones only by ~1e-5, so the activation is read from the restored graph instead.)
PROBE_TOLERANCE = 1e-4
# What keeping Google's restored graph costs, measured on a BERT-base-shaped encoder (2-core
# AMD EPYC, AVX-512, export with the same tokenizer and dynamic padding): SavedModel load 5.6-6.0 s
# vs 1.9-2.1 s, encoder 5-10 % slower per batch (8 x 40 and 8 x 128 tokens).
SLOW_PATH_COST = "which loads about 3x slower and encodes 5-10% slower than the tuned graph"

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


def _activation_in_graph(restored: tf.Module) -> str:
    """``"gelu"`` (erf) if the restored call graph computes ``Erf``, else Model Garden's tanh GELU."""
    ops: Counter[str] = Counter()
    for fn in getattr(restored.__call__, "concrete_functions", ()):
        graph_def = fn.graph.as_graph_def()
        ops.update(node.op for node in graph_def.node)
        for function in graph_def.library.function:
            ops.update(node.op for node in function.node_def)
    return "gelu" if ops["Erf"] else tfhub_weights.GARDEN_HIDDEN_ACT


def _probe(vocab_size: int, max_position: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Two rows of random ids, the second one half padding: exercises the mask as well."""
    seq = min(max_position, 32)
    ids = np.random.RandomState(0).randint(0, vocab_size, size=(2, seq)).astype(np.int32)
    mask = np.ones((2, seq), np.int32)
    mask[1, seq // 2 :] = 0
    return tf.constant(ids), tf.constant(mask)


def probe_difference(tuned: tf.Module, restored: tf.Module, word_ids: tf.Tensor, mask: tf.Tensor) -> float:
    """Max |tuned - restored| over real tokens' sequence outputs and pooled outputs, relative to
    the largest restored value (or 1, if that is smaller)."""
    ref = restored({"input_word_ids": word_ids, "input_mask": mask, "input_type_ids": tf.zeros_like(word_ids)}, training=False)
    seq, pooled = tuned(word_ids, mask)
    valid = mask.numpy().astype(bool)
    ref_seq = ref["sequence_output"].numpy()[valid]
    diff = float(np.max(np.abs(seq.numpy()[valid] - ref_seq)))
    if pooled is not None and "pooled_output" in ref:
        diff = max(diff, float(np.max(np.abs(pooled.numpy() - ref["pooled_output"].numpy()))))
    return diff / max(1.0, float(np.max(np.abs(ref_seq))))


def rebuild_encoder(
    restored: tf.Module, where: str, precision: str = "fp32", parts: Sequence[int] | None = None
) -> tf.Module | None:
    """The restored encoder rebuilt on the tuned graph, or ``None`` (with a warning) if it cannot be.

    The probe always compares the float32 rebuild; a ``bf16`` encoder is built from the same
    weights only once that rebuild is proven faithful."""
    from bert2vec.export.bert_graph import BertEncoderModule

    variables = {v.name: v for v in _variables(restored)}
    try:
        config, weights = tfhub_weights.convert(variables)
    except tfhub_weights.LayoutMismatch as exc:
        warn(
            f"{where}: the encoder's variables are not TF Model Garden's BertEncoder layout ({exc}); "
            f"exporting its restored TF Hub graph as-is, {SLOW_PATH_COST}"
        )
        return None
    config = replace(config, hidden_act=_activation_in_graph(restored))
    split = {} if parts is None else {"parts": parts}
    tuned = BertEncoderModule(config, weights, **split)
    try:
        diff = probe_difference(tuned, restored, *_probe(config.vocab_size, config.max_position))
    except Exception as exc:  # noqa: BLE001 - any failure here means: keep the restored graph
        diff, why = float("inf"), f"{type(exc).__name__}: {exc}"
    else:
        why = f"max relative difference {diff:.1e}"
    if not diff <= PROBE_TOLERANCE:
        warn(
            f"{where}: the encoder rebuilt from its variables does not reproduce the restored TF Hub "
            f"graph ({why}); exporting the restored graph as-is, {SLOW_PATH_COST}"
        )
        return None
    return tuned if precision == "fp32" else BertEncoderModule(config, weights, precision=precision, **split)


class HubEncoder(tf.Module):
    """Adapter: TF Hub encoder → ``(sequence_output, pooled_output)``.

    With ``rebuild`` (the default) the encoder runs on the tuned graph when ``rebuild_encoder``
    can rebuild it (then only that graph's variables are saved), else the restored graph is called.
    """

    def __init__(
        self,
        restored: tf.Module,
        where: str,
        *,
        rebuild: bool = True,
        precision: str = "fp32",
        parts: Sequence[int] | None = None,
    ) -> None:
        super().__init__(name="hub_encoder")
        if not callable(restored):
            raise SourceFormatError(f"{where}: the SavedModel is not callable; expected a TF Hub BERT encoder")
        self._where = where
        vocab = getattr(restored, "vocab_file", None)
        lower = getattr(restored, "do_lower_case", None)
        self._vocab = (
            Path(vocab.asset_path.numpy().decode()) if vocab is not None else None,
            bool(lower.numpy()) if lower is not None else None,
        )
        self.tuned = rebuild_encoder(restored, where, precision, parts) if rebuild else None
        if self.tuned is None and precision != "fp32":
            warn(f"{where}: --precision {precision} needs the tuned graph; the restored graph runs in float32")
        if self.tuned is None:
            self.restored = restored
            var = _find_variable(restored, "position_embedding")
            self._max_position = int(var.shape[0]) if var is not None else 512
            var = _find_variable(restored, "word_embeddings")
            self._vocab_rows = int(var.shape[0]) if var is not None else None
        else:  # the restored model is not kept: it would be saved alongside, and holds memory
            self._max_position = self.tuned.config.max_position
            self._vocab_rows = self.tuned.config.vocab_size

    @property
    def rebuilt(self) -> bool:
        """Whether the encoder runs on the tuned graph (not Google's restored one)."""
        return self.tuned is not None

    @property
    def parts_counts(self) -> tuple[int, ...]:
        """Branch counts ``__call__`` accepts (the tuned graph's split-per-core variants), 1 first."""
        return tuple(getattr(self.tuned, "parts_counts", (1,))) if self.tuned is not None else (1,)

    def __call__(self, word_ids: tf.Tensor, mask: tf.Tensor, parts: int = 1) -> tuple[tf.Tensor, tf.Tensor | None]:
        if parts not in self.parts_counts:
            raise ValueError(f"parts={parts}: this encoder supports {self.parts_counts}")
        if self.tuned is not None:
            return self.tuned(word_ids, mask, **({"parts": parts} if parts > 1 else {}))
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
        return self._vocab

    def max_position(self) -> int:
        return self._max_position

    def vocab_rows(self) -> int | None:
        return self._vocab_rows


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
