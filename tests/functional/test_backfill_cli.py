"""``bert-encode --backfill``: the S3 Batch Operations job it creates, checked against botocore's
service model with ``Stubber`` (moto does not implement S3 Control's CreateJob)."""

from __future__ import annotations

import argparse
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from bert2vec.backfill import S3Location, create_job_request
from bert2vec.cli import _backfill, build_parser, main

ROLE = "arn:aws:iam::123456789012:role/bert2vec-BatchOperationsRole-abc"
PLANNER = "arn:aws:lambda:us-east-1:123456789012:function:bert2vec-BulkPlannerFunction-x:live"


def args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_intermixed_args(list(argv))


def expected_request(prefix: str) -> dict[str, Any]:
    """The CreateJob request for ``s3://bert2vec-input/<prefix>``, its token left to the CLI."""
    expected = create_job_request(
        S3Location("bert2vec-input", prefix), role_arn=ROLE, function_arn=PLANNER,
        report=S3Location("bert2vec-input", "batch-reports/"), token="t",
    )  # fmt: skip
    expected["ClientRequestToken"] = ANY
    return expected


def backfill_through_stubber(uri: str, expected: dict[str, Any], job_id: str) -> int:
    """Run ``--backfill uri`` against a client that validates every parameter against CreateJob's
    input shape and expects exactly ``expected``; the CLI's exit code."""
    client = boto3.client("s3control", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        stub.add_response("create_job", {"JobId": job_id}, expected)
        code = _backfill(args("--backfill", uri, "--role-arn", ROLE, "--function-arn", PLANNER), client)
        stub.assert_no_pending_responses()
    return code


def test_the_job_request_is_valid_for_the_service_model(capsys) -> None:
    expected = expected_request("incoming/")
    code = backfill_through_stubber("s3://bert2vec-input/incoming/", expected, "job-1")
    out, err = capsys.readouterr()
    assert code == 0 and out.strip() == "job-1" and "describe-job" in err
    gen = expected["ManifestGenerator"]["S3JobManifestGenerator"]
    assert gen["SourceBucket"] == "arn:aws:s3:::bert2vec-input"
    # S3's key filter takes one case-sensitive suffix: suffixes are left to the planner, which reads
    # Notes.TXT like notes.txt; the prefix is the only filter.
    assert gen["Filter"] == {"KeyNameConstraint": {"MatchAnyPrefix": ["incoming/"]}}
    assert expected["Operation"]["LambdaInvoke"] == {"FunctionArn": PLANNER, "InvocationSchemaVersion": "2.0"}
    assert expected["AccountId"] == "123456789012" and expected["Report"]["Enabled"] is True
    assert expected["Report"]["ReportScope"] == "FailedTasksOnly"  # what docs/s3-bulk.md describes


def test_a_bucket_without_prefix_backfills_the_whole_bucket(capsys) -> None:
    expected = expected_request("")
    assert "Filter" not in expected["ManifestGenerator"]["S3JobManifestGenerator"]
    # the service model refuses an empty MatchAnyPrefix entry; this has none
    assert backfill_through_stubber("s3://bert2vec-input", expected, "job-2") == 0
    assert capsys.readouterr().out.strip() == "job-2"


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--backfill", "s3://b/p/"], "needs --role-arn and --function-arn"),
        (["--backfill", "b/p/", "--role-arn", ROLE, "--function-arn", PLANNER], "expected s3://bucket/prefix"),
        (["--backfill", "s3://bucket/", "--role-arn", "not-an-arn", "--function-arn", PLANNER], "IAM role ARN"),
        (["--backfill", "s3://b/", "hello"], "give only one of"),
        (["--backfill", "s3://In_Bucket!/", "--role-arn", ROLE, "--function-arn", PLANNER], "not a valid S3 bucket name"),
        (["--backfill", "s3://bucket/", "--role-arn", ROLE, "--function-arn", PLANNER, "--report", "s3://A/r/"],
         "not a valid S3 bucket name"),
        (["--backfill", "s3://bucket/", "--role-arn", "arn:aws:iam::123456789012:user/alice", "--function-arn", PLANNER],
         "--role-arn: expected an IAM role ARN"),
        (["--backfill", "s3://bucket/", "--role-arn", ROLE, "--function-arn", ROLE], "--function-arn: expected a Lambda"),
    ],
)
def test_bad_backfill_arguments_are_usage_errors(capsys, argv: list[str], fragment: str) -> None:
    assert main(argv) == 2  # before any call: no client is made for a mistake
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1, err
