"""Map a TF Hub BERT encoder's variables (TF Model Garden ``BertEncoder`` layout) to ``BertWeights``.

Google exported the TF2 BERT encoders on TF Hub (the seed BERTs ``.../4``, the small BERTs
``.../2``) from TF Model Garden's ``official.nlp.modeling.networks.BertEncoder`` with
``official.nlp.tools.export_tfhub_lib``. The restored SavedModel lists its variables as::

    word_embeddings/embeddings                        [V, H]
    position_embedding/embeddings                     [P, H]
    type_embeddings/embeddings                        [T, H]
    embeddings/layer_norm/{gamma,beta}                [H]
    transformer/layer_N/self_attention/{query,key,value}/kernel   [H, heads, head_dim]  (EinsumDense)
    transformer/layer_N/self_attention/{query,key,value}/bias     [heads, head_dim]
    transformer/layer_N/self_attention/attention_output/kernel    [heads, head_dim, H]
    transformer/layer_N/self_attention/attention_output/bias      [H]
    transformer/layer_N/self_attention_layer_norm/{gamma,beta}    [H]
    transformer/layer_N/intermediate/{kernel,bias}    [H, I], [I]
    transformer/layer_N/output/{kernel,bias}          [I, H], [H]
    transformer/layer_N/output_layer_norm/{gamma,beta}            [H]
    pooler_transform/{kernel,bias}                    [H, H], [H]

(each name may carry a ``:0`` suffix and a common scope prefix). Flattening the 3-D attention
kernels row-major gives exactly the ``[in, out]`` matrices of ``BertWeights`` (output column
``head * head_dim + d``), so the conversion is a reshape, not a re-computation.

Anything else — a missing, misshapen or unexpected float variable (an ALBERT-style
``embedding_projection``, a pre-norm variant, another architecture) — raises
``LayoutMismatch`` naming the first problem; the caller then keeps the restored graph.
Hyper-parameters that variables cannot show (activation, layer-norm epsilon) are Model Garden's
defaults here; the caller checks the converted graph against the restored one.

No TensorFlow here: values only need ``.shape`` and ``numpy.asarray``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from bert2vec.export.bert_weights import BertConfig, BertWeights, LayerWeights, embedding_shapes, embedding_weights

#: Model Garden's BertEncoder: tanh-approximate GELU (``tf_utils.get_activation("gelu")``), eps 1e-12.
GARDEN_HIDDEN_ACT = "gelu_new"
GARDEN_LAYER_NORM_EPS = 1e-12

_ANCHOR = "word_embeddings/embeddings"
_LAYER_RE = re.compile(r"^transformer/layer_(\d+)/(.+)$")
_TOP = (
    "word_embeddings/embeddings",
    "position_embedding/embeddings",
    "type_embeddings/embeddings",
    "embeddings/layer_norm/gamma",
    "embeddings/layer_norm/beta",
)


class LayoutMismatch(ValueError):
    """The variables are not (all) those of a Model Garden ``BertEncoder``; the message says why."""


def _strip(name: str) -> str:
    return re.sub(r":\d+$", "", name)


def canonical_names(variables: Mapping[str, Any]) -> dict[str, Any]:
    """``{name without ':0' and without the common scope prefix: value}``; raises ``LayoutMismatch``.

    The prefix is whatever precedes ``word_embeddings/embeddings`` (usually nothing); every other
    variable must share it.
    """
    names = {_strip(n): v for n, v in variables.items()}
    anchors = [n for n in names if n == _ANCHOR or n.endswith("/" + _ANCHOR)]
    if len(anchors) != 1:
        raise LayoutMismatch(f"expected one {_ANCHOR!r} variable, found {len(anchors)}")
    prefix = anchors[0][: -len(_ANCHOR)]
    outside = [n for n in names if not n.startswith(prefix)]
    if outside:
        raise LayoutMismatch(f"variable {outside[0]!r} is outside the encoder scope {prefix!r}")
    return {n[len(prefix) :]: v for n, v in names.items()}


def _is_float(value: Any) -> bool:
    dtype = getattr(value, "dtype", None)
    dtype = getattr(dtype, "as_numpy_dtype", dtype)  # tf.DType -> numpy scalar type
    try:
        return np.dtype(dtype).kind == "f"
    except TypeError:
        return False


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in value.shape)


def infer_config(tensors: Mapping[str, Any]) -> BertConfig:
    """Architecture from the variable shapes (canonical names); raises ``LayoutMismatch``."""
    needed = (*_TOP, "transformer/layer_0/self_attention/query/kernel", "transformer/layer_0/intermediate/kernel")
    missing = [n for n in needed if n not in tensors]
    if missing:
        raise LayoutMismatch(f"no variable {missing[0]!r}")
    vocab, hidden = _shape(tensors["word_embeddings/embeddings"])
    q = _shape(tensors["transformer/layer_0/self_attention/query/kernel"])
    if len(q) != 3 or q[0] != hidden or q[1] * q[2] != hidden:
        raise LayoutMismatch(f"query kernel is {list(q)}, expected [{hidden}, heads, {hidden} / heads]")
    layers = {int(m.group(1)) for n in tensors if (m := _LAYER_RE.match(n))}
    if layers != set(range(len(layers))):
        raise LayoutMismatch(f"transformer layers {sorted(layers)} are not numbered 0..{len(layers) - 1}")
    return BertConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        num_layers=len(layers),
        num_heads=q[1],
        intermediate_size=_shape(tensors["transformer/layer_0/intermediate/kernel"])[1],
        max_position=_shape(tensors["position_embedding/embeddings"])[0],
        type_vocab_size=_shape(tensors["type_embeddings/embeddings"])[0],
        layer_norm_eps=GARDEN_LAYER_NORM_EPS,
        hidden_act=GARDEN_HIDDEN_ACT,
    )


# The variables' names for the embedding fields, in ``embedding_weights``' order.
_TFHUB_EMBEDDINGS = (
    "word_embeddings/embeddings", "position_embedding/embeddings", "type_embeddings/embeddings",
    "embeddings/layer_norm/gamma", "embeddings/layer_norm/beta",
)  # fmt: skip


def _expected_shapes(cfg: BertConfig, with_pooler: bool) -> dict[str, tuple[int, ...]]:
    h, n, d, i = cfg.hidden_size, cfg.num_heads, cfg.head_dim, cfg.intermediate_size
    shapes: dict[str, tuple[int, ...]] = dict(zip(_TFHUB_EMBEDDINGS, embedding_shapes(cfg), strict=True))
    per_layer = {
        "self_attention/query/kernel": (h, n, d),
        "self_attention/query/bias": (n, d),
        "self_attention/key/kernel": (h, n, d),
        "self_attention/key/bias": (n, d),
        "self_attention/value/kernel": (h, n, d),
        "self_attention/value/bias": (n, d),
        "self_attention/attention_output/kernel": (n, d, h),
        "self_attention/attention_output/bias": (h,),
        "self_attention_layer_norm/gamma": (h,),
        "self_attention_layer_norm/beta": (h,),
        "intermediate/kernel": (h, i),
        "intermediate/bias": (i,),
        "output/kernel": (i, h),
        "output/bias": (h,),
        "output_layer_norm/gamma": (h,),
        "output_layer_norm/beta": (h,),
    }
    for layer in range(cfg.num_layers):
        for part, shape in per_layer.items():
            shapes[f"transformer/layer_{layer}/{part}"] = shape
    if with_pooler:
        shapes.update({"pooler_transform/kernel": (h, h), "pooler_transform/bias": (h,)})
    return shapes


def convert(variables: Mapping[str, Any]) -> tuple[BertConfig, BertWeights]:
    """Config + canonical weights from ``{variable name: value}``; raises ``LayoutMismatch``.

    Only floating-point variables take part (the encoder's boolean ``do_lower_case`` is not a
    weight). Every one of them must be used: an unknown variable means an unknown architecture.
    """
    floats = {n: v for n, v in variables.items() if _is_float(v)}
    tensors = canonical_names(floats)
    cfg = infer_config(tensors)
    with_pooler = "pooler_transform/kernel" in tensors
    expected = _expected_shapes(cfg, with_pooler)
    missing = [n for n in expected if n not in tensors]
    if missing:
        raise LayoutMismatch(
            f"no variable {missing[0]!r}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
        )
    unknown = sorted(n for n in tensors if n not in expected)
    if unknown:
        raise LayoutMismatch(
            f"unexpected variable {unknown[0]!r}" + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else "")
        )
    bad = [
        f"{n} is {list(_shape(tensors[n]))}, expected {list(s)}" for n, s in expected.items() if _shape(tensors[n]) != s
    ]
    if bad:
        raise LayoutMismatch(bad[0])

    h = cfg.hidden_size

    def get(name: str) -> np.ndarray:
        return np.asarray(tensors[name], dtype=np.float32)

    def flat(name: str, shape: tuple[int, ...]) -> np.ndarray:
        return np.ascontiguousarray(get(name).reshape(shape))

    layers = []
    for n in range(cfg.num_layers):
        p = f"transformer/layer_{n}/"
        attn = p + "self_attention/"
        layers.append(
            LayerWeights(
                q_kernel=flat(attn + "query/kernel", (h, h)), q_bias=flat(attn + "query/bias", (h,)),
                k_kernel=flat(attn + "key/kernel", (h, h)), k_bias=flat(attn + "key/bias", (h,)),
                v_kernel=flat(attn + "value/kernel", (h, h)), v_bias=flat(attn + "value/bias", (h,)),
                attn_out_kernel=flat(attn + "attention_output/kernel", (h, h)),
                attn_out_bias=get(attn + "attention_output/bias"),
                attn_ln_gamma=get(p + "self_attention_layer_norm/gamma"),
                attn_ln_beta=get(p + "self_attention_layer_norm/beta"),
                inter_kernel=get(p + "intermediate/kernel"), inter_bias=get(p + "intermediate/bias"),
                out_kernel=get(p + "output/kernel"), out_bias=get(p + "output/bias"),
                out_ln_gamma=get(p + "output_layer_norm/gamma"),
                out_ln_beta=get(p + "output_layer_norm/beta"),
            )
        )  # fmt: skip
    pooler = (get("pooler_transform/kernel"), get("pooler_transform/bias")) if with_pooler else (None, None)
    weights = BertWeights(
        **embedding_weights(get, _TFHUB_EMBEDDINGS), layers=layers, pooler_kernel=pooler[0], pooler_bias=pooler[1]
    )
    try:
        weights.check(cfg)
    except ValueError as exc:  # pragma: no cover - the shape checks above are stricter
        raise LayoutMismatch(str(exc)) from exc
    return cfg, weights
