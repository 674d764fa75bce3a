"""``bert-export --precision bf16``: dense layers in bfloat16, opt-in; fp32 stays the exact default."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import cached_export

BF16_MIN_COSINE = 0.999  # measured on the golden texts; the figure is in docs/performance.md


@pytest.fixture(scope="module")
def bf16_dir():
    return cached_export(None, precision="bf16")


@pytest.mark.slow  # a whole bf16 export of the embedded default
def test_bf16_vectors_stay_close_to_fp32_on_real_text(bf16_dir, default_encoder, golden) -> None:
    from bert2vec.core.encoder import Encoder

    texts = golden["texts"]
    fp32 = default_encoder.encode(texts).embeddings
    bf16 = Encoder.load(bf16_dir).encode(texts)
    cos = (fp32 * bf16.embeddings).sum(axis=1)  # both L2-normalised
    assert cos.min() >= BF16_MIN_COSINE, cos.min()
    assert not np.array_equal(fp32, bf16.embeddings)  # it really ran in bfloat16
    np.testing.assert_array_equal(bf16.token_counts, default_encoder.encode(texts).token_counts)


@pytest.mark.slow
def test_bf16_is_recorded_and_stored_as_bfloat16(bf16_dir, default_model_dir) -> None:
    import tensorflow as tf

    assert json.loads((bf16_dir / "model_card.json").read_text())["precision"] == "bf16"
    assert json.loads((default_model_dir / "model_card.json").read_text())["precision"] == "fp32"
    reader = tf.train.load_checkpoint(str(bf16_dir / "variables" / "variables"))
    dtypes = reader.get_variable_to_dtype_map()
    kernels = {k: v for k, v in dtypes.items() if "kernel" in k and "pooler" not in k}
    assert kernels and all(v == tf.bfloat16 for v in kernels.values()), kernels
    assert all(v == tf.float32 for k, v in dtypes.items() if "ln_" in k or "embeddings" in k)


def test_unknown_precision_is_a_usage_error(tmp_path, capsys) -> None:
    from bert2vec.export.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["--precision", "fp8", "--output", str(tmp_path / "m")])
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_bf16_dir(tmp_path_factory):
    from tests.fixtures.tiny_bert import tiny_bert

    return cached_export(tiny_bert(tmp_path_factory.mktemp("tiny") / "ckpt"), precision="bf16")


@pytest.mark.parametrize("native", [True, False, None])
def test_a_bf16_export_says_whether_this_cpu_runs_it_natively(tiny_bf16_dir, native, monkeypatch, caplog) -> None:
    """The CPU is the one thing a test cannot change here, so its answer is stood in for: on a CPU
    without native bfloat16 the model still serves (the vectors are right, only slower) with one
    warning, and ``/model`` and ``/info`` say which precision runs and whether it is emulated."""
    import bert2vec.core.cpu
    from bert2vec.core.encoder import Encoder
    from bert2vec.http.wire import tei

    monkeypatch.setattr(bert2vec.core.cpu, "native_bf16", lambda: native)
    with caplog.at_level("WARNING", logger="bert2vec.core.encoder"):
        enc = Encoder.load(tiny_bf16_dir, workers=1)
    warnings = [r.getMessage() for r in caplog.records if "bfloat16" in r.getMessage()]
    assert len(warnings) == (1 if native is False else 0), warnings
    if native is False:
        assert "--precision fp32" in warnings[0]
    assert enc.runtime["precision"] == "bf16" and enc.runtime["bf16_native"] is native
    assert enc.encode(["still served"]).embeddings.shape == (1, enc.vector_length)
    info = tei.info(enc.card, runtime=enc.runtime, max_texts=1, max_request_tokens=1, max_request_chars=1, version="x")
    assert info["model_dtype"] == "bfloat16" and info["bf16_native"] is native


def test_an_fp32_export_reports_float32_and_no_bf16_question(default_encoder) -> None:
    from bert2vec.http.wire import tei

    assert default_encoder.runtime["precision"] == "fp32" and default_encoder.runtime["bf16_native"] is None
    info = tei.info(default_encoder.card, runtime=default_encoder.runtime, max_texts=1, max_request_tokens=1,
                    max_request_chars=1, version="x")  # fmt: skip
    assert info["model_dtype"] == "float32" and info["bf16_native"] is None
