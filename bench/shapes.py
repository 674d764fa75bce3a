"""What each catalogue shape costs to deploy, with random weights (no download): `make bench-shapes`.

For every BERT shape the catalogue offers (MiniLM-L6, small BERTs, base, large; the multilingual and
Chinese vocabulary sizes), a Hugging Face checkpoint with seeded random weights and a vocabulary of
the right size is written, exported with and without the per-core split (``--no-split``), and each
export is loaded in a fresh process as the function loads it (``Encoder.load``) to measure:

* export size on disk and the image size it gives (the built MiniLM image minus its model, plus
  this export; ``--image`` names the image to take the rest from);
* on-demand init (import + load + warm-up, the ``model ready`` timings), peak RSS (VmHWM) after
  one-text and bulk requests;
* one-text p50 (20 requests of a 14-token text) and bulk texts/s (256 texts of 5-120 words, batches
  of 8 as the bulk worker sends them; the second pass, steady state);
* $ per million texts at the memory ``bert2vec.export.sizing`` asks for, at Lambda's x86 price.

Random weights give real shapes, sizes and speeds, not real vectors. Run it on a quiet machine: a
second busy process halves the figures. Writes bench/results/shapes.json and prints a Markdown table.

    .venv/bin/python -m bench.shapes [--shapes minilm,small-4-512,...] [--work .cache/bench/shapes]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PRICE_GB_S = 0.0000166667  # Lambda x86, first tier, us-east-1
PRICE_REQUEST = 0.20 / 1e6

# name: (layers, hidden, heads, intermediate, vocab) - the catalogue's shapes (bert-export --list)
SHAPES = {
    "minilm-L6-H384": (6, 384, 12, 1536, 30522),
    "small-L4-H512": (4, 512, 8, 2048, 30522),
    "base-L12-H768": (12, 768, 12, 3072, 30522),
    "chinese-L12-H768": (12, 768, 12, 3072, 21128),
    "multilingual-L12-H768": (12, 768, 12, 3072, 119547),
    "large-L24-H1024": (24, 1024, 16, 4096, 30522),
}


def checkpoint(out: Path, layers: int, hidden: int, heads: int, inter: int, vocab: int) -> Path:
    """A BertModel checkpoint in Hugging Face's layout with seeded random weights."""
    from safetensors.numpy import save_file

    from bert2vec.export.sources import embedded_default_dir

    if (out / "config.json").is_file():
        return out
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    words = (embedded_default_dir() / "vocab.txt").read_text(encoding="utf-8").splitlines()
    words = (words + [f"[unused_extra_{i}]" for i in range(max(0, vocab - len(words)))])[:vocab]
    (tmp / "vocab.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    rng = np.random.default_rng(0)

    def r(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float32)

    w = {"embeddings.word_embeddings.weight": r(vocab, hidden), "embeddings.position_embeddings.weight": r(512, hidden),
         "embeddings.token_type_embeddings.weight": r(2, hidden), "embeddings.LayerNorm.weight": np.ones(hidden, np.float32),
         "embeddings.LayerNorm.bias": np.zeros(hidden, np.float32)}  # fmt: skip
    for n in range(layers):
        q = f"encoder.layer.{n}."
        for name, (o, i) in {"attention.self.query": (hidden, hidden), "attention.self.key": (hidden, hidden),
                             "attention.self.value": (hidden, hidden), "attention.output.dense": (hidden, hidden),
                             "intermediate.dense": (inter, hidden), "output.dense": (hidden, inter)}.items():  # fmt: skip
            w[q + name + ".weight"], w[q + name + ".bias"] = r(o, i), r(o)
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            w[q + ln + ".weight"], w[q + ln + ".bias"] = np.ones(hidden, np.float32), np.zeros(hidden, np.float32)
    w["pooler.dense.weight"], w["pooler.dense.bias"] = r(hidden, hidden), r(hidden)
    save_file(w, str(tmp / "model.safetensors"))
    cfg = {"model_type": "bert", "architectures": ["BertModel"], "vocab_size": vocab, "hidden_size": hidden,
           "num_hidden_layers": layers, "num_attention_heads": heads, "intermediate_size": inter,
           "max_position_embeddings": 512, "type_vocab_size": 2, "hidden_act": "gelu", "layer_norm_eps": 1e-12}  # fmt: skip
    (tmp / "config.json").write_text(json.dumps(cfg))
    (tmp / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def dir_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


# Runs in a fresh interpreter: what the function does at init, then requests; prints one JSON line.
_PROBE = r"""
import json, os, sys, time, statistics
t0 = time.perf_counter()
import tensorflow as tf
t_import = time.perf_counter() - t0
from bert2vec.core.encoder import Encoder
t1 = time.perf_counter()
enc = Encoder.load(sys.argv[1])
t_load = time.perf_counter() - t1
t2 = time.perf_counter()
enc.encode(["warm up"])
t_warm = time.perf_counter() - t2
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
one = "I enjoy taking long walks along the beach with my dog."
times = []
for _ in range(20):
    s = time.perf_counter(); enc.encode([one]); times.append(time.perf_counter() - s)
import random
rnd = random.Random(0)
words = "serverless bert lambda vector the of and a encode text model search memory cost image".split()
texts = [" ".join(rnd.choice(words) for _ in range(rnd.randint(5, 120))) for _ in range(256)]
for i in range(0, len(texts), 8):
    enc.encode(texts[i:i + 8])  # the first pass over new padded lengths pays per-shape set-up
s = time.perf_counter()
for i in range(0, len(texts), 8):
    enc.encode(texts[i:i + 8])
bulk = len(texts) / (time.perf_counter() - s)
print(json.dumps({"import_s": t_import, "load_s": t_load, "warm_s": t_warm, "init_s": t_import + t_load + t_warm,
                  "one_text_p50_ms": statistics.median(times) * 1000, "bulk_texts_s": bulk, "peak_rss_mb": hwm()}))
"""


def measure(model: Path) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-c", _PROBE, str(model)], capture_output=True, text=True, env=env,
                         timeout=3600, check=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def image_rest_mb(image: str) -> float | None:
    """The built image's size less its model: what every shape's image shares."""
    try:
        size = int(subprocess.run(["docker", "image", "inspect", "-f", "{{.Size}}", image], capture_output=True,
                                  text=True, timeout=60, check=True).stdout)  # fmt: skip
        model = subprocess.run(["docker", "run", "--rm", "--entrypoint", "du", image, "-sb", "/opt/model"],
                               capture_output=True, text=True, timeout=120, check=True).stdout.split()[0]  # fmt: skip
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None
    return (size - int(model)) / 1e6


def main(argv: list[str] | None = None) -> int:
    from bert2vec.export.sizing import lambda_cost_per_million, required_memory_mb

    parser = argparse.ArgumentParser(prog="bench.shapes", description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated: " + ", ".join(SHAPES))
    parser.add_argument("--work", type=Path, default=REPO / ".cache" / "bench" / "shapes")
    parser.add_argument("--image", default="bert2vec:local")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "shapes.json")
    args = parser.parse_args(argv)
    rest = image_rest_mb(args.image)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())  # fmt: skip
    rows = []
    for name in args.shapes.split(","):
        ckpt = checkpoint(args.work / "ckpt" / name, *SHAPES[name])
        for split in (True, False):
            out = args.work / "export" / (name + ("" if split else "-nosplit"))
            t, reused = time.perf_counter(), (out / "saved_model.pb").is_file()
            if not reused:
                subprocess.run([str(Path(sys.executable).with_name("bert-export")), "--model", str(ckpt), "--output",
                                str(out), "--force", *([] if split else ["--no-split"])], check=True,
                               stdout=subprocess.DEVNULL, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))  # fmt: skip
            export_s = None if reused else round(time.perf_counter() - t, 1)  # an earlier run's export
            m = measure(out)
            need = required_memory_mb(out)
            row = {"shape": name, "split": split, "export_mb": round(dir_mb(out)), "export_s": export_s,
                   "image_mb": round(rest + dir_mb(out)) if rest else None, **{k: round(v, 3) for k, v in m.items()},
                   "memory_mb": need,
                   "usd_per_million": round(lambda_cost_per_million(need, 1 / m["bulk_texts_s"]), 2)}  # fmt: skip
            rows.append(row)
            print(json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"cpu": cpu, "cores": os.cpu_count(), "rows": rows}, indent=1) + "\n")
    print(f"\nCPU: {cpu}, {os.cpu_count()} cores\n")
    print("| shape | split | export MB | image MB | init s | peak RSS MB | one text p50 ms | bulk texts/s | MemorySize | $ / M texts |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['shape']} | {'yes' if r['split'] else 'no'} | {r['export_mb']:,} | {r['image_mb'] or '-':,} | "
              f"{r['init_s']:.1f} | {r['peak_rss_mb']:,.0f} | {r['one_text_p50_ms']:.1f} | {r['bulk_texts_s']:.1f} | "
              f"{r['memory_mb']:,} | {r['usd_per_million']:.2f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
