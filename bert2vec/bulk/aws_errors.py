"""The one place that decides whether an AWS failure is worth another try.

Every caller on the bulk path (the worker, the planner, the Batch Operations answer) asks
:func:`is_transient` instead of keeping its own list of codes, so throttling from S3 Vectors
(``TooManyRequestsException``, ``ServiceUnavailableException``) is retried exactly like S3's
``SlowDown``: botocore's standard retry mode tries first, and whatever still fails transiently
fails the invocation (SQS / Lambda retry it) or answers ``TemporaryFailure`` (Batch Operations
retries it). Only what cannot succeed on a retry is permanent.
"""

from __future__ import annotations

from typing import Any

# Codes that mean "not now" rather than "never", across S3, SQS, S3 Vectors and STS.
TRANSIENT_CODES = frozenset({
    "SlowDown", "InternalError", "ServiceUnavailable", "ServiceUnavailableException", "Throttling",
    "ThrottlingException", "ThrottledException", "TooManyRequestsException", "RequestLimitExceeded",
    "RequestThrottled", "RequestThrottledException", "RequestTimeout", "RequestTimeoutException",
    "RequestTimeTooSkewed", "PriorRequestNotComplete", "InternalServerException", "InternalFailure",
    "EC2ThrottledException", "KMSThrottlingException", "OperationAborted", "ConditionalRequestConflict",
    "500", "502", "503", "504",
})  # fmt: skip
NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchVersion"})
DENIED_CODES = frozenset({"403", "AccessDenied"})
# 412 only: a conditional write that lost. S3's 409 ConditionalRequestConflict means a conflicting
# operation ran meanwhile and nothing was stored ("retry the request"): transient, not a lost race.
CONFLICT_CODES = frozenset({"PreconditionFailed", "412"})


def error_code(exc: BaseException) -> str:
    """The service's error code of a botocore ``ClientError`` (``""`` for anything else)."""
    response = getattr(exc, "response", None)  # some botocore errors carry ``response = None``
    return str((response if isinstance(response, dict) else {}).get("Error", {}).get("Code", ""))


def http_status(exc: BaseException) -> int:
    response = getattr(exc, "response", None)
    meta: dict[str, Any] = (response if isinstance(response, dict) else {}).get("ResponseMetadata", {})
    return int(meta.get("HTTPStatusCode") or 0)


def is_transient(exc: BaseException) -> bool:
    """Throttling, 5xx and broken connections: another try may succeed."""
    from botocore.exceptions import ClientError, ConnectionError, HTTPClientError, ReadTimeoutError

    if isinstance(exc, (ConnectionError, HTTPClientError, ReadTimeoutError, TimeoutError, ConnectionResetError)):
        return True
    if isinstance(exc, ClientError):
        status = http_status(exc)
        return error_code(exc) in TRANSIENT_CODES or status == 429 or status >= 500
    return False


def is_not_found(exc: BaseException) -> bool:
    return error_code(exc) in NOT_FOUND_CODES


def is_denied(exc: BaseException) -> bool:
    return error_code(exc) in DENIED_CODES


def is_conflict(exc: BaseException) -> bool:
    """A conditional request lost (``If-Match`` / ``If-None-Match``): someone else wrote first."""
    return error_code(exc) in CONFLICT_CODES
