"""Ctrl-C during an export is a flag checked between steps (bert2vec/export/interrupts.py), never an exception
raised wherever Python happened to be — e.g. inside TensorFlow's C++ calling back into Python."""

from __future__ import annotations

import os
import signal

import pytest

from bert2vec.export import interrupts


def _press_ctrl_c() -> None:
    os.kill(os.getpid(), signal.SIGINT)
    for _ in range(1000):  # Python runs signal handlers between bytecodes: give it some
        pass


def test_sigint_is_only_noted_until_the_next_checkpoint() -> None:
    before = signal.getsignal(signal.SIGINT)
    with interrupts.deferred():
        _press_ctrl_c()  # no KeyboardInterrupt here, where a C++ call could be running
        with pytest.raises(KeyboardInterrupt):
            interrupts.checkpoint("next step")
        interrupts.checkpoint("the flag was consumed")
    assert signal.getsignal(signal.SIGINT) is before


def test_ctrl_c_after_the_last_checkpoint_does_not_undo_a_finished_export() -> None:
    before = signal.getsignal(signal.SIGINT)
    with interrupts.deferred():
        interrupts.checkpoint("last step")
        _press_ctrl_c()
    assert signal.getsignal(signal.SIGINT) is before
    interrupts.checkpoint("a later export starts clean")


def test_listeners_hear_each_step_before_it_starts() -> None:
    heard: list[str] = []
    interrupts.add_step_listener(heard.append)
    try:
        interrupts.checkpoint("trace serving_default")
        interrupts.checkpoint("save the SavedModel")
    finally:
        interrupts.remove_step_listener(heard.append)
    interrupts.checkpoint("not heard")
    assert heard == ["trace serving_default", "save the SavedModel"]


def test_outside_deferred_sigint_interrupts_at_once() -> None:
    """Before TensorFlow is imported (pre-flight checks, a Hub download) Ctrl-C needs no deferring."""
    with pytest.raises(KeyboardInterrupt):
        _press_ctrl_c()
