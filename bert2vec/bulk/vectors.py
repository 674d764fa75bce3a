"""``OUTPUT_FORMAT=s3vectors``: vectors go straight into an Amazon S3 Vectors index.

Key scheme (docs/s3-bulk.md, "Key scheme"): ``<source bucket>/<source key>#<line>@<etag>``
(chunk rows add ``#chunk-<n>`` before the ``@``). Keys are positional and carry the object's
version, so

- two objects never share a key (their ids only go into metadata), and nothing is overwritten
  silently: three lines with id ``x`` are three vectors, each with ``id: "x"``;
- two versions of one object never share a key, so a slow old version can never overwrite a newer
  version's vector; the old version's keys are deleted when the newer one completes (and by the
  old run itself when it notices it lost);
- a key over S3 Vectors' 1,024 characters becomes ``sha256:<hex of the full key>``; metadata still
  names bucket, key, line and etag.

Metadata: ``source_bucket``, ``source_key``, ``etag``, ``line``, ``id`` (always a string, so ``1``
and ``"1"`` are one id) and, for chunk rows, ``chunk``/``start``/``end``: all filterable, checked
per line against the documented 2 KB; ``text`` (declared non-filterable by the template) when it
fits ``VECTOR_TEXT_MAX_BYTES`` and the 40 KB total. A line over a limit is rejected with the reason;
a ``ValidationException`` for a batch is bisected until the refused vector is isolated, so one bad
line never fails its neighbours.

Before any ``PutVectors`` the keys are recorded in S3 (``on_keys``): the record of every key any
attempt of any version may have written, from which stale keys are found. The keys a segment
committed are also its ``.keys.jsonl`` part.
"""

from __future__ import annotations

import collections
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bert2vec.core.contract import VECTOR_MODEL_TAG_CHARS
from bert2vec.files.writers import OutputRow, PartWriter

FORMAT = "s3vectors"
SUFFIX = ".keys.jsonl"
MAX_PER_CALL = 500  # PutVectors / DeleteVectors limit
MAX_REQUEST_BYTES = 20 * 1024 * 1024  # PutVectors request size limit
MAX_KEY_CHARS = 1024
MAX_FILTERABLE_BYTES = 2048
MAX_METADATA_BYTES = 40 * 1024
MAX_METADATA_KEYS = 50
NON_FILTERABLE = ("text",)
# S3 Vectors' documented write rate per index: vectors inserted + deleted per second. Clean-ups pace
# themselves to it instead of leaning on throttling (429) and retries.
VECTORS_PER_SECOND = 2500
MODEL_TAG_CHARS = VECTOR_MODEL_TAG_CHARS  # the model checksum's prefix each vector carries ("model")


class Pacer:
    """Keeps one process's writes to an index within ``rate`` vectors in any one-second window —
    the documented limit's own terms — instead of leaning on throttling (429) and retries.

    ``clock`` and ``sleep`` are injectable so a test can run hours of index time in milliseconds.
    Several processes writing one index at once each keep to the rate; together they can still be
    throttled, and the client's retries (standard mode, with backoff) absorb that."""

    WINDOW_S = 1.0
    SLACK_S = 1e-6  # a write exactly a window old has left it; float rounding must not say otherwise

    def __init__(self, rate: float = VECTORS_PER_SECOND, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:  # fmt: skip
        self.rate, self.clock, self.sleep = rate, clock, sleep
        self._window: collections.deque[tuple[float, int]] = collections.deque()
        self._lock = threading.Lock()

    def _wait(self, n: int, now: float) -> float:
        """Seconds until ``n`` more vectors fit the window (0: now)."""
        while self._window and self._window[0][0] <= now - self.WINDOW_S:
            self._window.popleft()
        excess = sum(k for _, k in self._window) + min(n, self.rate) - self.rate
        if excess <= 0:
            return 0.0
        for at, k in self._window:
            excess -= k
            if excess <= 0:
                return at + self.WINDOW_S + self.SLACK_S - now
        return 0.0  # unreachable: the whole window leaving makes room for up to ``rate``

    def take(self, n: int) -> None:
        """Wait until ``n`` more vectors fit the rate, then count them as written now."""
        with self._lock:
            while (wait := self._wait(n, self.clock())) > 0:
                self.sleep(wait)
            self._window.append((self.clock(), n))

    def seconds_for(self, n: int) -> float:
        """About how long writing ``n`` more vectors takes from now, the writes already in the window
        included: what a caller with a deadline plans with."""
        with self._lock:
            return self._wait(n, self.clock()) + max(0, n - self.rate) / self.rate + n / self.rate


PACER = Pacer()  # one per process: every target of this process shares the index's budget


def s3vectors_client() -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client("s3vectors", config=Config(retries={"mode": "standard", "max_attempts": 10}))


def _size(meta: dict[str, Any]) -> int:
    """Bytes of metadata as it travels (UTF-8 JSON): the measure the limits are checked with."""
    return len(json.dumps(meta, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass"))


@dataclass(frozen=True)
class VectorTarget:
    """Where one object version's vectors go, and what they are tagged with."""

    client: Any
    bucket: str  # the vector bucket
    index: str
    source_bucket: str
    source_key: str
    etag: str
    text_max_bytes: int = 2048
    epoch: int = 0  # the object's ledger epoch: keys of two epochs of one version never collide
    model: str | None = None  # the model's checksum, tagged on every vector (metadata "model")
    pacer: Pacer = field(default=PACER, compare=False)

    def key_for(self, row: OutputRow) -> str:
        key = f"{self.source_bucket}/{self.source_key}#{row.line}"
        if row.chunk is not None:
            key += f"#chunk-{row.chunk}"
        key += f"@{self.etag}" + (f"~{self.epoch}" if self.epoch else "")
        if len(key) > MAX_KEY_CHARS:
            return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        return key

    def metadata(self, row: OutputRow) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "source_bucket": self.source_bucket,
            "source_key": self.source_key,
            "etag": self.etag,
            "line": row.line,
        }
        if self.model:
            meta["model"] = self.model[:MODEL_TAG_CHARS]
        if row.id is not None:
            meta["id"] = str(row.id)
        if row.chunk is not None:
            meta.update(chunk=row.chunk, start=row.start, end=row.end)
        if row.text is not None and len(row.text.encode("utf-8", "surrogatepass")) <= self.text_max_bytes:
            with_text = {**meta, "text": row.text}
            if _size(with_text) <= MAX_METADATA_BYTES:
                meta = with_text
        return meta

    def refusal(self, meta: dict[str, Any]) -> str | None:
        """Why S3 Vectors would refuse this metadata (checked before the call), or None."""
        filterable = _size({k: v for k, v in meta.items() if k not in NON_FILTERABLE})
        if filterable > MAX_FILTERABLE_BYTES:
            return (f"vector metadata: {filterable} bytes of filterable metadata (source key and id), over S3 "
                    f"Vectors' {MAX_FILTERABLE_BYTES}")  # fmt: skip
        if len(meta) > MAX_METADATA_KEYS:
            return f"vector metadata: {len(meta)} keys, over S3 Vectors' {MAX_METADATA_KEYS}"
        return None

    def put(self, vectors: list[dict[str, Any]]) -> dict[int, str]:
        """Put ``vectors``; {position: reason} for those S3 Vectors refused (bisected, never the batch)."""
        refused: dict[int, str] = {}
        start = 0
        while start < len(vectors):
            end, size = start, 0
            while end < len(vectors) and end - start < MAX_PER_CALL:
                size += len(vectors[end]["data"]["float32"]) * 12 + _size(vectors[end]["metadata"]) + 64
                if end > start and size > MAX_REQUEST_BYTES // 2:
                    break
                end += 1
            self.pacer.take(end - start)
            self._put_isolating(vectors, start, end, refused)
            start = end
        return refused

    def _put_isolating(self, vectors: list[dict[str, Any]], lo: int, hi: int, refused: dict[int, str]) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.put_vectors(vectorBucketName=self.bucket, indexName=self.index, vectors=vectors[lo:hi])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ValidationException":
                raise
            if hi - lo == 1:
                refused[lo] = f"S3 Vectors refused this vector: {str(exc)[:300]}"
                return
            mid = (lo + hi) // 2
            self._put_isolating(vectors, lo, mid, refused)
            self._put_isolating(vectors, mid, hi, refused)

    def delete(self, keys: Iterable[str]) -> int:
        """Delete ``keys`` (at most 500 a call, paced to the index's documented write rate)."""
        pending = sorted(set(keys))
        for start in range(0, len(pending), MAX_PER_CALL):
            batch = pending[start : start + MAX_PER_CALL]
            self.pacer.take(len(batch))
            self.client.delete_vectors(vectorBucketName=self.bucket, indexName=self.index, keys=batch)
        return len(pending)


class S3VectorsPartWriter(PartWriter):
    """Puts each batch into the index as it is written; the part file lists the keys that made it.

    ``on_keys`` is called with a batch's keys *before* they are put, so a record of them exists even
    if the process dies mid-call. Returns {line: reason} for lines it refused.
    """

    format = FORMAT

    def __init__(self, path: Path, dim: int, target: VectorTarget, on_keys: Callable[[list[str]], None]) -> None:
        super().__init__(path, dim)
        self._target = target
        self._on_keys = on_keys
        self._out = self._open_temp(0)

    def _write(self, rows: Sequence[OutputRow], matrix: np.ndarray) -> dict[int, str]:
        refused: dict[int, str] = {}
        keys = [self._target.key_for(row) for row in rows]
        metas = [self._target.metadata(row) for row in rows]
        for row, meta in zip(rows, metas, strict=True):
            why = self._target.refusal(meta)
            if why and row.line not in refused:
                refused[row.line] = why
        keep = [i for i, row in enumerate(rows) if row.line not in refused]
        if keep:
            self._on_keys([keys[i] for i in keep])
            vectors = [{"key": keys[i], "data": {"float32": matrix[i].tolist()}, "metadata": metas[i]} for i in keep]
            for pos, why in self._target.put(vectors).items():
                refused.setdefault(rows[keep[pos]].line, why)
        # A line is all or nothing: windows of a refused line that did get in are taken out again.
        orphans = [keys[i] for i in keep if rows[i].line in refused]
        if orphans:
            self._target.delete(orphans)
        self._out.write(
            "".join(
                json.dumps({"key": keys[i], "id": rows[i].id, "line": rows[i].line}, ensure_ascii=False) + "\n"
                for i in keep
                if rows[i].line not in refused
            ).encode("utf-8", "surrogatepass")
        )
        return refused


def read_keys(body: bytes) -> set[str]:
    """The vector keys a ``.keys.jsonl`` part (or a key record) lists."""
    return {json.loads(line)["key"] for line in body.decode("utf-8", "surrogatepass").splitlines() if line.strip()}
