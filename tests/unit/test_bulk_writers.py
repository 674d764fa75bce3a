"""Bulk writers: every format reads back bit-exactly, in order, with the tools users actually use.

Memory is bounded by construction (each batch is on disk, or in one parquet row group, when
``write`` returns); ``test_batches_are_streamed_to_disk`` checks the on-disk half of that claim.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bert2vec.files.readers import Rejected
from bert2vec.files.writers import (
    FORMATS,
    ErrorWriter,
    OutputRow,
    ParquetPartWriter,
    PartWriter,
    open_part_writer,
    part_suffixes,
)

DIM = 8


def make_rows(n: int, dim: int = DIM, seed: int = 0) -> list[OutputRow]:
    rng = np.random.default_rng(seed)
    ids: list[str | int | None] = ["doc-é", 7, None, 'x"y\\z', 2**40]
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    return [OutputRow(ids[i % len(ids)], 10 + 2 * i, vectors[i]) for i in range(n)]


def special_rows(dim: int = DIM) -> list[OutputRow]:
    """Values that break naive float formatting: extremes, subnormals, -0.0, and random bit patterns."""
    info = np.finfo(np.float32)
    fixed = np.array([0.0, -0.0, 0.1, 1 / 3, 1e-45, info.tiny, info.max, -info.max, 1e16, 16777217], dtype=np.float32)
    bits = np.random.default_rng(1).integers(0, 2**32, size=4000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    values = np.concatenate([fixed, bits[np.isfinite(bits)]])
    values = values[: len(values) // dim * dim].reshape(-1, dim)
    return [OutputRow(f"s{i}", i + 1, v) for i, v in enumerate(values)]


def write_all(fmt: str, path: Path, batches: list[list[OutputRow]], dim: int = DIM) -> list[Path]:
    with open_part_writer(fmt, path, dim) as writer:
        for batch in batches:
            writer.write(batch)
        files = writer.close()
        assert writer.rows == sum(len(b) for b in batches)
    return files


def read_back(fmt: str, files: list[Path]) -> tuple[list[str | int | None], list[int], np.ndarray]:
    """(ids, lines, float32 [N, D]) from a finished part, via the most direct reader of each format."""
    if fmt == "jsonl":
        objs = [json.loads(line) for line in files[0].read_text(encoding="utf-8").splitlines()]
        vectors = np.array([o["vector"] for o in objs], dtype=np.float32).reshape(len(objs), -1)
        return [o["id"] for o in objs], [o["line"] for o in objs], vectors
    if fmt == "parquet":
        table = pq.read_table(files[0])
        flat = table.column("vector").combine_chunks().flatten().to_numpy()
        return table.column("id").to_pylist(), table.column("line").to_pylist(), flat.reshape(table.num_rows, -1)
    vectors = np.load(files[0])
    sidecar = [json.loads(line) for line in files[1].read_text(encoding="utf-8").splitlines()]
    return [o["id"] for o in sidecar], [o["line"] for o in sidecar], vectors


def bits(matrix: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(matrix, dtype=np.float32).view(np.uint32)


def expected(rows: list[OutputRow], fmt: str) -> tuple[list[str | int | None], list[int], np.ndarray]:
    ids = [None if r.id is None else str(r.id) for r in rows] if fmt == "parquet" else [r.id for r in rows]
    return ids, [r.line for r in rows], np.stack([r.vector for r in rows])


# ---- round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_is_bit_exact_and_ordered(tmp_path: Path, fmt: str) -> None:
    rows = make_rows(23)
    files = write_all(fmt, tmp_path / "part-000003", [rows[:5], [], rows[5:6], rows[6:]])
    assert [f.name for f in files] == ["part-000003" + s for s in part_suffixes(fmt)]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f.name for f in files)  # no temp files left
    ids, lines, vectors = read_back(fmt, files)
    want_ids, want_lines, want_vectors = expected(rows, fmt)
    assert ids == want_ids
    assert lines == want_lines
    assert vectors.dtype == np.float32 and vectors.shape == (23, DIM)
    assert np.array_equal(bits(vectors), bits(want_vectors))


@pytest.mark.parametrize("fmt", FORMATS)
def test_awkward_float_values_are_bit_exact(tmp_path: Path, fmt: str) -> None:
    rows = special_rows()
    _, _, vectors = read_back(fmt, write_all(fmt, tmp_path / f"x.{fmt}", [rows]))
    assert np.array_equal(bits(vectors), bits(np.stack([r.vector for r in rows])))


@pytest.mark.parametrize("fmt", FORMATS)
def test_non_finite_values_survive(tmp_path: Path, fmt: str) -> None:
    vector = np.array([np.nan, np.inf, -np.inf, 1.0], dtype=np.float32)
    _, _, vectors = read_back(fmt, write_all(fmt, tmp_path / "nf", [[OutputRow(1, 1, vector)]], dim=4))
    assert np.isnan(vectors[0, 0]) and vectors[0, 1] == np.inf and vectors[0, 2] == -np.inf and vectors[0, 3] == 1.0


def test_jsonl_is_compact_shortest_float32(tmp_path: Path) -> None:
    row = OutputRow("a", 3, np.array([0.1, -2.5, 1e-5], dtype=np.float32))
    (path,) = write_all("jsonl", tmp_path / "p.jsonl", [[row]], dim=3)
    assert path == tmp_path / "p.jsonl"
    assert path.read_text() == '{"id":"a","line":3,"vector":[0.1,-2.5,1e-05]}\n'


def test_float64_vectors_are_cast_and_wrong_shapes_refused(tmp_path: Path) -> None:
    with open_part_writer("npy", tmp_path / "p", 2) as writer:
        writer.write([OutputRow(1, 1, np.array([0.1, 0.2]))])
        with pytest.raises(ValueError, match=r"line 2: vector has shape \(3,\), expected \(2,\)"):
            writer.write([OutputRow(2, 2, np.zeros(3, dtype=np.float32))])
        files = writer.close()
    assert np.array_equal(np.load(files[0]), np.array([[0.1, 0.2]], dtype=np.float32))


# ---- format-specific readers -----------------------------------------------------------------


def test_parquet_schema_and_row_groups(tmp_path: Path) -> None:
    rows = make_rows(50)
    writer = ParquetPartWriter(tmp_path / "p.parquet", DIM, row_group_bytes=DIM * 4 * 16)  # 16 rows per group
    with writer:
        for i in range(0, 50, 7):
            writer.write(rows[i : i + 7])
    pf = pq.ParquetFile(tmp_path / "p.parquet")
    assert pf.schema_arrow == pa.schema(
        [
            pa.field("id", pa.string()),
            pa.field("line", pa.int64(), nullable=False),
            pa.field("vector", pa.list_(pa.float32(), DIM), nullable=False),
        ]
    )
    assert pf.metadata.num_row_groups == 3 and pf.metadata.num_rows == 50
    ids, lines, vectors = read_back("parquet", [tmp_path / "p.parquet"])
    assert ids[:3] == ["doc-é", "7", None] and lines == [r.line for r in rows]
    assert np.array_equal(bits(vectors), bits(np.stack([r.vector for r in rows])))


def test_parquet_reads_back_with_pandas(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    rows = make_rows(9)
    (path,) = write_all("parquet", tmp_path / "p", [rows])
    frame = pd.read_parquet(path)
    assert list(frame.columns) == ["id", "line", "vector"]
    assert frame["line"].tolist() == [r.line for r in rows]
    vectors = np.stack(frame["vector"].to_list()).astype(np.float32)
    assert np.array_equal(bits(vectors), bits(np.stack([r.vector for r in rows])))


def test_parquet_reads_back_with_duckdb(tmp_path: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    rows = special_rows()
    (path,) = write_all("parquet", tmp_path / "p", [rows[:100], rows[100:]])
    con = duckdb.connect()
    got = con.execute(f"SELECT line, vector FROM '{path}'").fetchall()
    assert [line for line, _ in got] == [r.line for r in rows]
    vectors = np.array([vector for _, vector in got], dtype=np.float32)
    assert np.array_equal(bits(vectors), bits(np.stack([r.vector for r in rows])))
    assert con.execute(f"SELECT count(*), min(array_length(vector)) FROM '{path}'").fetchone() == (len(rows), DIM)


def test_npy_memory_maps(tmp_path: Path) -> None:
    rows = make_rows(31)
    files = write_all("npy", tmp_path / "vectors.npy", [rows[:30], rows[30:]])
    assert files == [tmp_path / "vectors.npy", tmp_path / "vectors.ids.jsonl"]
    mapped = np.load(files[0], mmap_mode="r")
    assert mapped.shape == (31, DIM) and mapped.dtype == np.float32
    assert np.array_equal(bits(np.asarray(mapped)), bits(np.stack([r.vector for r in rows])))
    assert json.loads(files[1].read_text().splitlines()[0]) == {"id": "doc-é", "line": 10}


# ---- empty parts, abort, lifecycle -----------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_zero_rows_give_valid_empty_files(tmp_path: Path, fmt: str) -> None:
    files = write_all(fmt, tmp_path / "empty", [[], []])
    assert all(f.is_file() for f in files)
    if fmt == "jsonl":
        assert files[0].read_bytes() == b""
    elif fmt == "parquet":
        table = pq.read_table(files[0])
        assert table.num_rows == 0 and table.schema.field("vector").type == pa.list_(pa.float32(), DIM)
    else:
        assert np.load(files[0]).shape == (0, DIM)
        assert np.load(files[0], mmap_mode="r").shape == (0, DIM)
        assert files[1].read_bytes() == b""


@pytest.mark.parametrize("fmt", FORMATS)
def test_abort_leaves_no_files(tmp_path: Path, fmt: str) -> None:
    writer = open_part_writer(fmt, tmp_path / "part", DIM)
    writer.write(make_rows(5))
    assert any(tmp_path.iterdir())
    writer.abort()
    writer.abort()  # idempotent
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="aborted"):
        writer.write(make_rows(1))


@pytest.mark.parametrize("fmt", FORMATS)
def test_exception_in_with_block_aborts(tmp_path: Path, fmt: str) -> None:
    with pytest.raises(KeyboardInterrupt), open_part_writer(fmt, tmp_path / "part", DIM) as writer:
        writer.write(make_rows(3))
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_close_is_idempotent_and_final(tmp_path: Path) -> None:
    writer = open_part_writer("jsonl", tmp_path / "p", DIM)
    writer.write(make_rows(2))
    first = writer.close()
    assert writer.close() == first == [tmp_path / "p.jsonl"]
    writer.abort()  # a closed part is complete: abort keeps it
    assert first[0].is_file()
    with pytest.raises(ValueError, match="closed"):
        writer.write(make_rows(1))


def test_batches_are_streamed_to_disk(tmp_path: Path) -> None:
    writer = open_part_writer("npy", tmp_path / "p", 64)
    for _ in range(3):
        writer.write(make_rows(1000, dim=64))
    partial = tmp_path / "p.npy.partial"
    assert partial.stat().st_size >= 3 * 1000 * 64 * 4 - 64 * 1024  # all but the file buffer is on disk
    writer.abort()


def test_unknown_format_and_suffixes() -> None:
    assert part_suffixes("jsonl") == [".jsonl"]
    assert part_suffixes("parquet") == [".parquet"]
    assert part_suffixes("npy") == [".npy", ".ids.jsonl"]
    with pytest.raises(ValueError, match="unknown output format 'csv'"):
        open_part_writer("csv", Path("x"), DIM)
    with pytest.raises(ValueError, match="unknown output format"):
        part_suffixes("npz")
    with pytest.raises(ValueError, match="dimension"):
        open_part_writer("jsonl", Path("x"), 0)


def test_part_writer_is_the_base(tmp_path: Path) -> None:
    for fmt in FORMATS:
        with open_part_writer(fmt, tmp_path / fmt, DIM) as writer:
            assert isinstance(writer, PartWriter)


@pytest.mark.parametrize("fmt", ["jsonl", "npy"])
def test_ids_that_are_not_valid_unicode_still_give_valid_json(tmp_path: Path, fmt: str) -> None:
    rows = [
        OutputRow("bad \ud800 id", 1, np.zeros(DIM, dtype=np.float32)),
        OutputRow("ok ✓", 2, np.ones(DIM, dtype=np.float32)),
    ]
    ids, _, _ = read_back(fmt, write_all(fmt, tmp_path / "p", [rows]))
    assert ids == ["bad \ud800 id", "ok ✓"]


# ---- errors.jsonl ----------------------------------------------------------------------------


def test_error_writer(tmp_path: Path) -> None:
    path = tmp_path / "errors.jsonl"
    with ErrorWriter(path) as errors:
        errors.write([Rejected(2, "invalid UTF-8 at byte 3"), Rejected(5, "empty text", "doc-5")])
        errors.write([])
        errors.write([Rejected(9, "missing field 'text'", 12)])
        assert errors.rows == 3
    assert errors.close() == [path]
    assert [json.loads(line) for line in path.read_text().splitlines()] == [
        {"line": 2, "id": None, "reason": "invalid UTF-8 at byte 3"},
        {"line": 5, "id": "doc-5", "reason": "empty text"},
        {"line": 9, "id": 12, "reason": "missing field 'text'"},
    ]


def test_error_writer_empty_and_abort(tmp_path: Path) -> None:
    with ErrorWriter(tmp_path / "errors.jsonl") as errors:
        pass
    assert errors.rows == 0 and (tmp_path / "errors.jsonl").read_bytes() == b""
    (tmp_path / "more").mkdir()
    other = ErrorWriter(tmp_path / "more" / "errors.jsonl")
    other.write([Rejected(1, "x")])
    other.abort()
    assert list((tmp_path / "more").iterdir()) == []
