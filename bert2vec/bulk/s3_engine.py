"""Bulk encoding of S3 objects: the engine that wires planner, worker and finalizer together.

Design (docs/s3-bulk.md, "Scale-out" and "Delivery guarantee"):
- ``planner.py``: one notification or Batch Operations task → a decision (encode inline, fan out
  over SQS, or a verdict with its failed manifest), which the engine carries out.
- ``worker.py``: the slices of one message under the commit protocol (attempt-unique parts, one
  conditional commit per slice), handing off before the deadline.
- ``finalizer.py``: the manifest from the commits, only while the input is at the ETag encoded,
  and for ``s3vectors`` the index made equal to it (``index_cleanup.py``: what a run takes out of
  the index, older versions' keys or its own, paced against the deadline).
- ``state.py`` (typed messages and state), ``store.py`` (every S3 call, conditional writes),
  ``bert2vec.aws`` (the client factory and the one transient-vs-permanent classifier),
  ``outcome.py`` (one result per object, mapped once to Batch Operations codes, logs and metrics).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from bert2vec.aws.errors import error_code, is_denied, is_not_found
from bert2vec.aws.factory import s3vectors_client
from bert2vec.bulk.config import BulkConfig, OutputLayout, own_runs, run_epoch
from bert2vec.bulk.finalizer import Finalizer, ModelChanged
from bert2vec.bulk.index_cleanup import CleanupUnfinished, IndexCleanup
from bert2vec.bulk.index_mark import IndexMark
from bert2vec.bulk.outcome import Kind, Outcome
from bert2vec.bulk.planner import Done, Encode, FanOut, Plan, Planner
from bert2vec.bulk.state import KeyRecord, WorkItem
from bert2vec.bulk.store import S3Store
from bert2vec.bulk.worker import RunResult, Worker
from bert2vec.core.contract import Encoder  # what the engine needs of a model: a protocol the tests' stand-ins meet
from bert2vec.files.manifest import Manifest, Source
from bert2vec.files.pipeline import check_chunk_config
from bert2vec.files.readers import InputFormatError

__all__ = ["Deletion", "Engine", "WorkItem"]
log = logging.getLogger("bert2vec.bulk")


class Deletion:
    """One object's deletion as S3 reported it (EventBridge "Object Deleted", ``ObjectRemoved:*``,
    ``LifecycleExpiration:*``), or as the reconcile command found it (no sequencer)."""

    def __init__(self, bucket: str, key: str, sequencer: str | None = None, reason: str = "DeleteObject",
                 at: str | None = None, epoch: int | None = None) -> None:  # fmt: skip
        self.bucket, self.key, self.sequencer, self.reason, self.at, self.epoch = bucket, key, sequencer, reason, at, epoch

    def to_message(self) -> str:
        return json.dumps({"v": 2, "purge": vars(self)}, sort_keys=True)

    @classmethod
    def from_message(cls, body: dict[str, Any]) -> Deletion:
        return cls(**body["purge"])


class Engine:
    """Everything the S3 path does, given clients, a loaded encoder and the config."""

    def __init__(self, s3: Any, encoder: Encoder, cfg: BulkConfig, sqs: Any | None = None) -> None:
        self.sqs = sqs
        self.encoder = encoder
        self.cfg = cfg
        if cfg.long_text == "chunk":  # needs the model: its signatures and its window size
            check_chunk_config(encoder, cfg.stride)
        self.store = S3Store(s3)
        vectors = s3vectors_client() if cfg.output_format == "s3vectors" else None
        self.worker = Worker(self.store, encoder, cfg, vectors)
        self.index = IndexCleanup(self.store, layout=self.worker.layout, vector_target=self.worker.vector_target)
        self.finalizer = Finalizer(self.store, encoder, cfg, layout=self.worker.layout, index=self.index)
        self.planner = Planner(self.store, cfg, ledger_for=self.finalizer.ledger_for, source=self.worker.source,
                               model_id=self.worker.model_id, index_refusal=IndexMark(self.store, encoder, cfg).refusal)  # fmt: skip

    # Clients are replaced after a SnapStart restore.
    @property
    def s3(self) -> Any:
        return self.store.client

    @s3.setter
    def s3(self, client: Any) -> None:
        self.store.client = client

    @property
    def vectors(self) -> Any:
        return self.worker.vectors

    @vectors.setter
    def vectors(self, client: Any) -> None:
        self.worker.vectors = client

    def layout(self, item: WorkItem) -> OutputLayout:
        return self.worker.layout(item)

    def send(self, items: list[WorkItem] | list[Deletion]) -> None:
        if not self.cfg.queue_url or self.sqs is None:
            raise RuntimeError("SHARD_QUEUE_URL is not set: cannot fan out or hand work on")
        for i in range(0, len(items), 10):
            entries = [
                {"Id": str(n), "MessageBody": it.to_message() if isinstance(it, Deletion)
                 else it.to_message(self.cfg.input_prefix)}
                for n, it in enumerate(items[i : i + 10])
            ]  # fmt: skip
            resp = self.sqs.send_message_batch(QueueUrl=self.cfg.queue_url, Entries=entries)
            if resp.get("Failed"):
                raise RuntimeError(f"SQS refused shard messages: {resp['Failed']}")

    # ---- entry points ----------------------------------------------------------------------
    def ignore_reason(self, bucket: str, key: str) -> str | None:
        return self.planner.ignore_reason(bucket, key)

    def handle_object(
        self, bucket: str, key: str, remaining_ms: Callable[[], int], *, version_id: str | None = None,
        skip_unsupported: bool = False, sequencer: str | None = None,
    ) -> Outcome:  # fmt: skip
        """One object notification or Batch Operations task: the planner decides, the engine does it.

        Once the planner admits the object, an unexpected error while planning or doing its work
        leaves a ``retryable`` failed manifest and is raised again (for Lambda's or Batch
        Operations' retry); an overwrite between the HEAD and a read leaves it to the newer event."""
        admitted = self.planner.admit(bucket, key, version_id=version_id, skip_unsupported=skip_unsupported,
                                      sequencer=sequencer)  # fmt: skip
        if isinstance(admitted, Done):
            return self.carry_out(admitted, remaining_ms)
        try:
            return self.carry_out(self.planner.plan(admitted), remaining_ms)
        except Exception as exc:
            if error_code(exc) in ("PreconditionFailed", "412"):  # overwritten between the HEAD and a read
                log.warning("s3://%s/%s changed since etag %s while planning; leaving it to the newer event", bucket,
                            key, admitted.etag)  # fmt: skip
                return Outcome(Kind.CHANGED, key)
            log.exception("s3://%s/%s: failed; writing a retryable manifest before it is retried", bucket, key)
            self.finalizer.publish_failed(admitted.failure(f"{type(exc).__name__}: {exc}"[:2000], retryable=True))
            raise

    def carry_out(self, plan: Plan, remaining_ms: Callable[[], int]) -> Outcome:
        """Do what the planner decided: run the slices, send the shards, or write the failed manifest."""
        if isinstance(plan, Encode):
            return self.run(plan.item, remaining_ms)
        if isinstance(plan, FanOut):
            self.send(plan.shards)
            item = plan.shards[0]
            log.info("s3://%s/%s: %d bytes fanned out as %d shards", item.bucket, item.key, item.size, len(plan.shards))
            return plan.outcome
        if plan.failure is not None:
            self.finalizer.publish_failed(plan.failure)
        return plan.outcome

    # ---- deletions ----------------------------------------------------------------------------
    def handle_deleted(self, deletion: Deletion, remaining_ms: Callable[[], int]) -> Outcome:
        """The object is gone from the bucket: make the outputs say so.

        In S3's order (the ledger): a deletion older than the key's last recorded event changes
        nothing. Otherwise the object moves to a new epoch first — so every run still in flight for
        it can no longer publish and takes its own vectors back — and then every older run's
        vectors, parts, errors and state are removed and the manifest becomes a ``deleted`` record.
        Idempotent: a redelivery finds less to remove and writes the same record. Resumable: out of
        time, the rest goes on through the shard queue."""
        bucket, key = deletion.bucket, deletion.key
        reason = self.planner.ignore_reason(bucket, key)
        if reason:
            log.info("ignored deletion of s3://%s/%s: %s", bucket, key, reason)
            return Outcome(Kind.IGNORED, key, reason)
        ledger = self.finalizer.ledger_for(bucket)
        if deletion.epoch is None:
            if deletion.sequencer:
                verdict = ledger.observe(bucket, key, deletion.sequencer, "deleted")
                if verdict.late:
                    why = (f"a newer event for this key ({verdict.entry.event}, sequencer {verdict.entry.sequencer}) "
                           f"was handled first; this deletion (sequencer {deletion.sequencer}) is late")  # fmt: skip
                    log.info("s3://%s/%s: %s", bucket, key, why)
                    return Outcome(Kind.LATE, key, why)
                deletion.epoch = verdict.entry.epoch
            else:
                current = ledger.read(bucket, key).epoch
                deletion.epoch = ledger.move_from(bucket, key, current, f"deleted ({deletion.reason})").entry.epoch
        layout = OutputLayout.for_object(self.cfg, bucket, key, "deleted", deletion.epoch)
        try:
            removed = self._purge_runs(layout, deletion, remaining_ms)
        except CleanupUnfinished:
            self.send([deletion])
            return Outcome(Kind.IN_PROGRESS, key, "the deletion's index clean-up continues on the shard queue")
        record = Manifest.deletion(Source(bucket=bucket, key=key, epoch=deletion.epoch,
                                          sequencer=deletion.sequencer or None),
                                   deletion.reason, deletion.at or None)  # fmt: skip
        if not self.finalizer.publish(layout, bucket, key, "", record, epoch=deletion.epoch):
            return Outcome(Kind.LATE, key, "the object was uploaded again while its deletion ran")
        log.info("s3://%s/%s deleted (%s): %d vectors and %d output objects removed", bucket, key, deletion.reason,
                 removed[0], removed[1])  # fmt: skip
        return Outcome(Kind.DELETED, key, f"{removed[0]} vectors and {removed[1]} output objects removed",
                       layout.manifest_key, "deleted")  # fmt: skip

    def _purge_runs(self, layout: OutputLayout, deletion: Deletion, remaining_ms: Callable[[], int]) -> tuple[int, int]:
        """Remove every run of the object older than the deletion's epoch, in both run homes (a run
        the previous layout left too): vectors first (record by record, paced, deadline-aware), then
        the run's files. Never another object's: key records must name this object, and only files
        the engine names are removed."""
        assert deletion.epoch is not None
        vectors_removed = objects_removed = 0
        by_run: dict[str, list[str]] = {}
        for home in layout.homes:  # this layout's run home, then the previous layout's
            by_run.update(own_runs(home, self.store.keys(layout.bucket, home)))
        target = self.worker.vector_target(WorkItem(deletion.bucket, deletion.key, "", 0, "txt", False, "bytes", 1)) \
            if self.cfg.output_format == "s3vectors" else None  # fmt: skip

        def own_records(keys: list[str]) -> Iterator[tuple[str, KeyRecord]]:
            for k in keys:
                rec = KeyRecord.from_dict(self.store.get_json(layout.bucket, k))
                if rec.belongs_to(deletion.bucket, deletion.key):
                    yield k, rec

        for run, keys in by_run.items():
            if run_epoch(run) >= deletion.epoch:
                continue  # a run of an upload that came after the deletion
            records = [k for k in keys if "/_vector_keys/" in k]
            if records and target is not None:
                vectors_removed += self.index.delete_recorded(
                    layout.bucket, own_records(records), target, remaining_ms, f"s3://{deletion.bucket}/{deletion.key}",
                    progressed=vectors_removed > 0,
                )  # fmt: skip
            rest_of_run = [k for k in keys if "/_vector_keys/" not in k]
            self.store.delete(layout.bucket, rest_of_run)
            objects_removed += len(rest_of_run)
        return vectors_removed, objects_removed

    def plan_shards(self, item: WorkItem) -> list[WorkItem]:
        return self.planner.plan_shards(item)

    def run(self, item: WorkItem, remaining_ms: Callable[[], int], result: RunResult | None = None) -> Outcome:
        """Process the item's slices in order, skipping committed ones, handing off near the deadline.

        ``result``: the caller's, to learn after a raise which slice the run was stuck on
        (``result.stuck_slice``, what :meth:`fail` marks on the message's last receive)."""
        mismatch = self._mismatch(item)
        if mismatch:
            return self._restart(item, mismatch, remaining_ms)
        try:
            return self._run(item, remaining_ms, RunResult() if result is None else result)
        except ModelChanged as exc:
            return self._restart(item, str(exc), remaining_ms)
        except CleanupUnfinished:
            self.send([replace(item, hops=item.hops + 1)])  # the next run skips every committed slice
            return Outcome(Kind.IN_PROGRESS, item.key, "the index clean-up continues on the shard queue")

    def _mismatch(self, item: WorkItem) -> str | None:
        """Why this function cannot go on with a run another deploy planned (model or format), or None."""
        mine = self.worker.model_id
        if item.model and mine and item.model != mine:
            return f"the run was planned with model {item.model[:16]}, this function runs {mine[:16]} (a deploy)"
        if item.output_format and item.output_format != self.cfg.output_format:
            return f"the run was planned for OUTPUT_FORMAT={item.output_format}, this function writes {self.cfg.output_format}"
        return None

    def _restart(self, item: WorkItem, why: str, remaining_ms: Callable[[], int]) -> Outcome:
        """Start the object again in a new epoch, with this function's model and format. Of many shards
        that see the same deploy only the first moves the epoch; the old run never publishes and
        its vectors are taken back, so no manifest or index ever mixes two models."""
        ledger = self.finalizer.ledger_for(item.bucket)
        moved = ledger.move_from(item.bucket, item.key, item.epoch, f"restarted: {why}").moved
        if self.cfg.output_format == "s3vectors" and item.output_format in (None, "s3vectors"):
            self.index.retract(item, remaining_ms)
        if not moved:
            return Outcome(Kind.CHANGED, item.key, f"not encoded: {why}; the object was already started again")
        log.warning("s3://%s/%s: %s; encoding it again from the start", item.bucket, item.key, why)
        return self.handle_object(item.bucket, item.key, remaining_ms, version_id=item.version_id)

    def _run(self, item: WorkItem, remaining_ms: Callable[[], int], result: RunResult) -> Outcome:
        from botocore.exceptions import ClientError

        manifest: Manifest | None = None
        try:
            self.worker.run(item, remaining_ms, result)
        except ClientError as exc:
            if error_code(exc) in ("PreconditionFailed", "412"):
                log.warning("s3://%s/%s changed since etag %s; leaving it to the newer event", item.bucket, item.key, item.etag)
                if self.cfg.output_format == "s3vectors":
                    self.index.retract(item, remaining_ms)  # a killed late writer's retry cleans up after it
                return Outcome(Kind.CHANGED, item.key, slices_done=result.slices_done)
            if (is_denied(exc) or is_not_found(exc)) and not self.finalizer.still_current(item):
                # The object (or this run's state) went away under it: deleted or replaced. The
                # deletion or the newer version has its own event; this run takes its vectors back.
                log.warning("s3://%s/%s (etag %s) is gone or replaced mid-run: %s", item.bucket, item.key, item.etag,
                            error_code(exc))  # fmt: skip
                if self.cfg.output_format == "s3vectors":
                    self.index.retract(item, remaining_ms)
                return Outcome(Kind.CHANGED, item.key, "the object was deleted or replaced while it was read",
                               slices_done=result.slices_done)  # fmt: skip
            if not (is_denied(exc) or is_not_found(exc)):
                result.stuck_slice = result.current_slice or item.first_slice
                raise
            k = result.current_slice if result.current_slice is not None else item.first_slice
            self.finalizer.mark_failed(item, [k], f"cannot read the object: {error_code(exc)}: {exc}", final=True)
            result.reached_final = True
        except InputFormatError as exc:  # whole-file problem (e.g. CSV without the text column)
            self.finalizer.mark_failed(item, [item.first_slice], str(exc), final=True)
            result.reached_final = True
        except Exception:
            result.stuck_slice = result.current_slice or item.first_slice
            raise
        if result.lost:
            if self.cfg.output_format == "s3vectors" and not self.finalizer.still_current(item):
                # It may have put its vectors after the newer version's completion deleted this
                # version's keys; the attempt it lost to cannot know that. Take them back.
                self.index.retract(item, remaining_ms)
            return Outcome(Kind.DUPLICATE, item.key, "another attempt owns this work", slices_done=result.slices_done,
                           slices_skipped=result.slices_skipped)  # fmt: skip
        if result.handoff is not None:
            if result.handoff.hops > self.cfg.max_hops:
                k = result.handoff.first_slice
                why = (f"stopped after {self.cfg.max_hops} hand-offs (MAX_HOPS) without finishing; slices from {k} on "
                       "were not encoded")  # fmt: skip
                log.error("s3://%s/%s: %s", item.bucket, item.key, why)
                self.finalizer.mark_failed(result.handoff, self._remaining_slices(result.handoff), why)
                manifest = self.finalizer.finalize(item, remaining_ms, full=result.reached_final)
            else:
                self.send([result.handoff])
                return Outcome(Kind.IN_PROGRESS, item.key, slices_done=result.slices_done,
                               slices_skipped=result.slices_skipped, handed_off_from=result.handoff.first_slice)  # fmt: skip
        else:
            manifest = self.finalizer.finalize(item, remaining_ms, full=result.reached_final)
        layout = self.layout(item)
        if manifest is None:
            if not self.finalizer.still_current(item):  # reads naming a version never see the overwrite
                return Outcome(Kind.CHANGED, item.key, slices_done=result.slices_done,
                               slices_skipped=result.slices_skipped)  # fmt: skip
            return Outcome(Kind.IN_PROGRESS, item.key, slices_done=result.slices_done, slices_skipped=result.slices_skipped)
        return Outcome(Kind.ENCODED, item.key, manifest_key=layout.manifest_key, status=manifest.status,
                       counts=manifest.counts, slices_done=result.slices_done,
                       slices_skipped=result.slices_skipped)  # fmt: skip

    def _remaining_slices(self, item: WorkItem) -> list[int]:
        """The slices a message still covers (records unit: the next one stands for all the rest)."""
        if item.unit == "bytes":
            total = item.total_slices or 1
            return list(range(item.first_slice, min(item.end_slice or total, total)))
        return [item.first_slice]

    def fail(self, item: WorkItem, error: str, stuck_slice: int | None = None) -> Manifest | None:
        """A shard on its last receive (before the DLQ): only the slice it was stuck on
        (``stuck_slice``, from the failed run's :class:`RunResult`; its first when it never got to
        one) is marked failed; the slices after it are queued again as a fresh message, so one
        poisoned slice never takes its neighbours down with it."""
        stuck = item.first_slice if stuck_slice is None else stuck_slice
        self.finalizer.mark_failed(item, [stuck], error)
        rest = self._continuation_after(item, stuck)
        if rest is not None:
            self.send([rest])
            log.warning("s3://%s/%s: slice %d failed for good; slices %d.. queued again", item.bucket, item.key,
                        stuck, stuck + 1)  # fmt: skip
            return None
        return self.finalizer.finalize(item, full=True)

    def _continuation_after(self, item: WorkItem, k: int) -> WorkItem | None:
        """A message for the slices of ``item`` after ``k``, or None if ``k`` was its last."""
        if item.unit == "records":
            return None  # a records stream cannot be resumed past a slice that cannot be read
        total = item.total_slices or 1
        end = min(item.end_slice or total, total)
        if k + 1 >= end:
            return None
        (line,) = self.worker.source(item).first_lines([(k + 1) * item.slice_size])
        return replace(item, first_slice=k + 1, first_line=line, hops=item.hops + 1)

    def finalize(self, item: WorkItem) -> Manifest | None:
        return self.finalizer.finalize(item)
