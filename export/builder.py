"""Assemble tokenizer + encoder + pooling into ONE SavedModel and write it atomically.

The SavedModel contract (``function/contract.py``, GUIDE.md §3):
``serving_default(text: string[None]) -> {embedding: float32[None, D], token_count: int32[None]}``.
Each batch is padded only to its own longest text (capped at ``max_seq_length``); truncation
keeps the closing ``[SEP]``; ``token_count`` counts wordpieces incl. ``[CLS]``/``[SEP]`` before
truncation, so callers can tell a text was cut.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import tensorflow as tf

from export import sources
from export.errors import IncompatibleModelError, OutputExistsError
from function import contract


class Tokenizer(Protocol):
    cls_id: int
    sep_id: int
    pad_id: int
    vocab_size: int

    def tokenize(self, text: tf.Tensor) -> tf.RaggedTensor: ...


class Encoder(Protocol):
    def __call__(self, word_ids: tf.Tensor, mask: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor | None]: ...


class ServingModule(tf.Module):
    """strings → (embedding, token_count), with tokenizer and encoder tracked for saving."""

    def __init__(
        self,
        tokenizer: tf.Module,
        encoder: tf.Module,
        *,
        pooling: str,
        normalize: bool,
        max_seq_length: int,
        vector_length: int,
    ) -> None:
        super().__init__(name="bert2vec")
        self.tokenizer = tokenizer
        self.encoder = encoder
        self._pooling = pooling
        self._normalize = normalize
        self._max_seq_length = int(max_seq_length)
        self._vector_length = int(vector_length)
        self._cls = int(tokenizer.cls_id)
        self._sep = int(tokenizer.sep_id)
        self._pad = int(tokenizer.pad_id)
        spec = [tf.TensorSpec([None], tf.string, name=contract.INPUT_KEY)]
        self.serve = tf.function(self._serve, input_signature=spec)
        # Not part of the contract: exposes packing so tests and debugging can see the padded ids.
        self.pack = tf.function(self._pack, input_signature=spec)

    def _pack(self, text: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        ids = self.tokenizer.tokenize(text)  # int32 ragged [B, (T)], no specials
        token_count = tf.cast(ids.row_lengths(), tf.int32) + 2
        ids = ids[:, : self._max_seq_length - 2]  # keep room for [CLS] ... [SEP]
        batch = ids.nrows()
        cls = tf.RaggedTensor.from_tensor(tf.fill([batch, 1], tf.constant(self._cls, tf.int32)))
        sep = tf.RaggedTensor.from_tensor(tf.fill([batch, 1], tf.constant(self._sep, tf.int32)))
        packed = tf.concat([cls, ids, sep], axis=1)
        word_ids = packed.to_tensor(default_value=self._pad)  # padded to this batch's longest
        mask = tf.sequence_mask(packed.row_lengths(), maxlen=tf.shape(word_ids)[1], dtype=tf.int32)
        return word_ids, mask, token_count

    def _serve(self, text: tf.Tensor) -> dict[str, tf.Tensor]:
        word_ids, mask, token_count = self._pack(text)
        sequence_output, pooled_output = self.encoder(word_ids, mask)
        if self._pooling == "pooled":
            emb = pooled_output
        elif self._pooling == "cls":
            emb = sequence_output[:, 0]
        else:  # mean over real tokens, as sentence-transformers' Pooling does
            m = tf.cast(mask, sequence_output.dtype)[:, :, tf.newaxis]
            emb = tf.reduce_sum(sequence_output * m, axis=1) / tf.maximum(tf.reduce_sum(m, axis=1), 1e-9)
        emb = tf.cast(emb, tf.float32)
        if self._normalize:  # torch.nn.functional.normalize semantics (eps on the norm)
            emb = emb / tf.maximum(tf.norm(emb, axis=-1, keepdims=True), 1e-12)
        emb = tf.ensure_shape(emb, [None, self._vector_length])
        return {contract.OUTPUT_EMBEDDING: emb, contract.OUTPUT_TOKEN_COUNT: token_count}


@dataclass
class ExportOptions:
    """What ``bert-export`` was asked for; ``None`` means 'the source's default'."""

    source: str | None = None
    preprocess: str | None = None
    pooling: str | None = None
    normalize: bool = True
    max_seq_length: int | None = None
    force: bool = False
    name: str | None = None


@dataclass
class _Assembled:
    tokenizer: tf.Module
    encoder: tf.Module
    pooling: str
    max_position: int
    default_max_seq_length: int
    lower_case: bool | None
    vocab_size: int
    has_pooler: bool | None
    hub_used: bool


def _tokenizer_from_vocab(vocab_file: Path, lower_case: bool, special: dict[str, str] | None = None):
    from export.tokenizer import BertTokenizerModule

    special = special or {}
    return BertTokenizerModule(
        str(vocab_file),
        lower_case,
        unk_token=special.get("unk", "[UNK]"),
        cls_token=special.get("cls", "[CLS]"),
        sep_token=special.get("sep", "[SEP]"),
        pad_token=special.get("pad", "[PAD]"),
        mask_token=special.get("mask", "[MASK]"),
    )


def _preprocess_tokenizer(preprocess: str):
    from export import tfhub_source as th

    where = preprocess
    path = th.resolve_handle(preprocess) if th.is_handle(preprocess) else Path(preprocess)
    return th.HubPreprocessTokenizer(th.load_savedmodel(path, "preprocess model"), where)


def _assemble_hf(plan: sources.SourcePlan, opts: ExportOptions) -> _Assembled:
    from export.bert_graph import BertEncoderModule
    from export.hf_checkpoint import load_hf_bert

    hf = load_hf_bert(Path(plan.encoder))
    if plan.preprocess:
        tokenizer = _preprocess_tokenizer(plan.preprocess)
        if tokenizer.vocab_size != hf.config.vocab_size:
            raise IncompatibleModelError(
                f"{plan.preprocess}: vocabulary of {tokenizer.vocab_size} entries does not fit "
                f"{plan.encoder} ({hf.config.vocab_size} embedding rows)"
            )
    else:
        tokenizer = _tokenizer_from_vocab(hf.vocab_file, hf.lower_case, hf.special_tokens)
    encoder = BertEncoderModule(hf.config, hf.weights)
    has_pooler = hf.weights.pooler_kernel is not None
    pooling = hf.st_pooling or ("pooled" if has_pooler else "mean")
    default_len = min(hf.st_max_seq_length or hf.config.max_position, hf.config.max_position)
    return _Assembled(
        tokenizer, encoder, pooling, hf.config.max_position, default_len,
        hf.lower_case, hf.config.vocab_size, has_pooler, False,
    )  # fmt: skip


def _assemble_tfhub(plan: sources.SourcePlan, opts: ExportOptions) -> _Assembled:
    from export import tfhub_source as th

    where = plan.encoder
    path = th.resolve_handle(plan.encoder) if th.is_handle(plan.encoder) else Path(plan.encoder)
    encoder = th.HubEncoder(th.load_savedmodel(path, "encoder"), where)
    vocab_file, lower_case = encoder.vocab()
    if plan.preprocess:
        tokenizer = _preprocess_tokenizer(plan.preprocess)
    else:
        if vocab_file is None or lower_case is None:
            raise IncompatibleModelError(
                f"{where}: the encoder has no vocab_file/do_lower_case attributes, so a tokenizer "
                "cannot be built from it; pass --preprocess with its matching preprocess model"
            )
        tokenizer = _tokenizer_from_vocab(vocab_file, lower_case)
    th.check_vocab_matches(encoder, tokenizer.vocab_size, where)
    max_position = encoder.max_position()
    return _Assembled(
        tokenizer, encoder, plan.default_pooling, max_position, max_position,
        lower_case, tokenizer.vocab_size, None, True,
    )  # fmt: skip


def _checksum(directory: Path) -> str:
    """sha256 over every file of the SavedModel (relative path + content), card excluded."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        rel = path.relative_to(directory).as_posix()
        if rel == contract.MODEL_CARD_FILENAME:
            continue
        digest.update(rel.encode() + b"\0")
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def _versions(hub_used: bool) -> dict[str, str]:
    import tensorflow_text

    versions = {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "tensorflow_text": tensorflow_text.__version__,
    }
    if hub_used:
        import tensorflow_hub

        versions["tensorflow_hub"] = tensorflow_hub.__version__
    return versions


def _describe_encoder(plan: sources.SourcePlan) -> str:
    """What the card records as the encoder: the package for the default, not a local site-packages path."""
    if plan.kind == "default":
        from importlib.metadata import version

        return f"{sources.DEFAULT_MODEL_PACKAGE}=={version(sources.DEFAULT_MODEL_PACKAGE)}"
    return plan.encoder


def _replace_dir(tmp: Path, output: Path) -> None:
    """Move ``tmp`` to ``output``; an old ``output`` (``--force``) is swapped out, then removed."""
    old = None
    if output.exists():
        old = output.with_name(f".{output.name}.old-{os.getpid()}")
        os.rename(output, old)
    os.rename(tmp, output)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def export_model(output: Path | str, opts: ExportOptions) -> dict[str, Any]:
    """Export ``opts.source`` to ``output``; returns the model card. Raises ``ExportError``."""
    output = Path(output)
    if output.exists() and not opts.force:
        raise OutputExistsError(f"{output} already exists; pass --force to replace it")
    plan = sources.plan(opts.source, opts.preprocess)
    assembled = (_assemble_hf if plan.kind in ("default", "hf_checkpoint") else _assemble_tfhub)(plan, opts)

    pooling = opts.pooling or assembled.pooling
    if pooling not in contract.POOLINGS:
        raise IncompatibleModelError(f"--pooling {pooling!r}: choose one of {', '.join(contract.POOLINGS)}")
    if pooling == "pooled" and assembled.has_pooler is False:
        raise IncompatibleModelError(f"{plan.source}: the checkpoint has no pooler weights; use --pooling mean or cls")
    max_seq = opts.max_seq_length or assembled.default_max_seq_length
    if not 3 <= max_seq <= assembled.max_position:
        raise IncompatibleModelError(
            f"--max-seq-length {max_seq}: must be between 3 and the model's maximum position "
            f"{assembled.max_position}"
        )

    # Probe once to learn D (and fail here, not in serving, if the encoder misbehaves).
    probe_ids = tf.constant([[assembled.tokenizer.cls_id, assembled.tokenizer.sep_id]], tf.int32)
    seq, pooled = assembled.encoder(probe_ids, tf.ones_like(probe_ids))
    if pooling == "pooled" and pooled is None:
        raise IncompatibleModelError(f"{plan.source}: the encoder has no pooled_output; use --pooling mean or cls")
    vector_length = int(seq.shape[-1])

    module = ServingModule(
        assembled.tokenizer,
        assembled.encoder,
        pooling=pooling,
        normalize=opts.normalize,
        max_seq_length=max_seq,
        vector_length=vector_length,
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.tmp-", dir=output.parent))
    try:
        tf.saved_model.save(module, str(tmp), signatures={contract.SIGNATURE_NAME: module.serve})
        card = {
            "contract_version": contract.CONTRACT_VERSION,
            "name": opts.name or plan.name,
            "source": plan.source,
            "source_kind": plan.kind,
            "encoder": _describe_encoder(plan),
            "preprocess": plan.preprocess,
            "vector_length": vector_length,
            "pooling": pooling,
            "normalize": bool(opts.normalize),
            "max_seq_length": int(max_seq),
            "max_position": int(assembled.max_position),
            "lower_case": assembled.lower_case,
            "vocab_size": int(assembled.vocab_size),
            "versions": _versions(assembled.hub_used),
            "exported_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "checksum": _checksum(tmp),
        }
        (tmp / contract.MODEL_CARD_FILENAME).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
        if output.exists() and not opts.force:  # someone else won the race meanwhile
            raise OutputExistsError(f"{output} already exists; pass --force to replace it")
        _replace_dir(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return card
