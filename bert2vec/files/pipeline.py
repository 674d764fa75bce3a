"""Items in, vector rows out: the storage-agnostic heart of bulk encoding.

Used by the S3 path (per chunk) and by the local CLI (per file), so both count, truncate, reject,
chunk and order exactly alike (the rules themselves are :class:`bert2vec.core.long_text.LongTextPolicy`'s).
``long_text="chunk"`` reads every wordpiece of a long text as
overlapping windows (``bert2vec.core.long_text``); with ``chunk_rows`` each window becomes its own row
(``chunk``, ``start``, ``end``: the window's number and character span in the text) instead of one
row per line. Memory is bounded by one window of texts and their vectors: records are
encoded a window at a time (length-sorted inside the window by ``Encoder.encode``) and written
back in input order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from bert2vec.core import defaults
from bert2vec.core.encoder import Encoder
from bert2vec.core.errors import Bert2VecError
from bert2vec.core.long_text import MODES, LongTextEncoder, LongTextPolicy, Outcomes
from bert2vec.core.settings import ConfigError
from bert2vec.files.readers import Blank, Item, Record, Rejected
from bert2vec.files.writers import ErrorWriter, OutputRow, PartWriter

OVERLONG_POLICIES = MODES  # truncate | reject | chunk (the former name of LONG_TEXT's values)


@dataclass
class Counts:
    """Per-line accounting; the manifest proves ``lines_read == encoded + rejected + blank``."""

    lines_read: int = 0
    encoded: int = 0
    rejected: int = 0
    blank: int = 0
    truncated: int = 0
    swallowed: int = 0  # physical lines inside rejected units (e.g. after an unclosed CSV quote)
    tokens: int = 0
    encode_seconds: float = 0.0
    chunks: int = 0  # LONG_TEXT=chunk: windows encoded (reported only then)

    def add(self, other: Counts) -> Counts:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)
        return self

    def balanced(self) -> bool:
        return self.lines_read == self.encoded + self.rejected + self.blank

    def to_dict(self) -> dict[str, float | int]:
        d = asdict(self)
        d["encode_seconds"] = round(self.encode_seconds, 3)
        if not self.chunks:
            del d["chunks"]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> Counts:
        """Counts as any release wrote them (manifests, slice commits, segments): a field an older
        release did not write yet (``swallowed``, ``chunks``) is 0, and one this release does not
        know (a newer release's, read after a rollback) is left out instead of failing the read."""
        d = d or {}
        return cls(**{
            name: (float if name == "encode_seconds" else int)(d[name])
            for name in cls.__dataclass_fields__ if d.get(name) is not None
        })  # fmt: skip


@dataclass
class PipelineOptions:
    long_text: str = defaults.LONG_TEXT  # over the model's max_seq_length: "truncate" (flagged), "reject" or "chunk"
    max_text_chars: int = defaults.MAX_TEXT_CHARS  # longer texts are cut to this many characters first (or rejected)
    window: int = defaults.WINDOW_TEXTS  # texts per length-sorted encode window
    batch_size: int = defaults.BATCH_SIZE
    stride: int | None = None  # chunk: overlap of consecutive windows in wordpieces (None: the default)
    chunk_rows: bool = False  # chunk: one output row per window (with its span) instead of one per line
    channel: str = "bulk"  # whose words the error report uses: "bulk" (LONG_TEXT=...) or "cli" (--long-text ...)


def _windows(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    buf: list[Item] = []
    n_records = 0
    for item in items:
        buf.append(item)
        if isinstance(item, Record):
            n_records += 1
            if n_records >= size:
                yield buf
                buf, n_records = [], 0
    if buf:
        yield buf


def check_chunk_config(encoder: Encoder, stride: int | None, long_text: str = "chunk") -> LongTextPolicy:
    """``LONG_TEXT`` / ``LONG_TEXT_STRIDE`` resolved for this model (chunk: it has the long-text signatures
    and ``stride`` fits its window). Raises ``ConfigError`` naming the variables."""
    try:
        return LongTextPolicy.resolve(encoder, long_text, stride, channel="bulk", names=ENV_NAMES)
    except Bert2VecError as exc:
        raise ConfigError(f"LONG_TEXT={long_text} / LONG_TEXT_STRIDE: {exc}") from None


ENV_NAMES = {"long_text": "LONG_TEXT", "stride": "LONG_TEXT_STRIDE"}  # how the bulk path's messages name them


@dataclass
class _Encoded:
    """One text's encoding: its vector (or, with chunk rows, its windows' vectors and spans)."""

    vector: np.ndarray | None
    token_count: int
    chunks: int = 1
    windows: list[tuple[int, int, np.ndarray]] | None = None  # (start, end, vector) per window


def _run_chunked(encoder: Encoder, texts: list[str], opts: PipelineOptions, policy: LongTextPolicy) -> list[_Encoded]:
    if not opts.chunk_rows:
        got = policy.apply(encoder, texts, batch_size=opts.batch_size)
        assert got.chunks is not None  # chunk mode
        return [_Encoded(got.embeddings[i], int(got.token_counts[i]), int(got.chunks[i])) for i in range(len(texts))]
    ch = LongTextEncoder(encoder).encode_chunks(texts, stride=policy.stride, batch_size=opts.batch_size)
    out = [_Encoded(None, int(ch.token_counts[i]), int(ch.chunks[i]), []) for i in range(len(texts))]
    for w, t in enumerate(ch.text_index.tolist()):
        out[t].windows.append((int(ch.start[w]), int(ch.end[w]), ch.embeddings[w]))  # type: ignore[union-attr]
    return out


def _isolating_chunked(
    encoder: Encoder, texts: list[str], opts: PipelineOptions, policy: LongTextPolicy
) -> tuple[list[_Encoded | None], dict[int, str]]:
    """Chunk mode's ``_encode_isolating``: bisect until the texts the encoder fails on are isolated."""
    try:
        return list(_run_chunked(encoder, texts, opts, policy)), {}
    except Exception as exc:  # noqa: BLE001 - any failure of one text must not fail its neighbours
        if len(texts) == 1:
            return [None], {0: f"the encoder failed on this text: {type(exc).__name__}: {str(exc)[:300]}"}
    half = len(texts) // 2
    r1, f1 = _isolating_chunked(encoder, texts[:half], opts, policy)
    r2, f2 = _isolating_chunked(encoder, texts[half:], opts, policy)
    return r1 + r2, {**f1, **{half + i: r for i, r in f2.items()}}


def _encode_isolating(
    encoder: Encoder, texts: list[str], batch_size: int, policy: LongTextPolicy
) -> tuple[Outcomes, dict[int, str]]:
    """Encode ``texts`` by ``policy``; if the encoder fails, bisect until the failing texts are isolated.

    Returns the outcomes and {index: reason} — rows of failed texts are zeros and must be dropped by
    the caller. One poisoned line costs O(log n) extra calls and rejects only itself.
    """
    try:
        return policy.apply(encoder, texts, batch_size=batch_size), {}
    except Exception as exc:  # noqa: BLE001 - any failure of one text must not fail its neighbours
        if len(texts) == 1:
            failed = Outcomes(
                np.zeros((1, encoder.vector_length), np.float32), np.zeros(1, np.int32), np.zeros(1, bool)
            )
            return failed, {0: f"the encoder failed on this text: {type(exc).__name__}: {str(exc)[:300]}"}
    half = len(texts) // 2
    o1, f1 = _encode_isolating(encoder, texts[:half], batch_size, policy)
    o2, f2 = _encode_isolating(encoder, texts[half:], batch_size, policy)
    joined = Outcomes(
        *(np.concatenate([getattr(o1, k), getattr(o2, k)]) for k in ("embeddings", "token_counts", "truncated"))
    )
    return joined, {**f1, **{half + i: r for i, r in f2.items()}}


def encode_items(
    items: Iterable[Item],
    encoder: Encoder,
    writer: PartWriter,
    errors: ErrorWriter,
    opts: PipelineOptions,
    *,
    on_window: Callable[[Counts], None] | None = None,
) -> Counts:
    """Encode every Record, write rows in input order, report every Rejected; count all lines."""
    if opts.chunk_rows and opts.long_text != "chunk":
        raise ValueError(f"chunk rows need long_text 'chunk', got {opts.long_text!r}")
    # Resolved once: a bad mode or stride, or a model that cannot chunk, fails here, not once per window.
    policy = LongTextPolicy.resolve(encoder, opts.long_text, opts.stride, channel=opts.channel, names=ENV_NAMES)
    counts = Counts()
    max_tokens = encoder.max_seq_length
    for window in _windows(items, opts.window):
        records: list[Record] = []
        rejected: list[Rejected] = []
        for item in window:
            counts.lines_read += 1
            if isinstance(item, Blank):
                counts.blank += 1
            elif isinstance(item, Rejected):
                rejected.append(item)
                counts.swallowed += item.swallowed
            else:
                records.append(item)
        cut_texts, cut_flags, too_many = policy.cut_chars([r.text for r in records], opts.max_text_chars)
        refused = {r.index for r in too_many}  # chunk mode reads whole texts: it never cuts one
        rejected.extend(
            Rejected(records[r.index].line, r.message("text", opts.channel), records[r.index].id) for r in too_many
        )
        texts = [t for i, t in enumerate(cut_texts) if i not in refused]
        cut_chars = [c for i, c in enumerate(cut_flags) if i not in refused]
        records = [r for i, r in enumerate(records) if i not in refused]
        rows: list[OutputRow] = []
        lines_encoded = 0  # = len(rows), except with chunk rows (one row per window)
        if texts and policy.mode == "chunk":
            t0 = time.perf_counter()
            encoded, failed = _isolating_chunked(encoder, texts, opts, policy)
            counts.encode_seconds += time.perf_counter() - t0
            for i, rec in enumerate(records):
                got = encoded[i]
                if i in failed or got is None:
                    rejected.append(Rejected(rec.line, failed.get(i, "the encoder failed on this text"), rec.id))
                    continue
                counts.truncated += int(cut_chars[i])
                counts.tokens += got.token_count
                counts.chunks += got.chunks
                lines_encoded += 1
                if got.windows is None:
                    rows.append(OutputRow(rec.id, rec.line, np.asarray(got.vector, dtype=np.float32), rec.text))
                    continue
                for k, (start, end, vector) in enumerate(got.windows):
                    text = rec.text[start:end] if start >= 0 else None
                    rows.append(OutputRow(rec.id, rec.line, np.asarray(vector, np.float32), text, k, start, end))
        elif texts:
            t0 = time.perf_counter()
            out, failed = _encode_isolating(encoder, texts, opts.batch_size, policy)
            counts.encode_seconds += time.perf_counter() - t0
            embeddings, token_counts = out.embeddings, out.token_counts
            too_long = {r.index: r for r in policy.too_long(token_counts)}  # failed rows count 0: never too long
            for i, rec in enumerate(records):
                if i in failed:
                    rejected.append(Rejected(rec.line, failed[i], rec.id))
                    continue
                if i in too_long:  # LONG_TEXT=reject
                    rejected.append(Rejected(rec.line, too_long[i].message("text", opts.channel), rec.id))
                    continue
                counts.truncated += int(out.truncated[i] or cut_chars[i])
                counts.tokens += int(min(token_counts[i], max_tokens))
                rows.append(OutputRow(rec.id, rec.line, np.asarray(embeddings[i], dtype=np.float32), rec.text))
                lines_encoded += 1
        refused = writer.write(rows) or {}
        if refused:  # the sink's own per-line limits (an index's key/metadata rules): rejected like any line
            ids = {row.line: row.id for row in rows}
            rejected.extend(Rejected(line, why, ids.get(line)) for line, why in refused.items())
            lines_encoded -= len(refused)
        counts.encoded += lines_encoded
        if rejected:
            rejected.sort(key=lambda r: r.line)
            errors.write(rejected)
            counts.rejected += len(rejected)
        if on_window is not None:
            on_window(counts)
    return counts
