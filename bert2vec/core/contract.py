"""The SavedModel contract shared by ``bert2vec/export/`` (which writes it) and ``function/`` (which serves it).

Kept in one tiny module with no TensorFlow import so that both sides agree on names without
``export`` depending on the serving code. Changing anything here is a breaking change for every
model already baked into an image.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # no numpy or TensorFlow here: the export side imports this module too
    from bert2vec.core.encoder import EncodeResult

SIGNATURE_NAME = "serving_default"
INPUT_KEY = "text"  # tf.string [None]
OUTPUT_EMBEDDING = "embedding"  # float32 [None, D]
OUTPUT_TOKEN_COUNT = "token_count"  # int32 [None]; wordpieces incl. [CLS]/[SEP], before truncation

MODEL_CARD_FILENAME = "model_card.json"
CONTRACT_VERSION = 1

POOLINGS = ("pooled", "mean", "cls")

# Fields every model card carries (export writes them, the function reads them).
MODEL_CARD_FIELDS = (
    "contract_version",
    "name",
    "source",
    "source_kind",
    "vector_length",
    "pooling",
    "normalize",
    "max_seq_length",
    "lower_case",
    "vocab_size",
    "versions",
    "exported_at",
    "checksum",
)

# Long texts (bert2vec/export/long_text.py): extra signatures, absent from models exported before them.
LONG_SIGNATURE_NAME = "encode_long"  # (text, stride) -> embedding, token_count, chunks
CHUNKS_SIGNATURE_NAME = "encode_chunks"  # (text, stride) -> chunk_embedding, text_index, start, end, token_count
#: Where they live: a SavedModel of their own in this subdirectory of the export (loaded on first
#: use); exports made before it carry them in the main SavedModel instead.
LONG_TEXT_DIR = "long_text"
INPUT_STRIDE = "stride"  # int32 []: wordpieces shared by consecutive windows, 0 <= stride < max_seq_length - 2
OUTPUT_CHUNKS = "chunks"  # int32 [None]: windows per text
OUTPUT_CHUNK_EMBEDDING = "chunk_embedding"  # float32 [W, D], pooled and normalised like serving_default
OUTPUT_TEXT_INDEX = "text_index"  # int32 [W]: the input each window belongs to
OUTPUT_START = "start"  # int32 [W]: character offset (code points) of the window's span in the input
OUTPUT_END = "end"  # int32 [W]: exclusive end of that span

# Every vector the bulk path puts into an S3 Vectors index carries this many leading characters of
# its model's checksum as metadata "model"; /search refuses to rank vectors of another model.
VECTOR_MODEL_TAG_CHARS = 16


@dataclass(frozen=True, eq=False)
class ModelCard(Mapping[str, Any]):
    """The model card beside ``saved_model.pb``, typed for the fields the serving side reads.

    Read tolerantly (:meth:`from_dict`), because models baked into images outlive the code that
    exported them: a key an older export lacks takes its default, a key a newer one adds is kept
    but not interpreted. The card also reads as the JSON object it was written as (a read-only
    mapping of every key, ``raw``), so what copies it whole — ``GET /model``, the manifests' model
    summary — shows exactly what the export wrote.
    """

    vector_length: int
    max_seq_length: int
    name: str | None = None
    source: str | None = None
    pooling: str | None = None
    normalize: bool = False
    precision: str = "fp32"  # exports before bf16 existed are float32
    checksum: str | None = None
    exported_at: str | None = None
    #: Split-graph sizes exported (``[]``: exported with --no-split); None: the export predates them.
    split_parts: tuple[int, ...] | None = None
    versions: Mapping[str, Any] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, card: Mapping[str, Any]) -> ModelCard:
        """The card as the JSON holds it; ``vector_length`` and ``max_seq_length`` are required
        (every export since the first wrote them), everything else is optional."""
        if isinstance(card, ModelCard):
            return card
        split = card.get("split_parts")
        return cls(
            vector_length=int(card["vector_length"]),
            max_seq_length=int(card["max_seq_length"]),
            name=None if card.get("name") is None else str(card["name"]),
            source=card.get("source"),
            pooling=card.get("pooling"),
            normalize=bool(card.get("normalize")),
            precision=str(card.get("precision") or "fp32"),
            checksum=card.get("checksum"),
            exported_at=card.get("exported_at"),
            split_parts=None if split is None else tuple(int(p) for p in split),
            versions=dict(card.get("versions") or {}),
            raw=dict(card),
        )

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)

    def __eq__(self, other: object) -> bool:
        return dict(self.raw) == (dict(other.raw) if isinstance(other, ModelCard) else other)

    __hash__ = None  # type: ignore[assignment]  # a mapping: equal to the dict it was read from


@runtime_checkable
class Encoder(Protocol):
    """What the serving side needs of a model: its card, its vector and window sizes, and
    ``encode`` (texts → vectors, wordpiece counts, truncation flags). The SavedModel-backed
    :class:`bert2vec.core.encoder.Encoder` is one; the tests' stand-ins are others. Chunk mode
    needs the real one (the long-text signatures)."""

    @property
    def card(self) -> Mapping[str, Any]: ...

    @property
    def vector_length(self) -> int: ...

    @property
    def max_seq_length(self) -> int: ...

    def encode(self, texts: Sequence[str], batch_size: int = ...) -> EncodeResult: ...
