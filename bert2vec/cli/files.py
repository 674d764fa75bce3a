"""``bert-encode --input FILE``: a file encoded exactly as the S3 bulk path encodes one slice.

The same readers, :func:`bert2vec.files.pipeline.encode_items` and writers, so a file that works
locally works in S3 and produces the same rows, rejections and counts. Next to the vector file go
``<output>.manifest.json`` (the S3 manifest's shape, with paths instead of keys, built by
:mod:`bert2vec.files.manifest`) and ``<output>.errors.jsonl``.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import shutil
import sys
import tempfile
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

import numpy as np

from bert2vec.cli.common import EXIT_FAILED, PROG, CliError, UsageError, isatty
from bert2vec.core.encoder import DEFAULT_BATCH_SIZE, Encoder, EncodeResult
from bert2vec.files import manifest as manifests
from bert2vec.files.line_ranges import BLOCK_SIZE
from bert2vec.files.manifest import Manifest, Output, Part, Source, SourceFormat, Timings
from bert2vec.files.pipeline import Counts, PipelineOptions, encode_items
from bert2vec.files.readers import (
    SUPPORTED_SUFFIXES,
    InputFormat,
    InputFormatError,
    Item,
    ReaderOptions,
    UnsupportedFormatError,
    sniff_text,
)
from bert2vec.files.writers import FORMATS, ErrorWriter, PartWriter, open_part_writer, part_suffixes

INPUT_KINDS = ("txt", "jsonl", "csv")
INPUT_FORMATS = INPUT_KINDS + tuple(f"{k}.gz" for k in INPUT_KINDS)
BINARY_FORMATS = ("parquet", "npy")
SLICE_BATCHES = 12  # progress every 12 batches (~100 texts at the default batch size of 8)
PRECOUNT_BYTES = 64 * 1024 * 1024  # files up to this size get their lines counted for the progress bar
MAX_ERRORS_SHOWN = 20  # rejected lines echoed to stderr when there is no errors file to point at


class _InputReadError(Exception):
    """The input stream itself failed (I/O error, corrupt gzip) — distinct from a write failure."""


@dataclass
class FilePlan:
    """Everything decided before the model loads, so bad arguments fail in milliseconds."""

    source: Path | None  # None: stdin
    input_format: InputFormat
    out_format: str
    data_files: list[Path] | None  # the vector file(s) as the writer names them; None: stdout
    manifest: Path | None  # None: summary on stderr only (stdout mode without --manifest)
    errors: Path | None  # None: rejected lines echoed to stderr
    ids: Path | None  # npy to stdout: where the ids sidecar goes (needs --manifest)

    @property
    def to_stdout(self) -> bool:
        return self.data_files is None

    @property
    def input_name(self) -> str:
        return "stdin" if self.source is None else str(self.source)

    def targets(self) -> list[Path]:
        return [p for p in [*(self.data_files or []), self.manifest, self.errors, self.ids] if p is not None]


def _suffixed(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _part_files(path: Path, fmt: str) -> list[Path]:
    """The files ``open_part_writer(fmt, path, ...)`` will create (its naming rule, computed up front)."""
    suffixes = part_suffixes(fmt)
    first = suffixes[0]
    base = path if path.name.lower().endswith(first) else _suffixed(path, first)
    stem = base.name[: -len(first)]
    return [base.with_name(stem + s) for s in suffixes]


def _format_from_name(name: str) -> str | None:
    lower = name.lower()
    for fmt in FORMATS:
        if lower.endswith("." + fmt) and not (fmt == "jsonl" and lower.endswith(".ids.jsonl")):
            return fmt
    return None


def plan_file(args: argparse.Namespace) -> FilePlan:
    reader = ReaderOptions(
        text_field=args.text_field, id_field=args.id_field, csv_text_column=args.text_field, csv_id_column=args.id_field
    )
    stdin = args.input == "-"
    source = None if stdin else Path(args.input)
    if source is not None and not source.is_file():  # before the suffix: a directory is not "unsupported"
        why = "is a directory (give one file)" if source.is_dir() else "does not exist"
        raise CliError(f"cannot read input {source}: it {why}")
    if args.input_format:
        input_format = InputFormat.from_key(f"input.{args.input_format}", reader)
    elif stdin:
        input_format = InputFormat("txt", False, reader)
    else:
        try:
            input_format = InputFormat.from_key(args.input, reader)
        except UnsupportedFormatError as exc:
            raise UsageError(
                f"cannot tell how to read {args.input}: the file name must end with one of "
                f"{', '.join(SUPPORTED_SUFFIXES)} (case-insensitive), or say how to parse it with "
                f"--input-format {{{','.join(INPUT_FORMATS)}}}"
            ) from exc
    if source is not None:
        not_text = _sniff(source, input_format.gzip)
        if not_text:
            raise CliError(f"cannot encode {source}: {not_text}")

    to_stdout = args.output == "-" or (args.output is None and stdin)
    named = None if to_stdout or args.output is None else _format_from_name(args.output)
    if args.format and named and named != args.format:
        raise UsageError(f"--output {args.output} looks like {named}, but --format is {args.format}")
    out_format = args.format or named or "jsonl"

    manifest = Path(args.manifest) if args.manifest else None
    if to_stdout:
        if out_format in BINARY_FORMATS and isatty(sys.stdout):
            raise UsageError(
                f"refusing to write binary {out_format} to a terminal; redirect stdout or use --output FILE"
            )
        base = None
        if manifest is not None:
            name = manifest.name
            base = manifest.with_name(name[: -len(".manifest.json")] if name.endswith(".manifest.json") else name)
        errors = _suffixed(base, ".errors.jsonl") if base is not None else None
        ids = _suffixed(base, ".ids.jsonl") if base is not None and out_format == "npy" else None
        plan = FilePlan(source, input_format, out_format, None, manifest, errors, ids)
    else:
        output = Path(args.output) if args.output else _suffixed(source or Path("stdin"), f".{out_format}")
        data_files = _part_files(output, out_format)
        manifest = manifest or _suffixed(data_files[0], ".manifest.json")
        errors = _suffixed(data_files[0], ".errors.jsonl")
        plan = FilePlan(source, input_format, out_format, data_files, manifest, errors, None)

    targets = plan.targets()
    if source is not None and any(_same_file(t, source) for t in targets):
        raise UsageError(f"an output file would overwrite the input {source}; choose another --output")
    for target in targets:
        if not target.parent.is_dir():
            raise UsageError(f"cannot write {target}: directory {target.parent} does not exist")
    existing = [str(t) for t in targets if t.exists()]
    if existing and not args.force:
        raise UsageError(f"output exists: {', '.join(existing)}; pass --force to replace it")
    return plan


def _sniff(path: Path, gz: bool) -> str | None:
    """Why the file is not UTF-8 text (the S3 path's check on its first 4 KiB), or None."""
    try:
        with gzip.open(path, "rb") if gz else open(path, "rb") as f:
            head = f.read(4096)
    except (OSError, EOFError, zlib.error):
        return None  # the real read reports it, with the line where it stopped
    return sniff_text(head)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


# ---- file mode: running ----------------------------------------------------------------------


class _CountingReader:
    """Counts the bytes taken from the input (compressed bytes for .gz) to drive a byte-based ETA."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.bytes_read = 0

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self.bytes_read += len(data)
        return data


class _Progress:
    """A tqdm bar on stderr with texts/s and an ETA; absent when stderr is not a TTY or with --quiet.

    The unit is chosen so the ETA is honest: physical lines for files up to ``PRECOUNT_BYTES``
    (counted up front in C — the reader's 1 MiB read-ahead would otherwise put a small file at
    100% at once), bytes read for bigger files (where read-ahead is noise), and a plain line
    counter without ETA for stdin. Positions advance every ~100 encoded texts (``_SlicedEncoder``),
    interpolated inside the window that is being encoded.
    """

    def __init__(self, *, plan: FilePlan, size: int | None, reader: _CountingReader, last_line: list[int]) -> None:
        self._reader = reader
        self._last_line = last_line
        self._t0 = time.perf_counter()
        self._bar: Any = None
        self._total: int | None = None
        self._by_bytes = False
        self._window_start = 0  # the bar's position when the current window started encoding
        try:
            from tqdm import tqdm
        except ImportError:  # the progress bar is a nicety; encoding does not depend on it
            return
        desc = Path(plan.input_name).name
        precount_limit = PRECOUNT_BYTES // (8 if plan.input_format.gzip else 1)  # gz: ~8x more to scan
        if plan.source is not None and size is not None and size > precount_limit:
            self._total, self._by_bytes = size, True
            self._bar = tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, file=sys.stderr)
            return
        if plan.source is not None:
            self._total = _count_lines(plan.source, plan.input_format.gzip)
        self._bar = tqdm(total=self._total, unit=" lines", unit_scale=True, desc=desc, file=sys.stderr)

    def _position(self) -> int:
        position = self._reader.bytes_read if self._by_bytes else self._last_line[0]
        return min(position, self._total) if self._total is not None else position

    def slice_done(self, done: int, total: int) -> None:
        """Inside a window: move the bar by the share of the window's texts encoded so far."""
        if self._bar is None or total <= 0:
            return
        start = self._window_start
        position = start + (self._position() - start) * done // total
        self._bar.update(max(0, position - self._bar.n))

    def update(self, counts: Counts) -> None:
        if self._bar is None:
            return
        position = self._position()
        self._window_start = position
        self._bar.update(max(0, position - self._bar.n))
        elapsed = max(time.perf_counter() - self._t0, 1e-9)
        self._bar.set_postfix_str(f"{counts.encoded / elapsed:,.0f} texts/s")

    def close(self, *, done: bool) -> None:
        if self._bar is None:
            return
        if done and self._total is not None:
            self._bar.update(max(0, self._total - self._bar.n))
        self._bar.close()
        self._bar = None


class _SlicedEncoder:
    """``Encoder.encode`` in slices of whole batches, calling ``on_slice(done, total)`` after each,
    so the progress bar moves every ~100 texts instead of once per 1,024-text window (~5 s).

    The window is sorted by wordpieces first, exactly as ``Encoder.encode`` sorts it (same counts,
    passed on to each slice), and every slice is a
    multiple of ``batch_size`` (the last one never a lone batch, which would take the single-batch
    graph): so the batches, their padding and the vectors are those of one whole-window call.
    Everything else (``vector_length``, the long-text signatures...) is the wrapped encoder's.
    """

    def __init__(self, encoder: Encoder, on_slice: Any, batches_per_slice: int = SLICE_BATCHES) -> None:
        self._encoder = encoder
        self._on_slice = on_slice
        self._batches_per_slice = batches_per_slice

    def __getattr__(self, name: str) -> Any:
        return getattr(self._encoder, name)

    def encode(self, texts: Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE) -> EncodeResult:
        n = len(texts)
        step = batch_size * self._batches_per_slice
        if n <= step + batch_size:
            return self._encoder.encode(texts, batch_size)
        wordpieces = self._encoder.wordpiece_counts(texts)
        lengths = [len(t) for t in texts] if wordpieces is None else [int(c) for c in wordpieces]
        order = sorted(range(n), key=lambda i: lengths[i])
        starts = list(range(0, n, step))
        if n - starts[-1] <= batch_size:  # fold a lone last batch into the slice before it
            starts.pop()
        emb = np.zeros((n, self._encoder.vector_length), dtype=np.float32)
        counts = np.zeros((n,), dtype=np.int32)
        for k, start in enumerate(starts):
            idx = order[start : starts[k + 1] if k + 1 < len(starts) else n]
            got = self._encoder.encode([texts[i] for i in idx], batch_size, lengths=[lengths[i] for i in idx])
            emb[idx], counts[idx] = got.embeddings, got.token_counts
            self._on_slice(start + len(idx), n)
        return EncodeResult(emb, counts, counts > self._encoder.max_seq_length)


def _count_lines(path: Path, gz: bool) -> int | None:
    """Physical lines as the readers number them (a last line without ``\\n`` counts); None if unreadable."""
    lines, last = 0, b"\n"
    try:
        with gzip.open(path, "rb") if gz else open(path, "rb") as f:
            for block in iter(lambda: f.read(BLOCK_SIZE), b""):
                lines += block.count(b"\n")
                last = block[-1:]
    except (OSError, EOFError, zlib.error):
        return None  # the real read reports the problem; the bar just goes without a total
    return lines + (last != b"\n")


def _write_atomic(path: Path, body: bytes) -> None:
    """Written aside and renamed into place, so the manifest is never half-written."""
    partial = _suffixed(path, ".partial")
    partial.write_bytes(body)
    os.replace(partial, path)


def _tracked(items: Iterable[Item], last_line: list[int]) -> Iterator[Item]:
    """Pass items through, remembering the last line (the manifest's ``last_line``) and turning
    read failures (I/O errors, corrupt gzip) into one error type the caller can name as such."""
    iterator = iter(items)
    while True:
        try:
            item = next(iterator)
        except StopIteration:
            return
        except (OSError, EOFError, zlib.error) as exc:
            raise _InputReadError(str(exc) or type(exc).__name__) from exc
        last_line[0] = item.line
        yield item


def encode_file(args: argparse.Namespace, plan: FilePlan, encoder: Encoder) -> int:
    """Read → ``encode_items`` → writers, exactly like one S3 slice; then manifest and summary.

    Every file this run creates is written under ``*.partial`` and renamed at the end; any
    exception (Ctrl-C included) aborts the writers and removes what was already renamed, so an
    interrupted run leaves no output at all.
    """
    opts = PipelineOptions(
        long_text=args.long_text, channel="cli", max_text_chars=args.max_text_chars, batch_size=args.batch_size,
        stride=args.stride, chunk_rows=args.chunk_rows,
    )  # fmt: skip
    started, t0 = manifests.now(), time.perf_counter()
    created: list[Path] = []
    writer: PartWriter | None = None
    errors: ErrorWriter | None = None
    progress: _Progress | None = None
    show_bar = not args.quiet and isatty(sys.stderr)
    with contextlib.ExitStack() as stack:
        try:
            if plan.source is None:
                raw: BinaryIO = sys.stdin.buffer
                size = None
            else:
                try:
                    raw = stack.enter_context(open(plan.source, "rb"))
                    size = os.fstat(raw.fileno()).st_size
                except OSError as exc:
                    raise CliError(f"cannot read input {plan.source}: {exc.strerror or exc}") from exc
            scratch: Path | None = None
            if plan.to_stdout:  # stdout gets the finished file, so an interrupted run prints nothing
                where = plan.manifest.parent if plan.manifest is not None else None  # same fs: ids sidecar renames
                scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=".bert-encode-", dir=where)))
            data_path = scratch / "vectors" if scratch is not None else (plan.data_files or [])[0]
            errors_path = plan.errors or (scratch or Path()) / "errors.jsonl"

            reader = _CountingReader(raw)
            last_line = [0]
            progress = _Progress(plan=plan, size=size, reader=reader, last_line=last_line) if show_bar else None
            writer = open_part_writer(plan.out_format, data_path, encoder.vector_length, chunk_rows=args.chunk_rows)
            errors = ErrorWriter(errors_path)
            items = _tracked(plan.input_format.iter_items(cast(BinaryIO, reader)), last_line)
            try:
                counts = encode_items(
                    items,
                    _SlicedEncoder(encoder, progress.slice_done) if progress else encoder,  # type: ignore[arg-type]
                    writer,
                    errors,
                    opts,
                    on_window=progress.update if progress else None,
                )
            except InputFormatError as exc:
                raise CliError(f"{plan.input_name}: {exc}") from exc
            except _InputReadError as exc:
                raise CliError(f"cannot read {plan.input_name} (after line {last_line[0]}): {exc}") from exc
            if progress is not None:
                progress.close(done=True)

            failed = counts.encoded == 0 and counts.rejected > 0
            parts: list[Part] = []
            if failed:  # like the S3 path: no vector part without rows; the error report says why
                writer.abort()
                for stale in plan.data_files or []:  # --force: don't leave the previous run's vectors
                    stale.unlink(missing_ok=True)
            else:
                files = writer.close()
                if not plan.to_stdout:
                    created.extend(files)
                ids_path = None
                if plan.out_format == "npy":
                    if plan.to_stdout and plan.ids is not None:
                        os.replace(files[1], plan.ids)
                        created.append(plan.ids)
                        ids_path = str(plan.ids.resolve())
                    elif not plan.to_stdout:
                        ids_path = str(files[1].resolve())
                parts.append(Part(slice=0, path="-" if plan.to_stdout else str(files[0].resolve()), rows=writer.rows,
                                  first_line=1, last_line=last_line[0], ids_path=ids_path))  # fmt: skip
            error_file = errors.close()[0]
            if plan.errors is not None:
                created.append(plan.errors)

            manifest = _manifest(plan, encoder, counts, parts, started, time.perf_counter() - t0, failed)
            if plan.manifest is not None:
                _write_atomic(plan.manifest, manifest.to_json())
                created.append(plan.manifest)
            if plan.to_stdout and not failed:
                _copy_to_stdout(writer.paths[0])
            _report(args, plan, counts, manifest, error_file, failed)
            return EXIT_FAILED if failed else 0
        except BaseException:
            if progress is not None:
                progress.close(done=False)
            for w in (writer, errors):
                if w is not None:
                    w.abort()
            for path in created:
                path.unlink(missing_ok=True)
            if plan.manifest is not None:
                _suffixed(plan.manifest, ".partial").unlink(missing_ok=True)
            raise


def _copy_to_stdout(path: Path) -> None:
    sys.stdout.flush()
    out: IO[bytes] = sys.stdout.buffer
    with open(path, "rb") as f:
        shutil.copyfileobj(f, out, 1 << 20)
    out.flush()


def _manifest(
    plan: FilePlan,
    encoder: Encoder,
    counts: Counts,
    parts: list[Part],
    started: str,
    wall: float,
    failed: bool,
) -> Manifest:
    """The S3 manifest's fields, with local paths where S3 has keys (``path``, ``errors_path``)."""
    return Manifest.result(
        status="failed" if failed else manifests.status_of(counts, 0, 1),
        input=Source(
            path="-" if plan.source is None else str(plan.source.resolve()),
            size=None if plan.source is None else plan.source.stat().st_size,
            format=SourceFormat(plan.input_format.kind, plan.input_format.gzip),
        ),
        model_card=encoder.card,
        output=Output(
            format=plan.out_format, parts=parts,
            errors_path=None if plan.errors is None else str(plan.errors.resolve()),
        ),
        counts=counts,
        timings=Timings(
            started_at=started, finished_at=manifests.now(), encode_seconds=round(counts.encode_seconds, 3),
            wall_seconds=round(wall, 3),
        ),
        error=f"no line could be encoded: {counts.rejected} rejected, {counts.blank} blank" if failed else None,
    )


def _report(
    args: argparse.Namespace, plan: FilePlan, counts: Counts, manifest: Manifest, error_file: Path, failed: bool
) -> None:
    """One summary line on stderr; rejected lines too when there is no errors file to point at."""
    err = sys.stderr
    if plan.errors is None and counts.rejected:
        with open(error_file, encoding="utf-8") as f:
            for n, line in enumerate(f):
                if n == MAX_ERRORS_SHOWN:
                    more = counts.rejected - MAX_ERRORS_SHOWN
                    err.write(f"{PROG}: ... and {more} more rejected lines (pass --manifest FILE to keep them all)\n")
                    break
                row = json.loads(line)
                ident = "" if row["id"] is None else f" (id {row['id']})"
                err.write(f"{PROG}: line {row['line']}{ident} rejected: {row['reason']}\n")
    if failed:
        where = f"; see {plan.errors}" if plan.errors is not None else ""
        err.write(
            f"{PROG}: error: nothing could be encoded from {plan.input_name}: {counts.rejected} line(s) rejected{where}\n"
        )
        return
    if args.quiet:
        return
    c = counts
    summary = (
        f"{PROG}: {plan.input_name}: encoded {c.encoded} of {c.lines_read} lines ({c.rejected} rejected, "
        f"{c.blank} blank, {c.truncated} truncated) in {manifest.timings.wall_seconds if manifest.timings else 0:.1f} s"
    )
    if plan.to_stdout:
        summary += " -> stdout"
        if plan.out_format == "npy" and plan.ids is None:
            summary += " (rows only: pass --manifest FILE to keep the row -> line/id mapping)"
    else:
        parts = manifest.output.parts if manifest.output is not None else []
        summary += f" -> {parts[0].path if parts else '-'}"
    if plan.manifest is not None:
        summary += f"; manifest {plan.manifest}"
    if plan.errors is not None and c.rejected:
        summary += f"; errors {plan.errors}"
    err.write(summary + "\n")


