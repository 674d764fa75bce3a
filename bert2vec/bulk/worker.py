"""The worker: encode the slices of one message under the commit protocol.

For each slice: skip it if its commit exists; else read its progress (and that object's ETag),
encode one segment into parts whose keys carry this attempt's id, then either

- save the progress with ``If-Match`` on the version read (``If-None-Match: *`` for the first) and
  hand the rest on, before the deadline; or
- write the slice's commit with ``If-None-Match: *``: the first attempt to do so decides which
  segments (hence which parts) count.

A conditional write that loses means another attempt owns the slice: this one stops and its parts
stay uncommitted (deleted when the object's manifest is written); for ``s3vectors``, once the
slice is committed, it deletes the vectors it put that the commit does not list (the manifest may
already be written, its clean-up done). So a duplicate, a late attempt or a retry after a hand-off
can never change committed output.
"""

from __future__ import annotations

import gzip
import json
import logging
import tempfile
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bert2vec.bulk.config import BulkConfig, OutputLayout
from bert2vec.bulk.source import InputObject
from bert2vec.bulk.state import Commit, KeyRecord, Progress, Segment, WorkItem
from bert2vec.bulk.store import Conflict, S3Store, Stored
from bert2vec.bulk.vectors import S3VectorsPartWriter, VectorTarget
from bert2vec.core.encoder import Encoder
from bert2vec.files import manifest as manifests
from bert2vec.files.pipeline import Counts, PipelineOptions, encode_items
from bert2vec.files.readers import Item, Record
from bert2vec.files.writers import ErrorWriter, PartWriter, open_part_writer

log = logging.getLogger("bert2vec.bulk")
# The input's *content* cannot be read on (a truncated or corrupt gzip). Transport failures (a
# reset connection, a timeout) are not among them: those fail the invocation, whose retry resumes
# from the saved progress, instead of declaring the input cut short.
CONTENT_ERRORS: tuple[type[BaseException], ...] = (EOFError, zlib.error, gzip.BadGzipFile)
# OVERLONG=chunk: seconds per character assumed before a run has measured its own rate (generous:
# ~2.5x what 200,000 and 1,000,000-character lines took on a busy 2-core machine: 0.19-0.22 ms).
CHUNK_SECONDS_PER_CHAR = 0.0005
# A segment's part is cut when it reaches this many bytes on local disk (then uploaded and removed,
# and the slice goes on in a new segment): /tmp holds at most this plus one encode window, whatever
# the lines look like (3-letter lines make ~4.7 KB jsonl rows each). SnapStart allows 512 MB of /tmp.
PART_MAX_BYTES = 128 << 20


class ReadFailed(Exception):
    """The input stopped being readable mid-slice; ``line``/``offset`` say where."""

    def __init__(self, cause: BaseException, line: int, offset: int | None) -> None:
        where = f"after line {line}" + ("" if offset is None else f" (byte {offset})")
        super().__init__(f"input unreadable {where}: {type(cause).__name__}: {cause}")
        self.cause, self.line, self.offset = cause, line, offset


@dataclass
class RunResult:
    slices_done: int = 0
    slices_skipped: int = 0
    handoff: WorkItem | None = None
    lost: bool = False  # another attempt owns the slice this one reached (a duplicate)
    current_slice: int | None = None  # the slice being encoded when something went wrong
    reached_final: bool = False  # this run committed (or found committed) the object's final slice


def new_attempt() -> str:
    return uuid.uuid4().hex[:12]


class Worker:
    def __init__(self, store: S3Store, encoder: Encoder, cfg: BulkConfig, vectors: Any | None) -> None:
        self.store = store
        self.encoder = encoder
        self.cfg = cfg
        self.vectors = vectors
        self.opts = PipelineOptions(
            long_text=cfg.long_text, max_text_chars=cfg.max_text_chars, window=cfg.window, batch_size=cfg.batch_size,
            stride=cfg.stride, chunk_rows=cfg.chunk_rows,
        )  # fmt: skip

    def source(self, item: WorkItem) -> InputObject:
        return InputObject(self.store.client, item, self.cfg.reader)

    def layout(self, item: WorkItem) -> OutputLayout:
        return OutputLayout.for_object(self.cfg, item.bucket, item.key, item.etag, item.epoch, item.layout)

    @property
    def model_id(self) -> str | None:
        """The loaded model's checksum: what every work message and commit of a run must name."""
        return self.encoder.card.get("checksum")

    def vector_target(self, item: WorkItem) -> VectorTarget:
        cfg = self.cfg
        assert cfg.vector_bucket and cfg.vector_index  # BulkConfig checks it for s3vectors
        return VectorTarget(self.vectors, cfg.vector_bucket, cfg.vector_index, item.bucket, item.key, item.etag,
                            cfg.vector_text_max_bytes, item.epoch, self.model_id)  # fmt: skip

    # ---- the slices of one message -----------------------------------------------------------
    def run(self, item: WorkItem, remaining_ms: Callable[[], int], result: RunResult) -> None:
        layout = self.layout(item)
        attempt = new_attempt()
        line = item.first_line
        slowest_ms = 0.0
        total = item.total_slices
        k = item.first_slice
        while item.end_slice is None or k < item.end_slice:
            if total is not None and k >= total:
                return
            committed = self.store.get_json(layout.bucket, layout.commit_key(k))
            if committed is not None:
                result.slices_skipped += 1
                if committed.get("final"):
                    result.reached_final = True
                    return
                if committed.get("next_line"):
                    line = committed["next_line"]
                elif item.unit == "bytes":  # a slice committed failed says nowhere where it ended
                    (line,) = self.source(item).first_lines([(k + 1) * item.slice_size])
                k += 1
                continue
            stored = self.store.read(layout.bucket, layout.progress_key(k))
            progress = (
                Progress.from_dict(stored.data) if stored
                else Progress(slice=k, resume=0, next_line=line, first_line=line, started_at=manifests.now())
            )  # fmt: skip
            # Hand off near the deadline, but only after progress: a budget that never fits one
            # segment must not bounce the same work between invocations forever.
            margin = max(self.cfg.time_margin_ms, 1.5 * slowest_ms)
            result.current_slice = k
            t0 = time.perf_counter()
            commit = self._slice(item, layout, attempt, progress, remaining_ms, margin, result.slices_done > 0)
            slowest_ms = max(slowest_ms, (time.perf_counter() - t0) * 1e3)
            if commit is None:  # stopped before the deadline: save progress, hand the rest on
                if not self._write_once(layout, layout.progress_key(k), progress.to_dict(), stored):
                    log.info("s3://%s/%s: slice %d moved on in another attempt; this one (%s) stops", item.bucket,
                             item.key, k, attempt)  # fmt: skip
                    if self.cfg.output_format == "s3vectors" and self.store.get_json(layout.bucket,
                                                                                     layout.commit_key(k)):  # fmt: skip
                        # Already committed (maybe failed, the manifest maybe written): no later clean-up
                        # is sure to come. Uncommitted yet: the completion's clean-up will see our record.
                        self._withdraw(item, layout, k, attempt)
                    result.lost = True
                    return
                result.handoff = replace(item, first_slice=k, first_line=progress.next_line, hops=item.hops + 1)
                log.info("s3://%s/%s: handing slice %d on at line %d before the deadline (hop %d)",
                         item.bucket, item.key, k, progress.next_line, item.hops + 1)  # fmt: skip
                return
            if not self._write_once(layout, layout.commit_key(k), commit.to_dict(), None):
                log.info("s3://%s/%s: slice %d is committed by another attempt; this one (%s) stops", item.bucket,
                         item.key, k, attempt)  # fmt: skip
                if self.cfg.output_format == "s3vectors":
                    self._withdraw(item, layout, k, attempt)
                result.lost = True
                return
            result.current_slice = None
            line = commit.next_line or line
            result.slices_done += 1
            if commit.final:
                result.reached_final = True
                return
            if remaining_ms() < max(self.cfg.time_margin_ms, 1.5 * slowest_ms):
                result.handoff = replace(item, first_slice=k + 1, first_line=line, hops=item.hops + 1)
                log.info("s3://%s/%s: handing slices %d.. on before the deadline", item.bucket, item.key, k + 1)
                return
            k += 1

    def _withdraw(self, item: WorkItem, layout: OutputLayout, k: int, attempt: str) -> None:
        """This attempt lost slice ``k``: delete the vectors it put that the winning commit does not
        list (the winner failed the slice, or its lines differ). The same keys the winner committed
        hold the same vectors and stay. Needed because the manifest may already be written, so its
        clean-up of uncommitted keys has run before these were put."""
        from bert2vec.bulk.vectors import read_keys

        winner = self.store.get_json(layout.bucket, layout.commit_key(k))
        committed: set[str] = set()
        if winner is not None and not winner.get("failed"):
            for seg in Commit.from_dict(winner).segments:
                if seg.parts:
                    committed |= read_keys(self.store.body(layout.bucket, seg.parts[0]))
        mine: set[str] = set()
        for key in self.store.keys(layout.bucket, f"{layout.vector_keys_prefix}{k:06d}-"):
            if f"-{attempt}-" in key:
                mine |= set(KeyRecord.from_dict(self.store.get_json(layout.bucket, key)).keys)
        if mine - committed:
            self.vector_target(item).delete(mine - committed)

    def _write_once(self, layout: OutputLayout, key: str, data: dict[str, Any], read: Stored | None) -> bool:
        """The conditional write of a commit (``read`` None: ``If-None-Match``) or of progress
        (``If-Match`` on the version read); False if another attempt won.

        A write that S3 stored but whose answer was lost is retried by the client and then
        refused (the key exists / changed): the stored object being byte-for-byte ours says we won.
        """
        try:
            if read is None:
                self.store.create(layout.bucket, key, data)
            else:
                self.store.replace(layout.bucket, key, data, read.etag)
            return True
        except Conflict:
            return self.store.get_json(layout.bucket, key) == json.loads(manifests.dumps(data))

    def _slice(
        self, item: WorkItem, layout: OutputLayout, attempt: str, progress: Progress,
        remaining_ms: Callable[[], int], margin: float, done_before: bool,
    ) -> Commit | None:  # fmt: skip
        """Encode slice ``progress.slice`` from its resume point as one or more segments (a new one
        whenever a part reaches ``PART_MAX_BYTES``, so local disk stays bounded).

        Returns the slice's commit when it is finished, or None when the deadline stopped it
        (``progress`` is then updated in place, ready to save). A read failure ends the slice as the
        object's last: the lines read before it are kept and the commit says where reading stopped.
        """
        k = progress.slice
        position = [progress.resume]
        last_line = [progress.next_line - 1]
        done_here = [0]
        pending_chars = [0]  # chunk mode: characters pulled in but not yet encoded
        seconds_per_char = [CHUNK_SECONDS_PER_CHAR]
        stopped = [False]
        part_full: list[Callable[[], bool]] = [lambda: False]  # set by the segment being written
        cut = [False]
        read_error: list[ReadFailed] = []
        source = self.source(item).items(k, progress.resume, progress.next_line, position)
        chunk_mode = self.cfg.long_text == "chunk"

        def out_of_time(next_item: Item | None) -> bool:
            if not (done_before or done_here[0] > 0):
                return False
            budget = margin
            if chunk_mode and isinstance(next_item, Record):
                # A long line in chunk mode can take longer than the margin: check before taking it
                # (and the window it would join) whether it still fits.
                budget += 1000 * seconds_per_char[0] * (pending_chars[0] + min(len(next_item.text),
                                                                                  self.cfg.max_text_chars))
            return remaining_ms() < budget

        def items() -> Iterator[Item]:
            while True:
                if part_full[0]():  # checked before pulling: nothing read is dropped
                    cut[0] = True
                    return
                before = position[0]
                try:
                    it = next(source)
                except StopIteration:
                    return
                except CONTENT_ERRORS as exc:
                    read_error.append(ReadFailed(exc, last_line[0], position[0] if item.unit == "bytes" else None))
                    return
                if out_of_time(it):  # not taken: the next segment resumes at this item
                    stopped[0] = True
                    position[0] = before
                    return
                last_line[0] = it.line
                done_here[0] += 1
                if isinstance(it, Record):
                    pending_chars[0] += len(it.text)
                yield it

        def on_window(counts: Counts) -> None:
            if pending_chars[0] and counts.encode_seconds:  # learn this model's rate on this machine
                chars[0] += pending_chars[0]
                seconds_per_char[0] = counts.encode_seconds / chars[0]
            pending_chars[0] = 0

        chars = [0]
        while True:
            cut[0] = False
            segment = self._segment(item, layout, attempt, k, len(progress.segments), items(), on_window, part_full)
            progress.segments.append(segment)
            progress.next_line = last_line[0] + 1
            progress.resume = position[0]
            if not (cut[0] and not stopped[0] and not read_error):
                break
        if stopped[0] and not read_error:
            return None
        total = Counts()
        for seg in progress.segments:
            total.add(seg.counts)
        exhausted = position[-1] == 1 if item.unit == "records" and len(position) > 1 else False
        is_final = bool(read_error) or (k == (item.total_slices or 0) - 1 if item.unit == "bytes" else exhausted)
        firsts = [s.first_line for s in progress.segments if s.first_line is not None]
        commit = Commit(
            slice=k, final=is_final, finished_at=manifests.now(), attempt=attempt, counts=total,
            segments=[s for s in progress.segments if s.rows or s.errors_key],
            rows=sum(s.rows for s in progress.segments), first_line=progress.first_line if firsts else None,
            last_line=last_line[0], next_line=last_line[0] + 1, started_at=progress.started_at, model=self.model_id,
        )  # fmt: skip
        if read_error:
            commit.read_error = str(read_error[0])
            log.error("s3://%s/%s: %s", item.bucket, item.key, read_error[0])
        return commit

    def _part_writer(self, item: WorkItem, path: Path, record: Callable[[list[str]], None]) -> PartWriter:
        if self.cfg.output_format == "s3vectors":
            return S3VectorsPartWriter(path, self.encoder.vector_length, self.vector_target(item), record)
        return open_part_writer(self.cfg.output_format, path, self.encoder.vector_length, chunk_rows=self.cfg.chunk_rows)

    def _segment(
        self, item: WorkItem, layout: OutputLayout, attempt: str, k: int, s: int, items: Iterable[Item],
        on_window: Callable[[Counts], None], part_full: list[Callable[[], bool]] | None = None,
    ) -> Segment:  # fmt: skip
        """Encode ``items`` into one part (+ errors file) under attempt-unique keys and upload them."""
        lines: list[int] = []
        records = [0]

        def record_keys(keys: list[str]) -> None:
            """Before a batch goes into the index: the record every later clean-up reads."""
            n = records[0]
            records[0] += 1
            key = f"{layout.vector_keys_prefix}{k:06d}-{s:04d}-{attempt}-{n:05d}.json"
            self.store.put_json(layout.bucket, key, KeyRecord(item.bucket, item.key, keys, item.etag).to_dict())

        def tracked() -> Iterator[Item]:
            for it in items:
                lines.append(it.line)
                yield it

        with tempfile.TemporaryDirectory(prefix="bert2vec-") as tmp:
            name = "part"
            part_path = Path(tmp) / name
            with self._part_writer(item, part_path, record_keys) as writer, ErrorWriter(
                Path(tmp) / "errors.jsonl"
            ) as errors:
                if part_full is not None:
                    part_full[0] = lambda: writer.bytes_on_disk() + errors.bytes_on_disk() >= PART_MAX_BYTES
                counts = encode_items(tracked(), self.encoder, writer, errors, self.opts, on_window=on_window)
                if part_full is not None:
                    part_full[0] = lambda: False
                files = writer.close()
                error_files = errors.close()
            parts = []
            if counts.encoded:
                for f in files:
                    key = layout.part_key(k, s, attempt, f.name[len(name) :])
                    self.store.upload(str(f), layout.bucket, key)
                    parts.append(key)
            errors_key = None
            if counts.rejected:
                errors_key = layout.slice_errors_key(k, s, attempt)
                self.store.upload(str(error_files[0]), layout.bucket, errors_key)
        # The counts as stored (rounded seconds), so a commit sums the same numbers whether its
        # segments were read back from the progress record or are still in memory.
        return Segment(segment=s, attempt=attempt, counts=Counts.from_dict(counts.to_dict()), parts=parts, rows=writer.rows,
                       errors_key=errors_key, first_line=lines[0] if lines else None,
                       last_line=lines[-1] if lines else None)  # fmt: skip

