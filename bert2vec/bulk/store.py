"""S3 access for the bulk path: JSON state objects with conditional writes, and the input's bytes.

Conditional writes are the commit protocol's only synchronisation: ``create`` (``If-None-Match:
*``) succeeds for exactly one writer of a key, ``replace`` (``If-Match: <etag>``) only for the
writer that read the current version. A lost race raises :class:`Conflict`, which callers treat as
"another attempt owns this step" — never as an error.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bert2vec.bulk.aws_errors import error_code, is_conflict, is_not_found
from bert2vec.files import manifest as manifests

CONFLICT_RETRIES = 3  # 409 ConditionalRequestConflict: tries again before the invocation fails (and is retried)


class Conflict(Exception):
    """A conditional write lost: another attempt wrote the key first (or changed it since it was read)."""


@dataclass
class Stored:
    """A JSON object as read, with the ETag a later ``replace`` must match."""

    data: dict[str, Any]
    etag: str


class S3Store:
    """One S3 client plus the few operations the bulk path needs, all classified the same way."""

    def __init__(self, client: Any) -> None:
        self.client = client

    # ---- JSON state ------------------------------------------------------------------------
    def read(self, bucket: str, key: str) -> Stored | None:
        from botocore.exceptions import ClientError

        try:
            resp = self.client.get_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise
        return Stored(json.loads(resp["Body"].read()), str(resp.get("ETag", "")))

    def get_json(self, bucket: str, key: str) -> dict[str, Any] | None:
        got = self.read(bucket, key)
        return None if got is None else got.data

    def put_json(self, bucket: str, key: str, data: dict[str, Any]) -> str:
        """Unconditional write (for objects whose every writer writes the same bytes)."""
        resp = self.client.put_object(Bucket=bucket, Key=key, Body=manifests.dumps(data), ContentType="application/json")
        return str(resp.get("ETag", ""))

    def create(self, bucket: str, key: str, data: dict[str, Any]) -> str:
        """Write ``key`` only if it does not exist yet; :class:`Conflict` if someone else did."""
        return self._conditional(bucket, key, data, IfNoneMatch="*")

    def replace(self, bucket: str, key: str, data: dict[str, Any], etag: str) -> str:
        """Overwrite ``key`` only if it is still the version read (``etag``); else :class:`Conflict`."""
        return self._conditional(bucket, key, data, IfMatch=etag)

    def create_or_replace(self, bucket: str, key: str, body: Any, etag: str | None, content_type: str) -> str:
        """Write ``body`` only if ``key`` is still as read: absent (``etag`` None) or at ``etag``.

        For user-facing results (manifest, errors file) that several versions' finalizers may race
        to write: the read, then the check that the input is still current, then this write — so a
        finalizer whose check went stale loses here instead of overwriting a newer version's result."""
        condition = {"IfNoneMatch": "*"} if etag is None else {"IfMatch": etag}
        return self._put(bucket, key, body, content_type, **condition)

    def put_stream(self, bucket: str, key: str, stream: Any, content_type: str) -> None:
        """Unconditional write of a stream of unknown length (for objects every writer writes
        identically): multipart in 8 MiB parts, one at a time, so memory and disk stay bounded."""
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(multipart_threshold=8 << 20, multipart_chunksize=8 << 20, max_concurrency=1,
                                use_threads=False)  # fmt: skip
        self.client.upload_fileobj(stream, bucket, key, ExtraArgs={"ContentType": content_type}, Config=config)

    def head(self, bucket: str, key: str) -> dict[str, Any] | None:
        """The object's ``HeadObject`` answer, or None when it does not exist."""
        from botocore.exceptions import ClientError

        try:
            return dict(self.client.head_object(Bucket=bucket, Key=key))
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise

    def head_etag(self, bucket: str, key: str) -> str | None:
        """The object's ETag, or None when it does not exist."""
        head = self.head(bucket, key)
        return None if head is None else str(head["ETag"])

    def _conditional(self, bucket: str, key: str, data: dict[str, Any], **condition: str) -> str:
        return self._put(bucket, key, manifests.dumps(data), "application/json", **condition)

    def _put(self, bucket: str, key: str, body: Any, content_type: str, **condition: str) -> str:
        from botocore.exceptions import ClientError

        for tries_left in range(CONFLICT_RETRIES, -1, -1):
            if hasattr(body, "seek"):
                body.seek(0)
            try:
                resp = self.client.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type, **condition)
            except ClientError as exc:
                if is_conflict(exc):
                    raise Conflict(f"s3://{bucket}/{key} was written by another attempt") from exc
                if error_code(exc) == "ConditionalRequestConflict" and tries_left:
                    continue  # nothing was stored; S3 says to try again
                raise
            return str(resp.get("ETag", ""))
        raise AssertionError("unreachable")

    # ---- listing and files -------------------------------------------------------------------
    def keys(self, bucket: str, prefix: str) -> list[str]:
        out: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            out.extend(obj["Key"] for obj in page.get("Contents", []))
        return out

    def any_key(self, bucket: str, prefix: str, match: Callable[[str], Any]) -> bool:
        """Whether some key under ``prefix`` satisfies ``match`` (listing stops at the first)."""
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            if any(match(obj["Key"]) for obj in page.get("Contents", [])):
                return True
        return False

    def body(self, bucket: str, key: str) -> bytes:
        return bytes(self.client.get_object(Bucket=bucket, Key=key)["Body"].read())

    def upload(self, path: str, bucket: str, key: str) -> None:
        self.client.upload_file(path, bucket, key)

    def delete(self, bucket: str, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start : start + 1000]]
            self.client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
