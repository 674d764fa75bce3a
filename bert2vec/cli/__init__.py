"""``bert-encode``: encode texts, files or Lambda events locally with an exported SavedModel.

Three modes, one per way people try the encoder before (or instead of) deploying it:

* ``bert-encode "text" ["more" ...]`` (:mod:`bert2vec.cli.texts`);
* ``bert-encode --input FILE`` — the S3 bulk path, locally (:mod:`bert2vec.cli.files`);
* ``bert-encode --event events/x.json`` — a Lambda handler in-process (:mod:`bert2vec.cli.events`).

Exit codes: 0 when anything was encoded (or the input held nothing to encode), 1 when nothing
could be encoded (missing model, unreadable input, every line rejected, an error response to an
event), 2 for usage errors (bad flags, unknown extension, existing output without ``--force``,
options the model cannot honour), 130 on Ctrl-C — which never leaves an output file behind.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from bert2vec.cli import events as event_mode
from bert2vec.cli import files as file_mode
from bert2vec.cli import texts as text_mode
from bert2vec.cli.common import EXIT_INTERRUPTED, PROG, CliError, UsageError, encoder_for, silence_stdout
from function.bulk.pipeline import OVERLONG_POLICIES, PipelineOptions
from function.bulk.writers import FORMATS
from function.encoder import DEFAULT_BATCH_SIZE


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Encode texts with an exported BERT SavedModel: texts on the command line, a file "
        "(exactly as the S3 bulk path would), or a Lambda event (like `sam local invoke -e`).",
        epilog="examples:\n"
        '  bert-encode "I enjoy walks on the beach." "Serverless BERT"\n'
        "  bert-encode --input docs.jsonl --format parquet      # docs.jsonl.parquet (+ .manifest.json, .errors.jsonl)\n"
        "  zcat docs.txt.gz | bert-encode --input - --output - > vectors.jsonl\n"
        "  bert-encode --event events/direct_encode.json\n"
        "exit codes: 0 ok, 1 nothing could be encoded, 2 usage error, 130 interrupted",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("texts", nargs="*", metavar="TEXT", help="texts to encode; one JSON object per text on stdout")
    p.add_argument(
        "--model",
        metavar="DIR",
        help="exported model directory (default: $MODEL_DIR, else build/model from `make run`)",
    )

    files = p.add_argument_group("file mode (the S3 bulk path, locally)")
    files.add_argument("--input", metavar="FILE", help="a .txt/.jsonl/.csv file, optionally .gz; '-' reads stdin")
    files.add_argument(
        "--output",
        metavar="FILE",
        help="vector file (default: <input>.<format> beside the input; stdout for stdin); '-' writes stdout",
    )
    files.add_argument(
        "--format", choices=FORMATS, help="vector file format (default: from --output's suffix, else jsonl)"
    )
    files.add_argument(
        "--input-format",
        choices=file_mode.INPUT_FORMATS,
        help="how to parse the input: required knowledge for stdin (default txt), overrides the suffix for files",
    )
    files.add_argument(
        "--manifest",
        metavar="FILE",
        help="where to write the manifest (default: <output>.manifest.json). With --output -, also names the "
        "error report (<base>.errors.jsonl) and the npy ids (<base>.ids.jsonl); without it they go to stderr",
    )
    files.add_argument("--force", action="store_true", help="replace existing output files")
    files.add_argument("--text-field", default="text", metavar="NAME", help="jsonl field / csv column holding the text")
    files.add_argument(
        "--id-field", default="id", metavar="NAME", help="jsonl field / csv column holding the id (optional)"
    )
    files.add_argument(
        "--overlong",
        choices=OVERLONG_POLICIES,
        default="truncate",
        help="texts over the model's max_seq_length: truncate (keeps [SEP], counted) or reject (reported per line)",
    )
    files.add_argument(
        "--max-text-chars",
        type=_positive_int,
        default=PipelineOptions.max_text_chars,
        metavar="N",
        help="cut (or with --overlong reject: refuse) texts longer than N characters before tokenizing",
    )
    files.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no summary line")

    enc = p.add_argument_group("encoding")
    enc.add_argument(
        "--batch-size", type=_positive_int, default=DEFAULT_BATCH_SIZE, metavar="N", help="texts per model call"
    )
    enc.add_argument(
        "--max-seq-length",
        type=_positive_int,
        metavar="N",
        help="must equal the model's (it is baked into the SavedModel): larger is refused, smaller needs "
        "`bert-export --max-seq-length N`",
    )
    enc.add_argument(
        "--no-normalize",
        action="store_true",
        help="raw vectors: a no-op on a model exported with --no-normalize, refused on a normalised one",
    )

    ev = p.add_argument_group("event mode (like `sam local invoke -e`)")
    ev.add_argument(
        "--event",
        metavar="FILE",
        nargs="+",
        help="run the handler on this event JSON and print the response; with several files, one "
        '{"event", "response"} JSON line each (exit 0 when every handler returned, 4xx included)',
    )
    ev.add_argument("--handler", default="function.app.handler", metavar="MODULE.FUNC", help="default: %(default)s")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bert-encode`` script; returns the exit code instead of exiting (testable)."""
    parser = build_parser()
    try:
        args = parser.parse_intermixed_args(argv)  # texts may come before or after options
    except SystemExit as exc:  # --help (0) and argparse usage errors (2)
        return int(exc.code or 0)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        return _dispatch(args)
    except CliError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted; no output file was left behind", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `bert-encode ... | head`: the reader left; that is not an error
        silence_stdout()
        return 0


def _dispatch(args: argparse.Namespace) -> int:
    modes = [
        name for name, given in (("TEXT", bool(args.texts)), ("--input", args.input), ("--event", args.event)) if given
    ]
    if len(modes) > 1:
        raise UsageError(f"give only one of TEXT..., --input FILE or --event FILE (got {' and '.join(modes)})")
    if not modes:
        raise UsageError("nothing to encode: give TEXT..., --input FILE (or - for stdin) or --event FILE; see --help")
    if args.event:
        return event_mode.run_event(args)
    file_only = [
        f
        for f, on in (
            ("--output", args.output),
            ("--manifest", args.manifest),
            ("--format", args.format),
            ("--input-format", args.input_format),
        )
        if on
    ]
    if args.texts and file_only:
        raise UsageError(f"{', '.join(file_only)} only apply to --input FILE")
    plan = file_mode.plan_file(args) if args.input else None  # before loading the model: usage errors are instant
    encoder = encoder_for(args)
    if plan is None:
        return text_mode.encode_texts(args.texts, encoder, args.batch_size)
    return file_mode.encode_file(args, plan, encoder)




if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
