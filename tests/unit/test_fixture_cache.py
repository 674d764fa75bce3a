"""The export cache's dependency recording (tests/conftest.py): what ran, and what that code could read."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import _CodeRecorder, _content_key, _request_key


def test_records_the_modules_that_ran_and_what_they_import_but_not_the_rest() -> None:
    from bert2vec.export import sources

    with _CodeRecorder() as recorder:
        assert sources.is_handle("https://tfhub.dev/tensorflow/bert_en_uncased_preprocess/3")
    files = recorder.files()
    assert "bert2vec/export/sources.py" in files  # ran
    # sources.py imports these at module level: their names are readable by the code that ran.
    assert {"bert2vec/export/catalogue.py", "bert2vec/export/hf_hub.py", "bert2vec/export/errors.py", "bert2vec/export/hf_checkpoint.py"} <= set(files)
    assert "bert2vec/export/bert_weights.py" in files  # imported by hf_checkpoint at module level
    # Nothing that ran can reach these: editing them must not throw this build away.
    assert not {"bert2vec/export/cli.py", "bert2vec/export/builder.py", "bert2vec/export/tfhub_source.py"} & set(files)


def test_an_import_inside_a_function_counts_only_if_that_function_ran(capsys) -> None:
    from bert2vec.export import cli

    with _CodeRecorder() as recorder:
        cli.build_parser()
    files = set(recorder.files())
    assert {"bert2vec/export/cli.py", "bert2vec/export/catalogue.py", "bert2vec/core/contract.py"} <= files  # ran / module-level imports
    assert "bert2vec/export/preflight.py" not in files and "bert2vec/export/errors.py" not in files  # imported only by _run etc.

    with _CodeRecorder() as recorder:
        cli._show_warning("careful", UserWarning, "here.py", 1)  # imports bert2vec.export.errors when it runs
    assert "bert2vec/export/errors.py" in recorder.files()
    assert "bert2vec/export/preflight.py" not in recorder.files()
    assert "careful" in capsys.readouterr().err


def test_a_missing_dependency_never_matches_a_build() -> None:
    assert _content_key(["bert2vec/export/sources.py"]) is not None
    assert _content_key(["bert2vec/export/no_such_module.py"]) is None


def test_a_source_directory_is_keyed_by_its_name_and_contents_not_its_location(tmp_path: Path) -> None:
    """A checkpoint a test writes into a new temporary directory every session must find last
    session's build; any change to its files, its name or the options must not."""
    first, second = tmp_path / "a" / "ckpt", tmp_path / "b" / "ckpt"
    for d in (first, second):
        d.mkdir(parents=True)
        (d / "config.json").write_text('{"hidden_size": 32}')
    assert _request_key(first, {"pooling": "mean"}) == _request_key(second, {"pooling": "mean"})
    assert _request_key(first, {"pooling": "mean"}) != _request_key(first, {"pooling": "cls"})
    renamed = tmp_path / "c" / "other"
    renamed.mkdir(parents=True)
    (renamed / "config.json").write_text('{"hidden_size": 32}')
    assert _request_key(renamed, {}) != _request_key(first, {})
    (second / "config.json").write_text('{"hidden_size": 64}')
    assert _request_key(first, {}) != _request_key(second, {})
