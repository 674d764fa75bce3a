"""Hostile inputs to the readers, the pipeline's accounting and the bulk config (no TensorFlow).

The property tests feed arbitrary bytes: whatever comes in, every physical line of a txt/jsonl
object becomes exactly one item, CSV items never repeat or reorder a line, and the pipeline's
counts always add up, with every line number once in the vectors or in the errors.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bert2vec.bulk.config import BulkConfig, ConfigError
from bert2vec.core.encoder import EncodeResult
from bert2vec.files.pipeline import PipelineOptions, encode_items
from bert2vec.files.readers import Blank, InputFormat, Record, Rejected, has_nothing_to_encode, sniff_text

LINE_BYTES = st.lists(
    st.one_of(
        st.binary(max_size=12),
        st.text(max_size=8).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.sampled_from([b'{"text": "a"}', b'{"id": 1}', b"\r", b"\xef\xbb\xbf", b'"', b",", b"\x00", b"\xe2\x80\x8b"]),
    ),
    max_size=12,
).map(b"".join)


class FakeEncoder:
    """Stands in for the model in the fast tier: deterministic vectors, 1 token per character."""

    card: dict[str, Any] = {"normalize": True}
    vector_length = 4
    max_seq_length = 16

    def encode(self, texts: Sequence[str], batch_size: int = 8) -> EncodeResult:
        counts = np.array([len(t) + 2 for t in texts], np.int32)
        emb = np.array([[len(t), 1, 2, 3] for t in texts], np.float32)
        return EncodeResult(emb, counts, counts > self.max_seq_length)


class Collect:
    def __init__(self) -> None:
        self.rows: list[Any] = []

    def write(self, rows: Any) -> None:
        self.rows.extend(rows)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(LINE_BYTES, max_size=15), kind=st.sampled_from(["txt", "jsonl"]), gz=st.booleans())
def test_every_physical_line_is_one_item_and_counted_once(lines: list[bytes], kind: str, gz: bool) -> None:
    import gzip

    data = b"\n".join(lines)
    raw = gzip.compress(data) if gz else data
    items = list(InputFormat(kind, gz).iter_items(io.BytesIO(raw)))
    physical = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    assert [i.line for i in items] == list(range(1, physical + 1))
    rows, errors = Collect(), Collect()
    counts = encode_items(items, FakeEncoder(), rows, errors, PipelineOptions(window=4))
    assert counts.lines_read == counts.encoded + counts.rejected + counts.blank == physical
    seen = sorted([r.line for r in rows.rows] + [e.line for e in errors.rows] + [i.line for i in items if isinstance(i, Blank)])
    assert seen == list(range(1, physical + 1))


@settings(max_examples=150, deadline=None)
@given(lines=st.lists(LINE_BYTES, max_size=15))
def test_csv_items_never_repeat_or_reorder_lines(lines: list[bytes]) -> None:
    from bert2vec.files.readers import InputFormatError

    data = b"id,text\n" + b"\n".join(lines)
    try:
        items = list(InputFormat("csv", False).iter_items(io.BytesIO(data)))
    except InputFormatError:
        return
    numbers = [i.line for i in items]
    assert numbers == sorted(set(numbers))
    physical = data.count(b"\n") + (1 if not data.endswith(b"\n") else 0)
    spans = sum(getattr(i, "swallowed", 0) for i in items)
    assert len(items) + spans <= physical


def test_records_with_nothing_to_encode_are_rejected_everywhere() -> None:
    assert has_nothing_to_encode("\u200b\u200d") and has_nothing_to_encode("\x00\x01") and has_nothing_to_encode("\u0301")
    assert not has_nothing_to_encode("a\u0301") and not has_nothing_to_encode("中")
    for kind, line in (("txt", "\u200b\u0301".encode()), ("jsonl", b'{"text": "\\u200b\\u0000"}')):
        (item,) = InputFormat(kind, False).iter_items(io.BytesIO(line))
        assert isinstance(item, Rejected) and "no encodable characters" in item.reason
    (item,) = InputFormat("csv", False).iter_items(io.BytesIO("id,text\n1,\u200b\u200b\n".encode()))
    assert isinstance(item, Rejected)


def test_sniff_names_foreign_encodings_and_binary() -> None:
    assert "UTF-16 LE" in sniff_text("hi".encode("utf-16"))
    assert "UTF-16 BE" in sniff_text(b"\xfe\xff\x00h")
    assert "UTF-32 LE" in sniff_text("hi".encode("utf-32"))
    assert "NUL bytes (first at byte 1)" in sniff_text(b"h\x00i\x00")
    assert sniff_text("plain UTF-8 text, café\n".encode()) is None
    assert sniff_text(b"\xef\xbb\xbfwith a UTF-8 BOM") is None


def test_unclosed_csv_quote_is_one_rejected_record_that_names_its_span() -> None:
    data = 'id,text\n1,"never closed\n' + "".join(f"{i},row {i}\n" for i in range(2, 12))
    (item,) = InputFormat("csv", False).iter_items(io.BytesIO(data.encode()))
    assert isinstance(item, Rejected) and item.line == 2 and item.swallowed == 10
    assert "runs to line 12" in item.reason
    rows, errors = Collect(), Collect()
    counts = encode_items([item], FakeEncoder(), rows, errors, PipelineOptions())
    assert counts.swallowed == 10


def test_a_record_the_encoder_fails_on_is_rejected_alone() -> None:
    class Poisoned(FakeEncoder):
        def encode(self, texts: Sequence[str], batch_size: int = 8) -> EncodeResult:
            if "bad" in texts:
                raise RuntimeError("kernel failure")
            return super().encode(texts, batch_size)

    items = [Record(n, n, "bad" if n == 5 else f"text {n}") for n in range(1, 11)]
    rows, errors = Collect(), Collect()
    counts = encode_items(items, Poisoned(), rows, errors, PipelineOptions())
    assert counts.encoded == 9 and counts.rejected == 1
    assert [e.line for e in errors.rows] == [5] and "kernel failure" in errors.rows[0].reason
    assert [r.line for r in rows.rows] == [n for n in range(1, 11) if n != 5]


@pytest.mark.parametrize(
    ("settings_", "message"),
    [
        ({"chunk_bytes": 8 << 20, "shard_bytes": 1 << 20}, "SLICE_BYTES=8388608 and SHARD_BYTES=1048576"),
        ({"chunk_bytes": 0}, "SLICE_BYTES=0"),
        ({"max_hops": 0}, "MAX_HOPS=0"),
        ({"chunk_records": 0}, "SLICE_RECORDS=0"),
    ],
)
def test_contradicting_settings_are_a_clear_config_error(settings_: dict[str, int], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        BulkConfig(**settings_)


def test_a_non_numeric_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHUNK_BYTES", "8MB")
    with pytest.raises(ConfigError, match="CHUNK_BYTES must be a whole number, got '8MB'"):
        BulkConfig.from_env()
