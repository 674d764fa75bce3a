"""How big an old version the index clean-up carries to completion: ``python -m bench.bulk_mirror``.

v1 of an object with ``--lines`` lines is put into an S3 Vectors index (the faithful double, which
enforces the documented 2,500 vectors/s per index), then v2 (three lines) replaces it; v2's
completion must delete every v1 vector. Index time runs on a fake clock shared by the double, the
pacer and each invocation's deadline (a Lambda timeout of ``--timeout`` seconds, killed past it), so
hours of index time take minutes; what is measured is whether the new version reaches ``complete``,
in how many invocations, and whether anything was throttled or killed — not speed. The encoder is
the tests' hash stand-in (the model is not what this measures); S3 and SQS are moto, in-process.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import time
from typing import Any


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=2_000_000)
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per invocation (Lambda's maximum: 900)")
    args = ap.parse_args(argv)
    os.environ.setdefault("BERT2VEC_LAZY_INIT", "1")
    from bert2vec.bulk import vectors
    from bert2vec.bulk.config import BulkConfig
    from bert2vec.bulk.s3_engine import Engine, WorkItem
    from tests.bulk_support import BUCKET, VBUCKET, VINDEX, HashEncoder, moto_aws

    class Killed(BaseException):
        pass

    clock = {"now": 0.0, "deadline": float("inf")}

    def sleep(seconds: float) -> None:
        clock["now"] += seconds
        if clock["now"] > clock["deadline"]:
            raise Killed

    def invocation() -> Any:
        clock["deadline"] = clock["now"] + args.timeout
        return lambda: int((clock["deadline"] - clock["now"]) * 1000)

    started = time.perf_counter()
    with moto_aws() as aws:
        index = aws["vectors"]
        index.clock, index._sleep = (lambda: clock["now"]), sleep
        vectors.PACER.clock, vectors.PACER.sleep, vectors.PACER._window = (lambda: clock["now"]), sleep, collections.deque()
        cfg = BulkConfig(queue_url=aws["queue_url"], output_format="s3vectors", vector_bucket=VBUCKET, vector_index=VINDEX)
        eng = Engine(aws["s3"], HashEncoder(), cfg, aws["sqs"])  # type: ignore[arg-type]
        key = "incoming/big.txt"
        body = "".join(f"line {i} of the old version\n" for i in range(args.lines)).encode()
        aws["s3"].put_object(Bucket=BUCKET, Key=key, Body=body)
        invocations = {"v1": 0, "v2": 0}

        def run_all(stage: str, first: Any) -> None:
            invocations[stage] += 1
            first(invocation())
            while msgs := aws["sqs"].receive_message(QueueUrl=aws["queue_url"], MaxNumberOfMessages=10).get("Messages", []):
                for msg in msgs:
                    invocations[stage] += 1
                    eng.run(WorkItem.from_message(msg["Body"]), invocation())
                    aws["sqs"].delete_message(QueueUrl=aws["queue_url"], ReceiptHandle=msg["ReceiptHandle"])

        t_v1 = clock["now"]
        run_all("v1", lambda rem: eng.handle_object(BUCKET, key, rem))
        put_seconds = clock["now"] - t_v1
        held = index.stats.vectors_put
        aws["s3"].put_object(Bucket=BUCKET, Key=key, Body=b"one\ntwo\nthree\n")
        t_v2 = clock["now"]
        killed = False
        try:
            run_all("v2", lambda rem: eng.handle_object(BUCKET, key, rem))
        except Killed:
            killed = True
        manifest = json.loads(aws["s3"].get_object(Bucket=BUCKET, Key="vectors/big.txt.manifest.json")["Body"].read())
        left = len(index.contents(VBUCKET, VINDEX))
        print(json.dumps({
            "old_vectors": held, "v1_index_seconds": round(put_seconds, 1), "v1_invocations": invocations["v1"],
            "v2_status": manifest["status"] if manifest["input"]["etag"] != "" else None,
            "v2_etag_is_current": manifest["input"]["etag"] == aws["s3"].head_object(Bucket=BUCKET, Key=key)["ETag"].strip('"'),
            "stale_vectors_deleted": manifest["output"].get("stale_vectors_deleted"),
            "v2_invocations": invocations["v2"], "v2_index_seconds": round(clock["now"] - t_v2, 1),
            "vectors_left_in_index": left, "throttled": index.stats.throttled, "killed": killed,
            "timeout_s": args.timeout, "wall_s": round(time.perf_counter() - started, 1),
        }, indent=1))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
