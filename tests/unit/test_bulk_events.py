"""Every bulk event in events/ answers what its ``expectations.json`` entry says it returns.

Each event goes through the handler its entry names (``function.bulk_app.s3_handler`` /
``sqs_handler``, resolved the way awslambdaric resolves the image's ``CMD``), in a world that holds
what events/README.md says the event stands for: the 76-byte ``incoming/my docs/café notes.txt``
and ``incoming/backfill/notes.txt`` in the input bucket; for a deletion, the same object encoded
first and then deleted. The answer must contain ``returns`` (every key there, with its value;
lists element by element); fields that vary with the encoder or the clock (``detail``,
``tokens``, ``encode_seconds``) are left out of the entries. The stand-in encoder (no TensorFlow)
keeps this in the fast tier; the image and SAM tiers send the same files to the real model.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from bert2vec.local_invoke import load_handler
from tests.bulk_support import BUCKET, Context, make_engine
from tests.conftest import EVENT_OBJECT_BYTES, EVENT_OBJECT_KEY, EVENTS, load_event

EXPECTATIONS: dict[str, dict[str, Any]] = json.loads((EVENTS / "expectations.json").read_text(encoding="utf-8"))
BULK_EVENTS = sorted(n for n, e in EXPECTATIONS.items() if e["handler"].startswith("function.bulk_app."))
BACKFILL_KEY = "incoming/backfill/notes.txt"
# The upload a deletion event comes after (same object, lower sequencer).
CREATED_BEFORE = {"eventbridge_object_deleted.json": "eventbridge_object_created.json",
                  "s3_object_removed.json": "s3_object_created.json"}  # fmt: skip


@pytest.fixture
def world(aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """moto with the objects the events name, and the handlers' engine on it (stand-in encoder).
    The ``aws`` fixture set ``BERT2VEC_LAZY_INIT`` before the handler module's import: the test
    hands it its engine."""
    from bert2vec.bulk import app as bulk_app

    aws["s3"].put_object(Bucket=BUCKET, Key=EVENT_OBJECT_KEY, Body=EVENT_OBJECT_BYTES)
    aws["s3"].put_object(Bucket=BUCKET, Key=BACKFILL_KEY, Body=EVENT_OBJECT_BYTES)
    eng = make_engine(aws)
    monkeypatch.setattr(bulk_app, "engine", lambda: eng)
    return aws


def _invoke(name: str) -> Any:
    return load_handler(EXPECTATIONS[name]["handler"])(copy.deepcopy(load_event(name)), Context())


def contains(got: Any, want: Any, where: str = "") -> list[str]:
    """Where ``got`` differs from ``want``: every key of a dict in ``want`` with its value, lists of
    the same length element by element, anything else equal."""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [f"{where or '.'}: {got!r} is not an object"]
        return [d for k, v in want.items() for d in (contains(got[k], v, f"{where}.{k}") if k in got
                                                     else [f"{where}.{k}: missing"])]  # fmt: skip
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return [f"{where}: {got!r} is not a list of {len(want)}"]
        return [d for i, (g, w) in enumerate(zip(got, want, strict=True)) for d in contains(g, w, f"{where}[{i}]")]
    return [] if got == want else [f"{where}: {got!r} != {want!r}"]


def test_the_bulk_events_are_the_ones_the_readme_lists() -> None:
    assert BULK_EVENTS == sorted(["s3_object_created.json", "eventbridge_object_created.json",
                                  "eventbridge_object_deleted.json", "s3_object_removed.json",
                                  "s3_object_created_output_prefix.json", "s3_batch_operations.json",
                                  "sqs_shard.json"])  # fmt: skip
    assert all("returns" in EXPECTATIONS[n] for n in BULK_EVENTS)


@pytest.mark.parametrize("name", BULK_EVENTS)
def test_every_bulk_event_returns_what_its_expectation_says(world: dict[str, Any], name: str) -> None:
    if name in CREATED_BEFORE:
        _invoke(CREATED_BEFORE[name])
        world["s3"].delete_object(Bucket=BUCKET, Key=EVENT_OBJECT_KEY)
    answer = _invoke(name)
    assert not contains(answer, EXPECTATIONS[name]["returns"]), (contains(answer, EXPECTATIONS[name]["returns"]), answer)


def test_what_the_events_leave_behind(world: dict[str, Any]) -> None:
    """The answers are not the whole story: the upload leaves a complete manifest, the deletion a
    ``deleted`` one and no part, the output-prefix event and the shard of a missing object nothing."""
    s3 = world["s3"]

    def keys() -> set[str]:
        return {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="vectors/").get("Contents", [])}

    def manifest() -> dict[str, Any]:
        return json.loads(s3.get_object(Bucket=BUCKET, Key="vectors/my docs/café notes.txt.manifest.json")["Body"].read())

    _invoke("s3_object_created_output_prefix.json")
    _invoke("sqs_shard.json")
    assert not {k for k in keys() if not k.startswith("vectors/_objects/")}
    _invoke("s3_object_created.json")
    assert manifest()["status"] == "complete" and manifest()["counts"]["encoded"] == 2
    s3.delete_object(Bucket=BUCKET, Key=EVENT_OBJECT_KEY)
    _invoke("s3_object_removed.json")
    assert manifest()["status"] == "deleted"
    assert not [k for k in keys() if "/part-" in k]


def test_the_comparison_can_fail() -> None:
    want = {"objects": [{"key": "a", "outcome": "encoded"}]}
    assert not contains({"objects": [{"key": "a", "outcome": "encoded", "detail": "x"}]}, want)
    assert contains({"objects": [{"key": "a", "outcome": "late"}]}, want)
    assert contains({"objects": []}, want)
    assert contains({"results": []}, want)
