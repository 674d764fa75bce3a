"""Lambda entry points of the S3 bulk path (same image as the encode function, other CMDs).

- ``s3_handler``: S3 ``ObjectCreated`` notifications and EventBridge "Object Created" events →
  encode small objects inline, fan big ones out over the shard queue; ``ObjectRemoved`` /
  ``LifecycleExpiration`` notifications and "Object Deleted" events → the object's vectors, parts
  and errors removed, its manifest a ``deleted`` record (in S3's per-key order: each event's
  ``sequencer``); and S3 Batch Operations invocations (backfilling objects already in S3), answered per task.
- ``sqs_handler``: the shard queue's worker, with partial batch responses
  (``ReportBatchItemFailures``) through Powertools' batch utility.

The model loads and warms at init through the shared start-up (:mod:`bert2vec.core.bootstrap`),
so SnapStart can snapshot it; ``BERT2VEC_LAZY_INIT=1`` defers it to the first event, for tools that
import this module without serving. This handler's part after a SnapStart restore is its AWS
clients, made afresh: credentials and connections must not come from a snapshot.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from bert2vec.bulk.config import BulkConfig
from bert2vec.bulk.outcome import Kind, Outcome
from bert2vec.bulk.s3_engine import Deletion, Engine, WorkItem, s3_client, sqs_client
from bert2vec.bulk.vectors import s3vectors_client
from bert2vec.core.bootstrap import Startup
from bert2vec.core.encoder import Encoder
from bert2vec.core.settings import Settings

# Every variable read once, here, at init: a bad or contradicting value fails init naming it,
# before TensorFlow loads.
settings = Settings.from_env()
logger = Logger(service=settings.bulk_service_name)
metrics = Metrics(namespace=settings.metrics_namespace)
warnings.filterwarnings("ignore", message="No application metrics to publish")


def _build(load: Callable[[], Encoder]) -> Engine:
    cfg = BulkConfig.from_settings(settings)  # a contradicting setting fails init with its names, before TF loads
    encoder = load()
    return Engine(s3_client(), encoder, cfg, sqs_client())


def _fresh_clients(eng: Engine) -> None:
    """After a SnapStart restore: no AWS credentials or connections from the snapshot."""
    eng.s3, eng.sqs = s3_client(), sqs_client()
    if eng.vectors is not None:
        eng.vectors = s3vectors_client()


def _prepare_snapshot(eng: Engine) -> None:
    """Before a snapshot: a function set to chunk loads its long-text signatures now, so no restored
    environment pays that load (about a second) on its first document."""
    if eng.cfg.long_text == "chunk":
        eng.encoder.load_long_text()


startup: Startup[Engine] = Startup(
    _build,
    encoder_of=lambda eng: eng.encoder,
    warm_batch=lambda eng: eng.cfg.batch_size,
    prepare_snapshot=_prepare_snapshot,
    refresh=_fresh_clients,
    logger=logger,
    settings=settings,
)


def engine() -> Engine:
    """The model and clients, loaded once per execution environment."""
    return startup.get()


startup.start()  # at import = in Lambda's init phase, so SnapStart can snapshot the loaded model


def _remaining(context: Any):
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        return context.get_remaining_time_in_millis
    deadline = time.monotonic() + 900
    return lambda: int((deadline - time.monotonic()) * 1000)


@dataclass(frozen=True)
class ObjectEvent:
    """One object change an S3 notification or an EventBridge event reports."""

    bucket: str
    key: str  # decoded
    deleted: bool
    sequencer: str | None  # orders the events of this key (S3 sends it with every event)
    reason: str  # PutObject, DeleteObject, Lifecycle Expiration, ... (S3's word for it)
    at: str | None = None  # the event's time


# S3 notification names that mean the object is gone (a delete marker in a versioned bucket too:
# the current version is then no object at all).
_REMOVED = ("ObjectRemoved:", "LifecycleExpiration:")


def events_in(event: dict[str, Any]) -> list[ObjectEvent]:
    """Every object change an S3 notification or EventBridge event names, keys decoded.

    S3 notifications URL-encode keys (spaces as ``+``); EventBridge events do not."""
    if event.get("source") == "aws.s3" and event.get("detail-type") in ("Object Created", "Object Deleted"):
        detail = event["detail"]
        deleted = event["detail-type"] == "Object Deleted"
        reason = str(detail.get("reason") or ("DeleteObject" if deleted else "PutObject"))
        if deleted and detail.get("deletion-type"):
            reason += f" ({detail['deletion-type']})"
        obj = detail["object"]
        return [ObjectEvent(detail["bucket"]["name"], obj["key"], deleted, obj.get("sequencer"), reason,
                            event.get("time"))]  # fmt: skip
    out = []
    for record in event.get("Records", []):
        name = str(record.get("eventName", ""))
        if record.get("eventSource") != "aws:s3":
            continue
        deleted = name.startswith(_REMOVED)
        if not (deleted or name.startswith("ObjectCreated")):
            continue  # restores, replication, tagging, transitions: the object's bytes did not change
        obj = record["s3"]["object"]
        out.append(ObjectEvent(record["s3"]["bucket"]["name"], unquote_plus(obj["key"]), deleted, obj.get("sequencer"),
                               name, record.get("eventTime")))  # fmt: skip
    return out


def batch_operations(event: dict[str, Any], context: Any, eng: Engine | None = None) -> dict[str, Any]:
    """S3 Batch Operations (schema 1.0 and 2.0): every task goes through ``handle_object``, exactly
    like an upload event, so a backfill and a later upload of the same object never double the
    output (the manifest's ETag makes the second one a no-op)."""
    from aws_lambda_powertools.utilities.data_classes import S3BatchOperationEvent
    from botocore.exceptions import ClientError

    from bert2vec.bulk.aws_errors import error_code, is_transient

    batch = S3BatchOperationEvent(event)
    results: list[dict[str, str]] = []
    eng = eng or engine()
    for task in batch.tasks:
        logger.append_keys(bucket=task.s3_bucket, key=task.s3_key, task_id=task.task_id)
        version = task.s3_version_id or None
        try:
            outcome = eng.handle_object(task.s3_bucket, task.s3_key, _remaining(context), version_id=version,
                                        skip_unsupported=True)  # fmt: skip
            code, text = outcome.task_result()
        except Exception as exc:  # noqa: BLE001 - every task gets an answer; S3 retries temporary ones
            code = "TemporaryFailure" if is_transient(exc) or not isinstance(exc, ClientError) else "PermanentFailure"
            text = f"{error_code(exc) or type(exc).__name__}: {exc}"
        logger.info("batch task", extra={"result": code, "detail": text})
        results.append({"taskId": task.task_id, "resultCode": code, "resultString": text[:1000]})
    # Built here rather than with Powertools' response class, which allows one task per invocation
    # (what S3 sends today); the schema itself is a list.
    return {
        "invocationSchemaVersion": batch.invocation_schema_version,
        "treatMissingKeysAs": "PermanentFailure",
        "invocationId": batch.invocation_id,
        "results": results,
    }


def scheduled_reconcile(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """``{"bert2vec": "reconcile", "bucket": ..., "prefix"?: ...}``: repair drift between the bucket and
    its outputs (``bert-encode --reconcile --apply`` inside the stack). Repairs stop before the
    deadline; the next scheduled run goes on where the drift still is."""
    from bert2vec.bulk.reconcile import reconcile

    eng = engine()
    drift = reconcile(eng, event["bucket"], event.get("prefix") or eng.cfg.input_prefix, apply=True,
                      remaining_ms=_remaining(context))  # fmt: skip
    logger.info("reconcile", extra={"drift": drift.summary()})
    return {"reconcile": drift.summary()}


def _record(outcome: Outcome) -> None:
    """The one place an outcome becomes a log line and metrics."""
    logger.info("object handled", extra={"summary": outcome.summary()})
    metrics.add_metric(name="SlicesEncoded", unit=MetricUnit.Count, value=outcome.slices_done)
    if outcome.kind is Kind.ENCODED:
        metrics.add_metric(name="LinesEncoded", unit=MetricUnit.Count, value=outcome.lines_encoded())


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def s3_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "invocationSchemaVersion" in event:
        return batch_operations(event, context)
    if event.get("bert2vec") == "reconcile":  # the template's optional schedule (ReconcileSchedule)
        return scheduled_reconcile(event, context)
    eng = engine()
    results = []
    for change in events_in(event):
        logger.append_keys(bucket=change.bucket, key=change.key)
        if change.deleted:
            deletion = Deletion(change.bucket, change.key, change.sequencer, change.reason, change.at)
            outcome = eng.handle_deleted(deletion, _remaining(context))
        else:
            outcome = eng.handle_object(change.bucket, change.key, _remaining(context), sequencer=change.sequencer)
        _record(outcome)
        results.append(outcome.summary())
    return {"objects": results}


# Report every failed shard individually, even when all failed (the default would raise instead).
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def _process_shard(record: SQSRecord, context: Any) -> dict[str, Any]:
    eng = engine()
    body = record.json_body
    if isinstance(body, dict) and "purge" in body:  # a deletion's clean-up, continued
        outcome = eng.handle_deleted(Deletion.from_message(body), _remaining(context))
        _record(outcome)
        return outcome.summary()
    item = WorkItem.from_message(record.body)
    try:
        outcome = eng.run(item, _remaining(context))
    except Exception as exc:
        receives = int(record.attributes.approximate_receive_count or 1)
        if receives >= eng.cfg.max_receives:
            logger.exception("shard failed on its last receive; marking it failed before the DLQ",
                             extra={"key": item.key, "first_slice": item.first_slice})
            eng.fail(item, f"{type(exc).__name__}: {exc}")
        raise
    _record(outcome)
    return outcome.summary()


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def sqs_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(
        event=event,
        record_handler=lambda record: _process_shard(record, context),
        processor=processor,
        context=context,
    )
