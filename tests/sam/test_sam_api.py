"""`sam local start-api` on the built template, driven by the clients users point at the API.

curl for the native route, the ``openai`` client for ``/v1/embeddings``, huggingface_hub's TEI client
for ``/embed``; every vector must equal the test suite's own export of the default model. Containers
are kept warm between requests (``--warm-containers LAZY``), as a user iterating locally would.
The local API has no IAM authorizer: requests carry no signature and are still answered.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.sam.samlocal import LOCAL_TIMEOUT, REPO, sam_env, sam_executable

TEXTS = ["I enjoy taking long walks along the beach with my dog.", "Serverless BERT on Lambda", "hello"]
ATOL = 1e-5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def api(built_template: Path) -> Iterator[str]:
    port = _free_port()
    argv = [sam_executable(), "local", "start-api", "--template", str(built_template), "--host", "127.0.0.1",
            "--port", str(port), "--skip-pull-image", "--warm-containers", "LAZY",
            "--parameter-overrides", LOCAL_TIMEOUT]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=REPO, env=sam_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)  # fmt: skip
    lines: list[str] = []
    ready = threading.Event()

    def drain() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if re.search(rf"Running on http://127\.0\.0\.1:{port}", line):
                ready.set()
        ready.set()

    threading.Thread(target=drain, daemon=True).start()
    try:
        assert ready.wait(180) and proc.poll() is None, "".join(lines[-40:])
        yield f"http://127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # sam stops its warm containers on Ctrl-C
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def want(default_encoder) -> np.ndarray:
    return default_encoder.encode(TEXTS).embeddings


def test_curl_native_route_without_a_signature(api: str, want: np.ndarray) -> None:
    out = subprocess.run(
        ["curl", "-sS", "--max-time", "180", "-w", "\n%{http_code}", "-H", "Content-Type: application/json",
         "-d", json.dumps({"texts": TEXTS}), f"{api}/encode"],
        capture_output=True, text=True, timeout=200, check=True,
    ).stdout  # fmt: skip
    body, status = out.rsplit("\n", 1)
    assert status == "200", body
    answer = json.loads(body)
    assert answer["dimension"] == 384 and len(answer["vectors"]) == 3
    np.testing.assert_allclose(answer["vectors"], want, atol=ATOL)


def test_curl_get_routes(api: str) -> None:
    for path, key in (("/health", "status"), ("/model", "vector_length"), ("/info", "model_id")):
        with urllib.request.urlopen(f"{api}{path}", timeout=180) as resp:
            assert resp.status == 200 and key in json.loads(resp.read()), path


def test_openai_client(api: str, want: np.ndarray) -> None:
    import openai

    client = openai.OpenAI(base_url=f"{api}/v1", api_key="unused", max_retries=0, timeout=180)
    got = client.embeddings.create(input=TEXTS, model="bert2vec", encoding_format="float")
    assert [d.index for d in got.data] == [0, 1, 2]
    np.testing.assert_allclose([d.embedding for d in got.data], want, atol=ATOL)
    default = client.embeddings.create(input=TEXTS[1], model="bert2vec")  # base64 on the wire
    np.testing.assert_allclose(default.data[0].embedding, want[1], atol=ATOL)
    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(input=["ok", ""], model="bert2vec")
    assert err.value.code == "empty_input"
    assert [m.id for m in client.models.list()] == ["all-MiniLM-L6-v2"]


def test_tei_embed_with_huggingface_hub(api: str, want: np.ndarray) -> None:
    from huggingface_hub import InferenceClient

    client = InferenceClient(base_url=f"{api}/embed", api_key="unused", timeout=180)
    got = client.feature_extraction(TEXTS)
    assert got.shape == (3, 384)
    np.testing.assert_allclose(got, want, atol=ATOL)


def test_warm_container_answers_fast(api: str) -> None:
    """After the first request the container stays up: a request is tens of ms, not a cold start."""
    req = urllib.request.Request(f"{api}/encode", data=json.dumps({"texts": ["warm"]}).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")  # fmt: skip
    urllib.request.urlopen(req, timeout=180).read()
    start = time.perf_counter()
    with urllib.request.urlopen(req, timeout=180) as resp:
        assert resp.status == 200
    assert time.perf_counter() - start < 5.0
