"""``bert-encode``: encode texts, files or Lambda events locally with an exported SavedModel.

Four modes, one per way people try the encoder before (or instead of) deploying it:

* ``bert-encode "text" ["more" ...]`` (:mod:`bert2vec.cli.texts`);
* ``bert-encode --input FILE`` — the S3 bulk path, locally (:mod:`bert2vec.cli.files`);
* ``bert-encode --event events/x.json`` — a Lambda handler in-process (:mod:`bert2vec.cli.events`);
* ``bert-encode --serve`` — the HTTP API on a local port, for real clients (:mod:`bert2vec.cli.serve`).

Exit codes: 0 when anything was encoded (or the input held nothing to encode), 1 when nothing
could be encoded (missing model, unreadable input, every line rejected, an error response to an
event), 2 for usage errors (bad flags, unknown extension, existing output without ``--force``,
options the model cannot honour), 130 on Ctrl-C — which never leaves an output file behind (and
is how ``--serve`` stops).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from bert2vec.cli import events as event_mode
from bert2vec.cli import files as file_mode
from bert2vec.cli import serve as serve_mode
from bert2vec.cli import texts as text_mode
from bert2vec.cli.common import (
    EXIT_INTERRUPTED,
    PROG,
    CliError,
    UsageError,
    default_model,
    encoder_for,
    require_extra,
    silence_stdout,
)
from bert2vec.core.defaults import MAX_BATCH_SIZE
from bert2vec.core.encoder import DEFAULT_BATCH_SIZE
from bert2vec.core.long_text import MODES, LongTextPolicy
from bert2vec.files.pipeline import PipelineOptions
from bert2vec.files.writers import FORMATS
from bert2vec.http.route_table import route_paths

# How the core's error ``param`` is shown here: the flag that sets it (never by editing message text).
FLAGS = {"long_text": "--long-text", "stride": "--stride"}


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
        "  bert-encode --serve --port 8080                      # then OpenAI(base_url='http://127.0.0.1:8080/v1')\n"
        "exit codes: 0 ok, 1 nothing could be encoded, 2 usage error, 130 interrupted",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("texts", nargs="*", metavar="TEXT", help="texts to encode; one JSON object per text on stdout")
    p.add_argument(
        "--model",
        metavar="DIR",
        help="exported model directory (default: $MODEL_DIR if set, else ./build/model in the current directory, "
        "else the embedded default that `bert-export` (no options) wrote to the per-user cache)",
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
        "--long-text",
        "--overlong",  # the former name, kept as an alias
        dest="long_text",
        choices=MODES,
        default="truncate",
        help="texts over the model's max_seq_length: truncate (keeps [SEP], counted), reject (reported per line) "
        "or chunk (read whole, as overlapping windows whose vectors are averaged); also applies to TEXT... "
        "(--overlong is the same flag's former name)",
    )
    files.add_argument(
        "--stride",
        type=int,
        metavar="N",
        help="--long-text chunk: wordpieces shared by consecutive windows (default: 32, or a quarter of the "
        "window for models under 130 wordpieces); must be less than max_seq_length - 2",
    )
    files.add_argument(
        "--chunk-rows",
        action="store_true",
        help="--long-text chunk: one output row per window (id, line, chunk, start, end, vector; text[start:end] "
        "is the window's span) instead of one per line",
    )
    files.add_argument(
        "--max-text-chars",
        type=_positive_int,
        default=PipelineOptions.max_text_chars,
        metavar="N",
        help="cut (or with --long-text reject or chunk: refuse) texts longer than N characters before tokenizing",
    )
    files.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no summary line")

    enc = p.add_argument_group("encoding")
    enc.add_argument(
        "--batch-size",
        type=_positive_int,
        default=DEFAULT_BATCH_SIZE,
        metavar="N",
        help=f"texts per model call (at most {MAX_BATCH_SIZE}: larger batches only pad more and use more memory)",
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
    ev.add_argument(
        "--handler",
        default=event_mode.DEFAULT_HANDLER,
        metavar="MODULE.FUNC",
        help="default: %(default)s; S3/EventBridge events need function.bulk_app.s3_handler, SQS shard "
        "messages function.bulk_app.sqs_handler",
    )

    srv = p.add_argument_group("server mode (the HTTP API on a local port, no Docker)")
    srv.add_argument(
        "--serve",
        action="store_true",
        help="serve the function over HTTP: each request becomes the API Gateway HTTP API event the deployed "
        f"function receives (routes {', '.join(route_paths())})",
    )
    srv.add_argument("--port", type=int, default=8080, metavar="N", help="port (default %(default)s; 0 = any free)")
    srv.add_argument("--host", default="127.0.0.1",
                     help="address to listen on (default %(default)s); requests must name it or a loopback "
                          "address in Host (0.0.0.0 or :: accepts any) and send JSON bodies")  # fmt: skip

    bf = p.add_argument_group("backfill mode (encode what is already in S3, with S3 Batch Operations)")
    bf.add_argument(
        "--backfill", metavar="S3_URL", help="start a job over every supported object under s3://bucket[/prefix]"
    )
    bf.add_argument("--role-arn", metavar="ARN", help="the role the job assumes (stack output BatchOperationsRoleArn)")
    bf.add_argument("--function-arn", metavar="ARN", help="the planner's alias (stack output BulkPlannerAliasArn)")
    bf.add_argument(
        "--report",
        metavar="S3_URL",
        help="where the job's generated manifest and completion report go (default: s3://<bucket>/batch-reports/)",
    )
    rc = p.add_argument_group("reconcile mode (make the outputs and the index equal to the bucket again)")
    rc.add_argument(
        "--reconcile", metavar="S3_URL",
        help="compare every object under s3://bucket/prefix with its manifest and the index (settings from the "
             "bulk functions' variables: INPUT_PREFIX, OUTPUT_PREFIX, OUTPUT_FORMAT, VECTOR_BUCKET, VECTOR_INDEX); "
             "a dry run unless --apply",
    )  # fmt: skip
    rc.add_argument("--apply", action="store_true", help="with --reconcile: encode what is missing or outdated, "
                    "remove what is orphaned (loads the model)")  # fmt: skip
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bert-encode`` script; returns the exit code instead of exiting (testable)."""
    parser = build_parser()
    try:
        args = parser.parse_intermixed_args(argv)  # texts may come before or after options
    except SystemExit as exc:  # --help (0) and argparse usage errors (2)
        return int(exc.code or 0)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
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


def _cap_batch_size(args: argparse.Namespace) -> None:
    if args.batch_size > MAX_BATCH_SIZE:
        print(
            f"{PROG}: --batch-size {args.batch_size} is capped at {MAX_BATCH_SIZE} (larger batches only pad more "
            "and use more memory)",
            file=sys.stderr,
        )
        args.batch_size = MAX_BATCH_SIZE


def _backfill(args: argparse.Namespace, client: object | None = None) -> int:
    """Start an S3 Batch Operations job over a prefix; prints the job id (no model is loaded)."""
    from bert2vec.backfill import S3Location, account_of, check_function_arn, start_backfill

    if not (args.role_arn and args.function_arn):
        raise UsageError("--backfill needs --role-arn and --function-arn (the stack's outputs BatchOperationsRoleArn "
                         "and BulkPlannerAliasArn)")  # fmt: skip
    try:
        source = S3Location.parse(args.backfill)
        report = S3Location.parse(args.report) if args.report else S3Location(source.bucket, "batch-reports/")
        account_of(args.role_arn)
        check_function_arn(args.function_arn)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if client is None:
        from bert2vec.aws.factory import client as aws_client

        client = aws_client("s3control")  # CreateJob carries a ClientRequestToken: a retried call makes one job
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        job = start_backfill(client, source=source, role_arn=args.role_arn, function_arn=args.function_arn, report=report)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    except (BotoCoreError, ClientError) as exc:
        raise CliError(f"could not create the S3 Batch Operations job: {exc}") from exc
    print(job)
    print(
        f"{PROG}: job {job} started over s3://{source.bucket}/{source.prefix}; follow it with "
        f"`aws s3control describe-job --account-id <account> --job-id {job}`; report in s3://{report.bucket}/{report.prefix}",
        file=sys.stderr,
    )
    return 0


def _reconcile(args: argparse.Namespace) -> int:
    """``--reconcile s3://bucket/prefix [--apply]``: the drift between the bucket and its outputs, repaired
    through the bulk path's own engine (so with its guarantees). Prints the counts as JSON."""
    import json

    from bert2vec.backfill import S3Location
    from bert2vec.bulk.reconcile import reconcile, reconcile_engine

    try:
        where = S3Location.parse(args.reconcile)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    try:
        model = (args.model or str(default_model())) if args.apply else None
        engine = reconcile_engine(model, load=args.apply)
        drift = reconcile(engine, where.bucket, where.prefix, apply=args.apply)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    print(json.dumps(drift.summary(), sort_keys=True))
    what = "repaired" if args.apply else ("no drift" if drift.clean else "drift found; run again with --apply to repair")
    print(f"{PROG}: s3://{where.bucket}/{where.prefix}: {what}", file=sys.stderr)
    return 0


def _policy(args: argparse.Namespace, encoder: object) -> LongTextPolicy:
    """--long-text / --stride resolved for the model (chunk needs the long-text signatures and a stride
    that fits its window); the core's errors name the flags through ``FLAGS``."""
    from bert2vec.core.errors import Bert2VecError

    try:
        return LongTextPolicy.resolve(encoder, args.long_text, args.stride, channel="cli", names=FLAGS)  # type: ignore[arg-type]
    except Bert2VecError as exc:  # the stride's message names --stride already; the others say which mode
        flag = FLAGS.get(exc.param or "", "--long-text")
        raise UsageError(str(exc) if flag == "--stride" else f"{flag} {args.long_text}: {exc}") from exc


def _dispatch(args: argparse.Namespace) -> int:
    given = (("TEXT", bool(args.texts)), ("--input", args.input), ("--event", args.event), ("--serve", args.serve),
             ("--backfill", args.backfill), ("--reconcile", args.reconcile))  # fmt: skip
    modes = [name for name, on in given if on]
    if args.apply and not args.reconcile:
        raise UsageError("--apply goes with --reconcile S3_URL")
    if len(modes) > 1:
        raise UsageError(
            f"give only one of TEXT..., --input FILE, --event FILE, --serve, --backfill or --reconcile (got "
            f"{' and '.join(modes)})"
        )
    if not modes:
        raise UsageError(
            "nothing to encode: give TEXT..., --input FILE (or - for stdin), --event FILE, --serve, --backfill or "
            "--reconcile; "
            "see --help"
        )
    if args.backfill:
        require_extra("s3", "--backfill")
        return _backfill(args)
    if args.reconcile:
        require_extra("s3", "--reconcile")
        return _reconcile(args)
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, got {args.port}")
    _cap_batch_size(args)
    if args.serve or args.event:
        if args.serve:
            require_extra("serve", "--serve")
        else:
            require_extra(*event_mode.extra_for(args.handler))
        if not args.model:  # the handler reads $MODEL_DIR at import, as in the image
            args.model = str(default_model())
    if args.serve:
        return serve_mode.run_serve(args)
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
        raise UsageError(f"{', '.join(file_only)} only {'applies' if len(file_only) == 1 else 'apply'} to --input FILE")
    if args.long_text != "chunk" and (args.stride is not None or args.chunk_rows):
        raise UsageError(f"{'--stride' if args.stride is not None else '--chunk-rows'} needs --long-text chunk")
    if args.chunk_rows and not args.input:
        raise UsageError("--chunk-rows applies to --input FILE (TEXT... prints one object per text)")
    plan = file_mode.plan_file(args) if args.input else None  # before loading the model: usage errors are instant
    if plan is not None and plan.out_format == "parquet":
        require_extra("parquet", "--format parquet")
    encoder = encoder_for(args)
    policy = _policy(args, encoder)
    if plan is None:
        return text_mode.encode_texts(args.texts, encoder, args.batch_size, policy=policy)
    return file_mode.encode_file(args, plan, encoder)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
