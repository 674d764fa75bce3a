"""The one factory for AWS clients: retries, timeouts and endpoint decided here.

Two profiles, because the callers wait differently. The bulk path (S3, SQS, S3 Vectors behind an
event or a queue) can wait: botocore's standard retry mode, ten attempts with jittered back-off,
absorbs throttling (``SlowDown``, ``TooManyRequestsException``) before a failure reaches the
invocation. A caller waiting on an HTTP answer (``/search``) cannot: a couple of attempts with
short timeouts, then an answer it can retry itself.

boto3 is imported when a client is made, never at import: the encode function's init does not
load it unless ``/search`` is used.
"""

from __future__ import annotations

from typing import Any

PATIENT_ATTEMPTS = 10  # the bulk path's budget: every call retried with back-off before it fails


def client(
    service: str, *, endpoint_url: str | None = None, max_attempts: int | None = None,
    total_max_attempts: int | None = None, connect_timeout: float | None = None, read_timeout: float | None = None,
    **kwargs: Any,
) -> Any:  # fmt: skip
    """A boto3 client for ``service`` in standard retry mode.

    ``max_attempts`` (botocore's retries after the first call) defaults to :data:`PATIENT_ATTEMPTS`;
    ``total_max_attempts`` counts the first call too, for callers that bound the whole wait.
    Timeouts left out keep botocore's defaults; ``kwargs`` go to ``boto3.client`` (region, keys)."""
    import boto3
    from botocore.config import Config

    retries: dict[str, Any] = {"mode": "standard"}
    if total_max_attempts is not None:
        retries["total_max_attempts"] = total_max_attempts
    else:
        retries["max_attempts"] = PATIENT_ATTEMPTS if max_attempts is None else max_attempts
    timeouts = {name: value for name, value in (("connect_timeout", connect_timeout), ("read_timeout", read_timeout))
                if value is not None}  # fmt: skip
    return boto3.client(service, endpoint_url=endpoint_url, config=Config(retries=retries, **timeouts), **kwargs)


def s3_client() -> Any:
    """S3 for the bulk path: throttling (``SlowDown``/503) retried with back-off."""
    return client("s3")


def sqs_client() -> Any:
    """SQS for the bulk path's shard queue."""
    return client("sqs")


def s3vectors_client() -> Any:
    """S3 Vectors for the bulk path: the index's write-rate throttling retried with back-off."""
    return client("s3vectors")
