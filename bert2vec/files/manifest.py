"""The manifest: the one document that says what was read from an input, what was written, and
what was lost and why. Built here for both the S3 path and ``bert-encode --input``, so a local run
and an S3 run describe a file with the same fields (local runs put ``path`` where S3 has ``key``).

``status`` is ``complete`` only when every line is accounted for: no slice failed,
``lines_read == encoded + rejected + blank``, and no rejected unit swallowed further lines (a CSV
quote that never closes turns the rest of the file into one bad record: that is ``incomplete``).

:class:`Manifest` is the one writer (:meth:`Manifest.to_json`) and the one reader
(:meth:`Manifest.from_json`) of the document, so every producer (finalizer, planner, deletion,
CLI) writes the same shape and every consumer (duplicate check, reconcile, outcome, CLI summary)
reads it through the same tolerant parser. Shapes on S3 outlive releases: a manifest written by any
earlier release must still parse. Those differ only in words:

- version 1 called the slices ``chunks`` (``chunks.chunk_size``, ``chunks.failed[].chunk``,
  ``output.parts[].chunk``);
- version 2 calls them ``slices`` (``slice_size``, ``failed[].slice``, ``parts[].slice``) and still
  writes the version-1 names beside them (:data:`ALIASES`), so a script written against a
  version-1 manifest keeps working.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bert2vec.files.pipeline import Counts

MANIFEST_VERSION = 2
MODEL_SUMMARY_KEYS = ("name", "source", "vector_length", "pooling", "normalize", "max_seq_length", "checksum")
# Statuses of a manifest that answers its input version for good (a duplicate event is a no-op).
FINISHED = ("complete", "incomplete", "failed")
# Version-1 words still written beside their version-2 names (documented as aliases in docs/s3-bulk.md).
ALIASES = {"slices": "chunks", "slice_size": "chunk_size", "slice": "chunk"}


def now() -> str:
    """UTC, to the second: the timestamps manifests and slice commits carry."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def model_summary(card: dict[str, Any]) -> dict[str, Any]:
    """The model-card fields a reader of the vectors needs (which model, which pooling)."""
    return {k: card.get(k) for k in MODEL_SUMMARY_KEYS}


def status_of(counts: Counts, failed_slices: int, total_slices: int) -> str:
    if total_slices and failed_slices == total_slices:
        return "failed"
    if failed_slices or not counts.balanced() or counts.swallowed:
        return "incomplete"
    return "complete"


def _opt(d: dict[str, Any], key: str, value: Any, absent: Any = None) -> None:
    """Set ``key`` unless ``value`` is ``absent``: optional fields are left out, never written as null,
    so the bytes of a manifest do not change when a field some writers never set is added."""
    if value is not absent:
        d[key] = value


@dataclass(frozen=True)
class SourceFormat:
    kind: str
    gzip: bool

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "gzip": self.gzip}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> SourceFormat | None:
        return None if not d else cls(str(d.get("kind")), bool(d.get("gzip")))


@dataclass(frozen=True)
class Source:
    """The manifest's ``input``: which version of which object (S3) or file (local) it describes."""

    bucket: str | None = None
    key: str | None = None
    path: str | None = None  # local runs: the file ("-" for stdin)
    etag: str | None = None  # None: a deletion record (no version is described)
    size: int | None = None
    format: SourceFormat | None = None
    version_id: str | None = None  # the S3 version a Batch Operations task named
    epoch: int = 0  # the object's ledger epoch (0: left out, the layout before the ledger)
    sequencer: str | None = None  # deletion records: the S3 sequencer of the deletion

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        _opt(d, "bucket", self.bucket)
        _opt(d, "key", self.key)
        _opt(d, "path", self.path)
        _opt(d, "etag", self.etag)
        if self.etag is not None or self.path is not None:  # a described version always has a size (stdin: null)
            d["size"] = self.size
        _opt(d, "format", None if self.format is None else self.format.to_dict())
        _opt(d, "version_id", self.version_id)
        _opt(d, "epoch", self.epoch, 0)
        _opt(d, "sequencer", self.sequencer)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Source:
        d = d or {}
        return cls(
            bucket=d.get("bucket"), key=d.get("key"), path=d.get("path"), etag=d.get("etag"),
            size=None if d.get("size") is None else int(d["size"]), format=SourceFormat.from_dict(d.get("format")),
            version_id=d.get("version_id"), epoch=int(d.get("epoch") or 0), sequencer=d.get("sequencer"),
        )  # fmt: skip


@dataclass(frozen=True)
class Part:
    """One part of the output in input order: a slice's segment (S3) or the whole file (local)."""

    slice: int
    rows: int
    first_line: int | None
    last_line: int | None
    segment: int | None = None  # S3: which of the slice's segments (local runs have one part)
    key: str | None = None  # S3
    path: str | None = None  # local ("-" for stdout)
    ids_key: str | None = None  # npy: the ids sidecar
    ids_path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"slice": self.slice, ALIASES["slice"]: self.slice}
        _opt(d, "segment", self.segment)
        d.update(rows=self.rows, first_line=self.first_line, last_line=self.last_line)
        _opt(d, "key", self.key)
        _opt(d, "path", self.path)
        _opt(d, "ids_key", self.ids_key)
        _opt(d, "ids_path", self.ids_path)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Part:
        return cls(
            slice=int(d["slice"] if "slice" in d else d["chunk"]), rows=int(d.get("rows") or 0),
            first_line=d.get("first_line"), last_line=d.get("last_line"), segment=d.get("segment"),
            key=d.get("key"), path=d.get("path"), ids_key=d.get("ids_key"), ids_path=d.get("ids_path"),
        )  # fmt: skip


@dataclass(frozen=True)
class Output:
    """The manifest's ``output``: where the parts are and what else the run wrote."""

    format: str
    parts: list[Part] = field(default_factory=list)
    bucket: str | None = None  # None: a local run
    errors_key: str | None = None  # S3: the run's errors file
    errors_path: str | None = None  # local: the errors file (null when none was kept)
    vector_bucket: str | None = None  # s3vectors: the index the vectors went to
    vector_index: str | None = None
    stale_vectors_deleted: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        _opt(d, "bucket", self.bucket)
        d["format"] = self.format
        d["parts"] = [p.to_dict() for p in self.parts]
        _opt(d, "errors_key", self.errors_key)
        if self.bucket is None:
            d["errors_path"] = self.errors_path
        if self.stale_vectors_deleted is not None:
            d.update(vector_bucket=self.vector_bucket, vector_index=self.vector_index,
                     stale_vectors_deleted=self.stale_vectors_deleted)  # fmt: skip
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Output | None:
        if d is None:
            return None
        return cls(
            format=str(d.get("format")), parts=[Part.from_dict(p) for p in d.get("parts") or []],
            bucket=d.get("bucket"), errors_key=d.get("errors_key"), errors_path=d.get("errors_path"),
            vector_bucket=d.get("vector_bucket"), vector_index=d.get("vector_index"),
            stale_vectors_deleted=d.get("stale_vectors_deleted"),
        )  # fmt: skip


@dataclass(frozen=True)
class FailedSlice:
    slice: int
    error: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"slice": self.slice, "error": self.error}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FailedSlice:
        return cls(int(d["slice"] if "slice" in d else d["chunk"]), d.get("error"))


@dataclass(frozen=True)
class Slices:
    """How the input was divided (S3 path): ``unit`` ``bytes`` or ``records`` of ``slice_size``."""

    total: int
    unit: str
    slice_size: int
    failed: list[FailedSlice] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "unit": self.unit, "slice_size": self.slice_size,
                "failed": [f.to_dict() for f in self.failed]}  # fmt: skip

    def to_alias_dict(self) -> dict[str, Any]:
        """The same in version 1's words (``chunks``), for readers written against it."""
        return {"total": self.total, "unit": self.unit, "chunk_size": self.slice_size,
                "failed": [{"chunk": f.slice, "error": f.error} for f in self.failed]}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Slices:
        return cls(
            total=int(d["total"]), unit=str(d["unit"]), slice_size=int(d.get("slice_size", d.get("chunk_size", 0))),
            failed=[FailedSlice.from_dict(f) for f in d.get("failed") or []],
        )  # fmt: skip


@dataclass(frozen=True)
class Timings:
    started_at: str
    finished_at: str
    encode_seconds: float
    wall_seconds: float | None = None  # local runs: the command's wall time

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"started_at": self.started_at, "finished_at": self.finished_at,
                             "encode_seconds": self.encode_seconds}  # fmt: skip
        _opt(d, "wall_seconds", self.wall_seconds)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Timings | None:
        if d is None:
            return None
        wall = d.get("wall_seconds")
        return cls(str(d.get("started_at")), str(d.get("finished_at")), float(d.get("encode_seconds") or 0.0),
                   None if wall is None else float(wall))  # fmt: skip


@dataclass(frozen=True)
class Deleted:
    """A ``deleted`` record's reason: the object is gone, so are its outputs."""

    reason: str
    at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"reason": self.reason}
        _opt(d, "at", self.at)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Deleted | None:
        return None if d is None else cls(str(d.get("reason")), d.get("at"))


@dataclass(frozen=True)
class Manifest:
    """One manifest, whatever its status: ``complete`` / ``incomplete`` / ``failed`` describe an
    input version (model, output, counts); ``deleted`` records that the object is gone (``deleted``);
    a ``failed`` one with ``retryable`` stands in while Lambda retries a planner failure."""

    status: str
    input: Source
    model: dict[str, Any] | None = None
    output: Output | None = None
    counts: Counts | None = None
    slices: Slices | None = None
    timings: Timings | None = None
    error: str | None = None
    retryable: bool = False
    deleted: Deleted | None = None
    version: int = MANIFEST_VERSION  # as read; always MANIFEST_VERSION when built here

    @classmethod
    def result(
        cls, *, status: str, input: Source, model_card: dict[str, Any], output: Output, counts: Counts,
        timings: Timings | None = None, slices: Slices | None = None, error: str | None = None,
        retryable: bool = False,
    ) -> Manifest:  # fmt: skip
        """A manifest that describes an input version (any status but ``deleted``)."""
        return cls(status=status, input=input, model=model_summary(model_card), output=output, counts=counts,
                   slices=slices, timings=timings, error=error, retryable=retryable)  # fmt: skip

    @classmethod
    def deletion(cls, input: Source, reason: str, at: str | None = None) -> Manifest:
        return cls(status="deleted", input=input, deleted=Deleted(reason, at))

    # ---- questions readers ask -------------------------------------------------------------
    @property
    def etag(self) -> str | None:
        return self.input.etag

    def answers(self, etag: str, epoch: int) -> bool:
        """Whether this manifest already answers this version in this epoch (a new event is a duplicate).

        Its status counts, not only its ETag: a ``deleted`` record or a ``retryable`` marker never makes
        an upload a duplicate, and a manifest of an earlier epoch (before a deletion or a new upload of
        the same bytes) does not either — that upload is encoded afresh."""
        return self.input.etag == etag and self.input.epoch == epoch and self.finished

    @property
    def finished(self) -> bool:
        """A final verdict on its input version (not a deletion record, not a retry stand-in)."""
        return self.status in FINISHED and not self.retryable

    # ---- the one writer and the one reader -------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"version": self.version, "status": self.status, "input": self.input.to_dict()}
        if self.deleted is not None:
            d["deleted"] = self.deleted.to_dict()
        if self.model is not None:
            d["model"] = self.model
        if self.output is not None:
            d["output"] = self.output.to_dict()
        if self.counts is not None:
            d["counts"] = self.counts.to_dict()
            d["balanced"] = self.counts.balanced()
        if self.slices is not None:
            d["slices"] = self.slices.to_dict()
            d[ALIASES["slices"]] = self.slices.to_alias_dict()
        if self.timings is not None:
            d["timings"] = self.timings.to_dict()
        _opt(d, "error", self.error)
        if self.retryable:
            d["retryable"] = True  # written before the retry: a retry is not a duplicate
        return d

    def to_json(self) -> bytes:
        return dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Manifest:
        """Any release's manifest (version 1's ``chunks`` words included); unknown keys are ignored."""
        slices = d.get("slices", d.get("chunks"))
        return cls(
            status=str(d.get("status")), input=Source.from_dict(d.get("input")), model=d.get("model"),
            output=Output.from_dict(d.get("output")),
            counts=None if d.get("counts") is None else Counts.from_dict(d["counts"]),
            slices=None if slices is None else Slices.from_dict(slices), timings=Timings.from_dict(d.get("timings")),
            error=d.get("error"), retryable=bool(d.get("retryable")), deleted=Deleted.from_dict(d.get("deleted")),
            version=int(d.get("version") or 1),
        )  # fmt: skip

    @classmethod
    def from_json(cls, body: bytes | str) -> Manifest:
        return cls.from_dict(json.loads(body))


def dumps(data: dict[str, Any]) -> bytes:
    """The bytes written to S3 or disk: indented, sorted keys, so equal manifests are equal files."""
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8")
