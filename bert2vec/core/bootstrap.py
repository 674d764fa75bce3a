"""Start-up, written once: every process that serves the model starts it the same way.

``load_model`` is the one routine that brings a model up — the model directory resolved
(``MODEL_DIR``, else ``./build/model``), TensorFlow imported without its C++ banners, thread pools
sized once from the CPU quota (inside ``Encoder.load``), the SavedModel loaded, one warm-up call,
the timings recorded and a "model ready" log line. The ``bert-encode`` CLI and the ``Bert2Vec``
Python API call it directly; the two Lambda handlers go through :class:`Startup`, which adds what an
execution environment needs on top: build the handler's served object once, honour
``BERT2VEC_LAZY_INIT=1``, and register the SnapStart hooks whose shared part (warm the shapes
before the snapshot; reseed, refresh and check the CPU quota after a restore) lives here, while
each handler supplies only what it refreshes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

from bert2vec.core import lifecycle
from bert2vec.core.cpu import requested_threads, tensorflow_threads_are, usable_cpus
from bert2vec.core.encoder import Encoder, default_model_dir
from bert2vec.core.settings import Settings
from bert2vec.core.tf_quiet import import_tensorflow

log = logging.getLogger("bert2vec.bootstrap")

#: Init's warm-up: the shortest texts of the one warm-up list, so the first call pays for graph
#: optimisation, not a request (the SnapStart hook warms every length of the list).
WARMUP_TEXTS = lifecycle.WARM_TEXTS[:2]


T = TypeVar("T")


def load_model(
    model_dir: Path | str | None = None,
    *,
    warm_up: Sequence[str] = WARMUP_TEXTS,
    timings: dict[str, Any] | None = None,
    logger: Any = log,
    settings: Settings | None = None,
) -> Encoder:
    """Import TensorFlow quietly, load ``model_dir`` (default ``MODEL_DIR``, else ``./build/model``),
    warm it up, log "model ready".

    ``settings`` gives ``MODEL_DIR`` and ``TF_NUM_THREADS`` (a handler's, read once at its init);
    without it those two variables are read alone, so a pip user's unrelated variable (a
    ``BATCH_SIZE`` meant for another tool) is not our error here. ``warm_up=()``: no warm-up call
    (the CLI and the Python API: the user's own texts are the first call).

    ``timings`` receives ``import_tf_s``, ``load_s``, ``warmup_s``, ``threads`` and
    ``threads_applied`` (False when something ran TensorFlow ops before, so the pools kept their
    earlier size). A missing or broken model raises ``ModelNotFoundError`` (Lambda: an init error).
    """
    t0 = time.perf_counter()
    import_tensorflow()
    t1 = time.perf_counter()
    if settings is not None:
        model_dir, requested = model_dir or settings.model_dir or default_model_dir(), settings.tf_num_threads
    else:
        model_dir, requested = model_dir or default_model_dir(), requested_threads()
    threads = usable_cpus(requested=requested)
    encoder = Encoder.load(model_dir, workers=threads)  # the one place TF's thread pools are sized
    t2 = time.perf_counter()
    if warm_up:
        encoder.encode(list(warm_up))
    t3 = time.perf_counter()
    record = {
        "import_tf_s": t1 - t0,
        "load_s": t2 - t1,
        "warmup_s": t3 - t2,
        "threads": threads,
        "threads_applied": tensorflow_threads_are(threads),
    }
    if timings is not None:
        timings.update(record)
    logger.info("model ready", extra={"model": encoder.name, "model_dir": str(encoder.model_dir), **record})
    return encoder


class Startup(Generic[T]):
    """One execution environment's start-up for a handler that serves ``T`` (a service, an engine).

    ``build`` receives a ``load`` function and returns the served object, so a handler decides what
    happens before the model loads (the bulk handler checks its settings first, so a contradiction
    fails init by name before TensorFlow starts). ``encoder_of`` and ``warm_batch`` say what to
    warm before a snapshot, ``prepare_snapshot`` anything else the handler loads then; ``refresh`` is the handler's part after a restore (fresh AWS clients).
    """

    def __init__(
        self,
        build: Callable[[Callable[[], Encoder]], T],
        *,
        encoder_of: Callable[[T], Encoder],
        warm_batch: Callable[[T], int],
        prepare_snapshot: Callable[[T], None] = lambda _: None,
        refresh: Callable[[T], None] = lambda _: None,
        logger: Any = log,
        settings: Settings | None = None,
    ) -> None:
        self._build = build
        self._encoder_of = encoder_of
        self._warm_batch = warm_batch
        self._prepare_snapshot = prepare_snapshot
        self._refresh = refresh
        self.logger = logger
        self._settings = settings  # None: read from the environment when needed
        self.timings: dict[str, Any] = {}
        self.value: T | None = None

    def get(self, model_dir: Path | str | None = None) -> T:
        """The served object, built (model loaded and warmed) on the first call only."""
        if self.value is None:
            settings = self._settings or Settings.from_env()
            self.value = self._build(
                lambda: load_model(model_dir, timings=self.timings, logger=self.logger, settings=settings)
            )
        return self.value

    def before_snapshot(self) -> None:
        """Warm every shape the first requests will hit, so no restored environment pays for it."""
        value = self.get()
        lifecycle.warm_shapes(self._encoder_of(value), self._warm_batch(value))
        self._prepare_snapshot(value)

    def after_restore(self) -> None:
        """Fresh randomness and the handler's fresh clients; say so if the CPU quota changed."""
        lifecycle.reseed()
        value = self.get()
        self._refresh(value)
        # Read again: a restored environment may run under another CPU quota (or TF_NUM_THREADS in tests).
        workers, cpus = self._encoder_of(value).workers, usable_cpus(requested=requested_threads())
        if cpus != workers:
            self.logger.warning("CPU quota changed since the snapshot", extra={"cpus": cpus, "workers": workers})

    def start(self) -> bool:
        """At the handler module's import (Lambda's init): start now and register the SnapStart hooks,
        unless ``BERT2VEC_LAZY_INIT=1`` defers start-up to the first ``get()``. True if started."""
        if (self._settings or Settings.from_env()).lazy_init:
            return False
        self.get()
        lifecycle.register(before_snapshot=self.before_snapshot, after_restore=self.after_restore, logger=self.logger)
        return True
