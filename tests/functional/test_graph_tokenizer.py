"""The exported tokenizer runs as plain kernels: no ragged validation on the request path.

``BertTokenizerModule.tokenize`` calls tf_text's regex-split and wordpiece kernels and combines
their row splits with index arithmetic (bert2vec/export/tokenizer.py). RaggedTensor's own
constructors and ``concat``/``merge_dims`` would add ``Assert`` ops and ``If`` branches that run on
every call; a short text then spent a third of its graph on them. This test reads the SavedModel
file and fails if any such op reappears in ``serving_default`` or the split graphs.
"""

from __future__ import annotations

import collections
from pathlib import Path

VALIDATION_OPS = {"Assert", "If", "StatelessIf", "Switch", "Merge"}


def _reachable_ops(model_dir: Path, signature: str) -> collections.Counter[str]:
    """Op types of every node in ``signature``'s function and the functions it calls."""
    from tensorflow.core.protobuf import saved_model_pb2

    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString((model_dir / "saved_model.pb").read_bytes())
    meta = sm.meta_graphs[0]
    library = {f.signature.name: f for f in meta.graph_def.library.function}
    outputs = {t.name.split(":")[0] for t in meta.signature_def[signature].outputs.values()}
    todo = [a.func.name for n in meta.graph_def.node if n.name in outputs for a in n.attr.values() if a.func.name]
    seen: set[str] = set()
    ops: collections.Counter[str] = collections.Counter()
    while todo:
        name = todo.pop()
        if name in seen or name not in library:
            continue
        seen.add(name)
        for node in library[name].node_def:
            ops[node.op] += 1
            todo.extend(a.func.name for a in node.attr.values() if a.func.name)
            todo.extend(f.name for a in node.attr.values() for f in a.list.func)
    return ops


def test_serving_signatures_run_no_ragged_validation(default_model_dir: Path) -> None:
    from tensorflow.core.protobuf import saved_model_pb2

    from bert2vec.core.encoder import PARTS_SIGNATURE

    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString((default_model_dir / "saved_model.pb").read_bytes())
    names = [n for n in sm.meta_graphs[0].signature_def if n == "serving_default" or PARTS_SIGNATURE.fullmatch(n)]
    assert "serving_default" in names
    for name in names:
        ops = _reachable_ops(default_model_dir, name)
        assert ops["RegexSplitWithOffsets"] == 2 and ops["WordpieceTokenizeWithOffsets"] == 1, (
            name
        )  # the tokenizer is there
        assert not {op: ops[op] for op in VALIDATION_OPS if ops[op]}, name
