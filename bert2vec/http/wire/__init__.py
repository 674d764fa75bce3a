"""Wire formats: one module per shape users already speak, each holding its parsing and rendering.

``native`` is our ``/encode`` (and direct invokes), ``openai_api`` is OpenAI's ``/v1/embeddings``
and ``tei`` is Hugging Face text-embeddings-inference's ``/embed`` (also ``POST /``, ``GET /info``,
``POST /tokenize``). Each turns a JSON body into the format-neutral
:class:`bert2vec.http.service.EncodeRequest` and an :class:`bert2vec.http.service.Encoded` back into its own
response body. The helpers here are the validation they share, so a bad field gets the same
wording whichever door it came through.
"""

from __future__ import annotations

from typing import Any

from bert2vec.core.errors import ECHO_CHARS, Bert2VecError, InvalidInputError, MalformedJSONError, echo

__all__ = ["ECHO_CHARS", "echo"]  # their home is core.errors: the long-text policy words its errors alike
MESSAGE_CHARS = 1_000  # backstop for a whole error message


def clip(text: str, limit: int = ECHO_CHARS) -> str:
    """A client's text (a path, a method) cut to ``limit`` characters for a message."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidInputError(f"request body must be a JSON object, got {type(body).__name__}")
    return body


def bool_field(body: dict[str, Any], key: str, default: bool | None) -> bool | None:
    value = body.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise InvalidInputError(f"'{key}' must be true or false, got {type(value).__name__}", param=key)
    return value


def whole_number(value: Any) -> int | None:
    """``value`` as an integer if it is one — ``384`` or ``384.0`` (JSON has one number type, and
    some clients serialise whole numbers with a fraction) — else None. Booleans are not numbers.
    The one rule every route applies to integer fields (``dimensions``, ``stride``, ``top_k``)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def check_unicode(text: str, name: str, param: str) -> None:
    """A lone UTF-16 surrogate (JSON ``"\\ud800"`` without its pair) is not a character: no UTF-8
    exists for it, so the model could not read it. 400, like any other undecodable body."""
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise MalformedJSONError(
            f"{name} is not valid Unicode: a lone surrogate {text[exc.start]!r} at character {exc.start} "
            "(JSON \\ud800-\\udfff escapes must come in high-low pairs)",
            param=param,
        ) from None


def texts_field(value: Any, field: str, *, allow_string: bool = True) -> list[str]:
    """A string or a list of strings, as a list; anything else is a 422 naming the field.

    ``allow_string=False`` for fields documented as lists only (``/encode``'s ``texts``, whose
    single-string form is the separate ``text``): a string there is a mistake, not one text."""
    single = isinstance(value, str) and allow_string
    items = [value] if single else value
    if not isinstance(items, list):
        kind = "a string or a list of strings" if allow_string else "a list of strings"
        raise InvalidInputError(f"'{field}' must be {kind}, got {type(value).__name__}", param=field)
    for i, t in enumerate(items):
        name = f"'{field}'" if single else f"'{field}[{i}]'"
        if not isinstance(t, str):
            raise InvalidInputError(f"{name} must be a string, got {type(t).__name__}", param=field)
        check_unicode(t, name, field)
    return items


def error_message(exc: Bert2VecError | None, message: str = "") -> str:
    text = message or str(exc)
    return text if len(text) <= MESSAGE_CHARS else text[:MESSAGE_CHARS] + "..."


def error_body(exc: Bert2VecError | None = None, *, message: str = "", error_type: str = "", **extra: Any) -> dict:
    """``{"error", "error_type"}``: our routes' and TEI's error shape."""
    body = {"error": error_message(exc, message), "error_type": error_type or (exc.error_type if exc else "error")}
    body.update(extra)
    return body
