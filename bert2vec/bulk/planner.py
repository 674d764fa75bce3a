"""The planner: one object notification (or Batch Operations task) in, one decision out.

Planning reads (the object's HEAD, its manifest, its first bytes) and records what ordering needs
(the ledger's verdict on the event), but it never runs the work: it answers with a :data:`Plan` —
encode these slices inline, send these shard messages, or report this outcome (after writing this
failed manifest) — that the engine (:mod:`bert2vec.bulk.s3_engine`) carries out. Whatever goes
wrong ends in the object's manifest: a permanent problem as ``failed`` (a :class:`Failure` in the
plan); an unexpected or transient error while planning or carrying out an admitted object writes a
``retryable`` failed manifest (:meth:`Admitted.failure`) and is raised again, so Lambda's retry
(or Batch Operations' ``TemporaryFailure``) still sees it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from bert2vec.aws.errors import error_code, is_denied, is_not_found
from bert2vec.bulk.config import OWN_RUN_FILES, BulkConfig, OutputLayout, run_name
from bert2vec.bulk.ledger import Ledger
from bert2vec.bulk.outcome import Kind, Outcome
from bert2vec.bulk.source import InputObject
from bert2vec.bulk.state import LEGACY_RUN_LAYOUT, RUN_LAYOUT, WorkItem
from bert2vec.bulk.store import S3Store
from bert2vec.files.manifest import Manifest
from bert2vec.files.readers import InputFormat, UnsupportedFormatError

log = logging.getLogger("bert2vec.bulk")


@dataclass(frozen=True)
class Failure:
    """A failed manifest to write for one version of an object: a permanent verdict, or (with
    ``retryable``) the marker written before an unexpected error is raised again, so the retry is
    not mistaken for a duplicate."""

    layout: OutputLayout
    bucket: str
    key: str
    etag: str
    size: int
    error: str
    epoch: int = 0
    retryable: bool = False


@dataclass(frozen=True)
class Done:
    """Nothing to run: report ``outcome``, after writing ``failure``'s manifest when there is one."""

    outcome: Outcome
    failure: Failure | None = None


@dataclass(frozen=True)
class FanOut:
    """Send ``shards`` to the shard queue; ``outcome`` is the object's answer once they are sent."""

    shards: list[WorkItem]
    outcome: Outcome


@dataclass(frozen=True)
class Encode:
    """Run ``item``'s slices in this invocation (they hand off to the queue near the deadline)."""

    item: WorkItem


Plan = Done | FanOut | Encode


@dataclass(frozen=True)
class Admitted:
    """An object that is ours, readable and not yet encoded in its epoch: what planning its work
    needs, and what a failed manifest for it says."""

    layout: OutputLayout
    bucket: str
    key: str
    etag: str
    size: int
    version_id: str | None
    epoch: int

    def failure(self, error: str, *, retryable: bool = False) -> Failure:
        return Failure(self.layout, self.bucket, self.key, self.etag, self.size, error, self.epoch, retryable)

    def failed(self, error: str) -> Done:
        """The object's permanent verdict: a ``failed`` manifest saying ``error``."""
        return Done(Outcome(Kind.FAILED, self.key, error, self.layout.manifest_key, "failed"), self.failure(error))


class Planner:
    """Decides what to do with one object; given what it reads, never the engine that runs it."""

    def __init__(
        self, store: S3Store, cfg: BulkConfig, *, ledger_for: Callable[[str], Ledger],
        source: Callable[[WorkItem], InputObject], model_id: str | None, index_refusal: Callable[[str], str | None],
    ) -> None:  # fmt: skip
        self.store = store
        self.cfg = cfg
        self.ledger_for = ledger_for  # per-key event order (the ledger lives beside the outputs)
        self.source = source  # reads one version of an input
        self.model_id = model_id  # what every work message of a run names
        self.index_refusal = index_refusal  # why the vector index must not be written, or None

    def ignore_reason(self, bucket: str, key: str) -> str | None:
        """Why an S3 notification must not be processed (own outputs, other prefixes), or None."""
        out_bucket = self.cfg.output_bucket or bucket
        if out_bucket == bucket and self.cfg.output_prefix and key.startswith(self.cfg.output_prefix):
            return f"key is under the output prefix {self.cfg.output_prefix!r} (our own output)"
        if self.cfg.input_prefix and not key.startswith(self.cfg.input_prefix):
            return f"key is not under the input prefix {self.cfg.input_prefix!r}"
        if key.endswith("/"):
            return "key is a folder marker"
        return None

    def admit(
        self, bucket: str, key: str, *, version_id: str | None = None, skip_unsupported: bool = False,
        sequencer: str | None = None,
    ) -> Done | Admitted:  # fmt: skip
        """Whether the object is to be encoded now: :class:`Admitted`, or the answer that ends it.

        ``sequencer``: the S3 event's, when an event brought the object (ordered per key by the ledger)."""
        reason = self.ignore_reason(bucket, key)
        if reason:
            log.info("ignored s3://%s/%s: %s", bucket, key, reason)
            return Done(Outcome(Kind.IGNORED, key, reason))
        ledger = self.ledger_for(bucket)
        if sequencer:
            verdict = ledger.observe(bucket, key, sequencer, "created")
            if verdict.late:
                why = (f"a newer event for this key ({verdict.entry.event}, sequencer {verdict.entry.sequencer}) was "
                       f"handled first; this one (sequencer {sequencer}) is late")  # fmt: skip
                log.info("s3://%s/%s: %s", bucket, key, why)
                return Done(Outcome(Kind.LATE, key, why))
            epoch = verdict.entry.epoch
        else:
            epoch = ledger.epoch(bucket, key)
        if skip_unsupported:  # a backfill lists every object under the prefix; only inputs are tasks
            try:
                InputFormat.from_key(key, self.cfg.reader)
            except UnsupportedFormatError as exc:
                return Done(Outcome(Kind.IGNORED, key, str(exc)))
        from botocore.exceptions import ClientError

        try:
            head = self.store.describe(bucket, key, version_id)
        except ClientError as exc:
            if version_id and (is_not_found(exc) or error_code(exc) in ("400", "InvalidArgument")):
                why = f"version {version_id} of the object no longer exists (deleted or never there): nothing encoded"
                log.info("s3://%s/%s: %s", bucket, key, why)
                return Done(Outcome(Kind.VERSION_GONE, key, why))
            if is_not_found(exc):
                log.info("ignored s3://%s/%s: deleted before we got to it", bucket, key)
                return Done(Outcome(Kind.IGNORED, key, "object no longer exists"))
            if is_denied(exc):
                why = (
                    "access denied reading the object: it may have been deleted (S3 answers 403 instead of 404 "
                    "without s3:ListBucket), or the function lacks s3:GetObject on it"
                )
                log.error("s3://%s/%s: %s", bucket, key, why)
                layout = OutputLayout.for_object(self.cfg, bucket, key, "unknown", epoch)
                return Admitted(layout, bucket, key, "", 0, version_id, epoch).failed(why)
            raise
        etag, size = head["ETag"].strip('"'), int(head["ContentLength"])
        if version_id and not self._is_current(bucket, key, version_id):
            # The output describes the object's current version: an older one named by a task would
            # replace it (and its vectors). The current version has its own event or task.
            why = (f"version {version_id} is no longer the object's current version: the object changed since the "
                   "job listed it; its newer version is encoded by its own event")  # fmt: skip
            log.info("s3://%s/%s: %s", bucket, key, why)
            return Done(Outcome(Kind.CHANGED, key, why))
        layout = OutputLayout.for_object(self.cfg, bucket, key, etag, epoch)
        found = self.store.get_json(layout.bucket, layout.manifest_key)
        existing = Manifest.from_dict(found) if found else None
        if existing is not None and existing.answers(etag, epoch):
            log.info("s3://%s/%s (etag %s) already has a manifest: duplicate delivery", bucket, key, etag)
            return Done(Outcome(Kind.DUPLICATE, key, "already encoded", layout.manifest_key, existing.status))
        admitted = Admitted(layout, bucket, key, etag, size, version_id, epoch)
        refusal = self.index_refusal(bucket)
        if refusal:
            log.error("s3://%s/%s: %s", bucket, key, refusal)
            return admitted.failed(refusal)
        return admitted

    def _is_current(self, bucket: str, key: str, version_id: str) -> bool:
        current = self.store.describe(bucket, key)
        return str(current.get("VersionId") or "") == version_id

    def plan(self, obj: Admitted) -> Plan:
        """The admitted object's work: one message's slices run inline, or shards for the queue."""
        bucket, key, size = obj.bucket, obj.key, obj.size
        try:
            fmt = InputFormat.from_key(key, self.cfg.reader)
        except UnsupportedFormatError as exc:
            return obj.failed(str(exc))
        unit = "bytes" if fmt.shardable else "records"
        size_of_slice = self.cfg.chunk_bytes if unit == "bytes" else self.cfg.chunk_records
        version = self._run_layout(obj.layout, obj.etag, obj.epoch)
        if version != obj.layout.version:
            obj = replace(obj, layout=OutputLayout.for_object(self.cfg, bucket, key, obj.etag, obj.epoch, version))
        item = WorkItem(bucket, key, obj.etag, size, fmt.kind, fmt.gzip, unit, size_of_slice, version_id=obj.version_id,
                        epoch=obj.epoch, model=self.model_id, output_format=self.cfg.output_format,
                        layout=version)  # fmt: skip
        not_text = self.source(item).sniff()
        if not_text:
            return obj.failed(not_text)
        if fmt.gzip and fmt.kind in ("txt", "jsonl"):
            staged = self._stage(item, obj.layout)
            if staged is not None:  # slices become byte ranges of the plain copy: fan-out, no re-reads
                item = replace(item, unit="bytes", slice_size=self.cfg.chunk_bytes, staged=staged)
                unit = "bytes"
        if unit == "bytes":
            item.end_slice = item.total_slices
            if item.read_size > self.cfg.shard_bytes and self.cfg.queue_url:
                shards = self.plan_shards(item)
                return FanOut(shards, Outcome(Kind.FANNED_OUT, key, shards=len(shards)))
        return Encode(item)

    def _run_layout(self, layout: OutputLayout, etag: str, epoch: int) -> int:
        """Where a run of this version goes: the previous layout's run directory when a run of this
        very version (ETag and epoch) was started there — a duplicate event or task, or a reconcile,
        after a deploy that found it unfinished — so it goes on where it is (its committed slices
        skipped) instead of a second run of one version beside it; else the object's run home.
        One listing request, only for keys the previous layout can have held runs of."""
        if layout.legacy_home is None:
            return RUN_LAYOUT
        old = f"{layout.legacy_home}{run_name(etag, epoch)}/"
        if self.store.any_key(layout.bucket, old, lambda k: OWN_RUN_FILES.fullmatch(k[len(old) :])):
            return LEGACY_RUN_LAYOUT
        return RUN_LAYOUT

    def _stage(self, item: WorkItem, layout: OutputLayout) -> dict[str, Any] | None:
        """The ``.gz`` decompressed once into the run directory (reused when a duplicate already
        did it: the copy of one version's bytes is always the same); None for a gzip that cannot be
        read to its end, which is read as one stream instead, so every line before the damage is
        still encoded and the manifest says where reading stopped."""
        from bert2vec.bulk.worker import CONTENT_ERRORS

        key = layout.staged_key
        head = self.store.head(layout.bucket, key)
        if head is not None:
            return {"bucket": layout.bucket, "key": key, "etag": head["ETag"], "size": int(head["ContentLength"])}
        try:
            return self.source(item).stage(layout.bucket, key)
        except CONTENT_ERRORS as exc:
            log.info("s3://%s/%s: not staged (%s: %s); read as one stream", item.bucket, item.key, type(exc).__name__, exc)
            return None

    def plan_shards(self, item: WorkItem) -> list[WorkItem]:
        """Slice-aligned shards with their first line numbers (one sequential pass over the object)."""
        per_shard = max(1, self.cfg.shard_bytes // item.slice_size)
        total = item.total_slices or 1
        starts = list(range(0, total, per_shard))
        first_lines = self.source(item).first_lines([s * item.slice_size for s in starts])
        return [
            WorkItem(
                item.bucket, item.key, item.etag, item.size, item.kind, item.gzip, item.unit, item.slice_size,
                first_slice=s, end_slice=min(s + per_shard, total), first_line=line, version_id=item.version_id,
                epoch=item.epoch, model=item.model, output_format=item.output_format, staged=item.staged,
                layout=item.layout,
            )  # fmt: skip
            for s, line in zip(starts, first_lines, strict=True)
        ]
