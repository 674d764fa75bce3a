"""Where a forward pass spends its time, per TensorFlow op type (step stats), for three batches.

    .venv/bin/python -m bench.op_profile DIR [--batch-size 8] [--runs 20] [--json FILE]
    .venv/bin/python -m bench.op_profile DIR --one-text [--runs 50]   # a single short text

Loads the exported SavedModel's ``serving_default`` into a TF1 session (the only API that still
hands back per-node timings, ``RunMetadata.step_stats``) with one intra-op and one inter-op
thread, so node times add up to wall time and nothing overlaps. Three batches of the benchmark
corpus, after length sorting as ``Encoder`` does: the shortest, the median and the longest
``--batch-size`` texts. Each batch runs ``--runs`` times traced after two warm-up runs; the table
gives, per op type, the node count and the median total microseconds, and the share of the sum.

Why step stats and not wall time alone: a single short text is dominated by the fixed cost of
~hundreds of small ops, a long batch by the matmuls and attention — the two need different cuts,
and only a per-op breakdown shows which one a graph change removed.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _batches(batch_size: int) -> dict[str, list[str]]:
    from bench.corpus import load_corpus

    texts = sorted(load_corpus(2000), key=len)
    mid = len(texts) // 2 - batch_size // 2
    return {
        "short": texts[:batch_size],
        "median": texts[mid : mid + batch_size],
        "long": texts[-batch_size:],
    }


ONE_TEXT = {"one text": ["hello world"]}


def signature_nodes(model_dir: Path, signature: str = "serving_default") -> dict[str, int]:
    """Nodes of a signature's graph, counted from the SavedModel file (deterministic, no timing):
    the signature's own function plus every function it calls, and among them the ops of ragged
    validation and control flow (``Assert``, ``If``/``StatelessIf``, ``Switch``/``Merge``)."""
    from tensorflow.core.protobuf import saved_model_pb2

    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString((Path(model_dir) / "saved_model.pb").read_bytes())
    meta = sm.meta_graphs[0]
    library = {f.signature.name: f for f in meta.graph_def.library.function}
    outputs = {t.name.split(":")[0] for t in meta.signature_def[signature].outputs.values()}
    top = [n for n in meta.graph_def.node if n.name in outputs]
    seen: set[str] = set()
    todo = [a.func.name for n in top for a in n.attr.values() if a.func.name]
    counts = {"nodes": 0, "Assert": 0, "If": 0, "Switch/Merge": 0}
    while todo:
        name = todo.pop()
        if name in seen or name not in library:
            continue
        seen.add(name)
        for node in library[name].node_def:
            counts["nodes"] += 1
            if node.op == "Assert":
                counts["Assert"] += 1
            elif node.op in ("If", "StatelessIf"):
                counts["If"] += 1
            elif node.op in ("Switch", "Merge"):
                counts["Switch/Merge"] += 1
            todo.extend(a.func.name for a in node.attr.values() if a.func.name)
            todo.extend(f.name for a in node.attr.values() for f in a.list.func)
    counts["functions"] = len(seen)
    return counts


def profile(
    model_dir: Path, batch_size: int = 8, runs: int = 20, batches: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    """Per-op-type step stats of ``serving_default`` for each named batch (default: the corpus's
    shortest, median and longest). Runs in its own graph and session, so eager code around it
    (tests, other benchmarks) is left alone."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401 - registers the tokenizer ops

    config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=1, inter_op_parallelism_threads=1)
    out: dict[str, Any] = {"model": str(model_dir), "batch_size": batch_size, "runs": runs, "batches": {}}
    batches = batches or _batches(batch_size)
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph, config=config) as sess:
        meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], str(model_dir))
        sig = meta.signature_def["serving_default"]
        text_in = sig.inputs["text"].name
        fetches = {k: v.name for k, v in sig.outputs.items()}
        options = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
        for label, texts in batches.items():
            for _ in range(2):
                sess.run(fetches, {text_in: texts})
            per_type: dict[str, list[float]] = collections.defaultdict(list)
            counts: dict[str, int] = {}
            walls: list[float] = []
            for _ in range(runs):
                md = tf.compat.v1.RunMetadata()
                result = sess.run(fetches, {text_in: texts}, options=options, run_metadata=md)
                totals: dict[str, float] = collections.defaultdict(float)
                n: dict[str, int] = collections.defaultdict(int)
                start, end = float("inf"), 0.0
                for dev in md.step_stats.dev_stats:
                    for node in dev.node_stats:
                        if node.node_name in ("_SOURCE", "_SINK"):
                            continue
                        op = node.timeline_label.split("=", 1)[-1].split("(", 1)[0].strip() or node.node_name
                        op = op.split(":")[0] if op else node.node_name
                        totals[op] += node.all_end_rel_micros
                        n[op] += 1
                        start = min(start, node.all_start_micros)
                        end = max(end, node.all_start_micros + node.all_end_rel_micros)
                for op, us in totals.items():
                    per_type[op].append(us)
                counts = dict(n)
                walls.append(end - start)
            padded = int(result["token_count"].clip(max=10**9).max()) if "token_count" in result else None
            rows = sorted(
                ((op, counts.get(op, 0), statistics.median(v)) for op, v in per_type.items()),
                key=lambda r: -r[2],
            )
            total = sum(r[2] for r in rows)
            out["batches"][label] = {
                "texts": len(texts),
                "longest_wordpieces": padded,
                "nodes": sum(counts.values()),
                "node_us": round(total, 1),
                "wall_us": round(statistics.median(walls), 1),
                "ops": [{"op": op, "count": c, "us": round(us, 1), "share": round(us / total, 4)} for op, c, us in rows],
            }
    return out


def render(result: dict[str, Any], top: int = 12) -> str:
    lines = [f"model {result['model']}, batches of {result['batch_size']}, median of {result['runs']} traced runs"]
    for label, b in result["batches"].items():
        lines.append(
            f"\n{label}: {b['texts']} texts, longest {b['longest_wordpieces']} wordpieces, {b['nodes']} nodes, "
            f"node time {b['node_us'] / 1000:.2f} ms, wall {b['wall_us'] / 1000:.2f} ms"
        )
        lines.append(f"  {'op':<28}{'nodes':>7}{'ms':>9}{'share':>8}")
        for row in b["ops"][:top]:
            lines.append(f"  {row['op']:<28}{row['count']:>7}{row['us'] / 1000:>9.3f}{row['share']:>8.1%}")
        rest = b["ops"][top:]
        if rest:
            lines.append(
                f"  {'(' + str(len(rest)) + ' other op types)':<28}{sum(r['count'] for r in rest):>7}"
                f"{sum(r['us'] for r in rest) / 1000:>9.3f}{sum(r['share'] for r in rest):>8.1%}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model_dir", type=Path)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--json", type=Path)
    p.add_argument("--one-text", action="store_true", help="profile one short text instead of the corpus batches")
    args = p.parse_args(argv)
    from bench import machine

    result = profile(args.model_dir, args.batch_size, args.runs, ONE_TEXT if args.one_text else None)
    result["machine"] = machine.cpu_description()
    result["signature_nodes"] = signature_nodes(args.model_dir)
    print(render(result))
    print("\nserving_default graph (static):", ", ".join(f"{k} {v}" for k, v in result["signature_nodes"].items()))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
