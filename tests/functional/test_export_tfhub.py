"""TF Hub sources: the export must equal what TF Hub users compute with ``hub.load``.

Reference = ``hub.load(preprocess)`` → ``bert_pack_inputs(seq_length=512)`` → ``hub.load(encoder)``
→ ``pooled_output``. Models are the offline TF-Hub-format fixtures (random weights, real vocab);
handles go through the real ``tensorflow_hub`` resolver with a pre-filled ``TFHUB_CACHE_DIR``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401

from bert2vec.core.encoder import Encoder
from bert2vec.export import catalogue
from bert2vec.export.builder import ExportOptions, export_model
from bert2vec.export.errors import HubUnavailableError, IncompatibleModelError
from tests.conftest import cached_export
from tests.fixtures import tfhub_models as fx


def _real_texts() -> list[str]:
    from pydoc_data.topics import topics

    paras = [p.strip() for p in topics["assignment"].split("\n\n") if len(p.split()) > 8]
    long_text = " ".join(topics["assignment"].split()[:400])  # far more than 128 wordpieces
    return ["Hello world!", "The quick brown fox jumps over the lazy dog.", *paras[:10], long_text]


TEXTS = _real_texts()


@pytest.fixture(scope="module")
def hub_models() -> SimpleNamespace:
    import tensorflow_hub as hub

    enc_dir = fx.cached_build("encoder")
    pre_dir = fx.cached_build("preprocess")
    enc, pre = hub.load(str(enc_dir)), hub.load(str(pre_dir))
    tokens = pre.tokenize(tf.constant(TEXTS))
    packed = pre.bert_pack_inputs([tokens], seq_length=512)
    out = enc(packed, training=False)
    mask = tf.cast(packed["input_mask"], tf.float32)[:, :, None]
    mean = tf.reduce_sum(out["sequence_output"] * mask, 1) / tf.reduce_sum(mask, 1)
    return SimpleNamespace(
        enc_dir=enc_dir,
        pre_dir=pre_dir,
        pooled=out["pooled_output"].numpy(),
        mean=mean.numpy(),
        lengths=packed["input_mask"].numpy().sum(axis=1),
    )


def _l2(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_long_texts_exceed_the_preprocess_default(hub_models) -> None:
    assert hub_models.lengths.max() > 128  # the case where preprocess(texts) would truncate


def test_export_with_preprocess_equals_hub_pooled_output(hub_models) -> None:
    model = cached_export(hub_models.enc_dir, preprocess=str(hub_models.pre_dir), normalize=False)
    result = Encoder.load(model).encode(TEXTS)
    np.testing.assert_allclose(result.embeddings, hub_models.pooled, atol=1e-5)
    np.testing.assert_array_equal(np.minimum(result.token_counts, 512), hub_models.lengths)
    assert result.truncated.tolist() == [False] * (len(TEXTS) - 1) + [True]  # 579 wordpieces > 512
    card = json.loads((model / "model_card.json").read_text())
    assert card["pooling"] == "pooled" and card["max_seq_length"] == 512 and card["vector_length"] == 64
    assert card["source_kind"] == "tfhub_dir"


@pytest.mark.slow  # the same property on the real Model Garden layout: test_rebuilt_export_with_the_encoders_own_vocab
def test_export_without_preprocess_uses_the_encoders_vocab(hub_models) -> None:
    model = cached_export(hub_models.enc_dir)  # default: pooled + normalize
    result = Encoder.load(model).encode(TEXTS)
    np.testing.assert_allclose(result.embeddings, _l2(hub_models.pooled), atol=1e-5)
    card = json.loads((model / "model_card.json").read_text())
    assert card["lower_case"] is True and card["vocab_size"] == 30522


@pytest.mark.slow  # pooling is bert2vec/export/pooling.py for every source: test_export_hf covers mean and cls
def test_mean_and_cls_pooling(hub_models) -> None:
    model = cached_export(hub_models.enc_dir, pooling="mean")
    np.testing.assert_allclose(Encoder.load(model).encode(TEXTS).embeddings, _l2(hub_models.mean), atol=1e-5)


@pytest.mark.slow  # a whole export at 128; the with-preprocess test checks the same graph at the default length
def test_max_seq_length_128_reproduces_the_preprocess_default(hub_models) -> None:
    import tensorflow_hub as hub

    pre, enc = hub.load(str(hub_models.pre_dir)), hub.load(str(hub_models.enc_dir))
    ref = enc(pre(tf.constant(TEXTS)), training=False)["pooled_output"].numpy()
    model = cached_export(hub_models.enc_dir, preprocess=str(hub_models.pre_dir), normalize=False, max_seq_length=128)
    np.testing.assert_allclose(Encoder.load(model).encode(TEXTS).embeddings, ref, atol=1e-5)


def _catalogue_in_hub_cache(hub_models, tmp_path: Path, monkeypatch) -> tuple[catalogue.CatalogueEntry, Path]:
    """bert_uncased_L-12_H-768_A-12's two handles served by the fixtures from $TFHUB_CACHE_DIR."""
    entry = catalogue.lookup("bert_uncased_L-12_H-768_A-12")
    cache = tmp_path / "tfhub_cache"
    fx.fill_tfhub_cache(cache, entry.handle, hub_models.enc_dir)
    fx.fill_tfhub_cache(cache, entry.preprocess, hub_models.pre_dir)
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(cache))
    monkeypatch.delenv("TFHUB_MODEL_LOAD_FORMAT", raising=False)
    return entry, cache


def test_catalogue_name_resolves_through_tfhub_cache(hub_models, tmp_path: Path, monkeypatch) -> None:
    """Real resolver, offline: the catalogue's handles are found in $TFHUB_CACHE_DIR by sha1(handle)."""
    entry, cache = _catalogue_in_hub_cache(hub_models, tmp_path, monkeypatch)
    out = tmp_path / "model"
    card = export_model(out, ExportOptions(source="google/bert_uncased_L-12_H-768_A-12"))
    assert card["name"] == "bert_uncased_L-12_H-768_A-12" and card["source_kind"] == "catalogue"
    assert card["encoder"] == entry.handle and card["preprocess"] == entry.preprocess
    assert "tensorflow_hub" in card["versions"]
    shutil.rmtree(cache)  # self-contained: nothing may point back into the hub cache
    result = Encoder.load(out).encode(TEXTS)
    np.testing.assert_allclose(result.embeddings, _l2(hub_models.pooled), atol=1e-5)


@pytest.mark.slow  # a whole export; the resolver is the catalogue-name test's
def test_kaggle_handle_resolves_through_tfhub_cache(hub_models, tmp_path: Path, monkeypatch) -> None:
    cache = tmp_path / "tfhub_cache"
    fx.fill_tfhub_cache(cache, fx.KAGGLE_ENCODER_HANDLE, hub_models.enc_dir)
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(cache))
    monkeypatch.delenv("TFHUB_MODEL_LOAD_FORMAT", raising=False)
    card = export_model(tmp_path / "m", ExportOptions(source=fx.KAGGLE_ENCODER_HANDLE, max_seq_length=64))
    assert card["source_kind"] == "hub_handle" and card["vector_length"] == 64


def test_unreachable_handle_names_handle_and_cache(tmp_path: Path, monkeypatch, capsys) -> None:
    from bert2vec.export.cli import main

    handle = "https://tfhub.invalid/tensorflow/bert_en_uncased_L-2_H-128_A-2/2"
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("TFHUB_MODEL_LOAD_FORMAT", raising=False)
    with pytest.raises(HubUnavailableError) as err:
        export_model(tmp_path / "m", ExportOptions(source=handle))
    msg = str(err.value)
    assert handle in msg and str(tmp_path / "cache") in msg and fx.tfhub_cache_key(handle) in msg
    assert main(["--model", handle, "--output", str(tmp_path / "m")]) == 2
    assert "cannot resolve TF Hub handle" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_preprocess_with_other_vocab_is_refused(hub_models, tmp_path: Path) -> None:
    small_vocab = tmp_path / "vocab.txt"
    lines = fx.default_vocab_file().read_text(encoding="utf-8").splitlines()
    small_vocab.write_text("\n".join(lines[:20000]) + "\n", encoding="utf-8")
    pre_dir = fx.cached_build("preprocess", vocab_file=small_vocab)
    with pytest.raises(IncompatibleModelError, match="20000 entries.*30522 rows"):
        export_model(tmp_path / "m", ExportOptions(source=str(hub_models.enc_dir), preprocess=str(pre_dir)))


@pytest.mark.slow  # a whole export through Bert2Vec; the resolver is the catalogue-name test's, the user cache the wheel test's
def test_bert2vec_with_a_catalogue_name_exports_once_and_caches(hub_models, tmp_path: Path, monkeypatch) -> None:
    from bert2vec import Bert2Vec

    entry, cache = _catalogue_in_hub_cache(hub_models, tmp_path, monkeypatch)
    model = Bert2Vec("google/bert_uncased_L-12_H-768_A-12", cache_dir=str(tmp_path / "b2v"))
    assert model.vector_length == 64
    np.testing.assert_allclose(model.bulk_encode(TEXTS), _l2(hub_models.pooled), atol=1e-5)
    exported = model.encoder.model_dir
    stamp = (exported / "model_card.json").stat().st_mtime_ns
    shutil.rmtree(cache)  # the second construction must not need the hub at all
    again = Bert2Vec("google/bert_uncased_L-12_H-768_A-12", cache_dir=str(tmp_path / "b2v"))
    assert again.encoder.model_dir == exported and (exported / "model_card.json").stat().st_mtime_ns == stamp
