"""Bulk readers on in-memory bytes: every format, the per-line rejection rules, and exact sharding.

The property test is the contract the S3 fan-out relies on: reading an object as byte-range
shards yields exactly the lines (numbers and bytes) of one sequential pass, for any shard size.
"""

from __future__ import annotations

import gzip
import io
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bert2vec.files.line_ranges import first_line_numbers, iter_range_lines, split_ranges
from bert2vec.files.readers import (
    Blank,
    InputFormat,
    InputFormatError,
    Item,
    ReaderOptions,
    Record,
    Rejected,
    UnsupportedFormatError,
)

BOM = b"\xef\xbb\xbf"


def items(key: str, data: bytes, options: ReaderOptions | None = None, **kw: int) -> list[Item]:
    fmt = InputFormat.from_key(key, options)
    if fmt.gzip:
        data = gzip.compress(data)
    return list(fmt.iter_items(io.BytesIO(data), **kw))


def range_lines(
    data: bytes, start: int, end: int | None, first_line: int = 1, **kw: int
) -> list[tuple[int, bytes, int]]:
    lead = max(start - 1, 0)
    return list(
        iter_range_lines(io.BytesIO(data[lead:]), start=start, end=end, first_line=first_line, stream_offset=lead, **kw)
    )


# ---- format detection ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "kind", "gz", "shardable"),
    [
        ("in/a.txt", "txt", False, True),
        ("in/a.TXT.GZ", "txt", True, False),
        ("a.b.jsonl", "jsonl", False, True),
        ("x/y.JsonL.gz", "jsonl", True, False),
        ("data.csv", "csv", False, False),
        ("data.csv.gz", "csv", True, False),
    ],
)
def test_format_from_key(key: str, kind: str, gz: bool, shardable: bool) -> None:
    fmt = InputFormat.from_key(key)
    assert (fmt.kind, fmt.gzip, fmt.shardable) == (kind, gz, shardable)
    assert fmt.options == ReaderOptions()


@pytest.mark.parametrize("key", ["a.json", "a.gz", "a.txt.zip", "README", "a.parquet", "txt"])
def test_unsupported_key_names_key_and_suffixes(key: str) -> None:
    with pytest.raises(UnsupportedFormatError) as info:
        InputFormat.from_key(key)
    assert isinstance(info.value, ValueError)
    assert repr(key) in str(info.value)
    for suffix in (".txt", ".jsonl", ".csv", ".csv.gz"):
        assert suffix in str(info.value)


def test_options_are_carried() -> None:
    opts = ReaderOptions(text_field="body")
    assert InputFormat.from_key("a.jsonl", opts).options is opts


# ---- txt -------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["a.txt", "a.txt.gz"])
def test_txt_bom_crlf_blank_and_unstripped(key: str) -> None:
    data = BOM + b"first\r\n\r\n   \r\n  padded text \r\nno newline at end"
    assert items(key, data) == [
        Record(1, 1, "first"),
        Blank(2),
        Blank(3),
        Record(4, 4, "  padded text "),
        Record(5, 5, "no newline at end"),
    ]


def test_txt_invalid_utf8_rejects_the_line_and_continues() -> None:
    data = "ok é\n".encode() + b"bad \xff here\n" + b"\xc3\n" + "still ok ✓\n".encode()
    assert items("a.txt", data) == [
        Record(1, 1, "ok é"),
        Rejected(2, "invalid UTF-8 at byte 4"),
        Rejected(3, "invalid UTF-8 at byte 0"),
        Record(4, 4, "still ok ✓"),
    ]


def test_trailing_newline_makes_no_extra_line() -> None:
    assert items("a.txt", b"a\n") == [Record(1, 1, "a")]
    assert items("a.txt", b"a\n\n") == [Record(1, 1, "a"), Blank(2)]
    assert items("a.txt", b"\n") == [Blank(1)]


@pytest.mark.parametrize("key", ["a.txt", "a.txt.gz", "a.jsonl", "a.jsonl.gz", "a.csv", "a.csv.gz"])
def test_zero_byte_object_has_no_items(key: str) -> None:
    assert items(key, b"") == []


def test_parse_line_strips_cr_and_checks_length() -> None:
    fmt = InputFormat.from_key("a.txt", ReaderOptions(max_line_bytes=5))
    assert fmt.parse_line(b"hell\r", 3) == Record(3, 3, "hell")  # the limit counts the raw bytes, CR included
    assert fmt.parse_line(b"hello!", 4) == Rejected(4, "line is longer than max_line_bytes (5 bytes)")
    with pytest.raises(ValueError, match="CSV"):
        InputFormat.from_key("a.csv").parse_line(b"x", 1)


# ---- jsonl -----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["a.jsonl", "a.jsonl.gz"])
def test_jsonl_records_ids_and_rejections(key: str) -> None:
    lines = [
        '{"id": "doc-1", "text": "hello"}',
        '{"id": 42, "text": "int id"}',
        '{"text": "no id"}',
        '{"id": null, "text": "null id"}',
        '{"id": 1.5, "text": "float id"}',
        '{"id": true, "text": "bool id"}',
        "",
        "   ",
        '{"text": ',
        "[1, 2]",
        '{"id": "x", "body": "wrong field"}',
        '{"id": 7, "text": 5}',
        '{"text": ""}',
        '{"text": "  "}',
        '{"text": "\\ud800 lone surrogate"}',
        '  {"text": "spaces around"}  ',
    ]
    data = BOM + "\r\n".join(lines).encode()
    assert items(key, data) == [
        Record(1, "doc-1", "hello"),
        Record(2, 42, "int id"),
        Record(3, 3, "no id"),
        Record(4, 4, "null id"),
        Record(5, "1.5", "float id"),
        Record(6, "true", "bool id"),
        Blank(7),
        Blank(8),
        Rejected(9, "invalid JSON: Expecting value (column 10)"),
        Rejected(10, "not a JSON object (got list)"),
        Rejected(11, "missing field 'text'", "x"),
        Rejected(12, "field 'text' is not a string (got int)", 7),
        Rejected(13, "empty text"),
        Rejected(14, "empty text (whitespace only)"),
        Rejected(15, "field 'text' contains an unpaired surrogate"),
        Record(16, 16, "spaces around"),
    ]


def test_jsonl_custom_fields_and_invalid_utf8() -> None:
    opts = ReaderOptions(text_field="body", id_field="key")
    data = b'{"key": "a", "body": "x", "text": "ignored"}\n{"key": "b", "body": "caf\xe9"}\n{"body": null}\n'
    assert items("a.jsonl", data, opts) == [
        Record(1, "a", "x"),
        Rejected(2, "invalid UTF-8 at byte 25"),
        Rejected(3, "field 'body' is not a string (got null)"),
    ]


# ---- csv -------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["a.csv", "a.csv.gz"])
def test_csv_quoting_multiline_rows_and_line_numbers(key: str) -> None:
    data = (
        BOM + b"id,text,lang\r\n"
        b'1,"hello, world",en\r\n'
        b'2,"two\r\nline ""quoted"" text",en\r\n'
        b"\r\n"
        b"3,,en\r\n"
        b"4,only two\r\n"
        b",,\r\n"
        b'5,"three\nphysical\nlines",fr\r\n'
        b"6,bad \xff byte,en\r\n"
        b',"no id",de\r\n'
        b"7,  ,en\r\n"
        b"8,last,xx"
    )
    assert items(key, data) == [
        Record(2, "1", "hello, world"),
        Record(3, "2", 'two\nline "quoted" text'),
        Blank(5),
        Rejected(6, "empty text", "3"),
        Rejected(7, "CSV row has 2 fields, header has 3"),
        Blank(8),
        Record(9, "5", "three\nphysical\nlines"),
        Rejected(12, "invalid UTF-8 at byte 6"),
        Record(13, 13, "no id"),
        Rejected(14, "empty text (whitespace only)", "7"),
        Record(15, "8", "last"),
    ]


def test_csv_invalid_utf8_on_a_continuation_line() -> None:
    data = b'text\n"first\nbad\xfe"\nok\n'
    assert items("a.csv", data) == [Rejected(2, "invalid UTF-8 at byte 3 of line 3"), Record(4, 4, "ok")]


def test_csv_without_id_column_and_custom_columns() -> None:
    opts = ReaderOptions(csv_text_column="body", csv_id_column="key")
    assert items("a.csv", b"body\nx\ny\n", opts) == [Record(2, 2, "x"), Record(3, 3, "y")]
    assert items("a.csv", b" key , body \nk1,x\n", opts) == [Record(2, "k1", "x")]


def test_csv_blank_lines_before_header_are_not_rows() -> None:
    assert items("a.csv", b"\n\ntext\nx\n") == [Record(4, 4, "x")]
    assert items("a.csv", b"\n  \n") == []


@pytest.mark.parametrize(
    ("data", "found", "cells"),
    [
        (b"hello world\nsecond\n", "among its 1 columns", ["hello world"]),  # no header: the first row is taken as one
        (b"id,body\n1,x\n", "among its 2 columns", ["body"]),
        (b"\xefid,text\n", None, []),
    ],
)
def test_csv_header_problems_are_whole_file_errors(data: bytes, found: str | None, cells: list[str]) -> None:
    """The missing column is named and the others counted, never quoted: a file without a header
    row would have its first record copied into the manifest."""
    with pytest.raises(InputFormatError) as info:
        items("a.csv", data)
    assert isinstance(info.value, ValueError)
    if found is None:
        assert "invalid UTF-8" in str(info.value)
    else:
        assert "'text'" in str(info.value) and found in str(info.value)
        assert not any(cell in str(info.value) for cell in cells)


def test_csv_long_line_is_rejected_and_file_continues() -> None:
    opts = ReaderOptions(max_line_bytes=16)
    data = b"text\n" + b"x" * 100 + b"\nshort\n"
    assert items("a.csv", data, opts) == [
        Rejected(2, "line is longer than max_line_bytes (16 bytes)"),
        Record(3, 3, "short"),
    ]


def test_csv_malformed_row_is_rejected() -> None:
    got = items("a.csv", b"text,id\nab\rcd,1\nok,2\n")
    assert isinstance(got[0], Rejected) and got[0].line == 2 and got[0].reason.startswith("invalid CSV:")
    assert got[1:] == [Record(3, "2", "ok")]


# ---- skip_records ----------------------------------------------------------------------------

SAMPLES = {
    "a.txt": b"a\n\nb\n\xff\nc",
    "a.jsonl.gz": b'{"text":"a"}\n\nbad\n{"text":"b","id":9}\n',
    "a.csv": b'id,text\n1,a\n\n2,"b\nc"\n3,\n4,d\n',
}


@pytest.mark.parametrize("key", sorted(SAMPLES))
def test_skip_records_resumes_exactly(key: str) -> None:
    full = items(key, SAMPLES[key])
    assert len(full) >= 4
    for k in range(len(full) + 2):
        assert items(key, SAMPLES[key], skip_records=k) == full[k:]


# ---- huge lines ------------------------------------------------------------------------------


def test_single_10mb_line() -> None:
    text = "é" * (5 * 1024 * 1024)  # 10 MiB of UTF-8
    data = text.encode() + b"\r\nnext\n"
    got = items("a.txt", data)
    assert got == [Record(1, 1, text), Record(2, 2, "next")]
    opts = ReaderOptions(max_line_bytes=1000)
    assert items("a.jsonl", data, opts) == [
        Rejected(1, "line is longer than max_line_bytes (1000 bytes)"),
        Rejected(2, "invalid JSON: Expecting value (column 1)"),
    ]


def test_long_line_is_never_held_whole() -> None:
    data = b"y" * (10 * 1024 * 1024) + b"\nz\n"
    stream = io.BytesIO(data)
    tracemalloc.start()
    try:
        got = list(iter_range_lines(stream, start=0, end=None, first_line=1, stream_offset=0, max_line_bytes=4096))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [(n, len(raw), after) for n, raw, after in got] == [(1, 4097, len(data) - 2), (2, 1, len(data))]
    assert peak < 4 * 1024 * 1024  # a couple of 1 MiB blocks, not the 10 MiB line


# ---- byte ranges -----------------------------------------------------------------------------


def test_range_lines_ownership_and_offsets() -> None:
    data = b"ab\ncd\r\n\nef"
    whole = range_lines(data, 0, None)
    assert whole == [(1, b"ab", 3), (2, b"cd", 7), (3, b"", 8), (4, b"ef", 10)]
    assert range_lines(data, 0, 1) == [(1, b"ab", 3)]  # the line starting in range is read to its end
    assert range_lines(data, 1, 3) == []  # starts mid-line and no line starts before 3
    assert range_lines(data, 1, 4, first_line=2) == [(2, b"cd", 7)]
    assert range_lines(data, 3, 8, first_line=2) == [(2, b"cd", 7), (3, b"", 8)]
    assert range_lines(data, 8, None, first_line=4) == [(4, b"ef", 10)]
    assert range_lines(data, 9, None, first_line=5) == []
    assert range_lines(data, 20, None, first_line=5) == []
    assert range_lines(data, 5, 5, first_line=3) == []


def test_range_lines_stream_offset() -> None:
    data = b"one\ntwo\nthree\n"
    got = list(iter_range_lines(io.BytesIO(data), start=4, end=None, first_line=2, stream_offset=0))
    assert got == [(2, b"two", 8), (3, b"three", 14)]
    with pytest.raises(ValueError, match="stream_offset"):
        list(iter_range_lines(io.BytesIO(data[4:]), start=4, end=None, first_line=2, stream_offset=4))


def test_bom_is_stripped_only_at_object_start() -> None:
    data = BOM + b"a\n" + BOM + b"b\n"
    assert [raw for _, raw, _ in range_lines(data, 0, None)] == [b"a", BOM + b"b"]
    assert range_lines(data, 1, None, first_line=2) == [(2, BOM + b"b", len(data))]


def test_first_line_numbers_examples() -> None:
    data = b"ab\ncd\n\nef"  # lines start at bytes 0, 3, 6, 7
    assert first_line_numbers(io.BytesIO(data), [0, 1, 3, 4, 6, 7, 8, 9, 50]) == [1, 2, 2, 3, 3, 4, 5, 5, 5]
    assert first_line_numbers(io.BytesIO(data), [8, 0, 3], block_size=2) == [5, 1, 2]  # any order
    assert first_line_numbers(io.BytesIO(b""), [0, 5]) == [1, 1]
    assert first_line_numbers(io.BytesIO(b"x\n"), [0, 1, 2, 3]) == [1, 2, 2, 2]
    assert first_line_numbers(io.BytesIO(b"x\n"), []) == []


def test_split_ranges() -> None:
    assert split_ranges(0, 10) == [(0, 0)]
    assert split_ranges(10, 10) == [(0, 10)]
    assert split_ranges(10, 3) == [(0, 2), (2, 5), (5, 7), (7, 10)]
    assert split_ranges(5, 1) == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]
    with pytest.raises(ValueError):
        split_ranges(10, 0)


def _oracle_lines(data: bytes) -> list[tuple[int, bytes]]:
    """Independent definition of "the lines of an object"."""
    if not data:
        return []
    parts = data.split(b"\n")
    if data.endswith(b"\n"):
        parts.pop()
    if parts[0].startswith(BOM):
        parts[0] = parts[0][len(BOM) :]
    return [(i, p[:-1] if p.endswith(b"\r") else p) for i, p in enumerate(parts, start=1)]


_line_text = st.text(alphabet=st.sampled_from(list('ab é€𝄞\r{}"') + ["\x00"]), max_size=12)


@st.composite
def _objects(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(_line_text, max_size=12))
    ending = draw(st.sampled_from(["\n", "\r\n", "mixed"]))
    seps = [draw(st.sampled_from(["\n", "\r\n"])) if ending == "mixed" else ending for _ in lines]
    text = "".join(line + sep for line, sep in zip(lines, seps, strict=True))
    if lines and draw(st.booleans()):
        text = text[: -len(seps[-1])]  # no trailing newline
    data = text.encode()
    if draw(st.booleans()):
        data = BOM + data
    if draw(st.booleans()):
        data += b"\xff\xfe bad\n"  # invalid UTF-8 must not disturb line splitting
    return data


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=_objects(),
    shard=st.integers(min_value=1, max_value=200),
    block_size=st.integers(min_value=1, max_value=9),
)
def test_sharded_read_equals_sequential_read(data: bytes, shard: int, block_size: int) -> None:
    shard = min(shard, max(len(data), 1))
    sequential = range_lines(data, 0, None, block_size=block_size)
    assert [(n, raw) for n, raw, _ in sequential] == _oracle_lines(data)
    assert [after for _, _, after in sequential][-1:] == ([len(data)] if data else [])

    ranges = split_ranges(len(data), shard)
    assert ranges[0][0] == 0 and ranges[-1][1] == len(data)
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
    firsts = first_line_numbers(io.BytesIO(data), [start for start, _ in ranges], block_size=block_size)

    sharded: list[tuple[int, bytes, int]] = []
    for (start, end), first in zip(ranges, firsts, strict=True):
        assert first == len(sharded) + 1  # each shard's first line number continues the previous shard
        sharded += range_lines(data, start, end, first_line=first, block_size=block_size)
    assert sharded == sequential

    # Parsing the sharded lines gives exactly the items of a sequential whole-object read.
    for kind in ("txt", "jsonl"):
        fmt = InputFormat(kind, False, ReaderOptions())
        assert [fmt.parse_line(raw, n) for n, raw, _ in sharded] == list(fmt.iter_items(io.BytesIO(data)))


@settings(max_examples=200, deadline=None, database=None)
@given(data=_objects(), limit=st.integers(min_value=1, max_value=6), shard=st.integers(min_value=1, max_value=50))
def test_sharding_with_line_limit_matches_sequential(data: bytes, limit: int, shard: int) -> None:
    sequential = range_lines(data, 0, None, max_line_bytes=limit, block_size=3)
    assert all(len(raw) <= limit + 1 for _, raw, _ in sequential)
    ranges = split_ranges(len(data), shard)
    firsts = first_line_numbers(io.BytesIO(data), [start for start, _ in ranges])
    sharded = [
        line
        for (start, end), first in zip(ranges, firsts, strict=True)
        for line in range_lines(data, start, end, first_line=first, max_line_bytes=limit, block_size=3)
    ]
    assert sharded == sequential
