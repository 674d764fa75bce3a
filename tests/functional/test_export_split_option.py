"""``bert-export --no-split``: the encoder split per core (``serving_parts_2``) and its extra kernel
copies are left out, for functions with one vCPU, which never run them. Serving is unchanged: the
unsplit graph, bit for bit the same vectors as the default export's."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from bert2vec.core import contract
from tests.conftest import cached_export
from tests.fixtures.tiny_bert import tiny_bert

TEXTS = ["one short text", "a second, somewhat longer text to encode", ""]


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    src = tiny_bert(tmp_path_factory.mktemp("tiny") / "ckpt")
    return cached_export(src), cached_export(src, split=False)


def _variable_names(model) -> list[str]:
    import tensorflow as tf

    return [name for name, _ in tf.train.list_variables(str(model / "variables" / "variables"))]


def test_no_split_leaves_out_the_split_signatures_and_their_kernels(exports) -> None:
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    split, no_split = exports
    assert json.loads((split / contract.MODEL_CARD_FILENAME).read_text())["split_parts"] == [2]
    assert json.loads((no_split / contract.MODEL_CARD_FILENAME).read_text())["split_parts"] == []
    assert "serving_parts_2" in tf.saved_model.load(str(split)).signatures
    assert set(tf.saved_model.load(str(no_split)).signatures) == {contract.SIGNATURE_NAME}
    assert any("/splits/" in n for n in _variable_names(split))
    assert not any("/splits/" in n for n in _variable_names(no_split))
    assert set(_variable_names(no_split)) < set(_variable_names(split))


def test_serving_is_the_unsplit_graph_with_the_same_vectors(exports, caplog) -> None:
    from bert2vec.core.encoder import Encoder

    split, no_split = exports
    with caplog.at_level(logging.WARNING, logger="bert2vec.core.encoder"):
        enc = Encoder.load(no_split, workers=2)
    assert enc.parts == 1 and enc.runtime["parts"] == 1
    assert any("--no-split" in r.getMessage() and "2 CPUs" in r.getMessage() for r in caplog.records)
    reference = Encoder.load(split, workers=1)  # one CPU: the default export serves its unsplit graph too
    for batch in (TEXTS[:1], TEXTS):
        np.testing.assert_array_equal(enc.encode(batch).embeddings, reference.encode(batch).embeddings)


def test_one_cpu_is_not_warned_about(exports, caplog) -> None:
    from bert2vec.core.encoder import Encoder

    _, no_split = exports
    with caplog.at_level(logging.WARNING, logger="bert2vec.core.encoder"):
        Encoder.load(no_split, workers=1)
    assert not any("--no-split" in r.getMessage() for r in caplog.records)


def test_the_flag_parses() -> None:
    from bert2vec.export import cli

    parser = cli.build_parser()
    assert parser.parse_args(["--output", "x", "--no-split"]).split is False
    assert parser.parse_args(["--output", "x"]).split is True
