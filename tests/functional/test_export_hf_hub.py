"""Hugging Face model ids (``org/name[@revision]``) resolve through ``huggingface_hub``'s cache.

Offline: a hub cache in the standard layout (``models--org--name/{blobs,snapshots/<commit>,refs/main}``)
is filled with the embedded default's files, and ``HF_HUB_OFFLINE=1`` keeps the resolver off the network.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from bert2vec.export.cli import main
from bert2vec.export.sources import embedded_default_dir

REPO_ID = "sentence-transformers/all-MiniLM-L6-v2"
COMMIT = "c9745ed1d9f207416be6d2e6f8de32d1f16199bf"
FILES = [
    "config.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json", "model.safetensors",
    "modules.json", "sentence_bert_config.json", "1_Pooling/config.json",
]  # fmt: skip
TEXTS = ["A man is eating food.", "The new movie is awesome!", "Café au lait, s'il vous plaît."]


def fill_hf_cache(cache: Path, repo_id: str, commit: str, source: Path) -> None:
    """What ``snapshot_download`` leaves behind: content-addressed blobs, symlinked from the snapshot."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "blobs").mkdir(parents=True)
    for name in FILES:
        src = source / name
        blob = repo / "blobs" / hashlib.sha256(src.read_bytes()).hexdigest()
        if not blob.exists():
            blob.symlink_to(src)  # stands in for the downloaded bytes without copying 90 MB
        link = repo / "snapshots" / commit / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "hf_cache"
    fill_hf_cache(cache, REPO_ID, COMMIT, embedded_default_dir())
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


@pytest.mark.slow  # a whole export of all-MiniLM-L6-v2 from the hub cache
def test_model_id_exports_like_the_embedded_default(hub_cache: Path, tmp_path: Path, capsys, default_model_dir) -> None:
    from bert2vec.core.encoder import Encoder

    out = tmp_path / "m"
    assert main(["--model", REPO_ID, "--output", str(out)]) == 0
    assert capsys.readouterr().err == ""
    card = json.loads((out / "model_card.json").read_text())
    assert card["source"] == f"{REPO_ID}@{COMMIT}" and card["source_kind"] == "hf_hub"
    assert card["name"] == "all-MiniLM-L6-v2" and card["pooling"] == "mean" and card["max_seq_length"] == 256
    got = Encoder.load(out).encode(TEXTS)
    want = Encoder.load(default_model_dir).encode(TEXTS)
    np.testing.assert_array_equal(got.embeddings, want.embeddings)
    np.testing.assert_array_equal(got.token_counts, want.token_counts)


def test_revision_is_honoured(hub_cache: Path, tmp_path: Path) -> None:
    from bert2vec.export.errors import HubUnavailableError
    from bert2vec.export.preflight import ExportOptions, prepare

    prepared = prepare(tmp_path / "m", ExportOptions(source=f"{REPO_ID}@{COMMIT}"))
    assert prepared.plan.source == f"{REPO_ID}@{COMMIT}"
    assert Path(prepared.plan.encoder) == hub_cache / "models--sentence-transformers--all-MiniLM-L6-v2" / "snapshots" / COMMIT
    assert prepared.hf is not None and prepared.hf.st_pooling == "mean"
    with pytest.raises(HubUnavailableError, match="@v9.9"):
        prepare(tmp_path / "m", ExportOptions(source=f"{REPO_ID}@v9.9"))


def test_unknown_id_offline_is_one_line(hub_cache: Path, tmp_path: Path, capsys) -> None:
    assert main(["--model", "nobody-here/no-such-bert", "--output", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("bert-export: error: nobody-here/no-such-bert: "), err
    assert "HF_HUB_OFFLINE is set" in err and str(hub_cache) in err
    assert not (tmp_path / "m").exists()


def test_catalogue_names_with_a_slash_still_win(hub_cache: Path, tmp_path: Path) -> None:
    from bert2vec.export.preflight import ExportOptions, prepare

    prepared = prepare(tmp_path / "m", ExportOptions(source="google/bert_uncased_L-12_H-768_A-12"))
    assert prepared.plan.kind == "catalogue" and prepared.plan.encoder.startswith("https://tfhub.dev/")


def test_a_mistyped_local_path_is_not_sent_to_the_hub(tmp_path, monkeypatch) -> None:
    from bert2vec.export.errors import UnknownModelError
    from bert2vec.export.sources import plan

    (tmp_path / "models").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UnknownModelError, match="models/my-bert: no such directory"):
        plan("models/my-bert")
