"""The planner: one object notification (or Batch Operations task) in, one :class:`Outcome` out.

It decides whether the object is ours, already encoded, readable text; then encodes it inline or
fans it out as shard messages. Whatever goes wrong ends in the object's manifest: a permanent
problem as ``failed``; an unexpected or transient error writes a ``retryable`` failed manifest and
is raised again, so Lambda's retry (or Batch Operations' ``TemporaryFailure``) still sees it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from bert2vec.bulk.aws_errors import error_code, is_denied, is_not_found
from bert2vec.bulk.config import OWN_RUN_FILES, BulkConfig, OutputLayout, run_name
from bert2vec.bulk.outcome import Kind, Outcome
from bert2vec.bulk.state import LEGACY_RUN_LAYOUT, RUN_LAYOUT, WorkItem
from bert2vec.bulk.store import S3Store
from bert2vec.core.encoder import Encoder
from bert2vec.files.manifest import Manifest, Output, Source
from bert2vec.files.pipeline import Counts
from bert2vec.files.readers import InputFormat, UnsupportedFormatError

log = logging.getLogger("bert2vec.bulk")


class Planner:
    def __init__(self, store: S3Store, encoder: Encoder, cfg: BulkConfig, engine: Any) -> None:
        self.store = store
        self.encoder = encoder
        self.cfg = cfg
        self.engine = engine  # runs inline work and sends shard messages

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

    def handle_object(
        self, bucket: str, key: str, remaining_ms: Callable[[], int], *, version_id: str | None = None,
        skip_unsupported: bool = False, sequencer: str | None = None,
    ) -> Outcome:  # fmt: skip
        """``sequencer``: the S3 event's, when an event brought the object (ordered per key by the ledger)."""
        reason = self.ignore_reason(bucket, key)
        if reason:
            log.info("ignored s3://%s/%s: %s", bucket, key, reason)
            return Outcome(Kind.IGNORED, key, reason)
        ledger = self.engine.finalizer.ledger_for(bucket)
        if sequencer:
            verdict = ledger.observe(bucket, key, sequencer, "created")
            if verdict.late:
                why = (f"a newer event for this key ({verdict.entry.event}, sequencer {verdict.entry.sequencer}) was "
                       f"handled first; this one (sequencer {sequencer}) is late")  # fmt: skip
                log.info("s3://%s/%s: %s", bucket, key, why)
                return Outcome(Kind.LATE, key, why)
            epoch = verdict.entry.epoch
        else:
            epoch = ledger.epoch(bucket, key)
        if skip_unsupported:  # a backfill lists every object under the prefix; only inputs are tasks
            try:
                InputFormat.from_key(key, self.cfg.reader)
            except UnsupportedFormatError as exc:
                return Outcome(Kind.IGNORED, key, str(exc))
        from botocore.exceptions import ClientError

        try:
            head = self.store.client.head_object(Bucket=bucket, Key=key, **({"VersionId": version_id} if version_id else {}))
        except ClientError as exc:
            if version_id and (is_not_found(exc) or error_code(exc) in ("400", "InvalidArgument")):
                why = f"version {version_id} of the object no longer exists (deleted or never there): nothing encoded"
                log.info("s3://%s/%s: %s", bucket, key, why)
                return Outcome(Kind.VERSION_GONE, key, why)
            if is_not_found(exc):
                log.info("ignored s3://%s/%s: deleted before we got to it", bucket, key)
                return Outcome(Kind.IGNORED, key, "object no longer exists")
            if is_denied(exc):
                why = (
                    "access denied reading the object: it may have been deleted (S3 answers 403 instead of 404 "
                    "without s3:ListBucket), or the function lacks s3:GetObject on it"
                )
                log.error("s3://%s/%s: %s", bucket, key, why)
                layout = OutputLayout.for_object(self.cfg, bucket, key, "unknown", epoch)
                self.failed_manifest(layout, bucket, key, "", 0, why, epoch=epoch)
                return Outcome(Kind.FAILED, key, why, layout.manifest_key, "failed")
            raise
        etag, size = head["ETag"].strip('"'), int(head["ContentLength"])
        if version_id and not self._is_current(bucket, key, version_id):
            # The output describes the object's current version: an older one named by a task would
            # replace it (and its vectors). The current version has its own event or task.
            why = (f"version {version_id} is no longer the object's current version: the object changed since the "
                   "job listed it; its newer version is encoded by its own event")  # fmt: skip
            log.info("s3://%s/%s: %s", bucket, key, why)
            return Outcome(Kind.CHANGED, key, why)
        layout = OutputLayout.for_object(self.cfg, bucket, key, etag, epoch)
        found = self.store.get_json(layout.bucket, layout.manifest_key)
        existing = Manifest.from_dict(found) if found else None
        if existing is not None and existing.answers(etag, epoch):
            log.info("s3://%s/%s (etag %s) already has a manifest: duplicate delivery", bucket, key, etag)
            return Outcome(Kind.DUPLICATE, key, "already encoded", layout.manifest_key, existing.status)
        refusal = self.engine.index_refusal(bucket)
        if refusal:
            log.error("s3://%s/%s: %s", bucket, key, refusal)
            self.failed_manifest(layout, bucket, key, etag, size, refusal, epoch=epoch)
            return Outcome(Kind.FAILED, key, refusal, layout.manifest_key, "failed")
        try:
            return self._plan_and_run(bucket, key, etag, size, layout, remaining_ms, version_id, epoch)
        except Exception as exc:
            if error_code(exc) in ("PreconditionFailed", "412"):  # overwritten between the HEAD and a read
                log.warning("s3://%s/%s changed since etag %s while planning; leaving it to the newer event", bucket,
                            key, etag)  # fmt: skip
                return Outcome(Kind.CHANGED, key)
            log.exception("s3://%s/%s: failed; writing a retryable manifest before it is retried", bucket, key)
            self.failed_manifest(layout, bucket, key, etag, size, f"{type(exc).__name__}: {exc}"[:2000], retryable=True,
                                 epoch=epoch)  # fmt: skip
            raise

    def _is_current(self, bucket: str, key: str, version_id: str) -> bool:
        current = self.store.client.head_object(Bucket=bucket, Key=key)
        return str(current.get("VersionId") or "") == version_id

    def _plan_and_run(
        self, bucket: str, key: str, etag: str, size: int, layout: OutputLayout, remaining_ms: Callable[[], int],
        version_id: str | None, epoch: int,
    ) -> Outcome:  # fmt: skip
        try:
            fmt = InputFormat.from_key(key, self.cfg.reader)
        except UnsupportedFormatError as exc:
            self.failed_manifest(layout, bucket, key, etag, size, str(exc), epoch=epoch)
            return Outcome(Kind.FAILED, key, str(exc), layout.manifest_key, "failed")
        unit = "bytes" if fmt.shardable else "records"
        size_of_slice = self.cfg.chunk_bytes if unit == "bytes" else self.cfg.chunk_records
        version = self._run_layout(layout, etag, epoch)
        if version != layout.version:
            layout = OutputLayout.for_object(self.cfg, bucket, key, etag, epoch, version)
        item = WorkItem(bucket, key, etag, size, fmt.kind, fmt.gzip, unit, size_of_slice, version_id=version_id,
                        epoch=epoch, model=self.engine.worker.model_id, output_format=self.cfg.output_format,
                        layout=version)  # fmt: skip
        not_text = self.engine.worker.source(item).sniff()
        if not_text:
            self.failed_manifest(layout, bucket, key, etag, size, not_text, epoch=epoch)
            return Outcome(Kind.FAILED, key, not_text, layout.manifest_key, "failed")
        if fmt.gzip and fmt.kind in ("txt", "jsonl"):
            staged = self._stage(item, layout)
            if staged is not None:  # slices become byte ranges of the plain copy: fan-out, no re-reads
                item = replace(item, unit="bytes", slice_size=self.cfg.chunk_bytes, staged=staged)
                unit = "bytes"
        if unit == "bytes":
            item.end_slice = item.total_slices
            if item.read_size > self.cfg.shard_bytes and self.cfg.queue_url:
                shards = self.plan_shards(item)
                self.engine.send(shards)
                log.info("s3://%s/%s: %d bytes fanned out as %d shards", bucket, key, size, len(shards))
                return Outcome(Kind.FANNED_OUT, key, shards=len(shards))
        return self.engine.run(item, remaining_ms)

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
            return self.engine.worker.source(item).stage(layout.bucket, key, self.store.put_stream)
        except CONTENT_ERRORS as exc:
            log.info("s3://%s/%s: not staged (%s: %s); read as one stream", item.bucket, item.key, type(exc).__name__, exc)
            return None

    def plan_shards(self, item: WorkItem) -> list[WorkItem]:
        """Slice-aligned shards with their first line numbers (one sequential pass over the object)."""
        per_shard = max(1, self.cfg.shard_bytes // item.slice_size)
        total = item.total_slices or 1
        starts = list(range(0, total, per_shard))
        first_lines = self.engine.worker.source(item).first_lines([s * item.slice_size for s in starts])
        return [
            WorkItem(
                item.bucket, item.key, item.etag, item.size, item.kind, item.gzip, item.unit, item.slice_size,
                first_slice=s, end_slice=min(s + per_shard, total), first_line=line, version_id=item.version_id,
                epoch=item.epoch, model=item.model, output_format=item.output_format, staged=item.staged,
                layout=item.layout,
            )  # fmt: skip
            for s, line in zip(starts, first_lines, strict=True)
        ]

    def failed_manifest(
        self, layout: OutputLayout, bucket: str, key: str, etag: str, size: int, error: str, *, retryable: bool = False,
        epoch: int = 0,
    ) -> Manifest:  # fmt: skip
        manifest = Manifest.result(
            status="failed",
            input=Source(bucket=bucket, key=key, etag=etag, size=size, epoch=epoch),
            model_card=self.encoder.card,
            output=Output(bucket=layout.bucket, format=self.cfg.output_format),
            counts=Counts(),
            error=error,
            retryable=retryable,  # written before the retry: a retry is not a duplicate
        )
        # Like every manifest: never over a newer version's, nor over this version's finished one
        # (a duplicate that failed late must not hide what the attempt that won completed).
        self.engine.finalizer.publish(layout, bucket, key, etag, manifest, keep_finished=True, epoch=epoch)
        return manifest

