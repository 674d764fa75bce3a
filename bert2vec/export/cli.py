"""``bert-export``: bake a BERT variant and its tokenizer into one strings-in, vectors-out SavedModel.

User errors (``ExportError``) print one line to stderr and exit 2 without a traceback; warnings
print one ``bert-export: warning:`` line each; Ctrl-C prints one line and exits 130 (once TensorFlow
is in play, at the next step boundary, ``bert2vec.export.interrupts``: never from inside a C++ call). Options,
the output path and the source are checked before TensorFlow is imported (``bert2vec.export.preflight``),
so a mistake is reported at once, and TensorFlow's start-up banners are kept off the terminal.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from bert2vec.core import contract
from bert2vec.core.tf_quiet import import_tensorflow as import_tensorflow_quietly
from bert2vec.export import catalogue, interrupts, user_cache


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bert-export",
        description="Export a BERT variant + tokenizer as ONE TensorFlow SavedModel (strings in, vectors out).",
    )
    p.add_argument(
        "--model",
        metavar="SOURCE",
        default=None,
        help="catalogue name (see --list), TF Hub/Kaggle handle, TF-Hub-format directory, Hugging Face "
        "BERT checkpoint directory, or Hugging Face model id (org/name[@revision]); default: the "
        "embedded all-MiniLM-L6-v2",
    )
    p.add_argument(
        "--output",
        metavar="DIR",
        help="directory to write the SavedModel into; without --model it defaults to the per-user cache "
        "($BERT2VEC_CACHE/models/default, else the user cache dir) where bert-encode and Bert2Vec() look",
    )
    p.add_argument("--preprocess", metavar="SOURCE", help="TF Hub preprocess model (handle or directory)")
    p.add_argument("--pooling", choices=contract.POOLINGS, help="default: pooled (Google), mean (default model)")
    norm = p.add_mutually_exclusive_group()
    norm.add_argument("--normalize", dest="normalize", action="store_true", default=True, help="L2-normalise (default)")
    norm.add_argument("--no-normalize", dest="normalize", action="store_false", help="return raw pooled vectors")
    p.add_argument("--max-seq-length", type=int, metavar="N", help="tokens per text incl. [CLS]/[SEP]; default: model maximum")
    p.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        default="fp32",
        help="bf16: dense layers in bfloat16 — faster on CPUs with AVX-512 BF16/AMX, vectors not bit-exact "
        "(default fp32, exact)",
    )
    p.add_argument(
        "--no-long-text",
        dest="long_text",
        action="store_false",
        help="leave out the long-text signatures (long_text=chunk): a faster, smaller load for functions "
        "that only ever truncate or reject over-long texts",
    )
    p.add_argument(
        "--no-split",
        dest="split",
        action="store_false",
        help="leave out the encoder split per core (serving_parts_2), which only a function with 2+ vCPUs "
        "uses: a smaller, faster load for 1-vCPU functions (Lambda memory up to 1,769 MB)",
    )
    p.add_argument("--force", action="store_true", help="replace DIR if it holds a previous export (and nothing else)")
    p.add_argument("--list", action="store_true", help="print the catalogue (name, handle, vector length) and exit")
    return p


def _print_catalogue() -> None:
    rows = [(e.name, e.handle, str(e.vector_length)) for e in catalogue.CATALOGUE.values()]
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    try:
        for name, handle, dim in rows:
            print(f"{name:<{widths[0]}}  {handle:<{widths[1]}}  {dim}")
        sys.stdout.flush()
    except BrokenPipeError:  # `bert-export --list | head`: the reader left; that is not an error
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # keep the interpreter's final flush quiet
        except (OSError, ValueError):
            pass


def _missing_tooling(args: argparse.Namespace) -> str | None:
    """One line naming the exact install command when the export tooling (or the default's weights) is absent."""
    if args.model is None:
        hint = user_cache.default_model_install_hint()
        if hint:
            return f"the embedded default model (all-MiniLM-L6-v2) needs the export tooling and its weights: {hint}"
        return None
    missing = user_cache.missing_modules(user_cache.EXPORT_EXTRA_MODULES)
    if missing:
        return f"bert-export needs the 'export' extra (missing {', '.join(missing)}): {user_cache.INSTALL_EXPORT_EXTRA}"
    return None


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    from bert2vec.export.errors import ExportWarning

    if issubclass(category, ExportWarning):
        print(f"bert-export: warning: {' '.join(str(message).split())}", file=sys.stderr)
    else:
        print(warnings.formatwarning(message, category, filename, lineno, line), end="", file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    from bert2vec.export.errors import ExportError, ExportWarning
    from bert2vec.export.preflight import ExportOptions, prepare

    opts = ExportOptions(
        source=args.model,
        preprocess=args.preprocess,
        pooling=args.pooling,
        normalize=args.normalize,
        max_seq_length=args.max_seq_length,
        force=args.force,
        precision=args.precision,
        long_text=args.long_text,
        split=args.split,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("always", ExportWarning)
        warnings.showwarning = _show_warning
        try:
            prepared = prepare(args.output, opts)  # no TensorFlow yet: Ctrl-C interrupts at once
            with interrupts.deferred():  # from here Ctrl-C stops the export between two steps
                import_tensorflow_quietly()
                interrupts.checkpoint("import TensorFlow")
                from bert2vec.export.builder import build

                card = build(prepared)
        except ExportError as exc:
            print(f"bert-export: error: {' '.join(str(exc).split())}", file=sys.stderr)
            return exc.exit_code
    print(json.dumps(card, indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.list:
            _print_catalogue()
            return 0
        missing = _missing_tooling(args)
        if missing:
            print(f"bert-export: error: {missing}", file=sys.stderr)
            return 2
        if not args.output and args.model is not None:
            print("bert-export: error: --output DIR is required with --model (or --list)", file=sys.stderr)
            return 2
        if not args.output:  # the embedded default, where bert-encode and Bert2Vec() look for it
            args.output = str(user_cache.default_model_cache())
            args.force = args.force or Path(args.output).exists()  # refresh; preflight still guards non-exports
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        return _run(args)
    except KeyboardInterrupt:
        print("bert-export: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
