"""Bulk encoding of S3 objects: plan, fan out over SQS, process chunks, detect completion.

Design (docs/s3-bulk.md, "Scale-out"):
- The unit of work is a *chunk*: a fixed byte range of an uncompressed ``.txt``/``.jsonl`` object
  (the lines whose first byte lies in it), or a fixed number of records of a stream that cannot
  be split by bytes (``.gz``, ``.csv``). Chunk boundaries depend only on the object, so every
  retry, re-delivery or hand-off cuts the same chunks and writes the same keys.
- A chunk is encoded in one or more *segments*: whatever one invocation gets through before its
  deadline. Each segment uploads its part file, then a progress object saying where the next
  segment resumes (a byte offset or a record count, and the line number). A worker never needs
  to finish a chunk: near the deadline it stops between records, saves its progress and sends the
  rest on as a new SQS message. A worker killed mid-segment is redone from the last progress.
- A finished chunk writes a small marker object listing its segments. Work skips chunks whose
  marker exists, so a duplicate event or a retry does nothing twice.
- Completion is detected by listing markers: once chunk 0..final are all present, whoever sees it
  writes the manifest, but only while the input object still has the ETag that was processed,
  so a slow run over an old version never replaces a newer version's manifest.
- Failures end in the manifest, never in silence: an input that stops being readable (truncated
  gzip, reset connection on the last try) keeps every line read before the fault and says where
  reading stopped; a poisoned chunk on its last receive is marked failed alone and the chunks after
  it are queued again; a chain of hand-offs longer than ``MAX_HOPS`` ends in a failed manifest.
"""

from __future__ import annotations

import gzip
import json
import logging
import math
import tempfile
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from itertools import islice
from pathlib import Path
from typing import Any

from function.bulk import manifest as manifests
from function.bulk.config import BulkConfig, OutputLayout
from function.bulk.pipeline import Counts, PipelineOptions, check_chunk_config, encode_items
from function.bulk.readers import (
    InputFormat,
    InputFormatError,
    Item,
    UnsupportedFormatError,
    first_line_numbers,
    iter_range_lines,
    sniff_text,
)
from function.bulk.vectors import S3VectorsPartWriter, VectorTarget, read_keys, s3vectors_client
from function.bulk.writers import ErrorWriter, PartWriter, open_part_writer
from function.encoder import Encoder

log = logging.getLogger("bert2vec.bulk")
MESSAGE_VERSION = 1
PROBE_BYTES = 64 * 1024  # first look for the line start of a chunk
SNIFF_BYTES = 4096  # how much of an object's start decides "text, UTF-8?" before any work is planned
# The input's *content* cannot be read on (a truncated or corrupt gzip). Transport failures (a
# reset connection, a timeout) are not among them: those fail the invocation, whose retry resumes
# from the saved progress, instead of declaring the input cut short.
CONTENT_ERRORS: tuple[type[BaseException], ...] = (EOFError, zlib.error, gzip.BadGzipFile)


class ReadFailed(Exception):
    """The input stopped being readable mid-chunk; ``line``/``offset`` say where."""

    def __init__(self, cause: BaseException, line: int, offset: int | None) -> None:
        where = f"after line {line}" + ("" if offset is None else f" (byte {offset})")
        super().__init__(f"input unreadable {where}: {type(cause).__name__}: {cause}")
        self.cause, self.line, self.offset = cause, line, offset


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
    hops: int = 0  # hand-offs so far in this chain of messages (bounded by MAX_HOPS)

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
            first_line=int(data.get("first_line", 1)), hops=int(data.get("hops", 0)),
        )  # fmt: skip

    @property
    def total_chunks(self) -> int | None:
        if self.unit != "bytes":
            return None
        return max(1, math.ceil(self.size / self.chunk_size))


def _error_code(exc: Any) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


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
        self.in_progress: tuple[WorkItem, int] | None = None  # (item, chunk) being encoded right now
        self.vectors = s3vectors_client() if cfg.output_format == "s3vectors" else None
        self.opts = PipelineOptions(
            overlong=cfg.overlong, max_text_chars=cfg.max_text_chars, window=cfg.window, batch_size=cfg.batch_size,
            stride=cfg.stride, chunk_rows=cfg.chunk_rows,
        )  # fmt: skip
        if cfg.overlong == "chunk":  # needs the model: its signatures and its window size
            check_chunk_config(encoder, cfg.stride)

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
        """Entry for one ObjectCreated notification: encode inline, or fan out over SQS.

        Whatever goes wrong with this object ends in its manifest. An unexpected error writes a
        ``retryable`` failed manifest and is raised again, so Lambda's retry (and, after the last
        one, the on-failure destination) still sees it; a retry is not mistaken for a duplicate.
        """
        reason = self.ignore_reason(bucket, key)
        if reason:
            log.info("ignored s3://%s/%s: %s", bucket, key, reason)
            return {"key": key, "ignored": reason}
        from botocore.exceptions import ClientError

        try:
            head = self.s3.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            code = _error_code(exc)
            if code in ("404", "NoSuchKey", "NotFound"):
                log.info("ignored s3://%s/%s: deleted before we got to it", bucket, key)
                return {"key": key, "ignored": "object no longer exists"}
            if code in ("403", "AccessDenied"):
                why = (
                    "access denied reading the object: it may have been deleted (S3 answers 403 instead of 404 "
                    "without s3:ListBucket), or the function lacks s3:GetObject on it"
                )
                log.error("s3://%s/%s: %s", bucket, key, why)
                layout = OutputLayout.for_object(self.cfg, bucket, key, "unknown")
                manifest = self._failed_manifest(layout, bucket, key, "", 0, why)
                return {"key": key, "failed": why, "manifest": layout.manifest_key, "status": manifest["status"]}
            raise
        etag, size = head["ETag"].strip('"'), int(head["ContentLength"])
        layout = OutputLayout.for_object(self.cfg, bucket, key, etag)
        existing = self._get_json(layout.bucket, layout.manifest_key)
        if existing and existing.get("input", {}).get("etag") == etag and not existing.get("retryable"):
            log.info("s3://%s/%s (etag %s) already has a manifest: duplicate delivery", bucket, key, etag)
            return {"key": key, "skipped": "already encoded", "manifest": layout.manifest_key}
        try:
            return self._plan_and_run(bucket, key, etag, size, layout, remaining_ms)
        except Exception as exc:
            log.exception("s3://%s/%s: failed; writing a retryable manifest before Lambda retries", bucket, key)
            self._failed_manifest(layout, bucket, key, etag, size, f"{type(exc).__name__}: {exc}"[:2000], retryable=True)
            raise

    def _plan_and_run(
        self, bucket: str, key: str, etag: str, size: int, layout: OutputLayout, remaining_ms: Callable[[], int]
    ) -> dict[str, Any]:
        try:
            fmt = InputFormat.from_key(key, self.cfg.reader)
        except UnsupportedFormatError as exc:
            manifest = self._failed_manifest(layout, bucket, key, etag, size, str(exc))
            return {"key": key, "failed": str(exc), "manifest": layout.manifest_key, "status": manifest["status"]}
        unit = "bytes" if fmt.shardable else "records"
        chunk = self.cfg.chunk_bytes if unit == "bytes" else self.cfg.chunk_records
        item = WorkItem(bucket, key, etag, size, fmt.kind, fmt.gzip, unit, chunk)
        not_text = self._sniff(item)
        if not_text:
            manifest = self._failed_manifest(layout, bucket, key, etag, size, not_text)
            return {"key": key, "failed": not_text, "manifest": layout.manifest_key, "status": manifest["status"]}
        if unit == "bytes":
            item.end_chunk = item.total_chunks
            if size > self.cfg.shard_bytes and self.cfg.queue_url:
                shards = self.plan_shards(item)
                self.send(shards)
                log.info("s3://%s/%s: %d bytes fanned out as %d shards", bucket, key, size, len(shards))
                return {"key": key, "shards": len(shards), "chunks": item.total_chunks}
        result = self.run(item, remaining_ms)
        return self._summary(key, result)

    def _sniff(self, item: WorkItem) -> str | None:
        """Why the object is not UTF-8 text (a UTF-16/32 byte-order mark, NUL bytes), or None.

        Reads at most the first few KiB (decompressed for ``.gz``); a corrupt gzip is left to the
        reader, which reports where reading stopped.
        """
        if item.size == 0:
            return None
        body = self.s3.get_object(
            Bucket=item.bucket, Key=item.key, IfMatch=f'"{item.etag}"', Range=f"bytes=0-{SNIFF_BYTES * 16 - 1}"
        )["Body"].read()
        if item.gzip:
            try:
                body = zlib.decompressobj(wbits=31).decompress(body, SNIFF_BYTES)
            except zlib.error:
                return None
        return sniff_text(body[:SNIFF_BYTES])

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
        self.in_progress = None
        try:
            self._run(item, remaining_ms, result)
        except ClientError as exc:
            if _error_code(exc) == "PreconditionFailed":
                log.warning("s3://%s/%s changed since etag %s; leaving it to the newer event", item.bucket, item.key, item.etag)
                result.stale = True
                return result
            if _error_code(exc) not in ("403", "AccessDenied", "404", "NoSuchKey"):
                raise
            k = self.in_progress[1] if self.in_progress else item.first_chunk
            self._mark_failed(item, [k], f"cannot read the object: {_error_code(exc)}: {exc}", final=True)
        except InputFormatError as exc:  # whole-file problem (e.g. CSV without the text column)
            self._mark_failed(item, [item.first_chunk], str(exc), final=True)
        if result.handoff is not None:
            if result.handoff.hops > self.cfg.max_hops:
                k = result.handoff.first_chunk
                why = (f"stopped after {self.cfg.max_hops} hand-offs (MAX_HOPS) without finishing; chunks from {k} on "
                       "were not encoded")  # fmt: skip
                log.error("s3://%s/%s: %s", item.bucket, item.key, why)
                self._mark_failed(result.handoff, self._remaining_chunks(result.handoff), why)
                result.handoff = None
                result.manifest = self.finalize(item)
                return result
            self.send([result.handoff])
        else:
            result.manifest = self.finalize(item)
        return result

    def _remaining_chunks(self, item: WorkItem) -> list[int]:
        """The chunks a message still covers (records unit: the next one stands for all the rest)."""
        if item.unit == "bytes":
            total = item.total_chunks or 1
            return list(range(item.first_chunk, min(item.end_chunk or total, total)))
        return [item.first_chunk]

    def _chunk_items(
        self, item: WorkItem, k: int, resume: int, line: int, position: list[int]
    ) -> Iterator[Item]:
        """The items of chunk ``k`` from ``resume`` (a byte offset for the bytes unit, else the
        number of records of the chunk already done). ``position`` is kept at the resume point
        after the last item yielded, so the caller can save it at any moment."""
        fmt = InputFormat(item.kind, item.gzip, self.cfg.reader)
        if item.unit == "records":
            stream = self._open(item)
            skip = k * item.chunk_size + resume
            items = fmt.iter_items(stream, skip_records=skip)
            position[0] = resume
            for it in islice(items, item.chunk_size - resume):
                position[0] += 1
                yield it
            position.append(1 if next(items, None) is None else 0)  # exhausted? (the chunk is the final one)
            return
        start = max(k * item.chunk_size, resume)
        end = min((k + 1) * item.chunk_size, item.size)
        position[0] = start
        if item.size == 0 or start >= end:
            return
        lead = self._line_start_at_or_after(item, start, end)
        if lead is None:  # no line starts in [start, end): a long line from an earlier chunk covers it
            position[0] = end
            return
        stream = self._open(item, max(lead - 1, 0))
        try:
            for number, raw, after in iter_range_lines(
                stream, start=lead, end=end, first_line=line, stream_offset=max(lead - 1, 0),
                max_line_bytes=self.cfg.reader.max_line_bytes,
            ):  # fmt: skip
                position[0] = after
                yield fmt.parse_line(raw, number)  # rejects over-long lines itself
        finally:
            stream.close()
        position[0] = end

    def _line_start_at_or_after(self, item: WorkItem, start: int, end: int) -> int | None:
        """The first line start in ``[start, end)``, reading only that range (never a long line's tail).

        A small probe first (a line usually ends within a few KiB), then the rest of the range.
        """
        if start == 0:
            return 0
        lo, last = start - 1, end - 2  # a "\n" at ``last`` starts a line at end - 1, the range's last byte
        probe = PROBE_BYTES
        while lo <= last:
            hi = min(lo + probe - 1, last)
            rng = f"bytes={lo}-{hi}"
            body = self.s3.get_object(Bucket=item.bucket, Key=item.key, IfMatch=f'"{item.etag}"', Range=rng)["Body"]
            nl = body.read().find(b"\n")
            if nl >= 0:
                return lo + nl + 1
            lo, probe = hi + 1, end  # the probe missed: the rest of the range in one request
        return None

    def _run(self, item: WorkItem, remaining_ms: Callable[[], int], result: RunResult) -> None:
        layout = self.layout(item)
        line = item.first_line
        slowest_ms = 0.0
        total = item.total_chunks
        k = item.first_chunk
        while item.end_chunk is None or k < item.end_chunk:
            if total is not None and k >= total:
                return
            marker = self._get_json(layout.bucket, layout.marker_key(k))
            if marker is not None:
                result.chunks_skipped += 1
                line = marker.get("next_line", line)
                if marker.get("final"):
                    return
                k += 1
                continue
            progress = self._get_json(layout.bucket, layout.progress_key(k)) or {
                "chunk": k, "segments": [], "resume": 0, "next_line": line, "first_line": line,
            "started_at": manifests.now(),
            }  # fmt: skip
            # Hand off near the deadline, but only after progress: a budget that never fits one
            # segment must not bounce the same work between invocations forever.
            margin = max(self.cfg.time_margin_ms, 1.5 * slowest_ms)

            def out_of_time(done_here: int) -> bool:
                return (result.chunks_done > 0 or done_here > 0) and remaining_ms() < margin  # noqa: B023

            self.in_progress = (item, k)
            t0 = time.perf_counter()
            finished, marker = self._process_chunk(item, layout, k, progress, out_of_time)
            slowest_ms = max(slowest_ms, (time.perf_counter() - t0) * 1e3)
            if not finished:
                result.handoff = replace(item, first_chunk=k, first_line=progress["next_line"], hops=item.hops + 1)
                log.info("s3://%s/%s: handing chunk %d on at line %d before the deadline (hop %d)",
                         item.bucket, item.key, k, progress["next_line"], item.hops + 1)  # fmt: skip
                return
            self._put_json(layout.bucket, layout.marker_key(k), marker)
            self.in_progress = None
            line = marker["next_line"]
            result.chunks_done += 1
            if marker["final"]:
                return
            if remaining_ms() < max(self.cfg.time_margin_ms, 1.5 * slowest_ms):
                result.handoff = replace(item, first_chunk=k + 1, first_line=line, hops=item.hops + 1)
                log.info("s3://%s/%s: handing chunks %d.. on before the deadline", item.bucket, item.key, k + 1)
                return
            k += 1

    def _process_chunk(
        self, item: WorkItem, layout: OutputLayout, k: int, progress: dict[str, Any], out_of_time: Callable[[int], bool]
    ) -> tuple[bool, dict[str, Any]]:
        """Encode chunk ``k`` from its saved progress, as one more segment.

        Returns (finished, marker). Unfinished: the segment's part is uploaded and ``progress``
        (updated in place) is saved for the next invocation. A read failure ends the chunk as the
        object's last: the lines read before it are kept and the marker says where reading stopped.
        """
        s = len(progress["segments"])
        position = [progress["resume"]]
        last_line = [progress["next_line"] - 1]
        done_here = [0]
        stopped = [False]
        read_error: list[ReadFailed] = []
        source = self._chunk_items(item, k, progress["resume"], progress["next_line"], position)

        def items() -> Iterator[Item]:
            while True:
                if out_of_time(done_here[0]):
                    stopped[0] = True
                    return
                try:
                    it = next(source)
                except StopIteration:
                    return
                except CONTENT_ERRORS as exc:
                    read_error.append(ReadFailed(exc, last_line[0], position[0] if item.unit == "bytes" else None))
                    return
                last_line[0] = it.line
                done_here[0] += 1
                yield it

        counts, segment = self._encode_segment(item, layout, k, s, items())
        progress["segments"].append(segment)
        progress["next_line"] = last_line[0] + 1
        progress["resume"] = position[0]
        if stopped[0] and not read_error:
            self._put_json(layout.bucket, layout.progress_key(k), progress)
            return False, progress
        segments = progress["segments"]
        total = Counts()
        for seg in segments:
            total.add(Counts(**seg["counts"]))
        exhausted = position[-1] == 1 if item.unit == "records" and len(position) > 1 else False
        is_final = bool(read_error) or (
            k == (item.total_chunks or 0) - 1 if item.unit == "bytes" else exhausted
        )
        marker: dict[str, Any] = {
            "chunk": k,
            "counts": total.to_dict(),
            "segments": [seg for seg in segments if seg["rows"] or seg["errors_key"]],
            "rows": sum(seg["rows"] for seg in segments),
            "first_line": progress.get("first_line", segments[0]["first_line"]),
            "last_line": last_line[0],
            "next_line": last_line[0] + 1,
            "final": is_final,
            "started_at": progress.get("started_at") or manifests.now(),
            "finished_at": manifests.now(),
        }
        if read_error:
            marker["read_error"] = str(read_error[0])
            log.error("s3://%s/%s: %s", item.bucket, item.key, read_error[0])
        return True, marker

    def _vector_target(self, item: WorkItem) -> VectorTarget:
        cfg = self.cfg
        assert cfg.vector_bucket and cfg.vector_index  # BulkConfig checks it for s3vectors
        return VectorTarget(
            self.vectors, cfg.vector_bucket, cfg.vector_index, item.bucket, item.key, item.etag, cfg.vector_text_max_bytes
        )

    def _part_writer(self, item: WorkItem, path: Path) -> PartWriter:
        if self.cfg.output_format == "s3vectors":
            return S3VectorsPartWriter(path, self.encoder.vector_length, self._vector_target(item))
        return open_part_writer(self.cfg.output_format, path, self.encoder.vector_length, chunk_rows=self.cfg.chunk_rows)

    def _encode_segment(
        self, item: WorkItem, layout: OutputLayout, k: int, s: int, items: Iterable[Item]
    ) -> tuple[Counts, dict]:
        """Encode ``items`` into one part file (+ errors file) and upload them; the segment's entry."""
        with tempfile.TemporaryDirectory(prefix="bert2vec-") as tmp:
            name = f"part-{k:06d}" if s == 0 else f"part-{k:06d}-{s:04d}"
            part_path = Path(tmp) / name
            lines: list[int] = []

            def tracked() -> Iterator[Item]:
                for it in items:
                    lines.append(it.line)
                    yield it

            with self._part_writer(item, part_path) as writer, ErrorWriter(
                Path(tmp) / "errors.jsonl"
            ) as errors:
                counts = encode_items(tracked(), self.encoder, writer, errors, self.opts)
                files = writer.close()
                error_files = errors.close()
            parts = []
            if counts.encoded:
                for f in files:
                    key = layout.part_key(k, f.name[len(name) :], s)
                    self.s3.upload_file(str(f), layout.bucket, key)
                    parts.append(key)
            errors_key = None
            if counts.rejected:
                errors_key = layout.chunk_errors_key(k, s)
                self.s3.upload_file(str(error_files[0]), layout.bucket, errors_key)
        segment = {
            "segment": s,
            "counts": counts.to_dict(),
            "parts": parts,
            "rows": writer.rows,  # = encoded lines, or with CHUNK_ROWS=1 their windows
            "errors_key": errors_key,
            "first_line": lines[0] if lines else None,
            "last_line": lines[-1] if lines else None,
        }
        return counts, segment

    # ---- failure and completion -------------------------------------------------------------
    def _mark_failed(self, item: WorkItem, chunks: Iterable[int], error: str, *, final: bool | None = None) -> None:
        layout = self.layout(item)
        total = item.total_chunks
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
        """A shard on its last receive (before the DLQ): only the chunk it was stuck on is marked
        failed; the chunks after it are queued again as a fresh message, so one poisoned chunk
        never takes its neighbours down with it."""
        stuck = self.in_progress[1] if self.in_progress and self.in_progress[0].key == item.key else item.first_chunk
        self._mark_failed(item, [stuck], error)
        rest = self._continuation_after(item, stuck)
        if rest is not None:
            self.send([rest])
            log.warning("s3://%s/%s: chunk %d failed for good; chunks %d.. queued again", item.bucket, item.key, stuck, stuck + 1)
            return None
        return self.finalize(item)

    def _continuation_after(self, item: WorkItem, k: int) -> WorkItem | None:
        """A message for the chunks of ``item`` after ``k``, or None if ``k`` was its last."""
        if item.unit == "records":
            return None  # a records stream cannot be resumed past a chunk that cannot be read
        total = item.total_chunks or 1
        end = min(item.end_chunk or total, total)
        if k + 1 >= end:
            return None
        (line,) = first_line_numbers(self._open(item), [(k + 1) * item.chunk_size])
        return replace(item, first_chunk=k + 1, first_line=line, hops=item.hops + 1)

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
        """Write the manifest if every chunk up to the final one has a marker; else None.

        Only while the input still has the ETag we processed: if it was overwritten meanwhile, a
        newer version's run owns the manifest and this one must not replace it.
        """
        layout = self.layout(item)
        markers = self._markers(layout)
        finals = [k for k, m in markers.items() if m.get("final")]
        if not finals:
            return None
        last = min(finals)
        if any(k not in markers for k in range(last + 1)):
            return None
        if not self._still_current(item):
            return None
        ordered = [markers[k] for k in range(last + 1)]
        counts = Counts()
        for m in ordered:
            if not m.get("failed"):
                counts.add(Counts(**m["counts"]))
        failed = [{"chunk": m["chunk"], "error": m["error"]} for m in ordered if m.get("failed")]
        read_errors = [m["read_error"] for m in ordered if m.get("read_error")]
        self._merge_errors(layout, ordered)
        parts = [self._part_entry(m, seg) for m in ordered if not m.get("failed") for seg in m["segments"] if seg["parts"]]
        stale = self._delete_stale_vectors(item, layout, parts) if self.cfg.output_format == "s3vectors" else None
        status = manifests.status_of(counts, len(failed), len(ordered))
        if read_errors and status == "complete":
            status = "incomplete" if counts.lines_read else "failed"
        errors = [f"chunk {f['chunk']}: {f['error']}" for f in failed] + read_errors
        manifest = manifests.build(
            status=status,
            input={"bucket": item.bucket, "key": item.key, "etag": item.etag, "size": item.size,
                   "format": {"kind": item.kind, "gzip": item.gzip}},
            model_card=self.encoder.card,
            output={
                "bucket": layout.bucket,
                "format": self.cfg.output_format,
                "parts": parts,
                "errors_key": layout.errors_key,
                **({} if stale is None else {"vector_bucket": self.cfg.vector_bucket,
                                             "vector_index": self.cfg.vector_index, "stale_vectors_deleted": stale}),
            },
            counts=counts,
            chunks={"total": len(ordered), "unit": item.unit, "chunk_size": item.chunk_size, "failed": failed},
            timings={
                "started_at": min((m.get("started_at") or m["finished_at"]) for m in ordered),
                "finished_at": max(m["finished_at"] for m in ordered),
                "encode_seconds": round(counts.encode_seconds, 3),
            },
            error="; ".join(errors)[:4000] if errors else None,
        )  # fmt: skip
        self._put_json(layout.bucket, layout.manifest_key, manifest)
        log.info("manifest written: s3://%s/%s (%s)", layout.bucket, layout.manifest_key, manifest["status"])
        return manifest

    def _part_keys(self, bucket: str, parts: list[dict[str, Any]]) -> set[str]:
        keys: set[str] = set()
        for part in parts:
            keys |= read_keys(self.s3.get_object(Bucket=bucket, Key=part["key"])["Body"].read())
        return keys

    def _delete_stale_vectors(self, item: WorkItem, layout: OutputLayout, parts: list[dict[str, Any]]) -> int:
        """Keys the previous version of this object put into the index that this version did not."""
        previous = self._get_json(layout.bucket, layout.manifest_key)
        if not previous or previous.get("input", {}).get("etag") in (None, item.etag):
            return 0
        if previous.get("output", {}).get("format") != "s3vectors":
            return 0
        old = self._part_keys(layout.bucket, previous["output"].get("parts", []))
        stale = old - self._part_keys(layout.bucket, parts)
        return self._vector_target(item).delete(stale) if stale else 0

    def _still_current(self, item: WorkItem) -> bool:
        from botocore.exceptions import ClientError

        try:
            current = self.s3.head_object(Bucket=item.bucket, Key=item.key)["ETag"].strip('"')
        except ClientError as exc:
            if _error_code(exc) in ("404", "NoSuchKey", "NotFound", "403", "AccessDenied"):
                return True  # deleted since: what we encoded is still the last version there was
            raise
        if current != item.etag:
            log.warning("s3://%s/%s was overwritten (etag %s -> %s): not writing the old version's manifest",
                        item.bucket, item.key, item.etag, current)  # fmt: skip
            return False
        return True

    @staticmethod
    def _part_entry(marker: dict[str, Any], segment: dict[str, Any]) -> dict[str, Any]:
        """One segment's output: its data file, plus the ids sidecar for npy."""
        entry = {"chunk": marker["chunk"], "segment": segment["segment"], "rows": segment["rows"],
                 "first_line": segment["first_line"], "last_line": segment["last_line"], "key": segment["parts"][0]}  # fmt: skip
        if len(segment["parts"]) > 1:
            entry["ids_key"] = segment["parts"][1]
        return entry

    def _merge_errors(self, layout: OutputLayout, ordered: list[dict[str, Any]]) -> None:
        """``<key>.errors.jsonl``: every rejected line in line order (empty when none)."""
        with tempfile.TemporaryFile() as out:
            for m in ordered:
                for seg in m.get("segments", []):
                    if seg.get("errors_key"):
                        body = self.s3.get_object(Bucket=layout.bucket, Key=seg["errors_key"])["Body"]
                        for chunk in iter(lambda b=body: b.read(1 << 20), b""):
                            out.write(chunk)
            out.seek(0)
            self.s3.upload_fileobj(out, layout.bucket, layout.errors_key)

    def _failed_manifest(
        self, layout: OutputLayout, bucket: str, key: str, etag: str, size: int, error: str, *, retryable: bool = False
    ) -> dict:
        manifest = manifests.build(
            status="failed",
            input={"bucket": bucket, "key": key, "etag": etag, "size": size},
            model_card=self.encoder.card,
            output={"bucket": layout.bucket, "format": self.cfg.output_format, "parts": []},
            counts=Counts(),
            error=error,
        )
        if retryable:
            manifest["retryable"] = True  # written before Lambda retries: a retry is not a duplicate
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
