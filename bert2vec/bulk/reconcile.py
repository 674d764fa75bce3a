"""Reconcile: compare what the bucket holds now with the manifests and the index, and repair drift.

Events are the normal path, but S3 may send one notification for two simultaneous writes to a key,
and a misconfigured or disabled rule loses events. This is the way back to a true index (in the
spirit of LangChain's indexing API with ``cleanup="full"``): list the input objects under a prefix,
the manifests under the output prefix and (``s3vectors``) every vector of the index, then

- **missing**: an input with no manifest (or a ``deleted`` / ``retryable`` one) → encode it;
- **outdated**: an input whose manifest describes another ETag → encode its current version (the
  completion removes the old version's vectors and files);
- **orphaned**: a manifest (not yet ``deleted``) whose input is gone → the deletion path (vectors,
  parts, errors removed, a ``deleted`` record);
- **stray vectors**: vectors of this prefix whose object is gone or whose ETag is not the object's
  current one, and that no run will clean up → deleted.

Repairs go through the engine, which looks for runs in both run homes (the hashed ``_runs/`` one and
the previous layout's under the input's name), so a repair of an object encoded by an older release
removes its old runs too. The summary counts ``old_layout_runs`` (when there are any): run
directories still in the previous layout under the prefix — while any are left, anywhere, the
engine's read path for them must stay (docs/s3-bulk.md, "Run state").

A dry run (the default) only counts; ``apply`` repairs through the same engine the events use, so
every repair has the event path's guarantees (epochs, exactly once, paced clean-up).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from bert2vec.files.manifest import Manifest
from bert2vec.files.readers import InputFormat, UnsupportedFormatError

log = logging.getLogger("bert2vec.bulk")


@dataclass
class Drift:
    """What a reconcile found (and, with ``apply``, repaired)."""

    objects: int = 0  # inputs under the prefix
    up_to_date: int = 0
    missing: list[str] = field(default_factory=list)
    outdated: list[str] = field(default_factory=list)
    orphaned: list[str] = field(default_factory=list)  # manifests whose input is gone
    stray_vectors: int = 0
    old_layout_runs: int = 0  # run directories in the previous layout (not drift: what the migration has left)
    applied: bool = False
    unfinished: bool = False  # the deadline came before every repair was started (the next run goes on)
    outcomes: dict[str, int] = field(default_factory=dict)  # what the repairs answered, by outcome

    def summary(self) -> dict[str, Any]:
        return {
            "objects": self.objects, "up_to_date": self.up_to_date, "missing": len(self.missing),
            "outdated": len(self.outdated), "orphaned": len(self.orphaned), "stray_vectors": self.stray_vectors,
            "applied": self.applied, **({"outcomes": self.outcomes} if self.applied else {}),
            **({"unfinished": True} if self.unfinished else {}),
            **({"old_layout_runs": self.old_layout_runs} if self.old_layout_runs else {}),
        }  # fmt: skip

    @property
    def clean(self) -> bool:
        return not (self.missing or self.outdated or self.orphaned or self.stray_vectors)


def reconcile(engine: Any, bucket: str, prefix: str, *, apply: bool = False,
              remaining_ms: Callable[[], int] | None = None) -> Drift:  # fmt: skip
    """Compare ``s3://bucket/prefix`` (under the engine's ``INPUT_PREFIX``) with its outputs; repair with ``apply``."""
    from bert2vec.bulk.s3_engine import Deletion

    cfg, store = engine.cfg, engine.store
    from bert2vec.bulk.finalizer import no_deadline

    remaining = remaining_ms or no_deadline
    prefix = prefix or cfg.input_prefix
    if cfg.input_prefix and not prefix.startswith(cfg.input_prefix):
        raise ValueError(f"s3://{bucket}/{prefix} is not under the input prefix {cfg.input_prefix!r}")
    drift = Drift()
    current: dict[str, str] = {}
    for page in store.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            if engine.ignore_reason(bucket, key):
                continue
            try:
                InputFormat.from_key(key, cfg.reader)
            except UnsupportedFormatError:
                continue
            current[key] = str(obj["ETag"]).strip('"')
    drift.objects = len(current)
    out_bucket = cfg.output_bucket or bucket
    manifests: dict[str, Manifest] = {}
    out_prefix = cfg.output_prefix + prefix[len(cfg.input_prefix) :]
    rest: list[str] = []
    for key in store.keys(out_bucket, out_prefix):
        if not key.endswith(".manifest.json"):
            rest.append(key)
            continue
        m = Manifest.from_dict(store.get_json(out_bucket, key) or {})
        if m.input.bucket == bucket and m.input.key is not None and m.input.key.startswith(prefix):
            manifests[m.input.key] = m
    drift.old_layout_runs = _old_layout_runs(cfg, bucket, current.keys() | manifests.keys(), rest)
    for key, etag in sorted(current.items()):
        found = manifests.get(key)
        if found is None or found.status == "deleted" or found.retryable:
            drift.missing.append(key)
        elif found.etag != etag:
            drift.outdated.append(key)
        else:
            drift.up_to_date += 1
    drift.orphaned = sorted(k for k, m in manifests.items() if k not in current and m.status != "deleted")
    stray: list[str] = []
    if cfg.output_format == "s3vectors" and engine.vectors is not None:
        repaired = set(drift.missing) | set(drift.outdated) | set(drift.orphaned)  # their runs clean up
        for v in _all_vectors(engine.vectors, cfg.vector_bucket, cfg.vector_index):
            meta = v.get("metadata") or {}
            if meta.get("source_bucket") != bucket or not str(meta.get("source_key", "")).startswith(prefix):
                continue
            key = meta["source_key"]
            if key not in repaired and current.get(key) != meta.get("etag"):
                stray.append(v["key"])
    drift.stray_vectors = len(stray)
    if not apply:
        return drift
    drift.applied = True

    def count(outcome: Any) -> None:
        drift.outcomes[outcome.kind.value] = drift.outcomes.get(outcome.kind.value, 0) + 1

    def out_of_time() -> bool:
        drift.unfinished = drift.unfinished or remaining() < cfg.time_margin_ms
        return drift.unfinished

    for key in drift.orphaned:
        if out_of_time():
            break
        count(engine.handle_deleted(Deletion(bucket, key, None, "reconcile: the object is gone"), remaining))
    for key in drift.missing + drift.outdated:
        if out_of_time():
            break
        count(engine.handle_object(bucket, key, remaining))
    if stray:
        target = engine.worker.vector_target(_any_item(bucket))
        target.delete(stray)
    log.info("reconcile s3://%s/%s: %s", bucket, prefix, drift.summary())
    return drift


def _old_layout_runs(cfg: Any, bucket: str, keys: Iterable[str], listed: list[str]) -> int:
    """How many run directories of the previous layout the listing of the outputs holds: those in
    the old run home (``<base>/``) of an input or a manifest's input, named like the engine names them."""
    from bert2vec.bulk.config import OutputLayout, own_runs

    homes = {h for key in keys if (h := OutputLayout.for_object(cfg, bucket, key, "", 0).legacy_home)}
    runs: set[str] = set()
    for key in listed:
        for depth in (2, 3):  # <home><run>/<file> or <home><run>/<dir>/<file>
            home = key.rsplit("/", depth)[0] + "/"
            if key.count("/") >= depth and home in homes:
                runs.update(own_runs(home, [key]))
    return len(runs)


class _NoModel:
    """A dry run never encodes: it needs the engine's listing and layout, not TensorFlow."""

    card: dict[str, Any] = {}
    vector_length = 0
    max_seq_length = 0
    workers = 1

    def encode(self, texts: list[str], batch_size: int = 8) -> Any:
        raise RuntimeError("a reconcile dry run does not encode")


def reconcile_engine(model_dir: str | None, *, load: bool) -> Any:
    """The bulk path's engine as the deployed functions build it (settings from the environment);
    with ``load`` the model too (to encode), else a stand-in that never encodes (a dry run)."""
    from bert2vec.bulk.config import BulkConfig
    from bert2vec.bulk.s3_engine import Engine, s3_client, sqs_client

    cfg = BulkConfig.from_env()
    if load:
        from bert2vec.core.encoder import Encoder

        encoder: Any = Encoder.load(model_dir)
    else:
        encoder = _NoModel()
    return Engine(s3_client(), encoder, cfg, sqs_client() if cfg.queue_url else None)


def _all_vectors(client: Any, vector_bucket: str, index: str) -> Any:
    kwargs: dict[str, Any] = {"vectorBucketName": vector_bucket, "indexName": index, "returnMetadata": True,
                              "maxResults": 1000}  # fmt: skip
    while True:
        page = client.list_vectors(**kwargs)
        yield from page.get("vectors", [])
        if not page.get("nextToken"):
            return
        kwargs["nextToken"] = page["nextToken"]


def _any_item(bucket: str) -> Any:
    from bert2vec.bulk.state import WorkItem

    return WorkItem(bucket, "", "", 0, "txt", False, "bytes", 1)
