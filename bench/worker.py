"""One runtime in one process, driven over a JSON-lines protocol on stdin/stdout.

    python -m bench.worker --runtime ours --spec '{"saved_model": "build/model", ...}'

The worker imports and loads its runtime once, then prints ``{"event": "ready", ...}`` and
answers one JSON line per command line:

* ``{"cmd": "texts", "texts": [...]}`` — keep the corpus;
* ``{"cmd": "warmup", "indices": [...]}`` — encode those texts (untimed) and a few single texts;
* ``{"cmd": "bulk", "batch_size": 32, "path": "encode"|"items", "vectors": bool}`` — one timed
  pass over the whole corpus: ``seconds``, ``cpu_seconds`` (this process, all threads), and the
  vectors as base64 float32 if asked;
* ``{"cmd": "single", "indices": [...]}`` — one timed ``encode_one`` per index: ``ms`` list;
* ``{"cmd": "tokens"}`` — untruncated wordpiece counts of the corpus (``ours`` only);
* ``{"cmd": "sgemm", "shapes": [[m, k, n], ...], "reps": 10}`` — GFLOPS of this runtime's matmul;
* ``{"cmd": "quit"}``.

Anything a library prints goes to stderr: the protocol owns stdout.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
import traceback

T_START = time.perf_counter()


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runtime", required=True)
    p.add_argument("--spec", required=True, help="JSON: saved_model, hf_dir, onnx, max_seq_length, ...")
    args = p.parse_args(argv)

    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # stray prints of libraries → stderr
    sys.stdout = sys.stderr

    def send(obj: dict) -> None:
        proto.write(json.dumps(obj) + "\n")
        proto.flush()

    import numpy as np

    from bench.runtimes import CLASSES

    runtime = CLASSES[args.runtime](json.loads(args.spec))
    try:
        ti = time.perf_counter()
        runtime.import_libs()
        tp = time.perf_counter()
        if hasattr(runtime, "prepare"):  # untimed one-off setup (tfhub-style: build its preprocess model)
            runtime.prepare()
        t0 = time.perf_counter()
        runtime.load()
        t1 = time.perf_counter()
        runtime.encode_one("The quick brown fox jumps over the lazy dog.")
        t2 = time.perf_counter()
    except Exception:  # noqa: BLE001 - reported to the driver, which fails loudly
        send({"event": "error", "error": traceback.format_exc()})
        return 1
    send({"event": "ready", "import_s": tp - ti, "load_s": t1 - t0, "first_call_s": t2 - t1, "versions": runtime.versions(),
          "threads": runtime.threads(), "pid": os.getpid()})  # fmt: skip

    texts: list[str] = []
    for line in sys.stdin:
        if not line.strip():
            continue
        msg = json.loads(line)
        cmd = msg.get("cmd")
        try:
            if cmd == "quit":
                send({"ok": True})
                break
            if cmd == "texts":
                texts = msg["texts"]
                send({"ok": True, "n": len(texts)})
            elif cmd == "warmup":
                runtime.encode([texts[i] for i in msg["indices"]], msg.get("batch_size", 32))
                for i in msg["indices"][:5]:
                    runtime.encode_one(texts[i])
                send({"ok": True})
            elif cmd == "bulk":
                fn = runtime.encode_items if msg.get("path") == "items" else runtime.encode
                c0, w0 = _cpu_seconds(), time.perf_counter()
                vecs = fn(texts, msg.get("batch_size", 32))
                w1, c1 = time.perf_counter(), _cpu_seconds()
                reply = {"ok": True, "seconds": w1 - w0, "cpu_seconds": c1 - c0, "n": len(texts)}
                if msg.get("vectors"):
                    arr = np.ascontiguousarray(vecs, dtype=np.float32)
                    reply["shape"] = list(arr.shape)
                    reply["vectors_b64"] = base64.b64encode(arr.tobytes()).decode()
                send(reply)
            elif cmd == "single":
                ms = []
                for i in msg["indices"]:
                    t = time.perf_counter()
                    runtime.encode_one(texts[i])
                    ms.append((time.perf_counter() - t) * 1e3)
                send({"ok": True, "ms": ms})
            elif cmd == "tokens":
                send({"ok": True, "counts": runtime.token_counts(texts)})  # type: ignore[attr-defined]
            elif cmd == "sgemm":
                out = {"x".join(map(str, s)): runtime.sgemm(*s, msg.get("reps", 10)) for s in msg["shapes"]}
                send({"ok": True, "gflops": out})
            else:
                send({"ok": False, "error": f"unknown command {cmd!r}"})
        except Exception:  # noqa: BLE001 - reported to the driver
            send({"ok": False, "error": traceback.format_exc()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
