"""What every ``bert-encode`` mode shares: exit codes, user-facing errors, loading the model once."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bert2vec.core.bootstrap import load_model
from bert2vec.core.contract import ModelCard
from bert2vec.core.encoder import Encoder, read_model_card
from bert2vec.core.errors import ModelNotFoundError
from bert2vec.export.user_cache import DEFAULT_MODEL_NAME
from bert2vec.model_lookup import find_default_model, no_default_model_message

PROG = "bert-encode"
EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130
# What each mode needs beyond the core, as import names per extra (pyproject's optional-dependencies).
EXTRA_MODULES = {
    "serve": ("aws_lambda_powertools", "waitress"),
    "s3": ("boto3", "aws_lambda_powertools"),
    "parquet": ("pyarrow",),
}

# Loaded models, keyed by resolved directory: loading costs seconds, and tests (or a Python
# session) call main() many times in one process.
_ENCODERS: dict[Path, Encoder] = {}


class CliError(Exception):
    """A problem the user can fix; printed as one line without a traceback."""

    exit_code = EXIT_FAILED


class UsageError(CliError):
    """The command line asks for something impossible (exit 2, like argparse)."""

    exit_code = EXIT_USAGE


def isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def silence_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so the interpreter's final flush stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def require_extra(extra: str, what: str) -> None:
    """Exit 2 with the exact install command when ``what`` needs an extra that is not installed."""
    missing = [name for name in EXTRA_MODULES[extra] if importlib.util.find_spec(name) is None]
    if missing:
        raise UsageError(
            f"{what} needs the '{extra}' extra (missing {', '.join(missing)}): pip install 'bert2vec[{extra}]'"
        )


def default_model() -> Path:
    """The model used without --model (:mod:`bert2vec.model_lookup`), or a CliError naming the fix."""
    found = find_default_model()
    if found is None:
        raise CliError(no_default_model_message())
    return found


def reexport_command(card: Mapping[str, Any], option: str) -> str:
    """The ``bert-export`` line that rebuilds this model with ``option`` (no --model for the embedded default).
    Any mapping with the card's ``source``/``name`` will do: only those two are read."""
    source = card.get("source") or card.get("name")
    model = "" if not source or source == DEFAULT_MODEL_NAME else f"--model {source} "
    return f"bert-export {model}{option} --output DIR"


def _check_model_options(card: ModelCard, args: argparse.Namespace, model_dir: Path) -> None:
    """Refuse options the SavedModel cannot honour instead of silently ignoring them.

    ``max_seq_length`` and normalisation are compiled into the exported graph; the CLI cannot
    change them from outside, so anything but the model's own setting needs a re-export.
    """
    name = card.name if card.name is not None else model_dir.name
    model_max = card.max_seq_length
    wanted = args.max_seq_length
    if wanted is not None and wanted > model_max:
        raise UsageError(
            f"--max-seq-length {wanted} is larger than model {name}'s max_seq_length {model_max}, which is baked "
            f"into the SavedModel; re-export with `{reexport_command(card, f'--max-seq-length {wanted}')}` "
            "(up to the model's maximum position)"
        )
    if wanted is not None and wanted < model_max:
        raise UsageError(
            f"--max-seq-length {wanted} is smaller than model {name}'s max_seq_length {model_max}; the limit is "
            "applied inside the SavedModel (truncation keeps [SEP]), so it cannot be lowered from outside. Re-export "
            f"with `{reexport_command(card, f'--max-seq-length {wanted}')}` and pass --model DIR"
        )
    if args.no_normalize and card.normalize:
        raise UsageError(
            f"--no-normalize: model {name} was exported L2-normalised and cannot return raw vectors; re-export with "
            f"`{reexport_command(card, '--no-normalize')}` and pass --model DIR"
        )


def encoder_for(args: argparse.Namespace) -> Encoder:
    """The model for ``--model`` (or the default), checked against the options, loaded once per process."""
    model_dir = Path(args.model) if args.model else default_model()
    try:
        card = read_model_card(model_dir)  # cheap: no TensorFlow yet
    except ModelNotFoundError as exc:
        hint = "" if args.model else " (no --model given; $MODEL_DIR names it)"
        raise CliError(f"{exc}{hint}") from exc
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read the model card in {model_dir}: {exc}") from exc
    _check_model_options(card, args, model_dir)
    return load_encoder(model_dir)


def load_encoder(model_dir: Path) -> Encoder:
    """Load (or reuse) the SavedModel in ``model_dir`` through the one start-up routine the Lambda
    handlers use (quiet TF import, threads sized from the cgroup quota), without SnapStart and
    without a warm-up call: the user's own texts are the first call."""
    key = model_dir.resolve()
    if key not in _ENCODERS:
        try:
            _ENCODERS[key] = load_model(model_dir, warm_up=())
        except ModelNotFoundError as exc:
            raise CliError(str(exc)) from exc
    return _ENCODERS[key]


def check_model_dir(model: str | None) -> None:
    """Fail here, with the fix, rather than inside a handler's init, when ``--model`` is no export."""
    if model:
        try:
            read_model_card(Path(model))
        except ModelNotFoundError as exc:
            raise CliError(str(exc)) from exc


def load_cli_handler(spec: str) -> Any:
    """``module.function`` as awslambdaric resolves it (loading the model, as Lambda's init does)."""
    from bert2vec.local_invoke import load_handler

    try:
        return load_handler(spec)
    except (ImportError, AttributeError, ValueError) as exc:
        raise UsageError(f"cannot load handler {spec!r}: {exc}") from exc
    except ModelNotFoundError as exc:
        raise CliError(str(exc)) from exc
