"""arm64 tier: the Graviton image (`make image ARCH=arm64`) run under qemu emulation on x86_64.

Opt-in: ``BERT2VEC_IMAGE_ARM64`` (set by ``make image-test-arm64``) names the arm64 image and
``BERT2VEC_IMAGE`` the x86_64 one its vectors are compared with. Without them, or without Docker,
the tier is deselected and the summary says why in one line. ``make test`` never runs it.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.image.container import docker_unavailable, image_name
from tests.tier import opt_in_tier

ARM64_VAR = "BERT2VEC_IMAGE_ARM64"
_HERE = Path(__file__).parent


def arm64_image() -> str:
    return os.environ.get(ARM64_VAR, "").strip()


def _skip_reason() -> str | None:
    if not arm64_image():
        return f"run by `make image-test-arm64` ({ARM64_VAR} names the arm64 image)"
    return docker_unavailable(arm64_image()) or docker_unavailable(image_name())


pytest_collection_modifyitems, pytest_sessionfinish, pytest_terminal_summary = opt_in_tier("arm64", _HERE, _skip_reason)
