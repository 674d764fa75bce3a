"""One error hierarchy for the serving side.

Each class names *what* went wrong (``error_type``, the stable string clients match on); *how* it
is answered (the HTTP status) is decided by one function at the edge, ``bert2vec.http.statuses.status_for``
(its table has a row for every class here), so the core and the bulk path never think in HTTP terms.
"""

from __future__ import annotations

from typing import Any

ECHO_CHARS = 100  # how much of a client's value an error message (and so the log) repeats


def echo(value: Any, limit: int = ECHO_CHARS) -> str:
    """``repr`` of a client's value for an error message, cut to about ``limit`` characters.

    A 4 MB ``encoding_format`` must not come back as a 4 MB body or log line.
    """
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}... ({len(value)} characters)"
    if isinstance(value, (list, dict)) and len(value) > 8:
        return f"a {type(value).__name__} of {len(value)} items"
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


class Bert2VecError(Exception):
    """Base: an error the caller caused or can fix (never a bug).

    ``param``: the request field at fault, when there is one (OpenAI's error object reports it).
    """

    error_type = "bad_request"

    def __init__(self, message: str = "", *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class ModelNotFoundError(Bert2VecError):
    """No exported model where one was expected."""

    error_type = "model_not_found"


class ModelNotLoadedError(Bert2VecError):
    """A request reached the routes before init finished (only if init failed)."""

    error_type = "model_not_loaded"


class InvalidInputError(Bert2VecError):
    """Input of the wrong type or shape (e.g. a non-string text)."""

    error_type = "validation"


class MalformedJSONError(Bert2VecError):
    """The body is missing, not decodable, or not JSON."""

    error_type = "malformed_json"


class EmptyInputError(Bert2VecError):
    """No text, or a text with nothing to encode."""

    error_type = "empty_input"


class TooManyTextsError(Bert2VecError):
    error_type = "too_many_texts"


class RequestTooLargeError(Bert2VecError):
    """More characters or wordpieces in one request than ``MAX_REQUEST_CHARS`` / ``MAX_REQUEST_TOKENS``."""

    error_type = "request_too_large"


class TextTooLargeError(Bert2VecError):
    """A text over ``MAX_TEXT_CHARS`` when the caller asked not to truncate."""

    error_type = "text_too_large"


class TextTooLongForModelError(Bert2VecError):
    """More wordpieces than the model's ``max_seq_length`` when the caller asked not to truncate."""

    error_type = "text_too_long"


class PayloadTooLargeError(Bert2VecError):
    """The response would not fit Lambda's synchronous payload limit."""

    error_type = "response_too_large"


class UnsupportedOptionError(Bert2VecError):
    """An option the exported model cannot honour (e.g. raw vectors from a normalising export)."""

    error_type = "unsupported_option"


class RouteNotFoundError(Bert2VecError):
    error_type = "not_found"


class MethodNotAllowedError(Bert2VecError):
    error_type = "method_not_allowed"


class SearchNotConfiguredError(Bert2VecError):
    """``POST /search`` on a function with no vector index configured."""

    error_type = "not_configured"


class SearchUnavailableError(Bert2VecError):
    """``POST /search``: the configured index cannot answer (missing, no access, timed out)."""

    error_type = "search_unavailable"


class SearchModelMismatchError(Bert2VecError):
    """``POST /search``: the index holds vectors another model wrote; ranking them against this
    model's query vector would be meaningless, so nothing is answered."""

    error_type = "index_model_mismatch"


class SearchThrottledError(Bert2VecError):
    """``POST /search``: S3 Vectors is throttling; ``retry_after`` seconds is a fair wait."""

    error_type = "search_throttled"

    def __init__(self, message: str = "", *, retry_after: int = 1, param: str | None = None) -> None:
        super().__init__(message, param=param)
        self.retry_after = retry_after
