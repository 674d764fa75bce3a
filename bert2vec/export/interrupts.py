"""Ctrl-C during an export: remembered by a signal handler, acted on between build steps.

Python runs a signal handler between two bytecodes of the main thread, and during an export those
bytecodes are often TensorFlow's own Python called back from C++ (``nest`` flattening, tracing,
``tf.saved_model.save``). A ``KeyboardInterrupt`` raised there can come back out of the C++ layer
as a different error (``SystemError: ... returned a result with an exception set``) with a
traceback. So while :func:`deferred` is active the handler only sets a flag, and the builder calls
:func:`checkpoint` between its steps, where raising ``KeyboardInterrupt`` is plain Python and its
clean-up (temporary directory, created parents) runs as for any other error.

Each :func:`checkpoint` also tells the registered step listeners which step starts next, so a
caller (a progress display, a test) can act at a boundary it can observe instead of guessing with
a timer.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["add_step_listener", "checkpoint", "deferred", "remove_step_listener"]

_pending = False
_listeners: list[Callable[[str], None]] = []


def _remember(signum: int, frame: object) -> None:
    global _pending
    _pending = True


@contextmanager
def deferred() -> Iterator[None]:
    """Turn SIGINT into a flag for the duration (main thread only; elsewhere a no-op)."""
    global _pending
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _pending = False
    previous = signal.signal(signal.SIGINT, _remember)
    try:
        yield
    finally:
        # A Ctrl-C after the last checkpoint came too late: the export was committed (renamed
        # into place), so saying "interrupted" would be untrue.
        signal.signal(signal.SIGINT, previous)
        _pending = False


def checkpoint(step: str) -> None:
    """A safe place to stop: raise ``KeyboardInterrupt`` if Ctrl-C was pressed, then announce ``step``."""
    global _pending
    if _pending:
        _pending = False
        raise KeyboardInterrupt
    for listener in list(_listeners):
        listener(step)


def add_step_listener(listener: Callable[[str], None]) -> None:
    """Call ``listener(step)`` at every checkpoint (the name of the step about to start)."""
    _listeners.append(listener)


def remove_step_listener(listener: Callable[[str], None]) -> None:
    _listeners.remove(listener)
