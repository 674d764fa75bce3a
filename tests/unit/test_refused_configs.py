"""Unsafe bulk settings are refused at start, in one line naming the variables (the template refuses
the same at deploy: tests/unit/test_template_access.py). Fast tier: no TensorFlow."""

from __future__ import annotations

import pytest

from bert2vec.bulk.config import BulkConfig, ConfigError, prefixes_overlap
from bert2vec.core.settings import Settings


def bulk(**env: str) -> BulkConfig:
    return BulkConfig.from_settings(Settings.from_env(env))


@pytest.mark.parametrize(
    ("input_prefix", "output_prefix"),
    [("data/in/", "data/"), ("data/", "data/out/"), ("incoming/", "incoming/"), ("", "vectors/")],
)
def test_overlapping_prefixes_in_one_bucket_fail_the_start(input_prefix: str, output_prefix: str) -> None:
    """Inputs under the output prefix would be skipped as "our own output" (and the bulk role could
    overwrite them); outputs under the input prefix would be encoded again."""
    with pytest.raises(ConfigError) as info:
        bulk(INPUT_PREFIX=input_prefix, OUTPUT_PREFIX=output_prefix)
    message = str(info.value)
    assert "\n" not in message and "OUTPUT_PREFIX" in message and "INPUT_PREFIX" in message
    assert bulk(INPUT_PREFIX=input_prefix, OUTPUT_PREFIX=output_prefix, OUTPUT_BUCKET="another-bucket")


def test_separate_prefixes_start() -> None:
    assert bulk(INPUT_PREFIX="data/in/", OUTPUT_PREFIX="data/out/").output_bucket is None
    assert bulk().input_prefix == "incoming/"
    assert not prefixes_overlap("data/", "dat/") and not prefixes_overlap("data2/", "data/")
