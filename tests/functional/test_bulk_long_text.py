"""OVERLONG=chunk on the S3 bulk path (moto) and in ``bert-encode --input``: whole documents, and
with chunk rows one row per window carrying its span."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from bert2vec.bulk.config import BulkConfig, ConfigError
from bert2vec.core.long_text import LongTextEncoder
from tests.functional.test_bulk_s3 import BUCKET, aws, errors_of, forever, make_engine, manifest_of, put  # noqa: F401

DOC = "Le café est à côté. 我喜欢散步 👍 " + " ".join(f"word{i} and some more text" for i in range(150))
LINES = [DOC, "a short line", DOC[:900]]


def jsonl_input() -> bytes:
    return "".join(json.dumps({"id": f"d{i}", "text": t}, ensure_ascii=False) + "\n" for i, t in enumerate(LINES)).encode()


def part_rows(s3, manifest: dict) -> list[dict]:
    """Rows of every part as dicts (id, line, chunk, start, end, vector), whatever the format."""
    import pyarrow.parquet as pq

    rows: list[dict] = []
    out = manifest["output"]
    for part in out["parts"]:
        body = s3.get_object(Bucket=out["bucket"], Key=part["key"])["Body"].read()
        if part["key"].endswith(".jsonl"):
            rows += [json.loads(x) for x in body.decode().splitlines()]
        elif part["key"].endswith(".parquet"):
            rows += pq.read_table(io.BytesIO(body)).to_pylist()
        else:
            vectors = np.load(io.BytesIO(body))
            ids = s3.get_object(Bucket=out["bucket"], Key=part["ids_key"])["Body"].read().decode().splitlines()
            rows += [{**json.loads(x), "vector": vectors[n]} for n, x in enumerate(ids)]
        assert part["rows"] == len(rows)
    return rows


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "npy"])
def test_chunk_rows(aws, default_encoder, fmt: str) -> None:  # noqa: F811
    s3 = aws[0]
    put(s3, "incoming/docs.jsonl", jsonl_input())
    eng = make_engine(aws, default_encoder, long_text="chunk", chunk_rows=True, output_format=fmt, stride=16)
    assert eng.handle_object(BUCKET, "incoming/docs.jsonl", forever).status == "complete"
    m = manifest_of(s3, "incoming/docs.jsonl")
    rows = part_rows(s3, m)
    want = LongTextEncoder(default_encoder).encode_chunks(LINES, stride=16)
    assert m["counts"]["encoded"] == 3 and m["counts"]["chunks"] == len(rows) == len(want.text_index) > 3
    assert [(r["id"], r["line"]) for r in rows] == [(f"d{t}", t + 1) for t in want.text_index]
    assert [r["chunk"] for r in rows if r["line"] == 1] == list(range(int(want.chunks[0])))
    assert [(r["start"], r["end"]) for r in rows] == list(zip(want.start.tolist(), want.end.tolist(), strict=True))
    np.testing.assert_allclose(np.array([r["vector"] for r in rows], np.float32), want.embeddings, atol=1e-6)
    first = [r for r in rows if r["line"] == 1]
    assert LINES[0][first[0]["start"] : first[0]["end"]].startswith("Le café est à côté. 我喜欢散步 👍 word0")
    assert first[-1]["end"] == len(LINES[0])


def test_document_rows_and_rejections(aws, default_encoder) -> None:  # noqa: F811
    s3 = aws[0]
    put(s3, "incoming/docs.jsonl", jsonl_input())
    eng = make_engine(aws, default_encoder, long_text="chunk", max_text_chars=2000)
    assert eng.handle_object(BUCKET, "incoming/docs.jsonl", forever).status == "complete"
    m = manifest_of(s3, "incoming/docs.jsonl")
    assert m["counts"]["encoded"] == 2 and m["counts"]["rejected"] == 1 and m["balanced"]
    assert "3967 characters; at most 2000 (MAX_TEXT_CHARS)" in errors_of(s3, m)[0]["reason"]  # chunk mode never cuts a text: it rejects it
    rows = part_rows(s3, m)
    assert [r["line"] for r in rows] == [2, 3] and "chunk" not in rows[0]
    want = LongTextEncoder(default_encoder).encode(LINES[1:])
    np.testing.assert_allclose(np.array([r["vector"] for r in rows], np.float32), want.embeddings, atol=1e-6)
    assert m["counts"]["chunks"] == int(want.chunks.sum())


def test_config_errors(aws, default_encoder, monkeypatch) -> None:  # noqa: F811
    with pytest.raises(ConfigError, match="CHUNK_ROWS=1 needs LONG_TEXT=chunk"):
        BulkConfig(chunk_rows=True)
    with pytest.raises(ConfigError, match=r"LONG_TEXT \(or OVERLONG\) must be one of truncate, reject, chunk"):
        BulkConfig(long_text="split")
    with pytest.raises(ConfigError, match="LONG_TEXT_STRIDE.*less than the window of 254"):
        make_engine(aws, default_encoder, long_text="chunk", stride=254)
    monkeypatch.setenv("OVERLONG", "chunk")
    monkeypatch.setenv("CHUNK_ROWS", "1")
    monkeypatch.setenv("LONG_TEXT_STRIDE", "8")
    cfg = BulkConfig.from_env()
    assert (cfg.long_text, cfg.chunk_rows, cfg.stride) == ("chunk", True, 8)


@pytest.mark.slow  # runs the CLI end to end (~7 s)
def test_cli_chunk_rows(tmp_path: Path, default_model_dir, default_encoder, capsys) -> None:
    from bert2vec.cli import main

    src = tmp_path / "docs.jsonl"
    src.write_bytes(jsonl_input())
    out = tmp_path / "out.jsonl"
    args = ["--model", str(default_model_dir), "--input", str(src), "--output", str(out), "-q"]
    assert main([*args, "--long-text", "chunk", "--chunk-rows", "--stride", "20"]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    want = LongTextEncoder(default_encoder).encode_chunks(LINES, stride=20)
    assert [(r["line"], r["chunk"], r["start"], r["end"]) for r in rows] == [
        (int(t) + 1, k, int(s), int(e))
        for t, k, s, e in zip(want.text_index, [k for n in want.chunks for k in range(n)], want.start, want.end,
                              strict=True)
    ]  # fmt: skip
    manifest = json.loads((tmp_path / "out.jsonl.manifest.json").read_text())
    assert manifest["counts"]["chunks"] == len(rows)
    assert main([*args, "--force", "--long-text", "chunk", "--stride", "254"]) == 2
    assert "--stride 254" in capsys.readouterr().err
    assert main([*args, "--force", "--chunk-rows"]) == 2
    assert main(["--model", str(default_model_dir), "--overlong", "chunk", DOC, "hi"]) == 0
    printed = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [p["chunks"] for p in printed] == [int(LongTextEncoder(default_encoder).encode([DOC]).chunks[0]), 1]
    assert main(["--model", str(default_model_dir), "--overlong", "reject", DOC]) == 1
    assert "at most 256" in capsys.readouterr().err


@pytest.mark.parametrize(("overlong", "hands_off"), [("chunk", True), ("truncate", False)])
def test_chunk_mode_hands_off_before_a_line_that_would_outrun_the_deadline(
    aws, default_encoder, overlong: str, hands_off: bool  # noqa: F811
) -> None:
    """Two seconds left with a one-second margin: enough for a short line, not for a 20,000-character
    document read whole; truncate mode reads 512 tokens of it and goes on."""
    from bert2vec.bulk.s3_engine import WorkItem

    s3, sqs, queue_url = aws
    long_doc = ("many words in a long document " * 700)[:20_000]
    put(s3, "incoming/deadline.txt", f"a short line\n{long_doc}\nthe end\n".encode())
    eng = make_engine(aws, default_encoder, long_text=overlong, time_margin_ms=1000)
    outcome = eng.handle_object(BUCKET, "incoming/deadline.txt", lambda: 2000)
    messages = sqs.receive_message(QueueUrl=queue_url).get("Messages", [])
    if hands_off:
        assert outcome.kind == "in_progress" and outcome.handed_off_from == 0
        (msg,) = messages
        assert WorkItem.from_message(msg["Body"]).first_line == 2  # the long line starts the next invocation
        assert eng.run(WorkItem.from_message(msg["Body"]), forever).status == "complete"
    else:
        assert outcome.status == "complete" and not messages
    m = manifest_of(s3, "incoming/deadline.txt")
    assert m["counts"]["encoded"] == 3 and m["balanced"]
