"""Bad Hugging Face checkpoints are refused before the build with one line naming the file and the
problem; surprising but workable ones export with a one-line warning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bert2vec.export.cli import main
from tests.fixtures.tiny_bert import LAYERS, tiny_bert


def _one_line_error(capsys: pytest.CaptureFixture[str], src: Path, out: Path) -> str:
    code = main(["--model", str(src), "--output", str(out)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("bert-export: error: "), err
    assert not out.exists()
    return err


def _edit_vocab(src: Path, edit) -> None:  # noqa: ANN001
    path = src / "vocab.txt"
    path.write_bytes(edit(path.read_bytes()))


CASES = {
    "duplicate vocab line": (
        lambda src: _edit_vocab(src, lambda b: b.replace(b"[unused1]\n", b"[unused0]\n", 1)),
        ["vocab.txt: line 3 repeats line 2 ('[unused0]')"],
    ),
    "utf-8 bom": (
        lambda src: _edit_vocab(src, lambda b: b"\xef\xbb\xbf" + b),
        ["vocab.txt: starts with a UTF-8 byte-order mark"],
    ),
    "vocab not utf-8": (
        lambda src: _edit_vocab(src, lambda b: b.replace(b"[unused5]", b"[unused\xff]", 1)),
        ["vocab.txt: line 7 is not valid UTF-8"],
    ),
    "truncated safetensors": (
        lambda src: (src / "model.safetensors").write_bytes((src / "model.safetensors").read_bytes()[:5000]),
        ["model.safetensors: truncated or not a safetensors file"],
    ),
    "heads do not divide hidden": ({"num_attention_heads": 5}, ["config.json: num_attention_heads 5 does not divide hidden_size 32"]),
    "relu": ({"hidden_act": "relu"}, ["config.json: hidden_act 'relu' is not supported", "gelu"]),
    "hidden_size as string": ({"hidden_size": "32"}, ["config.json: hidden_size must be a positive integer, got '32'"]),
    "hidden_size fractional": ({"hidden_size": 32.5}, ["config.json: hidden_size must be a positive integer, got 32.5"]),
    "non-bert model_type": ({"model_type": "distilbert", "architectures": ["DistilBertModel"]}, ["model_type is 'distilbert'", "only BERT"]),
    "malformed modules.json": (
        lambda src: (src / "modules.json").write_text('[{"type": "sentence_transformers.models.Pooling",'),
        ["modules.json: cannot read JSON"],
    ),
    "modules.json not a list": (
        lambda src: (src / "modules.json").write_text('{"0": "Transformer"}'),
        ["modules.json: expected a JSON list of module objects"],
    ),
    "config says more layers than the file has": ({"num_hidden_layers": 3}, ["missing tensor 'encoder.layer.2.", "3 layers"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_checkpoint_is_one_line_naming_file_and_problem(case: str, capsys, tmp_path: Path) -> None:
    change, fragments = CASES[case]
    src = tiny_bert(tmp_path / "src", config=change if isinstance(change, dict) else None)
    if callable(change):
        change(src)
    err = _one_line_error(capsys, src, tmp_path / "m")
    for fragment in fragments:
        assert fragment in err, err
    assert "special tokens" not in err and "Traceback" not in err


def test_bom_is_not_reported_as_missing_special_tokens(capsys, tmp_path: Path) -> None:
    src = tiny_bert(tmp_path / "src")
    _edit_vocab(src, lambda b: b"\xef\xbb\xbf" + b)
    err = _one_line_error(capsys, src, tmp_path / "m")
    assert str(src / "vocab.txt") in err and "remove the first 3 bytes" in err


def _export_warnings(capsys, src: Path, out: Path) -> list[str]:
    assert main(["--model", str(src), "--output", str(out)]) == 0
    return capsys.readouterr().err.splitlines()


def test_surplus_layer_is_named_in_one_warning_and_ignored(capsys, tmp_path: Path) -> None:
    from bert2vec.core.encoder import Encoder

    plain = tiny_bert(tmp_path / "plain")
    extra = tiny_bert(tmp_path / "extra", layers_in_file=LAYERS + 1)  # same seed: same first 2 layers
    lines = _export_warnings(capsys, extra, tmp_path / "m")
    assert lines == [
        f"bert-export: warning: {extra}/model.safetensors: 16 tensors are not used by a 2-layer BERT as "
        "config.json describes it: encoder.layer.2.* (16 tensors)"
    ]
    # Ignored: what the builder reads from the file is exactly the plain 2-layer checkpoint's weights
    # (an export of each would only run equal weights through the same graph).
    import dataclasses

    from bert2vec.export.hf_checkpoint import load_hf_bert

    got, want = load_hf_bert(extra).weights, load_hf_bert(plain).weights
    assert len(got.layers) == len(want.layers) == LAYERS
    for a, b in [(got, want), *zip(got.layers, want.layers, strict=True)]:
        for f in dataclasses.fields(a):
            if f.name != "layers":
                np.testing.assert_array_equal(getattr(a, f.name), getattr(b, f.name), err_msg=f.name)
    assert Encoder.load(tmp_path / "m").encode(["hello world"]).embeddings.shape == (1, 32)


def _export_warnings_before_tracing(prepare_args: tuple, assemble: bool = False) -> tuple[list[str], object]:
    """The ``ExportWarning`` messages of the steps that emit them, without tracing or saving a model."""
    import warnings

    from bert2vec.export.errors import ExportWarning
    from bert2vec.export.preflight import prepare

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ExportWarning)
        prepared = prepare(*prepare_args)
        if assemble:  # the TF Hub encoder's attributes are read when it is loaded
            from bert2vec.export.builder import _assemble_tfhub

            _assemble_tfhub(prepared)
    return [str(w.message) for w in caught if issubclass(w.category, ExportWarning)], prepared


def test_lower_case_false_on_uncased_vocab_warns(tmp_path: Path) -> None:
    from bert2vec.export.preflight import ExportOptions

    src = tiny_bert(tmp_path / "src", tokenizer={"do_lower_case": False})
    messages, prepared = _export_warnings_before_tracing((tmp_path / "m", ExportOptions(source=str(src))))
    assert len(messages) == 1 and messages[0].startswith(f"{src}: tokenizer_config.json sets do_lower_case false")
    assert "no upper-case tokens" in messages[0]
    assert prepared.hf is not None and prepared.hf.lower_case is False  # warned, not changed


def test_lower_case_false_on_cased_vocab_is_quiet(tmp_path: Path) -> None:
    import warnings

    from bert2vec.export.errors import ExportWarning
    from bert2vec.export.preflight import ExportOptions, prepare

    src = tiny_bert(tmp_path / "src", tokenizer={"do_lower_case": False})
    _edit_vocab(src, lambda b: b.replace(b"[unused9]\n", b"Paris\n", 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExportWarning)
        prepared = prepare(tmp_path / "m", ExportOptions(source=str(src)))
    assert prepared.hf is not None and prepared.hf.lower_case is False


def test_tfhub_encoder_with_do_lower_case_false_on_uncased_vocab_warns(tmp_path: Path) -> None:
    from bert2vec.export.preflight import ExportOptions
    from tests.fixtures import tfhub_models as fx

    enc = fx.cached_build("encoder", lower_case=False)  # the real uncased BERT vocabulary
    opts = ExportOptions(source=str(enc), max_seq_length=32)
    messages, _ = _export_warnings_before_tracing((tmp_path / "m", opts), assemble=True)
    assert len(messages) == 1 and messages[0].startswith(f"{enc}: do_lower_case is false"), messages
    assert "no upper-case tokens" in messages[0]
