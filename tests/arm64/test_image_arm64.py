"""The arm64 image under emulation: it initialises, answers encode events, and its vectors equal x86_64's.

Run as Lambda runs it (tests/image/container.py: read-only root, uid 993, a memory cap, the Runtime
API on 127.0.0.1), with ``--platform linux/arm64`` so qemu (scripts/binfmt-arm64.sh) executes it.
Emulation tells that the arm64 wheels, the trimmed venv and the exported model work together on
aarch64 and give the same vectors; it says nothing about Graviton's speed (qemu translates every
instruction; timings here are 10-50x a native core's) nor about memory use to better than qemu's own
overhead (its translation cache counts against the container's cap). ``ARM64_MEMORY_MB`` sets the
cap (default 4,096 MB: an earlier run on this kind of machine with the template's 2,048 MB got no
answer within 500 s; qemu's own memory counts against the cap).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from tests.arm64.conftest import arm64_image
from tests.e2e.lambda_checks import assert_event_answered_as_expected
from tests.image.container import container_session, docker, image_name

pytestmark = pytest.mark.timeout(3000)  # init under emulation takes minutes, not seconds

MEMORY_MB = int(os.environ.get("ARM64_MEMORY_MB", "4096"))
EVENTS = ["direct_encode.json", "api_gateway_v2_encode.json", "openai_embeddings.json", "tei_embed.json",
          "health.json", "bad_empty_text.json"]  # fmt: skip
TEXTS = ["I enjoy taking long walks along the beach with my dog.", "Serverless BERT on Lambda", "hello",
         "Graviton " * 200]  # fmt: skip


@pytest.fixture(scope="module")
def arm64_function():
    with container_session(arm64_image(), memory_mb=MEMORY_MB, docker_args=["--platform", "linux/arm64"],
                           ready_timeout=1200) as session:  # fmt: skip
        yield session


def test_the_image_is_arm64_and_initialises(arm64_function) -> None:
    _, process = arm64_function
    assert docker("image", "inspect", "--format", "{{.Architecture}}", arm64_image()).stdout.strip() == "arm64"
    assert docker("exec", process.name, "uname", "-m").stdout.strip() == "aarch64"
    ready = process.model_ready(timeout=30)
    assert ready["threads_applied"] is True
    pkgs = docker("exec", process.name, "python", "-c",
                  "import importlib.metadata as m; print(m.version('tensorflow'))").stdout.strip()  # fmt: skip
    assert pkgs == "2.21.0"  # aarch64 has no tensorflow-cpu: the full wheel, from the aarch64 lock


@pytest.mark.parametrize("name", EVENTS)
def test_encode_events_under_emulation(arm64_function, name: str) -> None:
    assert_event_answered_as_expected(arm64_function, name)


def test_vectors_equal_the_x86_64_image(arm64_function) -> None:
    runtime, process = arm64_function
    arm = runtime.invoke({"texts": TEXTS}, timeout=600)
    assert arm.kind == "response", process.output_tail()
    with container_session(image_name(), memory_mb=2048) as x86:
        ref = x86[0].invoke({"texts": TEXTS}, timeout=120)
        assert ref.kind == "response", x86[1].output_tail()
    a = np.asarray(arm.json()["vectors"], dtype=np.float64)
    b = np.asarray(ref.json()["vectors"], dtype=np.float64)
    assert a.shape == b.shape == (len(TEXTS), 384)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() >= 0.99999, cos
    assert arm.json()["token_counts"] == ref.json()["token_counts"]


def test_sam_build_follows_the_architecture_parameter(tmp_path) -> None:
    """`sam build --parameter-overrides Architecture=arm64` builds every function for arm64, from the
    same Dockerfile and build args as `make image ARCH=arm64`: all cache hits, the same image."""
    import re

    from tests.sam.samlocal import run_checked, sam_executable

    if not os.access(sam_executable(), os.X_OK):
        pytest.skip(f"the SAM CLI {sam_executable()} is not installed (make .cache/venv-sam/bin/sam)")
    build_dir = tmp_path / "build"
    run_checked([sam_executable(), "build", "--build-dir", str(build_dir), "--parameter-overrides",
                 "Architecture=arm64 BaseImage=arm64v8/python:3.11-slim-bookworm"], timeout=3000)  # fmt: skip
    built = (build_dir / "template.yaml").read_text(encoding="utf-8")
    uris = set(re.findall(r"^\s+ImageUri: (\S+)$", built, flags=re.MULTILINE))
    assert len(uris) == 1
    image_id, arch = docker("image", "inspect", "--format", "{{.Id}} {{.Architecture}}", uris.pop()).stdout.split()
    assert arch == "arm64"
    assert image_id == docker("image", "inspect", "--format", "{{.Id}}", arm64_image()).stdout.strip()
