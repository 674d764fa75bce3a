"""The fast tier: everything under tests/unit runs without TensorFlow (``make test-fast``).

When only this tier runs, the session fails if any of its tests imported TensorFlow, so the tier
cannot silently grow slow. (In the full suite other tiers load TensorFlow, so nothing is checked.)
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent


@pytest.fixture(scope="session", autouse=True)
def _no_tensorflow(request: pytest.FixtureRequest):
    only_unit = all(UNIT in Path(str(item.path)).resolve().parents for item in request.session.items)
    yield
    if only_unit:
        assert "tensorflow" not in sys.modules, "a fast-tier test imported TensorFlow; move it to tests/functional"
