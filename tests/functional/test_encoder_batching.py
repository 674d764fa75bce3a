"""``Encoder.encode`` forms its batches by wordpieces, counted with the model's own tokenizer.

Sorting by characters puts a 260-wordpiece Hangul line next to 88-character lines of 3 wordpieces,
and every such batch pads to the cap; sorting by wordpieces keeps long with long. Measured by what
the real graph ran (each batch's size x its longest ``token_count``, capped), not by our own formula.
"""

from __future__ import annotations

import numpy as np
import pytest

from bert2vec.core.encoder import form_batches, padded_work

HANGUL = "각" * 29 + " " + "각" * 29 + " " + "각" * 28  # 88 characters, 260 wordpieces
SPACES = "a" + " " * 87  # 88 characters, 3 wordpieces


@pytest.fixture
def ran(default_encoder, monkeypatch):
    shapes: list[int] = []
    real = default_encoder._run

    def run(texts, fn=None):
        e, c = real(texts, fn)
        shapes.append(len(texts) * min(default_encoder.max_seq_length, int(c.max())))
        return e, c

    monkeypatch.setattr(default_encoder, "_run", run)
    return shapes


def test_several_batches_are_formed_by_wordpieces(default_encoder, ran) -> None:
    texts = [HANGUL if i % 8 == 0 else SPACES for i in range(64)]
    counts = default_encoder.wordpiece_counts(texts)
    assert counts is not None and counts.max() > default_encoder.max_seq_length > 3 == counts.min()
    got = default_encoder.encode(texts)
    cap = default_encoder.max_seq_length
    by_chars = padded_work(form_batches([len(t) for t in texts], 8), counts, cap)
    by_wordpieces = padded_work(form_batches(counts, 8), counts, cap)
    assert sum(ran) == by_wordpieces < by_chars  # 8 x 256 + 56 x 3 instead of 8 batches at the cap
    np.testing.assert_array_equal(got.token_counts, counts)
    one = default_encoder.encode([HANGUL]).embeddings[0]
    assert np.allclose(got.embeddings[0], one, atol=1e-5) and np.allclose(got.embeddings[8], one, atol=1e-5)


def test_one_batch_needs_no_count(default_encoder, ran, monkeypatch) -> None:
    monkeypatch.setattr(default_encoder, "wordpiece_counts", lambda texts: pytest.fail("counted one batch"))
    default_encoder.encode(["one short batch", "of two"])
    assert len(ran) == 1


def test_one_batch_runs_on_the_calling_thread_in_input_order(default_encoder, monkeypatch) -> None:
    import threading

    calls: list[tuple[list[str], threading.Thread]] = []
    real = default_encoder._run

    def run(texts, fn=None):
        calls.append((list(texts), threading.current_thread()))
        return real(texts, fn)

    monkeypatch.setattr(default_encoder, "_run", run)
    texts = ["a rather longer text than the next one", "short", "mid length text"]
    got = default_encoder.encode(texts)
    assert calls == [(texts, threading.current_thread())]  # unsorted, not handed to a pool
    for i, text in enumerate(texts):  # each row is its own text's vector
        alone = default_encoder.encode([text])
        np.testing.assert_array_equal(got.token_counts[i], alone.token_counts[0])
        assert np.allclose(got.embeddings[i], alone.embeddings[0], atol=1e-5)
