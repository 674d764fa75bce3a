"""Read a Hugging Face BERT checkpoint directory into the canonical ``BertWeights``.

Reads ``model.safetensors`` with safetensors' numpy API, so converting needs neither torch nor
transformers. Also understands the sentence-transformers layout (``modules.json``,
``1_Pooling/config.json``, ``sentence_bert_config.json``) so that such a model exports with the
pooling, normalisation and truncation its authors use — that is what makes the embedded
all-MiniLM-L6-v2 equal sentence-transformers' vectors.

Nothing here imports TensorFlow: ``inspect_hf_checkpoint`` checks a checkpoint completely (config,
vocabulary, tokenizer settings, the safetensors header: every tensor's name, shape and dtype)
without reading the weights, so ``bert-export`` refuses a bad checkpoint in a fraction of a second,
before the slow part starts.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bert2vec.export.bert_weights import (
    GELU_ACTIVATIONS,
    BertConfig,
    BertWeights,
    LayerWeights,
    embedding_shapes,
    embedding_weights,
)
from bert2vec.export.errors import IncompatibleModelError, SourceFormatError

WEIGHT_FILES = ("model.safetensors",)
_FLOAT_DTYPES = ("F16", "F32", "F64")
# Buffers some checkpoints carry that Hugging Face ignores without a word.
_IGNORED_TENSORS = frozenset({"embeddings.position_ids"})


@dataclass
class HfCheckpoint:
    """What a checkpoint directory holds, checked, without the weight values."""

    directory: Path
    config: BertConfig
    vocab_file: Path
    vocab_size: int
    lower_case: bool
    special_tokens: dict[str, str]
    st_pooling: str | None  # pooling from sentence-transformers' 1_Pooling, if present
    st_normalize: bool  # sentence-transformers Normalize module present
    st_max_seq_length: int | None
    has_pooler: bool
    prefix: str  # "bert." for BertFor* checkpoints, "" for BertModel
    warnings: list[str] = field(default_factory=list)


@dataclass
class HfBert:
    """Everything the builder needs from an HF checkpoint."""

    config: BertConfig
    weights: BertWeights
    vocab_file: Path
    lower_case: bool
    special_tokens: dict[str, str]
    st_pooling: str | None
    st_normalize: bool
    st_max_seq_length: int | None


def is_hf_checkpoint(path: Path) -> bool:
    return (path / "config.json").is_file()


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SourceFormatError(f"{path}: no such file") from exc
    except (OSError, ValueError) as exc:
        raise SourceFormatError(f"{path}: cannot read JSON ({exc})") from exc


def _read_json_object(path: Path) -> dict[str, Any]:
    value = _read_json(path)
    if not isinstance(value, dict):
        raise SourceFormatError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def _positive_int(path: Path, raw: dict[str, Any], key: str, default: int | None = None) -> int:
    if key not in raw:
        if default is None:
            raise SourceFormatError(f"{path}: config.json lacks {key!r}")
        return default
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SourceFormatError(f"{path}/config.json: {key} must be a positive integer, got {value!r}")
    return value


def _bert_config(path: Path, raw: dict[str, Any]) -> BertConfig:
    model_type = raw.get("model_type")
    architectures = raw.get("architectures") or []
    if model_type != "bert":
        raise IncompatibleModelError(
            f"{path}: model_type is {model_type!r} ({', '.join(map(str, architectures)) or 'no architectures'}); "
            "only BERT checkpoints (model_type 'bert') can be exported"
        )
    if raw.get("position_embedding_type", "absolute") != "absolute":
        raise IncompatibleModelError(
            f"{path}: position_embedding_type {raw['position_embedding_type']!r} is not supported "
            "(only 'absolute', as in BERT)"
        )
    hidden = _positive_int(path, raw, "hidden_size")
    heads = _positive_int(path, raw, "num_attention_heads")
    if hidden % heads:
        raise SourceFormatError(
            f"{path}/config.json: num_attention_heads {heads} does not divide hidden_size {hidden}"
        )
    act = raw.get("hidden_act", "gelu")
    if act not in GELU_ACTIVATIONS:
        raise IncompatibleModelError(
            f"{path}/config.json: hidden_act {act!r} is not supported; supported: {', '.join(GELU_ACTIVATIONS)}"
        )
    eps = raw.get("layer_norm_eps", 1e-12)
    if isinstance(eps, bool) or not isinstance(eps, int | float) or not 0 < eps < 1:
        raise SourceFormatError(f"{path}/config.json: layer_norm_eps must be a small positive number, got {eps!r}")
    return BertConfig(
        vocab_size=_positive_int(path, raw, "vocab_size"),
        hidden_size=hidden,
        num_layers=_positive_int(path, raw, "num_hidden_layers"),
        num_heads=heads,
        intermediate_size=_positive_int(path, raw, "intermediate_size"),
        max_position=_positive_int(path, raw, "max_position_embeddings", 512),
        type_vocab_size=_positive_int(path, raw, "type_vocab_size", 2),
        layer_norm_eps=float(eps),
        hidden_act=str(act),
    )


def read_vocab(vocab_file: Path) -> list[str]:
    """vocab.txt as Hugging Face reads it (one token per line), refusing what HF would misread."""
    try:
        data = vocab_file.read_bytes()
    except OSError as exc:
        raise SourceFormatError(f"{vocab_file}: cannot read ({exc.strerror or exc})") from exc
    if data.startswith(b"\xef\xbb\xbf"):
        raise SourceFormatError(
            f"{vocab_file}: starts with a UTF-8 byte-order mark, which Hugging Face reads as part of the "
            "first token; remove the first 3 bytes (EF BB BF) and export again"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SourceFormatError(f"{vocab_file}: line {line} is not valid UTF-8") from exc
    tokens = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")  # Python's universal newlines, as HF
    if tokens and tokens[-1] == "":
        tokens.pop()
    seen: dict[str, int] = {}
    for i, token in enumerate(tokens):
        if token in seen:
            raise SourceFormatError(
                f"{vocab_file}: line {i + 1} repeats line {seen[token] + 1} ({token!r}); every token must "
                "appear once, or ids after it would not match the embedding rows"
            )
        seen[token] = i
    if not tokens:
        raise SourceFormatError(f"{vocab_file}: empty vocabulary")
    return tokens


def _has_upper_case(tokens: list[str]) -> bool:
    """Whether the vocabulary has cased entries, ignoring bracketed specials such as [CLS] or <s>."""
    return any(t != t.lower() for t in tokens if not re.fullmatch(r"\[[^\]]*\]|<[^>]*>", t))


def _uncased_vocab_message(what: str) -> str:
    return (
        f"{what} but the vocabulary has no upper-case tokens (it is uncased): capitalised words will "
        "be split into odd pieces or [UNK]; set do_lower_case to true if the model was trained uncased"
    )


def warn_if_cased_off_on_uncased_vocab(vocab_file: Path, what: str) -> None:
    """For sources that say lower_case=False elsewhere (a TF Hub encoder's ``do_lower_case``)."""
    from bert2vec.export.errors import ExportError, warn

    try:
        tokens = read_vocab(vocab_file)
    except ExportError:
        return  # the tokenizer build reports a bad vocabulary itself
    if not _has_upper_case(tokens):
        warn(_uncased_vocab_message(what))


def _tokenizer_settings(directory: Path) -> tuple[bool, bool, dict[str, str]]:
    """(lower_case, whether tokenizer_config.json set it, special tokens)."""
    cfg: dict[str, Any] = {}
    if (directory / "tokenizer_config.json").is_file():
        cfg = _read_json_object(directory / "tokenizer_config.json")
    lower_case = bool(cfg.get("do_lower_case", True))  # HF BertTokenizer's default
    strip_accents = cfg.get("strip_accents")
    if strip_accents is not None and bool(strip_accents) != lower_case:
        raise IncompatibleModelError(
            f"{directory}/tokenizer_config.json: strip_accents={strip_accents} with "
            f"do_lower_case={lower_case} is not supported (accents are stripped exactly when lower-casing)"
        )
    if cfg.get("tokenize_chinese_chars", True) is False:
        raise IncompatibleModelError(
            f"{directory}/tokenizer_config.json: tokenize_chinese_chars=false is not supported"
        )
    special = {}
    for key, default in (("unk", "[UNK]"), ("cls", "[CLS]"), ("sep", "[SEP]"), ("pad", "[PAD]"), ("mask", "[MASK]")):
        value = cfg.get(f"{key}_token", default)
        if isinstance(value, dict):  # AddedToken serialised as {"content": ..., ...}
            value = value.get("content", default)
        special[key] = str(value)
    return lower_case, "do_lower_case" in cfg, special


def _sentence_transformers_settings(directory: Path) -> tuple[str | None, bool, int | None]:
    pooling = None
    normalize = False
    max_seq = None
    modules_file = directory / "modules.json"
    if modules_file.is_file():
        modules = _read_json(modules_file)
        if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
            raise SourceFormatError(f"{modules_file}: expected a JSON list of module objects")
        for module in modules:
            kind, path = module.get("type", ""), module.get("path", "")
            if not isinstance(kind, str) or not isinstance(path, str):
                raise SourceFormatError(f"{modules_file}: module 'type' and 'path' must be strings, got {module}")
            if kind.endswith("Normalize"):
                normalize = True
            if kind.endswith("Pooling"):
                pool_cfg = _read_json_object(directory / path / "config.json")
                modes = [k for k, v in pool_cfg.items() if k.startswith("pooling_mode") and v]
                if modes == ["pooling_mode_mean_tokens"]:
                    pooling = "mean"
                elif modes == ["pooling_mode_cls_token"]:
                    pooling = "cls"
                else:
                    raise IncompatibleModelError(
                        f"{directory}: sentence-transformers pooling {modes} is not supported "
                        "(mean or cls only)"
                    )
    st_cfg = directory / "sentence_bert_config.json"
    if st_cfg.is_file():
        value = _read_json_object(st_cfg).get("max_seq_length")
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise SourceFormatError(f"{st_cfg}: max_seq_length must be a positive integer, got {value!r}")
        max_seq = value or None
    return pooling, normalize, max_seq


# An HF checkpoint's names for the embedding fields, in ``embedding_weights``' order.
_HF_EMBEDDINGS = (
    "embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
    "embeddings.token_type_embeddings.weight", "embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias",
)  # fmt: skip


def _expected_shapes(config: BertConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor a BertModel needs, in torch's layout (Linear weights are [out, in])."""
    h, i = config.hidden_size, config.intermediate_size
    shapes: dict[str, tuple[int, ...]] = dict(zip(_HF_EMBEDDINGS, embedding_shapes(config), strict=True))
    for n in range(config.num_layers):
        p = f"encoder.layer.{n}."
        for name, (out, inp) in {
            "attention.self.query": (h, h), "attention.self.key": (h, h), "attention.self.value": (h, h),
            "attention.output.dense": (h, h), "intermediate.dense": (i, h), "output.dense": (h, i),
        }.items():  # fmt: skip
            shapes[f"{p}{name}.weight"], shapes[f"{p}{name}.bias"] = (out, inp), (out,)
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            shapes[f"{p}{ln}.weight"], shapes[f"{p}{ln}.bias"] = (h,), (h,)
    return shapes


def _summarise(names: list[str], limit: int = 6) -> str:
    """``encoder.layer.6.*`` for a whole layer, else the names themselves, at most ``limit`` items."""
    groups: dict[str, int] = {}
    for name in sorted(names):
        m = re.match(r"(encoder\.layer\.\d+\.)", name)
        key = f"{m.group(1)}*" if m else name
        groups[key] = groups.get(key, 0) + 1
    items = [f"{k} ({n} tensors)" if n > 1 else k for k, n in groups.items()]
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def _read_header(weights_file: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """name -> (dtype, shape) from the safetensors header; the file's size is checked against it."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(weights_file), framework="numpy") as f:
            out = {}
            for name in f.keys():
                sl = f.get_slice(name)
                out[name] = (str(sl.get_dtype()), tuple(int(d) for d in sl.get_shape()))
            return out
    except SafetensorError as exc:
        raise SourceFormatError(f"{weights_file}: truncated or not a safetensors file ({exc})") from exc
    except OSError as exc:
        raise SourceFormatError(f"{weights_file}: cannot read ({exc.strerror or exc})") from exc


def _check_tensors(directory: Path, config: BertConfig) -> tuple[str, bool, list[str]]:
    """(name prefix, has pooler, warnings); raises on missing or misshapen tensors."""
    weights_file = directory / "model.safetensors"
    if not weights_file.is_file():
        others = [p.name for p in directory.glob("*.bin")] + [p.name for p in directory.glob("*.h5")]
        hint = f" (found {', '.join(others)}; convert it to model.safetensors first)" if others else ""
        raise SourceFormatError(f"{directory}: no model.safetensors{hint}")
    header = _read_header(weights_file)
    # BertForMaskedLM / BertForSequenceClassification etc. prefix the encoder with "bert."; their
    # task heads (cls.*, classifier.*) are not part of the encoder and are dropped, as HF's BertModel does.
    prefix = "bert." if any(k.startswith("bert.") for k in header) else ""
    tensors = {k[len(prefix) :]: v for k, v in header.items() if k.startswith(prefix)}
    expected = _expected_shapes(config)
    pooler = {"pooler.dense.weight": (config.hidden_size, config.hidden_size), "pooler.dense.bias": (config.hidden_size,)}
    has_pooler = "pooler.dense.weight" in tensors
    if has_pooler:
        expected.update(pooler)
    missing = [n for n in expected if n not in tensors]
    if missing:
        raise SourceFormatError(
            f"{weights_file}: missing tensor {prefix}{missing[0]!r}"
            + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
            + f" (config.json: {config.num_layers} layers, hidden_size {config.hidden_size})"
        )
    bad_shape = [f"{prefix}{n} is {list(tensors[n][1])}, expected {list(s)}" for n, s in expected.items() if tensors[n][1] != s]
    if bad_shape:
        raise IncompatibleModelError(f"{weights_file}: tensors do not match config.json: {'; '.join(bad_shape[:3])}")
    bad_dtype = sorted({tensors[n][0] for n in expected} - set(_FLOAT_DTYPES))
    if bad_dtype:
        raise IncompatibleModelError(
            f"{weights_file}: tensors of dtype {', '.join(bad_dtype)} are not supported ({', '.join(_FLOAT_DTYPES)} are)"
        )
    warnings = []
    surplus = [prefix + n for n in tensors if n not in expected and n not in _IGNORED_TENSORS and n not in pooler]
    if surplus:
        warnings.append(
            f"{weights_file}: {len(surplus)} tensors are not used by a {config.num_layers}-layer BERT "
            f"as config.json describes it: {_summarise([n[len(prefix):] for n in surplus])}"
        )
    return prefix, has_pooler, warnings


def inspect_hf_checkpoint(directory: Path) -> HfCheckpoint:
    """Check config, vocabulary, tokenizer settings and tensor names/shapes; read no weights."""
    directory = Path(directory)
    config = _bert_config(directory, _read_json_object(directory / "config.json"))
    vocab_file = directory / "vocab.txt"
    if not vocab_file.is_file():
        raise SourceFormatError(f"{directory}: no vocab.txt (a WordPiece BERT vocabulary is required)")
    tokens = read_vocab(vocab_file)
    lower_case, lower_case_set, special = _tokenizer_settings(directory)
    required = {k: special[k] for k in ("unk", "cls", "sep", "pad")}
    absent = [f"{k}_token={v!r}" for k, v in required.items() if v not in tokens]
    if absent:
        raise IncompatibleModelError(f"{vocab_file}: special tokens not in the vocabulary: {', '.join(absent)}")
    prefix, has_pooler, warnings = _check_tensors(directory, config)
    if len(tokens) != config.vocab_size:
        raise IncompatibleModelError(
            f"{directory}: vocab.txt has {len(tokens)} entries but the word embedding matrix has "
            f"{config.vocab_size} rows; they must be equal"
        )
    if not lower_case and not _has_upper_case(tokens):
        where = "tokenizer_config.json sets do_lower_case false" if lower_case_set else "do_lower_case is false"
        warnings.append(_uncased_vocab_message(f"{directory}: {where}"))
    pooling, normalize, max_seq = _sentence_transformers_settings(directory)
    return HfCheckpoint(
        directory, config, vocab_file, len(tokens), lower_case, special, pooling, normalize, max_seq,
        has_pooler, prefix, warnings,
    )  # fmt: skip


def _weights(directory: Path, tensors: dict[str, np.ndarray], config: BertConfig) -> BertWeights:
    def get(name: str) -> np.ndarray:
        if name not in tensors:
            raise SourceFormatError(f"{directory}/model.safetensors: missing tensor {name!r}")
        return np.asarray(tensors[name], dtype=np.float32)

    def dense(prefix: str) -> tuple[np.ndarray, np.ndarray]:
        # torch Linear stores [out, in]; our graph multiplies by [in, out].
        return get(f"{prefix}.weight").T.copy(), get(f"{prefix}.bias")

    layers = []
    for n in range(config.num_layers):
        p = f"encoder.layer.{n}"
        qk, qb = dense(f"{p}.attention.self.query")
        kk, kb = dense(f"{p}.attention.self.key")
        vk, vb = dense(f"{p}.attention.self.value")
        ak, ab = dense(f"{p}.attention.output.dense")
        ik, ib = dense(f"{p}.intermediate.dense")
        ok, ob = dense(f"{p}.output.dense")
        layers.append(
            LayerWeights(
                q_kernel=qk, q_bias=qb, k_kernel=kk, k_bias=kb, v_kernel=vk, v_bias=vb,
                attn_out_kernel=ak, attn_out_bias=ab,
                attn_ln_gamma=get(f"{p}.attention.output.LayerNorm.weight"),
                attn_ln_beta=get(f"{p}.attention.output.LayerNorm.bias"),
                inter_kernel=ik, inter_bias=ib, out_kernel=ok, out_bias=ob,
                out_ln_gamma=get(f"{p}.output.LayerNorm.weight"),
                out_ln_beta=get(f"{p}.output.LayerNorm.bias"),
            )
        )  # fmt: skip
    pooler_kernel = pooler_bias = None
    if "pooler.dense.weight" in tensors:
        pooler_kernel, pooler_bias = dense("pooler.dense")
    weights = BertWeights(
        **embedding_weights(get, _HF_EMBEDDINGS), layers=layers, pooler_kernel=pooler_kernel, pooler_bias=pooler_bias
    )
    try:
        weights.check(config)
    except ValueError as exc:
        raise IncompatibleModelError(f"{directory}: {exc}") from exc
    return weights


def load_hf_bert(directory: Path, checked: HfCheckpoint | None = None) -> HfBert:
    """Read config, weights, vocab and tokenizer settings; refuse what is not a plain BERT."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    directory = Path(directory)
    ck = checked or inspect_hf_checkpoint(directory)
    try:
        raw = load_file(str(directory / "model.safetensors"))
    except (SafetensorError, OSError) as exc:
        raise SourceFormatError(f"{directory}/model.safetensors: cannot read ({exc})") from exc
    tensors = {k[len(ck.prefix) :]: v for k, v in raw.items() if k.startswith(ck.prefix)}
    weights = _weights(directory, tensors, ck.config)
    return HfBert(
        ck.config, weights, ck.vocab_file, ck.lower_case, ck.special_tokens,
        ck.st_pooling, ck.st_normalize, ck.st_max_seq_length,
    )  # fmt: skip
