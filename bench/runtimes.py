"""The four runtimes under test, behind one small interface. Heavy imports happen in ``load()`` only.

Each runtime runs in its own worker process (``bench.worker``) and venv: ``ours`` and
``tfhub-style`` in the project's ``.venv`` (TensorFlow), ``onnxruntime`` and
``sentence-transformers`` in ``.venv-ref`` (torch). All of them:

* take the same texts, form batches of ``batch_size`` from the texts sorted by character length
  (what ``Encoder.encode`` and sentence-transformers do), pad each batch only as far as it needs —
  except ``tfhub-style``, whose preprocess model pads every text to 128 tokens, as vectorhub did;
* mean-pool over the attention mask and L2-normalise (the model's sentence-transformers config);
* truncate at the model's ``max_seq_length`` (256), ``tfhub-style`` at 128.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RUNTIMES = ("ours", "ours-bf16", "onnxruntime", "sentence-transformers", "tfhub-style")
VENV_OF = {"ours": ".venv", "ours-bf16": ".venv", "tfhub-style": ".venv", "onnxruntime": ".venv-ref", "sentence-transformers": ".venv-ref"}
#: What a fresh interpreter imports before it can use each runtime (for the import-time figure).
IMPORTS = {
    "ours": "tensorflow, tensorflow_text",
    "tfhub-style": "tensorflow, tensorflow_text, tensorflow_hub",
    "onnxruntime": "onnxruntime, tokenizers, numpy",
    "sentence-transformers": "sentence_transformers",
}
TFHUB_SEQ_LENGTH = 128


def _sorted_batches(texts: Sequence[str], batch_size: int) -> list[list[int]]:
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    return [order[s : s + batch_size] for s in range(0, len(order), batch_size)]


def _l2(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class Runtime:
    """``load`` once; ``encode`` many texts (length-sorted batches); ``encode_one`` for latency."""

    name = "?"

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec

    def import_libs(self) -> None:
        """Import the runtime's libraries (timed apart from ``load``)."""

    def load(self) -> None:
        raise NotImplementedError

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        raise NotImplementedError

    def encode_one(self, text: str) -> np.ndarray:
        return self.encode([text], 1)

    def encode_items(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        raise NotImplementedError(f"{self.name} has no S3-path encode")

    def versions(self) -> dict[str, str]:
        return {}

    def threads(self) -> str:
        return "?"

    def sgemm(self, m: int, k: int, n: int, reps: int) -> float:
        """Best GFLOPS of ``[m,k] @ [k,n]`` float32 through this runtime's own math library."""
        raise NotImplementedError


def _best_gflops(fn: Any, m: int, k: int, n: int, reps: int) -> float:
    fn()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return 2.0 * m * k * n / best / 1e9


# ----------------------------------------------------------------------------------------------
# TensorFlow runtimes (.venv)
# ----------------------------------------------------------------------------------------------


class _TFRuntime(Runtime):
    def import_libs(self) -> None:
        """What the function's init does first: import TF + TF Text, size the thread pools."""
        import tensorflow  # noqa: F401
        import tensorflow_text  # noqa: F401

        from bert2vec.core.cpu import configure_tensorflow_threads, usable_cpus

        configure_tensorflow_threads(usable_cpus())

    def threads(self) -> str:
        import tensorflow as tf

        return f"intra {tf.config.threading.get_intra_op_parallelism_threads()}, inter {tf.config.threading.get_inter_op_parallelism_threads()}"

    def versions(self) -> dict[str, str]:
        import tensorflow as tf
        import tensorflow_text

        return {"tensorflow": tf.__version__, "tensorflow_text": tensorflow_text.__version__}

    def sgemm(self, m: int, k: int, n: int, reps: int) -> float:
        import tensorflow as tf

        a = tf.random.normal([m, k])
        b = tf.random.normal([k, n])
        mm = tf.function(lambda: tf.matmul(a, b)[0, 0])  # the product is computed in full; only a scalar is copied out

        def run() -> None:
            mm().numpy()

        return _best_gflops(run, m, k, n, reps)


class Ours(_TFRuntime):
    """This project: the exported SavedModel through ``bert2vec.core.encoder.Encoder``."""

    name = "ours"
    #: Which export of the spec this runtime loads.
    model_key = "saved_model"

    def load(self) -> None:
        from bert2vec.core.encoder import Encoder

        self.encoder = Encoder.load(self.spec[self.model_key])

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        return self.encoder.encode(list(texts), batch_size=batch_size).embeddings

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        return self.encoder.encode(list(texts), batch_size=64).token_counts.tolist()

    def encode_items(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """The S3 bulk path's ``encode_items`` (1,024-text length-sorted windows), writers stubbed out."""
        from bert2vec.files.pipeline import PipelineOptions, encode_items
        from bert2vec.files.readers import Record

        class _Collect:
            def __init__(self) -> None:
                self.rows: list[Any] = []

            def write(self, rows: Sequence[Any]) -> None:
                self.rows.extend(rows)

        out, errors = _Collect(), _Collect()
        items = [Record(line=i + 1, id=i, text=t) for i, t in enumerate(texts)]
        counts = encode_items(items, self.encoder, out, errors, PipelineOptions(batch_size=batch_size))  # type: ignore[arg-type]
        if counts.encoded != len(texts):
            raise RuntimeError(f"encode_items encoded {counts.encoded} of {len(texts)} texts")
        return np.stack([r.vector for r in sorted(out.rows, key=lambda r: r.line)])


class OursBf16(Ours):
    """The same path on the ``--precision bf16`` export of the same weights (opt-in precision).

    A runtime of its own, not a side figure, so that its bulk rate is timed in the same rounds as
    ONNX Runtime's float32 and the ratio between them is a same-section ratio; its "min cos vs
    ours" column is its fidelity against the float32 export.
    """

    name = "ours-bf16"
    model_key = "saved_model_bf16"


class TfhubStyle(_TFRuntime):
    """vectorhub's approach: ``hub.load(preprocess)(texts)`` (fixed 128 tokens) → a plain TF BERT.

    The preprocess model is the offline ``bert_en_uncased_preprocess/3`` stand-in from
    ``tests/fixtures/tfhub_models.py``, resolved through the real ``tensorflow_hub`` resolver.
    The encoder is the straightforward TF graph over the same weights: dense layers as 3-D
    ``tf.matmul(x, W, transpose_b=True)`` on torch-layout ``[out, in]`` kernels (the
    "plain TF graph" that vectorhub-era code used), separate Q/K/V, in one ``tf.function`` with the preprocessing.
    """

    name = "tfhub-style"

    def prepare(self) -> None:
        """Untimed: build the preprocess stand-in and place it in a TF Hub cache (once)."""
        from tests.fixtures.tfhub_models import TFHUB_PREPROCESS_HANDLE, cached_build, fill_tfhub_cache, tfhub_cache_key

        cache = REPO / ".cache" / "bench" / "tfhub"
        os.environ["TFHUB_CACHE_DIR"] = str(cache)
        if not (cache / tfhub_cache_key(TFHUB_PREPROCESS_HANDLE) / "saved_model.pb").is_file():
            fill_tfhub_cache(cache, TFHUB_PREPROCESS_HANDLE, cached_build("preprocess", default_seq_length=TFHUB_SEQ_LENGTH))
        self._handle = TFHUB_PREPROCESS_HANDLE

    def import_libs(self) -> None:
        super().import_libs()
        import tensorflow_hub  # noqa: F401

    def load(self) -> None:
        import math

        import tensorflow as tf
        import tensorflow_hub as hub
        import tensorflow_text  # noqa: F401 - registers the preprocess model's ops
        from safetensors.numpy import load_file

        hf_dir = Path(self.spec["hf_dir"])
        cfg = json.loads((hf_dir / "config.json").read_text())
        h, nh, layers = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"]
        hd = h // nh
        eps = float(cfg.get("layer_norm_eps", 1e-12))
        t = load_file(str(hf_dir / "model.safetensors"))
        t = {k.removeprefix("bert."): v for k, v in t.items()}

        def var(name: str) -> tf.Variable:
            return tf.Variable(t[name].astype(np.float32), trainable=False)

        preprocess = hub.load(self._handle)
        word, pos, typ = (var(f"embeddings.{n}.weight") for n in ("word_embeddings", "position_embeddings", "token_type_embeddings"))
        emb_ln = (var("embeddings.LayerNorm.weight"), var("embeddings.LayerNorm.bias"))
        names = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                 "intermediate.dense", "output.dense")  # fmt: skip
        ln_names = ("attention.output.LayerNorm", "output.LayerNorm")
        weights = [
            {n: (var(f"encoder.layer.{i}.{n}.weight"), var(f"encoder.layer.{i}.{n}.bias")) for n in names + ln_names}
            for i in range(layers)
        ]

        def dense(x: tf.Tensor, wb: tuple[tf.Variable, tf.Variable]) -> tf.Tensor:
            return tf.matmul(x, wb[0], transpose_b=True) + wb[1]  # [B, S, in] x [out, in]^T

        def layer_norm(x: tf.Tensor, gb: tuple[tf.Variable, tf.Variable]) -> tf.Tensor:
            mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
            return (x - mean) * tf.math.rsqrt(variance + eps) * gb[0] + gb[1]

        def heads(x: tf.Tensor, b: tf.Tensor, s: tf.Tensor) -> tf.Tensor:
            return tf.transpose(tf.reshape(x, [b, s, nh, hd]), [0, 2, 1, 3])

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def encode(texts: tf.Tensor) -> tf.Tensor:
            inputs = preprocess(texts)
            ids, mask, type_ids = inputs["input_word_ids"], inputs["input_mask"], inputs["input_type_ids"]
            b, s = tf.shape(ids)[0], tf.shape(ids)[1]
            x = tf.gather(word, ids) + tf.gather(pos, tf.range(s))[tf.newaxis] + tf.gather(typ, type_ids)
            x = layer_norm(x, emb_ln)
            mask_f = tf.cast(mask, tf.float32)
            additive = (1.0 - mask_f)[:, tf.newaxis, tf.newaxis, :] * -1e9
            for w in weights:
                q = heads(dense(x, w[names[0]]), b, s)
                k = heads(dense(x, w[names[1]]), b, s)
                v = heads(dense(x, w[names[2]]), b, s)
                probs = tf.nn.softmax(tf.matmul(q, k, transpose_b=True) / math.sqrt(hd) + additive, axis=-1)
                ctx = tf.reshape(tf.transpose(tf.matmul(probs, v), [0, 2, 1, 3]), [b, s, h])
                x = layer_norm(x + dense(ctx, w[names[3]]), w[ln_names[0]])
                inter = tf.nn.gelu(dense(x, w[names[4]]), approximate=False)
                x = layer_norm(x + dense(inter, w[names[5]]), w[ln_names[1]])
            pooled = tf.reduce_sum(x * mask_f[:, :, tf.newaxis], axis=1) / tf.maximum(
                tf.reduce_sum(mask_f, axis=1, keepdims=True), 1e-9
            )
            return tf.math.l2_normalize(pooled, axis=-1)

        self._preprocess, self._weights = preprocess, (word, pos, typ, emb_ln, weights)  # keep alive
        self._encode = encode

    def versions(self) -> dict[str, str]:
        import tensorflow_hub as hub

        return super().versions() | {"tensorflow_hub": hub.__version__}

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        out = np.zeros((len(texts), 0), np.float32)
        for idx in _sorted_batches(texts, batch_size):
            vecs = self._encode([texts[i] for i in idx]).numpy()
            if out.shape[1] == 0:
                out = np.zeros((len(texts), vecs.shape[1]), np.float32)
            out[idx] = vecs
        return out


# ----------------------------------------------------------------------------------------------
# Reference runtimes (.venv-ref)
# ----------------------------------------------------------------------------------------------


class OnnxRuntime(Runtime):
    """The same weights exported to ONNX; HF fast tokenizer; mean pooling + L2 norm in numpy."""

    name = "onnxruntime"

    def import_libs(self) -> None:
        import onnxruntime  # noqa: F401
        import tokenizers  # noqa: F401

    def load(self) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        so = ort.SessionOptions()
        so.intra_op_num_threads = int(self.spec.get("threads", 2))
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(self.spec["onnx"], so, providers=["CPUExecutionProvider"])
        self._input_names = {i.name for i in self.session.get_inputs()}
        tok = Tokenizer.from_file(str(Path(self.spec["hf_dir"]) / "tokenizer.json"))
        tok.enable_truncation(max_length=int(self.spec["max_seq_length"]))
        tok.enable_padding(pad_id=0, pad_token="[PAD]")  # pad to the batch's longest (the file says fixed 128)
        self.tokenizer = tok
        self._so = so

    def _run(self, batch: list[str]) -> np.ndarray:
        enc = self.tokenizer.encode_batch(batch)
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = self.session.run(["last_hidden_state"], {k: v for k, v in feeds.items() if k in self._input_names})[0]
        m = mask[:, :, None].astype(np.float32)
        return _l2((hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9))

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        out = None
        for idx in _sorted_batches(texts, batch_size):
            vecs = self._run([texts[i] for i in idx])
            if out is None:
                out = np.zeros((len(texts), vecs.shape[1]), np.float32)
            out[idx] = vecs
        assert out is not None
        return out

    def versions(self) -> dict[str, str]:
        import onnxruntime as ort
        import tokenizers

        return {"onnxruntime": ort.__version__, "tokenizers": tokenizers.__version__}

    def threads(self) -> str:
        return f"intra {self._so.intra_op_num_threads}, inter {self._so.inter_op_num_threads}"

    def sgemm(self, m: int, k: int, n: int, reps: int) -> float:
        import onnx
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper

        b = numpy_helper.from_array(np.random.default_rng(0).standard_normal((k, n)).astype(np.float32), "B")
        graph = helper.make_graph(
            [helper.make_node("MatMul", ["A", "B"], ["C"])], "sgemm",
            [helper.make_tensor_value_info("A", TensorProto.FLOAT, [m, k])],
            [helper.make_tensor_value_info("C", TensorProto.FLOAT, [m, n])], initializer=[b],
        )  # fmt: skip
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = min(model.ir_version, 9)
        onnx.checker.check_model(model)
        sess = ort.InferenceSession(model.SerializeToString(), self._so, providers=["CPUExecutionProvider"])
        a = np.random.default_rng(1).standard_normal((m, k)).astype(np.float32)
        return _best_gflops(lambda: sess.run(["C"], {"A": a}), m, k, n, reps)


class SentenceTransformers(Runtime):
    """The reference: ``SentenceTransformer(dir).encode(texts, batch_size=32)`` (sorts by length itself)."""

    name = "sentence-transformers"

    def import_libs(self) -> None:
        import sentence_transformers  # noqa: F401

    def load(self) -> None:
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(self.spec["hf_dir"]), device="cpu")
        self.model.max_seq_length = int(self.spec["max_seq_length"])

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        return np.asarray(
            self.model.encode(list(texts), batch_size=batch_size, show_progress_bar=False, convert_to_numpy=True),
            dtype=np.float32,
        )

    def versions(self) -> dict[str, str]:
        import sentence_transformers
        import torch
        import transformers

        return {"torch": torch.__version__, "sentence_transformers": sentence_transformers.__version__,
                "transformers": transformers.__version__}  # fmt: skip

    def threads(self) -> str:
        import torch

        return f"torch {torch.get_num_threads()} (interop {torch.get_num_interop_threads()})"

    def sgemm(self, m: int, k: int, n: int, reps: int) -> float:
        import torch

        a, b = torch.randn(m, k), torch.randn(k, n)
        with torch.inference_mode():
            return _best_gflops(lambda: torch.matmul(a, b), m, k, n, reps)


CLASSES: dict[str, type[Runtime]] = {
    "ours": Ours,
    "ours-bf16": OursBf16,
    "tfhub-style": TfhubStyle,
    "onnxruntime": OnnxRuntime,
    "sentence-transformers": SentenceTransformers,
}
