"""``Settings.from_env``: every variable read once, each whole number parsed one way with a named
error, ``LONG_TEXT`` with its former name ``OVERLONG`` as an alias; ``Limits``, ``BulkConfig`` and
``VectorSearch`` are views of it."""

from __future__ import annotations

import pytest

from bert2vec.bulk.config import BulkConfig
from bert2vec.bulk.config import ConfigError as BulkConfigError
from bert2vec.core import defaults
from bert2vec.core.settings import ConfigError, Settings
from bert2vec.http.search import VectorSearch
from bert2vec.http.service import Limits


def test_nothing_set_is_every_default() -> None:
    s = Settings.from_env({})
    assert s == Settings()
    assert (s.long_text, s.max_text_chars, s.batch_size) == (defaults.LONG_TEXT, defaults.MAX_TEXT_CHARS, defaults.BATCH_SIZE)
    assert (s.service_name, s.bulk_service_name, s.metrics_namespace) == (
        defaults.SERVICE_NAME, defaults.BULK_SERVICE_NAME, defaults.METRICS_NAMESPACE)  # fmt: skip
    assert (s.vector_bucket, s.vector_index, s.stride, s.chunk_rows) == (None, None, None, False)


@pytest.mark.parametrize(
    "name", ["MAX_TEXT_CHARS", "MAX_TEXTS", "MAX_REQUEST_CHARS", "MAX_REQUEST_TOKENS", "BATCH_SIZE", "SHARD_BYTES",
             "SLICE_BYTES", "SLICE_RECORDS", "CHUNK_BYTES", "CHUNK_RECORDS", "SHARD_MAX_RECEIVES", "TIME_MARGIN_MS", "WINDOW_TEXTS", "MAX_HOPS",
             "VECTOR_TEXT_MAX_BYTES", "LONG_TEXT_STRIDE", "TF_NUM_THREADS"],
)  # fmt: skip
def test_a_whole_number_that_is_not_one_is_a_named_config_error(name: str) -> None:
    with pytest.raises(ConfigError, match=f"^{name} must be a whole number, got 'abc'$"):
        Settings.from_env({name: "abc"})


def test_max_text_chars_is_a_named_error_on_the_http_path_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_TEXT_CHARS", "abc")
    with pytest.raises(ConfigError, match="MAX_TEXT_CHARS must be a whole number, got 'abc'"):
        Limits.from_env()
    monkeypatch.setenv("MAX_TEXT_CHARS", " 500 ")
    assert Limits.from_env().max_text_chars == 500


def test_empty_means_unset() -> None:
    assert Settings.from_env({"MAX_TEXTS": "", "LONG_TEXT_STRIDE": "", "VECTOR_INDEX": ""}) == Settings()
    assert Settings.from_env({"LONG_TEXT_STRIDE": "0"}).stride == 0


@pytest.mark.parametrize(
    ("env", "want"),
    [({"LONG_TEXT": "chunk"}, "chunk"), ({"OVERLONG": "reject"}, "reject"),
     ({"LONG_TEXT": "chunk", "OVERLONG": "chunk"}, "chunk"), ({}, "truncate")],
)  # fmt: skip
def test_overlong_is_an_alias_of_long_text(env: dict[str, str], want: str) -> None:
    assert Settings.from_env(env).long_text == want


def test_long_text_and_overlong_that_disagree_name_both() -> None:
    with pytest.raises(ConfigError, match=r"LONG_TEXT=chunk and OVERLONG=reject disagree"):
        Settings.from_env({"LONG_TEXT": "chunk", "OVERLONG": "reject"})


def test_flags_take_one_or_zero() -> None:
    assert Settings.from_env({"CHUNK_ROWS": "yes"}).chunk_rows
    with pytest.raises(ConfigError, match="CHUNK_ROWS must be 1 or 0, got 'maybe'"):
        Settings.from_env({"CHUNK_ROWS": "maybe"})
    assert Settings.from_env({"BERT2VEC_LAZY_INIT": "1"}).lazy_init
    with pytest.raises(ConfigError, match="BERT2VEC_LAZY_INIT must be 1 or 0, got 'later'"):
        Settings.from_env({"BERT2VEC_LAZY_INIT": "later"})


def test_every_field_of_the_bulk_view_is_a_setting() -> None:
    """BulkConfig copies the settings' fields of the same names: one it has that Settings lacks would
    silently keep its default whatever the environment says."""
    from dataclasses import fields

    from bert2vec.files.readers import ReaderOptions

    settings = {f.name for f in fields(Settings)}
    assert {f.name for f in fields(BulkConfig)} - {"reader"} <= settings
    assert {f.name for f in fields(ReaderOptions)} - {"max_line_bytes"} <= settings
    env = {"TEXT_FIELD": "body", "CSV_ID_COLUMN": "key", "WINDOW_TEXTS": "9", "CHUNK_ROWS": "1", "LONG_TEXT": "chunk"}
    cfg = BulkConfig.from_settings(Settings.from_env(env))
    assert (cfg.reader.text_field, cfg.reader.csv_id_column, cfg.window, cfg.chunk_rows) == ("body", "key", 9, True)


def test_start_up_variables() -> None:
    s = Settings.from_env({"MODEL_DIR": "/opt/model", "TF_NUM_THREADS": "3"})
    assert (s.model_dir, s.tf_num_threads, s.lazy_init) == ("/opt/model", 3, False)
    with pytest.raises(ConfigError, match="^TF_NUM_THREADS must be 1 or more, got 0$"):
        Settings.from_env({"TF_NUM_THREADS": "0"})


def test_one_variable_read_alone_does_not_fail_on_another(monkeypatch: pytest.MonkeyPatch) -> None:
    """``MODEL_DIR`` and ``TF_NUM_THREADS`` parse as in Settings, but the pip user's paths that need
    only them (the default model lookup, ``Encoder.load``'s thread count) do not check the function's
    other variables: a ``BATCH_SIZE`` meant for some other tool is not our error there."""
    from pathlib import Path

    from bert2vec.core.cpu import requested_threads
    from bert2vec.core.encoder import default_model_dir
    from bert2vec.model_lookup import find_default_model

    monkeypatch.setenv("BATCH_SIZE", "large")
    monkeypatch.setenv("MODEL_DIR", "/opt/model")
    monkeypatch.setenv("TF_NUM_THREADS", "3")
    assert find_default_model() == default_model_dir() == Path("/opt/model")
    assert requested_threads() == 3
    with pytest.raises(ConfigError, match="BATCH_SIZE must be a whole number, got 'large'"):
        Settings.from_env()  # the function's own start-up still refuses it


def test_no_module_of_the_serving_side_reads_its_own_configuration() -> None:
    """Every variable goes through Settings.from_env; what is left reads the runtime's or TensorFlow's
    own variables (AWS_LAMBDA_INITIALIZATION_TYPE, TF_CPP_MIN_LOG_LEVEL), not our configuration."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "bert2vec"
    readers = re.compile(r"(?:os\.environ(?:\.get)?[\[(]|os\.getenv\()\s*[\"']([A-Z0-9_]+)")
    serving = [p for layer in ("core", "files", "http", "bulk") for p in (root / layer).rglob("*.py")]
    found = {(p.name, name) for p in serving if p.name != "settings.py"
             for name in readers.findall(p.read_text(encoding="utf-8"))}  # fmt: skip
    assert found == {("lifecycle.py", "AWS_LAMBDA_INITIALIZATION_TYPE"), ("tf_quiet.py", "TF_CPP_MIN_LOG_LEVEL")}


def test_the_views_read_one_settings_object(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"VECTOR_BUCKET": "arn:aws:s3vectors:us-east-1:123456789012:bucket/vecs", "VECTOR_INDEX": "docs",
           "MAX_TEXT_CHARS": "1234", "LONG_TEXT": "reject", "MAX_TEXTS": "7"}  # fmt: skip
    s = Settings.from_env(env)
    assert s.vector_bucket == "vecs"  # an ARN names its bucket
    cfg, limits, search = BulkConfig.from_settings(s), Limits.from_settings(s), VectorSearch.from_settings(s)
    assert (cfg.vector_bucket, cfg.vector_index) == (search.bucket, search.index) == ("vecs", "docs")
    assert cfg.max_text_chars == limits.max_text_chars == 1234
    assert (cfg.long_text, limits.max_texts) == ("reject", 7)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert BulkConfig.from_env() == cfg and Limits.from_env() == limits
    assert BulkConfigError is ConfigError  # the bulk path's error is the settings' one


@pytest.mark.parametrize(
    ("env", "want"),
    [({"SLICE_BYTES": "65536", "SLICE_RECORDS": "10"}, (65536, 10)),
     ({"CHUNK_BYTES": "65536", "CHUNK_RECORDS": "10"}, (65536, 10)),  # a deployed configuration's names
     ({"SLICE_BYTES": "65536", "CHUNK_BYTES": " 65536 "}, (65536, defaults.SLICE_RECORDS)),
     ({"SLICE_BYTES": "", "CHUNK_BYTES": "", "CHUNK_RECORDS": ""}, (defaults.SLICE_BYTES, defaults.SLICE_RECORDS))],
)  # fmt: skip
def test_chunk_bytes_and_chunk_records_are_aliases_of_the_slice_sizes(env: dict[str, str], want: tuple) -> None:
    s = Settings.from_env(env)
    assert (s.chunk_bytes, s.chunk_records) == want
    assert (BulkConfig.from_settings(s).chunk_bytes, BulkConfig.from_settings(s).chunk_records) == want


@pytest.mark.parametrize(("new", "old"), [("SLICE_BYTES", "CHUNK_BYTES"), ("SLICE_RECORDS", "CHUNK_RECORDS")])
def test_a_slice_size_and_its_former_name_that_disagree_name_both(new: str, old: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{new}=2048 and {old}=1024 disagree: {old} is {new}'s former name"):
        Settings.from_env({new: "2048", old: "1024"})
