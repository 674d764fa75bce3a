"""Thread sizing against a real TensorFlow runtime (the cgroup arithmetic is in tests/unit)."""

from __future__ import annotations


def test_configure_threads_reports_when_tensorflow_already_ran() -> None:
    import tensorflow as tf

    from bert2vec.core.cpu import configure_tensorflow_threads

    tf.constant(1.0) + 1.0  # TF has executed an op: its pools are now fixed
    assert configure_tensorflow_threads(1) is False


def test_thread_pools_are_read_back_not_configured_again() -> None:
    import tensorflow as tf

    from bert2vec.core.cpu import tensorflow_threads_are

    tf.constant(1.0) + 1.0
    inter = tf.config.threading.get_inter_op_parallelism_threads()
    one_intra = tf.config.threading.get_intra_op_parallelism_threads() == 1
    assert tensorflow_threads_are(max(1, inter)) is (one_intra and inter >= 1)
    assert tensorflow_threads_are(inter + 1) is False
    assert tf.config.threading.get_inter_op_parallelism_threads() == inter  # reading changed nothing
