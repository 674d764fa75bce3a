"""One text through every executor the ``tensorflow`` package has: graph, XLA, TensorFlow Lite.

    .venv/bin/python -m bench.other_executors [MODEL_DIR] [--texts 200] [--rounds 3] [--json FILE]

Asks whether any executor that ships with TensorFlow runs the encoder for one text as fast as ONNX
Runtime does (the single-text target). Each executor runs the embedded default's encoder (weights
from the checkpoint package, built with ``bert2vec.export.bert_graph``) on the same corpus texts,
tokenized beforehand by the export in ``MODEL_DIR`` (default ``build/model``), one text per call,
mean-pooled and L2-normalised, so the figures are the encoder alone — our tokenizer adds ~0.5 ms
per call in front of any of them. Each executor runs in its own child process, because thread
pools are fixed per process:

``graph-split``   the encoder split in two branches per layer (what ``Encoder`` calls for one text
                  on 2 CPUs), one intra-op thread, one inter-op slot per CPU
``graph-unsplit`` the same weights unsplit, same threads
``xla``           ``jit_compile=True`` on the unsplit encoder, ids padded to 16-token buckets
                  (compiled for every bucket before timing), one intra-op thread per CPU
``tflite``        TensorFlow Lite's interpreter (XNNPACK, one thread per CPU), layer norm written as
                  mean/variance (the ``FusedBatchNormV3`` form converts without complaint
                  but gives wrong vectors), dynamic sequence length; texts in corpus order,
                  so a call whose length differs from the previous one re-plans the interpreter;
                  ``tflite-sorted`` times the same texts sorted by length (few re-plans)

Reported per executor: p50 over the texts (median of rounds, range) and the largest absolute
difference of its vectors from ``graph-unsplit``'s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
EXECUTORS = ("graph-split", "graph-unsplit", "xla", "tflite")
XLA_BUCKET = 16


def _encoder(parts: tuple[int, ...] = (2,)) -> Any:
    from bert2vec.export.bert_graph import BertEncoderModule
    from bert2vec.export.hf_checkpoint import load_hf_bert
    from bert2vec.export.sources import embedded_default_dir

    hf = load_hf_bert(embedded_default_dir())
    return BertEncoderModule(hf.config, hf.weights, parts=parts)


def _pooled(encoder: Any, ids: Any, mask: Any, parts: int = 1) -> Any:
    """Mean pooling and L2 norm through the export's own ``Pooling`` (MiniLM's), not a copy of it."""
    from bert2vec.export.pooling import Pooling

    sequence_output, pooled_output = encoder(ids, mask, **({"parts": parts} if parts > 1 else {}))
    pooling = Pooling("mean", normalize=True)
    return pooling.finish(pooling.pool(sequence_output, pooled_output, mask))


def _tflite_interpreter(encoder: Any, threads: int) -> Any:
    import tensorflow as tf

    eps = encoder._eps

    def layer_norm(x: tf.Tensor, gamma: tf.Variable, beta: tf.Variable) -> tf.Tensor:
        mean, var = tf.nn.moments(x, axes=[-1], keepdims=True)
        return (x - mean) * tf.math.rsqrt(var + eps) * gamma + beta

    encoder._layer_norm = layer_norm  # this child's module only

    @tf.function(input_signature=[tf.TensorSpec([1, None], tf.int32)])
    def fn(ids: tf.Tensor) -> tf.Tensor:
        return _pooled(encoder, ids, tf.ones_like(ids))

    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], encoder)
    return tf.lite.Interpreter(model_content=converter.convert(), num_threads=threads)


def child(executor: str, ids_file: str, out_file: str, rounds: int) -> dict[str, Any]:
    """Runs in a fresh process: time one executor on the pre-tokenized texts."""
    import tensorflow as tf

    threads = len(os.sched_getaffinity(0))
    if executor == "xla":
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    elif executor.startswith("graph"):
        from bert2vec.core.cpu import configure_tensorflow_threads

        configure_tensorflow_threads(threads)
    data = np.load(ids_file)
    texts = [data[k] for k in data.files]  # int32 [1, T] each, [CLS] ... [SEP]
    orders = {executor: list(range(len(texts)))}

    if executor == "tflite":
        interp = _tflite_interpreter(_encoder(()), threads)
        inp, out = interp.get_input_details()[0]["index"], interp.get_output_details()[0]["index"]
        shape: list[Any] = [None]

        def call(ids: np.ndarray) -> np.ndarray:
            if shape[0] != ids.shape:
                interp.resize_tensor_input(inp, ids.shape)
                interp.allocate_tensors()
                shape[0] = ids.shape
            interp.set_tensor(inp, ids)
            interp.invoke()
            return interp.get_tensor(out)

        orders["tflite-sorted"] = sorted(orders[executor], key=lambda i: texts[i].shape[1])
    else:
        parts = 2 if executor == "graph-split" else 1
        encoder = _encoder((2,) if parts > 1 else ())
        spec = [tf.TensorSpec([1, None], tf.int32)] * 2  # one trace, dynamic length, as in the export
        fn = tf.function(lambda ids, mask: _pooled(encoder, ids, mask, parts), input_signature=spec,
                         jit_compile=executor == "xla")  # fmt: skip

        def call(ids: np.ndarray) -> np.ndarray:
            mask = np.ones_like(ids)
            if executor == "xla":
                width = -(-ids.shape[1] // XLA_BUCKET) * XLA_BUCKET
                ids = np.pad(ids, ((0, 0), (0, width - ids.shape[1])))
                mask = np.pad(mask, ((0, 0), (0, width - mask.shape[1])))
            return fn(tf.constant(ids), tf.constant(mask)).numpy()

    vectors = np.concatenate([call(t) for t in texts])  # warm-up: every shape once (XLA compiles here)
    np.save(out_file, vectors)
    result: dict[str, Any] = {}
    for name, order in orders.items():
        p50s = []
        for _ in range(rounds):
            ms = []
            for i in order:
                t0 = time.perf_counter()
                call(texts[i])
                ms.append((time.perf_counter() - t0) * 1e3)
            p50s.append(statistics.median(ms))
        result[name] = {"p50_ms": statistics.median(p50s), "range": [min(p50s), max(p50s)]}
    return result


def measure(model_dir: Path, n_texts: int = 200, rounds: int = 3, seed: int = 7) -> dict[str, Any]:
    import tensorflow as tf
    import tensorflow_text  # noqa: F401 - the export's tokenizer ops

    from bench import machine
    from bench.corpus import load_corpus

    corpus = load_corpus(2000)
    rng = random.Random(seed)
    picked = [corpus[rng.randrange(len(corpus))] for _ in range(n_texts)]
    pack = tf.saved_model.load(str(model_dir)).pack
    ids = [pack(tf.constant([t]))[0].numpy().astype(np.int32) for t in picked]
    report: dict[str, Any] = {"machine": machine.cpu_description(), "texts": n_texts, "rounds": rounds,
                              "wordpieces_p50": statistics.median(a.shape[1] for a in ids), "executors": {}}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        ids_file = os.path.join(tmp, "ids.npz")
        np.savez(ids_file, *ids)
        vectors = {}
        for executor in EXECUTORS:
            out_file = os.path.join(tmp, f"{executor}.npy")
            env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO), PYTHONWARNINGS="ignore")
            code = "import json, sys; from bench.other_executors import child; print('@@' + json.dumps(child(*sys.argv[1:4], int(sys.argv[4]))))"
            proc = subprocess.run([sys.executable, "-c", code, executor, ids_file, out_file, str(rounds)],
                                  cwd=REPO, env=env, capture_output=True, text=True, check=True)  # fmt: skip
            report["executors"].update(json.loads(proc.stdout.rsplit("@@", 1)[1]))
            vectors[executor] = np.load(out_file)
    for name, entry in report["executors"].items():
        entry["max_abs_diff"] = float(np.abs(vectors[name.removesuffix("-sorted")] - vectors["graph-unsplit"]).max())
    return report


def render(r: dict[str, Any]) -> str:
    lines = [f"{r['machine']['cpu']}, {r['texts']} corpus texts (p50 {r['wordpieces_p50']:.0f} wordpieces), one per call, "
             f"encoder + mean pooling only, {r['rounds']} rounds", "",
             "| executor | p50 (median of rounds) [range] | max abs diff vs graph-unsplit |", "|---|---|---|"]  # fmt: skip
    for name, e in r["executors"].items():
        lines.append(
            f"| {name} | {e['p50_ms']:.2f} ms [{e['range'][0]:.2f}–{e['range'][1]:.2f}] | {e['max_abs_diff']:.1e} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model_dir", type=Path, nargs="?", default=REPO / "build" / "model")
    p.add_argument("--texts", type=int, default=200)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    result = measure(args.model_dir, args.texts, args.rounds)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    print(render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
