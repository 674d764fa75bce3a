"""The wheel tier: the package as a pip user gets it (``pytest -m wheel``)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "wheel: builds the sdist and wheel and installs the wheel into a fresh venv (needs the package index)"
    )
