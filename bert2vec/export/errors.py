"""User-facing export errors: each carries a message that says which input is wrong and why.

The CLI prints ``str(error)`` and exits non-zero without a traceback; anything that is not an
``ExportError`` is a bug and keeps its traceback.
"""

from __future__ import annotations


class ExportError(Exception):
    """Base class for every error caused by the user's input or environment, not by a bug."""

    exit_code = 2


class UnknownModelError(ExportError):
    """A SOURCE that is neither a catalogue name, a handle, nor an existing directory."""


class SourceFormatError(ExportError):
    """A directory that is neither a TF-Hub-format SavedModel nor a Hugging Face BERT checkpoint."""


class IncompatibleModelError(ExportError):
    """A model we can read but must refuse: not BERT, vocab/embedding mismatch, bad option combo."""


class HubUnavailableError(ExportError):
    """tensorflow_hub could not resolve a handle (offline, or not in ``TFHUB_CACHE_DIR``)."""


class OutputExistsError(ExportError):
    """The output directory exists and ``--force`` was not given."""


class OutputRefusedError(ExportError):
    """An output path ``bert-export`` must not write to or replace (not a previous export, cwd, ...)."""


class InvalidOptionError(ExportError):
    """A command-line option with a value that can never work (e.g. ``--max-seq-length 0``)."""


class ExportWarning(UserWarning):
    """Something the export does that the user probably did not intend; it still goes ahead."""


def warn(message: str) -> None:
    """Emit an ``ExportWarning`` (the CLI prints each as one ``bert-export: warning:`` line)."""
    import warnings

    warnings.warn(message, ExportWarning, stacklevel=3)
