"""Bulk-path settings (environment variables: docs/s3-bulk.md) and the output key layout."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

from bert2vec.bulk.state import LEGACY_RUN_LAYOUT, RUN_LAYOUT
from bert2vec.core import defaults
from bert2vec.core.settings import ConfigError, Settings
from bert2vec.files.pipeline import OVERLONG_POLICIES
from bert2vec.files.readers import SUPPORTED_SUFFIXES, ReaderOptions
from bert2vec.files.writers import FORMATS

__all__ = [  # ConfigError: its former home
    "OWN_RUN_FILES", "RUNS_DIR", "ConfigError", "BulkConfig", "OutputLayout", "object_hash", "own_runs", "run_epoch",
    "run_name",
]  # fmt: skip

OUTPUT_FORMATS = (*FORMATS, "s3vectors")
# LONG_TEXT=chunk reads a line whole, in one invocation: this many characters is the most one line may
# have, so that no line outlasts a receive (docs/s3-bulk.md, "Limits", says how it was measured).
MAX_CHUNK_TEXT_CHARS = 1_000_000
# A manifest key is <base>.manifest.json; <base> is cut to this (S3 allows 1,024 bytes a key). The
# margin is what run directories under <base>/ needed before they moved to RUNS_DIR: kept, so every
# manifest keeps its key.
MAX_BASE_BYTES = 1024 - 160
MAX_VECTOR_TEXT_BYTES = 38 * 1024  # S3 Vectors' 40 KB of metadata per vector, less the rest of it
# Under OUTPUT_PREFIX: one directory per input object, named by object_hash, holding its runs.
RUNS_DIR = "_runs/"
# What a run directory holds that the engine wrote, relative to it. Every clean-up, listing and count
# of a run looks only at names matching this (and at run directories named like RUN_NAME), never at
# the rest: a run home's prefix can hold input manifests (below), and the previous layout's homes
# can hold another object's outputs (incoming/a.txt/<etag>/part-... put its own there).
RUN_NAME = re.compile(r"[A-Za-z0-9-]+(~[0-9]+)?")
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


def object_hash(bucket: str, name: str) -> str:
    """The 40-hex name of ``bucket/name`` in the engine's own directories: an input object's ledger
    record (``_objects/``) and run home (``_runs/``), an S3 Vectors index's model record
    (``_indexes/``). One function, so the ledger and the runs of an object can never disagree on it."""
    return hashlib.sha256(f"{bucket}/{name}".encode("utf-8", "surrogatepass")).hexdigest()[:40]


@dataclass(frozen=True)
class OutputLayout:
    """Where one input object's outputs go.

    ``<out><rel>.manifest.json`` is the user-facing result (``rel``: the input key without
    ``INPUT_PREFIX``; users find results by the input's name). Everything else lives in the run
    directory of the version: ``<out>_runs/<object_hash(bucket, key)>/<etag>[~<epoch>]/`` (the
    object's *run home*, then the run) holds the errors file the manifest names (``errors.jsonl``),
    parts ``part-<slice>-<segment>-<attempt>.<ext>`` (attempt-unique: no other attempt can
    overwrite them), per-slice commits in ``_slices/``, unfinished slices' progress in
    ``_progress/``, a ``.gz``'s decompressed copy (``_staged``) and for ``s3vectors`` the record of
    every vector key an attempt put in ``_vector_keys/``.

    **No input key reaches another object's run state.** Processing an input object writes one key
    that its name chooses, ``<out><rel>.manifest.json`` (the errors file of releases before the
    run-scoped one, ``<out><rel>.errors.jsonl``, is only ever deleted, and only when the manifest it
    replaces names it); every other key it writes is in its own run home, named by a hash of its
    bucket and key, or is the ledger record named by that same hash. No key the engine reads,
    lists or deletes as state ends in ``.manifest.json`` (run files: :data:`OWN_RUN_FILES`; the
    ledger and index records: ``<40 hex>.json``). So an input named to look like run state —
    ``incoming/_runs/<a's hash>/<a's run>/part-...`` — only adds a manifest that every listing of
    a's home passes over, and its own runs go to its own home. Two objects share a home only if
    their ``bucket/key`` share 160 bits of SHA-256.

    **The previous layout** (``version`` :data:`LEGACY_RUN_LAYOUT`) put the run directories under
    ``<out><rel>/``, where an input key that extends another's (``incoming/a.jsonl/<etag>/x.txt``)
    put its outputs inside the other's runs. Runs that started there finish there (their messages
    carry no layout), and clean-ups look in both homes (:attr:`homes`) until none is left:
    docs/s3-bulk.md, "Run state". ``legacy_home`` is None for a key the previous layout never
    started a run for (no supported suffix), so a key shaped like ``incoming/_runs/<hash>`` never
    turns another object's home into "its old runs".
    """

    bucket: str
    base: str  # <out><rel> (shortened past MAX_BASE_BYTES): the manifest's key without its suffix
    home: str  # this run's home: every run of the object in this layout is a directory in it
    run: str
    new_home: str  # <out>_runs/<hash>/
    legacy_home: str | None  # <base>/ where the previous layout can have left runs, or None
    version: int = RUN_LAYOUT

    @classmethod
    def for_object(
        cls, cfg: BulkConfig, bucket: str, key: str, etag: str, epoch: int = 0, version: int = RUN_LAYOUT
    ) -> OutputLayout:  # fmt: skip
        rel = key[len(cfg.input_prefix) :] if cfg.input_prefix and key.startswith(cfg.input_prefix) else key
        base = f"{cfg.output_prefix}{rel}"
        if len(base.encode("utf-8", "surrogatepass")) > MAX_BASE_BYTES:  # S3 keys end at 1,024 bytes
            digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]
            head = base.encode("utf-8", "surrogatepass")[: MAX_BASE_BYTES - 18].decode("utf-8", "ignore")
            base = f"{head}~{digest}"
        new_home = f"{cfg.output_prefix}{RUNS_DIR}{object_hash(bucket, key)}/"
        legacy_home = f"{base}/" if key.lower().endswith(SUPPORTED_SUFFIXES) else None
        if version == LEGACY_RUN_LAYOUT:
            if legacy_home is None:
                raise ValueError(f"s3://{bucket}/{key}: the previous run layout never held runs of this key")
            home = legacy_home
        elif version == RUN_LAYOUT:
            home = new_home
        else:
            raise ValueError(f"unknown run layout {version!r}")
        return cls(cfg.output_bucket or bucket, base, home, f"{home}{run_name(etag, epoch)}/", new_home, legacy_home,
                   version)  # fmt: skip

    @property
    def homes(self) -> tuple[str, ...]:
        """Every place a run of this object can be: this layout's home first, then the other one."""
        other = self.legacy_home if self.version == RUN_LAYOUT else self.new_home
        return (self.home,) if other is None else (self.home, other)

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
        """Where releases before the run-scoped errors file wrote it (removed when a newer manifest
        replaces one that names it — never otherwise: another object's run files can have this name)."""
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
    def staged_key(self) -> str:
        """A ``.gz``'s decompressed copy, which its slices are read from."""
        return f"{self.run}_staged"


def own_runs(home: str, keys: Iterable[str]) -> dict[str, list[str]]:
    """The run files among ``keys`` listed under ``home``, by run directory (``home`` + run name +
    ``/``): only names the engine writes, in directories named like runs. The rest — input
    manifests, and in a previous-layout home another object's outputs — is never returned."""
    runs: dict[str, list[str]] = {}
    for key in keys:
        run, _, inner = key[len(home) :].partition("/")
        if RUN_NAME.fullmatch(run) and OWN_RUN_FILES.fullmatch(inner):
            runs.setdefault(f"{home}{run}/", []).append(key)
    return runs


def run_name(etag: str, epoch: int = 0) -> str:
    """The run directory of one version in one ledger epoch (epoch 0: the layout before the ledger)."""
    name = re.sub(r"[^A-Za-z0-9-]", "", etag) or "noetag"
    return name if not epoch else f"{name}~{epoch}"


def run_epoch(name: str) -> int:
    """The epoch a run directory's name (or its path) carries (0 for the layout before the ledger)."""
    _, sep, epoch = name.rstrip("/").rpartition("/")[2].rpartition("~")
    return int(epoch) if sep and epoch.isdigit() else 0


def _same_names(view: type, s: Settings, exclude: frozenset[str] = frozenset()) -> dict[str, Any]:
    """``view``'s fields that ``Settings`` has too, with the settings' values."""
    return {f.name: getattr(s, f.name) for f in fields(view) if f.name not in exclude and hasattr(s, f.name)}


def prefixes_overlap(a: str, b: str) -> bool:
    """One key prefix inside the other (equal included; an empty prefix is the whole bucket)."""
    return a.startswith(b) or b.startswith(a)
