"""Typed, versioned messages and persisted state of the S3 bulk path.

Words: a *slice* is the unit of work, a fixed byte range of an uncompressed ``.txt``/``.jsonl``
object (the lines whose first byte lies in it) or a fixed number of records of a stream that cannot
be split by bytes (``.gz``, ``.csv``). ("Chunk" is kept for long-text windows.) A slice is encoded
in one or more *segments*, one per invocation that works on it. An *attempt* is one invocation's
work on one slice; its parts carry its id, so no other attempt can overwrite them.

State objects, each written with a conditional PUT (see ``store.py``):

- :class:`Progress` (``_progress/<slice>.json``): the committed segments of an unfinished slice and
  where the next one resumes. Replaced only with ``If-Match`` on the version its writer read.
- :class:`Commit` (``_slices/<slice>.json``, "the marker"): written once with ``If-None-Match: *``;
  the attempt that writes it decides which parts count. Only parts it lists reach the manifest.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from bert2vec.files.pipeline import Counts

MESSAGE_VERSION = 2
STATE_VERSION = 1
# Where a run keeps its state (``config.OutputLayout``): 2, the object's hashed run home under
# ``_runs/``; 1, the previous layout under the input's own name. A message without the field was
# written by a release before it, for a run in the previous layout: that run finishes there.
RUN_LAYOUT = 2
LEGACY_RUN_LAYOUT = 1


@dataclass
class WorkItem:
    """One SQS message: slices ``[first_slice, end_slice)`` of one object version."""

    bucket: str
    key: str
    etag: str
    size: int
    kind: str
    gzip: bool
    unit: str  # "bytes" | "records"
    slice_size: int
    first_slice: int = 0
    end_slice: int | None = None  # None: to the end of the object
    first_line: int = 1  # line number of the first line of first_slice ("bytes" unit)
    hops: int = 0  # hand-offs so far in this chain of messages (bounded by MAX_HOPS)
    version_id: str | None = None  # the S3 version a Batch Operations task named, when it named one
    epoch: int = 0  # the object's ledger epoch the run started in (0: no ledger record, the old layout)
    model: str | None = None  # checksum of the model that planned the run: every slice must be this model's
    output_format: str | None = None  # OUTPUT_FORMAT that planned the run: every part must be this format
    # A .gz decompressed once into the run directory ({"bucket", "key", "etag", "size"}): slices are
    # byte ranges of it, so a compressed object fans out and no hand-off decompresses from byte 0.
    staged: dict[str, Any] | None = None
    layout: int = RUN_LAYOUT  # where the run's state is: every message of a run names the same

    def to_message(self, input_prefix: str) -> str:
        body = {"v": MESSAGE_VERSION, **asdict(self), "input_prefix": input_prefix}
        body["format"] = {"kind": body.pop("kind"), "gzip": body.pop("gzip")}
        return json.dumps(body, sort_keys=True)

    @classmethod
    def from_message(cls, body: str | dict[str, Any]) -> WorkItem:
        data = json.loads(body) if isinstance(body, str) else dict(body)
        version = data.get("v")
        if version == 1:  # messages queued by the previous release: same meaning, the old word
            data = {**data, "slice_size": data["chunk_size"], "first_slice": data.get("first_chunk", 0),
                    "end_slice": data.get("end_chunk")}  # fmt: skip
        elif version != MESSAGE_VERSION:
            raise ValueError(f"unsupported shard message version {version!r}")
        fmt = data["format"]
        return cls(
            bucket=data["bucket"], key=data["key"], etag=data["etag"], size=int(data["size"]),
            kind=fmt["kind"], gzip=bool(fmt["gzip"]), unit=data["unit"], slice_size=int(data["slice_size"]),
            first_slice=int(data.get("first_slice", 0)),
            end_slice=None if data.get("end_slice") is None else int(data["end_slice"]),
            first_line=int(data.get("first_line", 1)), hops=int(data.get("hops", 0)),
            version_id=data.get("version_id"), epoch=int(data.get("epoch") or 0), model=data.get("model"),
            output_format=data.get("output_format"), staged=data.get("staged"),
            layout=int(data.get("layout") or LEGACY_RUN_LAYOUT),
        )  # fmt: skip

    @property
    def read_size(self) -> int:
        """Bytes the slices divide: the staged plain copy's for a staged ``.gz``, else the object's."""
        return int(self.staged["size"]) if self.staged else self.size

    @property
    def total_slices(self) -> int | None:
        if self.unit != "bytes":
            return None
        return max(1, math.ceil(self.read_size / self.slice_size))


@dataclass
class Segment:
    """What one attempt encoded of a slice: its counts and its attempt-unique part keys."""

    segment: int
    attempt: str
    counts: Counts
    parts: list[str]
    rows: int  # = encoded lines, or with CHUNK_ROWS=1 their windows
    errors_key: str | None
    first_line: int | None
    last_line: int | None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "counts": self.counts.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Segment:
        fields: dict[str, Any] = {k: d.get(k) for k in cls.__dataclass_fields__}
        fields["counts"] = Counts.from_dict(d.get("counts"))
        return cls(**fields)


@dataclass
class Progress:
    """An unfinished slice: its committed segments and the resume point of the next one."""

    slice: int
    resume: int  # byte offset ("bytes") or records of the slice already done ("records")
    next_line: int
    first_line: int
    started_at: str
    segments: list[Segment] = field(default_factory=list)
    v: int = STATE_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "segments": [s.to_dict() for s in self.segments]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Progress:
        return cls(
            slice=int(d["slice"]), resume=int(d["resume"]), next_line=int(d["next_line"]),
            first_line=int(d["first_line"]), started_at=str(d["started_at"]),
            segments=[Segment.from_dict(s) for s in d.get("segments", [])], v=int(d.get("v", STATE_VERSION)),
        )  # fmt: skip


@dataclass(frozen=True)
class KeyRecord:
    """``_vector_keys/<slice>-<segment>-<attempt>-<n>.json``: the vector keys an attempt is about to
    put into the index, written *before* the put, so every later clean-up (a lost commit, a newer
    version's completion, a deletion) can find vectors no commit lists. It names the object it
    belongs to, and every reader checks that (:meth:`belongs_to`): a crafted input key that reaches
    into another object's run directory must never make a clean-up delete that object's vectors."""

    source_bucket: str
    source_key: str
    keys: list[str]
    etag: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"source_bucket": self.source_bucket, "source_key": self.source_key, "etag": self.etag,
                "keys": list(self.keys)}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> KeyRecord:
        """Tolerant: a record missing a field (unreadable, or not one of ours) names no object and no keys."""
        d = d or {}
        return cls(str(d.get("source_bucket") or ""), str(d.get("source_key") or ""),
                   [str(k) for k in d.get("keys") or []], d.get("etag"))  # fmt: skip

    def belongs_to(self, bucket: str, key: str) -> bool:
        return self.source_bucket == bucket and self.source_key == key


@dataclass
class Commit:
    """A finished (or failed) slice: the one record that says which parts count."""

    slice: int
    final: bool  # the object's last slice (or reading could not go on past it)
    finished_at: str
    attempt: str = ""
    counts: Counts = field(default_factory=Counts)
    segments: list[Segment] = field(default_factory=list)
    rows: int = 0
    first_line: int | None = None
    last_line: int | None = None
    next_line: int | None = None
    started_at: str | None = None
    failed: bool = False
    error: str | None = None
    read_error: str | None = None
    model: str | None = None  # checksum of the model that encoded the slice (None: before it was recorded)
    v: int = STATE_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "counts": self.counts.to_dict(), "segments": [s.to_dict() for s in self.segments]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Commit:
        """A commit as any release wrote it: fields it did not write yet take their defaults, and
        its counts are read by :meth:`Counts.from_dict` (a failed slice's ``{}`` is zeros)."""
        fields = {k: d.get(k) for k in cls.__dataclass_fields__ if k in d}
        fields["counts"] = Counts.from_dict(d.get("counts"))
        fields["segments"] = [Segment.from_dict(s) for s in d.get("segments", [])]
        return cls(**fields)
