"""Everything ``bert-export`` can check before it imports TensorFlow, in well under a second.

Options, the output path (``--force`` replaces only a previous export; never the current directory,
the source or one of their ancestors; the parent must be writable), the source (catalogue name,
handle, directory, Hugging Face id — an id is fetched here) and, for Hugging Face checkpoints, the
whole checkpoint except the weight values. ``prepare`` returns what the build step needs, so a
mistake is reported before the slow part starts and nothing is left behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bert2vec.core import contract
from bert2vec.export import sources
from bert2vec.export.errors import (
    IncompatibleModelError,
    InvalidOptionError,
    OutputExistsError,
    OutputRefusedError,
    warn,
)
from bert2vec.export.hf_checkpoint import HfCheckpoint, inspect_hf_checkpoint

MIN_SEQ_LENGTH = 3  # [CLS], one token, [SEP]


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
    precision: str = "fp32"  # "bf16": dense kernels in bfloat16 (opt-in, see bert2vec.export.bert_graph)
    #: The ``encode_long`` / ``encode_chunks`` signatures (``long_text: chunk``). False leaves them out:
    #: loading is then ~1 s faster and ~90 MB smaller for the embedded default (docs/performance.md).
    long_text: bool = True
    #: The encoder split into branches per layer (``serving_parts_2``), which ``Encoder`` runs for a
    #: single batch when it has 2+ CPUs. False leaves the split graph and its extra kernel copies out:
    #: smaller and faster to load, for functions with one vCPU, which never use it.
    split: bool = True


@dataclass
class Prepared:
    """A checked request: where to write, what to read, and the checked HF checkpoint if any."""

    output: Path
    opts: ExportOptions
    plan: sources.SourcePlan
    hf: HfCheckpoint | None


def check_options(opts: ExportOptions) -> None:
    if opts.max_seq_length is not None and opts.max_seq_length < MIN_SEQ_LENGTH:
        raise InvalidOptionError(
            f"--max-seq-length {opts.max_seq_length}: must be at least {MIN_SEQ_LENGTH} ([CLS], a token, [SEP])"
        )
    if opts.precision not in ("fp32", "bf16"):
        raise InvalidOptionError(f"--precision {opts.precision!r}: choose fp32 or bf16")
    if opts.pooling is not None and opts.pooling not in contract.POOLINGS:
        raise InvalidOptionError(f"--pooling {opts.pooling!r}: choose one of {', '.join(contract.POOLINGS)}")


def is_previous_export(path: Path) -> bool:
    """A real directory holding a model card written by ``bert-export``."""
    card = path / contract.MODEL_CARD_FILENAME
    if path.is_symlink() or not path.is_dir() or not card.is_file():
        return False
    try:
        data = json.loads(card.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "contract_version" in data


def _within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def check_not_ancestor(output: Path, protected: Path, what: str) -> None:
    """Refuse an ``output`` that is ``protected`` itself or one of its parent directories."""
    if _within(protected.resolve(), output.resolve()):
        raise OutputRefusedError(
            f"--output {output}: is {what} or one of its parent directories; --force would delete it. "
            "Choose a new directory"
        )


def _nearest_existing(path: Path) -> Path:
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


def check_output(output: Path, opts: ExportOptions) -> None:
    """Refuse outputs that exist (without ``--force``), are not a previous export, or cannot be written."""
    if os.path.lexists(output):
        if not opts.force:
            raise OutputExistsError(f"{output} already exists; pass --force to replace it")
        check_not_ancestor(output, Path.cwd(), "the current directory")
        for name, value in (("the source", opts.source), ("the preprocess model", opts.preprocess)):
            if value and Path(value).expanduser().exists():
                check_not_ancestor(output, Path(value).expanduser(), name)
        if output.is_symlink():
            kind = "a symbolic link"
        elif not output.is_dir():
            kind = "a file"
        elif not is_previous_export(output):
            kind = f"a directory without {contract.MODEL_CARD_FILENAME} (not written by bert-export)"
        else:
            kind = None
        if kind is not None:
            raise OutputRefusedError(
                f"--output {output}: is {kind}; --force replaces only a previous export. "
                "Remove it yourself or choose another directory"
            )
    parent = _nearest_existing(Path(os.path.abspath(output)).parent)
    if not parent.is_dir():
        raise OutputRefusedError(f"--output {output}: {parent} is not a directory")
    try:  # a real probe: access() says yes to root on read-only mounts and to /proc
        os.rmdir(tempfile.mkdtemp(prefix=f".{output.name}.probe-", dir=parent))
    except OSError as exc:
        raise OutputRefusedError(f"--output {output}: cannot write in {parent} ({exc.strerror or exc})") from exc


def prepare(output: Path | str, opts: ExportOptions) -> Prepared:
    """Check options, output and source (fetching a Hugging Face id); raise ``ExportError`` on any problem."""
    check_options(opts)
    output = Path(output).expanduser()
    check_output(output, opts)
    plan = sources.plan(opts.source, opts.preprocess)
    if opts.force and os.path.lexists(output) and plan.kind == "hf_hub":
        check_not_ancestor(output, Path(plan.encoder), "the Hugging Face cache snapshot")
    hf = None
    if plan.is_hf:
        hf = inspect_hf_checkpoint(Path(plan.encoder))
        for message in hf.warnings:
            warn(message)
        if opts.pooling == "pooled" and not hf.has_pooler:
            raise IncompatibleModelError(f"{plan.source}: the checkpoint has no pooler weights; use --pooling mean or cls")
        if opts.max_seq_length is not None and opts.max_seq_length > hf.config.max_position:
            raise InvalidOptionError(
                f"--max-seq-length {opts.max_seq_length}: must be between {MIN_SEQ_LENGTH} and the model's "
                f"maximum position {hf.config.max_position}"
            )
    return Prepared(output, opts, plan, hf)
