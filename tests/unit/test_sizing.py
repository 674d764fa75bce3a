"""bert2vec.export.sizing: the memory an export needs, and the build's refusal (fast: fake exports).

An "export" here is a directory with a ``variables/`` of a given size and a model card; the build
(function/Dockerfile) runs the same ``python -m bert2vec.export.sizing`` on the real export.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bert2vec.export import sizing

REPO = Path(__file__).resolve().parents[2]


def fake_export(path: Path, weights_mb: float, *, split: bool = True, name: str = "m") -> Path:
    (path / "variables").mkdir(parents=True)
    with open(path / "variables" / "variables.data-00000-of-00001", "wb") as f:
        f.truncate(int(weights_mb * sizing.MB))  # sparse: no real bytes written
    card = {"name": name, "split_parts": [2] if split else []}
    (path / "model_card.json").write_text(json.dumps(card))
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bert2vec.export.sizing", *args], capture_output=True, text=True,
                          timeout=60, cwd=REPO)  # fmt: skip


def test_memory_grows_with_weights_in_64_mb_steps() -> None:
    sizes = [sizing.memory_for(w) for w in (0, 90, 400, 1300, 2000)]
    assert sizes == sorted(sizes) and all(s % 64 == 0 for s in sizes)
    assert sizes[0] >= sizing.LAMBDA_MIN_MB


def test_small_model_fits_the_default(tmp_path: Path) -> None:
    model = fake_export(tmp_path / "minilm", 90)
    out = run(str(model), "--memory-size", "2048", "--bulk-memory-size", "3008")
    assert out.returncode == 0 and "fits" in out.stdout


def test_large_model_is_refused_with_the_memory_size_to_pass(tmp_path: Path) -> None:
    model = fake_export(tmp_path / "large", 1957, name="bert_uncased_L-24_H-1024_A-16")
    out = run(str(model), "--memory-size", "2048", "--bulk-memory-size", "3008")
    need = sizing.required_memory_mb(model)
    assert out.returncode == 1 and out.stdout.count("\n") == 1, out.stdout
    assert f"--parameter-overrides MemorySize={need} BulkMemorySize={need}" in out.stdout
    assert need > 3008
    assert run(str(model), "--memory-size", str(need), "--bulk-memory-size", str(need)).returncode == 0


def test_beyond_lambdas_maximum_says_so(tmp_path: Path) -> None:
    out = run(str(fake_export(tmp_path / "huge", 9000)), "--memory-size", "10240")
    assert out.returncode == 1 and "more than Lambda's 10240 MB" in out.stdout


@pytest.mark.parametrize(
    ("weights", "split", "memory", "code"),
    [
        (90, True, 2048, 0),  # fits with the split graph on 2 vCPUs' worth: keep it
        (90, True, 1769, 3),  # one vCPU: the split graph never runs
        (90, False, 1024, 0),  # nothing to leave out
        (1957, True, 3072, 3),  # only fits without the split graph
    ],
)
def test_split_pays(tmp_path: Path, weights: float, split: bool, memory: int, code: int) -> None:
    out = run(str(fake_export(tmp_path / "m", weights, split=split)), "--memory-size", str(memory), "--split-pays")
    assert out.returncode == code, out.stdout
    assert (("--no-split" in out.stdout) == (code == 3)), out.stdout


def test_build_passes_the_template_memory_and_checks_it() -> None:
    from cfnlint.decode import decode

    template, matches = decode(str(REPO / "template.yaml"))
    assert not matches
    dockerfile = (REPO / "function" / "Dockerfile").read_text(encoding="utf-8")
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    for arg, param in (("MEMORY_SIZE", "MemorySize"), ("BULK_MEMORY_SIZE", "BulkMemorySize")):
        default = template["Parameters"][param]["Default"]
        assert re.search(rf"^ARG {arg}={default}$", dockerfile, re.MULTILINE), arg
        assert re.search(rf"^{arg}\s+\?= {default}$", makefile, re.MULTILINE), arg
        for fn in ("EncodeFunction", "BulkPlannerFunction", "BulkWorkerFunction"):
            assert template["Resources"][fn]["Metadata"]["DockerBuildArgs"][arg] == {"Ref": param}
    assert '--memory-size "$MEMORY_SIZE" --bulk-memory-size "$BULK_MEMORY_SIZE"' in dockerfile
    assert '--split-pays' in dockerfile and 'export_model --no-split' in dockerfile
