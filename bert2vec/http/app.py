"""Lambda entry point for synchronous encoding: ``CMD ["function.app.handler"]``.

Init (once per execution environment, during Lambda's init phase) is the shared start-up of
:mod:`bert2vec.core.bootstrap`: size TensorFlow's thread pools from the cgroup CPU quota, load
the SavedModel baked into the image (``MODEL_DIR``), run one warm-up call so the first request does
not pay for graph optimisation, and register the SnapStart hooks (this handler refreshes the vector
index client after a restore). ``/health`` reports ready only after that; ``BERT2VEC_LAZY_INIT=1``
defers it to the first ``init()``.

``handler`` routes API Gateway REST (v1), HTTP API (v2) and Function URL events through Powertools
resolvers, and treats anything else as a direct invoke: ``{"text"}`` / ``{"texts"}`` → the
``/encode`` body, ``{"inputs"}`` → TEI's list of vectors, or ``{"error", "error_type", "status"}``
on bad input.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from bert2vec.core.bootstrap import Startup
from bert2vec.core.errors import Bert2VecError
from bert2vec.core.settings import Settings
from bert2vec.http.payload import check_payload_size
from bert2vec.http.routes import Routes, build_resolvers, cors_config, event_kind
from bert2vec.http.search import VectorSearch
from bert2vec.http.service import EncodeService, Limits

# Every variable read once, here, at init: a bad value fails init naming the variable.
settings = Settings.from_env()
logger = Logger(service=settings.service_name)
metrics = Metrics(namespace=settings.metrics_namespace, service=settings.service_name)

# Health checks and rejected requests publish no metrics; that is expected, not worth a warning.
warnings.filterwarnings("ignore", message="No application metrics to publish")

vector_search = VectorSearch.from_settings(settings)
startup: Startup[EncodeService] = Startup(
    lambda load: EncodeService(load(), Limits.from_settings(settings)),
    encoder_of=lambda svc: svc.encoder,
    warm_batch=lambda svc: svc.encoder.workers * 8,
    refresh=lambda _: vector_search.refresh_client(),  # no AWS credentials or connections from the snapshot
    logger=logger,
    settings=settings,
)
#: import_tf_s / load_s / warmup_s / threads / threads_applied of this environment's start-up.
INIT_TIMINGS = startup.timings


def init(model_dir: str | None = None) -> EncodeService:
    """Load and warm the model once; later calls return the same service."""
    return startup.get(model_dir)


routes = Routes(lambda: startup.value, logger, metrics, vector_search)
resolvers = build_resolvers(routes, cors_config(settings.cors_origins))


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


startup.start()  # at import = in Lambda's init phase (a missing model is an init error)
