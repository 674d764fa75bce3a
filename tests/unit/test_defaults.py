"""One home for defaults: ``bert2vec/core/defaults.py``. The template's parameter defaults and the
configuration tables in ``docs/`` must say what the code does when nothing is configured."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from bert2vec.bulk.config import BulkConfig
from bert2vec.core import defaults
from bert2vec.http.service import Limits

REPO = Path(__file__).resolve().parents[2]

# environment variable -> (template parameter, the code's default)
SETTINGS: dict[str, tuple[str | None, Any]] = {
    "MAX_TEXTS": ("MaxTexts", defaults.MAX_TEXTS),
    "MAX_TEXT_CHARS": ("MaxTextChars", defaults.MAX_TEXT_CHARS),
    "MAX_REQUEST_CHARS": ("MaxRequestChars", defaults.MAX_REQUEST_CHARS),
    "MAX_REQUEST_TOKENS": ("MaxRequestTokens", defaults.MAX_REQUEST_TOKENS),
    "MAX_HOPS": (None, defaults.MAX_HOPS),
    "VECTOR_TEXT_MAX_BYTES": ("VectorTextMaxBytes", defaults.VECTOR_TEXT_MAX_BYTES),
    "INPUT_PREFIX": ("InputPrefix", defaults.INPUT_PREFIX),
    "OUTPUT_PREFIX": ("OutputPrefix", defaults.OUTPUT_PREFIX),
    "OUTPUT_FORMAT": ("OutputFormat", defaults.OUTPUT_FORMAT),
    "SHARD_BYTES": ("ShardBytes", defaults.SHARD_BYTES),
    "SLICE_BYTES": ("ChunkBytes", defaults.SLICE_BYTES),  # the parameter keeps its first name
    "SLICE_RECORDS": (None, defaults.SLICE_RECORDS),
    "LONG_TEXT": ("LongText", defaults.LONG_TEXT),
    "SHARD_MAX_RECEIVES": ("ShardMaxReceives", defaults.SHARD_MAX_RECEIVES),
    "TIME_MARGIN_MS": (None, defaults.TIME_MARGIN_MS),
    "WINDOW_TEXTS": (None, defaults.WINDOW_TEXTS),
    "BATCH_SIZE": (None, defaults.BATCH_SIZE),
}


@pytest.fixture(scope="module")
def parameters() -> dict[str, Any]:
    from cfnlint.decode import decode

    template, matches = decode(str(REPO / "template.yaml"))
    assert not matches, matches
    return template["Parameters"]


def test_the_code_reads_its_defaults_from_one_module(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    cfg, limits = BulkConfig.from_env(), Limits.from_env()
    assert (limits.max_texts, limits.max_text_chars) == (defaults.MAX_TEXTS, defaults.MAX_TEXT_CHARS)
    assert (limits.max_request_chars, limits.max_request_tokens) == (defaults.MAX_REQUEST_CHARS, defaults.MAX_REQUEST_TOKENS)
    assert cfg.max_hops == defaults.MAX_HOPS and cfg.vector_text_max_bytes == defaults.VECTOR_TEXT_MAX_BYTES
    got = (cfg.input_prefix, cfg.output_prefix, cfg.output_format, cfg.shard_bytes, cfg.chunk_bytes,
           cfg.chunk_records, cfg.max_receives, cfg.long_text, cfg.max_text_chars, cfg.time_margin_ms,
           cfg.window, cfg.batch_size)  # fmt: skip
    want = (defaults.INPUT_PREFIX, defaults.OUTPUT_PREFIX, defaults.OUTPUT_FORMAT, defaults.SHARD_BYTES,
            defaults.SLICE_BYTES, defaults.SLICE_RECORDS, defaults.SHARD_MAX_RECEIVES, defaults.LONG_TEXT,
            defaults.MAX_TEXT_CHARS, defaults.TIME_MARGIN_MS, defaults.WINDOW_TEXTS, defaults.BATCH_SIZE)  # fmt: skip
    assert got == want


@pytest.mark.parametrize("variable", [v for v, (p, _) in SETTINGS.items() if p])
def test_template_parameter_defaults_match_the_code(variable: str, parameters: dict[str, Any]) -> None:
    name, value = SETTINGS[variable]
    assert str(parameters[name]["Default"]) == str(value), f"{name} in template.yaml vs bert2vec/core/defaults.py"


def _doc_defaults() -> dict[str, str]:
    """``| `VAR` | `default` | ... |`` rows of every configuration table under docs/."""
    rows: dict[str, str] = {}
    for page in sorted((REPO / "docs").glob("*.md")):
        for var, value in re.findall(r"^\|\s*`([A-Z][A-Z0-9_]+)`\s*\|\s*`([^`]*)`\s*\|", page.read_text(), re.M):
            rows.setdefault(var, value)
    return rows


def test_docs_configuration_tables_match_the_code() -> None:
    documented = _doc_defaults()
    missing = [v for v in SETTINGS if v not in documented]
    assert not missing, f"not in any docs/ configuration table: {missing}"
    wrong = {v: (documented[v], str(val)) for v, (_, val) in SETTINGS.items() if documented[v].strip('"') != str(val)}
    assert not wrong, f"docs say vs code does: {wrong}"
