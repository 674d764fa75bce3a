"""TensorFlow thread counts come from the cgroup CPU quota, not the host's core count."""

from __future__ import annotations

from pathlib import Path

import pytest

from function.cpu import cpu_quota, usable_cpus


def _visible() -> int:
    import os

    return len(os.sched_getaffinity(0))


@pytest.mark.parametrize(
    ("content", "quota"),
    [("max 100000", None), ("100000 100000", 1.0), ("50000 100000", 0.5), ("300000 100000", 3.0)],
)
def test_cgroup_v2(tmp_path: Path, content: str, quota: float | None, monkeypatch) -> None:
    monkeypatch.delenv("TF_NUM_THREADS", raising=False)
    (tmp_path / "cpu.max").write_text(content + "\n")
    assert cpu_quota(tmp_path) == quota
    expected = _visible() if quota is None else max(1, min(_visible(), -(-int(quota * 10) // 10)))
    assert usable_cpus(tmp_path) == expected


def test_half_a_cpu_still_gets_one_thread(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("TF_NUM_THREADS", raising=False)
    (tmp_path / "cpu.max").write_text("50000 100000\n")
    assert usable_cpus(tmp_path) == 1


def test_cgroup_v1(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("TF_NUM_THREADS", raising=False)
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("100000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cpu_quota(tmp_path) == 1.0
    assert usable_cpus(tmp_path) == 1
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert cpu_quota(tmp_path) is None


def test_no_cgroup_and_override(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("TF_NUM_THREADS", raising=False)
    assert cpu_quota(tmp_path) is None
    assert usable_cpus(tmp_path) == _visible()
    monkeypatch.setenv("TF_NUM_THREADS", "3")
    assert usable_cpus(tmp_path) == 3
