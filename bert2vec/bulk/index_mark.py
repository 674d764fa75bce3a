"""One index, one model: the record beside the outputs of which model an S3 Vectors index holds.

Vectors of two models ranked against one query would be meaningless, so the first writer of an
index records its model (``<OUTPUT_PREFIX>_indexes/<hash of vector bucket/index>.json``, created
once) and every later writer compares before it plans any work.
"""

from __future__ import annotations

from typing import Any

from bert2vec.bulk.config import BulkConfig, object_hash
from bert2vec.bulk.store import Conflict, S3Store
from bert2vec.core.encoder import Encoder
from bert2vec.files import manifest as manifests

INDEX_MARKS = "_indexes/"  # under OUTPUT_PREFIX: which model each S3 Vectors index holds


class IndexMark:
    """Checks (once per execution environment, once it agrees) that the index holds this model."""

    def __init__(self, store: S3Store, encoder: Encoder, cfg: BulkConfig) -> None:
        self.store = store
        self.encoder = encoder
        self.cfg = cfg
        self._agreed = False  # the record named this model: nothing can change that while we run

    def refusal(self, bucket: str) -> str | None:
        """Why this function must not write into its S3 Vectors index (another model's vectors are
        there), or None."""
        if self.cfg.output_format != "s3vectors" or self._agreed:
            return None
        mine = manifests.model_summary(self.encoder.card)
        if not mine.get("checksum"):
            return None  # a model without a checksum cannot be told apart: nothing to record
        out = self.cfg.output_bucket or bucket
        mark = self.key()
        there = self.store.get_json(out, mark)
        if there is None:
            first = self._legacy(out) or {"model": mine, "since": manifests.now()}
            try:
                self.store.create(out, mark, {"vector_bucket": self.cfg.vector_bucket, "vector_index": self.cfg.vector_index,
                                              "model": first["model"], "since": first.get("since")})  # fmt: skip
                there = first
            except Conflict:
                there = self.store.get_json(out, mark) or first
        theirs = there.get("model") or {}
        if theirs.get("checksum") != mine["checksum"]:
            return (f"the vector index {self.cfg.vector_bucket}/{self.cfg.vector_index} holds vectors of model "
                    f"{theirs.get('name')!r} (checksum {str(theirs.get('checksum'))[:16]}), this function runs "
                    f"{mine.get('name')!r} (checksum {str(mine['checksum'])[:16]}): vectors of two models cannot share "
                    f"an index. Write to a new index and backfill (docs/s3-bulk.md, 'Changing the model'); record: "
                    f"s3://{out}/{mark}")  # fmt: skip
        self._agreed = True
        return None

    def key(self) -> str:
        """Where the index's model is recorded: ``_indexes/<hash of vector bucket/index>.json``. Named
        by a hash because an index may be called ``x.manifest``: under its own name the record would
        be ``.../x.manifest.json``, the manifest key of an input named ``<INPUT_PREFIX>_indexes/<bucket>/x``,
        which could then replace it."""
        assert self.cfg.vector_bucket and self.cfg.vector_index
        return f"{self.cfg.output_prefix}{INDEX_MARKS}{object_hash(self.cfg.vector_bucket, self.cfg.vector_index)}.json"

    def _legacy(self, out: str) -> dict[str, Any] | None:
        """The record releases before the hashed name kept (``_indexes/<vector bucket>/<index>.json``),
        carried over by the first writer after the deploy so a function of another model is still
        refused. Only a record that says it is this index's counts (that key can be a manifest)."""
        there = self.store.get_json(out, f"{self.cfg.output_prefix}{INDEX_MARKS}{self.cfg.vector_bucket}/"
                                         f"{self.cfg.vector_index}.json")  # fmt: skip
        if not there or there.get("vector_bucket") != self.cfg.vector_bucket or \
                there.get("vector_index") != self.cfg.vector_index or not isinstance(there.get("model"), dict):  # fmt: skip
            return None
        return there
