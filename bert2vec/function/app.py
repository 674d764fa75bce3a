"""Lambda entry point for synchronous encoding: ``CMD ["function.app.handler"]``.

Init (once per execution environment, during Lambda's init phase): size TensorFlow's thread pools
from the cgroup CPU quota, load the SavedModel baked into the image (``MODEL_DIR``), and run one
warm-up call so the first request does not pay for graph optimisation. ``/health`` reports ready
only after that.

``handler`` routes API Gateway REST (v1), HTTP API (v2) and Function URL events through Powertools
resolvers, and treats anything else as a direct invoke: ``{"text"}`` / ``{"texts"}`` → the
``/encode`` body, ``{"inputs"}`` → TEI's list of vectors, or ``{"error", "error_type", "status"}``
on bad input.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from bert2vec.function import lifecycle
from bert2vec.function.cpu import configure_tensorflow_threads, usable_cpus
from bert2vec.function.encoder import Encoder
from bert2vec.function.errors import Bert2VecError
from bert2vec.function.routes import Routes, build_resolvers, cors_config, event_kind
from bert2vec.function.search import VectorSearch
from bert2vec.function.service import EncodeService, Limits, check_payload_size
from bert2vec.function.tf_quiet import import_tensorflow

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "bert2vec"))
metrics = Metrics(
    namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Bert2Vec"),
    service=os.environ.get("POWERTOOLS_SERVICE_NAME", "bert2vec"),
)

# Health checks and rejected requests publish no metrics; that is expected, not worth a warning.
warnings.filterwarnings("ignore", message="No application metrics to publish")

WARMUP_TEXTS = ["warm up", "The quick brown fox jumps over the lazy dog."]

_service: EncodeService | None = None
INIT_TIMINGS: dict[str, float] = {}


def init(model_dir: str | None = None) -> EncodeService:
    """Load and warm the model once; later calls return the same service."""
    global _service
    if _service is not None:
        return _service
    t0 = time.perf_counter()
    import_tensorflow()  # without the C++ start-up banners in the function's logs
    threads = usable_cpus()
    threads_applied = configure_tensorflow_threads(threads)
    t1 = time.perf_counter()
    encoder = Encoder.load(model_dir, workers=threads)
    t2 = time.perf_counter()
    encoder.encode(WARMUP_TEXTS)
    t3 = time.perf_counter()
    INIT_TIMINGS.update(
        import_tf_s=t1 - t0, load_s=t2 - t1, warmup_s=t3 - t2, threads=threads, threads_applied=threads_applied
    )
    logger.info("model ready", extra={"model": encoder.name, "model_dir": str(encoder.model_dir), **INIT_TIMINGS})
    _service = EncodeService(encoder, Limits.from_env())
    return _service


vector_search = VectorSearch.from_env()
routes = Routes(lambda: _service, logger, metrics, vector_search)
resolvers = build_resolvers(routes, cors_config(os.environ.get("CORS_ORIGINS", "")))


def direct(event: Any) -> dict[str, Any] | list[list[float]]:
    """Direct invoke (``aws lambda invoke``, Step Functions, SDKs): no HTTP envelope.

    ``{"text"}`` / ``{"texts"}`` answer like ``/encode``; ``{"inputs"}`` (the SageMaker / TEI
    payload) answers like TEI's ``/embed``: a list of vectors. An answer over Lambda's 6 MB
    synchronous limit is the same ``response_too_large`` error object as over HTTP, not the
    runtime's payload error after all the work.
    """
    try:
        if isinstance(event, dict) and "inputs" in event and not ({"text", "texts"} & event.keys()):
            out: Any = routes.tei(event)
        else:
            out = routes.encode(event)
        check_payload_size(json.dumps(out))  # as awslambdaric serialises it: ", " and ": " separators
        return out
    except Bert2VecError as exc:
        status, body = routes.reject(exc)
        return {**body, "status": status}


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any] | list[list[float]]:
    kind = event_kind(event)
    logger.append_keys(event_source=kind)
    if kind == "direct":
        return direct(event)
    return resolvers[kind].resolve(event, context)


def _before_snapshot() -> None:
    """SnapStart: warm every shape the first requests will hit, so no restored environment pays for it."""
    svc = init()
    lifecycle.warm_shapes(svc.encoder, svc.encoder.workers * 8)


def _after_restore() -> None:
    """SnapStart: fresh randomness per environment; say so if the CPU quota differs from the snapshot's."""
    lifecycle.reseed()
    vector_search.refresh_client()  # no AWS credentials or connections from the snapshot
    if _service is not None and usable_cpus() != _service.encoder.workers:
        logger.warning("CPU quota changed since the snapshot", extra={"cpus": usable_cpus(), "workers": _service.encoder.workers})


if os.environ.get("BERT2VEC_LAZY_INIT") != "1":
    init()
    lifecycle.register(before_snapshot=_before_snapshot, after_restore=_after_restore, logger=logger)
