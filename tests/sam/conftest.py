"""SAM tier: `sam build` and `sam local` on the real template, image and clients (`make sam-local`).

Opt-in like tests/image: ``BERT2VEC_SAM`` (the SAM CLI, set by ``make sam-local``) selects this
folder; without it, or without a Docker engine and the image `make image` built, the whole tier is
deselected and the summary says why in one line. ``make test`` never runs it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.image.container import docker, docker_unavailable, image_name
from tests.sam.samlocal import BUILD_DIR, BUILT_TEMPLATE, SAM_VAR, run_checked, sam_env, sam_executable

_HERE = Path(__file__).parent
_REASON = pytest.StashKey[str]()


def _skip_reason() -> str | None:
    if not os.environ.get(SAM_VAR, "").strip():
        return f"run by `make sam-local` ({SAM_VAR} names the SAM CLI)"
    if not os.access(sam_executable(), os.X_OK):
        return f"the SAM CLI {sam_executable()} is not installed"
    return docker_unavailable(image_name())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mine = [item for item in items if _HERE in item.path.parents]
    if not mine:
        return
    reason = _skip_reason()
    if reason is None:
        return
    config.stash[_REASON] = f"sam tests skipped ({len(mine)}): {reason}"
    config.hook.pytest_deselected(items=mine)
    items[:] = [item for item in items if item not in mine]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _REASON in session.config.stash and exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        session.exitstatus = pytest.ExitCode.OK
    if _REASON in session.config.stash and hasattr(session.config, "workeroutput"):
        session.config.workeroutput["sam_skip_reason"] = session.config.stash[_REASON]


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if _REASON in config.stash:
        terminalreporter.write_line(config.stash[_REASON])


@pytest.fixture(scope="session")
def sam_build() -> subprocess.CompletedProcess[str]:
    """`sam build` as a user runs it (samconfig.toml's defaults), after `make image` built the same
    Dockerfile with the same args: every step a cache hit, since the engine's bridge has no route out."""
    return run_checked([sam_executable(), "build", "--build-dir", str(BUILD_DIR)], timeout=1200, env=sam_env())


@pytest.fixture(scope="session")
def built_template(sam_build) -> Path:
    assert BUILT_TEMPLATE.is_file()
    return BUILT_TEMPLATE


@pytest.fixture(scope="session")
def made_image_id() -> str:
    return docker("image", "inspect", "--format", "{{.Id}}", image_name()).stdout.strip()

