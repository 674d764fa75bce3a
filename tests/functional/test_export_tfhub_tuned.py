"""TF Hub encoders rebuilt on the tuned graph must equal ``hub.load`` → ``bert_pack_inputs`` → encoder.

Two encoders: ``tests/fixtures/garden_bert_encoder`` (made by TF Model Garden's own ``BertEncoder``
and ``export_tfhub_lib.export_model``, see ``make_garden_encoder.py``: the real variable names,
shapes and tanh GELU) and the imitation fixture of ``tfhub_models.py`` (erf GELU). Texts: the golden
set (331 real and edge-case texts, many longer than the encoders' maximum) plus the short set of
``test_export_tfhub.py``. The reference packs at the encoder's maximum length, as the export does.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401

from bert2vec.core.encoder import Encoder
from bert2vec.export import tfhub_source as th
from bert2vec.export import tfhub_weights
from bert2vec.export.errors import ExportWarning
from tests.conftest import GOLDEN, cached_export
from tests.fixtures import tfhub_models as fx
from tests.functional.test_export_tfhub import TEXTS

GARDEN_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "garden_bert_encoder"
GOLDEN_TEXTS = json.loads((GOLDEN / "minilm_golden.json").read_text(encoding="utf-8"))["texts"]
ALL_TEXTS = GOLDEN_TEXTS + TEXTS
ATOL = 1e-5


def _reference(enc_dir: Path, pre_dir: Path, texts: list[str]) -> SimpleNamespace:
    """pooled / mean-pooled vectors and lengths the TF Hub way, 32 texts at a time."""
    import tensorflow_hub as hub

    enc, pre = hub.load(str(enc_dir)), hub.load(str(pre_dir))
    seq_length = int(th.HubEncoder(enc, str(enc_dir), rebuild=False).max_position())
    pooled, mean, lengths = [], [], []
    for start in range(0, len(texts), 32):
        packed = pre.bert_pack_inputs([pre.tokenize(tf.constant(texts[start : start + 32]))], seq_length=seq_length)
        out = enc(packed, training=False)
        mask = tf.cast(packed["input_mask"], tf.float32)[:, :, None]
        pooled.append(out["pooled_output"].numpy())
        mean.append((tf.reduce_sum(out["sequence_output"] * mask, 1) / tf.reduce_sum(mask, 1)).numpy())
        lengths.append(packed["input_mask"].numpy().sum(axis=1))
    return SimpleNamespace(
        enc_dir=enc_dir,
        pre_dir=pre_dir,
        seq_length=seq_length,
        pooled=np.concatenate(pooled),
        mean=np.concatenate(mean),
        lengths=np.concatenate(lengths),
    )


@pytest.fixture(scope="module")
def garden() -> SimpleNamespace:
    pre_dir = fx.cached_build("preprocess", vocab_file=GARDEN_DIR / "assets" / "vocab.txt")
    return _reference(GARDEN_DIR, pre_dir, ALL_TEXTS)


@pytest.fixture(scope="module")
def imitation() -> SimpleNamespace:
    return _reference(fx.cached_build("encoder"), fx.cached_build("preprocess"), ALL_TEXTS)


def _saved_variable_names(model: Path) -> list[str]:
    return [name for name, _ in tf.train.list_variables(str(model / "variables" / "variables"))]


def _rebuild(restored: tf.Module, where: str = "encoder") -> tuple[th.HubEncoder, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ExportWarning)
        encoder = th.HubEncoder(restored, where)
    return encoder, [str(w.message) for w in caught if issubclass(w.category, ExportWarning)]


# --- the Model Garden fixture is what Google's exporter writes ---------------------------------


def test_garden_fixture_has_model_garden_variables() -> None:
    restored = tf.saved_model.load(str(GARDEN_DIR))
    shapes = {v.name: v.shape.as_list() for v in restored.variables}
    assert shapes["word_embeddings/embeddings:0"] == [2965, 64]
    assert shapes["position_embedding/embeddings:0"] == [128, 64]
    assert shapes["type_embeddings/embeddings:0"] == [2, 64]
    assert shapes["transformer/layer_1/self_attention/query/kernel:0"] == [64, 4, 16]
    assert shapes["transformer/layer_1/self_attention/query/bias:0"] == [4, 16]
    assert shapes["transformer/layer_1/self_attention/attention_output/kernel:0"] == [4, 16, 64]
    assert shapes["transformer/layer_1/intermediate/kernel:0"] == [64, 128]
    assert shapes["pooler_transform/kernel:0"] == [64, 64]
    assert len(shapes) == 5 + 2 * 16 + 2 + 1  # embeddings, 2 layers, pooler, do_lower_case
    assert bool(restored.do_lower_case.numpy()) is True
    assert Path(restored.vocab_file.asset_path.numpy().decode()).name == "vocab.txt"


def test_conversion_is_a_reshape_of_the_einsum_kernels() -> None:
    restored = tf.saved_model.load(str(GARDEN_DIR))
    named = {v.name: v.numpy() for v in restored.variables}
    config, weights = tfhub_weights.convert(named)
    assert (config.vocab_size, config.hidden_size, config.num_layers, config.num_heads) == (2965, 64, 2, 4)
    assert (config.intermediate_size, config.max_position, config.type_vocab_size) == (128, 128, 2)
    p = "transformer/layer_1/self_attention/"
    q = named[p + "query/kernel:0"]  # [H, heads, head_dim]
    np.testing.assert_array_equal(weights.layers[1].q_kernel[:, 2 * 16 + 5], q[:, 2, 5])
    np.testing.assert_array_equal(weights.layers[1].v_bias[3 * 16 : 4 * 16], named[p + "value/bias:0"][3])
    out = named[p + "attention_output/kernel:0"]  # [heads, head_dim, H]
    np.testing.assert_array_equal(weights.layers[1].attn_out_kernel[1 * 16 + 7], out[1, 7])
    np.testing.assert_array_equal(weights.pooler_kernel, named["pooler_transform/kernel:0"])


def test_activation_is_read_from_the_restored_graph(garden, imitation) -> None:
    garden_encoder, warned = _rebuild(tf.saved_model.load(str(garden.enc_dir)))
    assert garden_encoder.rebuilt and not warned
    assert garden_encoder.tuned.config.hidden_act == "gelu_new"  # Model Garden: tanh GELU
    imitation_encoder, warned = _rebuild(tf.saved_model.load(str(imitation.enc_dir)))
    assert imitation_encoder.rebuilt and not warned
    assert imitation_encoder.tuned.config.hidden_act == "gelu"  # the imitation uses erf


# --- fidelity -----------------------------------------------------------------------------------


def _l2(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("which", ["garden", pytest.param("imitation", marks=pytest.mark.slow)])  # garden: the real layout
@pytest.mark.parametrize("pooling", ["pooled", pytest.param("mean", marks=pytest.mark.slow)])  # one pooling shows the rebuild; pooling.py is shared
def test_rebuilt_export_equals_hub_pipeline(which: str, pooling: str, request) -> None:
    ref = request.getfixturevalue(which)
    model = cached_export(ref.enc_dir, preprocess=str(ref.pre_dir), pooling=pooling, normalize=False)
    assert any("qkv_kernel" in n for n in _saved_variable_names(model))  # the tuned graph ...
    assert not any("query" in n or "einsum" in n.lower() for n in _saved_variable_names(model))  # ... only
    result = Encoder.load(model).encode(ALL_TEXTS)
    expected = ref.pooled if pooling == "pooled" else ref.mean
    assert np.abs(result.embeddings - expected).max() <= ATOL
    np.testing.assert_array_equal(np.minimum(result.token_counts, ref.seq_length), ref.lengths)
    assert (ref.lengths == ref.seq_length).sum() >= 20  # many texts were truncated


def test_rebuilt_export_with_the_encoders_own_vocab(garden) -> None:
    """No preprocess model: the in-graph tokenizer from vocab_file/do_lower_case, as before."""
    model = cached_export(garden.enc_dir)  # default: pooled + normalize
    result = Encoder.load(model).encode(TEXTS)
    np.testing.assert_allclose(result.embeddings, _l2(garden.pooled[-len(TEXTS) :]), atol=ATOL)
    card = json.loads((model / "model_card.json").read_text())
    assert card["lower_case"] is True and card["vocab_size"] == 2965 and card["max_seq_length"] == 128


def test_rebuilt_export_without_the_split_graph() -> None:
    """``--no-split`` reaches the TF Hub path too: no split kernels, the same vectors."""
    default, no_split = cached_export(GARDEN_DIR), cached_export(GARDEN_DIR, split=False)
    assert any("/splits/" in n for n in _saved_variable_names(default))
    assert not any("/splits/" in n for n in _saved_variable_names(no_split))
    assert json.loads((no_split / "model_card.json").read_text())["split_parts"] == []
    np.testing.assert_array_equal(
        Encoder.load(no_split, workers=1).encode(TEXTS).embeddings, Encoder.load(default, workers=1).encode(TEXTS).embeddings
    )


# --- what is not rebuilt -------------------------------------------------------------------------


def test_realistic_activations_need_the_gelu_read_from_the_graph() -> None:
    """With random 0.02-scale weights erf and tanh GELU agree to 1e-6; at trained-BERT scale they do not."""
    import dataclasses

    from bert2vec.export.bert_graph import BertEncoderModule

    restored = tf.saved_model.load(str(GARDEN_DIR))
    for v in restored.variables:
        if v.name.endswith("intermediate/kernel:0"):
            v.assign(v * 40.0)  # GELU inputs of a few units, as in trained BERTs
    encoder, warned = _rebuild(restored)
    assert encoder.rebuilt and not warned and encoder.tuned.config.hidden_act == "gelu_new"
    probe = th._probe(2965, 128)
    right = th.probe_difference(encoder.tuned, restored, *probe)
    config, weights = tfhub_weights.convert({v.name: v for v in restored.variables})
    erf = BertEncoderModule(dataclasses.replace(config, hidden_act="gelu"), weights)
    wrong = th.probe_difference(erf, restored, *probe)
    assert right < 2e-6 and wrong > 20 * right


def test_a_rebuild_that_disagrees_on_the_probe_keeps_the_restored_graph(monkeypatch) -> None:
    convert = tfhub_weights.convert

    def swapped_query_and_key(variables):
        config, weights = convert(variables)
        layer = weights.layers[0]
        layer.q_kernel, layer.k_kernel = layer.k_kernel, layer.q_kernel
        return config, weights

    monkeypatch.setattr(tfhub_weights, "convert", swapped_query_and_key)
    restored = tf.saved_model.load(str(GARDEN_DIR))
    encoder, warned = _rebuild(restored, "swapped")
    assert not encoder.rebuilt and encoder.restored is restored
    assert len(warned) == 1 and "does not reproduce" in warned[0] and th.SLOW_PATH_COST in warned[0]


def _imitation_encoder(extra: tf.Variable | None = None, rename=None) -> fx.TFHubBertEncoder:
    cfg = fx._EncoderConfig(
        vocab_size=30522, num_layers=2, hidden_size=64, num_heads=2, intermediate_size=128,
        max_position=512, type_vocab_size=2,
    )  # fmt: skip
    encoder = fx.TFHubBertEncoder(fx._random_bert_weights(cfg, 1), cfg, str(fx.default_vocab_file()), True)
    if rename is not None:  # the same numbers under other names (only the names are read)
        encoder.variables = [tf.Variable(v, name=rename(v.name.split(":")[0])) for v in encoder.variables]
    if extra is not None:
        encoder.variables = [*encoder.variables, extra]
    return encoder


def test_a_common_scope_prefix_is_accepted() -> None:
    encoder, warned = _rebuild(_imitation_encoder(rename=lambda name: "bert_encoder/" + name))
    assert encoder.rebuilt and not warned


@pytest.mark.parametrize("kind", ["extra", "renamed"])
def test_unknown_layout_keeps_the_restored_graph(kind: str) -> None:
    extra = tf.Variable(tf.ones([64]), name="adapter/scale") if kind == "extra" else None
    tf1_style = (lambda name: "bert/" + name.replace("/", ".")) if kind == "renamed" else None
    restored = _imitation_encoder(extra=extra, rename=tf1_style)
    encoder, warned = _rebuild(restored, "foreign")
    assert not encoder.rebuilt and encoder.restored is restored
    assert len(warned) == 1 and warned[0].startswith("foreign: the encoder's variables are not")
    assert ("adapter/scale" if kind == "extra" else "word_embeddings") in warned[0]
    assert th.SLOW_PATH_COST in warned[0]
    ids = tf.constant([[101, 7592, 2088, 102, 0]], tf.int32)
    mask = tf.constant([[1, 1, 1, 1, 0]], tf.int32)
    seq, pooled = encoder(ids, mask)
    ref = restored({"input_word_ids": ids, "input_mask": mask, "input_type_ids": tf.zeros_like(ids)})
    np.testing.assert_array_equal(pooled.numpy(), ref["pooled_output"].numpy())


@pytest.mark.slow  # a whole export for the CLI's line; the decision is test_unknown_layout_keeps_the_restored_graph's
def test_unknown_layout_export_warns_once_on_the_command_line(tmp_path: Path, capsys) -> None:
    from bert2vec.export.cli import main

    restored = _imitation_encoder(extra=tf.Variable(tf.ones([64]), name="adapter/scale"))
    spec = fx.encoder_input_spec()
    for training in (False, True):
        restored.__call__.get_concrete_function(spec, training=training)
    src = tmp_path / "foreign"
    tf.saved_model.save(restored, str(src))
    assert main(["--model", str(src), "--output", str(tmp_path / "m"), "--max-seq-length", "32"]) == 0
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith("bert-export: warning:") and th.SLOW_PATH_COST in lines[0]
    assert not any("qkv_kernel" in n for n in _saved_variable_names(tmp_path / "m"))
