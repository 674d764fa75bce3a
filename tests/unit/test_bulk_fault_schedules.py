"""Property: whatever AWS does to the messages, the result equals one clean run of the final version.

Hypothesis draws a fault schedule — deliver, duplicate (run a message and keep it queued),
delay (move it to the back), kill (the process dies after a few S3 calls, no clean-up), a deadline
that forces a hand-off, and overwrite (a new version of the object, with its own event) — over a
small object fanned out into several slices and shards. After the schedule, the queue is drained.
The outputs and the index must then hold each line of the final version exactly once, with that
line's vector, and nothing of any earlier version.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bert2vec.bulk.config import BulkConfig
from bert2vec.bulk.s3_engine import Engine, WorkItem
from tests.bulk_support import BUCKET, VBUCKET, VINDEX, HashEncoder, assert_exactly_once, lines_of, moto_aws

FORMATS = ["jsonl", "parquet", "npy", "s3vectors"]
OPS = ["deliver", "duplicate", "concurrent", "delay", "kill", "deadline", "overwrite", "overwrite_during"]
STORE_CALLS = ("upload", "create", "replace", "create_or_replace", "head_etag", "put_json", "read", "get_json", "keys", "body", "delete")


class Killed(BaseException):
    """The process died: nothing after this point runs, nothing is cleaned up (not an ``Exception``)."""


def texts(n: int, tag: str) -> list[str]:
    return [f"{tag} line {i}: some words {i % 3}" for i in range(1, n + 1)]


class Harness:
    """The engine with its queue replaced by a list the schedule controls."""

    def __init__(self, aws: dict[str, Any], fmt: str) -> None:
        extra: dict[str, Any] = {"vector_bucket": VBUCKET, "vector_index": VINDEX} if fmt == "s3vectors" else {}
        cfg = BulkConfig(queue_url="local", output_format=fmt, chunk_bytes=128, shard_bytes=256, **extra)
        self.eng = Engine(aws["s3"], HashEncoder(), cfg, None)
        self.queue: list[WorkItem | None] = [None]  # None: the object's upload event
        self.eng.send = self.queue.extend  # type: ignore[method-assign]
        self.key = "incoming/p.txt"

    def deliver(
        self, entry: WorkItem | None, *, kill_after: int | None = None, budget: int | None = None,
        interleave_after: int | None = None, interleave: Any = None,
    ) -> bool:  # fmt: skip
        """Run one message; False if it died (it stays queued, as SQS would redeliver it).

        ``interleave_after``: after that many S3 calls, a second delivery of the same message runs
        to the end before this one goes on (two workers on one message at once) — or ``interleave``
        (e.g. a new version uploaded and its event handled) when given."""
        store = self.eng.store
        originals = {name: getattr(store, name) for name in STORE_CALLS}
        after = kill_after if kill_after is not None else interleave_after
        if after is not None:
            left = {"n": after}

            def wrap(fn: Any) -> Any:
                def faulty(*args: Any, **kwargs: Any) -> Any:
                    left["n"] -= 1
                    if left["n"] == -1:
                        if kill_after is not None:
                            raise Killed
                        for name, orig in originals.items():  # the duplicate runs unhindered
                            setattr(store, name, orig)
                        try:
                            interleave() if interleave is not None else self.deliver(entry)
                        finally:
                            for name, orig in originals.items():
                                setattr(store, name, wrap(orig))
                    elif left["n"] < -1 and kill_after is not None:
                        raise Killed
                    return fn(*args, **kwargs)

                return faulty

            for name, fn in originals.items():
                setattr(store, name, wrap(fn))
        looks = {"n": budget if budget is not None else 10**9}

        def clock() -> int:
            looks["n"] -= 1
            return 10_000_000 if looks["n"] > 0 else 1

        try:
            if entry is None:
                self.eng.handle_object(BUCKET, self.key, clock)
            else:
                self.eng.run(entry, clock)
            return True
        except Killed:
            return False
        finally:
            for name, fn in originals.items():
                setattr(store, name, fn)


@pytest.mark.slow
@settings(max_examples=min(40, settings.default.max_examples), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fmt=st.sampled_from(FORMATS),  # "overwrite_during": a new version uploaded and its event run between two S3 calls
    sizes=st.lists(st.integers(min_value=1, max_value=14), min_size=1, max_size=3),
    schedule=st.lists(st.tuples(st.sampled_from(OPS), st.integers(min_value=1, max_value=25)), max_size=16),
)
def test_any_fault_schedule_ends_like_one_clean_run_of_the_final_version(
    fmt: str, sizes: list[int], schedule: list[tuple[str, int]]
) -> None:
    versions = [texts(n, f"v{i}") for i, n in enumerate(sizes)]
    with moto_aws() as aws:
        h = Harness(aws, fmt)
        aws["s3"].put_object(Bucket=BUCKET, Key=h.key, Body=lines_of(versions[0]))
        current = 0
        for op, n in schedule:
            if op == "overwrite":
                if current + 1 < len(versions):
                    current += 1
                    aws["s3"].put_object(Bucket=BUCKET, Key=h.key, Body=lines_of(versions[current]))
                    h.queue.append(None)
                continue
            if not h.queue:
                continue
            if op == "overwrite_during" and current + 1 < len(versions):
                uploaded = {"done": False}

                def newer_version(body: bytes = lines_of(versions[current + 1]), uploaded: Any = uploaded) -> None:
                    aws["s3"].put_object(Bucket=BUCKET, Key=h.key, Body=body)
                    uploaded["done"] = True
                    h.deliver(None)  # its upload event, run to the end (or fanned out) in between

                if h.deliver(h.queue[0], interleave_after=n, interleave=newer_version):
                    h.queue.pop(0)
                if uploaded["done"]:
                    current += 1
                continue
            if op == "delay":
                h.queue.append(h.queue.pop(0))
            elif op == "duplicate":
                h.deliver(h.queue[0])  # the copy runs; the original stays for its own delivery
            elif op == "concurrent":
                if h.deliver(h.queue[0], interleave_after=n, budget=1 + n % 5):
                    h.queue.pop(0)
            elif op == "kill":
                if h.deliver(h.queue[0], kill_after=n):
                    h.queue.pop(0)
            elif op == "deadline":
                if h.deliver(h.queue[0], budget=n):
                    h.queue.pop(0)
            elif h.deliver(h.queue[0]):
                h.queue.pop(0)
        for _ in range(500):  # then AWS delivers whatever is left, without faults
            if not h.queue:
                break
            assert h.deliver(h.queue.pop(0))
        assert not h.queue
        assert_exactly_once(aws, h.key, versions[current], fmt)
