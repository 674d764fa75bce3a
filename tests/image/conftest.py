"""Image tier: deselected, with one line saying why, unless `make image-test` built the image and Docker runs.

``make test`` collects this folder too but runs none of it: ``BERT2VEC_IMAGE`` (set by ``make
image-test``) opts in, so the fast and model tiers never wait on a Docker build.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import clients, moto_endpoint  # noqa: F401 - the moto server fixtures, shared
from tests.image.container import IMAGE_VAR, docker_unavailable, image_name, template_memory_mb

_HERE = Path(__file__).parent
_REASON = pytest.StashKey[str]()


def _skip_reason() -> str | None:
    if not os.environ.get(IMAGE_VAR, "").strip():
        return f"run by `make image-test` ({IMAGE_VAR} names the built image)"
    return docker_unavailable(image_name())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without the image or Docker, the whole tier is deselected and the summary says why, once."""
    mine = [item for item in items if _HERE in item.path.parents]
    if not mine:
        return
    reason = _skip_reason()
    if reason is None:
        return
    config.stash[_REASON] = f"image tests skipped ({len(mine)}): {reason}"
    config.hook.pytest_deselected(items=mine)
    items[:] = [item for item in items if item not in mine]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A run of this tier alone that deselected everything is a skip, not pytest's "no tests" failure (5)."""
    if _REASON in session.config.stash and exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        session.exitstatus = pytest.ExitCode.OK
    if _REASON in session.config.stash and hasattr(session.config, "workeroutput"):  # a pytest-xdist worker:
        session.config.workeroutput["image_skip_reason"] = session.config.stash[_REASON]  # the controller prints it


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if _REASON in config.stash:
        terminalreporter.write_line(config.stash[_REASON])


@pytest.fixture(scope="session")
def image() -> str:
    return image_name()


@pytest.fixture(scope="session")
def encode_memory_mb() -> int:
    return template_memory_mb("MemorySize")


@pytest.fixture(scope="session")
def bulk_memory_mb() -> int:
    return template_memory_mb("BulkMemorySize")
