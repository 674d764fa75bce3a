"""The HTTP routes, declared once, as data: no web framework, no model, so anything may read them.

``ROUTES`` is what the Powertools resolvers register (``bert2vec.http.routes``), what a fast test
checks template.yaml's API events against, and what ``bert-encode --help`` lists for ``--serve``.
Each route declares its error shape: OpenAI's clients show only OpenAI's error object.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

#: OpenAI's namespace: routes declare their error shape; only unknown paths go by it.
OPENAI_PATH_PREFIX = "/v1/"


class ErrorShape(Enum):
    """How a route answers errors: a property of the route, never of its path."""

    #: ``{"error": message, "error_type": type}`` — /encode, TEI's routes, the direct invoke.
    NATIVE = "native"
    #: ``{"error": {"message", "type", "param", "code"}}``, and a 422 answered as 400 — the openai
    #: client shows ``error.message`` only for that object and raises ``BadRequestError`` for 400.
    OPENAI = "openai"


@dataclass(frozen=True)
class Route:
    """One HTTP route, declared once: resolvers register from it, template.yaml is checked against it.

    ``handler`` names the :class:`Routes` method that answers; ``body``: it takes a JSON body
    (passed to that method); ``preflight``: a browser sends a CORS preflight first (a JSON POST is
    no "simple" request), so the REST API answers ``OPTIONS`` on this path itself (a mock
    integration in template.yaml: an unauthenticated preflight never invokes the function).
    """

    method: str
    path: str
    handler: str
    error_shape: ErrorShape = ErrorShape.NATIVE
    body: bool = False
    preflight: bool = False


def _post(path: str, handler: str, shape: ErrorShape = ErrorShape.NATIVE) -> Route:
    return Route("POST", path, handler, shape, body=True, preflight=True)


ROUTES: tuple[Route, ...] = (
    _post("/encode", "encode"),
    _post("/v1/embeddings", "openai", ErrorShape.OPENAI),
    _post("/embed", "tei"),
    _post("/", "tei"),  # TEI's root route: huggingface_hub's InferenceClient(base_url=...) posts here
    Route("GET", "/info", "tei_info"),
    _post("/tokenize", "tokenize"),
    Route("GET", "/v1/models", "models", ErrorShape.OPENAI),  # OpenAI's model list: the one served model
    _post("/search", "search"),  # only answers when a vector index is configured (404 not_configured otherwise)
    Route("GET", "/health", "health_response"),
    Route("GET", "/model", "model"),
)


def shape_for(path: str, table: tuple[Route, ...] = ROUTES) -> ErrorShape:
    """The error shape for a request to ``path``: its declared route's, always.

    Undeclared paths (a 404) have no route to ask, so this is the one path rule left: under
    OpenAI's namespace (``/v1/``) they answer in OpenAI's shape — only an OpenAI client calls
    there, and it shows nothing else — and natively everywhere else.
    """
    for route in table:
        if route.path == path:
            return route.error_shape
    return ErrorShape.OPENAI if path.startswith(OPENAI_PATH_PREFIX) else ErrorShape.NATIVE


def route_paths(table: tuple[Route, ...] = ROUTES) -> list[str]:
    """Each declared path once, in declaration order (for help texts and listings)."""
    return list(dict.fromkeys(route.path for route in table))
