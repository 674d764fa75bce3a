"""Request validation and the three response shapes, on the real exported default model."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bert2vec.core.errors import (
    EmptyInputError,
    InvalidInputError,
    PayloadTooLargeError,
    RequestTooLargeError,
    TextTooLargeError,
    TextTooLongForModelError,
    TooManyTextsError,
    UnsupportedOptionError,
)
from bert2vec.core.long_text import LongTextChoice
from bert2vec.http.payload import check_payload_size
from bert2vec.http.service import EncodeService, Limits, ModelTokenizer
from bert2vec.http.wire import native, openai_api, tei


@pytest.fixture(scope="module")
def service(default_encoder) -> EncodeService:
    return EncodeService(default_encoder, Limits(max_texts=4, max_text_chars=50))


def test_encode_body_shape(service: EncodeService) -> None:
    enc = service.encode(native.parse({"texts": ["hello world", "a dog on the beach"]}))
    body = native.render(enc, "m")
    assert set(body) == {"vectors", "dimension", "model", "token_counts", "truncated"}
    assert body["dimension"] == 384 and len(body["vectors"]) == 2
    assert body["token_counts"] == [4, 7] and body["truncated"] == [False, False]
    single = service.encode(native.parse({"text": "hello world"}))
    np.testing.assert_allclose(single.vectors[0], enc.vectors[0], atol=1e-5)


@pytest.mark.parametrize(
    ("body", "exc", "fragment"),
    [
        ({"texts": []}, EmptyInputError, "'texts' is empty"),
        ({"texts": ["ok", ""]}, EmptyInputError, "'texts[1]' is empty"),
        ({"texts": ["ok", "   "]}, EmptyInputError, "'texts[1]'"),
        ({"text": ""}, EmptyInputError, "'text' is empty"),
        ({"texts": [1, 2]}, InvalidInputError, "'texts[0]' must be a string, got int"),
        ({"text": ["a"]}, InvalidInputError, "'text' must be a string"),
        ({"texts": "a", "text": "b"}, InvalidInputError, "exactly one"),
        ({}, InvalidInputError, "exactly one"),
        ({"texts": ["a"], "truncate": "yes"}, InvalidInputError, "'truncate' must be true or false"),
        ({"texts": ["a"] * 5}, TooManyTextsError, "5 texts; at most 4"),
        ({"texts": ["x" * 51], "truncate": False}, TextTooLargeError, "'texts[0]' has 51 characters"),
        ({"texts": ["a"], "normalize": False}, UnsupportedOptionError, "--no-normalize"),
    ],
)
def test_bad_encode_requests(service: EncodeService, body, exc, fragment) -> None:
    with pytest.raises(exc, match=None) as err:
        service.encode(native.parse(body))
    assert fragment in str(err.value)


def test_bad_body_types() -> None:
    with pytest.raises(InvalidInputError, match="JSON object, got list"):
        native.parse(["a"])
    with pytest.raises(InvalidInputError, match="'input' is required"):
        openai_api.parse({"model": "x"})
    with pytest.raises(InvalidInputError, match="'encoding_format'"):
        openai_api.parse({"input": "a", "encoding_format": "int8"})
    with pytest.raises(InvalidInputError, match="'inputs' is required"):
        tei.parse({"input": "a"})


def test_too_long_for_model(default_encoder) -> None:
    svc = EncodeService(default_encoder, Limits())
    long_text = " ".join(["word"] * 300)
    with pytest.raises(TextTooLongForModelError, match=r"'texts\[1\]' has 302 tokens.*at most 256"):
        svc.encode(native.parse({"texts": ["short", long_text], "truncate": False}))
    enc = svc.encode(native.parse({"texts": ["short", long_text]}))
    assert enc.result.truncated.tolist() == [False, True]
    assert enc.result.token_counts.tolist() == [3, 302]


def test_chars_over_limit_are_cut_when_truncation_is_allowed(service: EncodeService) -> None:
    enc = service.encode(native.parse({"texts": ["y " * 40]}))
    assert enc.result.truncated.tolist() == [True]


def test_openai_shapes(service: EncodeService) -> None:
    req, fmt = openai_api.parse({"input": ["hello world", "dogs"], "model": "x", "encoding_format": "base64"})
    enc = service.encode(req)
    body = openai_api.render(enc, "m", fmt, 256)
    assert body["object"] == "list" and body["model"] == "m"
    assert body["usage"] == {"prompt_tokens": 4 + 3, "total_tokens": 4 + 3}
    first = body["data"][0]
    assert first["object"] == "embedding" and first["index"] == 0
    decoded = np.frombuffer(base64.b64decode(first["embedding"]), dtype="<f4")
    np.testing.assert_array_equal(decoded, enc.vectors[0].astype(np.float32))
    req, fmt = openai_api.parse({"input": "hello world"})
    assert fmt == "float" and req.texts == ["hello world"]


def test_tei_defaults(service: EncodeService) -> None:
    req = tei.parse({"inputs": "hello"})
    assert req.normalize is True and req.long_text == LongTextChoice("reject", truncate_as='"truncate": true') and req.texts == ["hello"]
    body = tei.render(service.encode(req))
    assert len(body) == 1 and len(body[0]) == 384


def test_payload_limit() -> None:
    assert check_payload_size("{}") == "{}"
    with pytest.raises(PayloadTooLargeError, match="S3 bulk path"):
        check_payload_size("x" * (6 * 1024 * 1024))


# ---- the per-request budget -------------------------------------------------------------------


def test_character_budget_counts_texts_after_the_per_text_cut(default_encoder) -> None:
    svc = EncodeService(default_encoder, Limits(max_text_chars=50, max_request_chars=100))
    enc = svc.encode(native.parse({"texts": ["y " * 40, "z " * 40]}))  # 160 sent, 100 tokenised
    assert enc.result.truncated.tolist() == [True, True]
    with pytest.raises(RequestTooLargeError, match=r"101 characters in 3 texts; at most 100 .*MAX_REQUEST_CHARS"):
        svc.encode(native.parse({"texts": ["y " * 40, "z " * 40, "w"]}))


def test_wordpiece_budget_counts_at_most_max_seq_length_per_text(default_encoder) -> None:
    svc = EncodeService(default_encoder, Limits(max_request_tokens=600))
    long = "word " * 300  # 302 wordpieces, 256 encoded
    assert svc.encode(native.parse({"texts": [long, long]})).result.token_counts.tolist() == [302, 302]
    with pytest.raises(RequestTooLargeError, match=r"would run 768 wordpieces .* at most 600 .*MAX_REQUEST_TOKENS"):
        svc.encode(native.parse({"texts": [long, long, long]}))


def test_wordpieces_are_counted_by_the_models_tokenizer_only_past_the_bound(default_encoder, monkeypatch) -> None:
    svc = EncodeService(default_encoder, Limits(max_request_tokens=100))
    calls = []
    real = svc.tokenizer.counts
    monkeypatch.setattr(svc.tokenizer, "counts", lambda texts: calls.append(len(texts)) or real(texts))
    svc.encode(native.parse({"texts": ["hello world"] * 3}))  # bound 3 x 35 > 100: counted, 3 x 4 fits
    assert calls == [3]
    svc.encode(native.parse({"texts": ["hi"]}))  # bound 8: no tokenizer call
    assert calls == [3]


def test_without_the_tokenizer_the_bound_decides(default_encoder, monkeypatch) -> None:
    svc = EncodeService(default_encoder, Limits(max_request_tokens=100))
    monkeypatch.setattr(svc.tokenizer, "_pack", None)
    with pytest.raises(RequestTooLargeError, match="would run up to 105 wordpieces"):
        svc.encode(native.parse({"texts": ["hello world"] * 3}))


def test_the_bound_holds_for_hangul_which_nfd_splits_into_jamo(default_encoder) -> None:
    texts = ["한국어 문장", "日本語", "!?!?", "ﬁ ǅ", "[CLS] [SEP]", "a.b.c"]
    counts = default_encoder.encode(texts).token_counts
    assert counts[0] > len(texts[0]) + 2  # one character can be several wordpieces...
    from bert2vec.http.service import WORDPIECES_PER_CHAR

    assert all(c <= WORDPIECES_PER_CHAR * len(t) + 2 for t, c in zip(texts, counts, strict=True))  # ...but few


def test_blank_text_is_refused_before_encoding_when_counted(default_encoder, monkeypatch) -> None:
    svc = EncodeService(default_encoder, Limits(max_request_tokens=10))
    monkeypatch.setattr(svc.encoder, "encode", lambda *a, **k: pytest.fail("encoded a request it should refuse"))
    with pytest.raises(EmptyInputError, match=r"'texts\[1\]' has no characters the model can read"):
        svc.encode(native.parse({"texts": ["ok", "\u200b\u200b\u200b"]}))


# ---- the budget prices padded batches: the work the model really does ------------------------

# 88 characters each: 260 wordpieces of Hangul jamo (words of <= 29 syllables stay under the
# tokenizer's 100-character word limit), and 3 wordpieces of "a" + spaces.
HANGUL_260 = "각" * 29 + " " + "각" * 29 + " " + "각" * 28
SPACES_3 = "a" + " " * 87


def adversarial_mix(groups: int) -> list[str]:
    """In every 8 texts one of 260 wordpieces and seven of 3: few wordpieces, but sorted by
    characters every batch pads to 256."""
    return [HANGUL_260 if i % 8 == 0 else SPACES_3 for i in range(8 * groups)]


class RecordingEncoder:
    """The real encoder; records the padded shape of every batch the graph runs."""

    def __init__(self, encoder) -> None:
        self._encoder, self.batches = encoder, []
        real = encoder._run

        def run(texts, fn=None):
            e, c = real(texts, fn)
            self.batches.append(len(texts) * min(encoder.max_seq_length, int(c.max())))
            return e, c

        self.run = run


@pytest.fixture
def recorded(default_encoder, monkeypatch):
    rec = RecordingEncoder(default_encoder)
    monkeypatch.setattr(default_encoder, "_run", rec.run)
    return rec


def test_texts_few_in_wordpieces_but_padded_to_the_cap_are_charged_what_they_run(default_encoder, recorded) -> None:
    assert default_encoder.function("pack") is not None
    assert ModelTokenizer(default_encoder).counts([HANGUL_260, SPACES_3]).tolist() == [260, 3]
    texts = adversarial_mix(29)  # 232 texts: 29 x 256 + 203 x 3 = 8,033 wordpieces, within 8,192 per text
    svc = EncodeService(default_encoder, Limits(max_request_tokens=8192))
    with pytest.raises(RequestTooLargeError, match=r"would run 8792 wordpieces .* padded to its longest") as err:
        svc.encode(native.parse({"texts": texts}))  # by wordpieces: 25 x 8 x 3 + 4 x 8 x 256
    assert "32 texts always fit" in str(err.value)
    assert recorded.batches == []  # refused before any encoding


def test_every_accepted_mix_runs_at_most_the_budget_and_keeps_its_vectors(default_encoder, recorded) -> None:
    texts = adversarial_mix(6) + ["hello world", "a dog on the beach " * 5]
    budget = 8 * 256 + 6 * 8 * 3 + 2 * 256  # 2,704: less than these texts padded in character order
    svc = EncodeService(default_encoder, Limits(max_request_tokens=budget))
    # Sorted by characters, most of the 7 batches would hold a Hangul text and pad to 256, far over
    # the budget: it admits the request only because the service batches by the wordpieces it counted.
    enc = svc.encode(native.parse({"texts": texts}))
    assert sum(recorded.batches) <= budget, recorded.batches
    recorded.batches.clear()
    alone = np.stack([default_encoder.encode([t]).embeddings[0] for t in dict.fromkeys(texts)])
    by_text = dict(zip(dict.fromkeys(texts), alone, strict=True))
    np.testing.assert_allclose(enc.vectors, np.stack([by_text[t] for t in texts]), atol=2e-6)


def test_the_bound_from_characters_prices_batches_in_character_order(default_encoder, recorded) -> None:
    svc = EncodeService(default_encoder, Limits(max_request_tokens=8 * 256))
    svc.tokenizer._pack = None  # no exact counts: the bound alone must still cover the padding
    with pytest.raises(RequestTooLargeError, match="would run up to"):
        svc.encode(native.parse({"texts": adversarial_mix(2)}))  # 2 batches x 8 x 256 by characters
    svc.encode(native.parse({"texts": adversarial_mix(1)}))
    assert sum(recorded.batches) <= 8 * 256


PIECES = [HANGUL_260, SPACES_3, "hello world", "a dog on the beach " * 6, "word " * 300, "각 " * 20]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(picks=st.lists(st.sampled_from(range(len(PIECES))), min_size=1, max_size=40),
       budget=st.sampled_from([512, 1024, 2048, 4096]), exact=st.booleans())  # fmt: skip
def test_any_accepted_request_runs_at_most_its_budget(default_encoder, recorded, picks, budget, exact) -> None:
    """Whatever the mix of lengths, and with or without exact counts: refused, or the padded
    wordpieces the graph really ran are within the budget."""
    svc = EncodeService(default_encoder, Limits(max_request_tokens=budget))
    if not exact:
        svc.tokenizer._pack = None  # the bound from characters alone must cover the padding
    recorded.batches.clear()
    try:
        svc.encode(native.parse({"texts": [PIECES[i] for i in picks]}))
    except RequestTooLargeError:
        assert recorded.batches == []
        return
    assert 0 < sum(recorded.batches) <= budget, (recorded.batches, budget)
