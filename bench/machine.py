"""What the machine is and how busy it was: CPU, cores, load, and CPU time used by anyone else."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from tests.e2e.harness import peak_rss_mb  # noqa: F401 - the one VmHWM reader, used as machine.peak_rss_mb


def cpu_description() -> dict[str, str | int]:
    info: dict[str, str] = {}
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "cpu family", "model", "stepping", "flags", "cpu MHz") and key not in info:
            info[key] = value.strip()
    flags = set(info.get("flags", "").split())
    simd = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile") if f in flags]
    mem_kb = next(
        (int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal:")),
        0,
    )
    return {
        "cpu": f"{info.get('model name', '?')} (family {info.get('cpu family', '?')}, model {info.get('model', '?')})",
        "simd": " ".join(simd),
        "cores": len(os.sched_getaffinity(0)),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def loadavg() -> tuple[float, float, float]:
    a, b, c = Path("/proc/loadavg").read_text().split()[:3]
    return float(a), float(b), float(c)


def busy_ticks() -> int:
    """Jiffies all CPUs spent not idle (user+nice+system+irq+softirq+steal) since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return user + nice + system + irq + softirq + steal


def process_ticks(pid: int) -> int:
    """utime+stime of a process (all its threads), in clock ticks."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


TICKS = os.sysconf("SC_CLK_TCK")
