"""The TF-Hub-format fixtures behave like Google's BERT encoder v4 and ``bert_en_uncased_preprocess/3``.

Export tests trust these fixtures in place of the real models, so this file checks them the way TF
Hub users call the real ones (``hub.load`` then ``preprocess -> encoder``), including the parts
that are easy to get subtly wrong: ragged values through restored functions, ``seq_length``
overrides, [SEP] surviving truncation, dynamic sequence length, and the real resolver's cache layout.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub
import tensorflow_text  # noqa: F401 - registers the ops the preprocess model uses

from tests.fixtures import tfhub_models as fx

HIDDEN = 64  # builder default
NUM_LAYERS = 2  # builder default
CLS, SEP, PAD, MASK, VOCAB_SIZE = 101, 102, 0, 103, 30522
SHORT_TEXTS = ["Hello world!", "unaffable HÉLLO naïve"]  # 3 and 3 wordpieces (uncased, accents stripped)


def _text_of_tokens(n: int) -> str:
    """``n`` wordpieces: "hello world" is two single-piece words."""
    assert n % 2 == 0
    return " ".join(["hello world"] * (n // 2))


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Build both fixtures from a throwaway copy of the real vocab, then delete that copy."""
    vocab_copy = tmp_path_factory.mktemp("vocab") / "bert_vocab_copy.txt"
    shutil.copyfile(fx.default_vocab_file(), vocab_copy)
    cache_root = tmp_path_factory.mktemp("fixture-cache")
    encoder_dir = fx.cached_build("encoder", vocab_file=vocab_copy, cache_root=cache_root)
    preprocess_dir = fx.cached_build("preprocess", vocab_file=vocab_copy, cache_root=cache_root)
    vocab_copy.unlink()
    return SimpleNamespace(
        encoder_dir=encoder_dir, preprocess_dir=preprocess_dir, cache_root=cache_root, vocab_copy=vocab_copy
    )


@pytest.fixture(scope="module")
def encoder(models: SimpleNamespace) -> Any:
    return hub.load(str(models.encoder_dir))


@pytest.fixture(scope="module")
def preprocess(models: SimpleNamespace) -> Any:
    return hub.load(str(models.preprocess_dir))


def _strings(texts: list[str]) -> tf.Tensor:
    return tf.constant(texts, dtype=tf.string)


# --- layout and attributes -------------------------------------------------------------------


@pytest.mark.parametrize("which", ["encoder_dir", "preprocess_dir"])
def test_saved_model_layout_is_tfhub_format(models: SimpleNamespace, which: str) -> None:
    model_dir: Path = getattr(models, which)
    assert (model_dir / "saved_model.pb").is_file()
    assert (model_dir / "variables").is_dir()
    assert (model_dir / "assets" / "vocab.txt").read_bytes() == fx.default_vocab_file().read_bytes()


def test_encoder_exposes_v4_attributes(models: SimpleNamespace, encoder: Any) -> None:
    asset = Path(encoder.vocab_file.asset_path.numpy().decode())
    assert asset == models.encoder_dir / "assets" / "vocab.txt"
    assert len(asset.read_text(encoding="utf-8").splitlines()) == VOCAB_SIZE
    assert encoder.do_lower_case.dtype == tf.bool and bool(encoder.do_lower_case.numpy()) is True
    shapes = {v.name: tuple(v.shape) for v in encoder.variables}
    assert shapes["word_embeddings/embeddings:0"] == (VOCAB_SIZE, HIDDEN)
    assert shapes["position_embedding/embeddings:0"] == (512, HIDDEN)
    assert shapes["transformer/layer_0/self_attention/query/kernel:0"] == (HIDDEN, 2, HIDDEN // 2)
    assert "do_lower_case:0" in shapes
    assert "do_lower_case:0" not in {v.name for v in encoder.trainable_variables}


def test_models_work_after_source_vocab_deleted(models: SimpleNamespace, preprocess: Any, encoder: Any) -> None:
    assert not models.vocab_copy.exists()
    out = encoder(preprocess(_strings(SHORT_TEXTS)))
    assert out["pooled_output"].shape == (2, HIDDEN)


# --- preprocess ------------------------------------------------------------------------------


def test_special_tokens_dict_matches_real_vocab(preprocess: Any) -> None:
    specials = preprocess.tokenize.get_special_tokens_dict()
    assert {k: (v.dtype, v.shape) for k, v in specials.items()} == {
        k: (tf.int32, ()) for k in ("vocab_size", "start_of_sequence_id", "end_of_segment_id", "padding_id", "mask_id")
    }
    assert {k: int(v) for k, v in specials.items()} == {
        "vocab_size": VOCAB_SIZE,
        "start_of_sequence_id": CLS,
        "end_of_segment_id": SEP,
        "padding_id": PAD,
        "mask_id": MASK,
    }


def test_tokenize_returns_int32_words_by_wordpieces(preprocess: Any) -> None:
    tokens = preprocess.tokenize(_strings(SHORT_TEXTS))
    assert isinstance(tokens, tf.RaggedTensor)
    assert tokens.dtype == tf.int32 and tokens.ragged_rank == 2 and tokens.shape.rank == 3
    # BERT uncased: lower-casing and accent stripping by text.BertTokenizer(lower_case=True).
    assert tokens.to_list() == [[[7592], [2088], [999]], [[14477, 20961, 3468], [7592], [15743]]]


def test_root_call_packs_to_default_seq_length_128(preprocess: Any) -> None:
    out = preprocess(_strings([SHORT_TEXTS[0], _text_of_tokens(200)]))
    assert set(out) == {"input_word_ids", "input_mask", "input_type_ids"}
    for value in out.values():
        assert value.dtype == tf.int32 and value.shape == (2, 128)
    ids, mask = out["input_word_ids"].numpy(), out["input_mask"].numpy()
    assert ids[0, :6].tolist() == [CLS, 7592, 2088, 999, SEP, PAD]
    assert mask[0].sum() == 5 and mask[1].sum() == 128
    assert ids[1, 0] == CLS and ids[1, 127] == SEP  # truncated, but still ends with [SEP]
    assert not out["input_type_ids"].numpy().any()


@pytest.mark.parametrize(("num_tokens", "seq_length"), [(200, 512), (700, 512), (20, 16)])
def test_bert_pack_inputs_seq_length_override_keeps_final_sep(
    preprocess: Any, num_tokens: int, seq_length: int
) -> None:
    tokens = preprocess.tokenize(_strings([_text_of_tokens(num_tokens)]))
    out = preprocess.bert_pack_inputs([tokens], seq_length=seq_length)
    assert all(v.shape == (1, seq_length) for v in out.values())
    real = min(num_tokens + 2, seq_length)
    ids, mask = out["input_word_ids"].numpy()[0], out["input_mask"].numpy()[0]
    assert mask.sum() == real and mask[:real].all()
    assert ids[0] == CLS and ids[real - 1] == SEP
    assert (ids[real:] == PAD).all()


def test_bert_pack_inputs_defaults_and_ragged_rank_1(preprocess: Any) -> None:
    tokens = preprocess.tokenize(_strings(SHORT_TEXTS))
    by_default = preprocess.bert_pack_inputs([tokens])
    assert by_default["input_word_ids"].shape == (2, 128)
    flat = preprocess.bert_pack_inputs([tokens.merge_dims(1, 2)], seq_length=128)
    for key in by_default:
        np.testing.assert_array_equal(flat[key], by_default[key])


def test_bert_pack_inputs_two_segments(preprocess: Any) -> None:
    first = preprocess.tokenize(_strings([SHORT_TEXTS[0]]))
    second = preprocess.tokenize(_strings([SHORT_TEXTS[1]]))
    out = preprocess.bert_pack_inputs([first, second], seq_length=12)
    assert out["input_word_ids"].numpy()[0].tolist() == [
        CLS, 7592, 2088, 999, SEP, 14477, 20961, 3468, 7592, 15743, SEP, PAD
    ]  # fmt: skip
    assert out["input_type_ids"].numpy()[0].tolist() == [0] * 5 + [1] * 6 + [0]
    assert out["input_mask"].numpy()[0].tolist() == [1] * 11 + [0]


# --- encoder ---------------------------------------------------------------------------------


def test_preprocess_then_encoder_like_tfhub_users(preprocess: Any, encoder: Any) -> None:
    outputs = encoder(preprocess(_strings([*SHORT_TEXTS, "More text."])))
    assert set(outputs) == {"pooled_output", "sequence_output", "encoder_outputs", "default"}
    assert outputs["pooled_output"].shape == (3, HIDDEN) and outputs["pooled_output"].dtype == tf.float32
    assert outputs["sequence_output"].shape == (3, 128, HIDDEN)
    assert len(outputs["encoder_outputs"]) == NUM_LAYERS
    assert all(layer.shape == (3, 128, HIDDEN) for layer in outputs["encoder_outputs"])
    np.testing.assert_array_equal(outputs["encoder_outputs"][-1], outputs["sequence_output"])
    np.testing.assert_array_equal(outputs["default"], outputs["pooled_output"])
    pooled = outputs["pooled_output"].numpy()
    assert np.abs(pooled).max() < 1.0 and np.abs(pooled).min() >= 0.0  # tanh
    assert not np.allclose(pooled[0], pooled[1])


def test_encoder_dynamic_seq_length_and_padding_invariance(preprocess: Any, encoder: Any) -> None:
    tokens = preprocess.tokenize(_strings(SHORT_TEXTS))  # 3 wordpieces each -> 5 real tokens
    short = encoder(preprocess.bert_pack_inputs([tokens], seq_length=7))
    long = encoder(preprocess.bert_pack_inputs([tokens], seq_length=300))
    assert short["sequence_output"].shape == (2, 7, HIDDEN)
    assert long["sequence_output"].shape == (2, 300, HIDDEN)
    # Padding is masked out of attention, so extra padding changes nothing for the real tokens.
    np.testing.assert_allclose(short["pooled_output"], long["pooled_output"], atol=1e-5)
    np.testing.assert_allclose(short["sequence_output"][:, :5], long["sequence_output"][:, :5], atol=1e-5)
    # And examples in a batch do not see each other.
    alone = encoder(preprocess.bert_pack_inputs([tokens[:1]], seq_length=7))
    np.testing.assert_allclose(alone["pooled_output"][0], short["pooled_output"][0], atol=1e-5)


def test_encoder_input_type_ids_matter(preprocess: Any, encoder: Any) -> None:
    inputs = preprocess(_strings(SHORT_TEXTS))
    flipped = dict(inputs, input_type_ids=tf.ones_like(inputs["input_type_ids"]))
    assert not np.allclose(encoder(inputs)["pooled_output"], encoder(flipped)["pooled_output"])


def test_encoder_training_argument(preprocess: Any, encoder: Any) -> None:
    inputs = preprocess(_strings(SHORT_TEXTS))
    default = encoder(inputs)["pooled_output"]
    np.testing.assert_array_equal(default, encoder(inputs, training=False)["pooled_output"])
    trained = encoder(inputs, training=True)["pooled_output"]  # dropout on, as in the real model
    assert trained.shape == default.shape
    assert not np.allclose(trained, default)


def test_encoder_weights_are_deterministic_from_seed() -> None:
    cfg = fx._EncoderConfig(500, 1, 64, 2, 16, 16, 2)
    first, again, other = (fx._random_bert_weights(cfg, seed) for seed in (0, 0, 1))
    assert all(np.array_equal(first[k], again[k]) for k in first)
    embeddings = first["word_embeddings/embeddings"]
    assert not np.array_equal(embeddings, other["word_embeddings/embeddings"])
    assert 0.018 < float(np.std(embeddings)) < 0.022


# --- re-export: what the export step does with the restored models ---------------------------


class _Combined(tf.Module):
    def __init__(self, preprocess: Any, encoder: Any) -> None:
        super().__init__()
        self.preprocess = preprocess
        self.encoder = encoder

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, texts: tf.Tensor) -> tf.Tensor:
        return self.encoder(self.preprocess(texts), training=False)["pooled_output"]


def test_restored_fixtures_can_be_saved_into_one_saved_model(
    models: SimpleNamespace, preprocess: Any, encoder: Any, tmp_path: Path
) -> None:
    texts = _strings(SHORT_TEXTS)
    expected = encoder(preprocess(texts))["pooled_output"].numpy()
    pre_copy = shutil.copytree(models.preprocess_dir, tmp_path / "pre")
    enc_copy = shutil.copytree(models.encoder_dir, tmp_path / "enc")
    tf.saved_model.save(_Combined(hub.load(str(pre_copy)), hub.load(str(enc_copy))), str(tmp_path / "combined"))
    shutil.rmtree(pre_copy)
    shutil.rmtree(enc_copy)  # the combined model must carry its own vocab asset and weights
    combined = tf.saved_model.load(str(tmp_path / "combined"))
    np.testing.assert_allclose(combined(texts).numpy(), expected, atol=1e-6)


# --- TF Hub cache resolution with the real resolver -----------------------------------------


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """TFHUB_CACHE_DIR is read by tensorflow_hub at each resolve() call, so setenv is enough."""
    cache = tmp_path / "tfhub_cache"
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(cache))
    monkeypatch.delenv("TFHUB_MODEL_LOAD_FORMAT", raising=False)  # UNCOMPRESSED would bypass the cache
    return cache


@pytest.mark.parametrize(
    ("encoder_handle", "preprocess_handle"),
    [
        (fx.TFHUB_ENCODER_HANDLE, fx.TFHUB_PREPROCESS_HANDLE),
        (fx.KAGGLE_ENCODER_HANDLE, fx.KAGGLE_PREPROCESS_HANDLE),
    ],
    ids=["tfhub.dev", "kaggle"],
)
def test_filled_cache_resolves_and_loads_offline(
    models: SimpleNamespace, hub_cache: Path, encoder_handle: str, preprocess_handle: str
) -> None:
    enc_dir = fx.fill_tfhub_cache(hub_cache, encoder_handle, models.encoder_dir)
    pre_dir = fx.fill_tfhub_cache(hub_cache, preprocess_handle, models.preprocess_dir)
    assert enc_dir == hub_cache / hashlib.sha1(encoder_handle.encode("utf8")).hexdigest()
    assert Path(hub.resolve(encoder_handle)) == enc_dir
    assert Path(hub.resolve(preprocess_handle)) == pre_dir
    pooled = hub.load(encoder_handle)(hub.load(preprocess_handle)(_strings(SHORT_TEXTS)))["pooled_output"]
    assert pooled.shape == (2, HIDDEN)


def test_cache_keys_are_not_normalised() -> None:
    """0.16.1 hashes the handle verbatim: the tfhub.dev and Kaggle URLs of one model are two entries."""
    assert fx.tfhub_cache_key(fx.TFHUB_ENCODER_HANDLE) == "d760773f85f64fc84ae0b47310f7cfe3bcec4868"
    assert fx.tfhub_cache_key(fx.KAGGLE_ENCODER_HANDLE) == "3f718e5c4dcd32f6ddfaa9200ae9f2da4d062919"
    assert fx.tfhub_cache_key(fx.TFHUB_ENCODER_HANDLE + "/") != fx.tfhub_cache_key(fx.TFHUB_ENCODER_HANDLE)


def test_refilling_the_cache_replaces_the_entry(models: SimpleNamespace, hub_cache: Path) -> None:
    fx.fill_tfhub_cache(hub_cache, fx.TFHUB_ENCODER_HANDLE, models.preprocess_dir)
    module_dir = fx.fill_tfhub_cache(hub_cache, fx.TFHUB_ENCODER_HANDLE, models.encoder_dir)
    assert (module_dir / "variables").is_dir()
    assert hasattr(hub.load(fx.TFHUB_ENCODER_HANDLE), "vocab_file")
    assert sorted(p.name for p in hub_cache.iterdir()) == [module_dir.name, module_dir.name + ".descriptor.txt"]


def test_uncached_handle_without_network_raises_oserror_fast(hub_cache: Path) -> None:
    # ".invalid" never resolves (RFC 2606), so this is offline-equivalent even on a networked machine.
    start = time.monotonic()
    with pytest.raises(OSError):  # urllib.error.URLError from the download attempt
        hub.resolve("https://tfhub.invalid/tensorflow/bert_en_uncased_L-12_H-768_A-12/4")
    assert time.monotonic() - start < 30
    assert not [p for p in hub_cache.iterdir() if p.name.endswith((".lock", ".tmp"))]


# --- build cache -----------------------------------------------------------------------------


def _spy_on_builders(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record builder calls; ``functools.wraps`` keeps name and signature, which the cache key uses."""
    calls: list[str] = []
    for kind, real in list(fx._BUILDERS.items()):

        @functools.wraps(real)
        def spy(*args: Any, _kind: str = kind, _real: Any = real, **kwargs: Any) -> Path:
            calls.append(_kind)
            return _real(*args, **kwargs)

        monkeypatch.setitem(fx._BUILDERS, kind, spy)
    return calls


def test_cached_build_reuses_complete_build_keyed_by_vocab_content(
    models: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _spy_on_builders(monkeypatch)
    other_copy = tmp_path / "elsewhere.txt"
    shutil.copyfile(fx.default_vocab_file(), other_copy)
    again = fx.cached_build("encoder", vocab_file=other_copy, cache_root=models.cache_root, num_layers=NUM_LAYERS)
    assert again == models.encoder_dir
    assert fx.cached_build("preprocess", cache_root=models.cache_root) == models.preprocess_dir
    assert calls == []


def test_fixture_key_covers_kwargs_vocab_content_and_builder_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    vocab = fx.default_vocab_file()
    base = fx.fixture_key("encoder", vocab)
    assert fx.fixture_key("encoder", vocab, seed=0, hidden_size=64) == base  # defaults are bound
    assert fx.fixture_key("encoder", vocab, seed=1) != base
    assert fx.fixture_key("preprocess", vocab) != base
    edited = tmp_path / "vocab.txt"
    edited.write_bytes(vocab.read_bytes() + b"[extra]\n")
    assert fx.fixture_key("encoder", edited) != base
    builders = tmp_path / "tfhub_models.py"  # the builders' code, edited: no build may be reused
    builders.write_bytes(Path(fx.__file__).read_bytes() + b"\n# edited\n")
    monkeypatch.setattr(fx, "__file__", str(builders))
    assert fx.fixture_key("encoder", vocab) != base


def test_killed_build_never_looks_complete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def half_build(export_dir: Path, vocab_file: Path, **kwargs: Any) -> Path:
        Path(export_dir).mkdir(parents=True)
        (Path(export_dir) / "saved_model.pb").write_bytes(b"partial")
        raise KeyboardInterrupt  # what a Ctrl-C mid-build looks like

    monkeypatch.setitem(fx._BUILDERS, "encoder", half_build)
    with pytest.raises(KeyboardInterrupt):
        fx.cached_build("encoder", cache_root=tmp_path)
    assert [p for p in tmp_path.iterdir() if p.is_dir()] == []  # no build, no temp dir (the lock file stays)


def test_fixture_cache_root_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(fx.FIXTURE_CACHE_ENV, str(tmp_path))
    assert fx.fixture_cache_root() == tmp_path
    monkeypatch.delenv(fx.FIXTURE_CACHE_ENV)
    assert fx.fixture_cache_root() == Path(__file__).resolve().parents[2] / ".cache" / "fixtures"
    assert os.path.isfile(fx.default_vocab_file())
