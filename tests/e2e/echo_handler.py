"""Trivial handlers that prove the harness, independent of the real function (no TensorFlow import).

Why: if an end-to-end test of the encoder fails, these tell whether the harness/runtime plumbing or
the function is at fault, and they run in well under a second.
"""

from __future__ import annotations

from typing import Any


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Echo the event plus what proves the context came from the Runtime API headers."""
    return {
        "echo": event,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "request_id": context.aws_request_id,
    }


def boom(event: Any, context: Any) -> None:
    """An unhandled exception: awslambdaric must report it as an invocation error, not crash."""
    raise ValueError("boom")
