"""An in-process stand-in for the Lambda Runtime API (the HTTP service Lambda runs next to a function).

Why: the function ships as a container image whose command is ``python -m awslambdaric <handler>``.
There is no Docker engine in CI, so the end-to-end tests run that exact command as a local process and
point it at this server via ``AWS_LAMBDA_RUNTIME_API``. Everything the real runtime client does on the
wire (long-polled ``next``, keep-alive, posting results, errors and init errors) therefore really
happens, and the tests observe exactly what Lambda would receive.

Endpoints (API version 2018-06-01, see the AWS "Using the Lambda runtime API for custom runtimes" page):

* ``GET  /2018-06-01/runtime/invocation/next``            -> 200, event body + ``Lambda-Runtime-*`` headers
* ``POST /2018-06-01/runtime/invocation/{id}/response``   -> 202
* ``POST /2018-06-01/runtime/invocation/{id}/error``      -> 202
* ``POST /2018-06-01/runtime/init/error``                 -> 202
* ``GET  /2018-06-01/runtime/restore/next``               -> 200 once the test "restores" the snapshot
* ``POST /2018-06-01/runtime/restore/error``              -> 202

SnapStart (``AWS_LAMBDA_INITIALIZATION_TYPE=snap-start``): after init the runtime client runs the
before-snapshot hooks and calls ``restore/next``; Lambda takes the snapshot while that call is
parked and answers it when an environment is restored from it; the client then runs the
after-restore hooks and only then polls ``invocation/next``. :meth:`RuntimeAPI.restore` plays the
restore; ``lifecycle`` records the order of what the process did.

Wire facts about awslambdaric 4.2.2 that shaped this server (read from its sources and the bundled
aws-lambda-cpp 0.2.6 it links statically):

* ``next``/``response``/``error`` go through one libcurl easy handle that is reused across calls, so
  they arrive as HTTP/1.1 keep-alive requests on one connection; ``next`` is long-polled with no
  timeout. The server is threaded (one thread per connection) and speaks HTTP/1.1 with explicit
  ``Content-Length`` so the connection survives.
* Replies go out in a single ``send`` with Nagle disabled: a header/body split write meeting the
  client's delayed ACK costs ~40 ms per request on Linux, which would distort latency measurements.
  (Upstream aws-lambda-cpp sets a 100 ms ``CURLOPT_TIMEOUT_MS`` on posts; the build bundled in
  awslambdaric 4.2.2 does not — a post acknowledged 1.5 s late was still accepted — so POSTs are
  simply acknowledged straight away.)
* ``init/error`` is posted by pure Python (``http.client``, a fresh connection) and awslambdaric
  requires exactly ``202``, otherwise it raises instead of exiting cleanly.
* Invocation errors are posted *without* ``Lambda-Runtime-Function-Error-Type`` (the native client
  only sends ``lambda-runtime-function-xray-error-cause``); the error type lives in the JSON body.
  :attr:`InvocationResult.error_type` looks in both places.
"""

from __future__ import annotations

import collections
import http.server
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

API_PREFIX = "/2018-06-01/runtime"
DEFAULT_FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:bert2vec-encode"
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"

# How often blocked waits re-check "is the process still alive?" and "is the server closing?".
_POLL_S = 0.05


class RuntimeExitedError(RuntimeError):
    """The function process exited while something was waiting on it (e.g. after an init error)."""


@dataclass(frozen=True)
class InvocationResult:
    """What the runtime posted back for one invocation."""

    request_id: str
    kind: Literal["response", "error"]
    payload: bytes
    headers: dict[str, str]
    elapsed_s: float  # from invoke() to the post arriving, queueing and cold start included
    deadline_ms: int = 0  # the epoch-ms deadline that was sent in Lambda-Runtime-Deadline-Ms
    dispatch_s: float = 0.0  # from invoke() until the runtime's `next` picked the event up

    def json(self) -> Any:
        """The payload parsed as JSON (awslambdaric serialises dict returns and error objects as JSON)."""
        return json.loads(self.payload)

    @property
    def error_type(self) -> str | None:
        """Error type from the header if the runtime sent one, else from the JSON error body."""
        for key, value in self.headers.items():
            if key.lower() == ERROR_TYPE_HEADER.lower():
                return value
        if self.kind != "error":
            return None
        try:
            body = self.json()
        except ValueError:
            return None
        return body.get("errorType") if isinstance(body, dict) else None


@dataclass(frozen=True)
class InitError:
    """A POST to ``/runtime/init/error``: the handler could not be loaded."""

    error_type: str | None
    payload: bytes
    headers: dict[str, str]
    received_at: float  # time.monotonic()

    def json(self) -> Any:
        return json.loads(self.payload)


@dataclass(frozen=True)
class RequestRecord:
    """One HTTP request the server saw; ``peer_port`` tells connections apart (keep-alive evidence)."""

    method: str
    path: str
    peer_port: int
    status: int
    at: float  # time.monotonic() when the request line was parsed


@dataclass
class _Invocation:
    request_id: str
    body: bytes
    content_type: str
    deadline_ms: int  # relative budget; made absolute when dispatched
    function_arn: str
    trace_id: str
    client_context: str | None
    cognito_identity: str | None
    created_at: float = field(default_factory=time.monotonic)
    abs_deadline_ms: int = 0
    dispatched_at: float | None = None
    abandoned: bool = False
    result: InvocationResult | None = None


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True  # a long-polled `next` must never block interpreter exit
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, api: RuntimeAPI) -> None:
        self.api = api
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the runtime client expects
    disable_nagle_algorithm = True  # see module docstring: delayed-ACK stalls
    server: _Server

    # --- plumbing -------------------------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silence per-request stderr noise; requests are recorded in RuntimeAPI.requests instead."""

    def _record(self, status: int) -> None:
        self.server.api._record(RequestRecord(self.command, self.path, self.client_address[1], status, self._t0))

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _reply(
        self, status: int, body: bytes = b"", headers: dict[str, str] | None = None, *, record: bool = True
    ) -> None:
        """Status line, headers and body in one write (one TCP segment for small replies)."""
        lines = [f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}"]
        all_headers = {"Content-Type": "application/json", **(headers or {}), "Content-Length": str(len(body))}
        lines += [f"{k}: {v}" for k, v in all_headers.items()]
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        if record:
            self._record(status)

    def _json_reply(self, status: int, obj: dict[str, Any], *, record: bool = True) -> None:
        self._reply(status, json.dumps(obj).encode(), record=record)

    def parse_request(self) -> bool:
        self._t0 = time.monotonic()
        return super().parse_request()

    # --- endpoints ------------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        if self.path == f"{API_PREFIX}/restore/next":
            if self.server.api._restore_next():
                self._reply(200, b"", {})
            else:
                self.close_connection = True
                self._record(0)
            return
        if self.path != f"{API_PREFIX}/invocation/next":
            self._json_reply(404, {"errorType": "NotFound", "errorMessage": self.path})
            return
        inv = self.server.api._next_invocation()
        if inv is None:  # server closing: drop the long-poll without an answer
            self.close_connection = True
            self._record(0)
            return
        headers = {
            "Content-Type": inv.content_type,
            "Lambda-Runtime-Aws-Request-Id": inv.request_id,
            "Lambda-Runtime-Deadline-Ms": str(inv.abs_deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": inv.function_arn,
            "Lambda-Runtime-Trace-Id": inv.trace_id,
        }
        if inv.client_context is not None:
            headers["Lambda-Runtime-Client-Context"] = inv.client_context
        if inv.cognito_identity is not None:
            headers["Lambda-Runtime-Cognito-Identity"] = inv.cognito_identity
        self._reply(200, inv.body, headers)

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        body = self._read_body()
        headers = dict(self.headers.items())
        if self.path == f"{API_PREFIX}/init/error":
            self.server.api._init_error(body, headers)
            self._json_reply(202, {"status": "OK"})
            return
        if self.path == f"{API_PREFIX}/restore/error":
            self.server.api._restore_error(body, headers)
            self._json_reply(202, {"status": "OK"})
            return
        prefix = f"{API_PREFIX}/invocation/"
        parts = self.path.removeprefix(prefix).split("/")
        if not self.path.startswith(prefix) or len(parts) != 2 or parts[1] not in ("response", "error"):
            self._json_reply(404, {"errorType": "NotFound", "errorMessage": self.path})
            return
        request_id, kind = parts
        # The request is recorded inside _complete, before invoke() wakes up, so a caller that looks at
        # RuntimeAPI.requests right after invoke() returns sees this POST.
        record = RequestRecord(self.command, self.path, self.client_address[1], 202, self._t0)
        if self.server.api._complete(request_id, kind, body, headers, record):
            self._json_reply(202, {"status": "OK"}, record=False)
        else:
            self._json_reply(400, {"errorType": "InvalidRequestID", "errorMessage": f"unknown request id {request_id}"})


class RuntimeAPI:
    """A Lambda Runtime API on ``127.0.0.1:<free port>``; use as a context manager.

    ``invoke()`` plays the Lambda service: it queues an event, the process picks it up with ``next``,
    and ``invoke()`` returns what the process posted. One process per instance is the intended use
    (Lambda runs one runtime per execution environment); ``invoke()`` is thread-safe and invocations
    are served in order, one at a time, like a single Lambda sandbox.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: collections.deque[_Invocation] = collections.deque()
        self._in_flight: dict[str, _Invocation] = {}
        self._closing = False
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._waiting_next = 0
        self._diagnostics: Callable[[], str] | None = None
        self._alive: Callable[[], bool] | None = None
        self.init_errors: list[InitError] = []
        self.late_results: list[InvocationResult] = []  # posts for invocations invoke() gave up on
        self.requests: list[RequestRecord] = []  # in completion order; sort by .at for arrival order
        self.next_calls: list[float] = []  # time.monotonic() of every `next` that arrived
        self.lifecycle: list[str] = []  # "restore/next", "restored", "restore/error", "next" (first only)
        self.restore_errors: list[InitError] = []
        self._restored = False

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> RuntimeAPI:
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="runtime-api", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving; pending long-polls are dropped and open connections shut down."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            with self._server.sockets_lock:
                for sock in list(self._server.open_sockets):
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass  # already closed by the peer
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> RuntimeAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def address(self) -> str:
        """``host:port`` — the value for ``AWS_LAMBDA_RUNTIME_API``."""
        if self._server is None:
            raise RuntimeError("RuntimeAPI not started")
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def attach(self, *, diagnostics: Callable[[], str] | None = None, alive: Callable[[], bool] | None = None) -> None:
        """Let waits fail fast when the process dies, and put its output into timeout errors."""
        self._diagnostics = diagnostics
        self._alive = alive

    # --- the Lambda-service side ----------------------------------------------------------------

    def invoke(
        self,
        event: Any,
        *,
        timeout: float = 60,
        deadline_ms: int = 30000,
        function_arn: str = DEFAULT_FUNCTION_ARN,
        client_context: dict[str, Any] | str | None = None,
        cognito_identity: dict[str, Any] | str | None = None,
        content_type: str = "application/json",
        request_id: str | None = None,
    ) -> InvocationResult:
        """Queue ``event`` (JSON-serialisable, or raw ``bytes``) and wait for the runtime's answer.

        ``deadline_ms`` is the function timeout: ``Lambda-Runtime-Deadline-Ms`` is set to
        *now + deadline_ms* at the moment the runtime's ``next`` receives the event (as in Lambda,
        time spent waiting for a cold start does not eat the function's timeout).
        ``timeout`` bounds the wait in this test process. Raises ``TimeoutError`` (with the
        process's recent output) if nothing is posted in time, ``RuntimeExitedError`` if the process
        dies first.
        """
        body = event if isinstance(event, bytes) else json.dumps(event).encode()
        inv = _Invocation(
            request_id=request_id or str(uuid.uuid4()),
            body=body,
            content_type=content_type,
            deadline_ms=deadline_ms,
            function_arn=function_arn,
            trace_id=f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=0",
            client_context=_header_json(client_context),
            cognito_identity=_header_json(cognito_identity),
        )
        with self._cond:
            if self._closing:
                raise RuntimeError("RuntimeAPI is closed")
            self._queue.append(inv)
            self._cond.notify_all()
            end = time.monotonic() + timeout
            while inv.result is None:
                remaining = end - time.monotonic()
                if remaining <= 0:
                    inv.abandoned = True
                    state = "was picked up by `next`" if inv.dispatched_at else "was never picked up by `next`"
                    raise TimeoutError(
                        f"no response/error for request {inv.request_id} within {timeout:.1f}s (event {state})"
                        + self._diagnose()
                    )
                if self._process_gone():
                    inv.abandoned = True
                    raise RuntimeExitedError(
                        f"function process exited before answering request {inv.request_id}" + self._diagnose()
                    )
                self._cond.wait(min(remaining, _POLL_S))
            return inv.result

    def wait_for_next(self, timeout: float) -> bool:
        """Block until the runtime is parked in a ``next`` long-poll (i.e. init finished and it is idle).

        Returns False on timeout. Raises ``RuntimeExitedError`` if the process dies while waiting.
        """
        return self._wait_for_call(lambda: self._waiting_next > 0, "next", timeout)

    def wait_for_init_error(self, timeout: float) -> InitError | None:
        """The first init error posted, waiting up to ``timeout`` seconds; None if none arrived."""
        end = time.monotonic() + timeout
        with self._cond:
            while not self.init_errors:
                remaining = end - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(min(remaining, _POLL_S))
            return self.init_errors[0]

    def wait_for_snapshot(self, timeout: float) -> bool:
        """Block until the process has called ``restore/next`` (init and before-snapshot hooks done)."""
        return self._wait_for_call(lambda: "restore/next" in self.lifecycle, "restore/next", timeout)

    def _wait_for_call(self, called: Callable[[], bool], call: str, timeout: float) -> bool:
        """Wait until ``called()`` holds (False on timeout); a process that dies first raises, naming
        the ``call`` it never made, so a crash is reported as such instead of as a slow start."""
        end = time.monotonic() + timeout
        with self._cond:
            while not called():
                if self._process_gone():
                    raise RuntimeExitedError(f"function process exited before calling `{call}`" + self._diagnose())
                remaining = end - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, _POLL_S))
            return True

    def restore(self) -> None:
        """Answer the parked ``restore/next``: the environment is now "restored from the snapshot"."""
        with self._cond:
            self._restored = True
            self._cond.notify_all()

    @property
    def first_next_at(self) -> float | None:
        """``time.monotonic()`` of the first ``next`` call: the end of the process's init phase."""
        with self._cond:
            return self.next_calls[0] if self.next_calls else None

    # --- called from handler threads ------------------------------------------------------------

    def _restore_next(self) -> bool:
        with self._cond:
            self.lifecycle.append("restore/next")
            self._cond.notify_all()
            while not self._restored:
                if self._closing:
                    return False
                self._cond.wait(_POLL_S)
            self.lifecycle.append("restored")
            return True

    def _restore_error(self, body: bytes, headers: dict[str, str]) -> None:
        error_type = next((v for k, v in headers.items() if k.lower() == ERROR_TYPE_HEADER.lower()), None)
        with self._cond:
            self.lifecycle.append("restore/error")
            self.restore_errors.append(InitError(error_type, body, headers, time.monotonic()))
            self._cond.notify_all()

    def _next_invocation(self) -> _Invocation | None:
        with self._cond:
            if not self.next_calls:
                self.lifecycle.append("next")
            self.next_calls.append(time.monotonic())
            self._waiting_next += 1
            self._cond.notify_all()
            try:
                while True:
                    while self._queue and self._queue[0].abandoned:
                        self._queue.popleft()
                    if self._queue:
                        break
                    if self._closing:
                        return None
                    self._cond.wait(_POLL_S * 4)
                inv = self._queue.popleft()
            finally:
                self._waiting_next -= 1
            inv.dispatched_at = time.monotonic()
            inv.abs_deadline_ms = int(time.time() * 1000) + inv.deadline_ms
            self._in_flight[inv.request_id] = inv
            return inv

    def _complete(
        self, request_id: str, kind: str, body: bytes, headers: dict[str, str], record: RequestRecord
    ) -> bool:
        now = time.monotonic()
        with self._cond:
            inv = self._in_flight.pop(request_id, None)
            if inv is None:
                return False
            self.requests.append(record)
            result = InvocationResult(
                request_id=request_id,
                kind="error" if kind == "error" else "response",
                payload=body,
                headers=headers,
                elapsed_s=now - inv.created_at,
                deadline_ms=inv.abs_deadline_ms,
                dispatch_s=(inv.dispatched_at or now) - inv.created_at,
            )
            if inv.abandoned:
                self.late_results.append(result)
            inv.result = result
            self._cond.notify_all()
            return True

    def _init_error(self, body: bytes, headers: dict[str, str]) -> None:
        error_type = next((v for k, v in headers.items() if k.lower() == ERROR_TYPE_HEADER.lower()), None)
        with self._cond:
            self.init_errors.append(InitError(error_type, body, headers, time.monotonic()))
            self._cond.notify_all()

    def _record(self, record: RequestRecord) -> None:
        with self._cond:
            self.requests.append(record)

    # --- diagnostics ----------------------------------------------------------------------------

    def _process_gone(self) -> bool:
        return self._alive is not None and not self._alive()

    def _diagnose(self) -> str:
        parts = []
        if self.init_errors:
            parts.append(
                "init errors posted: " + "; ".join(e.payload.decode(errors="replace") for e in self.init_errors)
            )
        if self._diagnostics is not None:
            parts.append(self._diagnostics())
        return ("\n" + "\n".join(parts)) if parts else ""


def _header_json(value: dict[str, Any] | str | None) -> str | None:
    """Client-context / Cognito headers carry JSON text; awslambdaric json-parses them."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))
