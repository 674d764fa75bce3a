"""One error hierarchy for the serving side; adapters map it to HTTP status only at the edge."""

from __future__ import annotations


class Bert2VecError(Exception):
    """Base: an error the caller caused or can fix (never a bug)."""

    status = 400
    error_type = "bad_request"


class ModelNotFoundError(Bert2VecError):
    """No exported model where one was expected."""

    status = 500
    error_type = "model_not_found"


class InvalidInputError(Bert2VecError):
    """Input of the wrong type or shape (e.g. a non-string text)."""

    status = 422
    error_type = "validation"
