"""SAM tier: `sam build` and `sam local` on the real template, image and clients (`make sam-local`).

Opt-in like tests/image: ``BERT2VEC_SAM`` (the SAM CLI, set by ``make sam-local``) selects this
folder; without it, or without a Docker engine and the image `make image` built, the whole tier is
deselected and the summary says why in one line. ``make test`` never runs it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.image.container import docker, docker_unavailable, image_name
from tests.sam.samlocal import BUILD_DIR, BUILT_TEMPLATE, SAM_VAR, run_checked, sam_env, sam_executable
from tests.tier import opt_in_tier

_HERE = Path(__file__).parent


def _skip_reason() -> str | None:
    if not os.environ.get(SAM_VAR, "").strip():
        return f"run by `make sam-local` ({SAM_VAR} names the SAM CLI)"
    if not os.access(sam_executable(), os.X_OK):
        return f"the SAM CLI {sam_executable()} is not installed"
    return docker_unavailable(image_name())


pytest_collection_modifyitems, pytest_sessionfinish, pytest_terminal_summary = opt_in_tier("sam", _HERE, _skip_reason)


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

