"""Reading a binary stream as whole lines, and in byte ranges that split it into shards.

The rules that make a ranged read exact, shared by the sequential and ranged paths (both go through
:func:`_split_lines`):

* a line is the bytes up to and including ``\\n``; a final line without ``\\n`` still counts, an
  empty object has no lines;
* a line belongs to the range that contains its *first* byte;
* a trailing ``\\r`` is dropped (CRLF files), and a UTF-8 BOM is dropped from the object's first line;
* at most ``max_line_bytes + 1`` bytes of a line are kept in memory, so a longer line is visible to
  the reader as too long (and rejected) without ever being held whole.

No formats here (that is :mod:`bert2vec.files.readers`), no S3: callers hand in binary streams
that only need ``read(n)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

BOM = b"\xef\xbb\xbf"
BLOCK_SIZE = 1 << 20  # 1 MiB reads: few syscalls / HTTP reads, small fixed memory
DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024


def _split_lines(stream: BinaryIO, block_size: int, limit: int) -> Iterator[tuple[bytes, int]]:
    """Yield ``(raw, nbytes)`` per line: ``raw`` without ``\\n`` (cut to ``limit + 1`` bytes), and the
    number of bytes the line occupies including its ``\\n`` — memory stays O(block + limit)."""
    keep = limit + 1
    pending = bytearray()  # kept prefix of a line that crosses a block boundary
    pending_len = 0  # that line's full length so far
    while True:
        block = stream.read(block_size)
        if not block:
            break
        pos = 0
        while True:
            nl = block.find(b"\n", pos)
            stop = len(block) if nl < 0 else nl
            if pending_len or nl < 0:
                room = keep - len(pending)
                if room > 0:
                    pending += block[pos : min(stop, pos + room)]
                pending_len += stop - pos
                if nl < 0:
                    break
                yield bytes(pending), pending_len + 1
                pending, pending_len = bytearray(), 0
            else:
                yield (block[pos:nl] if nl - pos <= keep else block[pos : pos + keep]), nl - pos + 1
            pos = nl + 1
    if pending_len:
        yield bytes(pending), pending_len


def _skip(stream: BinaryIO, count: int, block_size: int) -> None:
    while count > 0:
        got = stream.read(min(count, block_size))
        if not got:
            return
        count -= len(got)


def iter_range_lines(
    stream: BinaryIO,
    *,
    start: int,
    end: int | None,
    first_line: int,
    stream_offset: int,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    block_size: int = BLOCK_SIZE,
) -> Iterator[tuple[int, bytes, int]]:
    """Yield ``(line_number, raw, offset_after_line)`` for the lines whose first byte is in ``[start, end)``.

    ``stream`` produces the object's bytes from absolute offset ``stream_offset`` (normally
    ``max(start - 1, 0)``: the byte before ``start`` tells whether ``start`` begins a line; if it
    does not, that line belongs to the previous range and is skipped). Reading stops at the first
    line starting at or after ``end``, so an open-ended ranged GET is only read as far as needed.
    ``raw`` has no ``\\n`` and no trailing ``\\r``; the object's first line loses a UTF-8 BOM. A line
    longer than ``max_line_bytes`` is yielded cut to ``max_line_bytes + 1`` bytes (no ``\\r``/BOM
    stripping), so ``len(raw) > max_line_bytes`` marks it for rejection without holding it whole.
    ``offset_after_line`` is the absolute offset just past the line's ``\\n`` (or EOF).
    """
    if start < 0 or (end is not None and end < start):
        raise ValueError(f"invalid byte range [{start}, {end})")
    lead = max(start - 1, 0)
    if stream_offset > lead:
        raise ValueError(
            f"stream_offset {stream_offset} is past {lead}: cannot tell whether byte {start} starts a line"
        )
    if end is not None and start >= end:
        return
    _skip(stream, lead - stream_offset, block_size)
    pos = lead
    pieces = _split_lines(stream, block_size, max_line_bytes)
    if start > 0:
        # The piece starting at start-1 is either just "\n" (start begins a line) or the tail of a
        # line that began earlier; both belong to the previous range.
        skipped = next(pieces, None)
        if skipped is None:
            return
        pos += skipped[1]
    number = first_line
    for raw, nbytes in pieces:
        if end is not None and pos >= end:
            return
        if len(raw) <= max_line_bytes:
            if pos == 0 and raw.startswith(BOM):
                raw = raw[len(BOM) :]
            if raw.endswith(b"\r"):
                raw = raw[:-1]
        pos += nbytes
        yield number, raw, pos
        number += 1


def first_line_numbers(stream: BinaryIO, boundaries: list[int], *, block_size: int = BLOCK_SIZE) -> list[int]:
    """For each byte boundary, the 1-based number of the first line starting at or after it.

    One sequential pass, counting newlines in C (``bytes.count``) — no line is materialised. If no
    line starts at or after a boundary the answer is ``total_lines + 1``. Line starts are byte 0
    (for a non-empty object) and every byte after a ``\\n`` except past EOF — the same lines that
    :func:`iter_range_lines` yields, so shard numbering matches a sequential read exactly.
    """
    order = sorted(range(len(boundaries)), key=boundaries.__getitem__)
    if boundaries and boundaries[order[0]] < 0:
        raise ValueError("boundaries must be >= 0")
    result = [0] * len(boundaries)
    # answer(b) = 1 + (#line starts < b) = 1 + [b > 0 and size > 0] + newlines in data[0 : min(b-1, size-1)]
    k = 0  # boundaries answered so far (in ascending order)
    offset = 0  # absolute offset of the current block
    newlines = 0  # newlines in data[0:offset]
    last = b""
    while k < len(order):
        block = stream.read(block_size)
        if not block:
            break
        bound_end = offset + len(block)
        while k < len(order):
            b = boundaries[order[k]]
            if b == 0:
                result[order[k]] = 1
            elif b - 1 < bound_end:  # b-1 <= size-1 is certain here
                result[order[k]] = 2 + newlines + block.count(b"\n", 0, b - 1 - offset)
            else:
                break
            k += 1
        newlines += block.count(b"\n")
        offset = bound_end
        last = block[-1:]
    if k == len(order):
        return result
    # EOF reached: every remaining boundary b has b - 1 >= size, i.e. it lies past the last line start.
    total = 0 if offset == 0 else 1 + newlines - (1 if last == b"\n" else 0)
    for i in order[k:]:
        result[i] = 1 if boundaries[i] == 0 else total + 1
    return result


def split_ranges(size: int, shard_bytes: int) -> list[tuple[int, int]]:
    """Cover ``[0, size)`` with ``ceil(size / shard_bytes)`` near-equal ranges, each at most ``shard_bytes``.

    Near-equal (rather than full shards plus a small remainder) keeps parallel shards finishing
    together. ``size == 0`` gives ``[(0, 0)]`` so an empty object still yields one (empty) shard.
    """
    if size < 0:
        raise ValueError("size must be >= 0")
    if shard_bytes < 1:
        raise ValueError("shard_bytes must be >= 1")
    if size == 0:
        return [(0, 0)]
    count = -(-size // shard_bytes)
    cuts = [i * size // count for i in range(count + 1)]
    return list(zip(cuts[:-1], cuts[1:], strict=True))
