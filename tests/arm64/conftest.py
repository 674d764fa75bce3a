"""arm64 tier: the Graviton image (`make image ARCH=arm64`) run under qemu emulation on x86_64.

Opt-in: ``BERT2VEC_IMAGE_ARM64`` (set by ``make image-test-arm64``) names the arm64 image and
``BERT2VEC_IMAGE`` the x86_64 one its vectors are compared with. Without them, or without Docker,
the tier is deselected and the summary says why in one line. ``make test`` never runs it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.image.container import docker_unavailable, image_name

ARM64_VAR = "BERT2VEC_IMAGE_ARM64"
_HERE = Path(__file__).parent
_REASON = pytest.StashKey[str]()


def arm64_image() -> str:
    return os.environ.get(ARM64_VAR, "").strip()


def _skip_reason() -> str | None:
    if not arm64_image():
        return f"run by `make image-test-arm64` ({ARM64_VAR} names the arm64 image)"
    return docker_unavailable(arm64_image()) or docker_unavailable(image_name())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mine = [item for item in items if _HERE in item.path.parents]
    if not mine:
        return
    reason = _skip_reason()
    if reason is None:
        return
    config.stash[_REASON] = f"arm64 tests skipped ({len(mine)}): {reason}"
    config.hook.pytest_deselected(items=mine)
    items[:] = [item for item in items if item not in mine]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _REASON in session.config.stash and exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        session.exitstatus = pytest.ExitCode.OK
    if _REASON in session.config.stash and hasattr(session.config, "workeroutput"):
        session.config.workeroutput["arm64_skip_reason"] = session.config.stash[_REASON]


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if _REASON in config.stash:
        terminalreporter.write_line(config.stash[_REASON])
