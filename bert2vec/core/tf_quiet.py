"""Import TensorFlow without its start-up banners on stderr (CloudWatch, the user's terminal).

TensorFlow's C++ side prints a few lines while it is imported, *before* its logging reads
``TF_CPP_MIN_LOG_LEVEL`` (absl writes them unconditionally): the absl pre-init notice, "oneDNN
custom operations are on", "Could not find cuda drivers" — once for ``tensorflow`` and again for
``tensorflow_text``. Setting the variable only hides what comes later (the CPU feature banner,
``cuInit`` errors). So the import runs with file descriptor 2 captured, and what was printed is
replayed minus exactly those start-up lines at or below the level in effect: real errors and
Python warnings still show, and ``TF_CPP_MIN_LOG_LEVEL=0`` shows everything.

``TF_CPP_MIN_LOG_LEVEL`` defaults to 3 here unless the user set it. ``TF_ENABLE_ONEDNN_OPTS`` is
never touched: it changes numerics, not just logging.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile

_ABSL_PREINIT = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
_ABSL_LINE = re.compile(r"^([IWE])\d{4} [\d:.]+\s+\d+ [\w./-]+:\d+\] ")
_LEVELS = {"I": 1, "W": 2, "E": 3}
DEFAULT_LEVEL = "3"


def min_log_level() -> int:
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


def is_banner(line: str, level: int) -> bool:
    """A start-up line that ``TF_CPP_MIN_LOG_LEVEL=level`` is meant to hide."""
    if line == _ABSL_PREINIT:
        return level >= 1
    m = _ABSL_LINE.match(line)
    return bool(m) and level >= _LEVELS[m.group(1)]


def import_tensorflow() -> None:
    """Import tensorflow + tensorflow_text once, quietly (see the module docstring)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", DEFAULT_LEVEL)
    if "tensorflow" in sys.modules and "tensorflow_text" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
            import tensorflow_text  # noqa: F401
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            level = min_log_level()
            for line in capture.read().decode("utf-8", "replace").splitlines():
                if not is_banner(line, level):
                    print(line, file=sys.stderr)
