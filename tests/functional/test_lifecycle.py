"""SnapStart hooks in-process: what they change and what they must leave alone."""

from __future__ import annotations

import random

import numpy as np


def test_reseed_draws_fresh_numbers_but_leaves_tensorflows_seed_alone() -> None:
    """Setting TensorFlow's global seed invalidates traced functions (a ~1.2 s retrace on the first
    request after a restore, measured); the serving graph has no random ops to reseed."""
    import tensorflow  # noqa: F401
    from tensorflow.python.framework import random_seed

    from bert2vec.core import lifecycle

    global_seed_before = random_seed.get_seed(None)[0]
    random.seed(1)
    np.random.seed(1)
    a = (random.random(), np.random.rand())
    random.seed(1)
    np.random.seed(1)
    lifecycle.reseed()
    b = (random.random(), np.random.rand())
    assert a[0] != b[0] and a[1] != b[1]
    assert random_seed.get_seed(None)[0] == global_seed_before


def test_hooks_register_only_under_snapstart(monkeypatch) -> None:
    from bert2vec.core import lifecycle

    monkeypatch.delenv("AWS_LAMBDA_INITIALIZATION_TYPE", raising=False)
    assert lifecycle.register(before_snapshot=lambda: None, after_restore=lambda: None) is False
