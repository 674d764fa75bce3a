"""The SavedModel contract shared by ``export/`` (which writes it) and ``function/`` (which serves it).

Kept in one tiny module with no TensorFlow import so that both sides agree on names without
``export`` depending on the serving code. Changing anything here is a breaking change for every
model already baked into an image.
"""

from __future__ import annotations

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
