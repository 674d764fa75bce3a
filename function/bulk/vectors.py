"""``OUTPUT_FORMAT=s3vectors``: vectors go straight into an Amazon S3 Vectors index.

One vector per encoded line, keyed so that a re-delivery, a retry or a backfill of the same object
overwrites instead of duplicating: the record's own id when the input gives one, else
``<input key>#<line>``. Metadata carries where the vector came from (source bucket, key, ETag,
line) and the text itself when it fits ``VECTOR_TEXT_MAX_BYTES`` (declared non-filterable when
the template creates the index, since S3 Vectors caps filterable metadata per vector).

What the index receives is also written as a small local "part" (``.keys.jsonl``: key, id, line
per row) that the engine uploads like any other part: the manifest counts it, and when a newer
version of an object has fewer lines, the keys only the old version had are deleted from the index.

``PutVectors`` takes at most 500 vectors per call; the client retries throttling with backoff.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from function.bulk.writers import OutputRow, PartWriter

FORMAT = "s3vectors"
SUFFIX = ".keys.jsonl"
MAX_PER_CALL = 500  # PutVectors / DeleteVectors limit


def s3vectors_client() -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client("s3vectors", config=Config(retries={"mode": "standard", "max_attempts": 10}))


@dataclass(frozen=True)
class VectorTarget:
    """Where one object's vectors go, and what they are tagged with."""

    client: Any
    bucket: str  # the vector bucket
    index: str
    source_bucket: str
    source_key: str
    etag: str
    text_max_bytes: int = 2048

    def key_for(self, row: OutputRow) -> str:
        """The record's id when the input named one, else ``<input key>#<line>``.

        Inputs without ids number records by line (the readers use the line as the id), so an
        integer id equal to the line is read as "no id".
        """
        key = (
            f"{self.source_key}#{row.line}"
            if row.id is None or (isinstance(row.id, int) and row.id == row.line)
            else str(row.id)
        )
        return key if row.chunk is None else f"{key}#chunk-{row.chunk}"  # chunk rows: one vector per window

    def metadata(self, row: OutputRow) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "source_bucket": self.source_bucket,
            "source_key": self.source_key,
            "etag": self.etag,
            "line": row.line,
        }
        if row.chunk is not None:
            meta.update(chunk=row.chunk, start=row.start, end=row.end)
        if row.text is not None and len(row.text.encode("utf-8")) <= self.text_max_bytes:
            meta["text"] = row.text
        return meta

    def put(self, rows: Sequence[OutputRow], matrix: np.ndarray) -> list[str]:
        keys = [self.key_for(row) for row in rows]
        for start in range(0, len(rows), MAX_PER_CALL):
            batch = [
                {"key": keys[i], "data": {"float32": matrix[i].tolist()}, "metadata": self.metadata(rows[i])}
                for i in range(start, min(start + MAX_PER_CALL, len(rows)))
            ]
            self.client.put_vectors(vectorBucketName=self.bucket, indexName=self.index, vectors=batch)
        return keys

    def delete(self, keys: Iterable[str]) -> int:
        pending = sorted(set(keys))
        for start in range(0, len(pending), MAX_PER_CALL):
            self.client.delete_vectors(
                vectorBucketName=self.bucket, indexName=self.index, keys=pending[start : start + MAX_PER_CALL]
            )
        return len(pending)


class S3VectorsPartWriter(PartWriter):
    """Puts each batch into the index as it is written; the part file records the keys."""

    format = FORMAT

    def __init__(self, path: Path, dim: int, target: VectorTarget) -> None:
        super().__init__(path, dim)
        self._target = target
        self._out = self._open_temp(0)

    def _write(self, rows: Sequence[OutputRow], matrix: np.ndarray) -> None:
        keys = self._target.put(rows, matrix)
        self._out.write(
            "".join(
                json.dumps({"key": k, "id": r.id, "line": r.line}, ensure_ascii=False) + "\n"
                for k, r in zip(keys, rows, strict=True)
            ).encode("utf-8")
        )


def read_keys(body: bytes) -> set[str]:
    """The vector keys a ``.keys.jsonl`` part lists."""
    return {json.loads(line)["key"] for line in body.decode("utf-8").splitlines() if line.strip()}
