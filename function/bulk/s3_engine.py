"""Bulk encoding of S3 objects: plan, fan out over SQS, process chunks, detect completion.

Design (docs/s3-bulk.md, "Scale-out"):
- The unit of work is a *chunk*: a fixed byte range of an uncompressed ``.txt``/``.jsonl`` object
  (the lines whose first byte lies in it), or a fixed number of records of a stream that cannot
  be split by bytes (``.gz``, ``.csv``). Chunk boundaries depend only on the object, so every
  retry, re-delivery or hand-off cuts the same chunks and writes the same keys.
- Each finished chunk uploads its part file(s), then a small marker object. Work skips chunks whose
  marker exists, so a worker killed mid-shard and retried redoes only unfinished chunks, and a
  duplicate event does nothing twice.
- Completion is detected by listing markers: once chunk 0..final are all present, whoever sees it
  writes the manifest (deterministic from the markers, so two writers write the same bytes).
- Before the Lambda deadline a worker stops at a chunk boundary and sends the remainder on as a
  new SQS message. On a shard's last allowed receive, its chunks are marked failed before the
  message goes to the dead-letter queue, so the manifest reports them instead of never appearing.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from function.bulk import manifest as manifests
from function.bulk.config import BulkConfig, OutputLayout
from function.bulk.pipeline import Counts, PipelineOptions, encode_items
from function.bulk.readers import (
    InputFormat,
    InputFormatError,
    Item,
    UnsupportedFormatError,
    first_line_numbers,
    iter_range_lines,
)
from function.bulk.writers import ErrorWriter, open_part_writer
from function.encoder import Encoder

log = logging.getLogger("bert2vec.bulk")
MESSAGE_VERSION = 1


def s3_client() -> Any:
    """boto3 S3 client that retries throttling (``SlowDown``/503) with backoff."""
    import boto3
    from botocore.config import Config

    return boto3.client("s3", config=Config(retries={"mode": "standard", "max_attempts": 10}))


def sqs_client() -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client("sqs", config=Config(retries={"mode": "standard", "max_attempts": 10}))


@dataclass
class WorkItem:
    """One SQS message: chunks ``[first_chunk, end_chunk)`` of one object version."""

    bucket: str
    key: str
    etag: str
    size: int
    kind: str
    gzip: bool
    unit: str  # "bytes" | "records"
    chunk_size: int
    first_chunk: int = 0
    end_chunk: int | None = None  # None: to the end of the object
    first_line: int = 1  # line number of the first line of first_chunk ("bytes" unit)

    def to_message(self, input_prefix: str) -> str:
        body = {"v": MESSAGE_VERSION, **asdict(self), "input_prefix": input_prefix}
        body["format"] = {"kind": body.pop("kind"), "gzip": body.pop("gzip")}
        return json.dumps(body, sort_keys=True)

    @classmethod
    def from_message(cls, body: str | dict[str, Any]) -> WorkItem:
        data = json.loads(body) if isinstance(body, str) else dict(body)
        if data.get("v") != MESSAGE_VERSION:
            raise ValueError(f"unsupported shard message version {data.get('v')!r}")
        fmt = data["format"]
        return cls(
            bucket=data["bucket"], key=data["key"], etag=data["etag"], size=int(data["size"]),
            kind=fmt["kind"], gzip=bool(fmt["gzip"]), unit=data["unit"], chunk_size=int(data["chunk_size"]),
            first_chunk=int(data.get("first_chunk", 0)),
            end_chunk=None if data.get("end_chunk") is None else int(data["end_chunk"]),
            first_line=int(data.get("first_line", 1)),
        )  # fmt: skip

    @property
    def total_chunks(self) -> int | None:
        if self.unit != "bytes":
            return None
        return max(1, math.ceil(self.size / self.chunk_size))


@dataclass
class RunResult:
    chunks_done: int = 0
    chunks_skipped: int = 0
    handoff: WorkItem | None = None
    manifest: dict[str, Any] | None = None
    stale: bool = False  # the object changed under us; a newer event will handle it


class Engine:
    """Everything the S3 path does, given clients, a loaded encoder and the config."""

    def __init__(self, s3: Any, encoder: Encoder, cfg: BulkConfig, sqs: Any | None = None) -> None:
        self.s3 = s3
        self.sqs = sqs
        self.encoder = encoder
        self.cfg = cfg
        self.opts = PipelineOptions(
            overlong=cfg.overlong, max_text_chars=cfg.max_text_chars, window=cfg.window, batch_size=cfg.batch_size
        )

    # ---- small S3 helpers ------------------------------------------------------------------
    def _get_json(self, bucket: str, key: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        except self.s3.exceptions.NoSuchKey:
            return None

    def _put_json(self, bucket: str, key: str, data: dict[str, Any]) -> None:
        body = manifests.dumps(data)
        self.s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")

    def _open(self, item: WorkItem, start: int = 0) -> Any:
        kwargs: dict[str, Any] = {"Bucket": item.bucket, "Key": item.key, "IfMatch": f'"{item.etag}"'}
        if start > 0:
            kwargs["Range"] = f"bytes={start}-"
        return self.s3.get_object(**kwargs)["Body"]

    def layout(self, item: WorkItem) -> OutputLayout:
        return OutputLayout.for_object(self.cfg, item.bucket, item.key, item.etag)

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

    # ---- planning --------------------------------------------------------------------------
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

    def handle_object(self, bucket: str, key: str, remaining_ms: Callable[[], int]) -> dict[str, Any]:
        """Entry for one ObjectCreated notification: encode inline, or fan out over SQS."""
        reason = self.ignore_reason(bucket, key)
        if reason:
            log.info("ignored s3://%s/%s: %s", bucket, key, reason)
            return {"key": key, "ignored": reason}
        try:
            head = self.s3.head_object(Bucket=bucket, Key=key)
        except self.s3.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                log.info("ignored s3://%s/%s: deleted before we got to it", bucket, key)
                return {"key": key, "ignored": "object no longer exists"}
            raise
        etag, size = head["ETag"].strip('"'), int(head["ContentLength"])
        layout = OutputLayout.for_object(self.cfg, bucket, key, etag)
        existing = self._get_json(layout.bucket, layout.manifest_key)
        if existing and existing.get("input", {}).get("etag") == etag:
            log.info("s3://%s/%s (etag %s) already has a manifest: duplicate delivery", bucket, key, etag)
            return {"key": key, "skipped": "already encoded", "manifest": layout.manifest_key}
        try:
            fmt = InputFormat.from_key(key, self.cfg.reader)
        except UnsupportedFormatError as exc:
            manifest = self._failed_manifest(layout, bucket, key, etag, size, str(exc))
            return {"key": key, "failed": str(exc), "manifest": layout.manifest_key, "status": manifest["status"]}
        unit = "bytes" if fmt.shardable else "records"
        chunk = self.cfg.chunk_bytes if unit == "bytes" else self.cfg.chunk_records
        item = WorkItem(bucket, key, etag, size, fmt.kind, fmt.gzip, unit, chunk)
        if unit == "bytes":
            item.end_chunk = item.total_chunks
            if size > self.cfg.shard_bytes and self.cfg.queue_url:
                shards = self.plan_shards(item)
                self.send(shards)
                log.info("s3://%s/%s: %d bytes fanned out as %d shards", bucket, key, size, len(shards))
                return {"key": key, "shards": len(shards), "chunks": item.total_chunks}
        result = self.run(item, remaining_ms)
        return self._summary(key, result)

    def plan_shards(self, item: WorkItem) -> list[WorkItem]:
        """Chunk-aligned shards with their first line numbers (one sequential pass over the object)."""
        per_shard = max(1, self.cfg.shard_bytes // item.chunk_size)
        total = item.total_chunks or 1
        starts = list(range(0, total, per_shard))
        first_lines = first_line_numbers(self._open(item), [s * item.chunk_size for s in starts])
        return [
            WorkItem(
                item.bucket, item.key, item.etag, item.size, item.kind, item.gzip, item.unit, item.chunk_size,
                first_chunk=s, end_chunk=min(s + per_shard, total), first_line=line,
            )  # fmt: skip
            for s, line in zip(starts, first_lines, strict=True)
        ]

    # ---- processing --------------------------------------------------------------------------
    def run(self, item: WorkItem, remaining_ms: Callable[[], int]) -> RunResult:
        """Process the item's chunks in order, skipping finished ones, handing off near the deadline."""
        from botocore.exceptions import ClientError

        result = RunResult()
        try:
            self._run(item, remaining_ms, result)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "PreconditionFailed":
                log.warning("s3://%s/%s changed since etag %s; leaving it to the newer event", item.bucket, item.key, item.etag)
                result.stale = True
                return result
            raise
        except InputFormatError as exc:  # whole-file problem (e.g. CSV without the text column)
            self._mark_failed(item, str(exc), final=True)
        if result.handoff is not None:
            self.send([result.handoff])
        else:
            result.manifest = self.finalize(item)
        return result

    def _chunks(self, item: WorkItem) -> Iterator[tuple[int, Iterator[Item] | None, Callable[[], bool]]]:
        """(chunk index, its items, is_final) in order; items is None past the data (records unit)."""
        fmt = InputFormat(item.kind, item.gzip, self.cfg.reader)
        if item.unit == "bytes":
            total = item.total_chunks or 1
            for k in range(item.first_chunk, min(item.end_chunk or total, total)):
                yield k, None, (lambda k=k: k == total - 1)
            return
        stream = self._open(item)
        items = fmt.iter_items(stream, skip_records=item.first_chunk * item.chunk_size)
        pending: list[Item] = []
        exhausted = False

        def take() -> list[Item]:
            nonlocal exhausted, pending
            batch = pending + list(islice(items, item.chunk_size - len(pending)))
            pending = list(islice(items, 1))  # peek: is there anything after this chunk?
            exhausted = not pending
            return batch

        k = item.first_chunk
        while item.end_chunk is None or k < item.end_chunk:
            batch = take()
            yield k, iter(batch), (lambda: exhausted)
            if exhausted:
                return
            k += 1

    def _byte_items(self, item: WorkItem, k: int, first_line: int) -> Iterator[Item]:
        start = k * item.chunk_size
        end = min((k + 1) * item.chunk_size, item.size)
        if item.size == 0 or start >= item.size:
            return
        fmt = InputFormat(item.kind, item.gzip, self.cfg.reader)
        stream = self._open(item, max(start - 1, 0))
        try:
            for line, raw, _ in iter_range_lines(
                stream,
                start=start,
                end=end,
                first_line=first_line,
                stream_offset=max(start - 1, 0),
                max_line_bytes=self.cfg.reader.max_line_bytes,
            ):
                yield fmt.parse_line(raw, line)  # rejects over-long lines itself
        finally:
            stream.close()

    def _run(self, item: WorkItem, remaining_ms: Callable[[], int], result: RunResult) -> None:
        layout = self.layout(item)
        line = item.first_line
        slowest_ms = 0.0
        for k, items, is_final in self._chunks(item):
            marker = self._get_json(layout.bucket, layout.marker_key(k))
            if marker is not None:
                result.chunks_skipped += 1
                line = marker.get("next_line", line)
                if item.unit == "records" and is_final():
                    return
                continue
            # Hand off near the deadline, but only after progress: a budget that never fits one
            # chunk must not bounce the same work between invocations forever.
            if result.chunks_done and remaining_ms() < max(self.cfg.time_margin_ms, 1.5 * slowest_ms):
                result.handoff = WorkItem(**{**asdict(item), "first_chunk": k, "first_line": line})
                log.info("s3://%s/%s: handing chunks %d.. on before the deadline", item.bucket, item.key, k)
                return
            t0 = time.perf_counter()
            if items is None:
                items = self._byte_items(item, k, line)
            counts, marker = self._process_chunk(layout, k, items, line)
            marker["final"] = bool(is_final())
            self._put_json(layout.bucket, layout.marker_key(k), marker)
            line = marker["next_line"]
            result.chunks_done += 1
            slowest_ms = max(slowest_ms, (time.perf_counter() - t0) * 1e3)
            if item.unit == "records" and marker["final"]:
                return

    def _process_chunk(self, layout: OutputLayout, k: int, items: Iterator[Item], first_line: int) -> tuple[Counts, dict]:
        started = manifests.now()
        with tempfile.TemporaryDirectory(prefix="bert2vec-") as tmp:
            part_path = Path(tmp) / f"part-{k:06d}"
            last_line = [first_line - 1]

            def tracked() -> Iterator[Item]:
                for it in items:
                    last_line[0] = it.line
                    yield it

            with open_part_writer(self.cfg.output_format, part_path, self.encoder.vector_length) as writer, ErrorWriter(
                Path(tmp) / "errors.jsonl"
            ) as errors:
                counts = encode_items(tracked(), self.encoder, writer, errors, self.opts)
                files = writer.close()
                error_files = errors.close()
            parts = []
            if counts.encoded:
                for f in files:
                    suffix = f.name[len(part_path.name) :]
                    key = layout.part_key(k, suffix)
                    self.s3.upload_file(str(f), layout.bucket, key)
                    parts.append(key)
            errors_key = None
            if counts.rejected:
                errors_key = layout.chunk_errors_key(k)
                self.s3.upload_file(str(error_files[0]), layout.bucket, errors_key)
        marker = {
            "chunk": k,
            "counts": counts.to_dict(),
            "parts": parts,
            "rows": counts.encoded,
            "errors_key": errors_key,
            "first_line": first_line,
            "last_line": last_line[0],
            "next_line": last_line[0] + 1 if counts.lines_read else first_line,
            "started_at": started,
            "finished_at": manifests.now(),
        }
        return counts, marker

    # ---- failure and completion -------------------------------------------------------------
    def _mark_failed(self, item: WorkItem, error: str, *, final: bool | None = None) -> None:
        layout = self.layout(item)
        total = item.total_chunks
        last = (item.end_chunk or total or item.first_chunk + 1) - 1
        chunks = range(item.first_chunk, last + 1) if item.unit == "bytes" else [item.first_chunk]
        for k in chunks:
            if self._get_json(layout.bucket, layout.marker_key(k)) is not None:
                continue
            is_final = final if final is not None else (k == (total or 0) - 1 if item.unit == "bytes" else True)
            self._put_json(
                layout.bucket,
                layout.marker_key(k),
                {"chunk": k, "failed": True, "error": error[:2000], "final": is_final, "finished_at": manifests.now()},
            )

    def fail(self, item: WorkItem, error: str) -> dict[str, Any] | None:
        """Record a poison shard (last receive before the DLQ) so the manifest can report it."""
        self._mark_failed(item, error)
        return self.finalize(item)

    def _markers(self, layout: OutputLayout) -> dict[int, dict[str, Any]]:
        found: dict[int, dict[str, Any]] = {}
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=layout.bucket, Prefix=layout.markers_prefix):
            for obj in page.get("Contents", []):
                if obj["Key"].endswith(".json"):
                    marker = self._get_json(layout.bucket, obj["Key"])
                    if marker is not None:
                        found[int(marker["chunk"])] = marker
        return found

    def finalize(self, item: WorkItem) -> dict[str, Any] | None:
        """Write the manifest if every chunk up to the final one has a marker; else None."""
        layout = self.layout(item)
        markers = self._markers(layout)
        finals = [k for k, m in markers.items() if m.get("final")]
        if not finals:
            return None
        last = min(finals)
        if any(k not in markers for k in range(last + 1)):
            return None
        ordered = [markers[k] for k in range(last + 1)]
        counts = Counts()
        for m in ordered:
            if not m.get("failed"):
                c = dict(m["counts"])
                counts.add(Counts(**c))
        failed = [{"chunk": m["chunk"], "error": m["error"]} for m in ordered if m.get("failed")]
        self._merge_errors(layout, ordered)
        manifest = manifests.build(
            status=manifests.status_of(counts, len(failed), len(ordered)),
            input={"bucket": item.bucket, "key": item.key, "etag": item.etag, "size": item.size,
                   "format": {"kind": item.kind, "gzip": item.gzip}},
            model_card=self.encoder.card,
            output={
                "bucket": layout.bucket,
                "format": self.cfg.output_format,
                "parts": [self._part_entry(m) for m in ordered if not m.get("failed") and m["parts"]],
                "errors_key": layout.errors_key,
            },
            counts=counts,
            chunks={"total": len(ordered), "unit": item.unit, "chunk_size": item.chunk_size, "failed": failed},
            timings={
                "started_at": min((m.get("started_at") or m["finished_at"]) for m in ordered),
                "finished_at": max(m["finished_at"] for m in ordered),
                "encode_seconds": round(counts.encode_seconds, 3),
            },
        )  # fmt: skip
        self._put_json(layout.bucket, layout.manifest_key, manifest)
        log.info("manifest written: s3://%s/%s (%s)", layout.bucket, layout.manifest_key, manifest["status"])
        return manifest

    @staticmethod
    def _part_entry(marker: dict[str, Any]) -> dict[str, Any]:
        """One chunk's output: its data file, plus the ids sidecar for npy."""
        entry = {k: marker[k] for k in ("chunk", "rows", "first_line", "last_line")}
        entry["key"] = marker["parts"][0]
        if len(marker["parts"]) > 1:
            entry["ids_key"] = marker["parts"][1]
        return entry

    def _merge_errors(self, layout: OutputLayout, ordered: list[dict[str, Any]]) -> None:
        """``<key>.errors.jsonl``: every rejected line in line order (empty when none)."""
        with tempfile.TemporaryFile() as out:
            for m in ordered:
                if m.get("errors_key"):
                    body = self.s3.get_object(Bucket=layout.bucket, Key=m["errors_key"])["Body"]
                    for chunk in iter(lambda b=body: b.read(1 << 20), b""):
                        out.write(chunk)
            out.seek(0)
            self.s3.upload_fileobj(out, layout.bucket, layout.errors_key)

    def _failed_manifest(self, layout: OutputLayout, bucket: str, key: str, etag: str, size: int, error: str) -> dict:
        manifest = manifests.build(
            status="failed",
            input={"bucket": bucket, "key": key, "etag": etag, "size": size},
            model_card=self.encoder.card,
            output={"bucket": layout.bucket, "format": self.cfg.output_format, "parts": []},
            counts=Counts(),
            error=error,
        )
        self._put_json(layout.bucket, layout.manifest_key, manifest)
        return manifest

    @staticmethod
    def _summary(key: str, result: RunResult) -> dict[str, Any]:
        out: dict[str, Any] = {"key": key, "chunks_done": result.chunks_done, "chunks_skipped": result.chunks_skipped}
        if result.stale:
            out["stale"] = True
        if result.handoff is not None:
            out["handed_off_from_chunk"] = result.handoff.first_chunk
        if result.manifest is not None:
            out["status"] = result.manifest["status"]
            out["counts"] = result.manifest["counts"]
        return out
