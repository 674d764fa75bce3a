"""The SavedModel contract shared by ``bert2vec/export/`` (which writes it) and ``function/`` (which serves it).

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
