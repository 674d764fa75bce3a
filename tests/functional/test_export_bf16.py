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
    from function.encoder import Encoder

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
    from export.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["--precision", "fp8", "--output", str(tmp_path / "m")])
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err
