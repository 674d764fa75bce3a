"""The manifest: the one document that says what was read from an input, what was written, and
what was lost and why. Built here for both the S3 path and ``bert-encode --input``, so a local run
and an S3 run describe a file with the same fields (local runs put ``path`` where S3 has ``key``).

``status`` is ``complete`` only when every line is accounted for: no chunk failed,
``lines_read == encoded + rejected + blank``, and no rejected unit swallowed further lines (a CSV
quote that never closes turns the rest of the file into one bad record: that is ``incomplete``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from bert2vec.files.pipeline import Counts

MANIFEST_VERSION = 1
MODEL_SUMMARY_KEYS = ("name", "source", "vector_length", "pooling", "normalize", "max_seq_length", "checksum")


def now() -> str:
    """UTC, to the second: the timestamps manifests and chunk markers carry."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def model_summary(card: dict[str, Any]) -> dict[str, Any]:
    """The model-card fields a reader of the vectors needs (which model, which pooling)."""
    return {k: card.get(k) for k in MODEL_SUMMARY_KEYS}


def status_of(counts: Counts, failed_chunks: int, total_chunks: int) -> str:
    if total_chunks and failed_chunks == total_chunks:
        return "failed"
    if failed_chunks or not counts.balanced() or counts.swallowed:
        return "incomplete"
    return "complete"


def build(
    *,
    status: str,
    input: dict[str, Any],
    model_card: dict[str, Any],
    output: dict[str, Any],
    counts: Counts,
    timings: dict[str, Any] | None = None,
    chunks: dict[str, Any] | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "version": MANIFEST_VERSION,
        "status": status,
        "input": input,
        "model": model_summary(model_card),
        "output": output,
        "counts": counts.to_dict(),
        "balanced": counts.balanced(),
    }
    if chunks is not None:
        manifest["chunks"] = chunks
    if timings is not None:
        manifest["timings"] = timings
    if error is not None:
        manifest["error"] = error
    return manifest


def dumps(manifest: dict[str, Any]) -> bytes:
    """The bytes written to S3 or disk: indented, sorted keys, so equal manifests are equal files."""
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")
