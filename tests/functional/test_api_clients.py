"""The real client libraries against ``bert-encode --serve`` on a local port.

One server process for the module (TensorFlow loads once): every request goes HTTP → the HTTP API
(v2) event → ``function.app.handler``, the code path Lambda runs. Each client's vectors must equal
the core ``Encoder``'s. A client library that is not installed skips its tests with the reason.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

TEXTS = ["I enjoy taking long walks along the beach with my dog.", "Serverless BERT on Lambda", "hello"]
ATOL = 1e-6


class Server:
    """``bert-encode --serve --port 0`` in a child process; stderr is drained into ``lines``."""

    def __init__(self, model_dir: Path, port: int = 0) -> None:
        script = Path(sys.executable).with_name("bert-encode")
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", POWERTOOLS_LOG_LEVEL="WARNING")
        self.process = subprocess.Popen(
            [str(script), "--serve", "--port", str(port), "--model", str(model_dir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.url = ""
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)
            found = re.search(r"serving \S+ at (http://\S+)", line)
            if found:
                self.url = found.group(1)
                self.ready.set()
        self.ready.set()

    def output(self) -> str:
        return "".join(self.lines[-40:])

    def assert_stopped_by_ctrl_c(self, timeout: float) -> None:
        """After a SIGINT: exit 130, a 'stopped' line, no traceback."""
        assert self.process.wait(timeout) == 130
        time.sleep(0.2)  # the drain thread reads the last lines
        assert "stopped" in self.output() and "Traceback" not in self.output()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(default_model_dir: Path):
    """One server for the module, on a chosen ``--port``; the module's last test stops it with Ctrl-C."""
    port = _free_port()
    srv = Server(default_model_dir, port=port)
    try:
        assert srv.ready.wait(180) and srv.url == f"http://127.0.0.1:{port}", f"server did not start:\n{srv.output()}"
        yield srv
    finally:
        if srv.process.poll() is None:
            srv.process.send_signal(signal.SIGINT)  # Ctrl-C
            try:
                srv.process.wait(30)
            except subprocess.TimeoutExpired:
                srv.process.kill()
                srv.process.wait()


@pytest.fixture(scope="module")
def url(server: Server) -> str:
    return server.url


@pytest.fixture(scope="module")
def want(default_encoder) -> np.ndarray:
    return default_encoder.encode(TEXTS).embeddings


def http(method: str, url: str, body: Any = None) -> tuple[int, Any, dict[str, str]]:
    """The stdlib's own client, for routes no library wraps."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read() or b"null"), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null"), dict(exc.headers)


# ---- the server itself -------------------------------------------------------------------------


def test_url_is_printed_on_stderr_and_health_answers(server: Server, url: str) -> None:
    assert url.startswith("http://127.0.0.1:")
    status, body, headers = http("GET", f"{url}/health")
    assert (status, body["status"], body["dimension"]) == (200, "ok", 384)
    assert headers["Content-Type"] == "application/json"


def test_errors_and_routes_come_from_the_handler(url: str) -> None:
    status, body, headers = http("GET", f"{url}/encode")
    assert (status, body["error_type"], headers["Allow"]) == (405, "method_not_allowed", "POST")
    status, body, _ = http("POST", f"{url}/nope", {})
    assert status == 404 and "POST /tokenize" in body["error"]
    status, body, _ = http("POST", f"{url}/encode", {"texts": ["ok", "\u200b"]})
    assert (status, body["error_type"]) == (400, "empty_input")


def test_native_route_matches_the_core(url: str, want: np.ndarray) -> None:
    status, body, _ = http("POST", f"{url}/encode", {"texts": TEXTS})
    assert status == 200
    np.testing.assert_allclose(body["vectors"], want, atol=ATOL)


# ---- openai ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def openai_client(url: str):
    openai = pytest.importorskip("openai", reason="the openai package is not installed (pip install openai)")
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=60)


def test_openai_float_one_and_many(openai_client, want: np.ndarray) -> None:
    one = openai_client.embeddings.create(input=TEXTS[0], model="bert2vec", encoding_format="float")
    assert len(one.data) == 1 and one.usage.prompt_tokens == 14
    np.testing.assert_allclose(one.data[0].embedding, want[0], atol=ATOL)
    many = openai_client.embeddings.create(input=TEXTS, model="bert2vec", encoding_format="float")
    assert [d.index for d in many.data] == [0, 1, 2]
    np.testing.assert_allclose([d.embedding for d in many.data], want, atol=ATOL)


def test_openai_default_encoding_is_base64_and_decodes(openai_client, want: np.ndarray) -> None:
    raw = openai_client.embeddings.with_raw_response.create(input=TEXTS, model="bert2vec")
    sent = json.loads(raw.http_request.content)
    assert sent.get("encoding_format") == "base64"  # what the client asks for when it is not told
    got = raw.parse()
    np.testing.assert_allclose([d.embedding for d in got.data], want, atol=ATOL)
    dims = openai_client.embeddings.create(input=TEXTS[1], model="bert2vec", dimensions=384)
    np.testing.assert_allclose(dims.data[0].embedding, want[1], atol=ATOL)


def test_openai_errors_show_the_message(openai_client) -> None:
    import openai

    with pytest.raises(openai.BadRequestError) as err:
        openai_client.embeddings.create(input=["ok", ""], model="bert2vec")
    assert err.value.status_code == 400 and "'input[1]' is empty" in err.value.message
    assert err.value.code == "empty_input" and err.value.param == "input"
    # OpenAI answers every invalid request 400: code that catches BadRequestError sees them all
    with pytest.raises(openai.BadRequestError) as err:
        openai_client.embeddings.create(input=[[40, 4774]], model="bert2vec")
    assert "check_embedding_ctx_length=False" in err.value.message and err.value.code == "validation"
    with pytest.raises(openai.BadRequestError) as err:
        openai_client.embeddings.create(input="a", model="bert2vec", dimensions=256)
    assert "384 dimensions" in err.value.message and err.value.param == "dimensions"
    with pytest.raises(openai.BadRequestError) as err:
        openai_client.embeddings.create(input="a", model="bert2vec", encoding_format="int8")  # type: ignore[arg-type]
    assert err.value.param == "encoding_format"
    with pytest.raises(openai.BadRequestError) as err:
        openai_client.embeddings.create(input="word " * 300, model="bert2vec", encoding_format="float")
    assert err.value.code == "text_too_long"


def test_openai_models_list_the_served_model(openai_client) -> None:
    assert [m.id for m in openai_client.models.list()] == ["all-MiniLM-L6-v2"]


# ---- LangChain ---------------------------------------------------------------------------------


def test_langchain_openai_embeddings(url: str, want: np.ndarray) -> None:
    lc = pytest.importorskip(
        "langchain_openai", reason="langchain-openai is not installed (pip install langchain-openai)"
    )
    emb = lc.OpenAIEmbeddings(
        model="bert2vec", base_url=f"{url}/v1", api_key="unused", check_embedding_ctx_length=False, max_retries=0
    )
    np.testing.assert_allclose(emb.embed_documents(TEXTS), want, atol=ATOL)
    np.testing.assert_allclose(emb.embed_query(TEXTS[1]), want[1], atol=ATOL)


def test_langchain_chunk_size_that_fits_the_budget(url: str, default_encoder) -> None:
    """docs/http-api.md's recipe: LangChain's default chunk_size (1,000 texts per request) sends
    64 paragraphs of ~900 characters in one request, over the wordpiece budget (413); chunk_size=32
    always fits (8,192 / 256)."""
    lc = pytest.importorskip("langchain_openai", reason="langchain-openai is not installed")
    import openai

    docs = [f"paragraph {i}: " + "serverless embeddings on lambda " * 28 for i in range(64)]
    common = dict(model="bert2vec", base_url=f"{url}/v1", api_key="unused", check_embedding_ctx_length=False,
                  max_retries=0)  # fmt: skip
    with pytest.raises(openai.APIStatusError) as err:
        lc.OpenAIEmbeddings(**common).embed_documents(docs)
    assert err.value.status_code == 413 and err.value.code == "request_too_large"
    got = lc.OpenAIEmbeddings(**common, chunk_size=32).embed_documents(docs)
    np.testing.assert_allclose(got, default_encoder.encode(docs).embeddings, atol=ATOL)


# ---- huggingface_hub (TEI) ---------------------------------------------------------------------


@pytest.mark.parametrize("route", ["", "/embed"])
def test_huggingface_hub_feature_extraction(url: str, want: np.ndarray, route: str) -> None:
    hub = pytest.importorskip(
        "huggingface_hub", reason="huggingface_hub is not installed (pip install huggingface_hub)"
    )
    client = hub.InferenceClient(base_url=url + route, api_key="unused")
    got = client.feature_extraction(TEXTS)
    assert got.shape == (3, 384) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=ATOL)
    one = client.feature_extraction(TEXTS[0], normalize=True, truncate=True, truncation_direction="right")
    np.testing.assert_allclose(one, want[:1], atol=ATOL)


def test_huggingface_hub_errors(url: str) -> None:
    hub = pytest.importorskip(
        "huggingface_hub", reason="huggingface_hub is not installed (pip install huggingface_hub)"
    )
    from huggingface_hub.errors import HfHubHTTPError

    client = hub.InferenceClient(base_url=url, api_key="unused")
    with pytest.raises(HfHubHTTPError) as err:
        client.feature_extraction("a", prompt_name="query")
    assert err.value.response.status_code == 422 and "no prompts configured" in str(err.value)


# ---- requests: /info and /tokenize -------------------------------------------------------------


def test_requests_info_and_tokenize(url: str, default_encoder) -> None:
    requests = pytest.importorskip("requests", reason="requests is not installed")
    info = requests.get(f"{url}/info", timeout=60).json()
    assert (info["model_id"], info["dimension"], info["max_input_length"]) == ("all-MiniLM-L6-v2", 384, 256)
    assert (info["max_client_batch_size"], info["max_batch_tokens"], info["normalize"]) == (2048, 8192, True)
    tokens = requests.post(f"{url}/tokenize", json={"inputs": TEXTS}, timeout=60).json()
    counts = default_encoder.encode(TEXTS).token_counts.tolist()
    assert [len(t) for t in tokens] == counts
    assert [t["text"] for t in tokens[1]] == ["[CLS]", "server", "##less", "bert", "on", "lambda", "[SEP]"]


# ---- Ctrl-C ------------------------------------------------------------------------------------


def test_ctrl_c_during_a_request_sends_the_whole_answer_then_exits(default_model_dir: Path) -> None:
    """Ctrl-C while a request computes: it finishes and is sent whole, then the server exits 130."""
    srv = Server(default_model_dir)
    try:
        assert srv.ready.wait(180) and srv.url, srv.output()
        texts = [f"paragraph {i} " + "serverless embeddings on lambda " * 40 for i in range(32)]
        result: dict[str, Any] = {}
        client = threading.Thread(target=lambda: result.update(out=http("POST", f"{srv.url}/encode", {"texts": texts})))
        client.start()
        time.sleep(0.5)  # the request is in the handler (32 x 256 wordpieces take seconds)
        srv.process.send_signal(signal.SIGINT)
        client.join(120)
        status, body, _ = result["out"]
        assert status == 200 and len(body["vectors"]) == 32
        srv.assert_stopped_by_ctrl_c(60)
    finally:
        srv.kill()


def test_ctrl_c_exits_130_cleanly(server: Server) -> None:
    """The module's server, idle on its chosen --port: SIGINT → 'stopped', exit 130, no traceback.
    It stops the shared server, so it stays the last test of this module (pytest runs them in order)."""
    server.process.send_signal(signal.SIGINT)
    server.assert_stopped_by_ctrl_c(30)
