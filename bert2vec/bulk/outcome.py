"""One typed outcome per object (or shard message), mapped once to what each audience sees.

``Outcome`` is what the planner and the worker return; :data:`TASK_RESULT` maps its kind to an S3
Batch Operations result code the way ``HTTP_STATUS`` maps errors to HTTP statuses, and
:meth:`Outcome.summary` is the one shape logs and handler responses carry.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from bert2vec.files.pipeline import Counts


class Kind(StrEnum):
    ENCODED = "encoded"  # this invocation wrote the manifest (any status)
    IN_PROGRESS = "in_progress"  # slices done; others (or a hand-off) still running
    FANNED_OUT = "fanned_out"
    DUPLICATE = "duplicate"  # already encoded, or another attempt owns this work
    CHANGED = "changed"  # the object changed while it was read; its newer version has its own event
    VERSION_GONE = "version_gone"  # a Batch Operations task named a version that no longer exists
    IGNORED = "ignored"  # not ours to encode (own output, other prefix, deleted, unsupported suffix in a backfill)
    FAILED = "failed"  # a permanent verdict, written to the manifest
    DELETED = "deleted"  # the object was deleted: its vectors, parts and errors are gone, its manifest says so
    LATE = "late"  # S3's sequencer says a newer event for the key was handled first: nothing to do


TASK_RESULT: dict[Kind, str] = {
    Kind.ENCODED: "Succeeded",
    Kind.IN_PROGRESS: "Succeeded",
    Kind.FANNED_OUT: "Succeeded",
    Kind.DUPLICATE: "Succeeded",
    Kind.CHANGED: "Succeeded",
    Kind.VERSION_GONE: "PermanentFailure",
    Kind.IGNORED: "PermanentFailure",
    Kind.FAILED: "PermanentFailure",
    Kind.DELETED: "Succeeded",
    Kind.LATE: "Succeeded",
}


@dataclass(frozen=True)
class Outcome:
    kind: Kind
    key: str
    detail: str = ""
    manifest_key: str | None = None
    status: str | None = None  # the manifest's status when one was written
    counts: Counts | None = None  # the manifest's counts when one was written
    shards: int = 0
    slices_done: int = 0
    slices_skipped: int = 0
    handed_off_from: int | None = None

    def task_result(self) -> tuple[str, str]:
        """(resultCode, resultString) for S3 Batch Operations."""
        return TASK_RESULT[self.kind], self.describe()

    def describe(self) -> str:
        where = f" (manifest {self.manifest_key})" if self.manifest_key else ""
        if self.kind is Kind.ENCODED:
            return f"{self.status}: {self.counts.encoded if self.counts else 0} lines encoded{where}"
        if self.kind is Kind.IN_PROGRESS:
            if self.handed_off_from is not None:
                return f"slices from {self.handed_off_from} continue on the shard queue"
            return f"{self.slices_done} slices encoded; the manifest appears when the rest finish"
        if self.kind is Kind.FANNED_OUT:
            return f"fanned out as {self.shards} shards; the manifest appears when they finish"
        if self.kind is Kind.CHANGED:
            return f"not encoded: {self.detail}" if self.detail else (
                "not encoded: the object changed while it was read; its newer version is encoded by its own event"
            )
        if self.kind is Kind.DUPLICATE:
            return f"{self.detail or 'already encoded'}{where}"
        if self.kind is Kind.FAILED:
            return f"{self.detail}{where}"
        if self.kind is Kind.DELETED:
            return f"deleted: {self.detail}{where}"
        if self.kind is Kind.LATE:
            return f"nothing to do: {self.detail}"
        return f"not encoded: {self.detail}"

    def summary(self) -> dict[str, Any]:
        """The object's line in logs and in the handler's response."""
        out: dict[str, Any] = {"key": self.key, "outcome": self.kind.value, "detail": self.describe()}
        if self.manifest_key:
            out["manifest"] = self.manifest_key
        if self.status:
            out["status"] = self.status
        if self.counts is not None:
            out["counts"] = self.counts.to_dict()
        if self.shards:
            out["shards"] = self.shards
        if self.kind in (Kind.ENCODED, Kind.IN_PROGRESS, Kind.DUPLICATE):
            out["slices_done"], out["slices_skipped"] = self.slices_done, self.slices_skipped
        return out

    def lines_encoded(self) -> int:
        return self.counts.encoded if self.counts is not None and self.kind is Kind.ENCODED else 0
