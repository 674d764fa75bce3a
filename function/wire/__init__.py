"""Wire formats: one module per shape users already speak, each holding its parsing and rendering.

``native`` is our ``/encode`` (and direct invokes), ``openai_api`` is OpenAI's ``/v1/embeddings``
and ``tei`` is Hugging Face text-embeddings-inference's ``/embed``. Each turns a JSON body into the
format-neutral :class:`function.service.EncodeRequest` and an :class:`function.service.Encoded`
back into its own response body. The helpers here are the validation they share, so a bad field
gets the same wording whichever door it came through.
"""

from __future__ import annotations

from typing import Any

from function.errors import Bert2VecError, InvalidInputError


def require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidInputError(f"request body must be a JSON object, got {type(body).__name__}")
    return body


def bool_field(body: dict[str, Any], key: str, default: bool | None) -> bool | None:
    value = body.get(key, default)
    if value is not None and not isinstance(value, bool):
        raise InvalidInputError(f"'{key}' must be true or false, got {type(value).__name__}")
    return value


def texts_field(value: Any, field: str) -> list[str]:
    """A string or a list of strings, as a list; anything else is a 422 naming the field."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise InvalidInputError(f"'{field}' must be a string or a list of strings, got {type(value).__name__}")
    for i, t in enumerate(items):
        if not isinstance(t, str):
            raise InvalidInputError(f"'{field}[{i}]' must be a string, got {type(t).__name__}")
    return items


def error_body(exc: Bert2VecError | None = None, *, message: str = "", error_type: str = "", **extra: Any) -> dict:
    """``{"error", "error_type"}``: our routes' and TEI's error shape."""
    body = {"error": message or str(exc), "error_type": error_type or (exc.error_type if exc else "error")}
    body.update(extra)
    return body
