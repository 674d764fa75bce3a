"""Completion: from the slices' commits to the manifest, and the index made equal to it.

The manifest is a pure function of the commits (plus, for ``s3vectors``, the cleanup record written
once per version), so every finalizer of a version — two workers finishing together, a redelivered
last message — writes identical bytes. It (and the errors file) is published only while the input
still has the ETag that was encoded: read what is there, check the input, write on the condition
that what was read is unchanged (see :meth:`Finalizer.publish`). For ``s3vectors``, before the manifest:

1. the key records of every *other* version of the object are listed (before the ETag check, so
   any version listed is older than the current one), and their keys deleted from the index;
2. keys this version's attempts put that no commit lists (a losing attempt's lines, a failed
   slice) are deleted too;
3. the count goes into ``_cleanup.json`` (created once), and the other versions' run state is
   removed, so an ETag that comes back later starts afresh.

"Every other version" means in both run homes of the object (``OutputLayout.homes``): runs of the
previous layout are cleaned like the rest. Once the manifest is written, the previous layout's runs
of other versions go whole (parts, errors, state), every format, so that home empties.

A version that finds it is no longer current deletes every key its own attempts recorded: a late
writer of an old version cleans up after itself.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from typing import Any

from bert2vec.bulk.aws_errors import is_denied, is_not_found
from bert2vec.bulk.config import OWN_RUN_FILES, BulkConfig, OutputLayout, own_runs, run_name
from bert2vec.bulk.ledger import Ledger
from bert2vec.bulk.state import Commit, KeyRecord, WorkItem
from bert2vec.bulk.store import Conflict, S3Store
from bert2vec.bulk.vectors import read_keys
from bert2vec.bulk.worker import Worker
from bert2vec.core.encoder import Encoder
from bert2vec.files import manifest as manifests
from bert2vec.files.manifest import FailedSlice, Manifest, Output, Part, Slices, Source, SourceFormat, Timings
from bert2vec.files.pipeline import Counts

log = logging.getLogger("bert2vec.bulk")
PUBLISH_TRIES = 5  # conditional manifest writes lost to other writers before giving up (then retried)
COMMIT_READERS = 16  # commits read at once by the finalizer that finds every slice committed
COMMIT_NAME = re.compile(r"_slices/\d{6}\.json")
CLEANUP_MARGIN_MS = 20_000  # a clean-up stops this long before the deadline and is handed on


class CleanupUnfinished(Exception):
    """A clean-up of the index ran out of time; what is left is picked up by the next invocation
    (each key record is deleted once its keys are, so a resumed clean-up never starts over)."""


class ModelChanged(Exception):
    """Slices of one run were encoded by different models (a deploy landed mid-file): the run must
    start again in a new epoch, never be published mixed."""


def no_deadline() -> int:
    """``remaining_ms`` for callers without a deadline (tools, tests)."""
    return 1 << 62


class Finalizer:
    def __init__(self, store: S3Store, encoder: Encoder, cfg: BulkConfig, worker: Worker) -> None:
        self.store = store
        self.encoder = encoder
        self.cfg = cfg
        self.worker = worker  # for the layout and the vector target of an item

    def ledger_for(self, bucket: str) -> Ledger:
        """The ledger lives in the output bucket (the input bucket when no other is set)."""
        return Ledger(self.store, self.cfg.output_bucket or bucket, self.cfg.output_prefix)

    # ---- commits ---------------------------------------------------------------------------
    def commit_keys(self, layout: OutputLayout) -> list[str]:
        """The commits present (one listing: a page per 1,000 slices, no reads)."""
        return [k for k in self.store.keys(layout.bucket, layout.commits_prefix) if COMMIT_NAME.fullmatch(k[len(layout.run) :])]

    def commits(self, layout: OutputLayout, keys: list[str] | None = None) -> dict[int, Commit]:
        """Every commit, read in parallel (a 50 GiB object has ~51,000 of them)."""
        from concurrent.futures import ThreadPoolExecutor

        keys = self.commit_keys(layout) if keys is None else keys
        found: dict[int, Commit] = {}
        with ThreadPoolExecutor(max_workers=COMMIT_READERS) as pool:
            for data in pool.map(lambda k: self.store.get_json(layout.bucket, k), keys):
                if data is not None:
                    commit = Commit.from_dict(data)
                    found[commit.slice] = commit
        return found

    def mark_failed(self, item: WorkItem, slices: list[int], error: str, *, final: bool | None = None) -> None:
        """Commit ``slices`` as failed (unless an attempt committed them first)."""
        layout = self.worker.layout(item)
        total = item.total_slices
        for k in slices:
            is_final = final if final is not None else (k == (total or 0) - 1 if item.unit == "bytes" else True)
            commit = Commit(slice=k, final=is_final, finished_at=manifests.now(), failed=True, error=error[:2000])
            try:
                self.store.create(layout.bucket, layout.commit_key(k), commit.to_dict())
            except Conflict:
                continue

    # ---- the manifest ----------------------------------------------------------------------
    def finalize(self, item: WorkItem, remaining_ms: Callable[[], int] = no_deadline, *, full: bool = False
                 ) -> Manifest | None:  # fmt: skip
        """Write the manifest if every slice up to the final one is committed; else None.

        A run that is no longer current (the object was replaced or deleted, or its epoch moved on)
        never publishes and takes its vectors back, whether or not all its slices are committed: a
        late writer's slices may be all that is left of it. ``full``: read the commits even when fewer than
        the object's slices are listed (the caller committed a final slice, which may end it early)."""
        layout = self.worker.layout(item)
        vectors = self.cfg.output_format == "s3vectors"
        keys = self.commit_keys(layout)
        total = item.total_slices
        if total is not None and len(keys) < total and not full:
            # Not every slice is committed yet (the common case for all shards but the last): one
            # listing says so, so each shard's finish costs pages, not a read of every commit.
            if not self.still_current(item) and vectors:
                self.retract(item, remaining_ms)
            return None
        commits = self.commits(layout, keys)
        finals = [k for k, c in commits.items() if c.final]
        last = min(finals) if finals else None
        if last is None or any(k not in commits for k in range(last + 1)):
            if not self.still_current(item):
                if vectors:
                    self.retract(item, remaining_ms)
            return None
        older = self._other_versions(item, layout) if vectors else {}
        if not self.still_current(item):
            if vectors:
                self.retract(item, remaining_ms)
            return None
        ordered = [commits[k] for k in range(last + 1)]
        models = {c.model for c in ordered if c.model}
        if len(models) > 1 or (item.model and models - {item.model}):
            raise ModelChanged(f"slices of one run were encoded by models {sorted(models)}")
        counts = Counts()
        for c in ordered:
            if not c.failed:
                counts.add(c.counts)
        failed = [FailedSlice(c.slice, c.error) for c in ordered if c.failed]
        read_errors = [c.read_error for c in ordered if c.read_error]
        from botocore.exceptions import ClientError

        errors_file = MergedErrors(self.store, layout.bucket,
                                   [seg.errors_key for c in ordered for seg in c.segments if seg.errors_key])  # fmt: skip
        parts = [_part_entry(c, seg) for c in ordered if not c.failed for seg in c.segments if seg.parts]
        stale = self._clean_index(item, layout, older, parts, remaining_ms) if vectors else None
        status = manifests.status_of(counts, len(failed), len(ordered))
        if read_errors and status == "complete":
            status = "incomplete" if counts.lines_read else "failed"
        errors = [f"slice {f.slice}: {f.error}" for f in failed] + [str(e) for e in read_errors]
        manifest = Manifest.result(
            status=status,
            input=Source(bucket=item.bucket, key=item.key, etag=item.etag, size=item.size,
                         format=SourceFormat(item.kind, item.gzip), version_id=item.version_id or None,
                         epoch=item.epoch),
            model_card=self.encoder.card,
            output=Output(
                bucket=layout.bucket, format=self.cfg.output_format, parts=parts, errors_key=layout.errors_key,
                **({} if stale is None else {"vector_bucket": self.cfg.vector_bucket,
                                             "vector_index": self.cfg.vector_index, "stale_vectors_deleted": stale}),
            ),
            counts=counts,
            slices=Slices(total=len(ordered), unit=item.unit, slice_size=item.slice_size, failed=failed),
            timings=Timings(
                started_at=min((c.started_at or c.finished_at) for c in ordered),
                finished_at=max(c.finished_at for c in ordered),
                encode_seconds=round(counts.encode_seconds, 3),
            ),
            error="; ".join(errors)[:4000] if errors else None,
        )  # fmt: skip
        try:
            published = self.publish(layout, item.bucket, item.key, item.etag, manifest, errors_file,
                                     epoch=item.epoch)  # fmt: skip
        except ClientError as exc:  # a newer version's completion removed this version's state
            if is_not_found(exc) and not self.still_current(item):
                published = False
            else:
                raise
        if not published:
            if vectors:
                self.retract(item, remaining_ms)
            return None
        log.info("manifest written: s3://%s/%s (%s)", layout.bucket, layout.manifest_key, manifest.status)
        self._drop_uncommitted(layout, ordered)
        self._drop_legacy_runs(item, layout)
        if item.staged:  # every slice is committed: the decompressed copy has done its work
            self.store.delete(layout.bucket, [item.staged["key"]])
        return manifest

    def publish(
        self, layout: OutputLayout, bucket: str, key: str, etag: str, manifest: Manifest,
        errors_file: Any | None = None, *, keep_finished: bool = False, epoch: int | None = None,
    ) -> bool:  # fmt: skip
        """Write the manifest (and the errors file) only while the input is still at ``etag``.

        Read what is there, *then* check the input, then write on the condition that nothing
        changed since the read: a newer version's finalizer that wrote in between (its upload came
        after our check) makes our write lose, so a stale check can never overwrite a newer
        version's result. A result already equal to ours counts as written (a redelivery).
        ``keep_finished``: never replace a finished manifest of this same version (a retry marker
        must not hide a result another attempt completed). ``epoch``: also the ledger's epoch must
        still be this one (None: no such check — a deletion's own record). False when this version lost."""
        body = manifest.to_json()
        for _ in range(PUBLISH_TRIES):
            there = self.store.read(layout.bucket, layout.manifest_key)
            if there is not None and manifests.dumps(there.data) == body:
                return True
            found = None if there is None else Manifest.from_dict(there.data)
            if keep_finished and found is not None and found.etag == etag and not found.retryable:
                return False
            if etag and not self._is_at(bucket, key, etag):
                return False
            if epoch is not None and self.ledger_for(bucket).epoch(bucket, key) != epoch:
                log.warning("s3://%s/%s: epoch %d is over (the object was deleted or uploaded again since): not "
                            "publishing", bucket, key, epoch)  # fmt: skip
                return False
            try:
                if errors_file is not None:
                    # The run's own errors file, named by the manifest and written before it: every
                    # finalizer of the run writes the same bytes there, and no other run's manifest
                    # names it, so a finalizer that dies here leaves every manifest consistent.
                    errors_file.upload(layout.errors_key)
                self.store.create_or_replace(layout.bucket, layout.manifest_key, body,
                                             None if there is None else there.etag, "application/json")  # fmt: skip
                if there is not None and (there.data.get("output") or {}).get("errors_key") == layout.legacy_errors_key:
                    # The fixed errors key of older releases, which the replaced manifest named. Only
                    # then: for a key like incoming/_runs/<hash>/<run>/_slices/000000-0000-<attempt>
                    # that name is another object's run file.
                    self.store.delete(layout.bucket, [layout.legacy_errors_key])
                return True
            except Conflict:
                continue  # someone wrote in between: look again (we lose if the input moved on)
        raise RuntimeError(f"s3://{layout.bucket}/{layout.manifest_key} kept changing under {PUBLISH_TRIES} tries")

    def still_current(self, item: WorkItem) -> bool:
        """The object is still at the ETag the run encodes, and the run's epoch is still the ledger's."""
        return self._is_at(item.bucket, item.key, item.etag) and \
            self.ledger_for(item.bucket).epoch(item.bucket, item.key) == item.epoch  # fmt: skip

    def _is_at(self, bucket: str, key: str, etag: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            current = self.store.client.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
        except ClientError as exc:
            if is_not_found(exc) or is_denied(exc):
                # Deleted since (S3 answers 403 for a missing key without s3:ListBucket): what was
                # encoded is no longer in the bucket, so it must not be in the outputs either.
                log.warning("s3://%s/%s is gone: not publishing etag %s", bucket, key, etag)
                return False
            raise
        if current != etag:
            log.warning("s3://%s/%s was overwritten (etag %s -> %s): not writing the old version's manifest",
                        bucket, key, etag, current)  # fmt: skip
            return False
        return True

    # ---- the index -------------------------------------------------------------------------
    def _records(self, layout: OutputLayout, prefix: str) -> list[tuple[str, KeyRecord]]:
        """The run's own key records (never an object a crafted input key put under the directory)."""
        out = []
        for key in self.store.keys(layout.bucket, prefix):
            if not OWN_RUN_FILES.fullmatch(key[len(layout.run) :]):
                continue
            data = self.store.get_json(layout.bucket, key)
            if data is not None:
                out.append((key, KeyRecord.from_dict(data)))
        return out

    def _other_versions(self, item: WorkItem, layout: OutputLayout) -> dict[str, list[tuple[str, KeyRecord]]]:
        """Key records of this object's other versions, in both run homes: {run directory: [(record
        key, record)]}. A run of this same version in the other home (one started by the previous
        release while this one started here) holds this version's keys: never listed."""
        mine = run_name(item.etag, item.epoch)
        found: dict[str, list[tuple[str, KeyRecord]]] = {}
        for home in layout.homes:
            for run_dir, keys in own_runs(home, self.store.keys(layout.bucket, home)).items():
                if run_dir == f"{home}{mine}/":
                    continue
                for key in keys:
                    if not key[len(run_dir) :].startswith("_vector_keys/"):
                        continue
                    record = KeyRecord.from_dict(self.store.get_json(layout.bucket, key))
                    if record.belongs_to(item.bucket, item.key):
                        found.setdefault(run_dir, []).append((key, record))
        return found

    def _clean_index(
        self, item: WorkItem, layout: OutputLayout, older: dict[str, list[tuple[str, KeyRecord]]],
        parts: list[Part], remaining_ms: Callable[[], int] = no_deadline,
    ) -> int:  # fmt: skip
        """Delete older runs' keys and this run's uncommitted ones; the count, fixed once per run.

        Resumable: the count is written before anything is deleted, each older run's key record is
        deleted once its keys are, and before each record the time its keys take at the index's
        documented write rate is checked against the deadline — out of time, :class:`CleanupUnfinished`
        hands the rest to the next invocation, which lists only what is left."""
        target = self.worker.vector_target(item)
        committed: set[str] = set()
        for part in parts:
            committed |= read_keys(self.store.body(layout.bucket, str(part.key)))
        own = {k for _, rec in self._records(layout, layout.vector_keys_prefix) for k in rec.keys}
        planned = {k for records in older.values() for _, rec in records for k in rec.keys} - committed
        planned |= own - committed
        try:
            self.store.create(layout.bucket, layout.cleanup_key, {"stale_vectors_deleted": len(planned)})
            deleted = len(planned)
        except Conflict:
            done = self.store.get_json(layout.bucket, layout.cleanup_key) or {}
            deleted = int(done.get("stale_vectors_deleted", len(planned)))
        done = 0
        for run_dir, records in older.items():
            done += self.delete_recorded(layout.bucket, records, target, remaining_ms, f"s3://{item.bucket}/{item.key}",
                                         keep=committed, progressed=done > 0)  # fmt: skip
            # that run is gone from the index: forget its state, so an ETag that comes back starts afresh
            state = [key for key in self.store.keys(layout.bucket, run_dir) if OWN_RUN_FILES.fullmatch(key[len(run_dir) :])
                     and ("_slices/" in key or "_progress/" in key or key.endswith("/_cleanup.json"))]  # fmt: skip
            self.store.delete(layout.bucket, state)
        if own - committed:
            target.delete(own - committed)
        return deleted

    def delete_recorded(
        self, bucket: str, records: Iterable[tuple[str, KeyRecord]], target: Any, remaining_ms: Callable[[], int],
        where: str, *, keep: set[str] | frozenset[str] = frozenset(), progressed: bool = False,
    ) -> int:  # fmt: skip
        """Delete the keys each key record lists (less ``keep``) from the index, then the record:
        record by record, so a clean-up stopped anywhere resumes where it stopped. Before each record
        but the first of an invocation (``progressed``: one was done already), the deadline is checked
        (:class:`CleanupUnfinished` hands the rest on); every invocation makes progress."""
        done = 0
        for record_key, rec in records:
            keys = set(rec.keys) - keep
            if progressed or done:
                self._check_budget(remaining_ms, target, len(keys), where)
            done += target.delete(keys)
            self.store.delete(bucket, [record_key])
        return done

    def _check_budget(self, remaining_ms: Callable[[], int], target: Any, n: int, where: str) -> None:
        """Stop (to be handed on) unless deleting ``n`` more keys at the index's rate fits before the deadline."""
        if remaining_ms() < CLEANUP_MARGIN_MS + 1000 * target.pacer.seconds_for(n):
            raise CleanupUnfinished(f"{where}: index clean-up continues in the next invocation")

    def retract(self, item: WorkItem, remaining_ms: Callable[[], int] = no_deadline) -> int:
        """This run lost (its version was replaced or deleted, or its epoch moved on): delete every
        key its attempts recorded. Keys carry the version and the epoch, so no newer run shares
        them. Record by record (each deleted after its keys), so it resumes where it stopped."""
        layout = self.worker.layout(item)
        total = self.delete_recorded(layout.bucket, self._records(layout, layout.vector_keys_prefix),
                                     self.worker.vector_target(item), remaining_ms, f"s3://{item.bucket}/{item.key}")  # fmt: skip
        if total:
            log.warning("s3://%s/%s (etag %s, epoch %d) is no longer current: deleted its %d vectors", item.bucket,
                        item.key, item.etag, item.epoch, total)  # fmt: skip
        return total

    # ---- files -------------------------------------------------------------------------------

    def _drop_legacy_runs(self, item: WorkItem, layout: OutputLayout) -> None:
        """After this version's manifest is written: the previous layout's runs of every other
        version go whole, so that home empties as objects are uploaded again and its read path can
        be dropped one day. Key records stay: the index clean-up deletes each once its vectors are
        gone (one written since that clean-up listed belongs to a run still in flight, which takes
        its vectors back itself). A run of this same version there is left alone."""
        if layout.legacy_home is None:
            return
        mine = f"{layout.legacy_home}{run_name(item.etag, item.epoch)}/"
        runs = own_runs(layout.legacy_home, self.store.keys(layout.bucket, layout.legacy_home))
        doomed = [key for run_dir, keys in runs.items() if run_dir != mine
                  for key in keys if not key[len(run_dir) :].startswith("_vector_keys/")]  # fmt: skip
        if doomed:
            log.info("s3://%s/%s: %d files of older runs in the previous layout removed", item.bucket, item.key,
                     len(doomed))  # fmt: skip
            self.store.delete(layout.bucket, doomed)

    def _drop_uncommitted(self, layout: OutputLayout, ordered: list[Commit]) -> None:
        """Parts and error files of attempts that lost: nothing lists them, so they go."""
        keep = {k for c in ordered for seg in c.segments for k in [*seg.parts, seg.errors_key] if k}
        garbage = [
            key for key in self.store.keys(layout.bucket, layout.run)
            if OWN_RUN_FILES.fullmatch(rest := key[len(layout.run) :]) and key not in keep
            and (rest.startswith("part-") or rest.endswith(".errors.jsonl") and "/" in rest)
        ]  # fmt: skip
        if garbage:
            self.store.delete(layout.bucket, garbage)


def _part_entry(commit: Commit, segment: Any) -> Part:
    """One segment's output: its data file, plus the ids sidecar for npy."""
    return Part(slice=commit.slice, segment=segment.segment, rows=segment.rows, first_line=segment.first_line,
                last_line=segment.last_line, key=segment.parts[0],
                ids_key=segment.parts[1] if len(segment.parts) > 1 else None)  # fmt: skip


class MergedErrors:
    """The run's errors file: every segment's rejected lines in line order, streamed from the
    segments' files into one object (multipart above 8 MiB) — never staged on local disk, so a run
    with millions of rejected lines needs no more /tmp than one with none."""

    def __init__(self, store: S3Store, bucket: str, keys: list[str]) -> None:
        self.store, self.bucket, self.keys = store, bucket, keys

    def upload(self, key: str) -> None:
        self.store.put_stream(self.bucket, key, _Concat(self.store, self.bucket, self.keys), "application/x-ndjson")


class _Concat:
    """A read-only stream over several S3 objects, one after another (what an upload reads from)."""

    def __init__(self, store: S3Store, bucket: str, keys: list[str]) -> None:
        self._bodies = (store.client.get_object(Bucket=bucket, Key=k)["Body"] for k in keys)
        self._body: Any = None

    def read(self, n: int = -1) -> bytes:
        out = bytearray()
        while n < 0 or len(out) < n:
            if self._body is None:
                self._body = next(self._bodies, None)
                if self._body is None:
                    break
            chunk = self._body.read(1 << 20 if n < 0 else n - len(out))
            if not chunk:
                self._body = None
                continue
            out += chunk
        return bytes(out)
