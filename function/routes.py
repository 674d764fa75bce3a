"""HTTP routes on Powertools resolvers: one set of routes, registered on each front door's resolver.

REST API (payload v1), HTTP API (v2) and Function URLs each get their own Powertools resolver
(their event shapes differ), but the same route functions. Errors from the one hierarchy in
``function.errors`` become HTTP statuses only here, at the edge.
"""

from __future__ import annotations

import binascii
import json
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import (
    APIGatewayHttpResolver,
    APIGatewayRestResolver,
    CORSConfig,
    LambdaFunctionUrlResolver,
    Response,
    content_types,
)
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.metrics import MetricUnit

from function.errors import (
    Bert2VecError,
    MalformedJSONError,
    MethodNotAllowedError,
    ModelNotLoadedError,
    RouteNotFoundError,
)
from function.service import EncodeService, check_payload_size
from function.wire import error_body, native, openai_api, tei

ROUTES: dict[str, str] = {
    "/encode": "POST",
    "/v1/embeddings": "POST",
    "/embed": "POST",
    "/health": "GET",
    "/model": "GET",
}


# The one place an error type becomes an HTTP status. Every ``Bert2VecError`` subclass must have a
# row (a fast test checks); anything unexpected is a 500 with the request id, never a traceback.
HTTP_STATUS: dict[str, int] = {
    "bad_request": 400,
    "malformed_json": 400,
    "empty_input": 400,
    "not_found": 404,
    "method_not_allowed": 405,
    "too_many_texts": 413,
    "text_too_large": 413,
    "response_too_large": 413,
    "validation": 422,
    "text_too_long": 422,
    "unsupported_option": 422,
    "model_not_found": 500,
    "model_not_loaded": 503,
}


def status_for(exc: Bert2VecError) -> int:
    return HTTP_STATUS.get(exc.error_type, 400)


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps(body, separators=(",", ":")),
        headers=headers,
    )


def error_response(exc: Bert2VecError, headers: dict[str, str] | None = None) -> Response:
    return json_response(status_for(exc), error_body(exc), headers)


def parse_json_body(raw: str | None) -> Any:
    """The request body as JSON; a clear 400 for missing, undecodable or malformed bodies."""
    if raw is None or raw == "":
        raise MalformedJSONError("request body is empty; expected a JSON object")
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise MalformedJSONError(
            f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None


class Routes:
    """The route functions, bound to the service that the app initialises once."""

    def __init__(self, service_getter: Callable[[], EncodeService | None], logger: Logger, metrics: Metrics) -> None:
        self._service = service_getter
        self.logger = logger
        self.metrics = metrics

    def service(self) -> EncodeService:
        svc = self._service()
        if svc is None:  # only possible if init failed and the runtime still routed to us
            raise ModelNotLoadedError("the model is not loaded yet")
        return svc

    def _encode(self, req_parse: Callable[[Any], Any], body: Any):
        svc = self.service()
        t0 = time.perf_counter()
        enc = svc.encode(req_parse(body))
        self.metrics.add_metric(name="TextsEncoded", unit=MetricUnit.Count, value=len(enc.request.texts))
        self.metrics.add_metric(name="EncodeLatency", unit=MetricUnit.Milliseconds, value=(time.perf_counter() - t0) * 1e3)
        return svc, enc

    def encode(self, body: Any) -> dict[str, Any]:
        svc, enc = self._encode(native.parse, body)
        return native.render(enc, svc.encoder.name)

    def openai(self, body: Any) -> dict[str, Any]:
        svc = self.service()
        req, fmt = openai_api.parse(body)
        _, enc = self._encode(lambda _: req, body)
        return openai_api.render(enc, svc.encoder.name, fmt, svc.encoder.max_seq_length)

    def tei(self, body: Any) -> list[list[float]]:
        _, enc = self._encode(tei.parse, body)
        return tei.render(enc)

    def reject(self, exc: Bert2VecError) -> tuple[int, dict[str, Any]]:
        """Log a rejected request once and give its status and body (HTTP routes and direct invokes)."""
        status = status_for(exc)
        self.logger.info("request rejected", extra={"status": status, "error_type": exc.error_type, "error": str(exc)})
        return status, error_body(exc)

    def health(self) -> tuple[int, dict[str, Any]]:
        svc = self._service()
        if svc is None:
            return 503, {"status": "loading"}
        return 200, {"status": "ok", "model": svc.encoder.name, "dimension": svc.encoder.vector_length}

    def model(self) -> dict[str, Any]:
        return self.service().encoder.card

    def register(self, app: ApiGatewayResolver) -> ApiGatewayResolver:
        """Attach every route and error mapping to a Powertools resolver."""

        def body() -> Any:
            try:
                raw = app.current_event.decoded_body
            except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
                raise MalformedJSONError(f"request body is marked base64 but cannot be decoded: {exc}") from exc
            return parse_json_body(raw)

        def ok(payload: Any) -> Response:
            text = check_payload_size(json.dumps(payload, separators=(",", ":")))
            return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=text)

        app.post("/encode")(lambda: ok(self.encode(body())))
        app.post("/v1/embeddings")(lambda: ok(self.openai(body())))
        app.post("/embed")(lambda: ok(self.tei(body())))
        app.get("/model")(lambda: ok(self.model()))

        @app.get("/health")
        def _health() -> Response:
            status, payload = self.health()
            return json_response(status, payload)

        @app.exception_handler(Bert2VecError)
        def _known(exc: Bert2VecError) -> Response:
            return json_response(*self.reject(exc))

        @app.not_found
        def _not_found(exc: NotFoundError) -> Response:
            path, method = app.current_event.path, app.current_event.http_method
            allowed = ROUTES.get(path)
            if allowed and allowed != method:
                return error_response(
                    MethodNotAllowedError(f"{method} {path} is not allowed; use {allowed}"), {"Allow": allowed}
                )
            known = ", ".join(f"{m} {p}" for p, m in ROUTES.items())
            return error_response(RouteNotFoundError(f"no route {method} {path}; routes: {known}"))

        @app.exception_handler(Exception)
        def _unexpected(exc: Exception) -> Response:
            request_id = getattr(app.lambda_context, "aws_request_id", None)
            self.logger.exception("unexpected error", extra={"request_id": request_id})
            return json_response(
                500, error_body(message="internal error", error_type="internal", request_id=request_id)
            )

        return app


def cors_config(origins: str) -> CORSConfig | None:
    """``CORS_ORIGINS``: empty = off, ``*`` = any, else a comma-separated allow list."""
    items = [o.strip() for o in origins.split(",") if o.strip()]
    if not items:
        return None
    return CORSConfig(allow_origin=items[0], extra_origins=items[1:] or None, max_age=300)


def build_resolvers(routes: Routes, cors: CORSConfig | None) -> dict[str, ApiGatewayResolver]:
    return {
        "rest": routes.register(APIGatewayRestResolver(cors=cors)),
        "http": routes.register(APIGatewayHttpResolver(cors=cors)),
        "url": routes.register(LambdaFunctionUrlResolver(cors=cors)),
    }


def event_kind(event: Any) -> str:
    """Which front door an event came through: rest | http | url | direct."""
    if not isinstance(event, dict):
        return "direct"
    ctx = event.get("requestContext")
    if isinstance(ctx, dict):
        if event.get("version") == "2.0" and isinstance(ctx.get("http"), dict):
            return "url" if ".lambda-url." in str(ctx.get("domainName", "")) else "http"
        if "httpMethod" in event:
            return "rest"
    return "direct"
