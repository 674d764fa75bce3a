"""The exported encoder graph reaches the kernels the way it was written to: fused.

Each dense layer is ``BiasAdd(MatMul)`` so grappler's remapper makes it one fused matmul whose
exact GELU or residual add rides along as a post-op, and each layer norm is a per-row
``FusedBatchNormV3`` that oneDNN turns into one layer-norm kernel with gamma and beta folded in
(bert2vec/export/bert_graph.py). These tests read the graph TensorFlow actually runs (the partition graphs
after optimisation) for ``serving_default`` of the embedded default (6 layers), so a rewrite that
silently loses a fusion fails here rather than only in a benchmark.
"""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

LAYERS = 6  # all-MiniLM-L6-v2


def _optimized_ops(model_dir: Path, *, dtype: bool = False) -> collections.Counter[tuple]:
    """(op type, fused ops[, dtype ``T``]) of every node TensorFlow executed for one ``serving_default`` call."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401 - the tokenizer's ops

    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as sess:
        meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], str(model_dir))
        sig = meta.signature_def["serving_default"]
        md = tf.compat.v1.RunMetadata()
        sess.run(
            {k: v.name for k, v in sig.outputs.items()},
            {sig.inputs["text"].name: ["hello world", "a somewhat longer second text"]},
            options=tf.compat.v1.RunOptions(output_partition_graphs=True),
            run_metadata=md,
        )
    ops: collections.Counter[tuple[str, tuple[str, ...]]] = collections.Counter()
    for partition in md.partition_graphs:
        for node in partition.node:
            fused = tuple(s.decode() for s in node.attr["fused_ops"].list.s) if "fused_ops" in node.attr else ()
            if dtype:
                t = tf.dtypes.as_dtype(node.attr["T"].type).name if node.attr["T"].type else None
                ops[(node.op, fused, t)] += 1
            else:
                ops[(node.op, fused)] += 1
    return ops


@pytest.fixture(scope="module")
def ops(default_model_dir: Path) -> collections.Counter[tuple[str, tuple[str, ...]]]:
    return _optimized_ops(default_model_dir)


def _fused_matmuls(ops: collections.Counter, fused: tuple[str, ...]) -> int:
    # oneDNN builds (x86 default) name it _MklNativeFusedMatMul, plain Eigen builds _FusedMatMul.
    return sum(n for (op, f), n in ops.items() if op in ("_MklNativeFusedMatMul", "_FusedMatMul") and f == fused)


def _onednn(ops: collections.Counter) -> bool:
    """Whether TensorFlow ran the graph through oneDNN. Its x86 wheels turn oneDNN on only where the
    CPU has AVX-512 (or AMX/AVX-VNNI); elsewhere (an AVX2-only CPU such as AMD Zen 3) the remapper
    targets Eigen's ``_FusedMatMul``, which takes the bias but not GELU or the residual add."""
    return any(key[0].startswith("_Mkl") for key in ops)


def test_every_dense_layer_is_one_fused_matmul(ops) -> None:
    if not _onednn(ops):  # Eigen: every dense layer is still one matmul with its bias; GELU and adds run apart
        assert _fused_matmuls(ops, ("BiasAdd",)) == 4 * LAYERS  # Q/K/V, attention out, FFN in, FFN out
        assert {op: n for (op, _), n in ops.items() if op in ("MatMul", "BiasAdd")} == {}
        return
    assert _fused_matmuls(ops, ("BiasAdd",)) == LAYERS  # Q/K/V
    assert _fused_matmuls(ops, ("BiasAdd", "GeluExact")) == LAYERS  # FFN in, GELU as a post-op
    assert _fused_matmuls(ops, ("BiasAdd", "Add")) == 2 * LAYERS  # attention out and FFN out + residual
    unfused = {op: n for (op, _), n in ops.items() if op in ("MatMul", "_MklMatMul", "BiasAdd", "Erf", "Erfc")}
    assert unfused == {}


def test_every_layer_norm_is_one_kernel(ops) -> None:
    norms = sum(n for (op, _), n in ops.items() if op in ("_MklLayerNorm", "FusedBatchNormV3", "_MklFusedBatchNormV3"))
    assert norms == 2 * LAYERS + 1  # two per layer and the embeddings'
    # the moments form would leave these behind
    assert not {op for (op, _) in ops if op in ("SquaredDifference", "Rsqrt", "Mean")}


def test_a_bf16_export_fuses_every_dense_layer_in_bfloat16(tmp_path_factory) -> None:
    """``--precision bf16`` casts the input and the bias to bfloat16 *outside* ``BiasAdd(MatMul)``, so
    the remapper fuses in bfloat16 as well: bias and exact GELU ride on the matmul, and the FFN's
    activation goes on to the next matmul in bfloat16 (no float32 round trip, no separate GELU ops)."""
    from tests.conftest import cached_export
    from tests.fixtures.tiny_bert import LAYERS as TINY_LAYERS
    from tests.fixtures.tiny_bert import tiny_bert

    model = cached_export(tiny_bert(tmp_path_factory.mktemp("tiny") / "ckpt"), precision="bf16")
    ops = _optimized_ops(model, dtype=True)
    if not _onednn(ops):
        pytest.skip("bfloat16 fusion is oneDNN's, which TensorFlow runs only on CPUs with AVX-512 or AMX")

    def fused_bf16(fused: tuple[str, ...]) -> int:
        return sum(n for (op, f, t), n in ops.items()
                   if op in ("_MklNativeFusedMatMul", "_FusedMatMul") and f == fused and t == "bfloat16")  # fmt: skip

    assert fused_bf16(("BiasAdd", "GeluExact")) == TINY_LAYERS  # FFN in
    assert fused_bf16(("BiasAdd",)) == 3 * TINY_LAYERS  # Q/K/V, attention out, FFN out (residual in float32)
    unfused = {(op, t): n for (op, _, t), n in ops.items()
               if op in ("MatMul", "_MklMatMul", "BiasAdd", "Erf", "Erfc") and (t == "bfloat16" or op.startswith("Erf"))}  # fmt: skip
    assert unfused == {}

