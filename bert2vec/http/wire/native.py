"""Our own shape: ``POST /encode`` and direct invokes.

``{"text": str}`` or ``{"texts": [str]}`` (+ ``normalize``, ``truncate``, ``long_text``, ``stride``) →
``{"vectors", "dimension", "model", "token_counts", "truncated"}`` (+ ``chunks`` with
``"long_text": "chunk"``).

``long_text`` (``truncate`` | ``reject`` | ``chunk``) says what happens to a text over the model's
``max_seq_length``; the older ``truncate`` flag is the same choice between the first two
(``true`` = ``truncate``, ``false`` = ``reject``), so the two must not contradict each other.
"""

from __future__ import annotations

from typing import Any

from bert2vec.core.errors import InvalidInputError
from bert2vec.core.long_text import MODES
from bert2vec.http.service import Encoded, EncodeRequest
from bert2vec.http.wire import bool_field, echo, require_object, texts_field, whole_number


def long_text_fields(body: dict[str, Any], truncate_default: bool, *, read_truncate: bool = True) -> dict[str, Any]:
    """``long_text`` and ``stride`` as :class:`EncodeRequest` fields, the ``truncate`` flag folded into the mode.

    ``long_text`` wins when given (``truncate`` must then agree with it); otherwise ``truncate``
    (or, absent, the wire format's ``truncate_default``) chooses truncate or reject. ``read_truncate``
    false: the format has no such flag (OpenAI), so without ``long_text`` the default applies as is."""
    mode = body.get("long_text")
    if mode is not None and mode not in MODES:
        raise InvalidInputError(f"'long_text' must be one of {', '.join(MODES)}, got {echo(mode)}", param="long_text")
    stride = body.get("stride")
    if stride is not None:
        if whole_number(stride) is None:
            raise InvalidInputError(
                f"'stride' must be a whole number of wordpieces, got {echo(stride)}", param="stride"
            )
        stride = whole_number(stride)
    truncate = body.get("truncate")
    if mode is not None and isinstance(truncate, bool) and truncate != (mode == "truncate"):
        raise InvalidInputError(
            f"'truncate': {str(truncate).lower()} contradicts 'long_text': {mode!r}; send only 'long_text'",
            param="truncate",
        )
    flag = bool(bool_field(body, "truncate", truncate_default)) if read_truncate else truncate_default
    if mode is None:
        return {"long_text": "truncate" if flag else "reject", "stride": stride, "from_truncate_flag": read_truncate}
    return {"long_text": mode, "stride": stride}


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
        **long_text_fields(body, truncate_default=True),
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
