"""How many CPUs this execution environment really has, for TensorFlow's thread pools.

Lambda gives a share of CPU proportional to memory (1,769 MB = 1 vCPU) through a cgroup quota,
while ``os.cpu_count()`` reports the host's cores; sizing thread pools from the latter
oversubscribes the quota and slows every request.
"""

from __future__ import annotations

import math
import os
from pathlib import Path


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def cpu_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs allowed by the cgroup (v2 ``cpu.max`` or v1 ``cfs_quota_us``), or None if unlimited."""
    v2 = _read(root / "cpu.max")
    if v2:
        quota, _, period = v2.partition(" ")
        if quota != "max" and period:
            return int(quota) / int(period)
        return None
    quota = _read(root / "cpu" / "cpu.cfs_quota_us") or _read(root / "cpu,cpuacct" / "cpu.cfs_quota_us")
    period = _read(root / "cpu" / "cpu.cfs_period_us") or _read(root / "cpu,cpuacct" / "cpu.cfs_period_us")
    if quota and period and int(quota) > 0:
        return int(quota) / int(period)
    return None


def usable_cpus(root: Path = Path("/sys/fs/cgroup"), *, requested: int | None = None) -> int:
    """``requested`` (``TF_NUM_THREADS``, see :func:`requested_threads`) if given, else the cgroup
    quota rounded up, capped by the visible CPUs."""
    if requested is not None:
        return max(1, requested)
    visible = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = cpu_quota(root)
    if quota is None:
        return visible
    return max(1, min(visible, math.ceil(quota)))


def requested_threads() -> int | None:
    """``TF_NUM_THREADS`` as the settings object parses it (a bad value is a named ``ConfigError``),
    read alone: a caller that needs only this variable does not fail on another one."""
    from bert2vec.core.settings import env_threads

    return env_threads(os.environ)


def configure_tensorflow_threads(n: int) -> bool:
    """One thread per op, ``n`` ops (i.e. ``n`` batches) in flight; False if TF already ran an op.

    Measured on BERT-sized ops (docs/performance.md): splitting each small matmul over cores
    costs more in synchronisation than it gains — a single text takes 3.6 ms with one intra-op
    thread against 5.0 ms with two — while running ``n`` batches side by side, one core each,
    is 1.4x faster in bulk than one batch at a time on ``n`` cores. ``Encoder`` runs batches
    concurrently to use the ``n`` inter-op slots, and runs a single batch on the exported graph
    split into ``n`` branches per layer (``serving_parts_<n>``), whose branches fill those slots.

    Pools are fixed once TensorFlow executes its first op, so this must run first; in Lambda it
    runs at init. A host process that used TensorFlow earlier keeps its own settings.
    """
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(max(1, n))
    except RuntimeError:
        return False
    return True


def tensorflow_threads_are(n: int) -> bool:
    """Whether TensorFlow's pools are what :func:`configure_tensorflow_threads` asks for (``n``).

    Read back rather than configured again: ``Encoder.load`` is the one place that sizes them, and
    start-up reports from here whether that took effect (it cannot once TF has run an op).
    """
    import tensorflow as tf

    pools = tf.config.threading
    intra, inter = pools.get_intra_op_parallelism_threads(), pools.get_inter_op_parallelism_threads()
    return intra == 1 and inter == max(1, n)


#: CPU feature flags (``/proc/cpuinfo``) under which oneDNN runs bfloat16 matmuls natively:
#: AVX-512 BF16 and AMX on x86_64, the Armv8.6 BF16 extension (``bf16``) on aarch64 (Graviton3+).
#: Without one of them oneDNN emulates bfloat16, which is slower than float32.
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str] | None:
    """The first CPU's feature flags (x86 ``flags``, aarch64 ``Features``), or None if unreadable."""
    text = _read(cpuinfo)
    if text is None:
        return None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return None


def native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool | None:
    """Whether this CPU multiplies bfloat16 natively (True/False), or None when it cannot be told."""
    flags = cpu_flags(cpuinfo)
    return None if flags is None else bool(flags & NATIVE_BF16_FLAGS)
