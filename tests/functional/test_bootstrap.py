"""The one start-up routine (``bert2vec.core.bootstrap``) with the real model and the real
``snapshot_restore_py`` registry: what it records, when it starts, and what its SnapStart hooks do."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from bert2vec.core.bootstrap import Startup, load_model
from bert2vec.core.cpu import usable_cpus
from bert2vec.core.errors import ModelNotFoundError
from bert2vec.core.settings import LAZY_INIT_VAR

TIMING_KEYS = {"import_tf_s", "load_s", "warmup_s", "threads", "threads_applied"}


def test_load_model_records_its_timings_and_says_model_ready(default_model_dir: Path, caplog) -> None:
    timings: dict[str, Any] = {}
    with caplog.at_level(logging.INFO, logger="bert2vec.bootstrap"):
        encoder = load_model(default_model_dir, timings=timings)
    assert set(timings) == TIMING_KEYS
    assert timings["threads"] == usable_cpus() == encoder.workers
    assert isinstance(timings["threads_applied"], bool)
    assert all(timings[k] >= 0 for k in ("import_tf_s", "load_s", "warmup_s"))
    ready = [r for r in caplog.records if r.getMessage() == "model ready"]
    assert len(ready) == 1 and ready[0].model == encoder.name and ready[0].threads == encoder.workers


def test_the_python_api_and_the_cli_load_through_the_one_start_up(default_model_dir: Path, monkeypatch, caplog) -> None:
    """``Bert2Vec`` loads through ``load_model`` (its "model ready" line), without a warm-up call, and
    without settings only ``MODEL_DIR``/``TF_NUM_THREADS`` are read: a variable meant for another
    tool is not our error there."""
    from bert2vec import Bert2Vec
    from bert2vec.core import lifecycle
    from bert2vec.core.bootstrap import WARMUP_TEXTS

    monkeypatch.setenv("BATCH_SIZE", "large")
    with caplog.at_level(logging.INFO, logger="bert2vec.bootstrap"):
        model = Bert2Vec(default_model_dir)
    (ready,) = [r for r in caplog.records if r.getMessage() == "model ready"]
    assert ready.model == model.encoder.name and ready.warmup_s < 0.05  # no warm-up call
    assert set(WARMUP_TEXTS) <= set(lifecycle.WARM_TEXTS)  # one warm-up list


def test_a_missing_model_is_an_init_error_and_nothing_is_served(tmp_path: Path) -> None:
    startup = Startup(lambda load: load(), encoder_of=lambda e: e, warm_batch=lambda e: 1)
    with pytest.raises(ModelNotFoundError):
        startup.get(tmp_path)
    assert startup.value is None and startup.timings == {}


def _startup(encoder: Any, refreshed: list[Any], built: list[int]) -> Startup[Any]:
    def build(load: Any) -> Any:
        built.append(1)
        return {"encoder": encoder}

    return Startup(build, encoder_of=lambda v: v["encoder"], warm_batch=lambda v: 2, refresh=refreshed.append,
                   logger=logging.getLogger("bert2vec.bootstrap"))  # fmt: skip


def test_lazy_init_defers_start_up(default_encoder, monkeypatch) -> None:
    refreshed: list[Any] = []
    built: list[int] = []
    startup = _startup(default_encoder, refreshed, built)
    monkeypatch.setenv(LAZY_INIT_VAR, "1")
    assert startup.start() is False and startup.value is None and not built
    monkeypatch.delenv(LAZY_INIT_VAR)
    monkeypatch.delenv("AWS_LAMBDA_INITIALIZATION_TYPE", raising=False)
    assert startup.start() is True and startup.value == {"encoder": default_encoder}
    assert startup.get() is startup.value and built == [1]  # built once


def test_snapstart_hooks_are_the_shared_ones_plus_the_handlers_refresh(default_encoder, monkeypatch, caplog) -> None:
    import snapshot_restore_py as registry

    monkeypatch.setattr(registry, "_before_snapshot_registry", [])
    monkeypatch.setattr(registry, "_after_restore_registry", [])
    monkeypatch.delenv(LAZY_INIT_VAR, raising=False)
    monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", "snap-start")
    refreshed: list[Any] = []
    startup = _startup(default_encoder, refreshed, [])
    assert startup.start() is True
    ((before, _, _),) = registry._before_snapshot_registry
    ((after, _, _),) = registry._after_restore_registry
    with caplog.at_level(logging.INFO, logger="bert2vec.bootstrap"):
        before()
        assert not refreshed
        monkeypatch.setenv("TF_NUM_THREADS", str(default_encoder.workers + 1))  # a different quota after restore
        after()
    assert refreshed == [startup.value]  # the handler's own part ran, on the served object
    messages = [r.getMessage() for r in caplog.records]
    assert "before_snapshot hook done" in messages and "after_restore hook done" in messages
    assert "CPU quota changed since the snapshot" in messages


@pytest.mark.parametrize("long_text", ["chunk", "truncate"])
def test_a_bulk_function_set_to_chunk_loads_the_long_text_signatures_before_the_snapshot(
    default_model_dir: Path, long_text: str, monkeypatch
) -> None:
    """The bulk handler's snapshot preparation, on a fresh encoder of the default export (which
    keeps encode_long / encode_chunks in a SavedModel of its own, loaded on first use)."""
    from types import SimpleNamespace

    from bert2vec.core.encoder import Encoder

    monkeypatch.setenv(LAZY_INIT_VAR, "1")
    from bert2vec.bulk import app as bulk_app

    encoder = Encoder.load(default_model_dir)
    assert encoder._long_text is None  # not loaded by Encoder.load
    startup = Startup(lambda load: SimpleNamespace(encoder=encoder, cfg=SimpleNamespace(long_text=long_text, batch_size=2)),
                      encoder_of=lambda eng: eng.encoder, warm_batch=lambda eng: 2,
                      prepare_snapshot=bulk_app._prepare_snapshot)  # fmt: skip
    startup.before_snapshot()
    assert (encoder._long_text is not None) is (long_text == "chunk")
