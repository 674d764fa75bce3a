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

from dataclasses import dataclass
from typing import Any

from bert2vec.aws.errors import is_throttling
from bert2vec.core.contract import VECTOR_MODEL_TAG_CHARS
from bert2vec.core.errors import (
    InvalidInputError,
    SearchModelMismatchError,
    SearchNotConfiguredError,
    SearchThrottledError,
    SearchUnavailableError,
)
from bert2vec.core.settings import Settings
from bert2vec.http.search_filter import check_filter
from bert2vec.http.service import EncodeRequest, EncodeService
from bert2vec.http.wire import clip, echo, require_object, whole_number

MAX_TOP_K = 30  # QueryVectors' limit
DEFAULT_TOP_K = 10
# The search client answers within a few seconds or gives up: two attempts (one retry, with the
# SDK's jittered back-off of at most ~2 s), each bounded by the timeouts below — well inside API
# Gateway's 29 s. The bulk path's client retries far longer; a caller waiting on an HTTP answer
# is better served by a 429/503 it can retry itself.
MAX_ATTEMPTS = 2
CONNECT_TIMEOUT_S = 2.0
READ_TIMEOUT_S = 5.0
RETRY_AFTER_S = 1  # what a throttled answer tells the caller to wait


def search_client(endpoint_url: str | None = None, *, read_timeout: float = READ_TIMEOUT_S) -> Any:
    """The ``s3vectors`` client ``/search`` uses: bounded attempts and timeouts."""
    from bert2vec.aws.factory import client

    return client("s3vectors", endpoint_url=endpoint_url, total_max_attempts=MAX_ATTEMPTS,  # the first call included
                  connect_timeout=CONNECT_TIMEOUT_S, read_timeout=read_timeout)  # fmt: skip


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
        raise InvalidInputError(f"'query' must be a string, got {type(query).__name__}", param="query")
    raw_top_k = body.get("top_k", DEFAULT_TOP_K)
    top_k = whole_number(raw_top_k)  # 5.0 is 5, as on every route
    if top_k is None or not 1 <= top_k <= MAX_TOP_K:
        raise InvalidInputError(
            f"'top_k' must be a whole number from 1 to {MAX_TOP_K}, got {echo(raw_top_k)}", param="top_k"
        )
    flt = body.get("filter")
    return SearchRequest(query, top_k, check_filter(flt) if flt is not None else None)


def _aws_error(exc: Exception, req: SearchRequest, where: str) -> Exception:
    """A failed ``QueryVectors`` as the error the caller sees: never a bare 500."""
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError):  # timeouts, connection errors after the bounded attempts
        return SearchUnavailableError(
            f"the vector index {where} did not answer in time ({type(exc).__name__}); retry later"
        )
    err = exc.response.get("Error", {})
    code, message = str(err.get("Code", "")), clip(str(err.get("Message", "")), 300)
    if is_throttling(exc):
        return SearchThrottledError(
            f"the vector index {where} is busy ({code}); retry after {RETRY_AFTER_S} s", retry_after=RETRY_AFTER_S
        )
    if code == "ValidationException" and req.filter is not None:
        return InvalidInputError(f"S3 Vectors refused the 'filter': {message}", param="filter")
    if code == "NotFoundException":
        return SearchUnavailableError(
            f"the vector index {where} does not exist ({message}); create it (the bulk path with "
            "OUTPUT_FORMAT=s3vectors does) or fix VECTOR_BUCKET / VECTOR_INDEX"
        )
    if code == "AccessDeniedException":
        return SearchUnavailableError(f"the function may not query the vector index {where} ({message})")
    return SearchUnavailableError(f"the vector index {where} refused the query: {code}: {message}")


class VectorSearch:
    """The configured index; the AWS client is made on first use (and again after a restore)."""

    def __init__(self, bucket: str | None, index: str | None, client: Any = None) -> None:
        self.bucket, self.index, self._client = bucket, index, client

    @classmethod
    def from_env(cls) -> VectorSearch:
        return cls.from_settings(Settings.from_env())

    @classmethod
    def from_settings(cls, s: Settings) -> VectorSearch:
        """``VECTOR_BUCKET`` / ``VECTOR_INDEX``, read once with the other settings."""
        return cls(s.vector_bucket, s.vector_index)

    @property
    def configured(self) -> bool:
        return bool(self.bucket and self.index)

    def refresh_client(self) -> None:
        self._client = None

    def client(self) -> Any:
        if self._client is None:
            self._client = search_client()
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
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            found = self.client().query_vectors(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise _aws_error(exc, req, f"{self.bucket}/{self.index}") from exc
        _check_model(found.get("vectors", []), service.encoder.card.checksum, f"{self.bucket}/{self.index}")
        return {
            "model": service.encoder.name,
            "index": self.index,
            "results": [
                {"key": v["key"], "distance": v.get("distance"), "metadata": v.get("metadata", {})}
                for v in found.get("vectors", [])
            ],
        }


def _check_model(vectors: list[dict[str, Any]], checksum: str | None, where: str) -> None:
    """Refuse to rank vectors another model wrote (the bulk path tags each vector with its model's
    checksum, ``metadata.model``). Vectors written before the tag existed carry none and pass."""
    if not checksum:
        return
    mine = checksum[:VECTOR_MODEL_TAG_CHARS]
    others = sorted({str(v.get("metadata", {}).get("model")) for v in vectors
                     if v.get("metadata", {}).get("model") not in (None, mine)})  # fmt: skip
    if others:
        raise SearchModelMismatchError(
            f"the vector index {where} holds vectors of another model (checksum {', '.join(others)}), this function "
            f"runs {mine}: write this model's vectors to a new index and point VECTOR_INDEX at it "
            "(docs/s3-bulk.md, 'Changing the model')"
        )
