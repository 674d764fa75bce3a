"""bert2vec: text → BERT vectors with one exported TensorFlow SavedModel.

``Bert2Vec`` is the vectorhub-style facade (``encode`` / ``bulk_encode`` returning lists);
``Encoder`` is the core the Lambda function itself runs (numpy arrays, token counts, truncation
flags). The ``bert-encode`` command lives in :mod:`bert2vec.cli`.

The names are resolved on first use (PEP 562), so ``import bert2vec`` — and importing any of its
subpackages, which runs this file first — costs nothing and pulls in neither TensorFlow nor the
export tooling.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bert2vec.api import Bert2Vec
    from bert2vec.core.encoder import Encoder, EncodeResult

__version__ = "0.2.0"  # the one place the version is written (pyproject reads it)
__all__ = ["Bert2Vec", "EncodeResult", "Encoder", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Bert2Vec":
        from bert2vec.api import Bert2Vec

        return Bert2Vec
    if name in ("Encoder", "EncodeResult"):
        from bert2vec.core import encoder

        return getattr(encoder, name)
    raise AttributeError(f"module 'bert2vec' has no attribute {name!r}")
