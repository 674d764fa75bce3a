"""``bert-export``: bake a BERT variant and its tokenizer into one strings-in, vectors-out SavedModel.

User errors (``ExportError``) print one line to stderr and exit non-zero without a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from export import catalogue
from export.errors import ExportError
from function import contract


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bert-export",
        description="Export a BERT variant + tokenizer as ONE TensorFlow SavedModel (strings in, vectors out).",
    )
    p.add_argument(
        "--model",
        metavar="SOURCE",
        default=None,
        help="catalogue name (see --list), TF Hub/Kaggle handle, TF-Hub-format directory, or Hugging "
        "Face BERT checkpoint directory; default: the embedded all-MiniLM-L6-v2",
    )
    p.add_argument("--output", metavar="DIR", help="directory to write the SavedModel into")
    p.add_argument("--preprocess", metavar="SOURCE", help="TF Hub preprocess model (handle or directory)")
    p.add_argument("--pooling", choices=contract.POOLINGS, help="default: pooled (Google), mean (default model)")
    norm = p.add_mutually_exclusive_group()
    norm.add_argument("--normalize", dest="normalize", action="store_true", default=True, help="L2-normalise (default)")
    norm.add_argument("--no-normalize", dest="normalize", action="store_false", help="return raw pooled vectors")
    p.add_argument("--max-seq-length", type=int, metavar="N", help="tokens per text incl. [CLS]/[SEP]; default: model maximum")
    p.add_argument("--force", action="store_true", help="replace an existing DIR")
    p.add_argument("--list", action="store_true", help="print the catalogue (name, handle, vector length) and exit")
    return p


def _print_catalogue() -> None:
    rows = [(e.name, e.handle, str(e.vector_length)) for e in catalogue.CATALOGUE.values()]
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    for name, handle, dim in rows:
        print(f"{name:<{widths[0]}}  {handle:<{widths[1]}}  {dim}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list:
        _print_catalogue()
        return 0
    if not args.output:
        print("bert-export: error: --output DIR is required (or --list)", file=sys.stderr)
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from export.builder import ExportOptions, export_model

    opts = ExportOptions(
        source=args.model,
        preprocess=args.preprocess,
        pooling=args.pooling,
        normalize=args.normalize,
        max_seq_length=args.max_seq_length,
        force=args.force,
    )
    try:
        card = export_model(args.output, opts)
    except ExportError as exc:
        print(f"bert-export: error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(json.dumps(card, indent=2))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
