"""What a run takes out of the S3 Vectors index: older versions' keys when it completes, its own
when it lost, a deleted object's — record by record, paced against the deadline.

Every attempt records the keys it puts (``_vector_keys/`` records in the run directory) before it
puts them, so whatever is in the index can be found again from S3 alone. A clean-up deletes a
record's keys, then the record: stopped anywhere (out of time, :class:`CleanupUnfinished`), the
next invocation lists only what is left and goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from bert2vec.bulk.config import OWN_RUN_FILES, OutputLayout, own_runs, run_name
from bert2vec.bulk.state import KeyRecord, WorkItem
from bert2vec.bulk.store import Conflict, S3Store
from bert2vec.bulk.vectors import VectorTarget, read_keys
from bert2vec.files.manifest import Part

log = logging.getLogger("bert2vec.bulk")
CLEANUP_MARGIN_MS = 20_000  # a clean-up stops this long before the deadline and is handed on


class CleanupUnfinished(Exception):
    """A clean-up of the index ran out of time; what is left is picked up by the next invocation
    (each key record is deleted once its keys are, so a resumed clean-up never starts over)."""


def no_deadline() -> int:
    """``remaining_ms`` for callers without a deadline (tools, tests)."""
    return 1 << 62


class IndexCleanup:
    """Deletes recorded keys from the index; given where an item's run lives and its index."""

    def __init__(
        self, store: S3Store, *, layout: Callable[[WorkItem], OutputLayout],
        vector_target: Callable[[WorkItem], VectorTarget],
    ) -> None:  # fmt: skip
        self.store = store
        self.layout = layout
        self.vector_target = vector_target

    def records(self, layout: OutputLayout, prefix: str) -> list[tuple[str, KeyRecord]]:
        """The run's own key records (never an object a crafted input key put under the directory)."""
        out = []
        for key in self.store.keys(layout.bucket, prefix):
            if not OWN_RUN_FILES.fullmatch(key[len(layout.run) :]):
                continue
            data = self.store.get_json(layout.bucket, key)
            if data is not None:
                out.append((key, KeyRecord.from_dict(data)))
        return out

    def other_versions(self, item: WorkItem, layout: OutputLayout) -> dict[str, list[tuple[str, KeyRecord]]]:
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

    def clean(
        self, item: WorkItem, layout: OutputLayout, older: dict[str, list[tuple[str, KeyRecord]]],
        parts: list[Part], remaining_ms: Callable[[], int] = no_deadline,
    ) -> int:  # fmt: skip
        """Delete older runs' keys and this run's uncommitted ones; the count, fixed once per run.

        Resumable: the count is written before anything is deleted, each older run's key record is
        deleted once its keys are, and before each record the time its keys take at the index's
        documented write rate is checked against the deadline — out of time, :class:`CleanupUnfinished`
        hands the rest to the next invocation, which lists only what is left."""
        target = self.vector_target(item)
        committed: set[str] = set()
        for part in parts:
            committed |= read_keys(self.store.body(layout.bucket, str(part.key)))
        own = {k for _, rec in self.records(layout, layout.vector_keys_prefix) for k in rec.keys}
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
        layout = self.layout(item)
        total = self.delete_recorded(layout.bucket, self.records(layout, layout.vector_keys_prefix),
                                     self.vector_target(item), remaining_ms, f"s3://{item.bucket}/{item.key}")  # fmt: skip
        if total:
            log.warning("s3://%s/%s (etag %s, epoch %d) is no longer current: deleted its %d vectors", item.bucket,
                        item.key, item.etag, item.epoch, total)  # fmt: skip
        return total
