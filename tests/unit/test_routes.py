"""Routes are declared once (``bert2vec.http.route_table.ROUTES``): template.yaml's API events must equal
that list, the resolvers are registered from it, and each route's declared error shape — not its
path — decides how its errors look. Fast tier: no TensorFlow, no model (the service is not loaded,
so every routed request answers 503 ``model_not_loaded`` or ``loading``)."""

from __future__ import annotations

import base64
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, APIGatewayRestResolver

from bert2vec.core.errors import InvalidInputError, UnsupportedOptionError
from bert2vec.http.route_table import ROUTES, Route, shape_for
from bert2vec.http.routes import Routes
from bert2vec.http.statuses import ErrorShape, status_for
from bert2vec.local_invoke import LocalContext
from tests.conftest import load_event

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
DECLARED = Counter((r.path, r.method) for r in ROUTES)
PREFLIGHTS = Counter((r.path, "OPTIONS") for r in ROUTES if r.preflight)
NATIVE_KEYS = {"error", "error_type"}
OPENAI_KEYS = {"message", "type", "param", "code"}


def _template() -> dict[str, Any]:
    from cfnlint.decode import decode

    tpl, matches = decode(str(TEMPLATE))
    assert not matches, [str(m) for m in matches]
    return tpl


def test_declarations_are_unique_and_well_formed() -> None:
    assert all(n == 1 for n in DECLARED.values()), DECLARED
    for route in ROUTES:
        assert route.method in ("GET", "POST") and route.path.startswith("/"), route
        assert callable(getattr(Routes, route.handler, None)), route
        assert route.body == (route.method == "POST"), route  # every POST route reads a JSON body


def test_template_route_events_equal_the_declarations() -> None:
    """Every declared route on both APIs, nothing else; the REST API's body answers OPTIONS where declared."""
    tpl = _template()
    resources = tpl["Resources"]
    events = resources["EncodeFunction"]["Properties"]["Events"]
    rest, http = Counter(), Counter()
    for name, event in events.items():
        props = event["Properties"]
        key = (props["Path"], props["Method"].upper())
        if event["Type"] == "Api":
            assert props["RestApiId"] == {"Ref": "RestApi"}, name
            rest[key] += 1
        elif event["Type"] == "HttpApi":
            assert props["ApiId"] == {"Ref": "HttpApi"}, name
            http[key] += 1
    assert rest == DECLARED  # preflights never reach the function: API Gateway answers them
    assert http == DECLARED
    for api, preflights in (("RestApi", PREFLIGHTS), ("HttpApi", Counter())):  # the bodies the events merge into
        paths = resources[api]["Properties"]["DefinitionBody"]["paths"]
        assert Counter((p, m.upper()) for p, ops in paths.items() for m in ops) == DECLARED + preflights, api


# ---------------------------------------------------------------------------------------------
# the resolvers, registered from a route table, with the model not loaded
# ---------------------------------------------------------------------------------------------


class ProbeRoutes(Routes):
    """The real route functions plus one that fails unexpectedly (a 500 must keep the route's shape)."""

    def boom(self) -> Any:
        raise RuntimeError("secret detail")


def _resolver(table: tuple[Route, ...] = ROUTES, kind: str = "http"):
    routes = ProbeRoutes(lambda: None, Logger(service="route-test"), Metrics(namespace="RouteTest"))
    return routes.register(APIGatewayHttpResolver() if kind == "http" else APIGatewayRestResolver(), table)


def _call(resolver, method: str, path: str, body: str | None = "{}") -> tuple[int, Any, dict[str, str]]:
    event = load_event("api_gateway_v2_encode.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event["routeKey"] = "$default"
    event["body"], event["isBase64Encoded"] = body, False
    out = resolver.resolve(event, LocalContext())
    text = base64.b64decode(out["body"]).decode() if out.get("isBase64Encoded") else out["body"]
    return out["statusCode"], json.loads(text), {k.lower(): v for k, v in (out.get("headers") or {}).items()}


def _shape(body: Any) -> ErrorShape:
    if isinstance(body, dict) and isinstance(body.get("error"), dict) and set(body["error"]) == OPENAI_KEYS:
        return ErrorShape.OPENAI
    assert isinstance(body, dict) and NATIVE_KEYS <= set(body) and isinstance(body["error"], str), body
    return ErrorShape.NATIVE


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_every_declared_route_is_registered_with_its_error_shape(route: Route) -> None:
    status, body, _ = _call(_resolver(), route.method, route.path)
    assert status == 503, body  # routed to the service, which is not loaded — not a 404 or 405
    if route.handler == "health_response":
        assert body == {"status": "loading"}
        return
    assert _shape(body) is route.error_shape
    assert "model_not_loaded" in json.dumps(body)


def test_a_native_route_under_v1_answers_natively() -> None:
    """The path prefix no longer decides: a /v1/ route declared native gets the native shape and
    keeps its 422, an OpenAI-shaped route elsewhere gets OpenAI's object."""
    table = (
        *ROUTES,
        Route("POST", "/v1/native-probe", "encode", ErrorShape.NATIVE, body=True),
        Route("POST", "/compat/embeddings", "openai", ErrorShape.OPENAI, body=True),
        Route("GET", "/v1/boom", "boom"),
        Route("GET", "/compat/boom", "boom", ErrorShape.OPENAI),
    )
    resolver = _resolver(table)
    status, body, _ = _call(resolver, "POST", "/v1/native-probe", "{")
    assert (status, _shape(body), body["error_type"]) == (400, ErrorShape.NATIVE, "malformed_json")
    status, body, headers = _call(resolver, "GET", "/v1/native-probe")
    assert (status, _shape(body), headers["allow"]) == (405, ErrorShape.NATIVE, "POST")
    status, body, _ = _call(resolver, "POST", "/compat/embeddings", "{")
    assert (status, _shape(body), body["error"]["code"]) == (400, ErrorShape.OPENAI, "malformed_json")
    status, body, _ = _call(resolver, "GET", "/v1/boom")
    assert (status, _shape(body), body["error_type"]) == (500, ErrorShape.NATIVE, "internal")
    status, body, _ = _call(resolver, "GET", "/compat/boom")
    assert (status, _shape(body), body["error"]["type"]) == (500, ErrorShape.OPENAI, "server_error")
    assert "secret detail" not in json.dumps(body)
    assert shape_for("/v1/native-probe", table) is ErrorShape.NATIVE
    for exc in (InvalidInputError("bad"), UnsupportedOptionError("no")):
        assert status_for(exc, ErrorShape.NATIVE) == 422
        assert status_for(exc, ErrorShape.OPENAI) == 400  # OpenAI answers invalid requests with 400


def test_one_function_gives_every_failure_its_status() -> None:
    """``status_for`` answers any exception: our classes by their own row, a subclass made anywhere
    else as its parent (never a default), anything that is not ours as a 500."""
    from bert2vec.core import errors
    from bert2vec.http.statuses import HTTP_STATUS

    class NarrowerInput(errors.InvalidInputError):
        error_type = "narrower_input"

    for cls, status in HTTP_STATUS.items():
        exc = cls("x") if cls is not errors.SearchThrottledError else cls("x", retry_after=2)
        assert status_for(exc) == status, cls
    assert status_for(NarrowerInput("x")) == 422 and status_for(NarrowerInput("x"), ErrorShape.OPENAI) == 400
    assert status_for(RuntimeError("bug")) == 500 and status_for(RuntimeError("bug"), ErrorShape.OPENAI) == 500


@pytest.mark.parametrize("kind", ["http", "rest"])
def test_unknown_paths_and_wrong_methods_keep_their_answers(kind: str) -> None:
    """Undeclared paths: OpenAI's shape under /v1/ (OpenAI's namespace), native elsewhere; a wrong
    method on a declared path answers 405 in that route's shape with ``Allow``."""
    resolver = _resolver(kind=kind)
    if kind == "rest":  # the same requests as REST API (payload v1) events
        def call(method: str, path: str, body: str | None = "{}"):
            event = load_event("api_gateway_v1_encode.json")
            event["path"] = event["resource"] = event["requestContext"]["path"] = path
            event["httpMethod"] = event["requestContext"]["httpMethod"] = method
            event["body"], event["isBase64Encoded"] = body, False
            out = resolver.resolve(event, LocalContext())
            headers = {k.lower(): v for k, v in (out.get("headers") or {}).items()}
            for k, v in (out.get("multiValueHeaders") or {}).items():
                headers.setdefault(k.lower(), v[0])
            return out["statusCode"], json.loads(out["body"]), headers
    else:
        def call(method: str, path: str, body: str | None = "{}"):
            return _call(resolver, method, path, body)

    status, body, _ = call("POST", "/v1/nope")
    assert (status, _shape(body), body["error"]["code"]) == (404, ErrorShape.OPENAI, "not_found")
    status, body, _ = call("POST", "/nope")
    assert (status, _shape(body), body["error_type"]) == (404, ErrorShape.NATIVE, "not_found")
    for route in ROUTES:
        assert f"{route.method} {route.path}" in body["error"]  # the 404 lists every declared route
    status, body, headers = call("GET", "/v1/embeddings")
    assert (status, _shape(body), headers["allow"]) == (405, ErrorShape.OPENAI, "POST")
    status, body, headers = call("POST", "/health")
    assert (status, _shape(body), headers["allow"]) == (405, ErrorShape.NATIVE, "GET")


def test_bert_encode_help_lists_every_declared_route() -> None:
    """``--serve``'s help names the routes from the one table, so a new route cannot be missing there."""
    from bert2vec.cli import build_parser

    (serve,) = [a for a in build_parser()._actions if "--serve" in a.option_strings]
    listed = serve.help.split("(routes ", 1)[1].rstrip(")").split(", ")
    assert listed == list(dict.fromkeys(r.path for r in ROUTES))
    assert "/v1/models" in listed and "/search" in listed
