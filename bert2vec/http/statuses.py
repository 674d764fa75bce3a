"""How the HTTP edge answers a failure: the one mapping from the error hierarchy to a status, and
the error body in the shape a route declares.

``bert2vec.core.errors`` names *what* went wrong (each class's ``error_type``); the status is decided
here only, by :func:`status_for`, for every request path (HTTP routes, unknown routes, the direct
invoke, an unexpected exception), so the core and the bulk path never think in HTTP terms.
"""

from __future__ import annotations

from typing import Any

from bert2vec.core import errors
from bert2vec.core.errors import Bert2VecError
from bert2vec.http.route_table import ErrorShape
from bert2vec.http.wire import error_body, openai_api

# Every ``Bert2VecError`` class has its row, keyed by the class itself (a fast test checks), so a
# new error cannot silently fall back to some default; one made elsewhere answers as its parent.
HTTP_STATUS: dict[type[Bert2VecError], int] = {
    errors.Bert2VecError: 400,
    errors.MalformedJSONError: 400,
    errors.EmptyInputError: 400,
    errors.RouteNotFoundError: 404,
    errors.SearchNotConfiguredError: 404,
    errors.MethodNotAllowedError: 405,
    errors.SearchModelMismatchError: 409,
    errors.TooManyTextsError: 413,
    errors.RequestTooLargeError: 413,
    errors.TextTooLargeError: 413,
    errors.PayloadTooLargeError: 413,
    errors.InvalidInputError: 422,
    errors.TextTooLongForModelError: 422,
    errors.UnsupportedOptionError: 422,
    errors.SearchThrottledError: 429,
    errors.ModelNotFoundError: 500,
    errors.ModelNotLoadedError: 503,
    errors.SearchUnavailableError: 503,
}
#: Anything outside the hierarchy is a bug: 500 with the request id, never a traceback.
INTERNAL_ERROR = 500


def status_for(exc: BaseException, shape: ErrorShape = ErrorShape.NATIVE) -> int:
    """The status of ``exc``: its class's row (the nearest class in its hierarchy that has one), or
    500 for an exception that is not ours. An OpenAI-shaped route answers a 422 as 400, as OpenAI
    answers invalid requests (the openai client raises ``BadRequestError`` for it; ``error.code``
    keeps our detail)."""
    if not isinstance(exc, Bert2VecError):
        return INTERNAL_ERROR
    status = next(HTTP_STATUS[cls] for cls in type(exc).__mro__ if cls in HTTP_STATUS)
    return 400 if status == 422 and shape is ErrorShape.OPENAI else status


def error_headers(exc: Bert2VecError) -> dict[str, str] | None:
    """``Retry-After`` on a throttled answer, so clients back off by the server's word."""
    retry_after = getattr(exc, "retry_after", None)
    return {"Retry-After": str(retry_after)} if retry_after is not None else None


def error_body_for(shape: ErrorShape, status: int, exc: Bert2VecError | None, **kw: Any) -> dict[str, Any]:
    """The error body in ``shape``: OpenAI's error object, or ``{"error", "error_type"}`` (native, TEI)."""
    if shape is ErrorShape.OPENAI:
        return openai_api.error_body(exc, status, message=kw.pop("message", ""), error_type=kw.pop("error_type", ""))
    return error_body(exc, **kw)
