"""``bert-export`` command line: catalogue listing, atomic output, and every bad input it names."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from export import catalogue
from export.cli import main
from export.sources import embedded_default_dir

REPO = Path(__file__).resolve().parents[2]
SEEDS = [
    "bert_cased_L-12_H-768_A-12",
    "bert_cased_L-24_H-1024_A-16",
    "bert_chinese_L-12_H-768_A-12",
    "bert_multi_cased_L-12_H-768_A-12",
    "bert_uncased_L-12_H-768_A-12",
    "bert_uncased_L-24_H-1024_A-16",
]


def test_list_prints_name_handle_and_vector_length(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in lines}
    for name in SEEDS:
        handle, dim = rows[name]
        assert handle.startswith("https://tfhub.dev/tensorflow/bert_") and handle.endswith("/4")
        assert dim == ("1024" if "H-1024" in name else "768")
    assert rows["small_bert_uncased_L-4_H-256_A-4"] == [
        "https://tfhub.dev/tensorflow/small_bert/bert_en_uncased_L-4_H-256_A-4/2",
        "256",
    ]
    assert len(rows) == 6 + 24


@pytest.mark.parametrize("name", SEEDS)
def test_catalogue_accepts_google_prefix(name: str) -> None:
    entry = catalogue.lookup("google/" + name)
    assert entry is not None and entry.name == name
    assert entry.preprocess.endswith("_preprocess/3")


def test_seed_handles_match_guide() -> None:
    assert catalogue.lookup("bert_chinese_L-12_H-768_A-12").handle == (
        "https://tfhub.dev/tensorflow/bert_zh_L-12_H-768_A-12/4"
    )
    assert catalogue.lookup("bert_chinese_L-12_H-768_A-12").preprocess == (
        "https://tfhub.dev/tensorflow/bert_zh_preprocess/3"
    )
    assert catalogue.lookup("small_bert/bert_en_uncased_L-2_H-128_A-2").vector_length == 128


def _err(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2, captured
    assert "Traceback" not in captured.err
    return captured.err


def test_unknown_name_lists_close_names(capsys, tmp_path: Path) -> None:
    err = _err(capsys, ["--model", "bert_uncased_L-12_H-768", "--output", str(tmp_path / "m")])
    assert "unknown model 'bert_uncased_L-12_H-768'" in err
    assert "bert_uncased_L-12_H-768_A-12" in err
    assert not (tmp_path / "m").exists()


def test_directory_of_unknown_format_says_what_was_expected(capsys, tmp_path: Path) -> None:
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("hi")
    err = _err(capsys, ["--model", str(tmp_path / "junk"), "--output", str(tmp_path / "m")])
    assert "not a model directory" in err and "saved_model.pb" in err and "config.json" in err


def test_missing_directory(capsys, tmp_path: Path) -> None:
    err = _err(capsys, ["--model", str(tmp_path / "nope"), "--output", str(tmp_path / "m")])
    assert "no such directory" in err


def _hf_copy(tmp_path: Path) -> Path:
    src = tmp_path / "hf"
    shutil.copytree(embedded_default_dir(), src, ignore=shutil.ignore_patterns("*.safetensors"))
    os.symlink(embedded_default_dir() / "model.safetensors", src / "model.safetensors")
    return src


def test_non_bert_hf_config_is_refused(capsys, tmp_path: Path) -> None:
    src = _hf_copy(tmp_path)
    cfg = json.loads((src / "config.json").read_text())
    cfg.update(model_type="roberta", architectures=["RobertaModel"])
    (src / "config.json").write_text(json.dumps(cfg))
    err = _err(capsys, ["--model", str(src), "--output", str(tmp_path / "m")])
    assert "model_type is 'roberta'" in err and "only BERT" in err


def test_vocab_size_mismatch_is_refused(capsys, tmp_path: Path) -> None:
    src = _hf_copy(tmp_path)
    lines = (src / "vocab.txt").read_text(encoding="utf-8").splitlines()
    (src / "vocab.txt").write_text("\n".join(lines[:-10]) + "\n", encoding="utf-8")
    err = _err(capsys, ["--model", str(src), "--output", str(tmp_path / "m")])
    assert "vocab.txt has 30512 entries" in err and "30522 rows" in err


def test_pytorch_bin_only_checkpoint_is_explained(capsys, tmp_path: Path) -> None:
    src = _hf_copy(tmp_path)
    (src / "model.safetensors").unlink()
    (src / "pytorch_model.bin").write_bytes(b"\0")
    err = _err(capsys, ["--model", str(src), "--output", str(tmp_path / "m")])
    assert "no model.safetensors" in err and "pytorch_model.bin" in err


def test_max_seq_length_above_model_maximum(capsys, tmp_path: Path) -> None:
    err = _err(capsys, ["--max-seq-length", "1024", "--output", str(tmp_path / "m")])
    assert "--max-seq-length 1024" in err and "512" in err
    assert not (tmp_path / "m").exists()


def test_existing_output_refused_without_force(capsys, tmp_path: Path) -> None:
    out = tmp_path / "m"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    err = _err(capsys, ["--output", str(out)])
    assert "already exists" in err and "--force" in err
    assert (out / "keep.txt").read_text() == "mine"


def test_force_replaces_and_failed_export_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    import tensorflow as tf

    from export.builder import ExportOptions, export_model

    out = tmp_path / "m"
    out.mkdir()
    (out / "old.txt").write_text("old")

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    with monkeypatch.context() as m:
        m.setattr(tf.saved_model, "save", boom)
        with pytest.raises(RuntimeError, match="disk full"):
            export_model(out, ExportOptions(force=True, max_seq_length=32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"], "no temporary directory may remain"
    assert (out / "old.txt").read_text() == "old", "a failed export must not touch the old model"

    card = export_model(out, ExportOptions(force=True, max_seq_length=32))
    assert not (out / "old.txt").exists()
    assert (out / "saved_model.pb").is_file()
    assert json.loads((out / "model_card.json").read_text()) == card
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_user_error_exits_nonzero_without_traceback_as_a_process(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("bert-export")
    proc = subprocess.run(
        [str(exe), "--model", "bert_uncased_L12", "--output", str(tmp_path / "m")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "bert-export: error: unknown model" in proc.stderr
