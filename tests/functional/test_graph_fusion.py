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


def _optimized_ops(model_dir: Path) -> collections.Counter[tuple[str, tuple[str, ...]]]:
    """(op type, fused ops) of every node TensorFlow executed for one ``serving_default`` call."""
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
            ops[(node.op, fused)] += 1
    return ops


@pytest.fixture(scope="module")
def ops(default_model_dir: Path) -> collections.Counter[tuple[str, tuple[str, ...]]]:
    return _optimized_ops(default_model_dir)


def _fused_matmuls(ops: collections.Counter, fused: tuple[str, ...]) -> int:
    # oneDNN builds (x86 default) name it _MklNativeFusedMatMul, plain Eigen builds _FusedMatMul.
    return sum(n for (op, f), n in ops.items() if op in ("_MklNativeFusedMatMul", "_FusedMatMul") and f == fused)


def test_every_dense_layer_is_one_fused_matmul(ops) -> None:
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
