"""SnapStart hooks: what runs before Lambda snapshots an initialised environment, and after a restore.

With SnapStart, init (TensorFlow import, model load, warm-up) runs once when a version is
published; each new environment is restored from that memory snapshot instead of running init.
awslambdaric runs the hooks registered through ``snapshot_restore_py`` when
``AWS_LAMBDA_INITIALIZATION_TYPE=snap-start``; without SnapStart (on-demand, ``sam local``, other
clouds) nothing here runs and init keeps its own short warm-up.

- Before the snapshot: warm the model at every shape the first requests will hit, so a restored
  environment never pays TensorFlow's first-call costs for them (the snapshot's creation is not
  on any request's path, so this may take seconds).
- After a restore: everything that must be unique or fresh per environment — random seeds (every
  restored copy would otherwise draw the same numbers), AWS clients (their credentials and
  connections were frozen in the snapshot), and the CPU quota (a restore may land on a different
  memory size's share only across versions, but a mismatch is logged rather than assumed away).
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

log = logging.getLogger("bert2vec.lifecycle")

# The one warm-up list. Texts of increasing length: batch-1 calls at several sequence lengths
# (requests usually carry one or a few texts), then a full batch; init warms with the first two.
WARM_TEXTS = (
    "hi",
    "A short sentence to encode.",
    " ".join(["A paragraph of ordinary words that a user might send to the encoder."] * 4),
    " ".join(["A long document that reaches the model's maximum sequence length."] * 40),
)


def snapstart_enabled() -> bool:
    return os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "snap-start"


def warm_shapes(encoder: Any, batch_size: int, texts: Sequence[str] = WARM_TEXTS) -> None:
    """One call per length at batch size 1, then one full batch of mixed lengths."""
    for text in texts:
        encoder.encode([text])
    encoder.encode(list(texts) * max(1, batch_size // len(texts) + 1))


def reseed() -> None:
    """Fresh randomness per restored environment (``random``, numpy's global generator).

    TensorFlow's global seed is deliberately left alone: the serving graph has no random ops, and
    ``tf.random.set_seed`` invalidates the traced functions — measured, it turned the first request
    after a restore from ~20 ms into ~1.2 s of retracing.
    """
    seed = int.from_bytes(os.urandom(8), "little")
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % (2**32))
    except ImportError:  # pragma: no cover - numpy is always there with TensorFlow
        pass


def register(
    *,
    before_snapshot: Callable[[], None],
    after_restore: Callable[[], None],
    logger: Any = log,
) -> bool:
    """Register the two hooks (timed and logged); False when SnapStart is off or unavailable."""
    if not snapstart_enabled():
        return False
    try:
        from snapshot_restore_py import register_after_restore, register_before_snapshot
    except ImportError:  # the runtime interface client brings it; without it there is no snapshot
        logger.warning("AWS_LAMBDA_INITIALIZATION_TYPE=snap-start but snapshot_restore_py is missing")
        return False

    def timed(name: str, hook: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            t0 = time.perf_counter()
            hook()
            logger.info(f"{name} hook done", extra={"hook": name, "seconds": round(time.perf_counter() - t0, 3)})

        return run

    register_before_snapshot(timed("before_snapshot", before_snapshot))
    register_after_restore(timed("after_restore", after_restore))
    return True
