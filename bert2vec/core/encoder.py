"""The pure core: load an exported SavedModel and turn texts into vectors. Knows nothing of AWS.

``Encoder`` is what the Lambda handlers, the bulk path and ``bert2vec`` (the pip user's package,
which adds the vectorhub-style ``Bert2Vec`` facade) all use.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bert2vec.core import contract, defaults
from bert2vec.core.errors import InvalidInputError, ModelNotFoundError

#: Relative to the current directory, where ``make run`` builds it in a clone; never a path inside
#: the installed package (``bert2vec.model_lookup`` adds the per-user cache for pip users).
DEFAULT_BUILD_DIR = Path("build") / "model"
DEFAULT_BATCH_SIZE = defaults.BATCH_SIZE
#: Optional signatures beside ``serving_default`` (same input/outputs): the encoder graph split
#: into N branches per layer, so that one batch keeps N cores busy (``bert2vec.export.bert_graph``).
PARTS_SIGNATURE = re.compile(r"serving_parts_(\d+)")
#: Signatures kept in the export's ``long_text/`` SavedModel, loaded on first use.
LONG_TEXT_SIGNATURES = (contract.LONG_SIGNATURE_NAME, contract.CHUNKS_SIGNATURE_NAME)
_log = logging.getLogger(__name__)


def pick_parts(available: Sequence[int], cpus: int) -> int:
    """The largest split-graph size that fits the CPU quota (1 = the unsplit graph)."""
    return max((p for p in available if p <= cpus), default=1)


def default_model_dir() -> Path:
    """``$MODEL_DIR`` (the Lambda image sets it) or ``./build/model`` (what ``make run`` builds)."""
    import os

    from bert2vec.core.settings import env_model_dir

    return Path(env_model_dir(os.environ) or DEFAULT_BUILD_DIR)


def read_model_card(model_dir: Path) -> contract.ModelCard:
    """The card of the export in ``model_dir`` (cheap: no TensorFlow), or ``ModelNotFoundError``."""
    card_file = Path(model_dir) / contract.MODEL_CARD_FILENAME
    if not (Path(model_dir) / "saved_model.pb").is_file() or not card_file.is_file():
        raise ModelNotFoundError(
            f"no exported model in {model_dir} (expected saved_model.pb and {contract.MODEL_CARD_FILENAME}); "
            "run `make run` or `bert-export --output DIR`"
        )
    return contract.ModelCard.from_dict(json.loads(card_file.read_text(encoding="utf-8")))


@dataclass
class EncodeResult:
    embeddings: np.ndarray  # float32 [N, D], in input order
    token_counts: np.ndarray  # int32 [N], wordpieces incl. [CLS]/[SEP] before truncation
    truncated: np.ndarray  # bool [N], token_counts > the model's max_seq_length


class Encoder:
    """An exported SavedModel, loaded once, encoding batches in length-sorted order."""

    def __init__(
        self,
        model_dir: Path,
        card: Mapping[str, Any],
        fn: Any,
        workers: int = 1,
        *,
        split_fn: Any = None,
        parts: int = 1,
    ) -> None:
        """``fn``: the unsplit signature (several batches side by side); ``split_fn``: the graph
        split into ``parts`` branches, used when a call has a single batch. ``card``: a
        :class:`ModelCard`, or the card's JSON object (read as one)."""
        self.model_dir = model_dir
        self.card: contract.ModelCard = contract.ModelCard.from_dict(card)
        self._fn = fn
        self._split_fn = split_fn if parts > 1 else None
        self.parts = parts if split_fn is not None else 1
        self.workers = max(1, workers)
        #: ``fp32`` or ``bf16`` (``bert-export --precision``), and for bf16 whether this CPU
        #: multiplies bfloat16 natively (None: could not tell). See :meth:`runtime`.
        self.precision = self.card.precision
        if self.precision == "bf16":
            from bert2vec.core.cpu import native_bf16

            self.bf16_native: bool | None = native_bf16()
        else:
            self.bf16_native = None
        self._long_text: Any = None  # the long_text/ SavedModel, once loaded (load_long_text)
        self._long_text_lock = threading.Lock()
        # Batches run side by side, one per core (TF releases the GIL while executing).
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="encode") if self.workers > 1 else None

    @classmethod
    def load(cls, model_dir: Path | str | None = None, *, workers: int | None = None) -> Encoder:
        """Load an exported model. ``workers``: batches in flight (default: the CPU quota).

        Sizes TensorFlow's thread pools on first use (see ``bert2vec.core.cpu``); call it before
        anything else runs TensorFlow ops for that to take effect.
        """
        model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
        card = read_model_card(model_dir)
        from bert2vec.core.cpu import configure_tensorflow_threads, requested_threads, usable_cpus

        workers = workers or usable_cpus(requested=requested_threads())
        configure_tensorflow_threads(workers)
        import tensorflow as tf

        try:
            import tensorflow_text  # noqa: F401 - registers the tokenizer ops before loading
        except ImportError as exc:
            raise ModelNotFoundError(
                f"cannot load {model_dir}: its in-graph tokenizer needs the tensorflow-text package "
                f"(`pip install tensorflow-text=={card.versions.get('tensorflow_text', '<TF minor>')}`, "
                "then `import tensorflow_text` before `tf.saved_model.load`)"
            ) from exc
        loaded = tf.saved_model.load(str(model_dir))
        fn = loaded.signatures[contract.SIGNATURE_NAME]
        available = [int(m.group(1)) for name in loaded.signatures if (m := PARTS_SIGNATURE.fullmatch(name))]
        parts = pick_parts(available, workers)
        split_fn = loaded.signatures[f"serving_parts_{parts}"] if parts > 1 else None
        encoder = cls(model_dir, card, fn, workers, split_fn=split_fn, parts=parts)
        if workers > 1 and card.split_parts == ():
            _log.warning(
                "%s has no split graph (exported with --no-split, or a TF Hub encoder served as restored): "
                "with %d CPUs, a request of one batch runs on one of them",
                model_dir,
                workers,
            )
        if encoder.bf16_native is False:
            # Served as exported (the SavedModel holds bfloat16 kernels only): correct vectors,
            # but oneDNN emulates bfloat16 on this CPU, which is slower than a float32 export.
            _log.warning(
                "%s is a bfloat16 export but this CPU has no native bfloat16 (no AVX512_BF16/AMX, "
                "no Arm BF16): serving it emulated, slower than float32; export with --precision fp32 "
                "for this hardware",
                model_dir,
            )
        encoder._loaded = loaded  # keep variables alive as long as the signature
        return encoder

    @property
    def runtime(self) -> dict[str, Any]:
        """What this process runs, beside the card's export settings: reported by ``/model`` and
        ``/info`` so a deploy can see a bf16 model on a CPU that emulates it."""
        return {
            "precision": self.precision,
            "bf16_native": self.bf16_native,
            "workers": self.workers,
            "parts": self.parts,
        }

    @property
    def name(self) -> str:
        return self.card.name if self.card.name is not None else self.model_dir.name

    @property
    def vector_length(self) -> int:
        return self.card.vector_length

    @property
    def max_seq_length(self) -> int:
        return self.card.max_seq_length

    def signature(self, name: str) -> Any | None:
        """Another signature of the loaded SavedModel (``encode_long``...), or None if it lacks it.

        ``encode_long`` / ``encode_chunks`` live in the export's ``long_text/`` SavedModel: what is
        returned for them loads it on its first call (:meth:`load_long_text`), so a service that
        never chunks never pays for them.
        """
        loaded = getattr(self, "_loaded", None)
        if loaded is None:
            return None
        found = loaded.signatures.get(name)  # exports made before long_text/ existed carry them here
        if found is not None or name not in LONG_TEXT_SIGNATURES or not self._has_long_text_dir():
            return found
        return _LazySignature(self, name)

    def _has_long_text_dir(self) -> bool:
        return (self.model_dir / contract.LONG_TEXT_DIR / "saved_model.pb").is_file()

    def load_long_text(self) -> bool:
        """Load the long-text SavedModel now (SnapStart's before-snapshot hook, for a function set to
        chunk); False if this export has none. Thread-safe; later calls return at once."""
        if not self._has_long_text_dir():
            return False
        with self._long_text_lock:
            if self._long_text is None:
                started = time.perf_counter()
                self._long_text = load_long_text_savedmodel(self.model_dir, weights_from=getattr(self, "_loaded", None))
                _log.info("loaded the long-text signatures in %.2f s", time.perf_counter() - started)
        return True

    def _long_text_signature(self, name: str) -> Any:
        self.load_long_text()
        return self._long_text.signatures[name]

    def function(self, name: str) -> Any | None:
        """A function the serving module carries beside its signatures (``pack``), or None."""
        return getattr(getattr(self, "_loaded", None), name, None)

    def wordpiece_counts(self, texts: Sequence[str]) -> np.ndarray | None:
        """Each text's wordpieces incl. [CLS]/[SEP] (``token_count``), from the model's own tokenizer
        without BERT (the ``pack`` function every export keeps), or None for a model without it.
        Passed to :meth:`encode` as ``lengths``, batches pad least."""
        pack = self.function("pack")
        if pack is None or not texts:
            return None
        import tensorflow as tf

        return pack(tf.constant(list(texts), dtype=tf.string))[2].numpy()

    def map_batches(self, fn: Any, batches: Sequence[Any]) -> list[Any]:
        """``fn`` over ``batches``, side by side on the encoder's threads (one per core), in order."""
        if self._pool is not None and len(batches) > 1:
            return [future.result() for future in [self._pool.submit(fn, b) for b in batches]]
        return [fn(b) for b in batches]

    def _run(self, texts: list[str], fn: Any = None) -> tuple[np.ndarray, np.ndarray]:
        import tensorflow as tf

        out = (fn or self._fn)(**{contract.INPUT_KEY: tf.constant(texts, dtype=tf.string)})
        return out[contract.OUTPUT_EMBEDDING].numpy(), out[contract.OUTPUT_TOKEN_COUNT].numpy()

    def encode(
        self, texts: Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE, *, lengths: Sequence[int] | None = None
    ) -> EncodeResult:
        """Encode ``texts``; batches are formed from length-sorted texts, output keeps input order.

        Sorting by length means each batch pads to similar lengths (≈3x faster on varied text).
        ``lengths``: the texts' wordpiece counts when the caller already has them (the HTTP
        service counts them for its budget). Without them, a call of several batches counts them
        first (one tokenizer pass, :meth:`wordpiece_counts`): batches formed by wordpieces pad
        ~18 % fewer positions than by characters on real prose. Only a model without the ``pack``
        function falls back to characters; a single batch needs no order at all.
        Several batches run side by side on the unsplit graph, one per core; a single batch (the
        usual Lambda request) goes straight to the split graph on the calling thread (its branches
        keep every core busy), in input order, with no sorting or copying of the outputs.
        """
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise InvalidInputError(f"texts[{i}]: expected a string, got {type(t).__name__}")
        if batch_size < 1:
            raise InvalidInputError(f"batch_size must be >= 1, got {batch_size}")
        n = len(texts)
        if lengths is not None and len(lengths) != n:
            raise InvalidInputError(f"lengths: {len(lengths)} values for {n} texts")
        if 0 < n <= batch_size:  # one batch (the usual request): no order, no copies, this thread
            e, c = self._run(list(texts), self._split_fn)
            return EncodeResult(e, c, c > self.max_seq_length)
        emb = np.zeros((n, self.vector_length), dtype=np.float32)
        counts = np.zeros((n,), dtype=np.int32)
        if lengths is None and n > batch_size:  # several batches: count wordpieces to pad least
            lengths = self.wordpiece_counts(texts)
        batches = form_batches([len(t) for t in texts] if lengths is None else lengths, batch_size)

        def run(idx: list[int], fn: Any = None) -> None:
            e, c = self._run([texts[i] for i in idx], fn)
            emb[idx] = e
            counts[idx] = c

        self.map_batches(run, batches)
        return EncodeResult(emb, counts, counts > self.max_seq_length)


def load_long_text_savedmodel(model_dir: Path, weights_from: Any = None) -> Any:
    """The export's ``long_text/`` SavedModel, its weights those of the main SavedModel.

    The export stores the weights once: ``long_text/`` has no ``variables/`` of its own, its
    modules hold them under the same checkpoint keys as the main SavedModel's. Any TensorFlow
    user loads it the same way (two calls, documented in docs/export.md), which reads the weights
    from disk into a second copy. ``weights_from``, the main SavedModel already loaded, avoids
    that copy: each long-text variable is assigned the main variable at its own checkpoint key,
    and TensorFlow's assign then shares the buffer instead of copying it (copy-on-write; serving
    never writes a weight; docs/performance.md has the memory and time this saves). The one
    exception is the word-embedding table, which TensorFlow copies once because gathers switch
    it to copy-on-read. Should any variable have no twin of the same shape and type there, every
    weight is read from disk instead.
    """
    import tensorflow as tf

    model_dir = Path(model_dir)
    options = tf.saved_model.LoadOptions(experimental_skip_checkpoint=True)
    loaded = tf.saved_model.load(str(model_dir / contract.LONG_TEXT_DIR), options=options)
    if weights_from is not None:
        mine, theirs = variables_by_checkpoint_path(loaded), variables_by_checkpoint_path(weights_from)
        twins = {path: theirs.get(path) for path in mine}
        if all(t is not None and t.shape == mine[p].shape and t.dtype == mine[p].dtype for p, t in twins.items()):
            for path, variable in mine.items():
                variable.assign(twins[path])
            return loaded
        _log.info("long_text/: weights read from disk (the loaded model has no twin for some variable)")
    tf.train.Checkpoint(loaded).read(str(model_dir / "variables" / "variables")).assert_existing_objects_matched()
    return loaded


def variables_by_checkpoint_path(root: Any) -> dict[str, Any]:
    """Every variable reachable from ``root``, keyed by its path of object names — the path a
    checkpoint of ``root`` keys it by (the first one breadth-first, as the checkpointer walks)."""
    import collections

    import tensorflow as tf

    found: dict[str, Any] = {}
    seen: set[int] = set()
    queue: collections.deque[tuple[str, Any]] = collections.deque([("", root)])
    while queue:
        path, obj = queue.popleft()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, tf.Variable):
            found[path] = obj
            continue
        for name, child in tf.train.TrackableView.children(obj).items():
            queue.append((f"{path}/{name}" if path else name, child))
    return found


class _LazySignature:
    """A long-text signature that loads the ``long_text/`` SavedModel when first called."""

    def __init__(self, encoder: Encoder, name: str) -> None:
        self._encoder = encoder
        self.name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._encoder._long_text_signature(self.name)(*args, **kwargs)


def form_batches(lengths: Sequence[int], batch_size: int = DEFAULT_BATCH_SIZE) -> list[list[int]]:
    """Indices of the texts in each batch: sorted by ``lengths`` (stable), ``batch_size`` at a time.

    The one rule :meth:`Encoder.encode` batches by, so that a caller can price a request by the
    batches it will really run (:func:`padded_work`).
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def padded_work(batches: Sequence[Sequence[int]], wordpieces: Sequence[int], max_seq_length: int) -> int:
    """Wordpieces the encoder runs for ``batches``: each batch is padded to its longest text
    (capped at ``max_seq_length``), so it costs its size times that length — not the sum of its
    texts. ``wordpieces``: per text, exact or an upper bound (then so is the result)."""
    return sum(len(b) * min(max_seq_length, max(int(wordpieces[i]) for i in b)) for b in batches if b)
