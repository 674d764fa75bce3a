"""The split encoder graph (``parts``): same vectors as the unsplit one, picked by the CPU quota."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bert2vec.core.encoder import Encoder, pick_parts


def _random_bert(config, seed: int = 0):
    from bert2vec.export.bert_weights import BertWeights, LayerWeights

    rng = np.random.default_rng(seed)
    h, i = config.hidden_size, config.intermediate_size

    def r(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.05).astype(np.float32)

    def layer() -> LayerWeights:
        return LayerWeights(
            r(h, h), r(h), r(h, h), r(h), r(h, h), r(h), r(h, h), r(h), 1 + r(h), r(h),
            r(h, i), r(i), r(i, h), r(h), 1 + r(h), r(h),
        )  # fmt: skip

    return BertWeights(
        r(config.vocab_size, h), r(config.max_position, h), r(2, h), 1 + r(h), r(h),
        [layer() for _ in range(config.num_layers)], r(h, h), r(h),
    )  # fmt: skip


def test_split_graph_is_the_same_function() -> None:
    import tensorflow as tf

    from bert2vec.export.bert_graph import BertConfig, BertEncoderModule

    config = BertConfig(vocab_size=50, hidden_size=48, num_layers=2, num_heads=12, intermediate_size=96, max_position=16)
    module = BertEncoderModule(config, _random_bert(config), parts=(2, 3, 4, 5, 6))
    assert module.parts_counts == (1, 2, 3, 4, 6)  # 5 divides neither 12 heads nor 96
    rng = np.random.default_rng(1)
    ids = tf.constant(rng.integers(0, 50, size=(3, 11)), tf.int32)
    mask = tf.constant(np.arange(11)[None, :] < np.array([[11], [4], [7]]), tf.int32)
    seq1, pooled1 = module(ids, mask)
    for parts in module.parts_counts[1:]:
        seq, pooled = module(ids, mask, parts=parts)
        np.testing.assert_allclose(seq.numpy(), seq1.numpy(), atol=2e-5, err_msg=f"parts={parts}")
        np.testing.assert_allclose(pooled.numpy(), pooled1.numpy(), atol=2e-5, err_msg=f"parts={parts}")
    with pytest.raises(ValueError, match="parts=5"):
        module(ids, mask, parts=5)


def test_row_splits_share_the_unsplit_variables() -> None:
    """Only the column-split kernels (fused QKV, first FFN matmul) are stored once more."""
    from bert2vec.export.bert_graph import BertConfig, BertEncoderModule

    config = BertConfig(vocab_size=50, hidden_size=48, num_layers=1, num_heads=12, intermediate_size=96, max_position=16)
    weights = _random_bert(config)
    one = sum(int(np.prod(v.shape)) for v in BertEncoderModule(config, weights, parts=()).variables)
    two = sum(int(np.prod(v.shape)) for v in BertEncoderModule(config, weights, parts=(2,)).variables)
    h, i = config.hidden_size, config.intermediate_size
    assert two - one == (3 * h * h + 3 * h) + (h * i + i)


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.slow  # every split signature over the golden texts; the graph identity is tested above
def test_exported_split_signature_matches_default_on_real_text(default_model_dir: Path, golden) -> None:
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    loaded = tf.saved_model.load(str(default_model_dir))
    assert "serving_parts_2" in loaded.signatures
    default, split = loaded.signatures["serving_default"], loaded.signatures["serving_parts_2"]
    texts = golden["texts"]
    for start in range(0, len(texts), 16):
        batch = tf.constant(texts[start : start + 16])
        a, b = default(text=batch), split(text=batch)
        np.testing.assert_array_equal(a["token_count"].numpy(), b["token_count"].numpy())
        np.testing.assert_allclose(b["embedding"].numpy(), a["embedding"].numpy(), atol=1e-6)
    one = np.concatenate([split(text=tf.constant([t]))["embedding"].numpy() for t in texts])
    cos = _cosine(one, golden["vectors"])
    assert cos.min() >= 0.99999, f"text {int(np.argmin(cos))}: cosine {cos.min():.7f}"


@pytest.mark.parametrize(("threads", "parts"), [("1", 1), ("2", 2), ("3", 2)])
def test_encoder_picks_parts_by_quota(
    default_model_dir: Path, golden, monkeypatch: pytest.MonkeyPatch, threads: str, parts: int
) -> None:
    monkeypatch.setenv("TF_NUM_THREADS", threads)
    encoder = Encoder.load(default_model_dir)
    assert encoder.workers == int(threads)
    assert encoder.parts == parts
    calls: list[int] = []
    if parts > 1:
        split = encoder._split_fn

        def counting(**kwargs):
            calls.append(len(kwargs["text"]))
            return split(**kwargs)

        encoder._split_fn = counting
    texts = golden["texts"][:20]
    one = encoder.encode(texts[:1])  # one batch: the split graph
    bulk = encoder.encode(texts, batch_size=4)  # five batches side by side: the unsplit graph
    assert calls == ([1] if parts > 1 else [])
    np.testing.assert_allclose(one.embeddings[0], bulk.embeddings[0], atol=1e-5)
    assert _cosine(one.embeddings, golden["vectors"][:1]).min() >= 0.99999


def test_pick_parts() -> None:
    assert pick_parts([], 6) == 1
    assert pick_parts([2], 1) == 1
    assert pick_parts([2, 3, 6], 4) == 3
    assert pick_parts([2, 3, 6], 6) == 6
