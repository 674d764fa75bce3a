"""Thread sizing against a real TensorFlow runtime (the cgroup arithmetic is in tests/unit)."""

from __future__ import annotations


def test_configure_threads_reports_when_tensorflow_already_ran() -> None:
    import tensorflow as tf

    from bert2vec.function.cpu import configure_tensorflow_threads

    tf.constant(1.0) + 1.0  # TF has executed an op: its pools are now fixed
    assert configure_tensorflow_threads(1) is False
