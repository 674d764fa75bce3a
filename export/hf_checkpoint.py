"""Read a Hugging Face BERT checkpoint directory into the canonical ``BertWeights``.

Reads ``model.safetensors`` with safetensors' numpy API, so converting needs neither torch nor
transformers. Also understands the sentence-transformers layout (``modules.json``,
``1_Pooling/config.json``, ``sentence_bert_config.json``) so that such a model exports with the
pooling, normalisation and truncation its authors use — that is what makes the embedded
all-MiniLM-L6-v2 equal sentence-transformers' vectors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from export.bert_graph import BertConfig, BertWeights, LayerWeights
from export.errors import IncompatibleModelError, SourceFormatError

WEIGHT_FILES = ("model.safetensors",)


@dataclass
class HfBert:
    """Everything the builder needs from an HF checkpoint."""

    config: BertConfig
    weights: BertWeights
    vocab_file: Path
    lower_case: bool
    special_tokens: dict[str, str]
    st_pooling: str | None  # pooling from sentence-transformers' 1_Pooling, if present
    st_normalize: bool  # sentence-transformers Normalize module present
    st_max_seq_length: int | None


def is_hf_checkpoint(path: Path) -> bool:
    return (path / "config.json").is_file()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SourceFormatError(f"{path}: cannot read JSON ({exc})") from exc


def _bert_config(path: Path, raw: dict[str, Any]) -> BertConfig:
    model_type = raw.get("model_type")
    architectures = raw.get("architectures") or []
    if model_type != "bert":
        raise IncompatibleModelError(
            f"{path}: model_type is {model_type!r} ({', '.join(architectures) or 'no architectures'}); "
            "only BERT checkpoints (model_type 'bert') can be exported"
        )
    if raw.get("position_embedding_type", "absolute") != "absolute":
        raise IncompatibleModelError(
            f"{path}: position_embedding_type {raw['position_embedding_type']!r} is not supported "
            "(only 'absolute', as in BERT)"
        )
    try:
        return BertConfig(
            vocab_size=int(raw["vocab_size"]),
            hidden_size=int(raw["hidden_size"]),
            num_layers=int(raw["num_hidden_layers"]),
            num_heads=int(raw["num_attention_heads"]),
            intermediate_size=int(raw["intermediate_size"]),
            max_position=int(raw.get("max_position_embeddings", 512)),
            type_vocab_size=int(raw.get("type_vocab_size", 2)),
            layer_norm_eps=float(raw.get("layer_norm_eps", 1e-12)),
            hidden_act=str(raw.get("hidden_act", "gelu")),
        )
    except KeyError as exc:
        raise SourceFormatError(f"{path}: config.json lacks {exc.args[0]!r}") from exc


def _load_tensors(directory: Path) -> dict[str, np.ndarray]:
    weights_file = directory / "model.safetensors"
    if not weights_file.is_file():
        others = [p.name for p in directory.glob("*.bin")] + [p.name for p in directory.glob("*.h5")]
        hint = f" (found {', '.join(others)}; convert it to model.safetensors first)" if others else ""
        raise SourceFormatError(f"{directory}: no model.safetensors{hint}")
    from safetensors.numpy import load_file

    tensors = load_file(str(weights_file))
    # BertForMaskedLM / BertForSequenceClassification etc. prefix the encoder with "bert.".
    if any(k.startswith("bert.") for k in tensors):
        tensors = {k[len("bert.") :]: v for k, v in tensors.items() if k.startswith("bert.")}
    return tensors


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
        word_embeddings=get("embeddings.word_embeddings.weight"),
        position_embeddings=get("embeddings.position_embeddings.weight"),
        type_embeddings=get("embeddings.token_type_embeddings.weight"),
        emb_ln_gamma=get("embeddings.LayerNorm.weight"),
        emb_ln_beta=get("embeddings.LayerNorm.bias"),
        layers=layers,
        pooler_kernel=pooler_kernel,
        pooler_bias=pooler_bias,
    )
    try:
        weights.check(config)
    except ValueError as exc:
        raise IncompatibleModelError(f"{directory}: {exc}") from exc
    return weights


def _tokenizer_settings(directory: Path) -> tuple[bool, dict[str, str]]:
    cfg: dict[str, Any] = {}
    if (directory / "tokenizer_config.json").is_file():
        cfg = _read_json(directory / "tokenizer_config.json")
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
    special = {
        "unk": str(cfg.get("unk_token", "[UNK]")),
        "cls": str(cfg.get("cls_token", "[CLS]")),
        "sep": str(cfg.get("sep_token", "[SEP]")),
        "pad": str(cfg.get("pad_token", "[PAD]")),
        "mask": str(cfg.get("mask_token", "[MASK]")),
    }
    return lower_case, special


def _sentence_transformers_settings(directory: Path) -> tuple[str | None, bool, int | None]:
    pooling = None
    normalize = False
    max_seq = None
    modules_file = directory / "modules.json"
    if modules_file.is_file():
        modules = json.loads(modules_file.read_text(encoding="utf-8"))
        for module in modules:
            kind = str(module.get("type", ""))
            if kind.endswith("Normalize"):
                normalize = True
            if kind.endswith("Pooling"):
                pool_cfg = _read_json(directory / module.get("path", "") / "config.json")
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
        value = _read_json(st_cfg).get("max_seq_length")
        max_seq = int(value) if value else None
    return pooling, normalize, max_seq


def load_hf_bert(directory: Path) -> HfBert:
    """Read config, weights, vocab and tokenizer settings; refuse what is not a plain BERT."""
    directory = Path(directory)
    config = _bert_config(directory, _read_json(directory / "config.json"))
    vocab_file = directory / "vocab.txt"
    if not vocab_file.is_file():
        raise SourceFormatError(f"{directory}: no vocab.txt (a WordPiece BERT vocabulary is required)")
    tensors = _load_tensors(directory)
    weights = _weights(directory, tensors, config)
    with vocab_file.open(encoding="utf-8") as fh:
        vocab_lines = sum(1 for _ in fh)
    if vocab_lines != weights.word_embeddings.shape[0]:
        raise IncompatibleModelError(
            f"{directory}: vocab.txt has {vocab_lines} entries but the word embedding matrix has "
            f"{weights.word_embeddings.shape[0]} rows; they must be equal"
        )
    lower_case, special = _tokenizer_settings(directory)
    pooling, normalize, max_seq = _sentence_transformers_settings(directory)
    return HfBert(config, weights, vocab_file, lower_case, special, pooling, normalize, max_seq)
