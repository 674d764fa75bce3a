"""``bert-encode --serve``: the encode function on a local HTTP port, without Docker or AWS.

Each HTTP request becomes the API Gateway HTTP API (payload v2) event the deployed function
receives, goes through the real handler (``function.app.handler`` unless ``--handler``), and the
handler's proxy response becomes the HTTP response (status, headers, body; base64 bodies decoded).
It is the code path Lambda runs, so the OpenAI, TEI and LangChain clients pointed at it behave as
they would against the deployed API. Like Lambda, one request is served at a time.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from bert2vec.cli.common import EXIT_INTERRUPTED, PROG, CliError, check_model_dir, load_cli_handler

LAMBDA_SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024  # what Lambda refuses before the handler runs
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


def make_server(handler: Callable[[Any, Any], Any], host: str, port: int) -> ThreadingHTTPServer:
    """An HTTP server that turns every request into an HTTP API event for ``handler`` (one at a time)."""
    from bert2vec.local_invoke import LocalContext

    lock = threading.Lock()  # Lambda gives an execution environment one request at a time

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "bert2vec-local"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > LAMBDA_SYNC_PAYLOAD_BYTES:
                self.rfile.read(length)
                self._send(413, [("Content-Type", "application/json")], b'{"message":"Request Entity Too Large"}')
                return
            body = self.rfile.read(length) if length else b""
            host_header = self.headers.get("Host") or f"{host}:{self.server.server_address[1]}"
            event = http_api_event(
                self.command, self.path, list(self.headers.items()), body, host=host_header,
                source_ip=self.client_address[0],
            )  # fmt: skip
            with lock:
                try:
                    out = handler(event, LocalContext("bert2vec-local"))
                except Exception as exc:  # noqa: BLE001 - what API Gateway answers when the function fails
                    print(f"{PROG}: handler raised {type(exc).__name__}: {exc}", file=sys.stderr)
                    self._send(502, [("Content-Type", "application/json")], b'{"message":"Internal Server Error"}')
                    return
            self._send(*proxy_response(out))

        def _send(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
            self.send_response(status)
            for k, v in headers:
                if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _serve

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
            sys.stderr.write(f"{self.address_string()} - {format % args}\n")

    try:
        return ThreadingHTTPServer((host, port), Handler)
    except OSError as exc:
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc


def run_serve(args: argparse.Namespace) -> int:
    """Load the handler (and with it the model) once, then serve until Ctrl-C (exit 130)."""
    check_model_dir(args.model)
    if args.model:
        os.environ["MODEL_DIR"] = args.model  # the handler reads it at import, as in the image
    t0 = time.perf_counter()
    handler = load_cli_handler(args.handler)
    server = make_server(handler, args.host, args.port)
    host, port = server.server_address[:2]
    shown = f"[{host}]" if ":" in str(host) else host
    try:  # the announcement is inside: a Ctrl-C right after it must still end as "stopped"
        print(
            f"{PROG}: serving {args.handler} at http://{shown}:{port} (ready in {time.perf_counter() - t0:.1f} s; "
            "each request runs as an HTTP API event; Ctrl-C stops)",
            file=sys.stderr,
            flush=True,
        )
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        print(f"\n{PROG}: stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        server.server_close()
    return 0
