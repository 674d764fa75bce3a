"""``bert-export`` command line: catalogue listing, atomic output, and every bad input it names."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bert2vec.export import catalogue
from bert2vec.export.cli import main
from bert2vec.export.sources import embedded_default_dir
from tests.fixtures.tiny_bert import tiny_bert

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


def _previous_export(path: Path) -> Path:
    """A directory that looks like an earlier bert-export output (what --force may replace)."""
    path.mkdir(parents=True)
    (path / "model_card.json").write_text(json.dumps({"contract_version": 1, "name": "old"}))
    (path / "old.txt").write_text("old")
    return path


def test_force_replaces_and_failed_export_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    import tensorflow as tf

    from bert2vec.export.builder import ExportOptions, export_model

    src = tiny_bert(tmp_path.parent / f"{tmp_path.name}-src")  # outside tmp_path, which must stay clean
    out = _previous_export(tmp_path / "m")

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    with monkeypatch.context() as m:
        m.setattr(tf.saved_model, "save", boom)
        with pytest.raises(RuntimeError, match="disk full"):
            export_model(out, ExportOptions(source=str(src), force=True))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"], "no temporary directory may remain"
    assert (out / "old.txt").read_text() == "old", "a failed export must not touch the old model"

    card = export_model(out, ExportOptions(source=str(src), force=True))
    assert not (out / "old.txt").exists()
    assert (out / "saved_model.pb").is_file()
    assert json.loads((out / "model_card.json").read_text()) == card
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"], "no .m.old-* may remain"


def _refused(capsys, argv: list[str], *fragments: str) -> str:
    err = _err(capsys, argv)
    assert err.count("\n") == 1 and err.startswith("bert-export: error: "), err
    for fragment in fragments:
        assert fragment in err, err
    return err


def test_force_refuses_a_directory_that_is_not_an_export(capsys, tmp_path: Path) -> None:
    out = tmp_path / "m"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    _refused(capsys, ["--output", str(out), "--force"], "without model_card.json", "only a previous export")
    assert (out / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"], "nothing may be left behind"


def test_force_refuses_a_regular_file_and_a_symlink(capsys, tmp_path: Path) -> None:
    target = _previous_export(tmp_path / "real")
    (tmp_path / "f").write_text("data")
    (tmp_path / "link").symlink_to(target)
    _refused(capsys, ["--output", str(tmp_path / "f"), "--force"], "is a file")
    _refused(capsys, ["--output", str(tmp_path / "link"), "--force"], "symbolic link")
    assert (tmp_path / "f").read_text() == "data" and (target / "old.txt").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f", "link", "real"]


def test_force_refuses_cwd_and_its_ancestors_even_when_they_are_exports(capsys, tmp_path: Path, monkeypatch) -> None:
    outer = _previous_export(tmp_path / "outer")
    inner = _previous_export(outer / "inner")
    monkeypatch.chdir(inner)
    for output in (".", "..", str(outer)):
        _refused(capsys, ["--output", output, "--force"], "current directory")
    assert (inner / "old.txt").is_file() and (outer / "old.txt").is_file()


def test_force_refuses_the_source_and_its_ancestors(capsys, tmp_path: Path) -> None:
    outer = _previous_export(tmp_path / "outer")
    src = _hf_copy(outer)
    _refused(capsys, ["--model", str(src), "--output", str(outer), "--force"], "the source")
    assert (src / "config.json").is_file() and (outer / "old.txt").is_file()


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--output", "/proc/bert2vec-x"], "cannot write in /proc"),
        (["--max-seq-length", "0", "--output", "{tmp}/m"], "--max-seq-length 0: must be at least 3"),
        (["--max-seq-length", "-5", "--output", "{tmp}/m"], "--max-seq-length -5: must be at least 3"),
        (["--output", "{tmp}/file/m"], "is not a directory"),
    ],
)
def test_bad_output_or_option_is_one_line(capsys, tmp_path: Path, argv: list[str], fragment: str) -> None:
    (tmp_path / "file").write_text("x")
    _refused(capsys, [a.replace("{tmp}", str(tmp_path)) for a in argv], fragment)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


_NOBODY = 65534


def _as_nobody(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a child that imports what it needs as root, then drops to uid/gid nobody.

    The venv's interpreter lives under /root (0700 here), so the child cannot start as nobody;
    dropping privileges after the imports still makes every file access of the test as nobody.
    """
    prelude = "import os, sys\n" + code.split("#DROP\n")[0] + f"os.setgid({_NOBODY}); os.setuid({_NOBODY})\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + code.split("#DROP\n")[1], *args],
        capture_output=True, text=True, timeout=300, cwd="/", env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )  # fmt: skip


def test_read_only_parent_is_refused(capsys, tmp_path: Path) -> None:
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="bert2vec-ro-"))  # reachable by nobody, unlike tmp_path
    ro = base / "ro"
    # The source is a checkpoint nobody can read wherever the clone (and its venv's embedded
    # default) lives: under root's 0700 home, nobody could not read the default's weights.
    src = tiny_bert(base / "src")
    for path in [base, *base.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    ro.mkdir(mode=0o555)
    os.chmod(ro, 0o555)
    try:
        argv = ["--model", str(src), "--output", str(ro / "m")]
        if os.geteuid() != 0:
            _refused(capsys, argv, f"cannot write in {ro}", "Permission denied")
        else:  # root ignores file modes: check as an unprivileged user
            proc = _as_nobody(
                "import locale, bert2vec.export.cli, bert2vec.export.preflight, bert2vec.export.errors\n#DROP\nsys.exit(bert2vec.export.cli.main(sys.argv[1:]))",
                *argv,
            )
            assert proc.returncode == 2, proc.stderr
            assert proc.stderr == f"bert-export: error: --output {ro / 'm'}: cannot write in {ro} (Permission denied)\n"
        assert os.listdir(ro) == []
    finally:
        os.chmod(ro, 0o755)
        shutil.rmtree(base)


def test_make_world_readable_overrides_the_umask_and_mkdtemps_0700(tmp_path: Path) -> None:
    """What the builder applies to its temporary export before moving it into place."""
    import tempfile

    from bert2vec.export.builder import _make_world_readable

    old_umask = os.umask(0o077)
    try:
        root = Path(tempfile.mkdtemp(dir=tmp_path))  # 0700, as the builder's staging directory
        (root / "variables").mkdir()
        (root / "variables" / "variables.index").write_bytes(b"x")
        (root / "saved_model.pb").write_bytes(b"x")
    finally:
        os.umask(old_umask)
    assert (root.stat().st_mode & 0o777, (root / "saved_model.pb").stat().st_mode & 0o777) == (0o700, 0o600)
    _make_world_readable(root)
    for path in [root, *root.rglob("*")]:
        assert path.stat().st_mode & 0o777 == (0o755 if path.is_dir() else 0o644), path


@pytest.mark.slow
def test_exported_files_are_world_readable_whatever_the_umask(tmp_path: Path) -> None:
    import tempfile

    from bert2vec.export.builder import ExportOptions, export_model

    base = Path(tempfile.mkdtemp(prefix="bert2vec-perm-"))  # reachable by nobody, unlike tmp_path
    os.chmod(base, 0o755)
    out = base / "new" / "model"
    old_umask = os.umask(0o077)
    try:
        export_model(out, ExportOptions(max_seq_length=32))
    finally:
        os.umask(old_umask)
    try:
        for path in [base / "new", out, *out.rglob("*")]:
            mode = path.stat().st_mode & 0o777
            assert mode == (0o755 if path.is_dir() else 0o644), f"{path}: {oct(mode)}"
        if os.geteuid() != 0:
            pytest.skip("loading as another user needs root")
        proc = _as_nobody(
            "import tensorflow as tf, tensorflow_text\n#DROP\n"
            "m = tf.saved_model.load(sys.argv[1])\n"
            "print(m.signatures['serving_default'](text=tf.constant(['hi']))['embedding'].shape)",
            str(out),
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.strip() == "(1, 384)"
    finally:
        shutil.rmtree(base)


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


def _cli_env() -> dict[str, str]:
    """The environment without tests/conftest.py's TF_CPP_MIN_LOG_LEVEL, so the CLI's own default applies."""
    return {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}


def _one_line_error(argv: list[str], cwd: Path | None = None) -> str:
    exe = Path(sys.executable).with_name("bert-export")
    proc = subprocess.run([str(exe), *argv], capture_output=True, text=True, timeout=300, env=_cli_env(), cwd=cwd)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("bert-export: error: "), proc.stderr
    return proc.stderr


def test_errors_are_exactly_one_line_on_stderr_as_a_process(tmp_path: Path) -> None:
    (tmp_path / "exists").mkdir()
    assert "already exists" in _one_line_error(["--output", str(tmp_path / "exists")])
    assert "cannot write in /proc" in _one_line_error(["--output", "/proc/x"])
    # After TensorFlow is imported: a SavedModel that cannot be loaded. No absl/oneDNN/CUDA lines.
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"not a protobuf")
    assert "cannot load the encoder SavedModel" in _one_line_error(["--model", str(broken), "--output", str(tmp_path / "m")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken", "exists"]


def test_checks_run_before_tensorflow_is_imported(tmp_path: Path) -> None:
    """The "already exists" answer must not pay for importing TensorFlow (seconds)."""
    (tmp_path / "exists").mkdir()
    (tmp_path / "exists" / "model_card.json").write_text('{"contract_version": 1}')
    src = _hf_copy(tmp_path)
    (src / "vocab.txt").write_bytes(b"\xef\xbb\xbf" + (src / "vocab.txt").read_bytes())
    code = (
        "import sys; from bert2vec.export.cli import main\n"
        "codes = [main(['--output', sys.argv[1]]), main(['--model', sys.argv[2], '--output', sys.argv[3]])]\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
        "sys.exit(0 if codes == [2, 2] else 1)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "exists"), str(src), str(tmp_path / "m")],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 2 and "already exists" in lines[0] and "byte-order mark" in lines[1], lines


# bert-export itself (bert2vec.export.cli.main), with a step listener that presses Ctrl-C (SIGINT to its own
# process) when the named step is about to start: the same moment on every run, no timer involved.
_CTRL_C_AT_STEP = """
import os, signal, sys
from bert2vec.export import interrupts
from bert2vec.export.cli import main

def press_ctrl_c(step):
    if step == sys.argv[2]:
        os.kill(os.getpid(), signal.SIGINT)

interrupts.add_step_listener(press_ctrl_c)
sys.exit(main(["--model", sys.argv[3], "--output", sys.argv[1], "--force"]))
"""


def test_ctrl_c_mid_export_is_one_line_exit_130_and_leaves_everything_as_it_was(tmp_path: Path) -> None:
    """SIGINT just before ``tf.saved_model.save`` (the temporary export exists, TensorFlow's C++ runs
    next): the handler only notes it, the save finishes, the next step boundary stops the export."""
    src = tiny_bert(tmp_path.parent / f"{tmp_path.name}-src")
    out = _previous_export(tmp_path / "m")
    proc = subprocess.run(
        [sys.executable, "-c", _CTRL_C_AT_STEP, str(out), "save the SavedModel", str(src)],
        capture_output=True, text=True, timeout=600, env=_cli_env(), cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr == "bert-export: interrupted\n" and proc.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    assert sorted(p.name for p in out.iterdir()) == ["model_card.json", "old.txt"]
