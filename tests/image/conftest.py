"""Image tier: deselected, with one line saying why, unless `make image-test` built the image and Docker runs.

``make test`` collects this folder too but runs none of it: ``BERT2VEC_IMAGE`` (set by ``make
image-test``) opts in, so the fast and model tiers never wait on a Docker build.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.e2e.conftest import clients, moto_endpoint  # noqa: F401 - the moto server fixtures, shared
from tests.image.container import IMAGE_VAR, docker_unavailable, image_name, template_memory_mb
from tests.tier import opt_in_tier

_HERE = Path(__file__).parent


def _skip_reason() -> str | None:
    if not os.environ.get(IMAGE_VAR, "").strip():
        return f"run by `make image-test` ({IMAGE_VAR} names the built image)"
    return docker_unavailable(image_name())


pytest_collection_modifyitems, pytest_sessionfinish, pytest_terminal_summary = opt_in_tier("image", _HERE, _skip_reason)


@pytest.fixture(scope="session")
def image() -> str:
    return image_name()


@pytest.fixture(scope="session")
def encode_memory_mb() -> int:
    return template_memory_mb("MemorySize")


@pytest.fixture(scope="session")
def bulk_memory_mb() -> int:
    return template_memory_mb("BulkMemorySize")
