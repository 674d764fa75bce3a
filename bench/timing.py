"""Best-of-N timing and percentiles: the one way the benches time a call and summarise latencies.

One warm-up call first: the first pass over new padded lengths (graph tracing, per-shape set-up)
is slower for every runtime, and the figures are meant to be steady state. The minimum of the
timed runs is kept: on a shared machine the noise only ever adds time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def best_of(fn: Callable[[], T], repeat: int) -> tuple[float, T]:
    """``(fastest seconds of repeat runs, the last run's result)`` after one warm-up call."""
    out = fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` by nearest rank: always one of the measured values,
    never an interpolation between two calls that did not happen."""
    if not values:
        raise ValueError("quantile of no values")
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]
