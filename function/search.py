"""``POST /search``: embed a query with the served model and ask the S3 Vectors index for neighbours.

Available when the function is configured with ``VECTOR_BUCKET`` and ``VECTOR_INDEX`` (the template
does it with ``OutputFormat=s3vectors``, the index the bulk path writes); otherwise the route
answers 404 ``not_configured``. The query goes through the same validation and request budget as
``/encode``, so the vector is exactly what the bulk path stored for the same text.

``{"query": str, "top_k": 1..30 (default 10), "filter"?: {...}}`` →
``{"model", "index", "results": [{"key", "distance", "metadata"}]}`` (distance: the index's metric,
cosine for the template's index — smaller is closer).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from function.errors import InvalidInputError, SearchNotConfiguredError
from function.service import EncodeRequest, EncodeService
from function.vector_index import vector_bucket_name
from function.wire import clip, require_object

MAX_TOP_K = 30  # QueryVectors' limit
DEFAULT_TOP_K = 10


@dataclass(frozen=True)
class SearchRequest:
    query: str
    top_k: int = DEFAULT_TOP_K
    filter: dict[str, Any] | None = None


def parse(body: Any) -> SearchRequest:
    body = require_object(body)
    unknown = sorted(set(body) - {"query", "top_k", "filter"})
    if unknown:
        raise InvalidInputError(f"unknown field(s) {clip(', '.join(unknown))}; expected query, top_k, filter")
    query = body.get("query")
    if not isinstance(query, str):
        raise InvalidInputError(f"'query' must be a string, got {type(query).__name__}")
    top_k = body.get("top_k", DEFAULT_TOP_K)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
        raise InvalidInputError(f"'top_k' must be a whole number from 1 to {MAX_TOP_K}, got {clip(repr(top_k))}")
    flt = body.get("filter")
    if flt is not None and not isinstance(flt, dict):
        raise InvalidInputError(f"'filter' must be an object (S3 Vectors metadata filter), got {type(flt).__name__}")
    return SearchRequest(query, top_k, flt or None)


class VectorSearch:
    """The configured index; the AWS client is made on first use (and again after a restore)."""

    def __init__(self, bucket: str | None, index: str | None, client: Any = None) -> None:
        self.bucket, self.index, self._client = bucket, index, client

    @classmethod
    def from_env(cls) -> VectorSearch:
        return cls(vector_bucket_name(os.environ.get("VECTOR_BUCKET", "")) or None, os.environ.get("VECTOR_INDEX") or None)

    @property
    def configured(self) -> bool:
        return bool(self.bucket and self.index)

    def refresh_client(self) -> None:
        self._client = None

    def client(self) -> Any:
        if self._client is None:
            from function.bulk.vectors import s3vectors_client

            self._client = s3vectors_client()
        return self._client

    def search(self, service: EncodeService, req: SearchRequest) -> dict[str, Any]:
        if not self.configured:
            raise SearchNotConfiguredError(
                "no vector index is configured for search: deploy with OutputFormat=s3vectors (or set "
                "VECTOR_BUCKET and VECTOR_INDEX)"
            )
        enc = service.encode(EncodeRequest([req.query], field="query", single=True))
        kwargs: dict[str, Any] = {
            "vectorBucketName": self.bucket,
            "indexName": self.index,
            "topK": req.top_k,
            "queryVector": {"float32": enc.vectors[0].tolist()},
            "returnMetadata": True,
            "returnDistance": True,
        }
        if req.filter is not None:
            kwargs["filter"] = req.filter
        found = self.client().query_vectors(**kwargs)
        return {
            "model": service.encoder.name,
            "index": self.index,
            "results": [
                {"key": v["key"], "distance": v.get("distance"), "metadata": v.get("metadata", {})}
                for v in found.get("vectors", [])
            ],
        }
