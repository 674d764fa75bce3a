"""Bulk encoding of S3 objects: the engine that wires planner, worker and finalizer together.

Design (docs/s3-bulk.md, "Scale-out" and "Delivery guarantee"):
- ``planner.py``: one notification or Batch Operations task → encode inline or fan out over SQS.
- ``worker.py``: the slices of one message under the commit protocol (attempt-unique parts, one
  conditional commit per slice), handing off before the deadline.
- ``finalizer.py``: the manifest from the commits, only while the input is at the ETag encoded,
  and for ``s3vectors`` the index made equal to it.
- ``state.py`` (typed messages and state), ``store.py`` (S3 with conditional writes),
  ``aws_errors.py`` (the one transient-vs-permanent classifier), ``outcome.py`` (one result per
  object, mapped once to Batch Operations codes, logs and metrics).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from bert2vec.function.bulk.aws_errors import error_code, is_denied, is_not_found
from bert2vec.function.bulk.config import BulkConfig, OutputLayout
from bert2vec.function.bulk.finalizer import Finalizer
from bert2vec.function.bulk.outcome import Kind, Outcome
from bert2vec.function.bulk.pipeline import check_chunk_config
from bert2vec.function.bulk.planner import Planner
from bert2vec.function.bulk.readers import InputFormatError
from bert2vec.function.bulk.state import WorkItem
from bert2vec.function.bulk.store import S3Store
from bert2vec.function.bulk.vectors import s3vectors_client
from bert2vec.function.bulk.worker import RunResult, Worker
from bert2vec.function.encoder import Encoder

__all__ = ["Engine", "WorkItem", "s3_client", "sqs_client"]
log = logging.getLogger("bert2vec.bulk")


def s3_client() -> Any:
    """boto3 S3 client that retries throttling (``SlowDown``/503) with backoff."""
    import boto3
    from botocore.config import Config

    return boto3.client("s3", config=Config(retries={"mode": "standard", "max_attempts": 10}))


def sqs_client() -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client("sqs", config=Config(retries={"mode": "standard", "max_attempts": 10}))


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
        self.finalizer = Finalizer(self.store, encoder, cfg, self.worker)
        self.planner = Planner(self.store, encoder, cfg, self)
        self._stuck: dict[tuple[str, str, int], int] = {}  # (key, etag, first slice) -> the slice a failed run was on

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

    def send(self, items: list[WorkItem]) -> None:
        if not self.cfg.queue_url or self.sqs is None:
            raise RuntimeError("SHARD_QUEUE_URL is not set: cannot fan out or hand work on")
        for i in range(0, len(items), 10):
            entries = [
                {"Id": str(n), "MessageBody": it.to_message(self.cfg.input_prefix)}
                for n, it in enumerate(items[i : i + 10])
            ]
            resp = self.sqs.send_message_batch(QueueUrl=self.cfg.queue_url, Entries=entries)
            if resp.get("Failed"):
                raise RuntimeError(f"SQS refused shard messages: {resp['Failed']}")

    # ---- entry points ----------------------------------------------------------------------
    def ignore_reason(self, bucket: str, key: str) -> str | None:
        return self.planner.ignore_reason(bucket, key)

    def handle_object(
        self, bucket: str, key: str, remaining_ms: Callable[[], int], *, version_id: str | None = None,
        skip_unsupported: bool = False,
    ) -> Outcome:  # fmt: skip
        return self.planner.handle_object(bucket, key, remaining_ms, version_id=version_id,
                                          skip_unsupported=skip_unsupported)  # fmt: skip

    def plan_shards(self, item: WorkItem) -> list[WorkItem]:
        return self.planner.plan_shards(item)

    def run(self, item: WorkItem, remaining_ms: Callable[[], int]) -> Outcome:
        """Process the item's slices in order, skipping committed ones, handing off near the deadline."""
        from botocore.exceptions import ClientError

        result = RunResult()
        manifest: dict[str, Any] | None = None
        try:
            self.worker.run(item, remaining_ms, result)
        except ClientError as exc:
            if error_code(exc) in ("PreconditionFailed", "412"):
                log.warning("s3://%s/%s changed since etag %s; leaving it to the newer event", item.bucket, item.key, item.etag)
                if self.cfg.output_format == "s3vectors":
                    self.finalizer.retract(item)  # a killed late writer's retry cleans up after it
                return Outcome(Kind.CHANGED, item.key, slices_done=result.slices_done)
            if not (is_denied(exc) or is_not_found(exc)):
                self._stuck[(item.key, item.etag, item.first_slice)] = result.current_slice or item.first_slice
                raise
            k = result.current_slice if result.current_slice is not None else item.first_slice
            self.finalizer.mark_failed(item, [k], f"cannot read the object: {error_code(exc)}: {exc}", final=True)
        except InputFormatError as exc:  # whole-file problem (e.g. CSV without the text column)
            self.finalizer.mark_failed(item, [item.first_slice], str(exc), final=True)
        except Exception:
            self._stuck[(item.key, item.etag, item.first_slice)] = result.current_slice or item.first_slice
            raise
        if result.lost:
            if self.cfg.output_format == "s3vectors" and not self.finalizer.still_current(item):
                # It may have put its vectors after the newer version's completion deleted this
                # version's keys; the attempt it lost to cannot know that. Take them back.
                self.finalizer.retract(item)
            return Outcome(Kind.DUPLICATE, item.key, "another attempt owns this work", slices_done=result.slices_done,
                           slices_skipped=result.slices_skipped)  # fmt: skip
        if result.handoff is not None:
            if result.handoff.hops > self.cfg.max_hops:
                k = result.handoff.first_slice
                why = (f"stopped after {self.cfg.max_hops} hand-offs (MAX_HOPS) without finishing; chunks from {k} on "
                       "were not encoded")  # fmt: skip
                log.error("s3://%s/%s: %s", item.bucket, item.key, why)
                self.finalizer.mark_failed(result.handoff, self._remaining_slices(result.handoff), why)
                manifest = self.finalizer.finalize(item)
            else:
                self.send([result.handoff])
                return Outcome(Kind.IN_PROGRESS, item.key, slices_done=result.slices_done,
                               slices_skipped=result.slices_skipped, handed_off_from=result.handoff.first_slice)  # fmt: skip
        else:
            manifest = self.finalizer.finalize(item)
        layout = self.layout(item)
        if manifest is None:
            if not self.finalizer.still_current(item):  # reads naming a version never see the overwrite
                return Outcome(Kind.CHANGED, item.key, slices_done=result.slices_done,
                               slices_skipped=result.slices_skipped)  # fmt: skip
            return Outcome(Kind.IN_PROGRESS, item.key, slices_done=result.slices_done, slices_skipped=result.slices_skipped)
        return Outcome(Kind.ENCODED, item.key, manifest_key=layout.manifest_key, status=manifest["status"],
                       counts=manifest["counts"], slices_done=result.slices_done,
                       slices_skipped=result.slices_skipped)  # fmt: skip

    def _remaining_slices(self, item: WorkItem) -> list[int]:
        """The slices a message still covers (records unit: the next one stands for all the rest)."""
        if item.unit == "bytes":
            total = item.total_slices or 1
            return list(range(item.first_slice, min(item.end_slice or total, total)))
        return [item.first_slice]

    def fail(self, item: WorkItem, error: str) -> dict[str, Any] | None:
        """A shard on its last receive (before the DLQ): only the slice it was stuck on is marked
        failed; the slices after it are queued again as a fresh message, so one poisoned slice
        never takes its neighbours down with it."""
        stuck = self._stuck.pop((item.key, item.etag, item.first_slice), item.first_slice)
        self.finalizer.mark_failed(item, [stuck], error)
        rest = self._continuation_after(item, stuck)
        if rest is not None:
            self.send([rest])
            log.warning("s3://%s/%s: slice %d failed for good; slices %d.. queued again", item.bucket, item.key,
                        stuck, stuck + 1)  # fmt: skip
            return None
        return self.finalizer.finalize(item)

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

    def finalize(self, item: WorkItem) -> dict[str, Any] | None:
        return self.finalizer.finalize(item)
