"""HTTP routes on Powertools resolvers: one set of routes, registered on each front door's resolver.

REST API (payload v1), HTTP API (v2) and Function URLs each get their own Powertools resolver
(their event shapes differ), but the same route functions. Each route is declared once, in
``ROUTES`` (method, path, answering method, error shape, body, CORS preflight); the resolvers are
registered from that list and a fast test checks template.yaml's API events against it. Errors
from the one hierarchy in ``bert2vec.core.errors`` become HTTP statuses at the edge
(``bert2vec.http.statuses``), in the error shape the route declares.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
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

import bert2vec
from bert2vec.core.errors import (
    Bert2VecError,
    MalformedJSONError,
    MethodNotAllowedError,
    ModelNotLoadedError,
    RouteNotFoundError,
    UnsupportedOptionError,
)
from bert2vec.http import search
from bert2vec.http.payload import check_payload_size
from bert2vec.http.route_table import ROUTES, ErrorShape, Route, shape_for
from bert2vec.http.search import VectorSearch
from bert2vec.http.service import EncodeService
from bert2vec.http.statuses import error_body_for, error_headers, status_for
from bert2vec.http.wire import clip, error_body, native, openai_api, tei

# What a logged ``param`` may look like: the name of a field the wire formats define, never a value.
FIELD_NAME = re.compile(r"[a-z][a-z_]{0,39}")

def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps(body, separators=(",", ":")),
        headers=headers,
    )


def error_response(exc: Bert2VecError, shape: ErrorShape, headers: dict[str, str] | None = None) -> Response:
    status = status_for(exc, shape)
    return json_response(status, error_body_for(shape, status, exc), {**(error_headers(exc) or {}), **(headers or {})})


def decode_body(raw: str | None, is_base64: bool) -> str | None:
    """The body as text. API Gateway marks binary bodies ``isBase64Encoded``: decode them strictly,
    so a body that is not base64 says so instead of decoding to nothing."""
    if not is_base64 or raw is None:
        return raw
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedJSONError(
            f"request body is marked base64 (isBase64Encoded) but is not valid base64: {exc}"
        ) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedJSONError(
            f"request body is not UTF-8 text ({exc.reason} at byte {exc.start}); send JSON encoded as UTF-8"
        ) from None


def _no_constant(name: str) -> Any:
    """Python's json accepts ``NaN`` / ``Infinity`` / ``-Infinity``; JSON does not, nor does any
    AWS API a value could be passed on to (botocore would send a body that is not JSON)."""
    raise MalformedJSONError(f"request body is not valid JSON: {name} is not a JSON number")


def _finite_float(text: str) -> float:
    """A JSON number Python would turn into ``inf`` (``1e400``) is refused like ``Infinity``."""
    value = float(text)
    if math.isinf(value):
        raise MalformedJSONError(f"request body has the number {clip(text)}, too large for a 64-bit float")
    return value


def parse_json_body(raw: str | None) -> Any:
    """The request body as JSON; a clear 400 for missing, undecodable or malformed bodies."""
    if raw is None or raw == "":
        raise MalformedJSONError("request body is empty; expected a JSON object")
    try:
        return json.loads(raw, parse_constant=_no_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise MalformedJSONError(
            f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise MalformedJSONError("request body nests JSON arrays or objects too deeply to parse") from None
    except ValueError as exc:  # e.g. an integer over Python's 4,300-digit conversion limit
        raise MalformedJSONError(f"request body is not usable JSON: {clip(str(exc))}") from None


def package_version() -> str:
    """The served code's version (the image holds ``function/`` only, not the installed package)."""
    return bert2vec.__version__


class Routes:
    """The route functions, bound to the service that the app initialises once."""

    def __init__(
        self,
        service_getter: Callable[[], EncodeService | None],
        logger: Logger,
        metrics: Metrics,
        vector_search: VectorSearch | None = None,
    ) -> None:
        self._service = service_getter
        self.logger = logger
        self.metrics = metrics
        self.vector_search = vector_search or VectorSearch(None, None)

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
        self.metrics.add_metric(
            name="EncodeLatency", unit=MetricUnit.Milliseconds, value=(time.perf_counter() - t0) * 1e3
        )
        return svc, enc

    def encode(self, body: Any) -> dict[str, Any]:
        svc, enc = self._encode(native.parse, body)
        return native.render(enc, svc.encoder.name)

    def openai(self, body: Any) -> dict[str, Any]:
        svc = self.service()
        req, fmt = openai_api.parse(body, svc.encoder.vector_length)
        _, enc = self._encode(lambda _: req, body)
        return openai_api.render(enc, svc.encoder.name, fmt, svc.encoder.max_seq_length)

    def tei(self, body: Any) -> list[list[float]]:
        svc = self.service()
        _, enc = self._encode(lambda b: tei.parse(b, svc.encoder.vector_length), body)
        return tei.render(enc)

    def tei_info(self) -> dict[str, Any]:
        svc = self.service()
        lim = svc.limits
        return tei.info(
            svc.encoder.card,
            runtime=svc.encoder.runtime,
            max_texts=lim.max_texts,
            max_request_tokens=lim.max_request_tokens,
            max_request_chars=lim.max_request_chars,
            version=package_version(),
        )

    def tokenize(self, body: Any) -> list[list[dict[str, Any]]]:
        svc = self.service()
        req, add_special = tei.parse_tokenize(body)
        texts = svc.check_texts(req)
        if not svc.tokenizer.available:
            raise UnsupportedOptionError(
                f"model {svc.encoder.name} was exported without its tokenize function; re-export it with this "
                "version of bert-export to use /tokenize"
            )
        return tei.render_tokenize(svc.tokenizer.ids(texts), svc.tokenizer.vocab, add_special)

    def search(self, body: Any) -> dict[str, Any]:
        return self.vector_search.search(self.service(), search.parse(body))

    def models(self) -> dict[str, Any]:
        """``GET /v1/models``: OpenAI's list, holding the one model this function serves."""
        svc = self.service()
        return openai_api.models(svc.encoder.name, svc.encoder.card)

    def reject(self, exc: Bert2VecError, shape: ErrorShape = ErrorShape.NATIVE) -> tuple[int, dict[str, Any]]:
        """Log a rejected request once and give its status and body (HTTP routes and direct invokes).

        The log line carries the status, the error type and the field at fault, never the message:
        messages quote the caller's own values (an option's value, an unknown field's name, a
        filter's operand) for the caller, and logs are read by others.
        """
        status = status_for(exc, shape)
        body = error_body_for(shape, status, exc)
        extra: dict[str, Any] = {"status": status, "error_type": exc.error_type}
        if exc.param and FIELD_NAME.fullmatch(exc.param):
            extra["param"] = exc.param
        self.logger.info("request rejected", extra=extra)
        return status, body

    def health(self) -> tuple[int, dict[str, Any]]:
        svc = self._service()
        if svc is None:
            return 503, {"status": "loading"}
        return 200, {"status": "ok", "model": svc.encoder.name, "dimension": svc.encoder.vector_length}

    def health_response(self) -> Response:
        """``GET /health``: 503 ``loading`` until init has loaded the model, not an error object."""
        return json_response(*self.health())

    def model(self) -> dict[str, Any]:
        encoder = self.service().encoder
        return {**encoder.card, "runtime": encoder.runtime}

    def register(self, app: ApiGatewayResolver, table: tuple[Route, ...] = ROUTES) -> ApiGatewayResolver:
        """Attach every declared route and the error mapping to a Powertools resolver."""

        def body() -> Any:
            event = app.current_event
            return parse_json_body(decode_body(event.body, bool(event.is_base64_encoded)))

        def ok(payload: Any) -> Response:
            if isinstance(payload, Response):
                return payload
            text = check_payload_size(json.dumps(payload, separators=(",", ":")))
            return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=text)

        def path() -> str:
            return app.current_event.path or ""

        def endpoint(route: Route) -> Callable[[], Response]:
            answer = getattr(self, route.handler)
            if route.body:
                return lambda: ok(answer(body()))
            return lambda: ok(answer())

        for route in table:
            app.route(route.path, route.method)(endpoint(route))

        @app.exception_handler(Bert2VecError)
        def _known(exc: Bert2VecError) -> Response:
            return json_response(*self.reject(exc, shape_for(path(), table)), error_headers(exc))

        @app.not_found
        def _not_found(exc: NotFoundError) -> Response:
            where, method = path(), app.current_event.http_method
            allowed = ", ".join(r.method for r in table if r.path == where)
            shown, verb, shape = clip(where), clip(method), shape_for(where, table)
            if allowed:
                error = MethodNotAllowedError(f"{verb} {shown} is not allowed; use {allowed}")
                return error_response(error, shape, {"Allow": allowed})
            known = ", ".join(f"{r.method} {r.path}" for r in table)
            return error_response(RouteNotFoundError(f"no route {verb} {shown}; routes: {known}"), shape)

        @app.exception_handler(Exception)
        def _unexpected(exc: Exception) -> Response:
            request_id = getattr(app.lambda_context, "aws_request_id", None)
            self.logger.exception("unexpected error", extra={"request_id": request_id})
            shape = shape_for(path(), table)
            status = status_for(exc, shape)
            if shape is ErrorShape.OPENAI:
                payload = openai_api.error_body(None, status, message=f"internal error (request id {request_id})",
                                                error_type="internal")  # fmt: skip
            else:
                payload = error_body(message="internal error", error_type="internal", request_id=request_id)
            return json_response(status, payload)

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
