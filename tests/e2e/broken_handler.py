"""A handler module that fails while being imported: exercises the runtime's init-error path.

Why: a function whose init fails (missing model, bad config) must surface as an init error rather
than hang; the e2e harness has to observe that the same way Lambda does.
"""

from __future__ import annotations

from typing import Any

raise RuntimeError("broken at import")


def handler(event: Any, context: Any) -> None:  # pragma: no cover - never reached
    return None
