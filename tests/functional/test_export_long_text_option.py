"""``bert-export --no-long-text``: a model without ``encode_long``/``encode_chunks`` says so in its
card; asking it for chunk mode is a clear error, never a crash or a silent truncation. With them,
they are a SavedModel of their own in ``long_text/``, loaded on their first call."""

from __future__ import annotations

import json

import pytest

from bert2vec.core import contract
from tests.conftest import cached_export
from tests.fixtures.tiny_bert import tiny_bert


def _skip_weights():
    import tensorflow as tf

    return tf.saved_model.LoadOptions(experimental_skip_checkpoint=True)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    src = tiny_bert(tmp_path_factory.mktemp("tiny") / "ckpt")
    return cached_export(src), cached_export(src, long_text=False)


def test_the_card_and_the_signatures_say_whether_long_text_is_there(exports) -> None:
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    with_lt, without_lt = exports
    assert json.loads((with_lt / contract.MODEL_CARD_FILENAME).read_text())["long_text"] is True
    assert json.loads((without_lt / contract.MODEL_CARD_FILENAME).read_text())["long_text"] is False
    long_names = {contract.LONG_SIGNATURE_NAME, contract.CHUNKS_SIGNATURE_NAME}
    for export in exports:  # the main SavedModel never carries them: serving loads nothing of them
        sigs = set(tf.saved_model.load(str(export)).signatures)
        assert contract.SIGNATURE_NAME in sigs and not sigs & long_names
    assert not (without_lt / contract.LONG_TEXT_DIR).exists()
    assert (
        set(tf.saved_model.load(str(with_lt / contract.LONG_TEXT_DIR), options=_skip_weights()).signatures)
        == long_names
    )


def test_long_text_is_loaded_on_its_first_call(exports) -> None:
    import numpy as np

    from bert2vec.core.encoder import Encoder
    from bert2vec.core.long_text import LongTextEncoder

    with_lt, _ = exports
    enc = Encoder.load(with_lt, workers=1)
    long = LongTextEncoder(enc)  # as the service builds it at init: nothing loaded yet
    enc.encode(["serving does not load it either"])
    assert long.available and enc._long_text is None
    text = "a text short enough for one window"
    got = long.encode([text])
    assert enc._long_text is not None
    np.testing.assert_allclose(got.embeddings, enc.encode([text]).embeddings, atol=1e-5)  # one window = serving_default
    assert enc.load_long_text() is True


def test_chunk_mode_on_a_model_without_it_names_the_fix(exports) -> None:
    from bert2vec.core.encoder import Encoder
    from bert2vec.core.errors import UnsupportedOptionError
    from bert2vec.core.long_text import LongTextEncoder

    with_lt, without_lt = exports
    enc = Encoder.load(without_lt, workers=1)
    assert enc.encode(["plain encoding still works"]).embeddings.shape == (1, enc.vector_length)
    with pytest.raises(UnsupportedOptionError, match="long-text signatures"):
        LongTextEncoder(enc).require()
    LongTextEncoder(Encoder.load(with_lt, workers=1)).require()


def test_the_flag_parses() -> None:
    from bert2vec.export import cli

    parser = cli.build_parser()
    assert parser.parse_args(["--output", "x", "--no-long-text"]).long_text is False
    assert parser.parse_args(["--output", "x"]).long_text is True


def _chunks(loaded, text: str):
    import tensorflow as tf

    out = loaded.signatures[contract.CHUNKS_SIGNATURE_NAME](text=tf.constant([text]), stride=tf.constant(2))
    return out["chunk_embedding"].numpy()


LONG = " ".join(f"word{i % 37} and more text" for i in range(120))


def test_the_long_text_model_takes_the_loaded_weights_not_a_second_copy_from_disk(exports, tmp_path) -> None:
    """``Encoder`` gives ``long_text/`` the main SavedModel's variables (shared buffers): with the
    weights gone from disk after the main load, the long-text load still works, and its vectors are
    exactly those of the documented disk-reading load."""
    import shutil

    import numpy as np

    from bert2vec.core.encoder import Encoder, load_long_text_savedmodel

    with_lt, _ = exports
    copy = tmp_path / "model"
    shutil.copytree(with_lt, copy)
    enc = Encoder.load(copy, workers=1)
    (copy / "variables").rename(tmp_path / "variables-gone")
    assert enc.load_long_text() is True
    shared = _chunks(enc._long_text, LONG)
    assert shared.shape[0] > 2  # several windows
    np.testing.assert_array_equal(shared, _chunks(load_long_text_savedmodel(with_lt), LONG))


def test_without_a_twin_for_every_variable_the_weights_come_from_disk(exports) -> None:
    import numpy as np
    import tensorflow as tf

    from bert2vec.core.encoder import load_long_text_savedmodel

    with_lt, _ = exports
    main = tf.saved_model.load(str(with_lt))
    not_the_model = tf.Module()
    not_the_model.encoder = tf.Module()
    not_the_model.encoder.word_embeddings = tf.Variable(tf.zeros([3, 3]))  # a real path, the wrong shape
    from_disk = load_long_text_savedmodel(with_lt, weights_from=not_the_model)
    np.testing.assert_array_equal(
        _chunks(from_disk, LONG), _chunks(load_long_text_savedmodel(with_lt, weights_from=main), LONG)
    )


def test_checkpoint_paths_of_the_long_text_model_all_exist_in_the_main_model(exports) -> None:
    import tensorflow as tf

    from bert2vec.core.encoder import variables_by_checkpoint_path

    with_lt, _ = exports
    main = variables_by_checkpoint_path(tf.saved_model.load(str(with_lt)))
    long = variables_by_checkpoint_path(
        tf.saved_model.load(str(with_lt / contract.LONG_TEXT_DIR), options=_skip_weights())
    )
    assert long and set(long) <= set(main)
    # the same keys the checkpoint files use (what the disk-reading load matches by)
    keys = {
        k.removesuffix("/.ATTRIBUTES/VARIABLE_VALUE")
        for k, _ in tf.train.list_variables(str(with_lt / "variables" / "variables"))
    }
    assert set(long) <= keys and set(main) <= keys
