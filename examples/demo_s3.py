"""``make run``'s bulk demo: drop a sample file into a local moto S3, run the S3 path, print the manifest.

Uses moto's server (a dev dependency) on 127.0.0.1 so the handler talks real HTTP through boto3,
exactly as it would to S3; nothing reaches AWS.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from pathlib import Path

SAMPLE_LINES = [
    "I enjoy taking long walks along the beach with my dog.",
    "",
    "Serverless BERT turns text into vectors.",
    "Café au lait, s'il vous plaît — 我喜欢在海滩上散步.",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m examples.demo_s3", description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="exported model directory (default: $MODEL_DIR or build/model)")
    p.add_argument("--file", type=Path, help="a .txt/.jsonl/.csv(.gz) file to upload instead of the sample")
    p.add_argument("--format", default="jsonl", choices=["jsonl", "parquet", "npy"])
    args = p.parse_args(argv)

    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no per-request access log
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        os.environ.update(
            AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
            AWS_ACCESS_KEY_ID="local",
            AWS_SECRET_ACCESS_KEY="local",
            AWS_DEFAULT_REGION="us-east-1",
            OUTPUT_FORMAT=args.format,
        )
        if args.model:
            os.environ["MODEL_DIR"] = args.model
        from bert2vec.bulk import app as bulk_app
        from bert2vec.local_invoke import LocalContext

        eng = bulk_app.engine()
        eng.s3.create_bucket(Bucket="bert2vec-demo")
        key = "incoming/" + (args.file.name if args.file else "my sample.txt")
        data = args.file.read_bytes() if args.file else ("\n".join(SAMPLE_LINES) + "\n").encode()
        eng.s3.put_object(Bucket="bert2vec-demo", Key=key, Body=data)
        event = {
            "Records": [
                {
                    "eventSource": "aws:s3",
                    "eventName": "ObjectCreated:Put",
                    "s3": {"bucket": {"name": "bert2vec-demo"}, "object": {"key": key.replace(" ", "+")}},
                }
            ]
        }
        print(f"uploaded s3://bert2vec-demo/{key} ({len(data)} bytes) to a local moto S3; running s3_handler")
        bulk_app.s3_handler(event, LocalContext("bert2vec-bulk", timeout_s=900))
        rel = key[len("incoming/") :]
        manifest = eng.s3.get_object(Bucket="bert2vec-demo", Key=f"vectors/{rel}.manifest.json")["Body"].read()
        print(json.dumps(json.loads(manifest), indent=2, ensure_ascii=False))
        listing = eng.s3.list_objects_v2(Bucket="bert2vec-demo", Prefix="vectors/")["Contents"]
        print("outputs:", *(f"  s3://bert2vec-demo/{o['Key']} ({o['Size']} bytes)" for o in listing), sep="\n")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
