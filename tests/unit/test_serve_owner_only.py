"""``bert-encode --serve`` answers only its owner: loopback ``Host`` headers (or the address
``--host`` names) and JSON bodies, over a real socket. A web page can neither read answers through
DNS rebinding (its own name in ``Host``) nor post without a CORS preflight (a ``text/plain`` or form
body): both are refused before the handler runs."""

from __future__ import annotations

import json

import pytest

from bert2vec.cli.serve import host_allowed
from tests.unit import test_api_serve
from tests.unit.test_api_serve import connect, read_response

served = test_api_serve.served  # the server on 127.0.0.1 with a recording handler


def request(srv, host: str | None, body: bytes = b"", ctype: str | None = None, path: str = "/encode") -> tuple[int, bytes]:
    head = f"POST {path} HTTP/1.1\r\n" + (f"Host: {host}\r\n" if host is not None else "")
    head += (f"Content-Type: {ctype}\r\n" if ctype is not None else "") + f"Content-Length: {len(body)}\r\n"
    if host is None:
        head = head.replace("HTTP/1.1", "HTTP/1.0")
    with connect(srv) as sock:
        sock.sendall(head.encode("latin-1") + b"Connection: close\r\n\r\n" + body)
        status, _, data = read_response(sock)
    return status, data


@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:8080", "127.0.0.1.attacker.example",
                                  "localhost.attacker.example", "10.0.0.7:8080", "[fe80::1]:8080"])  # fmt: skip
def test_a_foreign_host_header_is_refused_before_the_handler(served, host: str) -> None:
    srv, handler = served
    status, data = request(srv, host, b'{"text": "x"}', "application/json")
    body = json.loads(data)
    assert (status, body["error_type"]) == (403, "forbidden_host") and not handler.events


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST:8080", "127.0.0.1", "127.0.0.1:8080", "127.1.2.3", "[::1]:8080", None])
def test_loopback_host_headers_are_answered(served, host: str | None) -> None:
    srv, handler = served
    status, _ = request(srv, host, b'{"text": "x"}', "application/json")
    assert status == 200 and len(handler.events) == 1


@pytest.mark.parametrize("ctype", ["text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
                                   "multipart/form-data; boundary=x", None])  # fmt: skip
def test_a_body_that_is_not_json_is_refused_before_the_handler(served, ctype: str | None) -> None:
    """What a page may send without a preflight (and what curl -d sends) never reaches the function."""
    srv, handler = served
    status, data = request(srv, "localhost", b'{"text": "x"}', ctype)
    assert (status, json.loads(data)["error_type"]) == (415, "unsupported_media_type") and not handler.events
    status, data = request(srv, "localhost", b'{"input": "x"}', ctype, path="/v1/embeddings")  # OpenAI's shape there
    assert status == 415 and json.loads(data)["error"]["code"] == "unsupported_media_type"


@pytest.mark.parametrize("ctype", ["application/json", "application/json; charset=utf-8", "Application/JSON"])
def test_json_bodies_are_answered(served, ctype: str) -> None:
    srv, handler = served
    status, _ = request(srv, "localhost", b'{"text": "x"}', ctype)
    assert status == 200 and json.loads(handler.events[0]["body"]) == {"text": "x"}


def test_another_listen_address_is_accepted_as_its_own_host() -> None:
    """``--host 192.168.1.5``: that address too; ``--host 0.0.0.0`` / ``::``: the owner opened it to any name."""
    assert host_allowed("192.168.1.5:8080", "192.168.1.5") and host_allowed("localhost:8080", "192.168.1.5")
    assert not host_allowed("attacker.example", "192.168.1.5")
    assert host_allowed("[fd00::5]:8080", "fd00::5") and not host_allowed("[fd00::6]", "fd00::5")
    for bind in ("0.0.0.0", "::"):
        assert host_allowed("attacker.example", bind)
    assert not host_allowed("attacker.example", "127.0.0.1") and not host_allowed("attacker.example", "localhost")
