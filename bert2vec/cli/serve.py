"""``bert-encode --serve``: the encode function on a local HTTP port, without Docker or AWS.

Each HTTP request becomes the API Gateway HTTP API (payload v2) event the deployed function
receives, goes through the real handler (``function.app.handler`` unless ``--handler``), and the
handler's proxy response becomes the HTTP response (status, headers, body; base64 bodies decoded).
It is the code path Lambda runs, so the OpenAI, TEI and LangChain clients pointed at it behave as
they would against the deployed API. Like Lambda, the handler runs one request at a time.

HTTP itself is waitress's (the ``serve`` extra): a pure-Python, threaded, well-kept WSGI server
that does chunked bodies, Content-Length validation, bounded body reading, idle timeouts and a
real listen backlog — what ``http.server`` leaves to the application.

Only its owner can reach it: it listens on 127.0.0.1 and answers only requests whose ``Host`` names
a loopback address (``localhost``, ``127.x.x.x``, ``[::1]``) or the address ``--host`` names — a web
page that rebinds its own name to 127.0.0.1 sends its own name and gets a 403 — and only JSON bodies
(``Content-Type: application/json``), so no page can post to it without a CORS preflight (a
``text/plain`` or form body is a 415). With ``VECTOR_BUCKET`` set, ``/search`` runs on the
developer's AWS credentials: that is what these checks keep from other origins.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ipaddress
import json
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from bert2vec.cli.common import EXIT_INTERRUPTED, PROG, CliError, check_model_dir, load_cli_handler
from bert2vec.http.payload import LAMBDA_SYNC_PAYLOAD_BYTES  # what Lambda refuses before the handler runs

JSON_TYPE = "application/json"
WILDCARD_HOSTS = ("0.0.0.0", "::", "")  # --host that listens on every interface
TEXT_TYPES = ("application/json", "text/", "application/x-www-form-urlencoded", "application/xml")


def http_api_event(
    method: str, target: str, headers: list[tuple[str, str]], body: bytes, *, host: str, source_ip: str
) -> dict[str, Any]:
    """The HTTP API (payload format 2.0) event for one request, as API Gateway builds it.

    Header names are lower-cased and repeated headers joined with commas; a body is passed as text
    when its content type is textual (JSON included), otherwise base64 with ``isBase64Encoded``.
    """
    url = urlsplit(target)
    merged: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        merged[key] = f"{merged[key]},{value}" if key in merged else value
    now = datetime.now(UTC)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": url.path or "/",
        "rawQueryString": url.query,
        "headers": merged,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "local",
            "domainName": host,
            "domainPrefix": host.split(".")[0],
            "http": {
                "method": method,
                "path": url.path or "/",
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": merged.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if url.query:
        params: dict[str, str] = {}
        for k, v in parse_qsl(url.query, keep_blank_values=True):
            params[k] = f"{params[k]},{v}" if k in params else v
        event["queryStringParameters"] = params
    if "cookie" in merged:
        event["cookies"] = [c.strip() for c in merged["cookie"].split(";") if c.strip()]
    if body:
        ctype = merged.get("content-type", "application/json").lower()
        text = None
        if ctype.startswith(TEXT_TYPES) or "json" in ctype:
            with contextlib.suppress(UnicodeDecodeError):
                text = body.decode("utf-8")
        if text is None:
            event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode("ascii"), True
        else:
            event["body"] = text
    return event


def proxy_response(out: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """A handler's return value as HTTP: a proxy response dict, or (payload v2) any JSON value = 200."""
    if not isinstance(out, dict) or "statusCode" not in out:
        return 200, [("Content-Type", "application/json")], json.dumps(out).encode("utf-8")
    body = out.get("body") or ""
    data = base64.b64decode(body) if out.get("isBase64Encoded") else str(body).encode("utf-8")
    headers = [(k, str(v)) for k, v in (out.get("headers") or {}).items()]
    for k, values in (out.get("multiValueHeaders") or {}).items():
        headers += [(k, str(v)) for v in values if (k, str(v)) not in headers]
    headers += [("Set-Cookie", c) for c in out.get("cookies") or []]
    return int(out["statusCode"]), headers, data


def host_name(header: str) -> str:
    """The name in a ``Host`` header, without its port or IPv6 brackets, lower-cased."""
    value = header.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value[1:]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def is_loopback(name: str) -> bool:
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_allowed(header: str | None, bind: str) -> bool:
    """Whether a request's ``Host`` may be answered by a server listening on ``bind`` (``--host``):
    loopback names always; the ``--host`` address too; any name when ``--host`` is every interface
    (0.0.0.0 or ::, the owner's explicit choice). No ``Host`` (HTTP/1.0) is not a browser's request."""
    if header is None or bind.strip("[]") in WILDCARD_HOSTS:
        return True
    name = host_name(header)
    return is_loopback(name) or name == host_name(bind)


def is_json(content_type: str | None) -> bool:
    """``application/json``, with or without parameters (``; charset=utf-8``)."""
    return (content_type or "").split(";", 1)[0].strip().lower() == JSON_TYPE


def refusal(path: str, status: int, error_type: str, message: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """An error in the shape the route at ``path`` answers in (OpenAI's under ``/v1/``, else native)."""
    from bert2vec.http.route_table import shape_for
    from bert2vec.http.statuses import error_body_for

    body = error_body_for(shape_for(path), status, None, message=message, error_type=error_type)
    return status, [("Content-Type", JSON_TYPE)], json.dumps(body, separators=(",", ":")).encode("utf-8")


# Server settings. Lambda runs one request per execution environment; the server takes many
# connections at once (threads, a real backlog), reads bodies for them, and hands the handler one
# request at a time.
THREADS = 8  # connections served side by side (reading, writing, /health); the handler is locked
BACKLOG = 1024  # pending connections the OS queues (a burst of clients is not refused or delayed)
CONNECTION_LIMIT = 256  # open connections at most; more wait in the backlog
IDLE_TIMEOUT_S = 30  # a connection with no request in flight is closed after this long
GRACE_S = 30.0  # Ctrl-C: in-flight requests finish and are sent within this, then the server exits


class LocalServer:
    """``handler`` behind waitress: each request becomes an HTTP API event, one at a time.

    waitress parses HTTP (chunked bodies, Content-Length validation: a non-number or a negative
    length is a 400), refuses a body over Lambda's 6 MB with a 413 before reading it (by the
    declared length, or as soon as a chunked body passes the limit), closes idle connections and
    queues bursts in a real backlog. Ctrl-C stops accepting, lets in-flight requests finish and be
    sent (up to ``GRACE_S``), then closes; requests arriving meanwhile get a 503.
    """

    def __init__(
        self, handler: Callable[[Any, Any], Any], host: str, port: int, *, grace_s: float = GRACE_S,
        idle_timeout_s: int = IDLE_TIMEOUT_S,
    ) -> None:  # fmt: skip
        from waitress import create_server

        from bert2vec.local_invoke import LocalContext

        self._handler, self._context = handler, LocalContext
        self._lock = threading.Lock()  # Lambda gives an execution environment one request at a time
        self._state = threading.Condition()
        self._in_flight = 0
        self.draining = threading.Event()
        self.abort = threading.Event()  # a second Ctrl-C: stop waiting for in-flight requests
        self.stopped = threading.Event()
        self.grace_s = grace_s
        try:
            self.server = create_server(
                self.app, host=host, port=port, threads=THREADS, backlog=BACKLOG, connection_limit=CONNECTION_LIMIT,
                channel_timeout=idle_timeout_s, cleanup_interval=max(1, idle_timeout_s // 3),
                max_request_body_size=LAMBDA_SYNC_PAYLOAD_BYTES,
                ident="bert2vec-local", expose_tracebacks=False, clear_untrusted_proxy_headers=True,
            )  # fmt: skip
        except OSError as exc:
            raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        self.host = host

    @property
    def server_address(self) -> tuple[str, int]:
        return str(self.server.effective_host), int(self.server.effective_port)

    def app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        """The WSGI application: the request as an HTTP API event through the handler."""
        if self.draining.is_set():
            return self._reply(start_response, 503, [("Content-Type", "application/json"), ("Connection", "close")],
                               b'{"message":"Service Unavailable: the local server is stopping"}')  # fmt: skip
        path = environ.get("PATH_INFO", "/")
        if not host_allowed(environ.get("HTTP_HOST"), self.host):
            return self._reply(start_response, *refusal(
                path, 403, "forbidden_host", f"this local server answers only requests to localhost or {self.host} "
                "(--host names another address)",
            ))  # fmt: skip
        with self._state:
            self._in_flight += 1
        try:
            body = environ["wsgi.input"].read() if environ.get("CONTENT_LENGTH") else b""
            if body and not is_json(environ.get("CONTENT_TYPE")):
                return self._reply(start_response, *refusal(
                    path, 415, "unsupported_media_type", "send the body as JSON with Content-Type: application/json",
                ))  # fmt: skip
            headers = [(k[5:].replace("_", "-"), v) for k, v in environ.items() if k.startswith("HTTP_")]
            headers += [(k.replace("_", "-"), environ[k]) for k in ("CONTENT_TYPE", "CONTENT_LENGTH") if environ.get(k)]
            host_header = environ.get("HTTP_HOST") or f"{self.host}:{self.server_address[1]}"
            event = http_api_event(
                environ["REQUEST_METHOD"], environ.get("REQUEST_URI") or environ.get("PATH_INFO", "/"), headers, body,
                host=host_header, source_ip=environ.get("REMOTE_ADDR", ""),
            )  # fmt: skip
            with self._lock:
                try:
                    out = self._handler(event, self._context("bert2vec-local"))
                except Exception as exc:  # noqa: BLE001 - what API Gateway answers when the function fails
                    print(f"{PROG}: handler raised {type(exc).__name__}: {exc}", file=sys.stderr)
                    return self._reply(start_response, 502, [("Content-Type", "application/json")],
                                       b'{"message":"Internal Server Error"}')  # fmt: skip
            return self._reply(start_response, *proxy_response(out))
        finally:
            with self._state:
                self._in_flight -= 1
                self._state.notify_all()

    @staticmethod
    def _reply(start_response: Callable[..., Any], status: int, headers: list[tuple[str, str]], data: bytes) -> list[bytes]:
        kept = [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP or k.lower() == "connection"]
        start_response(f"{status} {reason(status)}", [*kept, ("Content-Length", str(len(data)))])
        return [data]

    def serve(self) -> None:
        """Serve until :meth:`stop` (or Ctrl-C in :func:`run_serve`); then drain and close."""
        from waitress import wasyncore

        try:
            while not self.draining.is_set():
                wasyncore.loop(timeout=0.2, map=self.server._map, count=1)
        finally:
            self._drain(wasyncore)

    def stop(self) -> None:
        """Stop accepting; in-flight requests still finish (thread-safe, also from a signal handler)."""
        self.draining.set()
        with contextlib.suppress(Exception):
            self.server.pull_trigger()

    def _drain(self, wasyncore: Any) -> None:
        self.draining.set()
        with contextlib.suppress(OSError):
            wasyncore.dispatcher.close(self.server)  # the listening socket only: no new connections
        deadline = time.monotonic() + self.grace_s
        amap = self.server._map
        while time.monotonic() < deadline and not self.abort.is_set():
            with self._state:
                busy = self._in_flight > 0
            pending = any(getattr(ch, "total_outbufs_len", 0) or getattr(ch, "requests", None) for ch in amap.values())
            if not busy and not pending:
                break
            wasyncore.loop(timeout=0.05, map=amap, count=1)
        self.server.task_dispatcher.shutdown(cancel_pending=True, timeout=1)
        wasyncore.close_all(amap)
        self.stopped.set()


HOP_BY_HOP = {"content-length", "connection", "transfer-encoding", "keep-alive", "upgrade", "te", "trailer",
              "proxy-authenticate", "proxy-authorization"}  # fmt: skip


def reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def make_server(handler: Callable[[Any, Any], Any], host: str, port: int, **kw: Any) -> LocalServer:
    """A local server that turns every request into an HTTP API event for ``handler`` (one at a time)."""
    return LocalServer(handler, host, port, **kw)


def run_serve(args: argparse.Namespace) -> int:
    """Load the handler (and with it the model) once, then serve until Ctrl-C (exit 130)."""
    check_model_dir(args.model)
    if args.model:
        os.environ["MODEL_DIR"] = args.model  # the handler reads it at import, as in the image
    t0 = time.perf_counter()
    handler = load_cli_handler(args.handler)
    server = make_server(handler, args.host, args.port)
    host, port = server.server_address
    shown = f"[{host}]" if ":" in str(host) else host
    interrupted = threading.Event()

    def on_sigint(signum: int, frame: Any) -> None:
        if interrupted.is_set():  # a second Ctrl-C: stop waiting for in-flight requests
            server.abort.set()
            return
        interrupted.set()
        print(f"\n{PROG}: stopping: finishing requests in flight (Ctrl-C again to abort)", file=sys.stderr, flush=True)
        server.stop()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:  # the announcement is inside: a Ctrl-C right after it must still end as "stopped"
        print(
            f"{PROG}: serving {args.handler} at http://{shown}:{port} (ready in {time.perf_counter() - t0:.1f} s; "
            "each request runs as an HTTP API event; Ctrl-C stops)",
            file=sys.stderr,
            flush=True,
        )
        server.serve()
    finally:
        signal.signal(signal.SIGINT, previous)
    if interrupted.is_set():
        print(f"{PROG}: stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0
