"""The ``/search`` metadata filter, checked against S3 Vectors' documented filter language before
the call, so a mistake is a 422 naming the place in the filter rather than a round trip to AWS
(or an "internal error").

S3 Vectors (Amazon S3 User Guide, "Metadata filtering"): a filter is an object whose keys are
metadata fields (several = all must match) or ``$and`` / ``$or`` (non-empty arrays of filters).
A field's condition is a value (``$eq``) or an object of operators: ``$eq`` / ``$ne`` (string,
number, boolean), ``$gt`` / ``$gte`` / ``$lt`` / ``$lte`` (number), ``$in`` / ``$nin`` (a
non-empty array of those primitives), ``$exists`` (boolean). Depth and size are bounded here: the
index's filterable metadata is at most 2 KB per vector, so a sensible filter is small.
"""

from __future__ import annotations

import json
import math
from typing import Any

from bert2vec.core.errors import InvalidInputError
from bert2vec.http.wire import echo

MAX_DEPTH = 10  # nested $and/$or levels
MAX_BYTES = 16 * 1024  # the filter as compact JSON
MAX_CONDITIONS = 256  # field conditions and array items, all levels together

EQUALITY = ("$eq", "$ne")
RANGE = ("$gt", "$gte", "$lt", "$lte")
MEMBERSHIP = ("$in", "$nin")
LOGICAL = ("$and", "$or")
OPERATORS = EQUALITY + RANGE + MEMBERSHIP + ("$exists",)


class _Check:
    def __init__(self) -> None:
        self.conditions = 0

    def fail(self, where: str, problem: str) -> InvalidInputError:
        return InvalidInputError(f"'filter' at {where or 'the top level'}: {problem}", param="filter")

    def count(self, where: str) -> None:
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise self.fail(where, f"more than {MAX_CONDITIONS} conditions; narrow the filter")

    def primitive(self, value: Any, where: str, numbers_only: bool = False) -> None:
        if isinstance(value, bool) and not numbers_only:
            return
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if isinstance(value, float) and not math.isfinite(value):
                raise self.fail(where, f"{value!r} is not a finite number")
            return
        if isinstance(value, str) and not numbers_only:
            return
        kind = "a number" if numbers_only else "a string, number or boolean"
        raise self.fail(where, f"expected {kind}, got {echo(value)}")

    def filter(self, node: Any, where: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise self.fail(where, f"nested deeper than {MAX_DEPTH} levels of $and/$or")
        if not isinstance(node, dict) or not node:
            raise self.fail(where, f"expected a non-empty object of conditions, got {echo(node)}")
        for key, value in node.items():
            here = f"{where}.{key}" if where else key
            if key in LOGICAL:
                if not isinstance(value, list) or not value:
                    raise self.fail(here, f"{key} takes a non-empty array of filters, got {echo(value)}")
                for i, item in enumerate(value):
                    self.filter(item, f"{here}[{i}]", depth + 1)
            elif key.startswith("$"):
                raise self.fail(here, f"unknown operator {echo(key)}; S3 Vectors has {', '.join(LOGICAL + OPERATORS)}")
            elif not key:
                raise self.fail(where, "a metadata field name is empty")
            else:
                self.condition(value, here)

    def condition(self, value: Any, where: str) -> None:
        self.count(where)
        if not isinstance(value, dict):
            self.primitive(value, where)  # {"field": value} means $eq
            return
        if not value:
            raise self.fail(where, "an empty object; give an operator such as {\"$eq\": ...}")
        for op, arg in value.items():
            here = f"{where}.{op}"
            if op in EQUALITY:
                self.primitive(arg, here)
            elif op in RANGE:
                self.primitive(arg, here, numbers_only=True)
            elif op in MEMBERSHIP:
                if not isinstance(arg, list) or not arg:
                    raise self.fail(here, f"{op} takes a non-empty array of values, got {echo(arg)}")
                for i, item in enumerate(arg):
                    self.count(here)
                    self.primitive(item, f"{here}[{i}]")
            elif op == "$exists":
                if not isinstance(arg, bool):
                    raise self.fail(here, f"$exists takes true or false, got {echo(arg)}")
            else:
                raise self.fail(here, f"unknown operator {echo(op)} for a field; use {', '.join(OPERATORS)}")


def check_filter(value: Any) -> dict[str, Any]:
    """``value`` if it is a filter S3 Vectors documents; else a 422 naming where and why."""
    if not isinstance(value, dict):
        raise InvalidInputError(
            f"'filter' must be an object (S3 Vectors metadata filter), got {type(value).__name__}", param="filter"
        )
    _Check().filter(value, "", 1)  # structure first: the size check below must not recurse unbounded
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    if size > MAX_BYTES:
        raise InvalidInputError(f"'filter' is {size} bytes as JSON; at most {MAX_BYTES}", param="filter")
    return value
