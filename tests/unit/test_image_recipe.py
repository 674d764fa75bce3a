"""How the image is built and tested, checked on the files (fast: no Docker, nothing built).

- ``make image`` builds as ``sam build`` does: ``function/Dockerfile``, context ``.``, the template's
  build args (``BERT_MODEL``, ``EXPORT_ARGS``), on the host network.
- Layer caching: no stage copies code before its dependencies are installed, so a code change never
  reinstalls TensorFlow.
- The scripts CI runs parse, are executable, and leave the machine's network alone.
- ``make test`` does not run the image tier; ``make image-test`` does.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.unit.test_dockerfile import _stages

REPO = Path(__file__).resolve().parents[2]
MAKEFILE = (REPO / "Makefile").read_text(encoding="utf-8")
SCRIPTS = sorted((REPO / "scripts").glob("*.sh"))


def _recipe(target: str) -> str:
    match = re.search(rf"^{re.escape(target)}:[^\n]*\n((?:\t[^\n]*\n)+)", MAKEFILE, re.MULTILINE)
    assert match, f"no {target} target"
    return match.group(1).replace("\\\n", " ")


def test_make_image_builds_like_sam_build() -> None:
    recipe = _recipe("image")
    template = (REPO / "template.yaml").read_text(encoding="utf-8")
    build_args = re.search(r"DockerBuildArgs:\n((?:\s+\w+: .*\n)+)", template)
    assert build_args
    for name in re.findall(r"(\w+): ", build_args.group(1)):
        assert f'--build-arg {name}="$({name})"' in recipe, name
    assert "Dockerfile: function/Dockerfile" in template and "DockerContext: ." in template
    assert "-f function/Dockerfile" in recipe and recipe.rstrip().endswith(" .")
    assert "--network host" in recipe
    assert "scripts/base-image.sh" in recipe


def test_no_stage_copies_code_before_installing_its_dependencies() -> None:
    code = ("bert2vec/export/", "function/", "README.md", "models/", ".")
    for name, instructions in _stages().items():
        installs = [i for i, (ins, rest) in enumerate(instructions) if ins == "RUN" and "pip" in rest and "install" in rest
                    and "--no-deps ." not in rest]  # fmt: skip
        copies = [i for i, (ins, rest) in enumerate(instructions)
                  if ins == "COPY" and "--from=" not in rest and rest.split()[0] in code]  # fmt: skip
        if installs and copies:
            assert max(installs) < min(copies), f"stage {name}: code is copied before a dependency install"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_parse_and_are_executable(script: Path) -> None:
    assert script.stat().st_mode & 0o111, f"{script.name} is not executable"
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


def test_the_engine_ci_starts_leaves_the_network_alone() -> None:
    text = (REPO / "scripts" / "docker-up.sh").read_text(encoding="utf-8")
    start = next(line for line in text.splitlines() if "dockerd --" in line and not line.lstrip().startswith("#"))
    for flag in ("--iptables=false", "--ip-forward=false", "--ip-masq=false"):
        assert flag in start, flag
    # The default bridge stays on: sam local publishes the emulator's port through docker-proxy.
    assert "--bridge=none" not in start and "--bridge " not in start
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "scripts/docker-up.sh" in ci and "make image-test" in ci


def test_the_image_tier_is_opt_in() -> None:
    assert "BERT2VEC_IMAGE=" in _recipe("image-test") and "tests/image" in _recipe("image-test")
    assert "BERT2VEC_IMAGE" not in _recipe("test")
    conftest = (REPO / "tests" / "image" / "conftest.py").read_text(encoding="utf-8")
    assert 'opt_in_tier("image"' in conftest  # the shared opt-in hooks, which deselect the tier:
    assert "pytest_deselected" in (REPO / "tests" / "tier.py").read_text(encoding="utf-8")


def test_base_image_and_architecture_agree_across_template_dockerfile_and_makefile() -> None:
    """The base `sam build` uses (template BaseImage -> PYTHON_IMAGE) is the Dockerfile's default and
    `make image`'s; the functions' architecture is the template parameter, whose values `make image
    ARCH=` takes."""
    from cfnlint.decode import decode

    template, matches = decode(str(REPO / "template.yaml"))
    assert not matches, matches
    params = template["Parameters"]
    dockerfile = (REPO / "function" / "Dockerfile").read_text(encoding="utf-8")
    default = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", dockerfile, re.MULTILINE).group(1)
    assert params["BaseImage"]["Default"] == default
    assert re.search(rf"^PYTHON_IMAGE \?= {re.escape(default)}$", MAKEFILE, re.MULTILINE)
    assert params["Architecture"]["AllowedValues"] == ["x86_64", "arm64"] and params["Architecture"]["Default"] == "x86_64"
    assert template["Globals"]["Function"]["Architectures"] == [{"Ref": "Architecture"}]
    for arch in ("x86_64", "arm64"):
        assert f"ifeq ($(ARCH),{arch})" in MAKEFILE
    assert re.search(r"^ARCH\s+\?= x86_64$", MAKEFILE, re.MULTILINE)
    assert "--platform $(PLATFORM)" in _recipe("image") and "scripts/base-image.sh $(PYTHON_IMAGE) $(ARCH)" in _recipe("image")
