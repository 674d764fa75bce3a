"""The typed contracts of the core: the model card as read from any export, old or new, and the
``Encoder`` protocol that the SavedModel encoder and the tests' stand-ins both meet."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bert2vec.core import contract
from bert2vec.core.contract import ModelCard
from bert2vec.core.encoder import read_model_card
from bert2vec.core.errors import ModelNotFoundError

# A card as the first exports wrote it: no precision, split_parts or long_text keys.
OLD_CARD = {
    "contract_version": 1,
    "name": "old-minilm",
    "source": "sentence-transformers/all-MiniLM-L6-v2",
    "source_kind": "hf_checkpoint",
    "vector_length": 384,
    "pooling": "mean",
    "normalize": True,
    "max_seq_length": 256,
    "lower_case": True,
    "vocab_size": 30522,
    "versions": {"tensorflow": "2.15.0", "tensorflow_text": "2.15.0"},
    "exported_at": "2024-01-02T03:04:05+00:00",
    "checksum": "abc123",
}


def _export_dir(tmp_path: Path, card: dict) -> Path:
    (tmp_path / "saved_model.pb").write_bytes(b"")
    (tmp_path / contract.MODEL_CARD_FILENAME).write_text(json.dumps(card))
    return tmp_path


def test_an_old_card_reads_with_the_defaults_of_its_time(tmp_path: Path) -> None:
    card = read_model_card(_export_dir(tmp_path, OLD_CARD))
    assert isinstance(card, ModelCard)
    assert (card.name, card.vector_length, card.max_seq_length, card.normalize) == ("old-minilm", 384, 256, True)
    assert card.precision == "fp32" and card.split_parts is None  # exported before either existed
    assert card.versions["tensorflow_text"] == "2.15.0" and card.checksum == "abc123"
    assert dict(card) == OLD_CARD and card == OLD_CARD  # GET /model and the manifests see what was written


def test_a_newer_cards_unknown_keys_are_kept_not_refused(tmp_path: Path) -> None:
    newer = {**OLD_CARD, "precision": "bf16", "split_parts": [2, 4], "some_future_field": {"x": 1}}
    card = read_model_card(_export_dir(tmp_path, newer))
    assert card.precision == "bf16" and card.split_parts == (2, 4)
    assert card["some_future_field"] == {"x": 1} and card.get("missing") is None
    assert ModelCard.from_dict(card) is card


def test_a_card_without_its_sizes_is_no_model(tmp_path: Path) -> None:
    with pytest.raises(KeyError):
        ModelCard.from_dict({"name": "x"})
    with pytest.raises(ModelNotFoundError):
        read_model_card(tmp_path)


def test_the_real_encoder_and_the_stand_ins_meet_the_encoder_protocol() -> None:
    from bert2vec.core.encoder import Encoder
    from tests.bulk_support import HashEncoder
    from tests.unit.test_bulk_hostile import FakeEncoder

    real = Encoder(Path("m"), OLD_CARD, fn=None)
    for encoder in (real, HashEncoder(), FakeEncoder()):
        assert isinstance(encoder, contract.Encoder), type(encoder)
    assert isinstance(real.card, ModelCard) and real.name == "old-minilm" and real.vector_length == 384
