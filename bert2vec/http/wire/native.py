"""Our own shape: ``POST /encode`` and direct invokes.

``{"text": str}`` or ``{"texts": [str]}`` (+ ``normalize``, ``truncate``, ``long_text``, ``stride``) →
``{"vectors", "dimension", "model", "token_counts", "truncated"}`` (+ ``chunks`` with
``"long_text": "chunk"``).

``long_text`` (``truncate`` | ``reject`` | ``chunk``) says what happens to a text over the model's
``max_seq_length``; the older ``truncate`` flag is the same choice between the first two
(``true`` = ``truncate``, ``false`` = ``reject``), so the two must not contradict each other.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from bert2vec.core.errors import InvalidInputError
from bert2vec.core.long_text import LongTextChoice
from bert2vec.http.service import Encoded, EncodeRequest
from bert2vec.http.wire import bool_field, echo, require_object, texts_field, whole_number

#: How a request that chose by the ``truncate`` flag asks for truncation: its messages say so.
TRUNCATE_FLAG = '"truncate": true'


def long_text_choice(body: dict[str, Any], truncate_default: bool, *, read_truncate: bool = True) -> LongTextChoice:
    """``long_text`` and ``stride`` as the request's one :class:`LongTextChoice`, the ``truncate`` flag folded in.

    ``long_text`` wins when given (``truncate`` must then agree with it); otherwise ``truncate``
    (or, absent, the wire format's ``truncate_default``) chooses truncate or reject. ``read_truncate``
    false: the format has no such flag (OpenAI), so without ``long_text`` the default applies as is.
    The mode is checked by the choice itself, first, as the fields are read."""
    mode = body.get("long_text")
    asked = None if mode is None else LongTextChoice(mode)
    stride = body.get("stride")
    if stride is not None:
        if whole_number(stride) is None:
            raise InvalidInputError(
                f"'stride' must be a whole number of wordpieces, got {echo(stride)}", param="stride"
            )
        stride = whole_number(stride)
    truncate = body.get("truncate")
    if asked is not None and isinstance(truncate, bool) and truncate != (asked.mode == "truncate"):
        raise InvalidInputError(
            f"'truncate': {str(truncate).lower()} contradicts 'long_text': {asked.mode!r}; send only 'long_text'",
            param="truncate",
        )
    flag = bool(bool_field(body, "truncate", truncate_default)) if read_truncate else truncate_default
    if asked is None:
        return LongTextChoice("truncate" if flag else "reject", stride, TRUNCATE_FLAG if read_truncate else None)
    return replace(asked, stride=stride)


def parse(body: Any) -> EncodeRequest:
    body = require_object(body)
    if ("text" in body) == ("texts" in body):
        raise InvalidInputError("give exactly one of 'text' (a string) or 'texts' (a list of strings)")
    field = "text" if "text" in body else "texts"
    if field == "text" and not isinstance(body["text"], str):
        raise InvalidInputError(f"'text' must be a string, got {type(body['text']).__name__}")
    return EncodeRequest(
        texts_field(body[field], field, allow_string=field == "text"),
        bool_field(body, "normalize", None),
        field,
        single=field == "text",
        long_text=long_text_choice(body, truncate_default=True),
    )


def render(enc: Encoded, model: str) -> dict[str, Any]:
    out = {
        "vectors": enc.vectors.tolist(),
        "dimension": int(enc.vectors.shape[1]),
        "model": model,
        "token_counts": enc.result.token_counts.tolist(),
        "truncated": enc.result.truncated.tolist(),
    }
    if enc.chunks is not None:
        out["chunks"] = enc.chunks.tolist()
    return out
