"""What running a handler in-process needs, like ``sam local invoke -e`` (no Docker, no AWS):
a LambdaContext stand-in and awslambdaric's ``module.function`` handler lookup.

Used by ``bert-encode --event`` (which ``make run`` calls), the S3 demo and the tests.
"""

from __future__ import annotations

import importlib
import time
import uuid


class LocalContext:
    """A LambdaContext stand-in with the attributes handlers and Powertools read."""

    def __init__(self, function_name: str = "bert2vec-local", timeout_s: float = 30.0, memory_mb: int = 2048) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:local:000000000000:function:{function_name}"
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


# The image's entry-point modules (function/*.py) and where their handlers live in the package.
ENTRY_POINTS = {"function.app": "bert2vec.http.app", "function.bulk_app": "bert2vec.bulk.app"}


def load_handler(spec: str):
    """``module.function`` → the callable, as awslambdaric resolves ``CMD``.

    The image's handler names (``function.app.handler``, as in template.yaml) name the thin entry
    points of the repository's ``function/``; a pip install has no such top-level package, only
    the code itself (``bert2vec.http.app``, ``bert2vec.bulk.app``), so there the same names resolve
    to that.
    """
    module_name, _, func = spec.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if module_name.split(".")[0] != "function" or exc.name != "function":
            raise
        module = importlib.import_module(ENTRY_POINTS[module_name])
    return getattr(module, func)
