"""A faithful in-process stand-in for the Amazon S3 Vectors API (the boto3 ``s3vectors`` client).

Why not moto: moto's S3 Vectors backend enforces none of the service's documented limits, never
throttles, does not paginate ``ListVectors`` and accepts requests AWS refuses, so code that would
break in AWS passes against it. This double refuses what AWS refuses, with the errors AWS sends.

How a call is handled, in the order a real client and the service would:

1. **Client-side validation** with botocore's own service model (``botocore.validate``), so a
   misspelt keyword, a wrong type or a missing required parameter raises the same
   ``botocore.exceptions.ParamValidationError`` boto3 raises before sending anything (and the call
   is not counted: it never reached the service). botocore checks only *minimums*; every maximum
   below is the service's to enforce, so the double enforces it.
2. **Injected faults** (``fail_next``) are answered before anything else, as an overloaded or
   failing front end would.
3. **Not found** (``NotFoundException``, 404) for a vector bucket or index that does not exist.
4. **Rate limits** for ``PutVectors``/``DeleteVectors`` (``TooManyRequestsException``, 429); a
   throttled call changes nothing and is not charged to the window; a request refused in step 5
   counts as a request but moved no vectors.
5. **Service-side validation** (``ValidationException``, 400); a refused ``PutVectors`` writes
   none of its vectors (the request is all or nothing).

Every error is a real ``botocore.exceptions.ClientError`` -- an instance of the modeled class in
``client.exceptions`` (``exceptions.NotFoundException`` etc.), with ``Error.Code``, ``Message`` and
``ResponseMetadata.HTTPStatusCode`` as botocore parses them from AWS, so ``except`` clauses,
``exc.response["Error"]["Code"]`` and botocore's retry classification see what AWS would send.

Limits enforced -- numbers from the Amazon S3 User Guide, "Limitations and restrictions" for S3
Vectors (userguide/s3-vectors-limitations.html, the generally-available values, not the preview's),
unless another page is named:

- vectors per ``PutVectors`` / ``DeleteVectors`` call: 500;
- vectors per ``GetVectors`` call: 100;
- request payload: 20 MiB, measured as the body botocore's own serializer would send;
- vector key: 1 to 1,024 characters (API reference, ``PutInputVector.key``);
- dimension: 1 to 4,096 at ``CreateIndex``; every vector's length must equal its index's;
- vector values: finite float32 (NaN, Infinity and values that overflow float32 are refused);
  for cosine indexes an all-zero vector is refused (API reference, ``PutInputVector.data``);
- metadata: at most 40 KB in total and 2 KB filterable (every key not declared non-filterable)
  per vector, at most 50 keys per vector; values are strings, numbers, booleans or lists (User
  Guide, "Metadata filtering");
- non-filterable metadata keys per index: at most 10, each 1 to 63 characters (and the model's
  ``MetadataKey``);
- ``QueryVectors`` ``topK``: 1 to 100; ``ListVectors`` ``maxResults``: 1 to 1,000 (default 500)
  with ``nextToken`` pagination, a page also ending once it holds over 1 MB (API reference,
  ``ListVectors``: AWS returns short pages, so a lister must follow ``nextToken``);
  ``segmentCount`` 1 to 16 with ``segmentIndex`` in ``[0, segmentCount)`` (each needs the other);
- per index: at most 1,000 ``PutVectors`` + ``DeleteVectors`` requests and at most 2,500 vectors
  inserted + deleted per second (a sliding one-second window on an injectable clock; the User
  Guide's "S3 Vectors best practices" names the 429 ``TooManyRequestsException``);
- vector bucket / index names: 3 to 63 characters of the service's name pattern (the model's ARN
  patterns); a second bucket or index of the same name is a ``ConflictException`` (409).

How sizes are measured is not documented by AWS: metadata is measured as compact UTF-8 JSON, the
same measure ``bert2vec.bulk.vectors`` checks before the call (so the double cannot catch
a difference in *measure*, only a limit the project forgets to check). ``DeleteVectors`` keys count
toward the vector rate whether or not the index held them.

Writes are visible at once, as AWS documents (S3 Vectors reads are strongly consistent).

Not modelled: approximate nearest-neighbour recall (queries are exact, ties broken by key), the
read-side request rates ("hundreds per second"), the vectors-per-index, buckets-per-region and
indexes-per-bucket quotas, encryption, tags, policies, text search/``queryTexts``, ``queryMode``,
index modes, and every operation the project does not call (they raise ``NotImplementedError``
naming themselves).

Choices where AWS documents nothing: duplicate keys in one ``PutVectors`` are accepted, last one
wins; a filter on a non-filterable key sees the key as absent; filter values are not coerced
(``"2020"`` does not match ``2020``); ``$ne``/``$nin`` match a vector without the key, the other
comparisons do not. ``ListVectors`` order is unspecified in AWS; the double lists in a stable
hash order, deliberately not key order, so code cannot come to depend on sorted pages.

Retries: a real client retries throttling and 5xx answers itself (the project's clients are built
with ``mode="standard"``). With ``max_attempts`` > 1 the double does the same, deciding with
botocore's own standard-mode retry conditions and backoff and sleeping with the injectable
``sleep`` (give it a fake clock's ``advance``); by default (1) every error surfaces at once.
The standard mode's client-side retry quota is not modelled.
"""

from __future__ import annotations

import base64
import binascii
import collections
import datetime as dt
import functools
import hashlib
import json
import math
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from botocore import xform_name
from botocore.exceptions import ClientError

REGION = "us-east-1"
ACCOUNT = "123456789012"

MAX_VECTORS_PER_WRITE = 500  # PutVectors / DeleteVectors
MAX_KEYS_PER_GET = 100
MAX_REQUEST_BYTES = 20 * 1024 * 1024
MAX_KEY_CHARS = 1024
MAX_DIMENSION = 4096
MAX_METADATA_BYTES = 40 * 1024
MAX_FILTERABLE_BYTES = 2 * 1024
MAX_METADATA_KEYS = 50
MAX_NON_FILTERABLE_KEYS = 10
MAX_METADATA_KEY_CHARS = 63
MAX_TOP_K = 100
MAX_LIST_RESULTS = 1000
DEFAULT_LIST_RESULTS = 500
MAX_LIST_PAGE_BYTES = 1024 * 1024  # "If the processed dataset size exceeds 1 MB" (API reference, ListVectors)
MAX_SEGMENTS = 16
REQUESTS_PER_SECOND = 1000  # PutVectors + DeleteVectors, per index
VECTORS_PER_SECOND = 2500  # inserted + deleted, per index
WINDOW_SLACK_S = 1e-6

BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
INDEX_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
INDEX_ARN = re.compile(r"arn:aws[-a-z0-9]*:s3vectors:[a-z0-9-]+:[0-9]{12}:bucket/([^/]+)/index/([^/]+)")
WRITES = ("PutVectors", "DeleteVectors")
FILTER_OPERATORS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists")


@functools.cache
def _real_client() -> Any:
    """One real (never-called) boto3 client per process: its service model and exception classes.

    Building it reads botocore's JSON once (~0.2 s); no credentials are needed, nothing is sent.
    """
    import boto3

    return boto3.session.Session().client(
        "s3vectors", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )


def _json_size(value: Any) -> int:
    """Bytes of ``value`` as compact UTF-8 JSON (the measure of the metadata limits)."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass"))


@dataclass
class Stats:
    """What the double saw, for tests to assert on.

    ``calls`` counts requests that reached the service, per API operation name (``"PutVectors"``),
    each retry attempt included; a request botocore refuses client-side is not a call.
    """

    calls: collections.Counter[str] = field(default_factory=collections.Counter)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)  # by error code
    vectors_put: int = 0
    vectors_deleted: int = 0  # keys the index held and lost
    unknown_deletes: int = 0  # keys passed to DeleteVectors the index did not hold (AWS accepts them)
    unknown_delete_keys: list[str] = field(default_factory=list)
    throttled: int = 0  # TooManyRequestsException from the rate limits (not from fail_next)
    injected_faults: int = 0
    retries: int = 0  # attempts after the first, when max_attempts > 1


@dataclass
class _Index:
    bucket: str
    name: str
    dimension: int
    metric: str
    non_filterable: frozenset[str]
    created: dt.datetime
    vectors: dict[str, tuple[np.ndarray, dict[str, Any]]] = field(default_factory=dict)
    window: collections.deque[tuple[float, int]] = field(default_factory=collections.deque)  # (time, vectors)

    @property
    def arn(self) -> str:
        return f"arn:aws:s3vectors:{REGION}:{ACCOUNT}:bucket/{self.bucket}/index/{self.name}"


class FaithfulS3Vectors:
    """The ``s3vectors`` client methods the project calls, with S3 Vectors' limits and errors.

    ``clock`` drives the rate limits (inject a fake one to throttle deterministically);
    ``requests_per_second`` / ``vectors_per_second`` are the per-index write limits;
    ``max_page`` caps a ``ListVectors`` page below ``maxResults`` (AWS may return short pages, so a
    lister must follow ``nextToken`` rather than stop at a short page); ``max_attempts``, ``sleep``
    and ``backoff_random`` emulate the client's standard-mode retries (off by default).

    ``stats`` (a ``Stats``) counts what happened; ``fail_next`` injects faults; ``contents`` shows
    what an index holds. ``meta`` and ``exceptions`` are a real client's, so ``except
    client.exceptions.NotFoundException`` works as it does against AWS.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        requests_per_second: int = REQUESTS_PER_SECOND,
        vectors_per_second: int = VECTORS_PER_SECOND,
        max_page: int = MAX_LIST_RESULTS,
        max_attempts: int = 1,
        sleep: Callable[[float], None] = time.sleep,
        backoff_random: Callable[[], float] = lambda: 0.5,
    ) -> None:
        real = _real_client()
        self.meta = real.meta
        self.exceptions = real.exceptions
        self._model = real.meta.service_model
        self._ops = {xform_name(name): name for name in self._model.operation_names}
        self.clock = clock
        self.requests_per_second = requests_per_second
        self.vectors_per_second = vectors_per_second
        self.max_page = max_page
        self.max_attempts = max_attempts
        self._sleep = sleep
        self._backoff_random = backoff_random
        self.stats = Stats()
        self._lock = threading.RLock()
        self._buckets: dict[str, dict[str, _Index]] = {}
        self._faults: dict[str, collections.deque[tuple[str, str | None]]] = collections.defaultdict(collections.deque)

    # -- test helpers -------------------------------------------------------------------------

    def fail_next(self, operation: str, code: str, times: int = 1, message: str | None = None) -> None:
        """The next ``times`` requests of ``operation`` (``"PutVectors"`` or ``"put_vectors"``) fail
        with ``code``, at the status the service model gives it (ServiceUnavailableException 503,
        TooManyRequestsException 429, ...), before anything is checked or changed."""
        op = self._op_name(operation)
        self._faults[op].extend([(code, message)] * times)

    def contents(self, bucket: str, index: str) -> dict[str, dict[str, Any]]:
        """Everything the index holds: ``{key: {"data": [float, ...], "metadata": {...}}}``."""
        idx = self._buckets[bucket][index]
        return {k: {"data": v.tolist(), "metadata": json.loads(json.dumps(m))} for k, (v, m) in idx.vectors.items()}

    # -- the client's methods -----------------------------------------------------------------

    def create_vector_bucket(self, **params: Any) -> dict[str, Any]:
        return self._call("create_vector_bucket", params, self._create_vector_bucket)

    def create_index(self, **params: Any) -> dict[str, Any]:
        return self._call("create_index", params, self._create_index)

    def get_index(self, **params: Any) -> dict[str, Any]:
        return self._call("get_index", params, self._get_index)

    def put_vectors(self, **params: Any) -> dict[str, Any]:
        return self._call("put_vectors", params, self._put_vectors)

    def delete_vectors(self, **params: Any) -> dict[str, Any]:
        return self._call("delete_vectors", params, self._delete_vectors)

    def get_vectors(self, **params: Any) -> dict[str, Any]:
        return self._call("get_vectors", params, self._get_vectors)

    def list_vectors(self, **params: Any) -> dict[str, Any]:
        return self._call("list_vectors", params, self._list_vectors)

    def query_vectors(self, **params: Any) -> dict[str, Any]:
        return self._call("query_vectors", params, self._query_vectors)

    def __getattr__(self, name: str) -> Any:
        ops = self.__dict__.get("_ops", {})
        if name in ops:
            raise NotImplementedError(
                f"FaithfulS3Vectors does not model {ops[name]} ({name}); add it if the project uses it"
            )
        raise AttributeError(name)

    # -- the request path ---------------------------------------------------------------------

    def _op_name(self, operation: str) -> str:
        if operation in self._model.operation_names:
            return operation
        if operation in self._ops:
            return self._ops[operation]
        raise ValueError(f"{operation!r} is not an s3vectors operation")

    def _call(
        self, py_name: str, params: dict[str, Any], handler: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> dict[str, Any]:
        from botocore.validate import validate_parameters

        op = self._ops[py_name]
        validate_parameters(params, self._model.operation_model(op).input_shape)  # ParamValidationError
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._attempt(op, params, handler)
            except ClientError as exc:
                delay = self._retry_delay(op, exc, attempt)
                if delay is None:
                    raise
                self.stats.retries += 1
                self._sleep(delay)

    def _attempt(
        self, op: str, params: dict[str, Any], handler: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> dict[str, Any]:
        with self._lock:  # boto3 clients are shared across threads; one request at a time here
            return self._serve(op, params, handler)

    def _serve(
        self, op: str, params: dict[str, Any], handler: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> dict[str, Any]:
        self.stats.calls[op] += 1
        try:
            if self._faults.get(op):
                code, message = self._faults[op].popleft()
                self.stats.injected_faults += 1
                raise self._error(op, code, message or f"injected {code}")
            out = handler(params)
        except ClientError as exc:
            self.stats.errors[exc.response["Error"]["Code"]] += 1
            raise
        out["ResponseMetadata"] = {
            "RequestId": uuid.uuid4().hex,
            "HTTPStatusCode": 200,
            "HTTPHeaders": {},
            "RetryAttempts": 0,
        }
        return out

    def _retry_delay(self, op: str, exc: ClientError, attempt: int) -> float | None:
        """botocore's standard-mode verdict on ``exc``: seconds to wait before retrying, or None."""
        if attempt >= self.max_attempts:
            return None
        from botocore.awsrequest import AWSResponse
        from botocore.retries import standard

        status = exc.response["ResponseMetadata"]["HTTPStatusCode"]
        ctx = standard.RetryContext(
            attempt_number=attempt,
            operation_model=self._model.operation_model(op),
            parsed_response=exc.response,
            http_response=AWSResponse(url="https://s3vectors.invalid", status_code=status, headers={}, raw=None),
        )
        if not standard.StandardRetryConditions(max_attempts=self.max_attempts).is_retryable(ctx):
            return None
        backoff = standard.ExponentialBackoff(
            random=self._backoff_random,
            service_name=self._model.service_id.hyphenize(),
            throttling_detector=standard.ThrottlingErrorDetector(standard.RetryEventAdapter()),
        )
        return float(backoff.delay_amount(ctx))

    def _error(self, op: str, code: str, message: str, status: int | None = None) -> ClientError:
        """The ``ClientError`` botocore would raise for this answer (the modeled subclass when there is one)."""
        if status is None:
            status = 400
            for shape in self._model.error_shapes:
                if shape.error_code == code:
                    status = shape.metadata.get("error", {}).get("httpStatusCode", 400)
        response = {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {
                "RequestId": uuid.uuid4().hex,
                "HTTPStatusCode": status,
                "HTTPHeaders": {"x-amzn-errortype": code},
                "RetryAttempts": 0,
            },
            "message": message,
        }
        cls = self.exceptions.from_code(code)
        return cls(response, op)

    def _invalid(self, op: str, message: str) -> ClientError:
        return self._error(op, "ValidationException", message)

    # -- resources ----------------------------------------------------------------------------

    def _index(self, op: str, params: dict[str, Any]) -> _Index:
        if "indexArn" in params:
            match = INDEX_ARN.fullmatch(params["indexArn"])
            if not match:
                raise self._invalid(op, "Invalid index ARN")
            bucket, name = match.groups()
        elif "vectorBucketName" in params and "indexName" in params:
            bucket, name = params["vectorBucketName"], params["indexName"]
        else:
            raise self._invalid(op, "Either indexArn or both vectorBucketName and indexName must be specified")
        if bucket not in self._buckets:
            raise self._error(op, "NotFoundException", "The specified vector bucket could not be found")
        if name not in self._buckets[bucket]:
            raise self._error(op, "NotFoundException", "The specified index could not be found")
        return self._buckets[bucket][name]

    def _create_vector_bucket(self, params: dict[str, Any]) -> dict[str, Any]:
        op, name = "CreateVectorBucket", params["vectorBucketName"]
        if not BUCKET_NAME.fullmatch(name):
            raise self._invalid(op, f"Invalid vector bucket name {name!r}: 3-63 lowercase letters, digits and hyphens")
        if name in self._buckets:
            raise self._error(op, "ConflictException", "A vector bucket with the specified name already exists")
        self._buckets[name] = {}
        return {"vectorBucketArn": f"arn:aws:s3vectors:{REGION}:{ACCOUNT}:bucket/{name}"}

    def _create_index(self, params: dict[str, Any]) -> dict[str, Any]:
        op = "CreateIndex"
        if "vectorBucketName" not in params:
            raise self._invalid(op, "vectorBucketName (or vectorBucketArn, not modelled) is required")
        bucket, name = params["vectorBucketName"], params["indexName"]
        if not INDEX_NAME.fullmatch(name):
            raise self._invalid(op, f"Invalid index name {name!r}: 3-63 lowercase letters, digits, hyphens and dots")
        if params["dataType"] != "float32":
            raise self._invalid(op, f"Invalid dataType {params['dataType']!r}: must be float32")
        if params["distanceMetric"] not in ("cosine", "euclidean"):
            raise self._invalid(op, f"Invalid distanceMetric {params['distanceMetric']!r}: cosine or euclidean")
        if not 1 <= params["dimension"] <= MAX_DIMENSION:
            raise self._invalid(op, f"dimension must be between 1 and {MAX_DIMENSION}")
        keys = list(params.get("metadataConfiguration", {}).get("nonFilterableMetadataKeys", []))
        if len(keys) > MAX_NON_FILTERABLE_KEYS:
            raise self._invalid(op, f"At most {MAX_NON_FILTERABLE_KEYS} non-filterable metadata keys are allowed")
        for key in keys:
            if not 1 <= len(key) <= MAX_METADATA_KEY_CHARS:
                raise self._invalid(op, f"Non-filterable metadata key {key!r}: 1-{MAX_METADATA_KEY_CHARS} characters")
        if bucket not in self._buckets:
            raise self._error(op, "NotFoundException", "The specified vector bucket could not be found")
        if name in self._buckets[bucket]:
            raise self._error(op, "ConflictException", "An index with the specified name already exists")
        idx = _Index(
            bucket, name, params["dimension"], params["distanceMetric"], frozenset(keys), dt.datetime.now(dt.UTC)
        )
        self._buckets[bucket][name] = idx
        return {"indexArn": idx.arn}

    def _get_index(self, params: dict[str, Any]) -> dict[str, Any]:
        idx = self._index("GetIndex", params)
        return {"index": {
            "vectorBucketName": idx.bucket, "indexName": idx.name, "indexArn": idx.arn, "creationTime": idx.created,
            "dataType": "float32", "dimension": idx.dimension, "distanceMetric": idx.metric,
            "metadataConfiguration": {"nonFilterableMetadataKeys": sorted(idx.non_filterable)},
        }}  # fmt: skip

    # -- writes -------------------------------------------------------------------------------

    def _admit(self, op: str, idx: _Index, n_vectors: int) -> float:
        """Raise 429 if one more write request of ``n_vectors`` would exceed the index's limits over
        the last second; else the time to charge it at (the caller charges the request, and its
        vectors only if they were written: a refused request moved no vectors)."""
        now = self.clock()
        # A request exactly one second old has left the window; the slack keeps float rounding of
        # a caller pacing at exactly the limit (t0 + 5 x 0.2) from reading as a burst.
        while idx.window and idx.window[0][0] <= now - 1.0 + WINDOW_SLACK_S:
            idx.window.popleft()
        requests = len(idx.window) + 1
        vectors = sum(n for _, n in idx.window) + n_vectors
        if requests > self.requests_per_second or vectors > self.vectors_per_second:
            self.stats.throttled += 1
            what = "requests" if requests > self.requests_per_second else "vectors"
            raise self._error(op, "TooManyRequestsException", f"Too many {what} per second for this index; slow down")
        return now

    def _vector_data(self, op: str, idx: _Index, data: Mapping[str, Any], where: str) -> np.ndarray:
        values = data.get("float32")
        if values is None:
            raise self._invalid(op, f"{where}: data must be given as float32")
        if len(values) != idx.dimension:
            raise self._invalid(op, f"{where}: Invalid vector dimension {len(values)}, the index's is {idx.dimension}")
        wide = np.asarray(values, dtype=np.float64)
        with np.errstate(over="ignore"):
            vec = wide.astype(np.float32)
        if not (np.isfinite(wide).all() and np.isfinite(vec).all()):
            raise self._invalid(op, f"{where}: vector data must contain only valid float32 values (no NaN or Infinity)")
        if idx.metric == "cosine" and not vec.any():
            raise self._invalid(op, f"{where}: zero vectors are not allowed for the cosine distance metric")
        return vec

    def _metadata(self, op: str, idx: _Index, meta: Any, where: str) -> dict[str, Any]:
        if meta is None:
            return {}
        if not isinstance(meta, dict):
            raise self._invalid(op, f"{where}: metadata must be a JSON object")
        if len(meta) > MAX_METADATA_KEYS:
            raise self._invalid(op, f"{where}: {len(meta)} metadata keys, at most {MAX_METADATA_KEYS} are allowed")
        for key, value in meta.items():
            items = value if isinstance(value, list) else [value]
            for item in items:
                ok = isinstance(item, (str, bool)) or (isinstance(item, (int, float)) and math.isfinite(item))
                if not ok:
                    raise self._invalid(op, f"{where}: metadata {key!r} has an unsupported value {item!r} "
                                            "(strings, numbers, booleans or lists of them)")  # fmt: skip
        total = _json_size(meta)
        if total > MAX_METADATA_BYTES:
            raise self._invalid(op, f"{where}: metadata is {total} bytes, at most {MAX_METADATA_BYTES} are allowed")
        filterable = _json_size({k: v for k, v in meta.items() if k not in idx.non_filterable})
        if filterable > MAX_FILTERABLE_BYTES:
            raise self._invalid(op, f"{where}: filterable metadata is {filterable} bytes, at most "
                                    f"{MAX_FILTERABLE_BYTES} are allowed")  # fmt: skip
        return json.loads(json.dumps(meta))  # a copy: later changes by the caller do not reach the index

    def _check_key(self, op: str, key: str, where: str) -> None:
        if not 1 <= len(key) <= MAX_KEY_CHARS:
            raise self._invalid(op, f"{where}: key length {len(key)}, must be 1 to {MAX_KEY_CHARS} characters")

    def _put_vectors(self, params: dict[str, Any]) -> dict[str, Any]:
        op = "PutVectors"
        idx = self._index(op, params)
        vectors = params["vectors"]
        now, moved = self._admit(op, idx, len(vectors)), 0
        try:
            moved = self._put_checked(op, idx, params)
        finally:
            idx.window.append((now, moved))
        return {}

    def _put_checked(self, op: str, idx: _Index, params: dict[str, Any]) -> int:
        vectors = params["vectors"]
        if len(vectors) > MAX_VECTORS_PER_WRITE:
            raise self._invalid(op, f"{len(vectors)} vectors, at most {MAX_VECTORS_PER_WRITE} per request")
        size = self._body_size(op, params)
        if size > MAX_REQUEST_BYTES:
            raise self._invalid(op, f"Request payload of {size} bytes exceeds the {MAX_REQUEST_BYTES}-byte limit")
        staged: dict[str, tuple[np.ndarray, dict[str, Any]]] = {}
        for i, vector in enumerate(vectors):
            where = f"vectors[{i}]"
            self._check_key(op, vector["key"], where)
            staged[vector["key"]] = (self._vector_data(op, idx, vector["data"], where),
                                     self._metadata(op, idx, vector.get("metadata"), where))  # fmt: skip
        idx.vectors.update(staged)
        self.stats.vectors_put += len(vectors)
        return len(vectors)

    def _body_size(self, op: str, params: dict[str, Any]) -> int:
        """Bytes of the request body as botocore would send it.

        botocore's rest-json serializer writes the body with plain ``json.dumps``, so that (in C) is
        the measure; only a request within 1% of the limit is re-measured with botocore's own
        serializer (slow in Python: ~0.3 s for 500 x 384 floats), the authority should they differ.
        """
        estimate = len(json.dumps(params, default=str).encode("utf-8"))
        if estimate < MAX_REQUEST_BYTES * 0.99:
            return estimate
        from botocore.serialize import create_serializer

        serializer = create_serializer(self._model.metadata["protocol"], include_validation=False)
        body = serializer.serialize_to_request(params, self._model.operation_model(op))["body"]
        return len(body)

    def _delete_vectors(self, params: dict[str, Any]) -> dict[str, Any]:
        op = "DeleteVectors"
        idx = self._index(op, params)
        keys = params["keys"]
        now, moved = self._admit(op, idx, len(keys)), 0
        try:
            if len(keys) > MAX_VECTORS_PER_WRITE:
                raise self._invalid(op, f"{len(keys)} keys, at most {MAX_VECTORS_PER_WRITE} per request")
            for i, key in enumerate(keys):
                self._check_key(op, key, f"keys[{i}]")
            moved = len(keys)
        finally:
            idx.window.append((now, moved))
        for key in keys:
            if idx.vectors.pop(key, None) is None:
                self.stats.unknown_deletes += 1
                self.stats.unknown_delete_keys.append(key)
            else:
                self.stats.vectors_deleted += 1
        return {}

    # -- reads --------------------------------------------------------------------------------

    @staticmethod
    def _out(key: str, vec: np.ndarray, meta: dict[str, Any], data: bool, metadata: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"key": key}
        if data:
            out["data"] = {"float32": vec.tolist()}
        if metadata:
            out["metadata"] = json.loads(json.dumps(meta))
        return out

    def _get_vectors(self, params: dict[str, Any]) -> dict[str, Any]:
        op = "GetVectors"
        idx = self._index(op, params)
        keys = params["keys"]
        if len(keys) > MAX_KEYS_PER_GET:
            raise self._invalid(op, f"{len(keys)} keys, at most {MAX_KEYS_PER_GET} per request")
        for i, key in enumerate(keys):
            self._check_key(op, key, f"keys[{i}]")
        data, metadata = params.get("returnData", False), params.get("returnMetadata", False)
        return {
            "vectors": [self._out(k, *idx.vectors[k], data, metadata) for k in dict.fromkeys(keys) if k in idx.vectors]
        }

    @staticmethod
    @functools.lru_cache(maxsize=1 << 16)
    def _order(key: str) -> str:
        """A stable listing position that is not key order (AWS promises no order)."""
        return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest() + key

    def _list_vectors(self, params: dict[str, Any]) -> dict[str, Any]:
        op = "ListVectors"
        idx = self._index(op, params)
        limit = params.get("maxResults", DEFAULT_LIST_RESULTS)
        if not 1 <= limit <= MAX_LIST_RESULTS:
            raise self._invalid(op, f"maxResults must be between 1 and {MAX_LIST_RESULTS}")
        count, segment = params.get("segmentCount"), params.get("segmentIndex")
        if (count is None) != (segment is None):
            raise self._invalid(op, "segmentCount and segmentIndex must be specified together")
        if count is not None and not 1 <= count <= MAX_SEGMENTS:
            raise self._invalid(op, f"segmentCount must be between 1 and {MAX_SEGMENTS}")
        if count is not None and not 0 <= segment < count:
            raise self._invalid(op, "segmentIndex must be at least 0 and less than segmentCount")
        count, segment = count or 1, segment or 0
        after = ""
        if "nextToken" in params:
            try:
                token = json.loads(base64.urlsafe_b64decode(params["nextToken"].encode()))
                after, token_segments = str(token["after"]), list(token["segments"])
            except (ValueError, KeyError, TypeError, binascii.Error) as exc:
                raise self._invalid(op, "Invalid nextToken") from exc
            if token_segments != [count, segment]:
                raise self._invalid(op, "The nextToken does not match the request's segmentCount/segmentIndex")
        page_size = min(limit, self.max_page)
        positions = sorted(
            (pos, key) for key in idx.vectors
            if int((pos := self._order(key))[:8], 16) % count == segment and pos[:64] > after
        )  # fmt: skip
        data, metadata = params.get("returnData", False), params.get("returnMetadata", False)
        page, listed, size = [], [], 0
        for pos, key in positions[:page_size]:
            item = self._out(key, *idx.vectors[key], data, metadata)
            page.append((pos, key))
            listed.append(item)
            size += _json_size(item)
            if size > MAX_LIST_PAGE_BYTES:  # a short page, with a nextToken, as AWS returns
                break
        out: dict[str, Any] = {"vectors": listed}
        if len(positions) > len(page):
            token = {"after": page[-1][0][:64], "segments": [count, segment]}  # the last key's hash
            out["nextToken"] = base64.urlsafe_b64encode(json.dumps(token).encode()).decode()
        return out

    def _query_vectors(self, params: dict[str, Any]) -> dict[str, Any]:
        op = "QueryVectors"
        idx = self._index(op, params)
        top_k = params["topK"]
        if not 1 <= top_k <= MAX_TOP_K:
            raise self._invalid(op, f"topK must be between 1 and {MAX_TOP_K}")
        for unsupported in ("queryTexts", "queryMode", "returnScores", "nextToken"):
            if unsupported in params:
                raise NotImplementedError(f"FaithfulS3Vectors does not model QueryVectors' {unsupported}")
        if "queryVector" not in params:
            raise self._invalid(op, "queryVector is required")
        query = self._vector_data(op, idx, params["queryVector"], "queryVector").astype(np.float64)
        flt = params.get("filter")
        if flt is not None:
            self._check_filter(op, flt)
        hits = []
        for key, (vec, meta) in idx.vectors.items():
            if flt is not None and not self._matches(
                flt, {k: v for k, v in meta.items() if k not in idx.non_filterable}
            ):
                continue
            hits.append((self._distance(idx.metric, query, vec.astype(np.float64)), key))
        hits.sort()
        metadata, distance = params.get("returnMetadata", False), params.get("returnDistance", False)
        found = []
        for dist, key in hits[:top_k]:
            item: dict[str, Any] = {"key": key}
            if distance:
                item["distance"] = float(np.float32(dist))
            if metadata:
                item["metadata"] = json.loads(json.dumps(idx.vectors[key][1]))
            found.append(item)
        return {"vectors": found, "distanceMetric": idx.metric}

    @staticmethod
    def _distance(metric: str, a: np.ndarray, b: np.ndarray) -> float:
        if metric == "cosine":
            return float(1.0 - a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
        return float(np.linalg.norm(a - b))

    # -- filters (User Guide, "Metadata filtering") -------------------------------------------

    def _check_filter(self, op: str, node: Any) -> None:
        def primitive(value: Any) -> bool:
            return isinstance(value, (str, bool)) or (isinstance(value, (int, float)) and math.isfinite(value))

        if not isinstance(node, dict) or not node:
            raise self._invalid(op, f"Invalid filter: expected a non-empty object, got {node!r}")
        for key, value in node.items():
            if key in ("$and", "$or"):
                if not isinstance(value, list) or not value:
                    raise self._invalid(op, f"Invalid filter: {key} takes a non-empty array of filters")
                for sub in value:
                    self._check_filter(op, sub)
            elif key.startswith("$"):
                raise self._invalid(op, f"Invalid filter: unknown operator {key}")
            elif isinstance(value, dict):
                if not value:
                    raise self._invalid(op, f"Invalid filter: empty condition for {key!r}")
                for oper, arg in value.items():
                    if oper not in FILTER_OPERATORS:
                        raise self._invalid(op, f"Invalid filter: unknown operator {oper} for {key!r}")
                    if oper in ("$in", "$nin"):
                        ok = isinstance(arg, list) and bool(arg) and all(primitive(a) for a in arg)
                    elif oper == "$exists":
                        ok = isinstance(arg, bool)
                    elif oper in ("$eq", "$ne"):
                        ok = primitive(arg)
                    else:
                        ok = primitive(arg) and not isinstance(arg, (str, bool))
                    if not ok:
                        raise self._invalid(op, f"Invalid filter: bad operand {arg!r} for {oper} on {key!r}")
            elif not primitive(value):
                raise self._invalid(op, f"Invalid filter: bad value {value!r} for {key!r}")

    def _matches(self, node: dict[str, Any], meta: dict[str, Any]) -> bool:
        for key, cond in node.items():
            if key == "$and":
                ok = all(self._matches(sub, meta) for sub in cond)
            elif key == "$or":
                ok = any(self._matches(sub, meta) for sub in cond)
            else:
                conds = cond if isinstance(cond, dict) else {"$eq": cond}
                ok = all(self._condition(oper, arg, key in meta, meta.get(key)) for oper, arg in conds.items())
            if not ok:
                return False
        return True

    @staticmethod
    def _condition(oper: str, arg: Any, present: bool, value: Any) -> bool:
        """One operator on one field; a list value matches when any element does (``$eq``/``$in``)."""
        values: Iterable[Any] = value if isinstance(value, list) else [value]

        def same(a: Any, b: Any) -> bool:
            return type(a) is type(b) or (isinstance(a, (int, float)) and isinstance(b, (int, float))
                                          and not isinstance(a, bool) and not isinstance(b, bool))  # fmt: skip

        def eq(x: Any) -> bool:
            return any(same(v, x) and v == x for v in values)

        if oper == "$exists":
            return present is arg
        if oper == "$ne":
            return not (present and eq(arg))
        if oper == "$nin":
            return not (present and any(eq(a) for a in arg))
        if not present:
            return False
        if oper == "$eq":
            return eq(arg)
        if oper == "$in":
            return any(eq(a) for a in arg)
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        compare = {
            "$gt": lambda v: v > arg,
            "$gte": lambda v: v >= arg,
            "$lt": lambda v: v < arg,
            "$lte": lambda v: v <= arg,
        }
        return any(compare[oper](v) for v in numbers)


def install(monkeypatch: Any, double: FaithfulS3Vectors) -> FaithfulS3Vectors:
    """Make the project's ``s3vectors_client()`` return ``double``, wherever it was imported by name.

    Every already-imported module whose global is ``bert2vec.bulk.vectors.s3vectors_client``
    (the function itself, or an earlier stand-in) is patched, through ``monkeypatch`` so the test
    undoes it: ``bulk/vectors.py`` itself, so a module imported later picks up the stand-in, and
    ``bulk/s3_engine.py`` / ``bulk_app.py``, which do ``from ... import s3vectors_client``. Nothing
    new is imported (``bulk_app`` needs Powertools). ``/search`` builds its own client with
    ``bert2vec.http.search.search_client``; patch that separately if a test needs it.
    """
    import sys
    import types

    from bert2vec.bulk import vectors

    def s3vectors_client(*_args: Any, **_kwargs: Any) -> FaithfulS3Vectors:
        return double

    s3vectors_client.is_s3vectors_double = True  # type: ignore[attr-defined]

    def is_client_factory(value: Any) -> bool:
        # Only plain functions are looked at: getattr on arbitrary module globals can have effects
        # (ctypes' library loaders open a library named after the attribute, pytest.mark makes marks).
        if not isinstance(value, types.FunctionType):
            return False
        return value.__dict__.get("is_s3vectors_double", False) or (
            value.__module__ == vectors.__name__ and value.__name__ == "s3vectors_client"
        )

    for module in list(sys.modules.values()):
        try:
            names = [name for name, value in vars(module).items() if is_client_factory(value)]
        except TypeError:  # not a real module (some packages put proxies in sys.modules)
            continue
        for name in names:
            monkeypatch.setattr(module, name, s3vectors_client)
    return double
