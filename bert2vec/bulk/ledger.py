"""The per-object ledger: what S3 last said about a key, and which *epoch* of outputs is current.

S3 delivers events at least once, late and out of order; each carries ``sequencer``, a hex string
that orders the PUTs and DELETEs **of one key** (compare after left-padding to equal length; never
across keys). The ledger keeps, per input object, the highest sequencer seen and what it was
(``created`` / ``deleted``), so that

- a late event is recognised as late: a delete older than the last create never removes the
  re-created object, and a create older than the last delete never brings a deleted object back;
- every event that changes the object (a new upload, a deletion) moves the object to a new
  *epoch*. Runs carry the epoch they started in and name their run directory after it, and a run
  publishes (and keeps its vectors) only while its epoch is still the ledger's: a run that started
  before a deletion or a newer upload — a late shard, a killed and retried worker, a deploy's
  queued hand-off — can never write over what came after it.

Events without a sequencer (Batch Operations tasks, the reconcile command) read the epoch but never
move the sequencer. The record lives in the output bucket under ``<OUTPUT_PREFIX>_objects/`` named
by a hash of bucket and key (:func:`~bert2vec.bulk.config.object_hash`, which names the
object's run home too), so no input key can reach or collide with it. Every write is
conditional (``If-None-Match`` / ``If-Match``), so two events racing each other never both win.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from bert2vec.bulk.config import object_hash
from bert2vec.bulk.store import Conflict, S3Store
from bert2vec.files import manifest as manifests

LEDGER_DIR = "_objects/"
TRIES = 8  # conditional writes lost to concurrent events before giving up (the invocation is retried)


def sequencer_order(a: str, b: str) -> int:
    """-1, 0 or 1 as S3 sequencer ``a`` is before, equal to or after ``b`` (one key's events only)."""
    width = max(len(a), len(b))
    x, y = a.upper().rjust(width, "0"), b.upper().rjust(width, "0")
    return (x > y) - (x < y)


@dataclass
class Entry:
    """One object's line in the ledger."""

    bucket: str
    key: str
    epoch: int = 0
    sequencer: str | None = None  # the highest sequencer seen for the key
    event: str | None = None  # "created" | "deleted": what that sequencer was
    at: str | None = None
    reason: str | None = None  # why the epoch last moved

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Entry:
        return cls(**{k: d.get(k) for k in cls.__dataclass_fields__})  # type: ignore[arg-type]


@dataclass(frozen=True)
class Verdict:
    """What the ledger made of one event."""

    entry: Entry
    late: bool  # a newer event for the key was recorded first: this one changes nothing
    moved: bool  # this event started a new epoch


class Ledger:
    def __init__(self, store: S3Store, bucket: str, prefix: str) -> None:
        self.store = store
        self.bucket = bucket  # the output bucket
        self.prefix = prefix  # OUTPUT_PREFIX

    def record_key(self, bucket: str, key: str) -> str:
        return f"{self.prefix}{LEDGER_DIR}{object_hash(bucket, key)}.json"

    def read(self, bucket: str, key: str) -> Entry:
        got = self.store.get_json(self.bucket, self.record_key(bucket, key))
        return Entry.from_dict(got) if got else Entry(bucket, key)

    def epoch(self, bucket: str, key: str) -> int:
        return self.read(bucket, key).epoch

    def observe(self, bucket: str, key: str, sequencer: str, event: str) -> Verdict:
        """Record an S3 event for the key, in S3's order rather than arrival order.

        The same event again (a redelivery) is neither late nor a move; an older one is late; a
        newer one moves the epoch on."""

        def decide(entry: Entry) -> Verdict | Entry:
            if entry.sequencer is not None:
                order = sequencer_order(sequencer, entry.sequencer)
                if order < 0:
                    return Verdict(entry, late=True, moved=False)
                if order == 0:  # a redelivery of the event that is already recorded
                    return Verdict(entry, late=False, moved=False)
            return Entry(bucket, key, entry.epoch + 1, sequencer.upper(), event, manifests.now(), f"{event} {sequencer}")

        return self._update(bucket, key, decide)

    def move_from(self, bucket: str, key: str, epoch: int, reason: str) -> Verdict:
        """Start a new epoch, but only if the object is still in ``epoch`` (compare and swap).

        Many shards of one run can see the same reason to restart (a deploy changed the model under
        them); only the first one's move counts (``moved``), the rest find the epoch already moved."""

        def decide(entry: Entry) -> Verdict | Entry:
            if entry.epoch != epoch:
                return Verdict(entry, late=True, moved=False)
            return Entry(bucket, key, epoch + 1, entry.sequencer, entry.event, manifests.now(), reason)

        return self._update(bucket, key, decide)

    def _update(self, bucket: str, key: str, decide: Callable[[Entry], Verdict | Entry]) -> Verdict:
        """Read the record, let ``decide`` answer (a verdict) or give the next entry, and write that
        on the condition that nobody wrote in between; a lost race reads again."""
        rkey = self.record_key(bucket, key)
        for _ in range(TRIES):
            there = self.store.read(self.bucket, rkey)
            decided = decide(Entry.from_dict(there.data) if there else Entry(bucket, key))
            if isinstance(decided, Verdict):
                return decided
            try:
                self._write(rkey, decided, there)
            except Conflict:
                continue
            return Verdict(decided, late=False, moved=True)
        raise RuntimeError(f"the ledger record of s3://{bucket}/{key} kept changing under {TRIES} tries")

    def _write(self, rkey: str, entry: Entry, there: Any) -> None:
        data = asdict(entry)
        if there is None:
            self.store.create(self.bucket, rkey, data)
        else:
            self.store.replace(self.bucket, rkey, data, there.etag)
