"""Assemble tokenizer + encoder + pooling into ONE SavedModel and write it atomically.

The SavedModel contract (``bert2vec/core/contract.py``):
``serving_default(text: string[None]) -> {embedding: float32[None, D], token_count: int32[None]}``.
Each batch is padded only to its own longest text (capped at ``max_seq_length``); truncation
keeps the closing ``[SEP]``; ``token_count`` counts wordpieces incl. ``[CLS]``/``[SEP]`` before
truncation, so callers can tell a text was cut.
"""

from __future__ import annotations

import datetime as _dt
import functools
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

from bert2vec.core import contract
from bert2vec.export import interrupts, long_text, sources
from bert2vec.export.errors import ExportError, IncompatibleModelError, OutputExistsError, OutputRefusedError, warn
from bert2vec.export.packing import pack
from bert2vec.export.pooling import Pooling
from bert2vec.export.preflight import ExportOptions, Prepared, is_previous_export, prepare

__all__ = ["PARTS_SIGNATURE", "ExportOptions", "ServingModule", "build", "export_model"]

#: Extra signatures (same input and outputs as ``serving_default``) for encoders that can split
#: each layer into branches run on several cores (``bert2vec.export.bert_graph``): one text, all cores.
PARTS_SIGNATURE = "serving_parts_{}"

LOAD_HINT = (
    "import tensorflow_text before tf.saved_model.load(): the in-graph tokenizer uses its ops "
    "(without it loading fails with \"Op type not registered\"); tensorflow-text must match "
    "tensorflow's minor version"
)


class Tokenizer(Protocol):
    cls_id: int
    sep_id: int
    pad_id: int
    vocab_size: int

    def tokenize(self, text: tf.Tensor) -> tf.RaggedTensor: ...


class Encoder(Protocol):
    def __call__(self, word_ids: tf.Tensor, mask: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor | None]: ...


class ServingModule(tf.Module):
    """strings → (embedding, token_count), with tokenizer and encoder tracked for saving.

    ``pooling``, ``max_seq_length`` and ``vector_length`` are public: ``bert2vec.export.long_text`` builds
    its signatures over the same tokenizer, encoder and pooling.
    """

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
        self.pooling = Pooling(pooling, bool(normalize))
        self.max_seq_length = int(max_seq_length)
        self.vector_length = int(vector_length)
        spec = [tf.TensorSpec([None], tf.string, name=contract.INPUT_KEY)]
        self.serve = tf.function(self._serve, input_signature=spec)
        #: Branch counts of the split graphs (``serving_parts_<n>``): empty with ``--no-split``, or for an
        #: encoder served as restored (a TF Hub graph that could not be rebuilt).
        self.split_parts = tuple(p for p in getattr(encoder, "parts_counts", (1,)) if p > 1)
        self.split_serves = {
            PARTS_SIGNATURE.format(p): tf.function(functools.partial(self._serve, parts=p), input_signature=spec)
            for p in self.split_parts
        }
        # Not part of the contract: exposes packing so tests and debugging can see the padded ids.
        self.pack = tf.function(self._pack, input_signature=spec)

    def _pack(self, text: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        ids = self.tokenizer.tokenize(text)  # int32 ragged [B, (T)], no specials
        tok = self.tokenizer
        word_ids, mask = pack(ids, self.max_seq_length, cls_id=tok.cls_id, sep_id=tok.sep_id, pad_id=tok.pad_id)
        token_count = tf.cast(ids.row_lengths(), tf.int32) + 2
        return word_ids, mask, token_count

    def _serve(self, text: tf.Tensor, parts: int = 1) -> dict[str, tf.Tensor]:
        word_ids, mask, token_count = self._pack(text)
        split = {"parts": parts} if parts > 1 else {}
        sequence_output, pooled_output = self.encoder(word_ids, mask, **split)
        emb = self.pooling.finish(self.pooling.pool(sequence_output, pooled_output, mask))
        emb = tf.ensure_shape(emb, [None, self.vector_length])
        return {contract.OUTPUT_EMBEDDING: emb, contract.OUTPUT_TOKEN_COUNT: token_count}


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
    from bert2vec.export.tokenizer import BertTokenizerModule

    special = special or {}
    try:
        return BertTokenizerModule(
            str(vocab_file),
            lower_case,
            unk_token=special.get("unk", "[UNK]"),
            cls_token=special.get("cls", "[CLS]"),
            sep_token=special.get("sep", "[SEP]"),
            pad_token=special.get("pad", "[PAD]"),
            mask_token=special.get("mask", "[MASK]"),
        )
    except ValueError as exc:  # the vocabulary file is the user's input
        raise IncompatibleModelError(str(exc)) from exc


def _preprocess_tokenizer(preprocess: str):
    from bert2vec.export import tfhub_source as th

    where = preprocess
    path = th.resolve_handle(preprocess) if th.is_handle(preprocess) else Path(preprocess)
    return th.HubPreprocessTokenizer(th.load_savedmodel(path, "preprocess model"), where)


def split_parts(opts: ExportOptions) -> tuple[int, ...]:
    """The split-graph sizes to export besides the unsplit graph: the default, or none (``--no-split``)."""
    from bert2vec.export.bert_graph import DEFAULT_PARTS

    return DEFAULT_PARTS if opts.split else ()


def _assemble_hf(prep: Prepared) -> _Assembled:
    from bert2vec.export.bert_graph import BertEncoderModule
    from bert2vec.export.hf_checkpoint import load_hf_bert

    plan = prep.plan
    hf = load_hf_bert(Path(plan.encoder), prep.hf)
    if plan.preprocess:
        tokenizer = _preprocess_tokenizer(plan.preprocess)
        if tokenizer.vocab_size != hf.config.vocab_size:
            raise IncompatibleModelError(
                f"{plan.preprocess}: vocabulary of {tokenizer.vocab_size} entries does not fit "
                f"{plan.encoder} ({hf.config.vocab_size} embedding rows)"
            )
    else:
        tokenizer = _tokenizer_from_vocab(hf.vocab_file, hf.lower_case, hf.special_tokens)
    encoder = BertEncoderModule(hf.config, hf.weights, precision=prep.opts.precision, parts=split_parts(prep.opts))
    has_pooler = hf.weights.pooler_kernel is not None
    pooling = hf.st_pooling or ("pooled" if has_pooler else "mean")
    default_len = min(hf.st_max_seq_length or hf.config.max_position, hf.config.max_position)
    return _Assembled(
        tokenizer, encoder, pooling, hf.config.max_position, default_len,
        hf.lower_case, hf.config.vocab_size, has_pooler, False,
    )  # fmt: skip


def _assemble_tfhub(prep: Prepared) -> _Assembled:
    from bert2vec.export import tfhub_source as th
    from bert2vec.export.hf_checkpoint import warn_if_cased_off_on_uncased_vocab

    plan = prep.plan
    where = plan.encoder
    path = th.resolve_handle(plan.encoder) if th.is_handle(plan.encoder) else Path(plan.encoder)
    encoder = th.HubEncoder(
        th.load_savedmodel(path, "encoder"), where, precision=prep.opts.precision, parts=split_parts(prep.opts)
    )
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
    if lower_case is False and vocab_file is not None:
        warn_if_cased_off_on_uncased_vocab(vocab_file, f"{where}: do_lower_case is false")
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


def _requirement(module_version: str, *distributions: str) -> str:
    """``dist==version`` for whichever of ``distributions`` is installed at that version."""
    from importlib.metadata import PackageNotFoundError, version

    for dist in distributions:
        try:
            if version(dist) == module_version:
                return f"{dist}=={module_version}"
        except PackageNotFoundError:
            continue
    return f"{distributions[0]}=={module_version}"


def _requires() -> list[str]:
    """What loading the SavedModel needs: this TensorFlow and the tensorflow-text that matches it."""
    import tensorflow_text

    return [
        _requirement(tf.__version__, "tensorflow", "tensorflow-cpu", "tensorflow-intel", "tensorflow-macos"),
        _requirement(tensorflow_text.__version__, "tensorflow-text", "tensorflow-text-nightly"),
    ]


def _describe_encoder(plan: sources.SourcePlan) -> str:
    """What the card records as the encoder: the package for the default, not a local site-packages path."""
    if plan.kind == "default":
        from importlib.metadata import version

        return f"{sources.DEFAULT_MODEL_PACKAGE}=={version(sources.DEFAULT_MODEL_PACKAGE)}"
    return plan.encoder


def _make_world_readable(root: Path) -> None:
    """Directories 0755, files 0644, whatever the umask or mkdtemp's 0700 said.

    Lambda runs the function as a non-root user, and copies that keep modes (``COPY``, ``cp -a``,
    ``tar``) would carry a 0700 directory into the image where that user cannot read it.
    """
    os.chmod(root, 0o755)
    for here, dirs, files in os.walk(root):
        for d in dirs:
            os.chmod(os.path.join(here, d), 0o755)
        for f in files:
            os.chmod(os.path.join(here, f), 0o644)


def _remove_tree(path: Path) -> OSError | None:
    """rmtree that first makes read-only directories writable (we own them); the error if it failed."""
    try:
        shutil.rmtree(path)
        return None
    except OSError:
        pass
    for here, dirs, _files in os.walk(path):
        for d in [here, *(os.path.join(here, d) for d in dirs)]:
            try:
                os.chmod(d, 0o700)
            except OSError:
                pass
    try:
        shutil.rmtree(path)
    except OSError as exc:
        return exc
    return None


def _replace_dir(tmp: Path, output: Path) -> None:
    """Move ``tmp`` to ``output``; a previous export there (``--force``) is swapped out, then removed."""
    if not os.path.lexists(output):
        os.rename(tmp, output)
        return
    if not is_previous_export(output):  # changed since the pre-flight check
        raise OutputRefusedError(f"--output {output}: is no longer a previous export; not replacing it")
    old = Path(tempfile.mkdtemp(prefix=f".{output.name}.old-", dir=output.parent))
    old.rmdir()
    os.rename(output, old)
    try:
        os.rename(tmp, output)
    except BaseException:
        os.rename(old, output)
        raise
    error = _remove_tree(old)
    if error is not None:
        warn(f"the previous export was replaced but its old copy {old} could not be removed ({error}); remove it")


def _created_parents(output: Path) -> list[Path]:
    """The missing parent directories of ``output``, outermost first."""
    missing = []
    parent = Path(os.path.abspath(output)).parent
    while not parent.exists() and parent != parent.parent:
        missing.append(parent)
        parent = parent.parent
    return missing[::-1]


def export_model(output: Path | str, opts: ExportOptions) -> dict[str, Any]:
    """Export ``opts.source`` to ``output``; returns the model card. Raises ``ExportError``."""
    return build(prepare(output, opts))


def build(prep: Prepared) -> dict[str, Any]:
    """The slow part of an export, after ``preflight.prepare`` checked the request."""
    output, opts, plan = prep.output, prep.opts, prep.plan
    interrupts.checkpoint("load the encoder and tokenizer")
    assembled = (_assemble_hf if plan.is_hf else _assemble_tfhub)(prep)
    interrupts.checkpoint("probe the encoder")

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

    interrupts.checkpoint("assemble the serving module")
    module = ServingModule(
        assembled.tokenizer,
        assembled.encoder,
        pooling=pooling,
        normalize=opts.normalize,
        max_seq_length=max_seq,
        vector_length=vector_length,
    )
    created = _created_parents(output)
    tmp = None
    try:
        for parent in created:
            parent.mkdir(mode=0o755)
            os.chmod(parent, 0o755)  # mkdir's mode is masked by the umask
        tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.tmp-", dir=output.parent))
        signatures = {contract.SIGNATURE_NAME: module.serve, **module.split_serves}
        # encode_long / encode_chunks (bert2vec/export/long_text.py): a SavedModel of their own in
        # long_text/, loaded by Encoder on first use, so serving without them loads nothing of them.
        long_module = long_text.attach(module) if opts.long_text else None
        long_signatures = long_module.signatures() if long_module is not None else {}
        for name, function in {**signatures, **long_signatures}.items():  # Ctrl-C is honoured in between
            interrupts.checkpoint(f"trace {name}")
            function.get_concrete_function()
        interrupts.checkpoint("save the SavedModel")
        tf.saved_model.save(module, str(tmp), signatures=signatures)
        if long_module is not None:
            interrupts.checkpoint("save the long-text SavedModel")
            tf.saved_model.save(long_module, str(tmp / contract.LONG_TEXT_DIR), signatures=long_signatures)
            # Its weights are the main SavedModel's, under the same checkpoint keys (both modules
            # hold them as .tokenizer / .encoder): read from there, not stored twice.
            shutil.rmtree(tmp / contract.LONG_TEXT_DIR / "variables")
        interrupts.checkpoint("write the model card")
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
            "precision": opts.precision,
            "long_text": bool(opts.long_text),
            "split_parts": sorted(module.split_parts),
            "max_seq_length": int(max_seq),
            "max_position": int(assembled.max_position),
            "lower_case": assembled.lower_case,
            "vocab_size": int(assembled.vocab_size),
            "versions": _versions(assembled.hub_used),
            "requires": _requires(),
            "load_hint": LOAD_HINT,
            "exported_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "checksum": _checksum(tmp),
        }
        (tmp / contract.MODEL_CARD_FILENAME).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
        _make_world_readable(tmp)
        interrupts.checkpoint("move the export into place")  # the last point where Ctrl-C undoes it all
        if os.path.lexists(output) and not opts.force:  # someone else won the race meanwhile
            raise OutputExistsError(f"{output} already exists; pass --force to replace it")
        _replace_dir(tmp, output)
    except BaseException as exc:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        for parent in reversed(created):
            try:
                parent.rmdir()
            except OSError:
                break
        if isinstance(exc, OSError) and not isinstance(exc, ExportError):
            raise OutputRefusedError(f"--output {output}: cannot write the export ({exc})") from exc
        raise
    return card
