"""Output writers: stream vector rows to jsonl / parquet / npy part files, and rejections to errors.jsonl.

Shared rules, so the S3 path and the local CLI produce identical files:

* Memory is bounded by construction: every ``write()`` batch goes to disk before it returns
  (parquet buffers at most one row group, ~``ROW_GROUP_BYTES`` of vectors), so a part of any
  length never sits in memory.
* Files are written under a ``.partial`` name and renamed into place by ``close()``: a file with
  the final name is always complete, and ``abort()`` (Ctrl-C, failures, or leaving a ``with``
  block on an exception) removes everything the writer created.
* Vectors are float32 and survive every format bit-exactly (jsonl uses the shortest decimal that
  round-trips float32).
* Chunk rows (``OVERLONG=chunk`` with ``CHUNK_ROWS=1``): one row per window of a line, which also
  carries ``chunk`` (the window's number in its line, from 0) and ``start``/``end`` (its span in
  the line's text, character offsets); the same line's windows are consecutive.
* ``path`` may be given with the format's suffix (``out.jsonl``) or as a bare base name
  (``part-000001``), in which case the suffix is appended; either way the files written are
  ``base + s`` for ``s`` in :func:`part_suffixes`.

pyarrow is imported only by the parquet writer, so jsonl/npy output works without it.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import numpy as np

from bert2vec.files.readers import Rejected

FORMATS = ("jsonl", "parquet", "npy")  # files; the S3 path can also write to an index (bert2vec.bulk.vectors)
_SUFFIXES: dict[str, tuple[str, ...]] = {
    "jsonl": (".jsonl",),
    "parquet": (".parquet",),
    "npy": (".npy", ".ids.jsonl"),
    "s3vectors": (".keys.jsonl",),
}
ROW_GROUP_BYTES = 32 * 1024 * 1024  # parquet row-group target: big enough for fast scans, small enough for Lambda
_NPY_HEADER_BYTES = 128  # fixed .npy header size, reserved up front so the row count can be filled in at close
_PARTIAL = ".partial"


@dataclass(frozen=True)
class OutputRow:
    """One encoded record: its id and input line (so outputs join back to inputs) and a float32 [D] vector."""

    id: str | int | None
    line: int
    vector: np.ndarray
    text: str | None = None  # the input text (a chunk row: the window's span), for sinks that store it
    chunk: int | None = None  # chunk rows: the window's number in its line, and its character span
    start: int | None = None
    end: int | None = None


def _chunk_fields(row: OutputRow) -> str:
    """``,"chunk":k,"start":s,"end":e`` for a chunk row (JSON text), else nothing."""
    return "" if row.chunk is None else f',"chunk":{row.chunk},"start":{row.start},"end":{row.end}'


def part_suffixes(fmt: str) -> list[str]:
    """The suffixes of the files one part consists of, e.g. ``[".npy", ".ids.jsonl"]``."""
    _check_format(fmt)
    return list(_SUFFIXES[fmt])


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; expected one of {', '.join(FORMATS)}")


def _with_suffix(path: Path, suffix: str) -> Path:
    """``path`` itself if it already ends with ``suffix``, else ``path`` + ``suffix`` (never replaces)."""
    return path if path.name.lower().endswith(suffix) else path.with_name(path.name + suffix)


def _json_line(obj: Any) -> bytes:
    """Compact UTF-8 JSON plus newline; ids with lone surrogates fall back to ASCII escapes (still valid JSON)."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode("utf-8") + b"\n"
    except UnicodeEncodeError:
        return json.dumps(obj, separators=(",", ":")).encode("ascii") + b"\n"


def _json_value(value: str | int | None) -> str:
    text = json.dumps(value, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value)
    return text


_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}  # what Python's json reads back


def _float32_texts(matrix: np.ndarray) -> list[list[str]]:
    """Shortest decimal strings that round-trip float32, formatted in C by numpy (no per-float Python)."""
    texts: list[list[str]] = matrix.astype(str).tolist()
    if not np.isfinite(matrix).all():
        texts = [[_NON_FINITE.get(t, t) for t in row] for row in texts]
    return texts


class _StagedFiles:
    """Files written under temporary names and renamed into place on close; the common lifecycle."""

    def __init__(self, targets: Sequence[Path]) -> None:
        self._targets = list(targets)
        self._temps = [t.with_name(t.name + _PARTIAL) for t in self._targets]
        self._handles: list[IO[bytes]] = []
        self._rows = 0
        self._state = "open"  # -> "closed" | "aborted"

    @property
    def rows(self) -> int:
        """Rows written so far (the engine reports it and skips empty uploads)."""
        return self._rows

    @property
    def paths(self) -> list[Path]:
        """The final file names (they exist only after a successful ``close()``)."""
        return list(self._targets)

    def bytes_on_disk(self) -> int:
        """What the files take on local disk so far (the bound on a worker's /tmp is checked with it)."""
        written = {h.name: h.tell() for h in self._handles if not h.closed}  # buffered bytes included
        return sum(written.get(str(t), os.path.getsize(t) if t.exists() else 0) for t in self._temps)

    def _open_temp(self, index: int) -> IO[bytes]:
        handle = open(self._temps[index], "wb")  # closed by _finish / _release
        self._handles.append(handle)
        return handle

    def _check_open(self) -> None:
        if self._state != "open":
            raise ValueError(f"writer is {self._state}")

    def _finish(self) -> None:
        """Format-specific completion (headers, footers); called once by ``close()``."""
        for handle in self._handles:
            handle.close()

    def _release(self) -> None:
        """Drop handles without completing the files (abort path); never raises."""
        for handle in self._handles:
            try:
                handle.close()
            except Exception:  # noqa: BLE001 - best effort: we are discarding this file anyway
                pass

    def close(self) -> list[Path]:
        """Complete the files and move them to their final names; idempotent (returns the same list)."""
        if self._state == "closed":
            return self.paths
        self._check_open()
        try:
            self._finish()
            for temp, target in zip(self._temps, self._targets, strict=True):
                os.replace(temp, target)
        except BaseException:
            self._discard(targets=True)
            raise
        self._state = "closed"
        return self.paths

    def abort(self) -> None:
        """Remove partial files (Ctrl-C, failures). A part already closed is complete and is kept."""
        if self._state == "open":
            self._discard(targets=False)

    def _discard(self, *, targets: bool) -> None:
        self._state = "aborted"
        self._release()
        for path in self._temps + (self._targets if targets else []):
            path.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """An exception aborts (no half-written part survives); a normal exit closes."""
        if exc_type is not None:
            self.abort()
        else:
            self.close()


class PartWriter(_StagedFiles):
    """Base for vector part writers: validates rows into one float32 [N, D] matrix per batch."""

    format = ""

    def __init__(self, path: Path, dim: int, *, chunk_rows: bool = False) -> None:
        if dim < 1:
            raise ValueError(f"vector dimension must be >= 1, got {dim}")
        base = _with_suffix(Path(path), _SUFFIXES[self.format][0])
        stem = base.name[: -len(_SUFFIXES[self.format][0])]
        super().__init__([base.with_name(stem + s) for s in _SUFFIXES[self.format]])
        self.dim = dim
        self.chunk_rows = chunk_rows  # columnar formats need to know up front (parquet's schema)

    def write(self, rows: Sequence[OutputRow]) -> dict[int, str]:
        """Append rows (in input order) to the part; the batch is on disk (or in one row group) on return.

        Returns {line: reason} for lines the sink refused (an index's per-vector limits); files refuse none.
        """
        self._check_open()
        if not rows:
            return {}
        matrix = np.empty((len(rows), self.dim), dtype=np.float32)
        for i, row in enumerate(rows):
            vector = np.asarray(row.vector)
            if vector.shape != (self.dim,):
                raise ValueError(f"line {row.line}: vector has shape {vector.shape}, expected ({self.dim},)")
            matrix[i] = vector  # float32 stays bit-exact; other float dtypes are cast
        refused = self._write(rows, matrix) or {}
        self._rows += sum(1 for row in rows if row.line not in refused)
        return refused

    def _write(self, rows: Sequence[OutputRow], matrix: np.ndarray) -> dict[int, str] | None:
        raise NotImplementedError


class JsonlPartWriter(PartWriter):
    """One ``{"id", "line", "vector"}`` object per line (chunk rows: ``{"id", "line", "chunk",
    "start", "end", "vector"}`` per window): universal, streamable, greppable."""

    format = "jsonl"

    def __init__(self, path: Path, dim: int, *, chunk_rows: bool = False) -> None:
        super().__init__(path, dim, chunk_rows=chunk_rows)
        self._out = self._open_temp(0)

    def _write(self, rows: Sequence[OutputRow], matrix: np.ndarray) -> None:
        lines = [
            f'{{"id":{_json_value(row.id)},"line":{row.line}{_chunk_fields(row)},"vector":[{",".join(floats)}]}}\n'
            for row, floats in zip(rows, _float32_texts(matrix), strict=True)
        ]
        self._out.write("".join(lines).encode("utf-8"))


class ParquetPartWriter(PartWriter):
    """Columns ``id`` (string), ``line`` (int64), ``vector`` (fixed-size list of float32, length D).

    ``id`` is always a string column — parquet columns have one type, and users mix numeric and
    string ids — so int ids are stored as their decimal text (``7`` -> ``"7"``); a missing id is null.
    Chunk rows add ``chunk``, ``start``, ``end`` (int32) between ``line`` and ``vector``.
    Rows are buffered to ~``ROW_GROUP_BYTES`` per row group (tiny groups make scans slow), which is
    the only memory held beyond one batch.
    """

    format = "parquet"

    def __init__(
        self, path: Path, dim: int, *, row_group_bytes: int = ROW_GROUP_BYTES, chunk_rows: bool = False
    ) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        super().__init__(path, dim, chunk_rows=chunk_rows)
        self._pa = pa
        chunk_fields = [pa.field(n, pa.int32(), nullable=False) for n in ("chunk", "start", "end")]
        self.schema = pa.schema(
            [
                pa.field("id", pa.string()),
                pa.field("line", pa.int64(), nullable=False),
                *(chunk_fields if chunk_rows else []),
                pa.field("vector", pa.list_(pa.float32(), dim), nullable=False),
            ]
        )
        self._group_rows = max(1, row_group_bytes // (4 * dim))
        self._buffer: list[tuple[list[str | None], list[int], np.ndarray, list[tuple[int, int, int]]]] = []
        self._buffered = 0
        self._writer = pq.ParquetWriter(str(self._temps[0]), self.schema)

    def _write(self, rows: Sequence[OutputRow], matrix: np.ndarray) -> None:
        ids = [None if row.id is None else str(row.id) for row in rows]
        spans = [(row.chunk, row.start, row.end) for row in rows] if self.chunk_rows else []
        if self.chunk_rows and any(c is None for c, _, _ in spans):
            raise ValueError("a chunk-rows parquet part needs chunk, start and end on every row")
        self._buffer.append((ids, [row.line for row in rows], matrix, spans))  # type: ignore[arg-type]
        self._buffered += len(rows)
        if self._buffered >= self._group_rows:
            self._flush()

    def bytes_on_disk(self) -> int:
        """The row groups written, plus the rows buffered for the next one (they land in this file)."""
        return super().bytes_on_disk() + self._buffered * (4 * self.dim + 32)

    def _flush(self) -> None:
        if not self._buffered:
            return
        pa = self._pa
        ids = [i for chunk in self._buffer for i in chunk[0]]
        lines = [n for chunk in self._buffer for n in chunk[1]]
        matrix = np.concatenate([chunk[2] for chunk in self._buffer])
        spans = [span for chunk in self._buffer for span in chunk[3]]
        self._buffer, self._buffered = [], 0
        vectors = pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1), type=pa.float32()), self.dim)
        span_columns = [pa.array([s[j] for s in spans], type=pa.int32()) for j in range(3)] if self.chunk_rows else []
        table = pa.Table.from_arrays(
            [pa.array(ids, type=pa.string()), pa.array(lines, type=pa.int64()), *span_columns, vectors],
            schema=self.schema,
        )
        self._writer.write_table(table, row_group_size=len(lines))

    def _finish(self) -> None:
        self._flush()
        self._writer.close()

    def _release(self) -> None:
        self._buffer, self._buffered = [], 0
        try:
            self._writer.close()
        except Exception:  # noqa: BLE001 - best effort: the file is being discarded
            pass


def _npy_header(rows: int, dim: int) -> bytes:
    """A version-1.0 .npy header for a little-endian float32 C-order [rows, dim] array, padded to a fixed size.

    Fixed size lets the header be reserved before the row count is known and rewritten in place
    at close, so the data is streamed once and never copied.
    """
    desc = repr({"descr": "<f4", "fortran_order": False, "shape": (rows, dim)}).encode("latin1")
    prefix = np.lib.format.magic(1, 0)
    room = _NPY_HEADER_BYTES - len(prefix) - 2  # after the 2-byte little-endian header length
    if len(desc) + 1 > room:
        raise ValueError(f"shape ({rows}, {dim}) does not fit the .npy header")
    return prefix + struct.pack("<H", room) + desc.ljust(room - 1) + b"\n"


class NpyPartWriter(PartWriter):
    """``<base>.npy`` (float32 [N, D], ``np.load``/``mmap_mode="r"`` friendly) + ``<base>.ids.jsonl``
    (``{"id", "line"}`` per row, + ``"chunk", "start", "end"`` for chunk rows).

    Vectors are appended raw after a reserved header, which is filled in with N at close.
    """

    format = "npy"

    def __init__(self, path: Path, dim: int, *, chunk_rows: bool = False) -> None:
        super().__init__(path, dim, chunk_rows=chunk_rows)
        self._data = self._open_temp(0)
        self._ids = self._open_temp(1)
        self._data.write(_npy_header(0, dim))

    def _write(self, rows: Sequence[OutputRow], matrix: np.ndarray) -> None:
        self._data.write(np.ascontiguousarray(matrix, dtype="<f4").tobytes())
        self._ids.write(b"".join(_json_line(_ids_entry(row)) for row in rows))

    def _finish(self) -> None:
        self._data.seek(0)
        self._data.write(_npy_header(self._rows, self.dim))
        super()._finish()


def _ids_entry(row: OutputRow) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": row.id, "line": row.line}
    if row.chunk is not None:
        entry.update(chunk=row.chunk, start=row.start, end=row.end)
    return entry


_WRITERS: dict[str, type[PartWriter]] = {"jsonl": JsonlPartWriter, "parquet": ParquetPartWriter, "npy": NpyPartWriter}


def open_part_writer(fmt: str, path: Path, dim: int, *, chunk_rows: bool = False) -> PartWriter:
    """A writer for ``fmt`` (one of :data:`FORMATS`) of ``dim``-dimensional vectors at ``path``;
    ``chunk_rows``: rows are windows carrying ``chunk``/``start``/``end``."""
    _check_format(fmt)
    return _WRITERS[fmt](path, dim, chunk_rows=chunk_rows)


class ErrorWriter(_StagedFiles):
    """``errors.jsonl``: one ``{"line", "id", "reason"}`` per Rejected, so users can fix and resubmit lines.

    The file is always created (empty when nothing was rejected); callers skip uploading it when ``rows == 0``.
    """

    def __init__(self, path: Path) -> None:
        super().__init__([Path(path)])
        self._out = self._open_temp(0)

    def write(self, items: Sequence[Rejected]) -> None:
        """Append rejections (the caller sorts them by line); on disk when this returns."""
        self._check_open()
        self._out.write(b"".join(_json_line({"line": r.line, "id": r.id, "reason": r.reason}) for r in items))
        self._rows += len(items)
