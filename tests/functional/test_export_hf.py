"""Hugging Face checkpoints beyond the embedded default: ``bert.``-prefixed heads, pooler, casing.

The reference is an independent numpy BERT forward written here from the HF ``BertModel``
definition (not our TF graph), run on the HF tokenizer's ids.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from bert2vec.core.encoder import Encoder
from bert2vec.export.sources import embedded_default_dir
from tests.conftest import cached_export
from tests.fixtures.tiny_bert import HEADS, INTER, LAYERS, H, layer_tensors

erf = np.vectorize(math.erf)


def _layer_norm(x: np.ndarray, g: np.ndarray, b: np.ndarray) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-12) * g + b


def numpy_bert(w: dict[str, np.ndarray], ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """HF BertModel forward for one unpadded sequence: (sequence_output, pooled_output)."""
    p = "bert."
    s = len(ids)
    x = w[p + "embeddings.word_embeddings.weight"][ids] + w[p + "embeddings.position_embeddings.weight"][:s]
    x = x + w[p + "embeddings.token_type_embeddings.weight"][0]
    x = _layer_norm(x, w[p + "embeddings.LayerNorm.weight"], w[p + "embeddings.LayerNorm.bias"])
    hd = H // HEADS
    for n in range(LAYERS):
        q = f"{p}encoder.layer.{n}."

        def lin(name: str, v: np.ndarray, q: str = q) -> np.ndarray:
            return v @ w[q + name + ".weight"].T + w[q + name + ".bias"]

        qh, kh, vh = (lin(f"attention.self.{m}", x).reshape(s, HEADS, hd).transpose(1, 0, 2) for m in ("query", "key", "value"))
        scores = qh @ kh.transpose(0, 2, 1) / np.sqrt(hd)
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        ctx = (probs @ vh).transpose(1, 0, 2).reshape(s, H)
        x = _layer_norm(lin("attention.output.dense", ctx) + x, w[q + "attention.output.LayerNorm.weight"], w[q + "attention.output.LayerNorm.bias"])
        inter = lin("intermediate.dense", x)
        inter = 0.5 * inter * (1 + erf(inter / np.sqrt(2)))
        x = _layer_norm(lin("output.dense", inter) + x, w[q + "output.LayerNorm.weight"], w[q + "output.LayerNorm.bias"])
    pooled = np.tanh(x[0] @ w[p + "pooler.dense.weight"].T + w[p + "pooler.dense.bias"])
    return x, pooled


@pytest.fixture(scope="module")
def tiny_hf(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    """A BertForMaskedLM-style checkpoint (``bert.`` prefix, an extra ``cls.`` head), cased."""
    from safetensors.numpy import save_file

    d = tmp_path_factory.mktemp("hf") / "tiny-bert-cased"
    d.mkdir()
    vocab = (embedded_default_dir() / "vocab.txt").read_text(encoding="utf-8").splitlines()
    vocab += ["Hello", "World", "Café", "Dog"]  # a few cased entries so casing matters
    (d / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    rng = np.random.RandomState(7)

    def r(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.2).astype(np.float32)

    w: dict[str, np.ndarray] = {
        "bert.embeddings.word_embeddings.weight": r(len(vocab), H),
        "bert.embeddings.position_embeddings.weight": r(64, H),
        "bert.embeddings.token_type_embeddings.weight": r(2, H),
        "bert.embeddings.LayerNorm.weight": 1 + r(H),
        "bert.embeddings.LayerNorm.bias": r(H),
        "bert.pooler.dense.weight": r(H, H),
        "bert.pooler.dense.bias": r(H),
        "cls.predictions.bias": r(len(vocab)),
    }
    for n in range(LAYERS):
        w.update(layer_tensors(rng, n, prefix="bert."))
    save_file(w, str(d / "model.safetensors"))
    config = {
        "model_type": "bert", "architectures": ["BertForMaskedLM"], "vocab_size": len(vocab), "hidden_size": H,
        "num_hidden_layers": LAYERS, "num_attention_heads": HEADS, "intermediate_size": INTER,
        "max_position_embeddings": 64, "type_vocab_size": 2, "hidden_act": "gelu", "layer_norm_eps": 1e-12,
    }  # fmt: skip
    (d / "config.json").write_text(json.dumps(config))
    (d / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False}))
    return d, w


TEXTS = ["Hello World", "hello world", "Café Dog runs", "A longer sentence with several words. " * 3]


def test_cased_checkpoint_with_pooler_equals_numpy_reference(tiny_hf) -> None:
    from transformers import BertTokenizerFast

    directory, w = tiny_hf
    model = cached_export(directory, normalize=False)
    card = json.loads((model / "model_card.json").read_text())
    assert card["pooling"] == "pooled" and card["lower_case"] is False and card["max_seq_length"] == 64
    result = Encoder.load(model).encode(TEXTS)
    tok = BertTokenizerFast(str(directory / "vocab.txt"), do_lower_case=False)
    for i, text in enumerate(TEXTS):
        ids = tok(text)["input_ids"]
        assert result.token_counts[i] == len(ids)
        _, pooled = numpy_bert(w, ids)
        np.testing.assert_allclose(result.embeddings[i], pooled, atol=1e-5)
    assert not np.allclose(result.embeddings[0], result.embeddings[1])  # casing is kept


@pytest.mark.slow  # two whole exports; pooling is bert2vec/export/pooling.py for every source, and the default export checks mean pooling against sentence-transformers
def test_cls_and_mean_pooling(tiny_hf) -> None:
    from transformers import BertTokenizerFast

    directory, w = tiny_hf
    tok = BertTokenizerFast(str(directory / "vocab.txt"), do_lower_case=False)
    seqs = [numpy_bert(w, tok(t)["input_ids"])[0] for t in TEXTS]
    cls = Encoder.load(cached_export(directory, pooling="cls", normalize=False)).encode(TEXTS).embeddings
    mean = Encoder.load(cached_export(directory, pooling="mean")).encode(TEXTS).embeddings
    for i, seq in enumerate(seqs):
        np.testing.assert_allclose(cls[i], seq[0], atol=1e-5)
        ref = seq.mean(0) / np.linalg.norm(seq.mean(0))
        np.testing.assert_allclose(mean[i], ref, atol=1e-5)


def test_checkpoint_without_pooler_defaults_to_mean_and_refuses_pooled(tiny_hf, tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    from bert2vec.export.builder import ExportOptions, export_model
    from bert2vec.export.errors import IncompatibleModelError

    directory, w = tiny_hf
    src = tmp_path / "nopooler"
    shutil.copytree(directory, src)
    save_file({k: v for k, v in w.items() if "pooler" not in k}, str(src / "model.safetensors"))
    card = export_model(tmp_path / "m", ExportOptions(source=str(src)))
    assert card["pooling"] == "mean"
    with pytest.raises(IncompatibleModelError, match="no pooler weights"):
        export_model(tmp_path / "m2", ExportOptions(source=str(src), pooling="pooled"))
