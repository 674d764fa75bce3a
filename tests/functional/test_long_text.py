"""Long texts: the SavedModel's encode_long / encode_chunks and every door that reaches them.

Fidelity is checked against tests/golden/long_golden.* (made by tests/golden/make_long_golden.py
with Hugging Face's tokenizer cutting the windows and transformers' BertModel in PyTorch encoding
them); spans against Hugging Face's own word alignment, computed here with ``tokenizers``.
"""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from bert2vec.core import contract
from bert2vec.core.errors import (
    InvalidInputError,
    RequestTooLargeError,
    TextTooLongForModelError,
    UnsupportedOptionError,
)
from bert2vec.core.long_text import LongTextChoice, LongTextEncoder, default_stride, windows_for
from bert2vec.http.service import EncodeRequest, EncodeService, Limits
from tests.conftest import GOLDEN

sys.path.insert(0, str(GOLDEN))
from make_long_golden import build_documents, hf_window_spans, sha256  # noqa: E402

MAX_SEQ = 256
WINDOW = MAX_SEQ - 2

NON_ASCII = (
    "ÉCOLE Ångström naïve Cafe\u0301 我喜欢在海滩上散步 👍🏽 family 👨\u200d👩\u200d👧 zero\u200bwidth "
    "soft\u00adhyphen ΟΔΟΣ İstanbul 🏖️ done. "
)


@pytest.fixture(scope="module")
def long_golden() -> dict[str, Any]:
    meta = json.loads((GOLDEN / "long_golden.json").read_text(encoding="utf-8"))
    docs, _ = build_documents()
    assert [sha256(d) for d in docs] == meta["sha256"], "pydoc_data differs: use the Python in the JSON"
    meta["docs"] = docs
    with np.load(GOLDEN / "long_golden.npz") as npz:
        meta["arrays"] = {k: npz[k] for k in npz.files}
    return meta


@pytest.fixture(scope="module")
def long(default_encoder) -> LongTextEncoder:
    return LongTextEncoder(default_encoder)


@pytest.fixture(scope="module")
def hf_tokenizer(default_model_dir):
    from transformers import BertTokenizerFast

    with open(default_model_dir / "assets" / "vocab.txt", encoding="utf-8") as f:
        vocab = {line.rstrip("\n"): i for i, line in enumerate(f)}
    return BertTokenizerFast(vocab=vocab, do_lower_case=True)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


# ---- the SavedModel ----------------------------------------------------------------------------
def test_signatures(default_model_dir) -> None:
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    from bert2vec.core.encoder import load_long_text_savedmodel

    assert not (default_model_dir / contract.LONG_TEXT_DIR / "variables").exists()  # weights stored once
    loaded = load_long_text_savedmodel(default_model_dir)
    for name, outputs in (
        (contract.LONG_SIGNATURE_NAME, {"embedding", "token_count", "chunks"}),
        (contract.CHUNKS_SIGNATURE_NAME, {"chunk_embedding", "text_index", "start", "end", "token_count"}),
    ):
        sig = loaded.signatures[name]
        assert set(sig.structured_input_signature[1]) == {contract.INPUT_KEY, contract.INPUT_STRIDE}
        assert set(sig.structured_outputs) == outputs
        empty = sig(text=tf.constant([], tf.string), stride=tf.constant(32))
        assert all(v.shape[0] == 0 for v in empty.values())
    with pytest.raises(tf.errors.InvalidArgumentError, match="stride"):
        loaded.signatures[contract.LONG_SIGNATURE_NAME](text=tf.constant(["a"]), stride=tf.constant(WINDOW))


def test_vocab_is_the_references(default_model_dir, long_golden) -> None:
    import hashlib

    digest = hashlib.sha256((default_model_dir / "assets" / "vocab.txt").read_bytes()).hexdigest()
    assert digest == long_golden["reference"]["vocab_sha256"]


# ---- fidelity on real long documents -----------------------------------------------------------
@pytest.mark.parametrize("stride", [0, 32, pytest.param(200, marks=pytest.mark.slow)])  # 200: 3x the windows
def test_document_vectors_equal_the_reference(long, long_golden, stride: int) -> None:
    docs = long_golden["docs"]
    got = long.encode(docs, stride=stride)
    ref = long_golden["arrays"][f"doc_vectors_s{stride}"]
    cos = cosines(got.embeddings, ref)
    assert cos.min() >= 0.99999, f"stride {stride}: cosines {cos}"
    assert got.token_counts.tolist() == [n + 2 for n in long_golden["wordpieces"]]
    windows = long_golden["windows"][str(stride)]
    assert got.chunks.tolist() == np.bincount(windows["text_index"]).tolist()
    assert got.chunks.tolist() == windows_for(got.token_counts, MAX_SEQ, stride).tolist()
    assert min(long_golden["wordpieces"]) >= 1000 and max(long_golden["wordpieces"]) <= 5000


def test_chunk_vectors_and_spans_equal_the_reference(long, long_golden) -> None:
    from bert2vec.export.tokenizer import _DROP_RANGES, _MARKS_RANGES, parse_ranges

    dropped = parse_ranges(_DROP_RANGES) | parse_ranges(_MARKS_RANGES)
    docs = long_golden["docs"]
    stride = long_golden["reference"]["chunk_stride"]
    assert stride == default_stride(MAX_SEQ)
    got = long.encode_chunks(docs, stride=stride)
    ref = long_golden["windows"][str(stride)]
    assert got.text_index.tolist() == ref["text_index"]
    cos = cosines(got.embeddings, long_golden["arrays"]["chunk_vectors"])
    assert cos.min() >= 0.99999
    for w, t in enumerate(got.text_index):
        s, e, hs, he = int(got.start[w]), int(got.end[w]), ref["start"][w], ref["end"][w]
        assert s <= hs and he <= e, (w, s, e, hs, he)  # whole words, HF's span inside ours
        # HF leaves out characters the tokenizer drops at a word's edge; nothing else differs.
        assert all(ord(c) in dropped for c in docs[t][s:hs] + docs[t][he:e]), (w, docs[t][s:hs], docs[t][he:e])
    equal = np.mean((got.start == np.array(ref["start"])) & (got.end == np.array(ref["end"])))
    assert equal > 0.9  # the rest differ by dropped characters only (checked above)


# ---- windows at the boundaries -----------------------------------------------------------------
def test_text_at_the_limit_is_one_window_equal_to_serving_default(long, default_encoder) -> None:
    text = " ".join(["hello"] * WINDOW)  # one wordpiece per word
    got = long.encode([text])
    assert got.token_counts.tolist() == [MAX_SEQ] and got.chunks.tolist() == [1]
    plain = default_encoder.encode([text])
    assert not plain.truncated[0]
    np.testing.assert_allclose(got.embeddings, plain.embeddings, atol=2e-6)
    chunks = long.encode_chunks([text])
    assert (chunks.start.tolist(), chunks.end.tolist()) == ([0], [len(text)])


def test_one_wordpiece_over_is_two_windows(long, default_encoder) -> None:
    text = " ".join(["hello"] * (WINDOW + 1))  # "hello" is one wordpiece
    got = long.encode_chunks([text], stride=32)
    assert got.token_counts.tolist() == [MAX_SEQ + 1] and got.chunks.tolist() == [2]
    assert got.start.tolist() == [0, 6 * (WINDOW - 32)] and got.end.tolist() == [6 * WINDOW - 1, len(text)]
    # Every window is a real text: the second window equals serving_default on its 33 words.
    second = default_encoder.encode([text[got.start[1] : got.end[1]]]).embeddings[0]
    assert float(np.dot(second, got.embeddings[1])) > 0.999999


def test_a_word_cut_by_a_window_boundary_belongs_to_both_spans(long) -> None:
    from bert2vec.http.service import ModelTokenizer

    text = " ".join(["hello"] * (WINDOW - 1)) + " serverless tail"
    vocab = ModelTokenizer(long.encoder).vocab
    ids = ModelTokenizer(long.encoder).counts([text])
    assert ids.tolist() == [WINDOW + 4] and "##less" in vocab  # hello x 253, server ##less, tail
    word = text.index("serverless")
    for stride in (0, 5):
        got = long.encode_chunks([text], stride=stride)
        assert got.chunks.tolist() == [2]  # hello*253, server | ##less, tail
        assert got.end[0] == word + len("serverless"), "the first window's span ends after the whole word"
        if stride == 0:
            assert got.start[1] == word, "the second window starts inside the word: its span starts at the word"
        assert got.end[1] == len(text)


_LENGTHS = (1, WINDOW - 1, WINDOW, WINDOW + 1, 2 * WINDOW, 2 * WINDOW + 1, 700)
# At stride = window - 1 each window moves on by one wordpiece, so 700 wordpieces would be ~450
# windows through the real model (40 s) to show what a few windows past the first one show.
_STEP_ONE_LENGTHS = (1, WINDOW - 1, WINDOW, WINDOW + 1, WINDOW + 2, WINDOW + 7)


@pytest.mark.parametrize(
    ("stride", "lengths"), [(0, _LENGTHS), (1, _LENGTHS), (100, _LENGTHS), (WINDOW - 1, _STEP_ONE_LENGTHS)]
)
def test_no_empty_windows(long, stride: int, lengths: tuple[int, ...]) -> None:
    texts = [" ".join(["hello"] * n) for n in lengths]
    got = long.encode_chunks(texts, stride=stride)
    assert got.chunks.tolist() == windows_for([n + 2 for n in lengths], MAX_SEQ, stride).tolist()
    assert (got.end > got.start).all()
    for t, text in enumerate(texts):  # windows in order, the last one reaching the end
        mine = np.flatnonzero(got.text_index == t)
        assert mine.tolist() == list(range(mine[0], mine[0] + len(mine)))
        assert got.start[mine[0]] == 0 and got.end[mine[-1]] == len(text)
        assert (np.diff(got.start[mine]) > 0).all()


def test_empty_text_is_one_bare_window(long, default_encoder) -> None:
    got = long.encode_chunks(["", "\u200b"])
    assert got.chunks.tolist() == [1, 1] and got.start.tolist() == [0, 0] and got.end.tolist() == [0, 0]
    np.testing.assert_allclose(long.encode([""]).embeddings, default_encoder.encode([""]).embeddings, atol=1e-6)


# ---- spans on non-ASCII text -------------------------------------------------------------------
@pytest.mark.parametrize("stride", [0, 7, 32])
def test_spans_are_character_offsets_on_non_ascii_text(long, hf_tokenizer, stride: int) -> None:
    from bert2vec.export.tokenizer import _DROP_RANGES, _MARKS_RANGES, parse_ranges

    dropped = parse_ranges(_DROP_RANGES) | parse_ranges(_MARKS_RANGES)
    texts = [NON_ASCII * 25, "x " + NON_ASCII * 13 + "🙂"]
    got = long.encode_chunks(texts, stride=stride)
    assert got.chunks.min() >= 2
    for t, text in enumerate(texts):
        mine = np.flatnonzero(got.text_index == t)
        ref = hf_window_spans(hf_tokenizer, text, stride)
        assert len(ref) == len(mine)
        for w, (hs, he) in zip(mine, ref, strict=True):
            s, e = int(got.start[w]), int(got.end[w])
            assert s <= hs and he <= e
            assert all(ord(c) in dropped for c in text[s:hs] + text[he:e]), (text[s:hs], text[he:e])
            assert not text[s].isspace() and not text[e - 1].isspace()
    assert texts[1][got.end[got.text_index == 1][-1] - 1] == "🙂"  # an astral character ends the last span


# ---- the service: modes, budget, old models ----------------------------------------------------
def test_truncate_and_reject_are_unchanged(default_encoder) -> None:
    svc = EncodeService(default_encoder, Limits())
    text = " ".join(["hello"] * 400)
    old = svc.encode(EncodeRequest([text, "short"]))
    new = svc.encode(EncodeRequest([text, "short"], long_text=LongTextChoice("truncate")))
    np.testing.assert_array_equal(old.vectors, new.vectors)
    assert old.chunks is None and old.result.truncated.tolist() == [True, False]
    for req in (EncodeRequest([text], long_text=LongTextChoice("reject", truncate_as='"truncate": true')), EncodeRequest([text], long_text=LongTextChoice("reject"))):
        with pytest.raises(TextTooLongForModelError, match=r"'texts\[0\]' has 402 tokens; .* at most 256"):
            svc.encode(req)


def test_chunk_mode_in_the_service(default_encoder, long) -> None:
    svc = EncodeService(default_encoder, Limits())
    text = " ".join(["hello"] * 400)
    enc = svc.encode(EncodeRequest([text, "short"], long_text=LongTextChoice("chunk")))
    assert enc.chunks.tolist() == [2, 1] and enc.result.truncated.tolist() == [False, False]
    np.testing.assert_array_equal(enc.vectors, long.encode([text, "short"]).embeddings)
    with pytest.raises(InvalidInputError, match="less than the window of 254"):
        svc.encode(EncodeRequest([text], long_text=LongTextChoice("chunk", 254)))
    with pytest.raises(InvalidInputError, match="stride"):
        svc.encode(EncodeRequest([text], long_text=LongTextChoice(stride=3)))


def test_chunks_count_toward_the_request_budget(default_encoder) -> None:
    svc = EncodeService(default_encoder, Limits(max_request_tokens=1024))
    text = " ".join(["hello"] * 1000)  # 4 full windows + 1 at stride 32: 5 x 256 > 1024
    assert svc.encode(EncodeRequest([text])).result.truncated[0]  # truncated: 256 wordpieces, fits
    with pytest.raises(RequestTooLargeError, match=r"would run 1280 wordpieces .*\(each window of 254 wordpieces.*fewer or shorter documents"):
        svc.encode(EncodeRequest([text], long_text=LongTextChoice("chunk")))
    assert svc.encode(EncodeRequest([" ".join(["hello"] * 600)], long_text=LongTextChoice("chunk"))).chunks.tolist() == [3]


def test_a_model_without_the_signatures_says_re_export(default_encoder, tmp_path) -> None:
    from bert2vec.core.encoder import Encoder

    old = Encoder(tmp_path, default_encoder.card, default_encoder._fn)  # no long_text/ there
    old._loaded = SimpleNamespace(signatures={contract.SIGNATURE_NAME: default_encoder._fn})
    with pytest.raises(UnsupportedOptionError, match="re-export"):
        EncodeService(old, Limits()).encode(EncodeRequest(["a"], long_text=LongTextChoice("chunk")))
    from bert2vec.bulk.config import ConfigError
    from bert2vec.files.pipeline import check_chunk_config

    with pytest.raises(ConfigError, match="LONG_TEXT=chunk.*re-export"):
        check_chunk_config(old, None)


# ---- HTTP and direct invokes -------------------------------------------------------------------
def test_encode_route_and_direct_invoke(app_module, lambda_context) -> None:
    text = " ".join(["hello"] * 300)
    out = app_module.direct({"texts": [text, "hi"], "long_text": "chunk", "stride": 10})
    assert out["chunks"] == [2, 1] and out["truncated"] == [False, False] and out["token_counts"] == [302, 3]
    out = app_module.direct({"texts": [text], "long_text": "reject"})
    assert out["status"] == 422 and "302 tokens" in out["error"] and "256" in out["error"]
    out = app_module.direct({"texts": [text], "long_text": "chunk", "truncate": True})
    assert out["status"] == 422 and "contradicts" in out["error"]
    out = app_module.direct({"texts": [text], "long_text": "split"})
    assert out["status"] == 422 and "truncate, reject, chunk" in out["error"]
    assert "chunks" not in app_module.direct({"texts": [text]})


def _count_calls(monkeypatch, owner: Any, name: str, calls: list[str]) -> None:
    """Record each call of ``owner.name`` (the real method runs): how often a request decides."""
    real = getattr(owner, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(name)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"texts": [" ".join(["hello"] * 300)], "long_text": "reject"}, 422),  # refused by the encoding's counts
        ({"texts": ["hello", "\u200b"], "truncate": False}, 400),  # a blank text
        ({"texts": ["hello world"], "truncate": False}, 200),
        ({"texts": ["hello world"] * 3, "long_text": "chunk", "stride": 8}, 200),
    ],
)
def test_one_request_decides_its_long_text_handling_once(app_module, lambda_context, monkeypatch, body, status) -> None:
    """Through the real route: the long-text choice is resolved for the model once, and the texts
    over the limit are found once (the encoding's own rejections are used, not worked out again)."""
    from bert2vec.core.long_text import LongTextPolicy
    from tests.functional.test_function_app import post

    calls: list[str] = []
    for name in ("for_choice", "resolve", "too_long"):
        _count_calls(monkeypatch, LongTextPolicy, name, calls)
    got, _, _ = post(app_module, lambda_context, "/encode", body)
    assert got == status
    assert calls.count("for_choice") + calls.count("resolve") == 1, calls
    assert calls.count("too_long") <= 1, calls


def test_openai_route_refuses_long_input_unless_asked(app_module, lambda_context) -> None:
    from tests.functional.test_function_app import post

    text = " ".join(["hello"] * 300)
    status, body, _ = post(app_module, lambda_context, "/v1/embeddings", {"input": text})
    assert status == 400 and body["error"]["code"] == "text_too_long" and "302 tokens" in body["error"]["message"]
    status, body, _ = post(app_module, lambda_context, "/v1/embeddings", {"input": text, "long_text": "chunk"})
    assert status == 200 and body["usage"]["prompt_tokens"] == 300 + 32 + 4
    status, body, _ = post(app_module, lambda_context, "/v1/embeddings", {"input": text, "long_text": "truncate"})
    assert status == 200 and body["usage"]["prompt_tokens"] == 256
    status, body, _ = post(app_module, lambda_context, "/embed", {"inputs": text})  # TEI: truncate false = error
    assert status == 422


# ---- Python API ----------------------------------------------------------------------------------
def test_python_api(default_model_dir, long) -> None:
    from bert2vec import Bert2Vec

    model = Bert2Vec(str(default_model_dir))
    text = NON_ASCII * 20
    np.testing.assert_allclose(model.encode(text, long_text="chunk"), long.encode([text]).embeddings[0], atol=1e-7)
    with pytest.raises(TextTooLongForModelError, match="at most 256"):
        model.bulk_encode(["a", text], long_text="reject")
    chunks = model.encode_chunks(text, stride=16)
    assert [c["chunk"] for c in chunks] == list(range(len(chunks))) and len(chunks) >= 2
    assert chunks[0]["start"] == 0 and chunks[-1]["end"] == len(text.rstrip())
    with pytest.raises(InvalidInputError):
        model.encode(text, long_text="chunk", stride=-1)
