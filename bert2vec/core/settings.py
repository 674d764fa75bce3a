"""Every environment variable the serving side reads, read once and parsed one way.

``Settings.from_env()`` is the only place that looks at ``os.environ`` for configuration: each
whole number goes through :func:`env_int`, so a bad value fails at init with the variable's name
and what was wrong (``MAX_TEXT_CHARS must be a whole number, got 'abc'``), never a bare
``ValueError``. The defaults are :mod:`bert2vec.core.defaults`'; ``Limits`` (HTTP),
``BulkConfig`` (S3 path) and ``VectorSearch`` (``/search``) are built from this object.

Renamed variables keep their former names as aliases (:data:`RENAMED`): a deployed configuration
that sets the old name goes on working, and one that sets both names to different values is a
``ConfigError`` naming both (which one would win is not something to guess). ``LONG_TEXT`` says
what happens to a text over the model's ``max_seq_length`` (formerly ``OVERLONG``); ``SLICE_BYTES``
and ``SLICE_RECORDS`` size the bulk path's unit of work, the *slice* (formerly ``CHUNK_BYTES`` and
``CHUNK_RECORDS``, from before "chunk" came to mean only a long text's window).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from bert2vec.core import defaults
from bert2vec.core.vector_index import vector_bucket_name


class ConfigError(ValueError):
    """Settings that contradict each other or cannot work; raised at init, naming the variables."""


def env_int(env: Mapping[str, str], name: str, default: int) -> int:
    """``name`` as a whole number; unset or empty: ``default``."""
    value = env.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {value!r}") from None


def env_optional_int(env: Mapping[str, str], name: str) -> int | None:
    """``name`` as a whole number, or ``None`` when unset or empty (the code then picks its own)."""
    return env_int(env, name, 0) if env.get(name, "").strip() else None


def env_flag(env: Mapping[str, str], name: str) -> bool:
    value = env.get(name, "").strip().lower()
    if value in ("", "0", "false", "no"):
        return False
    if value in ("1", "true", "yes"):
        return True
    raise ConfigError(f"{name} must be 1 or 0, got {value!r}")


#: ``1`` = a handler module does not start at import (tools and tests that import it without serving).
LAZY_INIT_VAR = "BERT2VEC_LAZY_INIT"


def env_model_dir(env: Mapping[str, str]) -> str | None:
    """``MODEL_DIR``, or None when unset or empty (the caller's own lookup then applies)."""
    return env.get("MODEL_DIR") or None


def env_threads(env: Mapping[str, str]) -> int | None:
    """``TF_NUM_THREADS``: a whole number ≥ 1, or None when unset (the CPU quota then decides)."""
    threads = env_optional_int(env, "TF_NUM_THREADS")
    if threads is not None and threads < 1:
        raise ConfigError(f"TF_NUM_THREADS must be 1 or more, got {threads}")
    return threads


#: variable -> its former name, still read.
RENAMED = {"LONG_TEXT": "OVERLONG", "SLICE_BYTES": "CHUNK_BYTES", "SLICE_RECORDS": "CHUNK_RECORDS"}


def _disagree(name: str, new: object, old: object) -> ConfigError:
    former = RENAMED[name]
    return ConfigError(f"{name}={new} and {former}={old} disagree: {former} is {name}'s former name; set only {name}")


def env_long_text(env: Mapping[str, str]) -> str:
    """``LONG_TEXT``, or its former name ``OVERLONG``; both set must agree."""
    new, old = env.get("LONG_TEXT", "").strip(), env.get(RENAMED["LONG_TEXT"], "").strip()
    if new and old and new != old:
        raise _disagree("LONG_TEXT", new, old)
    return new or old or defaults.LONG_TEXT


def env_renamed_int(env: Mapping[str, str], name: str, default: int) -> int:
    """``name`` as a whole number, or its former name's (:data:`RENAMED`); both set must be the same
    number. A bad value is named by the variable that holds it."""
    new, old = env_optional_int(env, name), env_optional_int(env, RENAMED[name])
    if new is not None and old is not None and new != old:
        raise _disagree(name, new, old)
    return default if new is None and old is None else new if new is not None else old  # type: ignore[return-value]


@dataclass(frozen=True)
class Settings:
    """The environment, parsed. Field defaults are ``defaults.py``'s, so ``Settings()`` is "nothing set"."""

    # start-up, every path
    model_dir: str | None = None  # MODEL_DIR; None: the caller's own lookup (the image sets it)
    tf_num_threads: int | None = None  # TF_NUM_THREADS; None: the CPU quota (bert2vec.core.cpu)
    lazy_init: bool = False  # BERT2VEC_LAZY_INIT=1: a handler module does not start at import
    # encoding, every path
    batch_size: int = defaults.BATCH_SIZE
    max_text_chars: int = defaults.MAX_TEXT_CHARS
    long_text: str = defaults.LONG_TEXT
    stride: int | None = None  # LONG_TEXT_STRIDE; None: the model's default
    # HTTP API
    max_texts: int = defaults.MAX_TEXTS
    max_request_chars: int = defaults.MAX_REQUEST_CHARS
    max_request_tokens: int = defaults.MAX_REQUEST_TOKENS
    cors_origins: str = ""
    service_name: str = defaults.SERVICE_NAME  # POWERTOOLS_SERVICE_NAME of the HTTP handler
    bulk_service_name: str = defaults.BULK_SERVICE_NAME  # ... and of the bulk handlers
    metrics_namespace: str = defaults.METRICS_NAMESPACE
    # S3 Vectors: /search reads the index, OUTPUT_FORMAT=s3vectors writes it
    vector_bucket: str | None = None
    vector_index: str | None = None
    vector_text_max_bytes: int = defaults.VECTOR_TEXT_MAX_BYTES
    # S3 bulk path
    input_prefix: str = defaults.INPUT_PREFIX
    output_bucket: str | None = None
    output_prefix: str = defaults.OUTPUT_PREFIX
    output_format: str = defaults.OUTPUT_FORMAT
    shard_bytes: int = defaults.SHARD_BYTES
    chunk_bytes: int = defaults.SLICE_BYTES  # SLICE_BYTES (formerly CHUNK_BYTES): a slice's size in bytes
    chunk_records: int = defaults.SLICE_RECORDS  # SLICE_RECORDS (formerly CHUNK_RECORDS): in records
    queue_url: str | None = None
    max_receives: int = defaults.SHARD_MAX_RECEIVES
    time_margin_ms: int = defaults.TIME_MARGIN_MS
    window: int = defaults.WINDOW_TEXTS
    max_hops: int = defaults.MAX_HOPS
    chunk_rows: bool = False
    text_field: str = defaults.TEXT_FIELD
    id_field: str = defaults.ID_FIELD
    csv_text_column: str = defaults.CSV_TEXT_COLUMN
    csv_id_column: str = defaults.CSV_ID_COLUMN

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Parse ``env`` (default ``os.environ``); raises :class:`ConfigError` naming the variable."""
        e = os.environ if env is None else env
        d = cls()

        def text(name: str, default: str) -> str:
            return e.get(name, default)

        def optional(name: str) -> str | None:
            return e.get(name) or None

        return cls(
            model_dir=env_model_dir(e),
            tf_num_threads=env_threads(e),
            lazy_init=env_flag(e, LAZY_INIT_VAR),
            batch_size=env_int(e, "BATCH_SIZE", d.batch_size),
            max_text_chars=env_int(e, "MAX_TEXT_CHARS", d.max_text_chars),
            long_text=env_long_text(e),
            stride=env_optional_int(e, "LONG_TEXT_STRIDE"),
            max_texts=env_int(e, "MAX_TEXTS", d.max_texts),
            max_request_chars=env_int(e, "MAX_REQUEST_CHARS", d.max_request_chars),
            max_request_tokens=env_int(e, "MAX_REQUEST_TOKENS", d.max_request_tokens),
            cors_origins=text("CORS_ORIGINS", ""),
            service_name=text("POWERTOOLS_SERVICE_NAME", d.service_name),
            bulk_service_name=text("POWERTOOLS_SERVICE_NAME", d.bulk_service_name),
            metrics_namespace=text("POWERTOOLS_METRICS_NAMESPACE", d.metrics_namespace),
            vector_bucket=vector_bucket_name(e.get("VECTOR_BUCKET", "")) or None,
            vector_index=optional("VECTOR_INDEX"),
            vector_text_max_bytes=env_int(e, "VECTOR_TEXT_MAX_BYTES", d.vector_text_max_bytes),
            input_prefix=text("INPUT_PREFIX", d.input_prefix),
            output_bucket=optional("OUTPUT_BUCKET"),
            output_prefix=text("OUTPUT_PREFIX", d.output_prefix),
            output_format=text("OUTPUT_FORMAT", d.output_format),
            shard_bytes=env_int(e, "SHARD_BYTES", d.shard_bytes),
            chunk_bytes=env_renamed_int(e, "SLICE_BYTES", d.chunk_bytes),
            chunk_records=env_renamed_int(e, "SLICE_RECORDS", d.chunk_records),
            queue_url=optional("SHARD_QUEUE_URL"),
            max_receives=env_int(e, "SHARD_MAX_RECEIVES", d.max_receives),
            time_margin_ms=env_int(e, "TIME_MARGIN_MS", d.time_margin_ms),
            window=env_int(e, "WINDOW_TEXTS", d.window),
            max_hops=env_int(e, "MAX_HOPS", d.max_hops),
            chunk_rows=env_flag(e, "CHUNK_ROWS"),
            text_field=text("TEXT_FIELD", d.text_field),
            id_field=text("ID_FIELD", d.id_field),
            csv_text_column=text("CSV_TEXT_COLUMN", d.csv_text_column),
            csv_id_column=text("CSV_ID_COLUMN", d.csv_id_column),
        )
