"""Invoke a handler in-process on event files, like ``sam local invoke -e`` (no Docker, no AWS).

``make run`` uses it to show the function's responses to ``events/*.json``; the ``bert-encode
--event`` CLI (issue #6) reuses ``invoke_event``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any


class LocalContext:
    """A LambdaContext stand-in with the attributes handlers and Powertools read."""

    def __init__(self, function_name: str = "bert2vec-local", timeout_s: float = 30.0, memory_mb: int = 2048) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:local:000000000000:function:{function_name}"
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def load_handler(spec: str):
    """``module.function`` → the callable, as awslambdaric resolves ``CMD``."""
    module_name, _, func = spec.rpartition(".")
    return getattr(importlib.import_module(module_name), func)


def invoke_event(event_file: Path | str, handler: str = "function.app.handler") -> Any:
    event = json.loads(Path(event_file).read_text(encoding="utf-8"))
    return load_handler(handler)(event, LocalContext())


def _summarise(response: Any) -> Any:
    """Shorten vectors so a terminal shows the shape, not 384 numbers per line."""
    if isinstance(response, dict) and isinstance(response.get("body"), str):
        try:
            response = dict(response, body=_summarise(json.loads(response["body"])))
        except json.JSONDecodeError:
            return response
    if isinstance(response, dict):
        return {k: _summarise(v) for k, v in response.items()}
    if isinstance(response, list):
        if len(response) > 6 and all(isinstance(x, float) for x in response):
            return [*(round(x, 5) for x in response[:4]), f"... {len(response)} floats"]
        return [_summarise(x) for x in response]
    return response


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m function.local_invoke", description=__doc__.splitlines()[0])
    p.add_argument("events", nargs="+", help="event JSON files")
    p.add_argument("--handler", default="function.app.handler")
    p.add_argument("--full", action="store_true", help="print whole vectors")
    args = p.parse_args(argv)
    for path in args.events:
        t0 = time.perf_counter()
        response = invoke_event(path, args.handler)
        ms = (time.perf_counter() - t0) * 1e3
        shown = response if args.full else _summarise(response)
        status = response.get("statusCode", response.get("status", 200)) if isinstance(response, dict) else 200
        print(f"== {path}  →  {status}  ({ms:.1f} ms)")
        print(json.dumps(shown, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
