"""Input readers: turn the bytes of a txt / jsonl / csv object (optionally gzipped) into items.

Every physical input unit becomes exactly one *item* — a :class:`Record` to encode, a
:class:`Rejected` with a human-readable reason, or a :class:`Blank` — so that counts add up
(``records + rejected + blank == items``) and a run can be resumed by skipping N items.

Uncompressed txt/jsonl objects can also be read in byte ranges (:func:`iter_range_lines`) so a
large object can be split into shards that are encoded in parallel; the line rules that make this
exact (which bytes are a line, which range owns it, CRLF and BOM, the memory bound) are
:mod:`bert2vec.files.line_ranges`', shared by the sequential and ranged paths.

Nothing here knows about S3: callers hand in binary streams (an S3 ``StreamingBody``, a local
file, ``io.BytesIO``) that only need ``read(n)``.
"""

from __future__ import annotations

import csv
import gzip
import json
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import BinaryIO, cast

from bert2vec.core import defaults
from bert2vec.files.line_ranges import DEFAULT_MAX_LINE_BYTES, iter_range_lines

_KINDS = ("txt", "jsonl", "csv")
SUPPORTED_SUFFIXES: tuple[str, ...] = tuple(f".{k}{gz}" for k in _KINDS for gz in ("", ".gz"))


@dataclass(frozen=True)
class Record:
    """A text to encode. ``line`` is the 1-based physical line where the record starts."""

    line: int
    id: str | int | None
    text: str


@dataclass(frozen=True)
class Rejected:
    """An input unit that cannot be encoded; ``reason`` says what is wrong so the user can fix it.

    ``id`` is the user-supplied id when one could still be read (jsonl id field, csv id column),
    else ``None`` — the line number already identifies the unit.
    """

    line: int
    reason: str
    id: str | int | None = None
    swallowed: int = 0  # further physical lines inside this unit (a CSV quote that never closed)


@dataclass(frozen=True)
class Blank:
    """An empty / whitespace-only unit: counted (so line accounting adds up) but not encoded."""

    line: int


Item = Record | Rejected | Blank


class UnsupportedFormatError(ValueError):
    """The object key has no suffix we can read; raised before any byte is fetched."""


class InputFormatError(ValueError):
    """A whole-file problem (e.g. a CSV header without the text column): no row can be read."""


@dataclass(frozen=True)
class ReaderOptions:
    """Per-job parsing options; defaults match the documented input contract."""

    text_field: str = defaults.TEXT_FIELD  # jsonl
    id_field: str = defaults.ID_FIELD  # jsonl
    csv_text_column: str = defaults.CSV_TEXT_COLUMN  # csv (a header row is required)
    csv_id_column: str = defaults.CSV_ID_COLUMN  # csv (the id column is optional)
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES  # a longer line is Rejected, never held in memory whole

    def __post_init__(self) -> None:
        if self.max_line_bytes < 1:
            raise ValueError("max_line_bytes must be >= 1")


# Byte-order marks of encodings we do not read: decoding them as UTF-8 gives NUL-laden garbage.
_FOREIGN_BOMS = (
    (b"\x00\x00\xfe\xff", "UTF-32 BE"),
    (b"\xff\xfe\x00\x00", "UTF-32 LE"),
    (b"\xfe\xff", "UTF-16 BE"),
    (b"\xff\xfe", "UTF-16 LE"),
)
_NOTHING_TO_ENCODE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Mn", "Me", "Zs", "Zl", "Zp"})


def sniff_text(head: bytes) -> str | None:
    """Why bytes at the start of an input are not UTF-8 text, or None.

    A UTF-16/32 byte-order mark, or NUL bytes (which UTF-8 text never contains, while UTF-16
    without a BOM and binary files do), reject the whole input with the reason, instead of
    "encoding" every line of garbage and reporting success.
    """
    for bom, name in _FOREIGN_BOMS:
        if head.startswith(bom):
            return f"the input is {name} text (byte-order mark {bom.hex(' ')}); re-encode it as UTF-8"
    nul = head.find(b"\x00")
    if nul >= 0:
        return (
            f"the input holds NUL bytes (first at byte {nul}): binary data or UTF-16 without a byte-order mark, "
            "not UTF-8 text"
        )
    return None


def has_nothing_to_encode(text: str) -> bool:
    """True when no character would become a wordpiece: only control, format (zero-width),
    combining or space characters — BERT would see just ``[CLS] [SEP]``."""
    return all(unicodedata.category(ch) in _NOTHING_TO_ENCODE for ch in text)


def _too_long(limit: int) -> str:
    return f"line is longer than max_line_bytes ({limit} bytes)"


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _has_surrogate(text: str) -> bool:
    """JSON ``\\ud800`` escapes decode to lone surrogates, which cannot be UTF-8 encoded later."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _normalize_id(value: object) -> str | int | None:
    """str and int ids are kept; null means "no id"; anything else becomes its compact JSON text.

    JSON text (not Python ``str()``) so ``true`` / ``1.5`` / ``[1,2]`` look the way the user wrote them.
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class _Gunzipped:
    """A gzip stream read with ``read1``: each read returns what the decompressor has so far, so
    a truncated or corrupt tail raises only after every line before it has been handed out (a
    plain ``read(1 MiB)`` would drop up to a megabyte of good lines along with the error)."""

    def __init__(self, stream: BinaryIO) -> None:
        self._gz = gzip.GzipFile(fileobj=stream, mode="rb")

    def read(self, n: int = -1) -> bytes:
        return self._gz.read1(n)


@dataclass(frozen=True)
class InputFormat:
    """How to read one object: its kind, whether it is gzipped, and the parsing options."""

    kind: str  # "txt" | "jsonl" | "csv"
    gzip: bool
    options: ReaderOptions = field(default_factory=ReaderOptions)

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"unknown input kind {self.kind!r}; expected one of {', '.join(_KINDS)}")

    @classmethod
    def from_key(cls, key: str, options: ReaderOptions | None = None) -> InputFormat:
        """Pick the format from the key's suffix (case-insensitive), so users need no extra config."""
        lower = key.lower()
        compressed = lower.endswith(".gz")
        stem = lower[: -len(".gz")] if compressed else lower
        for kind in _KINDS:
            if stem.endswith("." + kind):
                return cls(kind=kind, gzip=compressed, options=options or ReaderOptions())
        raise UnsupportedFormatError(
            f"unsupported input {key!r}: the key must end with one of {', '.join(SUPPORTED_SUFFIXES)} (case-insensitive)"
        )

    @property
    def shardable(self) -> bool:
        """Only uncompressed line formats can be split at byte offsets (gzip and csv rows cannot)."""
        return not self.gzip and self.kind in ("txt", "jsonl")

    # -- one line ---------------------------------------------------------------------------

    def parse_line(self, raw: bytes, line: int) -> Item:
        """Classify one txt/jsonl line (``raw`` without its ``\\n``) — the unit both read paths share."""
        if self.kind == "csv":
            raise ValueError("parse_line is for txt/jsonl: a CSV row may span lines, use iter_items")
        limit = self.options.max_line_bytes
        if len(raw) > limit:
            return Rejected(line, _too_long(limit))
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return Rejected(line, f"invalid UTF-8 at byte {exc.start}")
        if not text.strip():
            return Blank(line)
        if self.kind == "txt":
            if has_nothing_to_encode(text):
                return Rejected(line, "no encodable characters (only control, zero-width or combining characters)")
            return Record(line, line, text)
        return self._parse_json(text, line)

    def _parse_json(self, text: str, line: int) -> Item:
        opts = self.options
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            return Rejected(line, f"invalid JSON: {exc.msg} (column {exc.colno})")
        except RecursionError:
            return Rejected(line, "invalid JSON: nested too deeply")
        if not isinstance(obj, dict):
            return Rejected(line, f"not a JSON object (got {_type_name(obj)})")
        ident = _normalize_id(obj.get(opts.id_field))
        if isinstance(ident, str) and _has_surrogate(ident):
            return Rejected(line, f"field {opts.id_field!r} contains an unpaired surrogate")
        if opts.text_field not in obj:
            return Rejected(line, f"missing field {opts.text_field!r}", ident)
        value = obj[opts.text_field]
        if not isinstance(value, str):
            return Rejected(line, f"field {opts.text_field!r} is not a string (got {_type_name(value)})", ident)
        if not value.strip():
            return Rejected(line, "empty text" if not value else "empty text (whitespace only)", ident)
        if _has_surrogate(value):
            return Rejected(line, f"field {opts.text_field!r} contains an unpaired surrogate", ident)
        if has_nothing_to_encode(value):
            return Rejected(line, "no encodable characters (only control, zero-width or combining characters)", ident)
        return Record(line, line if ident is None else ident, value)

    # -- whole objects ----------------------------------------------------------------------

    def iter_items(self, stream: BinaryIO, *, skip_records: int = 0) -> Iterator[Item]:
        """Read a whole object as stored (gunzipping it if needed), one item per line / CSV row.

        ``skip_records`` drops the first N items of any type unparsed — a resumed run continues
        exactly where the previous one stopped because every unit counts as one item.
        """
        if skip_records < 0:
            raise ValueError("skip_records must be >= 0")
        source = cast(BinaryIO, _Gunzipped(stream)) if self.gzip else stream
        if self.kind == "csv":
            yield from islice(self._iter_csv(source), skip_records, None)
            return
        lines = iter_range_lines(
            source, start=0, end=None, first_line=1, stream_offset=0, max_line_bytes=self.options.max_line_bytes
        )
        for line, raw, _ in islice(lines, skip_records, None):
            yield self.parse_line(raw, line)

    def _iter_csv(self, source: BinaryIO) -> Iterator[Item]:
        """CSV rows as items; decoding is per physical line so one bad line rejects one row only."""
        opts = self.options
        limit = opts.max_line_bytes
        # The csv module's per-field cap is process-global; raise it (never lower it) so a long but
        # legal text is not an error, while an unclosed quote still stops growing at ~max_line_bytes.
        if csv.field_size_limit() < limit:
            csv.field_size_limit(limit)
        problems: dict[int, tuple[int, str]] = {}  # physical line -> (byte offset or -1, reason)

        def lines() -> Iterator[str]:
            for number, raw, _ in iter_range_lines(
                source, start=0, end=None, first_line=1, stream_offset=0, max_line_bytes=limit
            ):
                if len(raw) > limit:
                    problems[number] = (-1, _too_long(limit))
                    raw = raw[:limit]
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    problems.setdefault(number, (exc.start, "invalid UTF-8"))
                    text = raw.decode("utf-8", "replace")
                yield text + "\n"  # quoted newlines stay inside their field; CRLF is normalised to LF

        # strict: a quote that never closes is an error at end of file, not one giant last field.
        reader = csv.reader(lines(), strict=True)
        consumed = 0  # physical lines the csv reader has taken so far
        header: list[str] | None = None
        text_col = id_col = -1
        while True:
            error: str | None = None
            try:
                row: list[str] = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                row, error = [], f"invalid CSV: {exc}"
            start, consumed = consumed + 1, reader.line_num
            if error and consumed > start:
                error += f" (the record starting on line {start} runs to line {consumed}; those lines are not rows)"
            bad = self._csv_problem(problems, start)
            problems.clear()
            blank = error is None and all(not cell.strip() for cell in row)

            if header is None:
                if blank and bad is None:
                    continue  # blank lines before the header are not rows
                if error or bad:
                    raise InputFormatError(f"cannot read the CSV header on line {start}: {error or bad}")
                header = [cell.strip() for cell in row]
                if opts.csv_text_column not in header:
                    # Name the missing column, never the cells: a file without a header row would
                    # have its first record (names, addresses) copied into the manifest and logs.
                    raise InputFormatError(
                        f"CSV header (line {start}) has no column {opts.csv_text_column!r} among its {len(header)} "
                        "columns. A header row naming the text column is required."
                    )
                text_col = header.index(opts.csv_text_column)
                id_col = header.index(opts.csv_id_column) if opts.csv_id_column in header else -1
                continue

            if error:
                yield Rejected(start, error, swallowed=consumed - start)
            elif bad:
                yield Rejected(start, bad)
            elif blank:
                yield Blank(start)
            elif len(row) != len(header):
                yield Rejected(start, f"CSV row has {len(row)} fields, header has {len(header)}")
            else:
                ident: str | int | None = row[id_col] if id_col >= 0 and row[id_col] != "" else None
                text = row[text_col]
                if not text.strip():
                    yield Rejected(start, "empty text" if not text else "empty text (whitespace only)", ident)
                elif has_nothing_to_encode(text):
                    yield Rejected(start, "no encodable characters (only control, zero-width or combining characters)", ident)
                else:
                    yield Record(start, start if ident is None else ident, text)

    @staticmethod
    def _csv_problem(problems: dict[int, tuple[int, str]], start: int) -> str | None:
        """The first bad physical line of the row just read (``problems`` holds only this row's lines)."""
        if not problems:
            return None
        number = min(problems)
        offset, reason = problems[number]
        where = "" if offset < 0 else f" at byte {offset}"
        of_line = "" if number == start else f" of line {number}"
        return f"{reason}{where}{of_line}"
