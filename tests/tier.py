"""The opt-in test tiers (image, SAM, arm64) share one way of staying out of the way.

Each tier's folder is collected by every pytest run, but its tests run only when its make target
opted in and Docker is there. Otherwise the whole folder is deselected and the summary says why in
one line; a run of that tier alone that deselected everything is a skip, not pytest's "no tests"
failure (exit 5); a pytest-xdist worker hands its line to the controller (``<name>_skip_reason``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


def opt_in_tier(name: str, folder: Path, skip_reason: Callable[[], str | None]) -> tuple[Any, Any, Any]:
    """``pytest_collection_modifyitems``, ``pytest_sessionfinish`` and ``pytest_terminal_summary``
    for a conftest: ``pytest_collection_modifyitems, ... = opt_in_tier("sam", _HERE, _skip_reason)``."""
    reason_key = pytest.StashKey[str]()

    def collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
        mine = [item for item in items if folder in item.path.parents]
        if not mine:
            return
        reason = skip_reason()
        if reason is None:
            return
        config.stash[reason_key] = f"{name} tests skipped ({len(mine)}): {reason}"
        config.hook.pytest_deselected(items=mine)
        items[:] = [item for item in items if item not in mine]

    def sessionfinish(session: pytest.Session, exitstatus: int) -> None:
        if reason_key in session.config.stash and exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
            session.exitstatus = pytest.ExitCode.OK
        if reason_key in session.config.stash and hasattr(session.config, "workeroutput"):
            session.config.workeroutput[f"{name}_skip_reason"] = session.config.stash[reason_key]

    def terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
        if reason_key in config.stash:
            terminalreporter.write_line(config.stash[reason_key])

    return collection_modifyitems, sessionfinish, terminal_summary
