"""BERT architecture and weights in one canonical layout, without TensorFlow.

Kept apart from ``bert_graph`` so that reading and checking a checkpoint (``bert-export``'s
pre-flight) never imports TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

# hidden_act values the graph computes exactly: name -> approximate (tanh) GELU or not.
GELU_ACTIVATIONS = {
    "gelu": False,
    "gelu_python": False,
    "gelu_new": True,
    "gelu_pytorch_tanh": True,
    "gelu_fast": True,
}


@dataclass(frozen=True)
class BertConfig:
    """Architecture hyper-parameters (the subset of HF ``BertConfig`` the forward pass needs)."""

    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    max_position: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_act: str = "gelu"

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads


@dataclass
class LayerWeights:
    """One transformer layer; kernels are ``[in, out]`` (already transposed from torch's layout)."""

    q_kernel: np.ndarray
    q_bias: np.ndarray
    k_kernel: np.ndarray
    k_bias: np.ndarray
    v_kernel: np.ndarray
    v_bias: np.ndarray
    attn_out_kernel: np.ndarray
    attn_out_bias: np.ndarray
    attn_ln_gamma: np.ndarray
    attn_ln_beta: np.ndarray
    inter_kernel: np.ndarray
    inter_bias: np.ndarray
    out_kernel: np.ndarray
    out_bias: np.ndarray
    out_ln_gamma: np.ndarray
    out_ln_beta: np.ndarray


def embedding_weights(get: Callable[[str], np.ndarray], names: tuple[str, str, str, str, str]) -> dict[str, np.ndarray]:
    """``BertWeights``' embedding fields read through ``get`` from a source's own ``names`` for them,
    in the order word, position, type, layer-norm gamma, layer-norm beta: each source (HF checkpoint,
    TF Hub variables) differs only in its names, so the mapping onto our fields is written once."""
    fields = ("word_embeddings", "position_embeddings", "type_embeddings", "emb_ln_gamma", "emb_ln_beta")
    return {name: get(source) for name, source in zip(fields, names, strict=True)}


def embedding_shapes(config: BertConfig) -> tuple[tuple[int, ...], ...]:
    """The embedding fields' shapes, in ``embedding_weights``' order (a source's names zip onto them)."""
    h = config.hidden_size
    return (config.vocab_size, h), (config.max_position, h), (config.type_vocab_size, h), (h,), (h,)


@dataclass
class BertWeights:
    """All weights of a BERT encoder in one canonical layout, independent of where they came from."""

    word_embeddings: np.ndarray
    position_embeddings: np.ndarray
    type_embeddings: np.ndarray
    emb_ln_gamma: np.ndarray
    emb_ln_beta: np.ndarray
    layers: list[LayerWeights] = field(default_factory=list)
    pooler_kernel: np.ndarray | None = None
    pooler_bias: np.ndarray | None = None

    def check(self, config: BertConfig) -> None:
        """Fail early, with names, on shapes that do not fit the config."""
        h, i = config.hidden_size, config.intermediate_size
        expect = {
            "word_embeddings": (self.word_embeddings.shape, (config.vocab_size, h)),
            "position_embeddings": (self.position_embeddings.shape, (config.max_position, h)),
            "type_embeddings": (self.type_embeddings.shape, (config.type_vocab_size, h)),
        }
        for n, layer in enumerate(self.layers):
            expect[f"layer {n} query"] = (layer.q_kernel.shape, (h, h))
            expect[f"layer {n} intermediate"] = (layer.inter_kernel.shape, (h, i))
            expect[f"layer {n} output"] = (layer.out_kernel.shape, (i, h))
        bad = [f"{k}: got {got}, expected {want}" for k, (got, want) in expect.items() if got != want]
        if len(self.layers) != config.num_layers:
            bad.append(f"layers: got {len(self.layers)}, expected {config.num_layers}")
        if bad:
            raise ValueError("weights do not match the config: " + "; ".join(bad))
