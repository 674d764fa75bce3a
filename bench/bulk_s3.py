"""Bulk path: peak RSS versus input size, and throughput, through the real S3 engine.

Each run is a fresh child process (so its peak RSS is its own) that encodes one object from a
moto S3 *server* in another process (so stored objects do not count against the worker's RSS).

    .venv/bin/python -m bench.bulk_s3 rss --model DIR [--sizes-mb 4 32]
    .venv/bin/python -m bench.bulk_s3 throughput --model build/model [--lines 2000]

``rss`` wants a fast model (any export works; a tiny one keeps the large file quick);
``throughput`` reports texts/s and tokens/s for real text (CPython's documentation).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUCKET = "bench"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def real_lines(n: int) -> list[str]:
    """Sentences of CPython's bundled documentation: real, human-written, varied length."""
    from pydoc_data.topics import topics

    out: list[str] = []
    for text in topics.values():
        for para in text.split("\n\n"):
            para = " ".join(para.split())
            if len(para.split()) >= 5 and not para.startswith((">>>", "...")):
                out.append(para[:2000])
    out.sort()
    return (out * (n // len(out) + 1))[:n]


def _child(args: argparse.Namespace) -> int:
    """Runs inside the measured process: one object, inline (no fan-out), then report."""
    from bert2vec.bulk.config import BulkConfig
    from bert2vec.bulk.s3_engine import Engine, s3_client
    from bert2vec.core.encoder import Encoder

    encoder = Encoder.load(args.model)
    eng = Engine(s3_client(), encoder, BulkConfig(chunk_bytes=1 << 20, shard_bytes=1 << 40, output_format=args.format))
    t0 = time.perf_counter()
    summary = eng.handle_object(BUCKET, args.key, lambda: 10**9).summary()
    elapsed = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"summary": summary, "elapsed_s": elapsed, "peak_rss_mb": peak_mb}))
    return 0


def _run_child(model: str, key: str, env: dict[str, str], fmt: str) -> dict:
    cmd = [sys.executable, "-m", "bench.bulk_s3", "_child", "--model", model, "--key", key, "--format", fmt]
    out = subprocess.run(cmd, env=env, cwd=REPO, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=["rss", "throughput", "_child"])
    p.add_argument("--model", default=str(REPO / "build" / "model"))
    p.add_argument("--sizes-mb", type=int, nargs="+", default=[4, 32])
    p.add_argument("--lines", type=int, default=2000)
    p.add_argument("--format", default="jsonl")
    p.add_argument("--key", default="")
    args = p.parse_args(argv)
    if args.mode == "_child":
        return _child(args)

    import boto3

    port = _free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    env = {**os.environ, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "x",
           "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1", "TF_CPP_MIN_LOG_LEVEL": "3"}  # fmt: skip
    try:
        time.sleep(1.5)
        s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                          aws_access_key_id="x", aws_secret_access_key="x")  # fmt: skip
        s3.create_bucket(Bucket=BUCKET)
        print("| input | lines | encoded | elapsed | texts/s | tokens/s | peak RSS |\n|---|---|---|---|---|---|---|")
        if args.mode == "rss":
            base = real_lines(5000)
            for mb in args.sizes_mb:
                lines, size = [], 0
                while size < mb * 1024 * 1024:
                    line = base[len(lines) % len(base)]
                    lines.append(line)
                    size += len(line.encode()) + 1
                key = f"incoming/rss-{mb}mb.txt"
                s3.put_object(Bucket=BUCKET, Key=key, Body=("\n".join(lines) + "\n").encode())
                r = _run_child(args.model, key, env, args.format)
                _row(f"{mb} MB text", len(lines), r)
        else:
            lines = real_lines(args.lines)
            key = "incoming/throughput.txt"
            s3.put_object(Bucket=BUCKET, Key=key, Body=("\n".join(lines) + "\n").encode())
            r = _run_child(args.model, key, env, args.format)
            _row(f"{sum(len(x) for x in lines) / 1e6:.1f} MB CPython docs", len(lines), r)
    finally:
        server.terminate()
    return 0


def _row(label: str, n: int, r: dict) -> None:
    counts = r["summary"]["counts"]
    elapsed = r["elapsed_s"]
    print(f"| {label} | {n} | {counts['encoded']} | {elapsed:.1f} s | {counts['encoded'] / elapsed:.1f} | "
          f"{counts['tokens'] / elapsed:.0f} | {r['peak_rss_mb']:.0f} MB |")


if __name__ == "__main__":
    sys.exit(main())
