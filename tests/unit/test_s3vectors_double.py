"""The S3 Vectors test double refuses what AWS refuses, throttles where AWS throttles, and paginates.

Each documented limit gets a refused call and, next to it, the largest call that still passes, so a
double that refused everything could not pass either. Time is a fake clock: nothing sleeps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError, ParamValidationError

from tests.s3vectors_double import FaithfulS3Vectors, install

BUCKET = "vb-test"
INDEX = "idx"
DIM = 4


class FakeClock:
    """A monotonic clock that moves only when told to (``advance`` doubles as ``sleep``)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make(clock: FakeClock, *, dim: int = DIM, metric: str = "cosine", **kwargs: Any) -> FaithfulS3Vectors:
    double = FaithfulS3Vectors(clock=clock, **kwargs)
    double.create_vector_bucket(vectorBucketName=BUCKET)
    double.create_index(vectorBucketName=BUCKET, indexName=INDEX, dataType="float32", dimension=dim,
                        distanceMetric=metric, metadataConfiguration={"nonFilterableMetadataKeys": ["text"]})  # fmt: skip
    return double


@pytest.fixture
def s3v(clock: FakeClock) -> FaithfulS3Vectors:
    return make(clock)


def vec(key: str, data: list[float] | None = None, **metadata: Any) -> dict[str, Any]:
    return {
        "key": key,
        "data": {"float32": data if data is not None else [1.0, 0.5, 0.25, 0.125]},
        "metadata": metadata,
    }


def put(s3v: FaithfulS3Vectors, vectors: list[dict[str, Any]]) -> dict[str, Any]:
    return s3v.put_vectors(vectorBucketName=BUCKET, indexName=INDEX, vectors=vectors)


def delete(s3v: FaithfulS3Vectors, keys: list[str]) -> dict[str, Any]:
    return s3v.delete_vectors(vectorBucketName=BUCKET, indexName=INDEX, keys=keys)


def refused(call: Callable[[], Any], code: str = "ValidationException", status: int = 400) -> ClientError:
    with pytest.raises(ClientError) as info:
        call()
    assert info.value.response["Error"]["Code"] == code, info.value.response
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    return info.value


def fill(s3v: FaithfulS3Vectors, clock: FakeClock, n: int) -> list[str]:
    """``n`` vectors, in calls of 500, one virtual second apart so the rate limits stay out of it."""
    keys = [f"doc/{i:05d}" for i in range(n)]
    for start in range(0, n, 500):
        put(s3v, [vec(k, [1.0, i + 1.0, 0.0, 0.5], n=i) for i, k in enumerate(keys[start : start + 500], start)])
        clock.advance(1.0)
    return keys


# -- round trip ------------------------------------------------------------------------------


def test_a_correct_put_is_stored_and_read_back(s3v: FaithfulS3Vectors) -> None:
    put(s3v, [vec("a", [1.0, 0.0, 0.0, 0.0], genre="doc", text="long"), vec("b", [0.0, 1.0, 0.0, 0.0])])
    assert s3v.contents(BUCKET, INDEX) == {
        "a": {"data": [1.0, 0.0, 0.0, 0.0], "metadata": {"genre": "doc", "text": "long"}},
        "b": {"data": [0.0, 1.0, 0.0, 0.0], "metadata": {}},
    }
    got = s3v.get_vectors(vectorBucketName=BUCKET, indexName=INDEX, keys=["a", "missing"], returnData=True,
                          returnMetadata=True)  # fmt: skip
    assert got["vectors"] == [
        {"key": "a", "data": {"float32": [1.0, 0.0, 0.0, 0.0]}, "metadata": {"genre": "doc", "text": "long"}}
    ]
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert s3v.get_vectors(vectorBucketName=BUCKET, indexName=INDEX, keys=["b"])["vectors"] == [{"key": "b"}]
    index = s3v.get_index(vectorBucketName=BUCKET, indexName=INDEX)["index"]
    assert (index["dimension"], index["distanceMetric"], index["metadataConfiguration"]) == (
        DIM, "cosine", {"nonFilterableMetadataKeys": ["text"]})  # fmt: skip
    assert s3v.stats.vectors_put == 2 and s3v.stats.calls["PutVectors"] == 1


def test_values_are_stored_as_float32(s3v: FaithfulS3Vectors) -> None:
    put(s3v, [vec("a", [0.1, 0.2, 0.3, 0.4])])
    assert s3v.contents(BUCKET, INDEX)["a"]["data"] == np.asarray([0.1, 0.2, 0.3, 0.4], dtype=np.float32).tolist()


# -- PutVectors limits -----------------------------------------------------------------------


def test_put_takes_500_vectors_per_call_not_501(s3v: FaithfulS3Vectors) -> None:
    refused(lambda: put(s3v, [vec(f"k{i}") for i in range(501)]))
    assert s3v.contents(BUCKET, INDEX) == {}
    put(s3v, [vec(f"k{i}") for i in range(500)])
    assert len(s3v.contents(BUCKET, INDEX)) == 500


def test_key_is_1_to_1024_characters(s3v: FaithfulS3Vectors) -> None:
    refused(lambda: put(s3v, [vec("k" * 1025)]))
    with pytest.raises(ParamValidationError):  # botocore checks the model's minimum itself
        put(s3v, [vec("")])
    put(s3v, [vec("k" * 1024), vec("é" * 1024)])
    assert len(s3v.contents(BUCKET, INDEX)) == 2


@pytest.mark.parametrize(
    "data",
    [[1.0, 2.0, 3.0], [1.0] * 5, [math.nan, 1.0, 1.0, 1.0], [math.inf, 1.0, 1.0, 1.0], [1e39, 1.0, 1.0, 1.0],
     [0.0, 0.0, 0.0, 0.0]],
    ids=["short", "long", "nan", "inf", "float32-overflow", "zero-vector-under-cosine"],
)  # fmt: skip
def test_vector_data_must_match_the_dimension_and_be_finite(s3v: FaithfulS3Vectors, data: list[float]) -> None:
    error = refused(lambda: put(s3v, [vec("good"), vec("bad", data)]))
    assert "vectors[1]" in str(error)
    assert s3v.contents(BUCKET, INDEX) == {}, "a refused request writes none of its vectors"


def test_a_zero_vector_is_fine_under_euclidean(clock: FakeClock) -> None:
    s3v = make(clock, metric="euclidean")
    put(s3v, [vec("z", [0.0, 0.0, 0.0, 0.0]), vec("max", [3.4e38, 1.0, 1.0, 1.0])])
    assert len(s3v.contents(BUCKET, INDEX)) == 2


def test_metadata_has_at_most_50_keys(s3v: FaithfulS3Vectors) -> None:
    refused(lambda: put(s3v, [vec("a", **{f"m{i}": i for i in range(51)})]))
    put(s3v, [vec("a", **{f"m{i}": i for i in range(50)})])


def test_filterable_metadata_is_at_most_2_kb(s3v: FaithfulS3Vectors) -> None:
    # {"note":"..."} is 11 bytes of JSON around the value.
    refused(lambda: put(s3v, [vec("a", note="x" * (2048 - 10))]))
    put(s3v, [vec("a", note="x" * (2048 - 11))])
    put(s3v, [vec("b", text="x" * 30_000)])  # the same bytes under the non-filterable key are fine


def test_total_metadata_is_at_most_40_kb(s3v: FaithfulS3Vectors) -> None:
    # {"text":"...","n":1} is 17 bytes of JSON around the text.
    refused(lambda: put(s3v, [vec("a", text="x" * (40 * 1024 - 16), n=1)]))
    put(s3v, [vec("a", text="x" * (40 * 1024 - 17), n=1)])


@pytest.mark.parametrize(
    "value", [{"nested": 1}, None, [{"a": 1}], math.nan], ids=["object", "null", "list-of-objects", "nan"]
)
def test_metadata_values_are_strings_numbers_booleans_or_lists(s3v: FaithfulS3Vectors, value: Any) -> None:
    refused(lambda: put(s3v, [vec("a", bad=value)]))
    put(s3v, [vec("a", s="x", n=1.5, b=True, tags=["x", "y"])])


def test_request_payload_is_at_most_20_mib(clock: FakeClock) -> None:
    """500 vectors of 1,024-character keys and 40 KB of metadata come to just over 20 MiB."""
    s3v = make(clock, dim=8)
    text = "x" * (40 * 1024 - 11)  # {"text":"..."}: exactly 40 KB of metadata, so only the payload limit is hit

    def batch(n: int) -> list[dict[str, Any]]:
        return [vec(f"{i:04d}".ljust(1024, "k"), [0.5] * 8, text=text) for i in range(n)]

    error = refused(lambda: put(s3v, batch(500)))
    assert "payload" in str(error)
    assert s3v.contents(BUCKET, INDEX) == {}
    put(s3v, batch(480))
    assert len(s3v.contents(BUCKET, INDEX)) == 480


def test_unknown_index_or_bucket_is_404(s3v: FaithfulS3Vectors) -> None:
    error = refused(lambda: s3v.put_vectors(vectorBucketName=BUCKET, indexName="nope", vectors=[vec("a")]),
                    "NotFoundException", 404)  # fmt: skip
    assert isinstance(error, s3v.exceptions.NotFoundException)
    refused(lambda: s3v.get_index(vectorBucketName="no-bucket", indexName=INDEX), "NotFoundException", 404)
    arn = s3v.get_index(vectorBucketName=BUCKET, indexName=INDEX)["index"]["indexArn"]
    put(s3v, [vec("a")])
    assert s3v.get_vectors(indexArn=arn, keys=["a"])["vectors"] == [{"key": "a"}]


# -- DeleteVectors ---------------------------------------------------------------------------


def test_delete_takes_500_keys_and_counts_keys_it_did_not_hold(s3v: FaithfulS3Vectors) -> None:
    put(s3v, [vec("a"), vec("b")])
    refused(lambda: delete(s3v, [f"k{i}" for i in range(501)]))
    refused(lambda: delete(s3v, ["k" * 1025]))
    assert set(s3v.contents(BUCKET, INDEX)) == {"a", "b"}
    delete(s3v, ["a", "wrong-key"])  # AWS accepts keys it does not hold...
    assert set(s3v.contents(BUCKET, INDEX)) == {"b"}
    # ...so the double counts them, for tests that must notice deleting the wrong keys.
    assert (s3v.stats.vectors_deleted, s3v.stats.unknown_deletes, s3v.stats.unknown_delete_keys) == (
        1,
        1,
        ["wrong-key"],
    )


# -- CreateIndex -----------------------------------------------------------------------------


def create(s3v: FaithfulS3Vectors, name: str = "other", **overrides: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"vectorBucketName": BUCKET, "indexName": name, "dataType": "float32", "dimension": 8,
                              "distanceMetric": "euclidean"} | overrides  # fmt: skip
    return s3v.create_index(**params)


def test_index_limits(s3v: FaithfulS3Vectors) -> None:
    refused(lambda: create(s3v, metadataConfiguration={"nonFilterableMetadataKeys": [f"k{i}" for i in range(11)]}))
    refused(lambda: create(s3v, metadataConfiguration={"nonFilterableMetadataKeys": ["k" * 64]}))
    refused(lambda: create(s3v, dimension=4097))
    refused(lambda: create(s3v, distanceMetric="dotproduct"))
    refused(lambda: create(s3v, name="Upper_Case"))
    refused(lambda: create(s3v, name=INDEX), "ConflictException", 409)
    create(s3v, metadataConfiguration={"nonFilterableMetadataKeys": [f"k{i}".ljust(63, "x") for i in range(10)]},
           dimension=4096)  # fmt: skip


# -- QueryVectors ----------------------------------------------------------------------------


def query(s3v: FaithfulS3Vectors, data: list[float], top_k: int = 10, **kwargs: Any) -> list[dict[str, Any]]:
    found = s3v.query_vectors(vectorBucketName=BUCKET, indexName=INDEX, queryVector={"float32": data}, topK=top_k,
                              returnDistance=True, **kwargs)  # fmt: skip
    return list(found["vectors"])


def test_query_top_k_is_at_most_100(s3v: FaithfulS3Vectors) -> None:
    put(s3v, [vec(f"k{i}", [1.0, float(i), 0.0, 0.0]) for i in range(150)])
    refused(lambda: query(s3v, [1.0, 0.0, 0.0, 0.0], top_k=101))
    assert len(query(s3v, [1.0, 0.0, 0.0, 0.0], top_k=100)) == 100
    refused(lambda: query(s3v, [1.0, 0.0, 0.0]))  # the index's dimension is 4


def test_query_ranks_by_the_index_metric(clock: FakeClock) -> None:
    for metric, expected in [("cosine", ["far-same-direction", "near-other-direction"]),
                             ("euclidean", ["near-other-direction", "far-same-direction"])]:  # fmt: skip
        s3v = make(clock, metric=metric)
        put(s3v, [vec("far-same-direction", [10.0, 0.0, 0.0, 0.0]), vec("near-other-direction", [1.0, 1.0, 0.0, 0.0])])
        found = query(s3v, [1.0, 0.0, 0.0, 0.0])
        assert [v["key"] for v in found] == expected
        assert found[0]["distance"] == pytest.approx(0.0 if metric == "cosine" else 1.0, abs=1e-6)


def test_query_filters(s3v: FaithfulS3Vectors) -> None:
    put(s3v, [
        vec("a", genre="doc", year=2020, tags=["x", "y"], text="secret"),
        vec("b", genre="drama", year=2021, tags=["y"]),
        vec("c", genre="doc", year=2023),
    ])  # fmt: skip

    def keys(flt: dict[str, Any]) -> set[str]:
        return {v["key"] for v in query(s3v, [1.0, 0.5, 0.25, 0.125], filter=flt)}

    assert keys({"genre": "doc"}) == {"a", "c"}
    assert keys({"genre": {"$eq": "drama"}}) == {"b"}
    assert keys({"$and": [{"genre": "doc"}, {"year": {"$gte": 2021}}]}) == {"c"}
    assert keys({"genre": "doc", "year": 2020}) == {"a"}
    assert keys({"year": {"$in": [2021, 2023]}}) == {"b", "c"}
    assert keys({"$or": [{"genre": "drama"}, {"year": {"$lt": 2021}}]}) == {"a", "b"}
    assert keys({"tags": "x"}) == {"a"}  # a list matches when any element does
    assert keys({"tags": {"$exists": False}}) == {"c"}
    assert keys({"genre": {"$ne": "doc"}}) == {"b"}
    assert keys({"year": "2020"}) == set()  # types are not coerced
    assert keys({"text": "secret"}) == set()  # non-filterable metadata cannot be filtered on
    refused(lambda: keys({"genre": {"$regex": "d.*"}}))
    refused(lambda: keys({"$and": []}))
    found = s3v.query_vectors(vectorBucketName=BUCKET, indexName=INDEX, queryVector={"float32": [1.0, 0.0, 0.0, 0.0]},
                              topK=1, filter={"genre": "drama"}, returnMetadata=True)  # fmt: skip
    assert found["vectors"] == [{"key": "b", "metadata": {"genre": "drama", "year": 2021, "tags": ["y"]}}]
    assert found["distanceMetric"] == "cosine"


# -- ListVectors -----------------------------------------------------------------------------


def list_all(s3v: FaithfulS3Vectors, next_token: str | None = None, **kwargs: Any) -> tuple[list[str], int]:
    """Every key, following nextToken (from ``next_token`` on, if given); and the number of pages."""
    keys: list[str] = []
    pages = 0
    token: dict[str, str] = {"nextToken": next_token} if next_token else {}
    while True:
        page = s3v.list_vectors(vectorBucketName=BUCKET, indexName=INDEX, **kwargs, **token)
        pages += 1
        keys += [v["key"] for v in page["vectors"]]
        if "nextToken" not in page:
            return keys, pages
        token = {"nextToken": page["nextToken"]}


def test_list_paginates_every_vector_exactly_once(s3v: FaithfulS3Vectors, clock: FakeClock) -> None:
    keys = fill(s3v, clock, 2345)
    listed, pages = list_all(s3v, maxResults=1000)
    assert sorted(listed) == keys and pages == 3
    assert listed != keys, "pages are not in key order: AWS promises no order"
    listed, pages = list_all(s3v)  # the default page is 500
    assert sorted(listed) == keys and pages == 5
    first = s3v.list_vectors(
        vectorBucketName=BUCKET, indexName=INDEX, maxResults=1, returnData=True, returnMetadata=True
    )
    assert set(first["vectors"][0]) == {"key", "data", "metadata"}
    refused(lambda: s3v.list_vectors(vectorBucketName=BUCKET, indexName=INDEX, maxResults=1001))
    refused(lambda: s3v.list_vectors(vectorBucketName=BUCKET, indexName=INDEX, nextToken="not-a-token"))


def test_short_pages_are_followed_to_the_end(clock: FakeClock) -> None:
    s3v = make(clock, max_page=7)
    keys = fill(s3v, clock, 100)
    listed, pages = list_all(s3v, maxResults=1000)
    assert sorted(listed) == keys and pages == math.ceil(100 / 7)


def test_a_page_ends_after_1_mb(clock: FakeClock) -> None:
    s3v = make(clock)
    put(s3v, [vec(f"k{i}", text="x" * 20_000) for i in range(100)])  # ~2 MB of metadata
    page = s3v.list_vectors(vectorBucketName=BUCKET, indexName=INDEX, maxResults=1000, returnMetadata=True)
    assert 40 <= len(page["vectors"]) <= 60 and "nextToken" in page
    listed, _ = list_all(s3v, maxResults=1000, returnMetadata=True)
    assert sorted(listed) == sorted(f"k{i}" for i in range(100))


def test_segments_partition_the_index(s3v: FaithfulS3Vectors, clock: FakeClock) -> None:
    keys = fill(s3v, clock, 1200)
    seen: list[str] = []
    for segment in range(16):
        listed, _ = list_all(s3v, maxResults=50, segmentCount=16, segmentIndex=segment)
        assert listed, f"segment {segment} is empty"
        seen += listed
    assert sorted(seen) == keys, "every vector in exactly one segment, once"
    refused(lambda: s3v.list_vectors(vectorBucketName=BUCKET, indexName=INDEX, segmentCount=17, segmentIndex=0))
    refused(lambda: s3v.list_vectors(vectorBucketName=BUCKET, indexName=INDEX, segmentCount=4, segmentIndex=4))
    refused(lambda: s3v.list_vectors(vectorBucketName=BUCKET, indexName=INDEX, segmentIndex=1))
    token = s3v.list_vectors(vectorBucketName=BUCKET, indexName=INDEX, maxResults=10, segmentCount=2, segmentIndex=0)[
        "nextToken"
    ]
    refused(
        lambda: s3v.list_vectors(
            vectorBucketName=BUCKET, indexName=INDEX, nextToken=token, segmentCount=2, segmentIndex=1
        )
    )


def test_listing_while_writing_never_repeats_a_key(s3v: FaithfulS3Vectors, clock: FakeClock) -> None:
    fill(s3v, clock, 300)
    page = s3v.list_vectors(vectorBucketName=BUCKET, indexName=INDEX, maxResults=100)
    listed = [v["key"] for v in page["vectors"]]
    delete(s3v, listed[:10])
    rest, _ = list_all(s3v, page["nextToken"], maxResults=100)
    assert not set(listed) & set(rest) and len(listed) + len(rest) == 300


# -- rate limits -----------------------------------------------------------------------------


def test_2600_vectors_deleted_in_one_second_are_throttled_at_the_crossing_call(
    s3v: FaithfulS3Vectors, clock: FakeClock
) -> None:
    keys = fill(s3v, clock, 2600)
    clock.advance(5.0)
    for start in range(0, 2500, 500):
        delete(s3v, keys[start : start + 500])
    error = refused(lambda: delete(s3v, keys[2500:]), "TooManyRequestsException", 429)
    assert isinstance(error, s3v.exceptions.TooManyRequestsException)
    assert len(s3v.contents(BUCKET, INDEX)) == 100, "a throttled call changes nothing"
    assert s3v.stats.throttled == 1
    clock.advance(0.5)
    refused(lambda: delete(s3v, keys[2500:]), "TooManyRequestsException", 429)  # a sliding window, not a tick
    clock.advance(0.5)
    delete(s3v, keys[2500:])
    assert s3v.contents(BUCKET, INDEX) == {} and s3v.stats.vectors_deleted == 2600


def test_puts_and_deletes_share_the_vector_budget(s3v: FaithfulS3Vectors, clock: FakeClock) -> None:
    keys = fill(s3v, clock, 1500)
    clock.advance(5.0)
    for start in range(0, 1500, 500):
        delete(s3v, keys[start : start + 500])
    put(s3v, [vec(f"new{i}") for i in range(500)])
    put(s3v, [vec(f"new{i}") for i in range(500, 1000)])  # 2,500 vectors moved in this second
    before = s3v.contents(BUCKET, INDEX)
    refused(lambda: put(s3v, [vec("one-more")]), "TooManyRequestsException", 429)
    assert s3v.contents(BUCKET, INDEX) == before


def test_more_than_1000_write_requests_a_second_are_throttled(s3v: FaithfulS3Vectors, clock: FakeClock) -> None:
    for i in range(1000):
        delete(s3v, [f"k{i}"])
        clock.advance(0.0005)  # 1,000 requests within half a second, 1,000 vectors: only the request limit is hit
    refused(lambda: delete(s3v, ["k"]), "TooManyRequestsException", 429)
    clock.advance(0.6)
    delete(s3v, ["k"])


def test_rate_limits_are_per_index_and_configurable(clock: FakeClock) -> None:
    s3v = make(clock, vectors_per_second=10)
    create(s3v, dimension=DIM)
    put(s3v, [vec(f"k{i}") for i in range(10)])
    refused(lambda: put(s3v, [vec("one-more")]), "TooManyRequestsException", 429)
    s3v.put_vectors(vectorBucketName=BUCKET, indexName="other", vectors=[vec(f"k{i}") for i in range(10)])


def test_refused_requests_do_not_use_up_the_vector_budget(clock: FakeClock) -> None:
    s3v = make(clock, vectors_per_second=10)
    refused(lambda: put(s3v, [vec(f"k{i}", [math.nan] * DIM) for i in range(10)]))
    put(s3v, [vec(f"k{i}") for i in range(10)])


# -- parameters and errors as boto3 raises them ------------------------------------------------


def test_parameters_are_validated_against_botocores_model(s3v: FaithfulS3Vectors) -> None:
    with pytest.raises(ParamValidationError, match='Unknown parameter in input: "vector"'):
        s3v.put_vectors(vectorBucketName=BUCKET, indexName=INDEX, vector=[vec("a")])
    with pytest.raises(ParamValidationError, match="topK"):
        s3v.query_vectors(vectorBucketName=BUCKET, indexName=INDEX, queryVector={"float32": [1.0] * DIM}, topK="10")
    with pytest.raises(ParamValidationError, match="numpy.float32"):  # boto3 refuses numpy scalars: call .tolist()
        put(s3v, [vec("a", list(np.ones(DIM, dtype=np.float32)))])
    with pytest.raises(ParamValidationError, match="Missing required parameter"):
        s3v.delete_vectors(vectorBucketName=BUCKET, indexName=INDEX)
    with pytest.raises(TypeError):
        s3v.get_index(BUCKET, INDEX)  # type: ignore[call-arg]  # boto3 takes keyword arguments only
    assert s3v.stats.calls["PutVectors"] == 0, "a request refused client-side never reached the service"
    with pytest.raises(NotImplementedError, match="DeleteIndex"):
        s3v.delete_index(vectorBucketName=BUCKET, indexName=INDEX)


@pytest.mark.parametrize("code,status", [("ServiceUnavailableException", 503), ("TooManyRequestsException", 429),
                                         ("InternalServerException", 500), ("AccessDeniedException", 403)])  # fmt: skip
def test_injected_faults_carry_the_modeled_status(s3v: FaithfulS3Vectors, code: str, status: int) -> None:
    s3v.fail_next("put_vectors", code, times=2)
    for _ in range(2):
        error = refused(lambda: put(s3v, [vec("a")]), code, status)
        assert isinstance(error, getattr(s3v.exceptions, code))
    assert s3v.contents(BUCKET, INDEX) == {}
    put(s3v, [vec("a")])
    assert s3v.stats.injected_faults == 2 and s3v.stats.calls["PutVectors"] == 3 and s3v.stats.errors[code] == 2


def test_retries_follow_botocores_standard_mode(clock: FakeClock) -> None:
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.advance(seconds)

    s3v = make(clock, max_attempts=3, sleep=sleep)
    s3v.fail_next("PutVectors", "ServiceUnavailableException", times=2)
    put(s3v, [vec("a")])  # retried twice, as the real client would
    assert s3v.stats.retries == 2 and len(sleeps) == 2
    s3v.fail_next("PutVectors", "ServiceUnavailableException", times=3)
    refused(lambda: put(s3v, [vec("b")]), "ServiceUnavailableException", 503)  # out of attempts
    refused(lambda: put(s3v, [vec("c", [math.nan] * DIM)]))  # a ValidationException is never retried
    assert s3v.stats.calls["PutVectors"] == 3 + 3 + 1


# -- the project's own code against the double -------------------------------------------------


def target_for(s3v: FaithfulS3Vectors, clock: FakeClock, **kwargs: Any) -> Any:
    """The project's VectorTarget on the double; its write pacing (when it has one) on the fake clock."""
    from bert2vec.bulk import vectors

    if hasattr(vectors, "Pacer") and "pacer" not in kwargs:
        kwargs["pacer"] = vectors.Pacer(clock=clock, sleep=clock.advance)
    return vectors.VectorTarget(client=s3v, bucket=BUCKET, index=INDEX, source_bucket="in", source_key="docs/a.jsonl",
                                etag="e1", **kwargs)  # fmt: skip


def test_vector_target_puts_and_deletes_through_the_double(s3v: FaithfulS3Vectors, clock: FakeClock) -> None:
    from bert2vec.files.writers import OutputRow

    target = target_for(s3v, clock)
    rows = [
        OutputRow(id=i, line=i, vector=np.full(DIM, i + 1.0, dtype=np.float32), text=f"text {i}") for i in range(1200)
    ]
    rows[7] = OutputRow(id=7, line=7, vector=np.full(DIM, np.nan, dtype=np.float32))  # AWS refuses NaN
    vectors = [
        {"key": target.key_for(r), "data": {"float32": r.vector.tolist()}, "metadata": target.metadata(r)} for r in rows
    ]
    refusals = target.put(vectors)
    assert list(refusals) == [7], "the batch was bisected down to the one vector S3 Vectors refused"
    stored = s3v.contents(BUCKET, INDEX)
    assert len(stored) == 1199
    meta = stored[target.key_for(rows[3])]["metadata"]
    assert {k: meta[k] for k in ("source_bucket", "source_key", "etag", "line", "id", "text")} == {
        "source_bucket": "in", "source_key": "docs/a.jsonl", "etag": "e1", "line": 3, "id": "3", "text": "text 3"}  # fmt: skip
    assert target.delete(stored) == 1199
    assert s3v.contents(BUCKET, INDEX) == {}
    assert s3v.stats.unknown_deletes == 0, "it deleted exactly the keys it had put"
    assert s3v.stats.throttled == 0, "the project paces its writes under the index's rate"


def test_unpaced_project_deletes_hit_the_rate_limit(s3v: FaithfulS3Vectors, clock: FakeClock) -> None:
    """The project's own delete loop, unpaced, gets the 429 AWS sends at 2,600 vectors in a second."""
    from bert2vec.bulk import vectors

    pacing = hasattr(vectors, "Pacer")  # a VectorTarget that paces its writes gets an unlimited pacer here
    unpaced = {"pacer": vectors.Pacer(rate=math.inf, clock=clock, sleep=clock.advance)} if pacing else {}
    keys = fill(s3v, clock, 2600)
    clock.advance(5.0)
    target = target_for(s3v, clock, **unpaced)
    refused(lambda: target.delete(keys), "TooManyRequestsException", 429)
    assert s3v.stats.calls["DeleteVectors"] == 6 and len(s3v.contents(BUCKET, INDEX)) == 100
    clock.advance(1.0)
    if pacing:  # paced, the same call goes through (the first 2,500 keys are gone by now)
        assert target_for(s3v, clock).delete(keys) == 2600
        assert s3v.stats.unknown_deletes == 2500
    else:
        assert target.delete(keys[2500:]) == 100
    assert s3v.contents(BUCKET, INDEX) == {}


def test_install_replaces_the_projects_client(monkeypatch: pytest.MonkeyPatch, s3v: FaithfulS3Vectors) -> None:
    from bert2vec.bulk import s3_engine, vectors

    original = vectors.s3vectors_client
    install(monkeypatch, s3v)
    assert vectors.s3vectors_client() is s3v
    assert s3_engine.s3vectors_client() is s3v
    second = FaithfulS3Vectors()
    install(monkeypatch, second)  # a second install replaces the first everywhere
    assert s3_engine.s3vectors_client() is second and vectors.s3vectors_client() is second
    monkeypatch.undo()
    assert vectors.s3vectors_client is original and s3_engine.s3vectors_client is original
