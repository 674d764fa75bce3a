"""Long-text mode without TensorFlow: window arithmetic, request parsing, chunk-row writers, config."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from bert2vec.bulk.config import BulkConfig, ConfigError
from bert2vec.core.errors import InvalidInputError
from bert2vec.core.long_text import (
    LongTextChoice,
    LongTextPolicy,
    TooLong,
    check_stride,
    default_stride,
    window_size,
    windows_for,
)
from bert2vec.files.writers import FORMATS, OutputRow, open_part_writer
from bert2vec.http.wire import native, openai_api


def windows_by_hand(pieces: int, window: int, stride: int) -> list[tuple[int, int]]:
    """Hugging Face's overflow rule: windows start every window - stride, until one reaches the end."""
    out, start = [], 0
    while True:
        out.append((start, min(start + window, pieces)))
        if start + window >= pieces:
            return out
        start += window - stride


@pytest.mark.parametrize("max_seq", [8, 128, 256, 512])
def test_windows_for_matches_the_rule_and_no_window_is_empty(max_seq: int) -> None:
    window = window_size(max_seq)
    for stride in sorted({0, 1, default_stride(max_seq), window // 2, window - 1}):
        pieces = np.arange(0, 5 * window + 3)
        got = windows_for(pieces + 2, max_seq, stride)
        for n, count in zip(pieces.tolist(), got.tolist(), strict=True):
            by_hand = windows_by_hand(n, window, stride)
            assert count == len(by_hand), (max_seq, stride, n)
            assert n == 0 or all(e > s for s, e in by_hand)


def test_limit_and_one_over() -> None:
    assert windows_for([256, 257], 256, 32).tolist() == [1, 2]
    assert windows_for([2, 0], 256, 32).tolist() == [1, 1]  # nothing to read: one bare window


def test_default_stride_and_config_errors() -> None:
    assert default_stride(256) == 32 and default_stride(512) == 32 and default_stride(66) == 16
    assert check_stride(None, 256) == 32 and check_stride(253, 256) == 253
    for bad in (254, 300, -1, 1.5, True, "8"):
        with pytest.raises(InvalidInputError, match="stride"):
            check_stride(bad, 256)


def test_native_fields() -> None:
    req = native.parse({"texts": ["a"], "long_text": "chunk", "stride": 4})
    assert req.long_text == LongTextChoice("chunk", 4)
    assert native.parse({"text": "a", "truncate": False}).long_text.mode == "reject"
    assert native.parse({"text": "a"}).long_text.mode == "truncate"
    assert native.parse({"text": "a", "long_text": "reject", "truncate": False}).long_text.mode == "reject"
    for body, match in (
        ({"text": "a", "long_text": "chunk", "truncate": True}, "contradicts"),
        ({"text": "a", "long_text": "truncate", "truncate": False}, "contradicts"),
        ({"text": "a", "long_text": "whole"}, "truncate, reject, chunk"),
        ({"text": "a", "long_text": "chunk", "stride": "8"}, "whole number"),
    ):
        with pytest.raises(InvalidInputError, match=match):
            native.parse(body)
    with pytest.raises(InvalidInputError):
        LongTextChoice("nope")


def test_openai_refuses_long_input_by_default() -> None:
    assert openai_api.parse({"input": "a"})[0].long_text == LongTextChoice("reject")  # worded as "long_text"
    assert openai_api.parse({"input": "a", "long_text": "chunk"})[0].long_text.mode == "chunk"


@pytest.mark.parametrize("fmt", FORMATS)
def test_writers_carry_chunk_fields(tmp_path: Path, fmt: str) -> None:
    vectors = np.arange(12, dtype=np.float32).reshape(3, 4)
    rows = [OutputRow("d", 1, vectors[0], None, 0, 0, 10), OutputRow("d", 1, vectors[1], None, 1, 5, 20),
            OutputRow(7, 2, vectors[2], None, 0, 0, 3)]  # fmt: skip
    with open_part_writer(fmt, tmp_path / "part", 4, chunk_rows=True) as writer:
        writer.write(rows)
    files = writer.paths
    if fmt == "jsonl":
        got = [json.loads(x) for x in files[0].read_text().splitlines()]
        assert list(got[0]) == ["id", "line", "chunk", "start", "end", "vector"]
    elif fmt == "parquet":
        table = pq.read_table(files[0])
        assert table.column_names == ["id", "line", "chunk", "start", "end", "vector"]
        got = table.to_pylist()
    else:
        got = [json.loads(x) for x in files[1].read_text().splitlines()]
        np.testing.assert_array_equal(np.load(files[0]), vectors)
    assert [(r["chunk"], r["start"], r["end"]) for r in got] == [(0, 0, 10), (1, 5, 20), (0, 0, 3)]


def test_plain_rows_are_unchanged(tmp_path: Path) -> None:
    with open_part_writer("jsonl", tmp_path / "p", 2) as writer:
        writer.write([OutputRow("a", 1, np.ones(2, np.float32))])
    assert writer.paths[0].read_text() == '{"id":"a","line":1,"vector":[1.0,1.0]}\n'
    with open_part_writer("parquet", tmp_path / "q", 2) as writer:
        writer.write([OutputRow("a", 1, np.ones(2, np.float32))])
    assert pq.read_table(writer.paths[0]).column_names == ["id", "line", "vector"]


def test_bulk_config(monkeypatch: pytest.MonkeyPatch) -> None:
    assert BulkConfig(long_text="chunk", chunk_rows=True, stride=0).chunk_rows
    for kwargs, match in (
        ({"chunk_rows": True}, "CHUNK_ROWS=1 needs LONG_TEXT=chunk"),
        ({"stride": 4}, "LONG_TEXT_STRIDE applies only to LONG_TEXT=chunk"),
        ({"long_text": "chunk", "stride": -1}, "must be >= 0"),
        ({"long_text": "whole"}, r"LONG_TEXT \(or OVERLONG\) must be one of"),
    ):
        with pytest.raises(ConfigError, match=match):
            BulkConfig(**kwargs)
    monkeypatch.setenv("CHUNK_ROWS", "maybe")
    with pytest.raises(ConfigError, match="CHUNK_ROWS"):
        BulkConfig.from_env()


# ---- the policy: one rejection message, the MAX_TEXT_CHARS rule, the CLI's alias -----------------
def _policy(mode: str) -> LongTextPolicy:
    return LongTextPolicy(mode, 32 if mode == "chunk" else None, 254, 256, "tiny", can_chunk=True)


def test_one_rejection_message_worded_for_each_channel() -> None:
    (refused,) = _policy("reject").too_long([10, 300, 256])
    assert (refused.index, refused.token_count, refused.limit) == (1, 300, 256)
    words = {
        "python": "long_text='truncate' to cut it, keeping [SEP], or long_text='chunk'",
        "cli": "--long-text truncate to cut it, keeping [SEP], or --long-text chunk",
        "bulk": "LONG_TEXT=truncate to cut it, keeping [SEP], or LONG_TEXT=chunk",
        "http": '"long_text": "truncate" to cut it, keeping [SEP], or "long_text": "chunk"',
    }
    for channel, how in words.items():
        assert refused.message("texts[1]", channel) == f"texts[1] has 300 tokens; model tiny takes at most 256 (use {how} to encode all of it)"
    flag = refused.message("'texts[1]'", "http", truncate_as='"truncate": true')
    assert '(use "truncate": true to cut it' in flag
    cannot = TooLong(0, 300, 256, "tiny", can_chunk=False).message("text 1", "cli")
    assert cannot.endswith("(use --long-text truncate to cut it, keeping [SEP])")  # never offers what the model lacks


def test_only_reject_refuses_by_wordpieces() -> None:
    assert _policy("truncate").too_long([999]) == () and _policy("chunk").too_long([999]) == ()


def test_max_text_chars_cuts_only_in_truncate_mode() -> None:
    texts = ["abcdef", "abc"]
    assert _policy("truncate").cut_chars(texts, 4) == (["abcd", "abc"], [True, False], [])
    for mode in ("reject", "chunk"):
        kept, cut, refused = _policy(mode).cut_chars(texts, 4)
        assert (kept, cut) == (texts, [False, False]) and [(r.index, r.chars, r.limit) for r in refused] == [(0, 6, 4)]
    (chunk,) = _policy("chunk").cut_chars(texts, 4)[2]
    assert chunk.message("text", "bulk") == (
        "text has 6 characters; at most 4 (MAX_TEXT_CHARS); LONG_TEXT=chunk encodes whole texts and never cuts "
        "them: split the document"
    )


def test_the_cli_flag_is_long_text_with_overlong_as_its_former_name() -> None:
    from bert2vec.cli import FLAGS, build_parser

    parser = build_parser()
    assert parser.parse_args(["--long-text", "chunk", "x"]).long_text == "chunk"
    assert parser.parse_args(["--overlong", "reject", "x"]).long_text == "reject"
    assert parser.parse_args(["x"]).long_text == "truncate"
    assert FLAGS == {"long_text": "--long-text", "stride": "--stride"}
