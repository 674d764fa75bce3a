"""bert2vec: text → BERT vectors with one exported TensorFlow SavedModel.

``Bert2Vec`` is the vectorhub-style facade (``encode`` / ``bulk_encode`` returning lists);
``Encoder`` is the core the Lambda function itself runs (numpy arrays, token counts, truncation
flags). The ``bert-encode`` command lives in :mod:`bert2vec.cli`.
"""

from __future__ import annotations

from bert2vec.api import Bert2Vec
from function.encoder import Encoder, EncodeResult

__all__ = ["Bert2Vec", "EncodeResult", "Encoder"]
