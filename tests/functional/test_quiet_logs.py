"""No absl/oneDNN/CUDA start-up line in a cold start's log or on ``bert-encode``'s terminal."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

NOISE = re.compile(r"absl::InitializeLog|^[IWE]\d{4} \d|oneDNN|cuda|cuInit|cpu_feature_guard|rebuild TensorFlow", re.M)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # the code's own default applies
    env.update(POWERTOOLS_METRICS_DISABLED="true", **extra)
    return env


def test_the_noise_pattern_matches_what_tensorflow_prints(default_model_dir) -> None:
    """Guard against a vacuous pass: a bare import at level 0 does print the banners."""
    out = subprocess.run(
        [sys.executable, "-c", "import tensorflow, tensorflow_text"],
        capture_output=True, text=True, timeout=300, env=_env(TF_CPP_MIN_LOG_LEVEL="0"),
    )  # fmt: skip
    assert NOISE.search(out.stderr), out.stderr


# Both handlers start through bert2vec.core.bootstrap.load_model: the bulk one in the slow tier.
@pytest.mark.parametrize("module", ["bert2vec.http.app", pytest.param("bert2vec.bulk.app", marks=pytest.mark.slow)])
def test_cold_start_logs_have_no_tensorflow_banners(default_model_dir, module: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        capture_output=True, text=True, timeout=300, cwd=REPO,
        env=_env(MODEL_DIR=str(default_model_dir), AWS_DEFAULT_REGION="us-east-1"),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert not NOISE.search(out.stderr + out.stdout), out.stderr


def test_bert_encode_prints_only_the_vectors(default_model_dir) -> None:
    out = subprocess.run(
        [str(Path(sys.executable).parent / "bert-encode"), "--model", str(default_model_dir), "hello world"],
        capture_output=True, text=True, timeout=300, env=_env(),
    )  # fmt: skip
    assert out.returncode == 0 and out.stderr == "", out.stderr
    assert '"vector"' in out.stdout
