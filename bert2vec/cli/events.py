"""``bert-encode --event FILE...``: run a Lambda handler in-process, like ``sam local invoke -e``."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bert2vec.cli.common import EXIT_FAILED, CliError, UsageError, check_model_dir, load_cli_handler

DEFAULT_HANDLER = "function.app.handler"
# Events the encode function cannot take, and the handler (template.yaml function) that does.
BULK_HANDLERS = {
    "s3": ("an S3 event notification", "function.bulk_app.s3_handler"),
    "eventbridge": ("an EventBridge S3 event", "function.bulk_app.s3_handler"),
    "sqs": ("an SQS message batch", "function.bulk_app.sqs_handler"),
}


def extra_for(handler: str) -> tuple[str, str]:
    """The extra a handler needs (``serve`` for the encode function, ``s3`` for the bulk ones), and its name."""
    if "bulk_app" in handler:
        return "s3", f"--event with --handler {handler}"
    return "serve", "--event"


def bulk_source(event: Any) -> str | None:
    """``s3`` / ``eventbridge`` / ``sqs`` for the bulk path's events, else ``None``."""
    if not isinstance(event, dict):
        return None
    if event.get("source") == "aws.s3" and "detail-type" in event:
        return "eventbridge"
    records = event.get("Records")
    if isinstance(records, list) and records and isinstance(records[0], dict):
        source = records[0].get("eventSource")
        return {"aws:s3": "s3", "aws:sqs": "sqs"}.get(source)
    return None


def _check_handler(paths: list[Path], events: list[Any], handler: str) -> None:
    """The default (encode) handler would answer a bulk event with a confusing 'texts' error: say
    which handler takes it instead."""
    if handler != DEFAULT_HANDLER:
        return
    for path, event in zip(paths, events, strict=True):
        source = bulk_source(event)
        if source:
            what, right = BULK_HANDLERS[source]
            raise UsageError(
                f"{path} is {what}, which the encode handler {DEFAULT_HANDLER} does not take; run it with "
                f"--handler {right} (the bulk path needs its S3 bucket and queue: see docs/s3-bulk.md)"
            )


@contextlib.contextmanager
def _model_dir_env(model: str | None) -> Iterator[None]:
    """``--model`` for the handler, which reads ``$MODEL_DIR`` at import; restored afterwards."""
    if model is None:
        yield
        return
    old = os.environ.get("MODEL_DIR")
    os.environ["MODEL_DIR"] = model
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MODEL_DIR", None)
        else:
            os.environ["MODEL_DIR"] = old


def _read_event(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CliError(f"cannot read event {path}: {exc.strerror or exc}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CliError(f"event {path} is not valid JSON: {exc}") from exc


def run_event(args: argparse.Namespace) -> int:
    """``sam local invoke -e`` without Docker: the response on stdout, the handler's logs on stderr."""
    from bert2vec.local_invoke import LocalContext

    paths = [Path(p) for p in args.event]
    events = [_read_event(p) for p in paths]
    _check_handler(paths, events, args.handler)
    check_model_dir(args.model)
    responses = []
    # Lambda logs go to CloudWatch, not into the response: keep stdout for the response alone.
    with _model_dir_env(args.model), contextlib.redirect_stdout(sys.stderr):
        handler = load_cli_handler(args.handler)
        for event in events:
            responses.append(handler(event, LocalContext()))
    if len(paths) == 1:
        print(json.dumps(responses[0], ensure_ascii=False))
        return EXIT_FAILED if _is_error_response(responses[0]) else 0
    for path, response in zip(paths, responses, strict=True):
        print(json.dumps({"event": str(path), "response": response}, ensure_ascii=False))
    return 0


def _is_error_response(response: Any) -> bool:
    if not isinstance(response, dict):
        return False
    status = response.get("statusCode", response.get("status"))
    return (isinstance(status, int) and status >= 400) or ("error" in response and "error_type" in response)
