"""In-graph BERT tokenizer that reproduces Hugging Face's ``BertTokenizer`` token ids.

Why this exists
---------------
The exported SavedModel takes raw strings, so tokenisation has to run inside the TensorFlow
graph, on every request, with no Python.  ``tensorflow_text.BertTokenizer`` is the obvious
building block, but it does *not* give the same ids as Hugging Face (which is what the model was
trained and evaluated with), so this module re-assembles the pipeline from lower-level tf_text /
``tf.strings`` ops and fixes every difference we found.

Reference implementation
------------------------
The reference is the Rust tokenizer behind ``transformers.BertTokenizer`` in transformers 5.x
(there ``BertTokenizerFast`` is the *same* class) and behind ``BertTokenizerFast`` in 4.x; it is
also what ``AutoTokenizer`` and sentence-transformers use.  Its pipeline is:

1. special tokens (``[UNK] [CLS] [SEP] [PAD] [MASK]``) written in the raw text are matched,
   case-sensitively and anywhere (``"a[SEP]b"`` → ``a [SEP] b``), *before* any normalisation;
2. ``BertNormalizer``: drop U+0000, U+FFFD and "other" chars (Cc/Cf/Co, not ``\\t\\n\\r``),
   turn whitespace into spaces, put spaces around CJK ideographs; if lower-casing: NFD, drop
   combining marks, lower-case char by char;
3. ``BertPreTokenizer``: split on whitespace, isolate each punctuation char (Unicode P* plus all
   ASCII symbols such as ``$+<=>^`|~``);
4. ``WordPiece``: greedy longest-match-first with ``##``; a word longer than 100 *characters*
   (after normalisation) is a single ``[UNK]``, as is a word that cannot be fully matched.

tf_text vs. Hugging Face, and what we do about it
-------------------------------------------------
* Special tokens in the text: tf_text splits ``[CLS]`` into ``[ cl ##s ]``.  We split the raw
  text on the special tokens first (``regex_split`` keeping them), normalise/split only the other
  pieces and look the special pieces up whole.
* Lower-casing: tf_text uses ``case_fold_utf8`` = NFKC_Casefold, which also maps ``ß``→``ss``,
  ``ﬁ``→``fi``, ``²``→``2``, full-width → ASCII and drops default-ignorables.  We use
  ``tf.strings.lower`` (ICU full lower-casing) instead.  ICU applies the contextual Greek final
  sigma (``ΟΔΟΣ``→``οδος``) which HF's char-by-char lower-casing does not (``οδοσ``), so ``Σ`` is
  mapped to ``σ`` first.
* Control characters: tf_text turns Cc/Cf into spaces (so ``a\\u200bb`` is two words); HF deletes
  them (one word ``ab``), deletes private-use chars and U+FFFD as well, and keeps ``\\t\\n\\r`` as
  whitespace.  We delete exactly HF's set (``_DROP_RANGES``).
* Whitespace: tf_text's ``\\s`` is ASCII only; HF also splits on NBSP, U+2000-200A, U+2028/2029,
  U+3000, ... (``_WS_RANGES``).
* Unicode tables: HF's Rust crates use old (≈Unicode 8) category tables for punctuation,
  combining marks and controls, and a CJK range ``U+2B920-2CEAF`` where tf_text/Python have
  ``U+2B820-2CEAF``.  RE2's ``\\p{P}`` / ``\\p{Mn}`` / ``\\p{Cf}`` are newer, so e.g. U+2E43 would
  be split off and U+07FD stripped by tf_text but not by HF.  The ``_*_RANGES`` tables below are
  HF's sets, obtained by probing ``tokenizers`` for every code point; the parity test re-derives
  them and fails if ``tokenizers`` ever changes them.
* Long words: tf_text's ``max_bytes_per_word`` counts *bytes* (60 ``é`` = 120 bytes would be
  ``[UNK]``); HF counts characters.  We let wordpiece accept ``4 * max_chars_per_word`` bytes and
  replace words longer than ``max_chars_per_word`` characters by the literal unknown token first.
* Invalid UTF-8 (impossible for HF, which gets Python ``str``) is replaced by U+FFFD, which is
  then dropped, so a bad byte can never make an ICU/RE2 op fail on a request.
* ``regex_split`` stops reading a string at U+0000, and the special-token split has to run before
  control characters are deleted (HF does not see ``[CL\x00S]`` as ``[CLS]``), so NUL is first
  turned into U+FFFD, which HF and we delete just like NUL.

Known, accepted residual differences (none can change ids for vocabularies built before 2021):
ICU in TF 2.21 lower-cases / NFD-decomposes some characters from Unicode 14-16 differently from
the newer Rust tables (e.g. U+2C2F, U+A7C0, U+105C9); no BERT vocabulary contains those
characters in either form, so the affected word is ``[UNK]`` either way.

The Python ("slow"/legacy) BertTokenizer differs from the Rust one, and we follow Rust:
it NFC-normalises before splitting (so cased ``e\\u0301`` becomes ``é``; the Rust tokenizer and
Google's original BERT keep the decomposed form), lower-cases with Python's contextual final
sigma, deletes unassigned code points (Cn), uses newer Unicode tables (Python's ``unicodedata``)
and the ``U+2B820`` CJK range, and recognises ``[CL\\u200bS]`` as ``[CLS]``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import tensorflow as tf
import tensorflow_text as tf_text
from tensorflow_text.python.ops.regex_split_ops import gen_regex_split_ops as _gen_regex_split
from tensorflow_text.python.ops.wordpiece_tokenizer import gen_wordpiece_tokenizer as _gen_wordpiece

# --- Hugging Face's character classes -------------------------------------------------------
# Generated from tokenizers 0.23.3 (``BertNormalizer`` / ``BertPreTokenizer``) by probing every
# code point; tests/unit/test_tokenizer_parity.py re-derives and compares them.

# Deleted by BertNormalizer(clean_text=True): U+0000, U+FFFD, Cc except \t\n\r, Cf, Co.
_DROP_RANGES = """
0000-0008 000B-000C 000E-001F 007F-009F 00AD 0600-0605 061C 06DD 070F 180E 200B-200F 202A-202E
2060-2064 2066-206F E000-F8FF FEFF FFF9-FFFB FFFD 110BD 1BCA0-1BCA3 1D173-1D17A E0001
E0020-E007F F0000-FFFFD 100000-10FFFD
"""

# Whitespace that survives cleaning (BertNormalizer maps it to " ", BertPreTokenizer splits on it).
_WS_RANGES = """
0009-000A 000D 0020 00A0 1680 2000-200A 2028-2029 202F 205F 3000
"""

# Isolated as single-char words by BertPreTokenizer (ASCII symbols + old-Unicode P*).
_PUNCT_RANGES = """
0021-002F 003A-0040 005B-0060 007B-007E 00A1 00A7 00AB 00B6-00B7 00BB 00BF 037E 0387 055A-055F
0589-058A 05BE 05C0 05C3 05C6 05F3-05F4 0609-060A 060C-060D 061B 061E-061F 066A-066D 06D4
0700-070D 07F7-07F9 0830-083E 085E 0964-0965 0970 0AF0 0DF4 0E4F 0E5A-0E5B 0F04-0F12 0F14
0F3A-0F3D 0F85 0FD0-0FD4 0FD9-0FDA 104A-104F 10FB 1360-1368 1400 166D-166E 169B-169C 16EB-16ED
1735-1736 17D4-17D6 17D8-17DA 1800-180A 1944-1945 1A1E-1A1F 1AA0-1AA6 1AA8-1AAD 1B5A-1B60
1BFC-1BFF 1C3B-1C3F 1C7E-1C7F 1CC0-1CC7 1CD3 2010-2027 2030-2043 2045-2051 2053-205E 207D-207E
208D-208E 2308-230B 2329-232A 2768-2775 27C5-27C6 27E6-27EF 2983-2998 29D8-29DB 29FC-29FD
2CF9-2CFC 2CFE-2CFF 2D70 2E00-2E2E 2E30-2E42 3001-3003 3008-3011 3014-301F 3030 303D 30A0 30FB
A4FE-A4FF A60D-A60F A673 A67E A6F2-A6F7 A874-A877 A8CE-A8CF A8F8-A8FA A8FC A92E-A92F A95F
A9C1-A9CD A9DE-A9DF AA5C-AA5F AADE-AADF AAF0-AAF1 ABEB FD3E-FD3F FE10-FE19 FE30-FE52 FE54-FE61
FE63 FE68 FE6A-FE6B FF01-FF03 FF05-FF0A FF0C-FF0F FF1A-FF1B FF1F-FF20 FF3B-FF3D FF3F FF5B FF5D
FF5F-FF65 10100-10102 1039F 103D0 1056F 10857 1091F 1093F 10A50-10A58 10A7F 10AF0-10AF6
10B39-10B3F 10B99-10B9C 11047-1104D 110BB-110BC 110BE-110C1 11140-11143 11174-11175 111C5-111C9
111CD 111DB 111DD-111DF 11238-1123D 112A9 114C6 115C1-115D7 11641-11643 1173C-1173E 12470-12474
16A6E-16A6F 16AF5 16B37-16B3B 16B44 1BC9F 1DA87-1DA8B
"""

# Removed after NFD by BertNormalizer(strip_accents=True) (old-Unicode combining marks).
_MARKS_RANGES = """
0300-036F 0483-0487 0591-05BD 05BF 05C1-05C2 05C4-05C5 05C7 0610-061A 064B-065F 0670 06D6-06DC
06DF-06E4 06E7-06E8 06EA-06ED 0711 0730-074A 07A6-07B0 07EB-07F3 0816-0819 081B-0823 0825-0827
0829-082D 0859-085B 08E3-0902 093A 093C 0941-0948 094D 0951-0957 0962-0963 0981 09BC 09C1-09C4
09CD 09E2-09E3 0A01-0A02 0A3C 0A41-0A42 0A47-0A48 0A4B-0A4D 0A51 0A70-0A71 0A75 0A81-0A82 0ABC
0AC1-0AC5 0AC7-0AC8 0ACD 0AE2-0AE3 0B01 0B3C 0B3F 0B41-0B44 0B4D 0B56 0B62-0B63 0B82 0BC0 0BCD
0C00 0C3E-0C40 0C46-0C48 0C4A-0C4D 0C55-0C56 0C62-0C63 0C81 0CBC 0CBF 0CC6 0CCC-0CCD 0CE2-0CE3
0D01 0D41-0D44 0D4D 0D62-0D63 0DCA 0DD2-0DD4 0DD6 0E31 0E34-0E3A 0E47-0E4E 0EB1 0EB4-0EB9
0EBB-0EBC 0EC8-0ECD 0F18-0F19 0F35 0F37 0F39 0F71-0F7E 0F80-0F84 0F86-0F87 0F8D-0F97 0F99-0FBC
0FC6 102D-1030 1032-1037 1039-103A 103D-103E 1058-1059 105E-1060 1071-1074 1082 1085-1086 108D
109D 135D-135F 1712-1714 1732-1734 1752-1753 1772-1773 17B4-17B5 17B7-17BD 17C6 17C9-17D3 17DD
180B-180D 18A9 1920-1922 1927-1928 1932 1939-193B 1A17-1A18 1A1B 1A56 1A58-1A5E 1A60 1A62
1A65-1A6C 1A73-1A7C 1A7F 1AB0-1ABD 1B00-1B03 1B34 1B36-1B3A 1B3C 1B42 1B6B-1B73 1B80-1B81
1BA2-1BA5 1BA8-1BA9 1BAB-1BAD 1BE6 1BE8-1BE9 1BED 1BEF-1BF1 1C2C-1C33 1C36-1C37 1CD0-1CD2
1CD4-1CE0 1CE2-1CE8 1CED 1CF4 1CF8-1CF9 1DC0-1DF5 1DFC-1DFF 20D0-20DC 20E1 20E5-20F0 2CEF-2CF1
2D7F 2DE0-2DFF 302A-302D 3099-309A A66F A674-A67D A69E-A69F A6F0-A6F1 A802 A806 A80B A825-A826
A8C4 A8E0-A8F1 A926-A92D A947-A951 A980-A982 A9B3 A9B6-A9B9 A9BC A9E5 AA29-AA2E AA31-AA32
AA35-AA36 AA43 AA4C AA7C AAB0 AAB2-AAB4 AAB7-AAB8 AABE-AABF AAC1 AAEC-AAED AAF6 ABE5 ABE8 ABED
FB1E FE00-FE0F FE20-FE2F 101FD 102E0 10376-1037A 10A01-10A03 10A05-10A06 10A0C-10A0F 10A38-10A3A
10A3F 10AE5-10AE6 11001 11038-11046 1107F-11081 110B3-110B6 110B9-110BA 11100-11102 11127-1112B
1112D-11134 11173 11180-11181 111B6-111BE 111CA-111CC 1122F-11231 11234 11236-11237 112DF
112E3-112EA 11300-11301 1133C 11340 11366-1136C 11370-11374 114B3-114B8 114BA 114BF-114C0
114C2-114C3 115B2-115B5 115BC-115BD 115BF-115C0 115DC-115DD 11633-1163A 1163D 1163F-11640 116AB
116AD 116B0-116B5 116B7 1171D-1171F 11722-11725 11727-1172B 16AF0-16AF4 16B30-16B36 16F8F-16F92
1BC9D-1BC9E 1D167-1D169 1D17B-1D182 1D185-1D18B 1D1AA-1D1AD 1D242-1D244 1DA00-1DA36 1DA3B-1DA6C
1DA75 1DA84 1DA9B-1DA9F 1DAA1-1DAAF 1E8D0-1E8D6 E0100-E01EF
"""

# Ideographs BertNormalizer(handle_chinese_chars=True) surrounds with spaces (each is one word).
_CJK_RANGES = """
3400-4DBF 4E00-9FFF F900-FAFF 20000-2A6DF 2A700-2B81F 2B920-2CEAF 2F800-2FA1F
"""


def _class_body(ranges: str) -> str:
    """``"0300-036F 0483"`` → RE2 class body ``\\x{0300}-\\x{036F}\\x{0483}`` (no brackets)."""
    parts = []
    for item in ranges.split():
        lo, _, hi = item.partition("-")
        parts.append(f"\\x{{{lo}}}" + (f"-\\x{{{hi}}}" if hi else ""))
    return "".join(parts)


def parse_ranges(ranges: str) -> frozenset[int]:
    """The code points of a ``_*_RANGES`` table (used by the tests to check the tables)."""
    out: set[int] = set()
    for item in ranges.split():
        lo, _, hi = item.partition("-")
        out.update(range(int(lo, 16), int(hi or lo, 16) + 1))
    return frozenset(out)


_DROP_RE = f"[{_class_body(_DROP_RANGES)}]"
_MARKS_RE = f"[{_class_body(_MARKS_RANGES)}]"
# One delimiter is a whitespace run (dropped) or a single punctuation / CJK char (kept as a word).
_KEEP_RE = f"[{_class_body(_PUNCT_RANGES)}{_class_body(_CJK_RANGES)}]"
_SPLIT_RE = f"[{_class_body(_WS_RANGES)}]+|{_KEEP_RE}"


def read_vocab(path: str | os.PathLike) -> list[str]:
    """The vocabulary as Hugging Face reads it: one token per line, index = line number."""
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


@runtime_checkable
class WordTokenizer(Protocol):
    """The steps of a word-level tokenizer that ``bert2vec.export.long_text`` replays to find each wordpiece's word.

    ``tokenize`` = split off ``special_pattern`` matches; ``normalize`` the rest; split it on
    ``split_pattern`` keeping ``keep_pattern`` matches as words; ``wordpieces`` of every word.
    """

    special_pattern: str
    split_pattern: str
    keep_pattern: str

    def normalize(self, text: tf.Tensor) -> tf.Tensor: ...

    def wordpieces(self, words: tf.Tensor) -> tf.RaggedTensor: ...


class BertTokenizerModule(tf.Module):
    """In-graph BERT tokenizer (tensorflow_text ops) that reproduces Hugging Face's BertTokenizer.

    The vocabulary is held in a ``tf.lookup.StaticVocabularyTable`` initialised from the vocab
    file; TensorFlow tracks that file as a SavedModel asset, so a SavedModel that owns this module
    is self-contained (the file is copied into ``assets/``). Implements :class:`WordTokenizer`.
    """

    #: One delimiter: a whitespace run (dropped) or one punctuation / CJK character (kept, a word).
    split_pattern = _SPLIT_RE
    #: The delimiters of ``split_pattern`` that are words themselves.
    keep_pattern = _KEEP_RE

    def __init__(
        self,
        vocab_file: str | os.PathLike,
        lower_case: bool,
        *,
        max_chars_per_word: int = 100,
        unk_token: str = "[UNK]",
        cls_token: str = "[CLS]",
        sep_token: str = "[SEP]",
        pad_token: str = "[PAD]",
        mask_token: str | None = "[MASK]",
        extra_special_tokens: Sequence[str] = (),
        name: str | None = None,
    ) -> None:
        """Build the lookup table and the graph constants.

        ``mask_token`` and ``extra_special_tokens`` are only needed to reproduce HF's matching of
        special tokens written in the input text; a ``mask_token`` missing from the vocabulary is
        ignored, the four required special tokens must be in it.
        """
        super().__init__(name=name)
        path = os.fspath(vocab_file)
        tokens = read_vocab(path)
        index: dict[str, int] = {}
        for i, token in enumerate(tokens):
            if token in index:
                raise ValueError(f"{path}: duplicate vocabulary entry {token!r} (lines {index[token] + 1} and {i + 1})")
            index[token] = i
        required = {"unk_token": unk_token, "cls_token": cls_token, "sep_token": sep_token, "pad_token": pad_token}
        missing = [f"{k}={v!r}" for k, v in required.items() if v not in index]
        if missing:
            raise ValueError(f"{path}: special tokens not in the vocabulary: {', '.join(missing)}")
        if max_chars_per_word < 1:
            raise ValueError(f"max_chars_per_word must be positive, got {max_chars_per_word}")

        self.vocab_size: int = len(tokens)
        self.lower_case: bool = bool(lower_case)
        self.unk_id: int = index[unk_token]
        self.cls_id: int = index[cls_token]
        self.sep_id: int = index[sep_token]
        self.pad_id: int = index[pad_token]
        self._unk_token = unk_token
        self._max_chars_per_word = int(max_chars_per_word)

        unknown_extra = [t for t in extra_special_tokens if t not in index]
        if unknown_extra:  # HF would give them ids past the end of the vocabulary (embedding table)
            raise ValueError(f"{path}: extra special tokens not in the vocabulary: {unknown_extra}")
        specials = {unk_token, cls_token, sep_token, pad_token, *extra_special_tokens}
        if mask_token is not None and mask_token in index:
            specials.add(mask_token)
        # Longest first, so that a special token that is a prefix of another cannot win.
        self.special_pattern = "|".join(re.escape(t) for t in sorted(specials, key=lambda t: (-len(t), t)))

        self._table = tf.lookup.StaticVocabularyTable(
            tf.lookup.TextFileInitializer(
                path,
                key_dtype=tf.string,
                key_index=tf.lookup.TextFileIndex.WHOLE_LINE,
                value_dtype=tf.int64,
                value_index=tf.lookup.TextFileIndex.LINE_NUMBER,
            ),
            num_oov_buckets=1,
        )
        if tf.executing_eagerly():  # TF must read the file as HF does (line splitting, encoding).
            got = self._table.lookup(tf.constant(tokens, tf.string)).numpy()
            bad = [i for i, token_id in enumerate(got.tolist()) if token_id != i]
            if bad:
                raise ValueError(f"{path}: TensorFlow reads line {bad[0] + 1} ({tokens[bad[0]]!r}) differently from HF")
        longest_piece = max(len(t.removeprefix("##").encode("utf-8")) for t in tokens)
        # Arguments of tf_text's wordpiece kernel, called directly (``_wordpiece_op``).
        self._wordpiece_args = {
            "suffix_indicator": "##",
            "use_unknown_token": True,
            # Bytes; a word of max_chars_per_word chars is at most 4x that.  Longer words are
            # turned into the unknown token before wordpiece (HF counts characters, not bytes).
            "max_bytes_per_word": 4 * self._max_chars_per_word,
            "max_chars_per_token": longest_piece,  # an upper bound in bytes; only prunes the search
            "unknown_token": unk_token,
            "split_unknown_characters": False,
            "output_row_partition_type": "row_splits",
        }

    def normalize(self, text: tf.Tensor) -> tf.Tensor:
        """BertNormalizer on non-special pieces (CJK spacing is done by the split regex)."""
        text = tf.strings.regex_replace(text, _DROP_RE, "")
        if self.lower_case:
            text = tf_text.normalize_utf8(text, "NFD")
            text = tf.strings.regex_replace(text, _MARKS_RE, "")
            text = tf.strings.regex_replace(text, "Σ", "σ")  # HF has no contextual final sigma
            text = tf.strings.lower(text, encoding="utf-8")
        return text

    def tokenize(self, text: tf.Tensor) -> tf.RaggedTensor:
        """text: tf.string [B] -> int32 RaggedTensor [B, (T)] of wordpiece ids, WITHOUT [CLS]/[SEP], never truncated.

        Built from tf_text's kernels and plain index arithmetic on their row splits, not from
        RaggedTensor methods: ``concat``/``merge_dims``/``from_row_splits`` on ragged tensors add
        validation (Assert, If/Switch/Merge) that runs on every call for splits the kernels just
        produced — a third of the nodes a one-text request ran. The ids are those of the ragged
        formulation: the same kernels, the same words in the same order.
        """
        text = tf.convert_to_tensor(text, dtype=tf.string)
        text.shape.assert_has_rank(1)
        text = tf.strings.unicode_transcode(
            text, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD, replace_control_characters=False
        )
        # regex_split stops at NUL; U+FFFD is dropped just the same but cannot form a special token.
        text = tf.strings.regex_replace(text, r"\x00", "\ufffd")
        # 1. Special tokens written in the raw text stay whole, as in HF's added-token matching.
        pieces, piece_splits = _regex_split_op(text, self.special_pattern, self.special_pattern)  # [P], [B+1]
        is_special = tf.strings.regex_full_match(pieces, self.special_pattern)
        # 2./3. Normalise and split the other pieces into words; a special piece has none of its own.
        normal, normal_splits = _regex_split_op(
            self.normalize(tf.where(is_special, "", pieces)), _SPLIT_RE, _KEEP_RE
        )  # [N], [P+1]
        # Every piece's words in order: its normal words, or itself if it is a special token.
        specials_before = tf.concat([[0], tf.cumsum(tf.cast(is_special, tf.int32))], axis=0)  # [P+1]
        word_splits = tf.cast(normal_splits, tf.int32) + specials_before  # [P+1]
        normal_index = tf.range(tf.size(normal))
        owner = tf.searchsorted(tf.cast(normal_splits[1:], tf.int32), normal_index, side="right")  # piece of each
        special_index = tf.where(is_special)[:, 0]
        words = tf.dynamic_stitch(
            [
                normal_index + tf.gather(specials_before, owner),
                tf.gather(word_splits, tf.cast(special_index, tf.int32)),
            ],
            [normal, tf.gather(pieces, special_index)],
        )  # [W]
        text_word_splits = tf.gather(word_splits, piece_splits)  # [B+1]
        ids, piece_splits_per_word = self._wordpiece_op(words)  # 4. [T], [W+1]
        return tf.RaggedTensor.from_row_splits(ids, tf.gather(piece_splits_per_word, text_word_splits), validate=False)

    def wordpieces(self, words: tf.Tensor) -> tf.RaggedTensor:
        """Normalised words [W] -> int32 wordpiece ids [W, (pieces)]; a word too long is one unknown token."""
        ids, splits = self._wordpiece_op(words)
        return tf.RaggedTensor.from_row_splits(ids, splits, validate=False)

    def _wordpiece_op(self, words: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(int32 ids [T], int64 row splits [W+1]) of ``words`` [W], by tf_text's wordpiece kernel.

        HF's per-word limit counts characters; tf_text's counts bytes, so long words are replaced
        by the unknown token here, before wordpiece sees them.
        """
        too_long = tf.strings.length(words, unit="UTF8_CHAR") > self._max_chars_per_word
        pieces, splits, _, _ = _gen_wordpiece.wordpiece_tokenize_with_offsets(
            input_values=tf.where(too_long, self._unk_token, words),
            vocab_lookup_table=self._table.resource_handle,
            **self._wordpiece_args,
        )
        return tf.cast(self._table.lookup(pieces), tf.int32), splits


def _regex_split_op(text: tf.Tensor, delim: str, keep: str) -> tuple[tf.Tensor, tf.Tensor]:
    """(tokens [M], int64 row splits [len(text)+1]): ``tf_text.regex_split`` without its RaggedTensor
    wrapper (whose ``from_row_splits`` validates the kernel's splits on every call)."""
    tokens, _, _, splits = _gen_regex_split.regex_split_with_offsets(text, f"({delim})".encode(), f"({keep})".encode())
    return tokens, splits
