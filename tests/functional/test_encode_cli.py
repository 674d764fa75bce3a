"""``bert-encode``: texts, files (the S3 path's readers/pipeline/writers, locally), stdin/stdout, events.

``main()`` runs in-process so the model loads once per session (the CLI caches it per model
directory); only ``--help`` goes through the installed script, to prove the entry point exists.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bert2vec.cli import files as encode_cli
from bert2vec.cli import main

REPO = Path(__file__).resolve().parents[2]
EVENTS = REPO / "events"

# A jsonl file with every kind of line: good (with and without id), invalid JSON, wrong type, blank.
JSONL_LINES = [
    '{"id": "a", "text": "I enjoy taking long walks along the beach with my dog."}',
    "not json at all",
    '{"text": "Serverless BERT on Lambda"}',
    "",
    '{"id": 7, "text": 42}',
    '{"id": 8, "text": "The quick brown fox jumps over the lazy dog."}',
]
GOOD = {1: ("a", JSONL_LINES[0]), 3: (3, JSONL_LINES[2]), 6: (8, JSONL_LINES[5])}  # line -> (id, json line)
GOOD_TEXTS = {line: json.loads(raw)["text"] for line, (_, raw) in GOOD.items()}


def run(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def model(default_model_dir: Path) -> list[str]:
    return ["--model", str(default_model_dir)]


@pytest.fixture
def jsonl_file(tmp_path: Path) -> Path:
    path = tmp_path / "docs.jsonl"
    path.write_text("\n".join(JSONL_LINES) + "\n", encoding="utf-8")
    return path


def expected(encoder: Any, texts: list[str]) -> np.ndarray:
    return encoder.encode(texts).embeddings


def read_manifest(path: Path) -> dict[str, Any]:
    manifest = json.loads(path.read_text(encoding="utf-8"))
    counts = manifest["counts"]
    assert manifest["balanced"] is True
    assert counts["lines_read"] == counts["encoded"] + counts["rejected"] + counts["blank"]
    return manifest


def read_vectors(manifest: dict[str, Any]) -> list[tuple[Any, int, np.ndarray]]:
    """(id, line, vector) from the manifest's single part, whatever the format."""
    part = manifest["output"]["parts"][0]
    fmt, path = manifest["output"]["format"], Path(part["path"])
    if fmt == "jsonl":
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        return [(r["id"], r["line"], np.asarray(r["vector"], dtype=np.float32)) for r in rows]
    if fmt == "parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path).to_pylist()
        return [(r["id"], r["line"], np.asarray(r["vector"], dtype=np.float32)) for r in table]
    vectors = np.load(path)
    ids = [json.loads(line) for line in Path(part["ids_path"]).read_text(encoding="utf-8").splitlines()]
    assert vectors.dtype == np.float32 and len(ids) == len(vectors) == part["rows"]
    return [(i["id"], i["line"], v) for i, v in zip(ids, vectors, strict=True)]


# ---- texts ---------------------------------------------------------------------------------


def test_texts_print_the_encoders_vectors_one_json_per_line(capsys, model, default_encoder) -> None:
    texts = ["I enjoy taking long walks along the beach with my dog.", "Serverless BERT", "x " * 400]
    code, out, _ = run(capsys, [*model, *texts])
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    want = default_encoder.encode(texts)
    assert [r["text"] for r in rows] == texts
    got = np.asarray([r["vector"] for r in rows], dtype=np.float32)
    np.testing.assert_array_equal(got, want.embeddings)  # shortest float32 decimals round-trip exactly
    assert [r["token_count"] for r in rows] == want.token_counts.tolist()
    assert [r["truncated"] for r in rows] == [False, False, True]


def test_max_seq_length_equal_to_the_models_is_accepted(capsys, model, default_encoder) -> None:
    code, out, _ = run(capsys, [*model, "--max-seq-length", str(default_encoder.max_seq_length), "hello"])
    assert code == 0 and len(out.splitlines()) == 1


def test_max_seq_length_above_the_models_is_refused(capsys, model, default_encoder) -> None:
    code, out, err = run(capsys, [*model, "--max-seq-length", str(default_encoder.max_seq_length + 1), "hello"])
    assert code == 2 and out == ""
    assert f"max_seq_length {default_encoder.max_seq_length}" in err and "bert-export" in err


def test_max_seq_length_below_the_models_needs_a_re_export(capsys, model) -> None:
    code, _, err = run(capsys, [*model, "--max-seq-length", "64", "hello"])
    assert code == 2 and "bert-export" in err and "--max-seq-length 64" in err


@pytest.mark.slow
def test_the_re_export_the_message_names_works(capsys, model, tmp_path) -> None:
    """Run the `bert-export ...` command the refusal names, as printed (DIR filled in): the new
    model takes the option. For the embedded default the command must not name a --model (the
    catalogue has no 'all-MiniLM-L6-v2'; the default is what no --model means)."""
    import re
    import shlex

    from bert2vec.export.cli import main as export_main

    code, _, err = run(capsys, [*model, "--max-seq-length", "64", "hello"])
    assert code == 2
    (command,) = re.findall(r"`(bert-export [^`]*)`", err)
    argv = shlex.split(command)[1:]
    assert "--model" not in argv, command
    argv[argv.index("DIR")] = str(tmp_path / "m64")
    assert export_main(argv) == 0, capsys.readouterr().err
    capsys.readouterr()
    code, out, err = run(capsys, ["--model", str(tmp_path / "m64"), "--max-seq-length", "64", "hello"])
    assert code == 0, err
    assert json.loads(out)["token_count"] == 3


def test_no_normalize_on_a_normalised_model_is_refused(capsys, model) -> None:
    code, out, err = run(capsys, [*model, "--no-normalize", "hello"])
    assert code == 2 and out == ""
    assert "bert-export" in err and "--no-normalize" in err


def test_missing_model_dir_says_how_to_build_one(capsys, tmp_path: Path) -> None:
    code, out, err = run(capsys, ["--model", str(tmp_path / "nope"), "hello"])
    assert code == 1 and out == ""
    assert "make run" in err and "bert-export" in err and str(tmp_path / "nope") in err


def test_modes_cannot_be_mixed_and_one_is_required(capsys, model, jsonl_file: Path) -> None:
    assert run(capsys, [*model, "hello", "--input", str(jsonl_file)])[0] == 2
    code, _, err = run(capsys, model)
    assert code == 2 and "--input" in err


# ---- files ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "npy"])
def test_file_is_encoded_like_the_s3_path(capsys, model, jsonl_file: Path, default_encoder, fmt: str) -> None:
    code, out, err = run(capsys, [*model, "--input", str(jsonl_file), "--format", fmt])
    assert code == 0 and out == ""
    data = jsonl_file.with_name(f"docs.jsonl.{fmt}")
    manifest = read_manifest(data.with_name(data.name + ".manifest.json"))
    assert manifest["status"] == "complete"
    assert manifest["counts"] | {"encode_seconds": 0} == {
        "lines_read": 6, "encoded": 3, "rejected": 2, "blank": 1, "truncated": 0, "swallowed": 0,
        "tokens": manifest["counts"]["tokens"], "encode_seconds": 0,
    }  # fmt: skip
    assert manifest["input"]["format"] == {"kind": "jsonl", "gzip": False}
    assert manifest["model"]["vector_length"] == default_encoder.vector_length
    part = manifest["output"]["parts"][0]
    assert Path(part["path"]) == data.resolve() and part["rows"] == 3
    assert (part["first_line"], part["last_line"]) == (1, 6)

    rows = read_vectors(manifest)
    ids = [str(i) if fmt == "parquet" else i for i, _ in GOOD.values()]  # parquet ids are strings
    assert [r[0] for r in rows] == ids and [r[1] for r in rows] == list(GOOD)
    want = expected(default_encoder, list(GOOD_TEXTS.values()))
    np.testing.assert_allclose(np.stack([r[2] for r in rows]), want, atol=1e-5)

    errors_path = Path(manifest["output"]["errors_path"])
    assert errors_path == data.with_name(data.name + ".errors.jsonl").resolve()
    errors = [json.loads(line) for line in errors_path.read_text(encoding="utf-8").splitlines()]
    assert [(e["line"], e["id"]) for e in errors] == [(2, None), (5, 7)]
    assert errors[0]["reason"].startswith("invalid JSON") and "not a string" in errors[1]["reason"]
    assert "encoded 3 of 6 lines" in err
    assert not list(jsonl_file.parent.glob("*.partial"))


def test_gzipped_csv_with_ids_and_quoted_newlines(capsys, model, tmp_path: Path, default_encoder) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerows([["id", "text"], ["d1", "first text"], ["d2", "a text\nover two lines"], ["d3", ""], ["d4", "last"]])
    path = tmp_path / "docs.csv.gz"
    path.write_bytes(gzip.compress(buf.getvalue().encode("utf-8")))
    out_path = tmp_path / "vectors.parquet"
    code, _, _ = run(capsys, [*model, "--input", str(path), "--output", str(out_path), "--quiet"])
    assert code == 0
    manifest = read_manifest(tmp_path / "vectors.parquet.manifest.json")
    assert manifest["output"]["format"] == "parquet"  # from --output's suffix
    assert manifest["input"]["format"] == {"kind": "csv", "gzip": True}
    rows = read_vectors(manifest)
    assert [(r[0], r[1]) for r in rows] == [("d1", 2), ("d2", 3), ("d4", 6)]
    want = expected(default_encoder, ["first text", "a text\nover two lines", "last"])
    np.testing.assert_allclose(np.stack([r[2] for r in rows]), want, atol=1e-5)
    errors = (tmp_path / "vectors.parquet.errors.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(e)["id"] for e in errors] == ["d3"]


def test_txt_default_output_is_beside_the_input(capsys, model, tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("one\n\ntwo\n", encoding="utf-8")
    assert run(capsys, [*model, "--input", str(path)])[0] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "notes.txt", "notes.txt.jsonl", "notes.txt.jsonl.errors.jsonl", "notes.txt.jsonl.manifest.json",
    ]  # fmt: skip
    rows = [json.loads(line) for line in (tmp_path / "notes.txt.jsonl").read_text().splitlines()]
    assert [(r["id"], r["line"]) for r in rows] == [(1, 1), (3, 3)]


def test_existing_output_is_refused_without_force_and_replaced_with_it(capsys, model, jsonl_file: Path) -> None:
    data = jsonl_file.with_name("docs.jsonl.jsonl")
    data.write_text("old\n", encoding="utf-8")
    code, _, err = run(capsys, [*model, "--input", str(jsonl_file)])
    assert code == 2 and "--force" in err and str(data) in err
    assert data.read_text(encoding="utf-8") == "old\n"
    assert not data.with_name(data.name + ".manifest.json").exists()

    assert run(capsys, [*model, "--input", str(jsonl_file), "--force"])[0] == 0
    assert len(data.read_text(encoding="utf-8").splitlines()) == 3
    read_manifest(data.with_name(data.name + ".manifest.json"))


def test_output_may_not_overwrite_the_input(capsys, model, tmp_path: Path) -> None:
    path = tmp_path / "docs.jsonl"
    path.write_text('{"text": "x"}\n', encoding="utf-8")
    code, _, err = run(capsys, [*model, "--input", str(path), "--output", str(path), "--force"])
    assert code == 2 and "overwrite the input" in err
    assert path.read_text(encoding="utf-8") == '{"text": "x"}\n'


def test_unknown_extension_is_explained_and_input_format_overrides(capsys, model, tmp_path: Path) -> None:
    path = tmp_path / "docs.tsv"
    path.write_text("hello\n", encoding="utf-8")
    code, _, err = run(capsys, [*model, "--input", str(path)])
    assert code == 2 and "cannot tell how to read" in err and "--input-format" in err
    assert list(tmp_path.iterdir()) == [path]
    assert run(capsys, [*model, "--input", str(path), "--input-format", "txt"])[0] == 0
    assert (tmp_path / "docs.tsv.jsonl").is_file()


@pytest.mark.parametrize(
    ("name", "data", "why"),
    [
        ("utf16.txt", "one\ntwo\n".encode("utf-16"), "UTF-16 LE"),
        ("image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "NUL bytes"),
        ("utf16.txt.gz", gzip.compress("one\n".encode("utf-16"), mtime=0), "UTF-16 LE"),
    ],
)
def test_input_that_is_not_utf8_text_is_refused(capsys, model, tmp_path: Path, name: str, data: bytes, why: str) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    code, out, err = run(capsys, [*model, "--input", str(path)])
    assert code == 1 and out == "" and why in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == [path]  # nothing written


def test_missing_input_file(capsys, model, tmp_path: Path) -> None:
    code, _, err = run(capsys, [*model, "--input", str(tmp_path / "nope.txt")])
    assert code == 1 and "cannot read input" in err and "does not exist" in err


def test_every_line_bad_exits_1_with_the_error_report(capsys, model, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('nope\n{"text": 1}\n\n', encoding="utf-8")
    code, _, err = run(capsys, [*model, "--input", str(path)])
    assert code == 1 and "nothing could be encoded" in err
    manifest = read_manifest(tmp_path / "bad.jsonl.jsonl.manifest.json")
    assert manifest["status"] == "failed" and manifest["output"]["parts"] == []
    assert manifest["counts"]["rejected"] == 2 and manifest["counts"]["blank"] == 1
    errors = (tmp_path / "bad.jsonl.jsonl.errors.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(e)["line"] for e in errors] == [1, 2]
    assert not (tmp_path / "bad.jsonl.jsonl").exists()


def test_csv_without_text_column_fails_whole_and_writes_nothing(capsys, model, tmp_path: Path) -> None:
    path = tmp_path / "docs.csv"
    path.write_text("id,body\n1,hello\n", encoding="utf-8")
    code, _, err = run(capsys, [*model, "--input", str(path)])
    assert code == 1 and "no column 'text'" in err
    assert list(tmp_path.iterdir()) == [path]


def test_corrupt_gzip_fails_and_leaves_nothing(capsys, model, tmp_path: Path) -> None:
    path = tmp_path / "docs.txt.gz"
    path.write_bytes(gzip.compress(b"hello\n" * 1000)[:-20])
    code, _, err = run(capsys, [*model, "--input", str(path)])
    assert code == 1 and "cannot read" in err
    assert list(tmp_path.iterdir()) == [path]


def test_interrupt_leaves_no_output_and_keeps_a_previous_one(capsys, model, tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "docs.txt"
    path.write_text("".join(f"text number {i}\n" for i in range(20)), encoding="utf-8")
    real = encode_cli.encode_items
    partials: list[list[str]] = []

    def interrupted(items, encoder, writer, errors, opts, *, on_window=None):  # type: ignore[no-untyped-def]
        def ctrl_c(counts: Any) -> None:  # after the first window has been written to disk
            partials.append(sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")))
            raise KeyboardInterrupt

        return real(items, encoder, writer, errors, dataclasses.replace(opts, window=4), on_window=ctrl_c)

    monkeypatch.setattr(encode_cli, "encode_items", interrupted)
    code, out, err = run(capsys, [*model, "--input", str(path)])
    assert code == 130 and out == "" and "interrupted" in err
    assert partials == [["docs.txt.jsonl.errors.jsonl.partial", "docs.txt.jsonl.partial"]]  # they did exist
    assert list(tmp_path.iterdir()) == [path]

    monkeypatch.setattr(encode_cli, "encode_items", real)
    assert run(capsys, [*model, "--input", str(path)])[0] == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    monkeypatch.setattr(encode_cli, "encode_items", interrupted)
    assert run(capsys, [*model, "--input", str(path), "--force"])[0] == 130
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_progress_bar_only_on_a_terminal_and_not_with_quiet(capsys, model, jsonl_file: Path, monkeypatch) -> None:
    _, _, err = run(capsys, [*model, "--input", str(jsonl_file)])
    assert "texts/s" not in err  # capsys' stderr is not a TTY

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    _, _, err = run(capsys, [*model, "--input", str(jsonl_file), "--force"])
    assert "texts/s" in err and "100%" in err and "encoded 3 of 6 lines" in err

    monkeypatch.setattr(encode_cli, "PRECOUNT_BYTES", 1)  # a "big" file: bytes read drive the bar instead
    _, _, err = run(capsys, [*model, "--input", str(jsonl_file), "--force"])
    assert "texts/s" in err and "B/s" in err

    _, _, err = run(capsys, [*model, "--input", str(jsonl_file), "--force", "--quiet"])
    assert err == ""


# ---- stdin / stdout ---------------------------------------------------------------------------


def _stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))


def test_stdin_to_stdout_jsonl_with_rejections_on_stderr(capsys, model, monkeypatch, default_encoder) -> None:
    _stdin(monkeypatch, ("\n".join(JSONL_LINES) + "\n").encode("utf-8"))
    code, out, err = run(capsys, [*model, "--input", "-", "--input-format", "jsonl"])
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["id"], r["line"]) for r in rows] == [(i, line) for line, (i, _) in GOOD.items()]
    want = expected(default_encoder, list(GOOD_TEXTS.values()))
    np.testing.assert_allclose(np.asarray([r["vector"] for r in rows], dtype=np.float32), want, atol=1e-5)
    assert "line 2 rejected: invalid JSON" in err and "line 5 (id 7) rejected" in err
    assert "encoded 3 of 6 lines" in err


def test_stdin_to_stdout_npy_with_manifest_files(capsysbinary, model, monkeypatch, tmp_path: Path) -> None:
    _stdin(monkeypatch, b"alpha\n\nbeta\n")
    manifest_path = tmp_path / "run.manifest.json"
    code = main([*model, "--input", "-", "--output", "-", "--format", "npy", "--manifest", str(manifest_path)])
    out = capsysbinary.readouterr().out
    assert code == 0
    vectors = np.load(io.BytesIO(out))
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32
    manifest = read_manifest(manifest_path)
    assert manifest["input"]["path"] == "-" and manifest["output"]["parts"][0]["path"] == "-"
    ids = (tmp_path / "run.ids.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(i) for i in ids] == [{"id": 1, "line": 1}, {"id": 3, "line": 3}]
    assert (tmp_path / "run.errors.jsonl").read_text() == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.errors.jsonl", "run.ids.jsonl", "run.manifest.json"]


# ---- events ------------------------------------------------------------------------------------


def test_event_direct_invoke(capsys, model, app_module) -> None:
    code, out, _ = run(capsys, [*model, "--event", str(EVENTS / "direct_encode.json")])
    assert code == 0
    response = json.loads(out)
    assert len(response["vectors"]) == 2 and response["dimension"] == 384


def test_event_api_gateway_and_error_status(capsys, model, app_module) -> None:
    code, out, _ = run(capsys, [*model, "--event", str(EVENTS / "api_gateway_v2_encode.json")])
    assert code == 0
    response = json.loads(out)
    assert response["statusCode"] == 200 and len(json.loads(response["body"])["vectors"]) == 1

    code, out, _ = run(capsys, [*model, "--event", str(EVENTS / "bad_empty_text.json")])
    assert code == 1 and json.loads(out)["statusCode"] == 400


def test_event_file_missing(capsys, model) -> None:
    code, _, err = run(capsys, [*model, "--event", "events/does_not_exist.json"])
    assert code == 1 and "cannot read event" in err


# ---- the installed script ---------------------------------------------------------------------


def test_installed_script_help() -> None:
    script = Path(sys.executable).with_name("bert-encode")
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0
    for flag in ("--input", "--output", "--format", "--input-format", "--event", "--max-seq-length", "--no-normalize"):
        assert flag in done.stdout


def test_several_events_one_line_each(default_model_dir, capsys) -> None:
    from bert2vec.cli import main
    from tests.conftest import EVENTS

    events = [str(EVENTS / n) for n in ("direct_encode.json", "bad_empty_text.json", "health.json")]
    assert main(["--model", str(default_model_dir), "--event", *events]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["event"] for x in lines] == events
    assert lines[0]["response"]["dimension"] == 384
    assert lines[1]["response"]["statusCode"] == 400
    assert lines[2]["response"]["statusCode"] == 200


# ---- --batch-size cap, bulk events, --serve ---------------------------------------------------


def test_batch_size_above_the_cap_is_capped_with_a_notice(capsys, model, default_encoder) -> None:
    code, out, err = run(capsys, [*model, "--batch-size", "100000", "hello world", "dogs"])
    assert code == 0
    notices = [line for line in err.splitlines() if "--batch-size" in line]
    assert notices == [
        "bert-encode: --batch-size 100000 is capped at 256 (larger batches only pad more and use more memory)"
    ]
    rows = [json.loads(line) for line in out.splitlines()]
    np.testing.assert_allclose(
        [r["vector"] for r in rows], expected(default_encoder, ["hello world", "dogs"]), atol=1e-6
    )
    code, _, err = run(capsys, [*model, "--batch-size", "256", "hello"])
    assert code == 0 and "capped" not in err


@pytest.mark.parametrize(
    ("event", "handler"),
    [
        ("s3_object_created.json", "function.bulk_app.s3_handler"),
        ("eventbridge_object_created.json", "function.bulk_app.s3_handler"),
        ("sqs_shard.json", "function.bulk_app.sqs_handler"),
    ],
)
def test_bulk_event_with_the_encode_handler_names_the_right_one(capsys, model, event: str, handler: str) -> None:
    code, out, err = run(capsys, [*model, "--event", str(EVENTS / event)])
    assert code == 2 and out == ""
    assert f"--handler {handler}" in err and "function.app.handler" in err
    code, _, err = run(capsys, [*model, "--event", str(EVENTS / "direct_encode.json"), str(EVENTS / event)])
    assert code == 2 and f"--handler {handler}" in err  # checked before anything runs


def test_serve_is_a_mode_of_its_own(capsys, model) -> None:
    code, _, err = run(capsys, [*model, "--serve", "hello"])
    assert code == 2 and "only one of" in err and "--serve" in err
    code, _, err = run(capsys, [*model, "--serve", "--port", "70000"])
    assert code == 2 and "--port" in err


def test_progress_slices_keep_the_windows_batches_and_vectors(default_encoder) -> None:
    """The progress bar's sliced encode forms the same batches as one whole-window call, so the
    vectors are bit-identical, and it reports every few batches, in order, up to the whole window."""
    from bert2vec.cli.files import _SlicedEncoder

    texts = [("word " * (i % 37)) + f"text {i}" for i in range(200)]  # varied lengths; 25 batches of 8
    reports: list[tuple[int, int]] = []
    sliced = _SlicedEncoder(default_encoder, lambda done, total: reports.append((done, total)), batches_per_slice=4)
    got = sliced.encode(texts, batch_size=8)
    want = default_encoder.encode(texts, batch_size=8)
    np.testing.assert_array_equal(got.embeddings, want.embeddings)
    np.testing.assert_array_equal(got.token_counts, want.token_counts)
    np.testing.assert_array_equal(got.truncated, want.truncated)
    # slices of 4 batches; the lone 25th batch joins the last slice (never the single-batch graph)
    assert [d for d, _ in reports] == [32, 64, 96, 128, 160, 200] and {t for _, t in reports} == {200}
    assert sliced.vector_length == default_encoder.vector_length  # everything else is the encoder's
