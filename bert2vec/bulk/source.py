"""Reading one version of an input object: sniffing, ranged reads, the items of one slice.

Every read names the version it plans for — ``If-Match: <etag>`` (and the ``VersionId`` when a
Batch Operations task gave one) — so an object overwritten mid-run fails the read with
``PreconditionFailed`` instead of mixing two versions' lines.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from itertools import islice
from typing import Any

from bert2vec.bulk.state import WorkItem
from bert2vec.bulk.store import S3Store
from bert2vec.files.line_ranges import first_line_numbers, iter_range_lines
from bert2vec.files.readers import InputFormat, Item, ReaderOptions, sniff_text

PROBE_BYTES = 64 * 1024  # first look for the line start of a slice
SNIFF_BYTES = 4096  # how much of an object's start decides "text, UTF-8?" before any work is planned


class InputObject:
    """One object version, read through the bulk path's store."""

    def __init__(self, store: S3Store, item: WorkItem, reader: ReaderOptions) -> None:
        self.store = store
        self.item = item
        self.reader = reader

    def _get(self, rng: str | None = None, *, original: bool = False) -> Any:
        staged = None if original else self.item.staged
        if staged:  # the run's decompressed copy (its own ETag: nothing else writes it)
            return self.store.open(staged["bucket"], staged["key"], if_match=staged["etag"], byte_range=rng)
        return self.store.open(self.item.bucket, self.item.key, if_match=f'"{self.item.etag}"',
                               version_id=self.item.version_id, byte_range=rng)  # fmt: skip

    def open(self, start: int = 0) -> Any:
        return self._get(f"bytes={start}-" if start > 0 else None)

    def sniff(self) -> str | None:
        """Why the object is not UTF-8 text (a UTF-16/32 byte-order mark, NUL bytes), or None.

        Reads at most the first few KiB (decompressed for ``.gz``); a corrupt gzip is left to the
        reader, which reports where reading stopped.
        """
        if self.item.size == 0:
            return None
        body = self._get(f"bytes=0-{SNIFF_BYTES * 16 - 1}", original=True).read()
        if self.item.gzip:
            try:
                body = zlib.decompressobj(wbits=31).decompress(body, SNIFF_BYTES)
            except zlib.error:
                return None
        return sniff_text(body[:SNIFF_BYTES])

    def stage(self, bucket: str, key: str) -> dict[str, Any]:
        """Decompress the ``.gz`` once into ``s3://bucket/key`` (streamed, multipart: bounded memory,
        no local disk); what its slices are then read from. A corrupt or truncated gzip raises
        here, before anything is planned on it."""
        body = self._get(original=True)
        state = {"gz": zlib.decompressobj(wbits=31)}

        class Plain:
            """The decompressed bytes, member after member (gzip allows several), as a stream."""

            def read(self, n: int = -1) -> bytes:
                while True:
                    gz = state["gz"]
                    if gz.eof and gz.unused_data:  # the next member starts in what was read
                        rest = gz.unused_data
                        state["gz"] = gz = zlib.decompressobj(wbits=31)
                        out = gz.decompress(rest)
                    else:
                        raw = body.read(1 << 20)
                        if not raw:
                            if not gz.eof:
                                raise EOFError("compressed file ended before the end-of-stream marker was reached")
                            return b""
                        if gz.eof:
                            state["gz"] = gz = zlib.decompressobj(wbits=31)
                        out = gz.decompress(raw)
                    if out:
                        return out

        self.store.put_stream(bucket, key, Plain(), "application/octet-stream")
        head = self.store.describe(bucket, key)
        return {"bucket": bucket, "key": key, "etag": head["ETag"], "size": int(head["ContentLength"])}

    def first_lines(self, offsets: list[int]) -> list[int]:
        """Line numbers of the first lines starting at or after each byte offset (one sequential pass)."""
        return first_line_numbers(self.open(), offsets)

    def items(self, k: int, resume: int, line: int, position: list[int]) -> Iterator[Item]:
        """The items of slice ``k`` from ``resume`` (a byte offset for the bytes unit, else the
        number of records of the slice already done). ``position[0]`` is kept at the resume point
        after the last item yielded, so the caller can save it at any moment; for records a second
        element says whether the stream ended with this slice."""
        item = self.item
        fmt = InputFormat(item.kind, item.gzip and not item.staged, self.reader)
        if item.unit == "records":
            stream = self.open()
            records = fmt.iter_items(stream, skip_records=k * item.slice_size + resume)
            position[0] = resume
            for it in islice(records, item.slice_size - resume):
                position[0] += 1
                yield it
            position.append(1 if next(records, None) is None else 0)
            return
        start = max(k * item.slice_size, resume)
        end = min((k + 1) * item.slice_size, item.read_size)
        position[0] = start
        if item.read_size == 0 or start >= end:
            return
        lead = self._line_start_at_or_after(start, end)
        if lead is None:  # no line starts in [start, end): a long line from an earlier slice covers it
            position[0] = end
            return
        stream = self.open(max(lead - 1, 0))
        try:
            for number, raw, after in iter_range_lines(
                stream, start=lead, end=end, first_line=line, stream_offset=max(lead - 1, 0),
                max_line_bytes=self.reader.max_line_bytes,
            ):  # fmt: skip
                position[0] = after
                yield fmt.parse_line(raw, number)  # rejects over-long lines itself
        finally:
            stream.close()
        position[0] = end

    def _line_start_at_or_after(self, start: int, end: int) -> int | None:
        """The first line start in ``[start, end)``, reading only that range (never a long line's tail).

        A small probe first (a line usually ends within a few KiB), then the rest of the range.
        """
        if start == 0:
            return 0
        lo, last = start - 1, end - 2  # a "\n" at ``last`` starts a line at end - 1, the range's last byte
        probe = PROBE_BYTES
        while lo <= last:
            hi = min(lo + probe - 1, last)
            nl = self._get(f"bytes={lo}-{hi}").read().find(b"\n")
            if nl >= 0:
                return lo + nl + 1
            lo, probe = hi + 1, end  # the probe missed: the rest of the range in one request
        return None
