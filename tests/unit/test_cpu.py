"""TensorFlow thread counts come from the cgroup CPU quota, not the host's core count."""

from __future__ import annotations

from pathlib import Path

import pytest

from bert2vec.core.cpu import cpu_quota, requested_threads, usable_cpus
from bert2vec.core.settings import ConfigError


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
    assert usable_cpus(tmp_path, requested=3) == 3
    monkeypatch.setenv("TF_NUM_THREADS", "3")  # read by the settings object, not here
    assert usable_cpus(tmp_path) == _visible()
    assert requested_threads() == 3
    monkeypatch.setenv("TF_NUM_THREADS", "0")
    with pytest.raises(ConfigError, match="TF_NUM_THREADS must be 1 or more, got 0"):
        requested_threads()
    monkeypatch.setenv("TF_NUM_THREADS", "two")
    with pytest.raises(ConfigError, match="TF_NUM_THREADS must be a whole number, got 'two'"):
        requested_threads()


_ZEN4 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n\nprocessor\t: 1\n"
_SKYLAKE = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw\n"
_GRAVITON2 = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp\n"
_GRAVITON3 = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes sve bf16 i8mm\n"
_SAPPHIRE_RAPIDS = "processor\t: 0\nflags\t\t: avx512f amx_bf16 amx_tile amx_int8\n"


@pytest.mark.parametrize(
    ("cpuinfo", "native"),
    [(_ZEN4, True), (_SKYLAKE, False), (_GRAVITON2, False), (_GRAVITON3, True), (_SAPPHIRE_RAPIDS, True)],
)
def test_native_bf16_from_cpu_flags(tmp_path: Path, cpuinfo: str, native: bool) -> None:
    from bert2vec.core.cpu import native_bf16

    (tmp_path / "cpuinfo").write_text(cpuinfo)
    assert native_bf16(tmp_path / "cpuinfo") is native


def test_native_bf16_unknown_when_cpuinfo_is_unreadable(tmp_path: Path) -> None:
    from bert2vec.core.cpu import native_bf16

    assert native_bf16(tmp_path / "missing") is None
    (tmp_path / "cpuinfo").write_text("processor\t: 0\n")
    assert native_bf16(tmp_path / "cpuinfo") is None
