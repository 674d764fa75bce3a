"""``bert-encode --serve``'s translation: HTTP request → HTTP API (v2) event → HTTP response.

The server runs against the real handler and the real clients in
tests/functional/test_api_clients.py; here the two translations, parsed by Powertools, and the
server's HTTP behaviour over a real socket with an in-process handler.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from bert2vec.cli.serve import LAMBDA_SYNC_PAYLOAD_BYTES, LocalServer, http_api_event, proxy_response
from bert2vec.http.routes import event_kind


def test_request_becomes_an_http_api_event() -> None:
    body = json.dumps({"input": "héllo"}).encode()
    headers = [("Content-Type", "application/json"), ("X-Tag", "a"), ("x-tag", "b"), ("Cookie", "k=v; z=1")]
    raw = http_api_event("POST", "/v1/embeddings?x=1&x=2&y=", headers, body, host="127.0.0.1:8080", source_ip="::1")
    assert event_kind(raw) == "http"  # not a Function URL, not a direct invoke
    event = APIGatewayProxyEventV2(raw)
    assert (event.http_method, event.path, event.raw_path) == ("POST", "/v1/embeddings", "/v1/embeddings")
    assert event.request_context.stage == "$default" and event.request_context.http.source_ip == "::1"
    assert event.headers["x-tag"] == "a,b" and event.headers["content-type"] == "application/json"
    assert event.query_string_parameters == {"x": "1,2", "y": ""} and event.raw_query_string == "x=1&x=2&y="
    assert event.cookies == ["k=v", "z=1"]
    assert event.is_base64_encoded is False and json.loads(event.body) == {"input": "héllo"}


def test_binary_or_undecodable_bodies_travel_as_base64() -> None:
    for ctype, data in (("application/octet-stream", b"\x00\x01"), ("application/json", b"\xff\xfe")):
        raw = http_api_event("POST", "/encode", [("Content-Type", ctype)], data, host="h", source_ip="1.2.3.4")
        assert raw["isBase64Encoded"] is True and base64.b64decode(raw["body"]) == data
    raw = http_api_event("GET", "/health", [], b"", host="h", source_ip="1.2.3.4")
    assert "body" not in raw and raw["rawPath"] == "/health"


def test_proxy_response_becomes_http() -> None:
    out = {
        "statusCode": 405,
        "headers": {"Content-Type": "application/json", "Allow": "POST"},
        "multiValueHeaders": {"Vary": ["Origin", "Accept"]},
        "cookies": ["a=b"],
        "body": base64.b64encode(b'{"error": "x"}').decode(),
        "isBase64Encoded": True,
    }
    status, headers, data = proxy_response(out)
    assert status == 405 and data == b'{"error": "x"}'
    assert ("Allow", "POST") in headers and ("Vary", "Accept") in headers and ("Set-Cookie", "a=b") in headers
    # payload 2.0: a handler may return any JSON value (a direct-style answer) = 200 application/json
    assert proxy_response([[0.5]]) == (200, [("Content-Type", "application/json")], b"[[0.5]]")


# ---- the server over a real socket (waitress), with an in-process handler ----------------------



class Recorder:
    """A handler that answers with what it received; ``gate`` (when set) holds it mid-request."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.gate: threading.Event | None = None
        self.entered = threading.Event()

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.events.append(event)
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(30)
        body = event.get("body") or ""
        if event.get("isBase64Encoded"):
            body = base64.b64decode(body).decode("latin-1")
        out = {"path": event["rawPath"], "body": body, "b64": event["isBase64Encoded"], "padding": "p" * 20_000}
        return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": json.dumps(out)}


@pytest.fixture
def served() -> Iterator[tuple[LocalServer, Recorder]]:
    handler = Recorder()
    srv = LocalServer(handler, "127.0.0.1", 0, idle_timeout_s=2, grace_s=10)
    thread = threading.Thread(target=srv.serve, daemon=True)
    thread.start()
    yield srv, handler
    if handler.gate is not None:
        handler.gate.set()
    srv.stop()
    thread.join(15)
    assert srv.stopped.is_set()


def connect(srv: LocalServer, timeout: float = 10) -> socket.socket:
    sock = socket.create_connection(srv.server_address, timeout=timeout)
    return sock


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length body, leaving the connection open."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {buf!r}"
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = int(headers["content-length"])
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-body"
        rest += chunk
    assert len(rest) == length, f"extra bytes after the body (a second response?): {rest[length:][:80]!r}"
    return int(lines[0].split()[1]), headers, rest


def test_a_chunked_body_is_one_request_with_the_whole_body(served) -> None:
    srv, handler = served
    with connect(srv) as sock:
        sock.sendall(b"POST /encode HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n3\r\n 1}\r\n0\r\n\r\n")  # fmt: skip
        status, _, body = read_response(sock)
        assert status == 200 and json.loads(body)["body"] == '{"a": 1}'
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")  # the same connection, the next request
        status, _, body = read_response(sock)
        assert status == 200 and json.loads(body)["path"] == "/health"
    assert [e["rawPath"] for e in handler.events] == ["/encode", "/health"]


@pytest.mark.parametrize("length", [b"abc", b"-1", b"1e3", b""])
def test_an_invalid_content_length_is_400_and_never_reaches_the_handler(served, length: bytes) -> None:
    srv, handler = served
    with connect(srv) as sock:
        sock.sendall(b"POST /encode HTTP/1.1\r\nHost: localhost\r\nContent-Length: " + length + b"\r\n\r\n{}")
        status, headers, _ = read_response(sock)
    assert status == 400 and headers.get("connection") == "close" and handler.events == []


@pytest.mark.parametrize("declared", [100_000_000_000, 100 * 1024 * 1024, LAMBDA_SYNC_PAYLOAD_BYTES + 1])
def test_a_body_over_6mb_is_413_before_it_is_read(served, declared: int) -> None:
    srv, handler = served
    with connect(srv) as sock:
        sock.sendall(f"POST /encode HTTP/1.1\r\nHost: localhost\r\nContent-Length: {declared}\r\n\r\n".encode() + b"x" * 1024)
        status, _, _ = read_response(sock)  # answered with 1 KB sent of the declared length
    assert status == 413 and handler.events == []


def test_lambdas_payload_limit_is_written_once_at_the_http_edge() -> None:
    """The local server refuses bodies by the very limit the handler checks its answers against,
    and that limit lives at the HTTP edge, not in the AWS-free service."""
    from pathlib import Path

    import bert2vec
    from bert2vec.cli import serve
    from bert2vec.http import payload, service

    assert serve.LAMBDA_SYNC_PAYLOAD_BYTES is payload.LAMBDA_SYNC_PAYLOAD_BYTES
    assert not hasattr(service, "LAMBDA_SYNC_PAYLOAD_BYTES") and not hasattr(service, "check_payload_size")
    root = Path(bert2vec.__file__).parent
    homes = [p.relative_to(root).as_posix() for p in root.rglob("*.py") if "6 * 1024 * 1024" in p.read_text()]
    assert homes == ["http/payload.py"]


def test_a_chunked_body_over_6mb_is_413(served) -> None:
    srv, handler = served
    chunk = b"x" * (1024 * 1024)
    with connect(srv, timeout=30) as sock:
        sock.sendall(b"POST /encode HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:
            for _ in range(8):
                sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed while we were still sending: what we want
        status, _, _ = read_response(sock)
    assert status == 413 and handler.events == []


def test_an_idle_connection_is_closed(served) -> None:
    srv, _ = served
    with connect(srv, timeout=15) as sock:
        t0 = time.monotonic()
        assert sock.recv(1) == b""  # the server closes it: no request within the idle timeout
        assert time.monotonic() - t0 < 12


def test_a_burst_of_connections_is_queued_and_served(served) -> None:
    srv, handler = served
    socks = [connect(srv, timeout=30) for _ in range(300)]  # far over the old backlog of 5
    try:
        for sock in socks:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        assert all(read_response(sock)[0] == 200 for sock in socks)
    finally:
        for sock in socks:
            sock.close()
    assert len(handler.events) == 300


def test_stopping_finishes_the_request_in_flight_and_refuses_new_ones(served) -> None:
    srv, handler = served
    handler.gate = threading.Event()
    with connect(srv, timeout=30) as sock:
        sock.sendall(b"POST /encode HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
        assert handler.entered.wait(10)
        srv.stop()  # Ctrl-C in `bert-encode --serve`
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the listening socket closes: no new connections
            try:
                socket.create_connection(srv.server_address, timeout=1).close()
            except OSError:
                break
            time.sleep(0.05)
        else:
            pytest.fail("still accepting connections after stop()")
        handler.gate.set()
        status, _, body = read_response(sock)  # the whole answer, not headers without a body
    assert status == 200 and json.loads(body)["path"] == "/encode"


def test_a_latin1_body_reaches_the_handler_as_bytes_not_as_base64_text(served) -> None:
    """Not UTF-8: it travels base64-encoded, as API Gateway sends binary; the routes then say
    "not UTF-8 text" (tests/functional/test_function_app.py)."""
    srv, _ = served
    data = '{"text": "café"}'.encode("latin-1")
    with connect(srv) as sock:
        sock.sendall(b"POST /encode HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: "
                     + str(len(data)).encode() + b"\r\n\r\n" + data)  # fmt: skip
        status, _, body = read_response(sock)
    assert status == 200 and json.loads(body)["b64"] is True and json.loads(body)["body"] == data.decode("latin-1")
