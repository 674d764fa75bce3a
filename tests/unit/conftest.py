"""The fast tier: everything under tests/unit runs without TensorFlow (``make test-fast``).

The session fails if any test here imported TensorFlow, so the tier cannot silently grow slow.
"""

from __future__ import annotations

import sys

import pytest


@pytest.fixture(scope="session", autouse=True)
def _no_tensorflow():
    already = "tensorflow" in sys.modules  # the full suite may have loaded it in another tier first
    yield
    if not already:
        assert "tensorflow" not in sys.modules, "a fast-tier test imported TensorFlow; move it to tests/functional"
