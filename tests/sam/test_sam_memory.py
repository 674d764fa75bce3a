"""`sam build` knows the memory the model needs: it refuses a MemorySize that is too small, in one
line naming the value to pass, and builds with that value (function/Dockerfile's export stage,
bert2vec/export/sizing.py).

MemorySize 1024 is one vCPU, so the export leaves the split graph out (``--no-split``); the default
model then still needs more than 1,024 MB, and the build stops. Each build here re-exports the
default model in Docker (about a minute); the rest of the image comes from the cache.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.image.container import docker, image_name
from tests.sam.samlocal import REPO, sam_env, sam_executable


def _sam_build(build_dir: Path, overrides: str) -> tuple[int, list[str]]:
    proc = subprocess.run([sam_executable(), "build", "--build-dir", str(build_dir), "--parameter-overrides", overrides],
                          capture_output=True, text=True, timeout=1800, cwd=REPO, env=sam_env())  # fmt: skip
    out = proc.stdout + proc.stderr
    return proc.returncode, [line.strip() for line in out.splitlines() if line.strip().startswith("bert2vec: ")]


@pytest.fixture
def keeps_the_built_tag(built_template: Path):
    """sam build tags its image by function and DockerTag whatever the build dir: put the default
    build's tag back afterwards, for the other tests' built template."""
    uri = re.search(r"^\s+ImageUri: (\S+)$", built_template.read_text(encoding="utf-8"), flags=re.MULTILINE).group(1)
    yield
    docker("tag", image_name(), uri)


def test_too_little_memory_is_refused_with_the_value_to_pass(tmp_path: Path, keeps_the_built_tag) -> None:
    code, lines = _sam_build(tmp_path / "small", "MemorySize=1024")
    assert code != 0, lines
    assert any("--no-split" in line and "one vCPU" in line for line in lines), lines
    refusals = [line for line in lines if "pass --parameter-overrides" in line]
    assert len(refusals) == 1, lines
    need = int(re.search(r"--parameter-overrides MemorySize=(\d+)$", refusals[0]).group(1))
    assert 1024 < need <= 1769, refusals[0]

    code, lines = _sam_build(tmp_path / "enough", f"MemorySize={need}")
    assert code == 0, lines
    assert any(f"MemorySize {need} fits" in line for line in lines), lines
    built = (tmp_path / "enough" / "template.yaml").read_text(encoding="utf-8")
    assert "ImageUri:" in built
