"""``bert-export --no-long-text``: a model without ``encode_long``/``encode_chunks`` loads faster and
says so in its card; asking it for chunk mode is a clear error, never a crash or a silent truncation."""

from __future__ import annotations

import json

import pytest

from bert2vec.function import contract
from tests.conftest import cached_export
from tests.fixtures.tiny_bert import tiny_bert


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
    sigs = set(tf.saved_model.load(str(without_lt)).signatures)
    assert contract.SIGNATURE_NAME in sigs
    assert not sigs & {contract.LONG_SIGNATURE_NAME, contract.CHUNKS_SIGNATURE_NAME}
    assert {contract.LONG_SIGNATURE_NAME, contract.CHUNKS_SIGNATURE_NAME} <= set(tf.saved_model.load(str(with_lt)).signatures)


def test_chunk_mode_on_a_model_without_it_names_the_fix(exports) -> None:
    from bert2vec.function.encoder import Encoder
    from bert2vec.function.errors import UnsupportedOptionError
    from bert2vec.function.long_text import LongTextEncoder

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
