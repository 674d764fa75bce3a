"""Bulk-path settings (environment variables: docs/s3-bulk.md) and the output key layout."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, fields
from typing import Any

from bert2vec.core import defaults
from bert2vec.core.settings import ConfigError, Settings
from bert2vec.files.pipeline import OVERLONG_POLICIES
from bert2vec.files.readers import ReaderOptions
from bert2vec.files.writers import FORMATS

__all__ = ["OWN_RUN_FILES", "ConfigError", "BulkConfig", "OutputLayout", "run_epoch", "run_name"]  # ConfigError: its former home

OUTPUT_FORMATS = (*FORMATS, "s3vectors")
# LONG_TEXT=chunk reads a line whole, in one invocation: this many characters is the most one line may
# have, so that no line outlasts a receive (docs/s3-bulk.md, "Limits", says how it was measured).
MAX_CHUNK_TEXT_CHARS = 1_000_000
# Output keys are <base> plus at most ~130 bytes (run directory, part name, suffix); S3 allows 1,024.
MAX_BASE_BYTES = 1024 - 160
MAX_VECTOR_TEXT_BYTES = 38 * 1024  # S3 Vectors' 40 KB of metadata per vector, less the rest of it
# What a run directory holds that the engine wrote, relative to it. An input key can be crafted so
# that its own outputs land inside another object's run directory (incoming/a.txt/<etag>/part-...):
# every clean-up, listing and count of a run looks only at names matching this, never at the rest.
OWN_RUN_FILES = re.compile(
    r"(part-\d{6}-\d{4}-[0-9a-f]{12}(\.keys\.jsonl|\.jsonl|\.parquet|\.npy|\.ids\.jsonl)"
    r"|_slices/\d{6}\.json|_slices/\d{6}-\d{4}-[0-9a-f]{12}\.errors\.jsonl|_progress/\d{6}\.json"
    r"|_vector_keys/\d{6}-\d{4}-[0-9a-f]{12}-\d{5}\.json|_cleanup\.json|errors\.jsonl|_staged)"
)


@dataclass(frozen=True)
class BulkConfig:
    input_prefix: str = defaults.INPUT_PREFIX
    output_bucket: str | None = None  # None: the input bucket
    output_prefix: str = defaults.OUTPUT_PREFIX
    output_format: str = defaults.OUTPUT_FORMAT
    shard_bytes: int = defaults.SHARD_BYTES
    chunk_bytes: int = defaults.SLICE_BYTES  # SLICE_BYTES
    chunk_records: int = defaults.SLICE_RECORDS  # SLICE_RECORDS
    queue_url: str | None = None
    max_receives: int = defaults.SHARD_MAX_RECEIVES
    long_text: str = defaults.LONG_TEXT  # LONG_TEXT (former name: OVERLONG)
    max_text_chars: int = defaults.MAX_TEXT_CHARS
    time_margin_ms: int = defaults.TIME_MARGIN_MS
    window: int = defaults.WINDOW_TEXTS
    batch_size: int = defaults.BATCH_SIZE
    max_hops: int = defaults.MAX_HOPS
    vector_bucket: str | None = None  # OUTPUT_FORMAT=s3vectors: the S3 Vectors bucket and index
    vector_index: str | None = None
    vector_text_max_bytes: int = defaults.VECTOR_TEXT_MAX_BYTES
    stride: int | None = None  # LONG_TEXT=chunk: LONG_TEXT_STRIDE, the windows' overlap (None: the default)
    chunk_rows: bool = False  # LONG_TEXT=chunk: CHUNK_ROWS=1 writes one row per window
    reader: ReaderOptions = field(default_factory=ReaderOptions)

    def __post_init__(self) -> None:
        if self.output_format not in OUTPUT_FORMATS:
            raise ConfigError(f"OUTPUT_FORMAT must be one of {', '.join(OUTPUT_FORMATS)}, got {self.output_format!r}")
        if self.long_text not in OVERLONG_POLICIES:
            raise ConfigError(
                f"LONG_TEXT (or OVERLONG) must be one of {', '.join(OVERLONG_POLICIES)}, got {self.long_text!r}"
            )
        if self.chunk_rows and self.long_text != "chunk":
            raise ConfigError(f"CHUNK_ROWS=1 needs LONG_TEXT=chunk (got LONG_TEXT={self.long_text})")
        if self.stride is not None and self.long_text != "chunk":
            raise ConfigError(f"LONG_TEXT_STRIDE applies only to LONG_TEXT=chunk (got LONG_TEXT={self.long_text})")
        if self.stride is not None and self.stride < 0:
            raise ConfigError(f"LONG_TEXT_STRIDE={self.stride}: must be >= 0 (and less than max_seq_length - 2)")
        if self.long_text == "chunk" and self.max_text_chars > MAX_CHUNK_TEXT_CHARS:
            raise ConfigError(
                f"MAX_TEXT_CHARS={self.max_text_chars} with LONG_TEXT=chunk: at most {MAX_CHUNK_TEXT_CHARS} (a line is "
                "encoded whole in one invocation and must fit its time limit)"
            )
        if not 0 <= self.vector_text_max_bytes <= MAX_VECTOR_TEXT_BYTES:
            raise ConfigError(
                f"VECTOR_TEXT_MAX_BYTES={self.vector_text_max_bytes}: must be 0..{MAX_VECTOR_TEXT_BYTES} (S3 Vectors "
                "allows 40 KB of metadata per vector)"
            )
        if self.output_bucket is None and prefixes_overlap(self.input_prefix, self.output_prefix):
            raise ConfigError(
                f"OUTPUT_PREFIX={self.output_prefix!r} and INPUT_PREFIX={self.input_prefix!r} overlap in one bucket "
                "(OUTPUT_BUCKET empty): neither may lie inside the other, or inputs are skipped as outputs"
            )
        if self.output_format == "s3vectors" and not (self.vector_bucket and self.vector_index):
            raise ConfigError("OUTPUT_FORMAT=s3vectors needs VECTOR_BUCKET and VECTOR_INDEX")
        if self.chunk_bytes < 1 or self.shard_bytes < self.chunk_bytes:
            raise ConfigError(
                f"SLICE_BYTES={self.chunk_bytes} and SHARD_BYTES={self.shard_bytes}: need 1 <= SLICE_BYTES <= "
                "SHARD_BYTES (a shard is a whole number of slices; SLICE_BYTES was CHUNK_BYTES)"
            )
        for name, value in (("SLICE_RECORDS", self.chunk_records), ("WINDOW_TEXTS", self.window),
                            ("BATCH_SIZE", self.batch_size), ("MAX_HOPS", self.max_hops),
                            ("SHARD_MAX_RECEIVES", self.max_receives)):  # fmt: skip
            if value < 1:
                raise ConfigError(f"{name}={value}: must be >= 1")

    @classmethod
    def from_env(cls) -> BulkConfig:
        return cls.from_settings(Settings.from_env())

    @classmethod
    def from_settings(cls, s: Settings) -> BulkConfig:
        """The bulk path's view of the settings (checked for consistency here): each field is the
        settings' field of the same name, so a variable is added to ``Settings`` once and shows here."""
        return cls(**_same_names(cls, s, exclude=frozenset({"reader"})), reader=ReaderOptions(**_same_names(ReaderOptions, s)))


@dataclass(frozen=True)
class OutputLayout:
    """Where one input object's outputs go.

    ``<out>/<rel>.manifest.json`` is the user-facing result; everything else lives in the version's
    run directory ``<out>/<rel>/<etag>[~<epoch>]/``: the errors file the manifest names
    (``errors.jsonl``), parts
    ``part-<slice>-<segment>-<attempt>.<ext>`` (attempt-unique: no other attempt can overwrite
    them), per-slice commits in ``_slices/``, unfinished slices' progress in ``_progress/``, and for
    ``s3vectors`` the record of every vector key an attempt put in ``_vector_keys/``. ``rel`` is the
    input key without ``INPUT_PREFIX``.
    """

    bucket: str
    base: str
    run: str

    @classmethod
    def for_object(cls, cfg: BulkConfig, bucket: str, key: str, etag: str, epoch: int = 0) -> OutputLayout:
        rel = key[len(cfg.input_prefix) :] if cfg.input_prefix and key.startswith(cfg.input_prefix) else key
        base = f"{cfg.output_prefix}{rel}"
        if len(base.encode("utf-8", "surrogatepass")) > MAX_BASE_BYTES:  # S3 keys end at 1,024 bytes
            digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]
            head = base.encode("utf-8", "surrogatepass")[: MAX_BASE_BYTES - 18].decode("utf-8", "ignore")
            base = f"{head}~{digest}"
        return cls(cfg.output_bucket or bucket, base, f"{base}/{run_name(etag, epoch)}/")

    @property
    def manifest_key(self) -> str:
        return f"{self.base}.manifest.json"

    @property
    def errors_key(self) -> str:
        """The run's rejected lines: inside the run directory, so a manifest and its errors file are
        one unit (the manifest names it; another run never writes it)."""
        return f"{self.run}errors.jsonl"

    @property
    def legacy_errors_key(self) -> str:
        """Where releases before the run-scoped errors file wrote it (removed when a newer manifest lands)."""
        return f"{self.base}.errors.jsonl"

    def part_key(self, slice_: int, segment: int, attempt: str, suffix: str) -> str:
        return f"{self.run}part-{slice_:06d}-{segment:04d}-{attempt}{suffix}"

    def slice_errors_key(self, slice_: int, segment: int, attempt: str) -> str:
        return f"{self.run}_slices/{slice_:06d}-{segment:04d}-{attempt}.errors.jsonl"

    def progress_key(self, slice_: int) -> str:
        """Where an unfinished slice's committed segments and resume point are kept between invocations."""
        return f"{self.run}_progress/{slice_:06d}.json"

    def commit_key(self, slice_: int) -> str:
        return f"{self.run}_slices/{slice_:06d}.json"

    @property
    def commits_prefix(self) -> str:
        return f"{self.run}_slices/"

    @property
    def vector_keys_prefix(self) -> str:
        return f"{self.run}_vector_keys/"

    @property
    def cleanup_key(self) -> str:
        """What this version's completion deleted from the index (so a re-run reports the same)."""
        return f"{self.run}_cleanup.json"

    @property
    def runs_prefix(self) -> str:
        return f"{self.base}/"


def run_name(etag: str, epoch: int = 0) -> str:
    """The run directory of one version in one ledger epoch (epoch 0: the layout before the ledger)."""
    name = re.sub(r"[^A-Za-z0-9-]", "", etag) or "noetag"
    return name if not epoch else f"{name}~{epoch}"


def run_epoch(name: str) -> int:
    """The epoch a run directory's name carries (0 for the layout before the ledger)."""
    _, sep, epoch = name.rpartition("~")
    return int(epoch) if sep and epoch.isdigit() else 0


def _same_names(view: type, s: Settings, exclude: frozenset[str] = frozenset()) -> dict[str, Any]:
    """``view``'s fields that ``Settings`` has too, with the settings' values."""
    return {f.name: getattr(s, f.name) for f in fields(view) if f.name not in exclude and hasattr(s, f.name)}


def prefixes_overlap(a: str, b: str) -> bool:
    """One key prefix inside the other (equal included; an empty prefix is the whole bucket)."""
    return a.startswith(b) or b.startswith(a)
