"""``bert-encode --backfill s3://bucket/prefix``: encode what is already in S3 with S3 Batch Operations.

AWS's own engine does the listing and the fan-out: the job generates its manifest from a prefix
filter (``S3JobManifestGenerator``), invokes the planner's alias once per object with the
``LambdaInvoke`` operation (schema 2.0), retries ``TemporaryFailure`` answers, and writes a
completion report. Every task goes through the planner exactly like an upload event, so objects
already encoded are skipped and a later upload does not double the output.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from function.bulk.readers import SUPPORTED_SUFFIXES


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> S3Location:
        if not url.startswith("s3://") or not url[5:].split("/", 1)[0]:
            raise ValueError(f"expected s3://bucket/prefix, got {url!r}")
        bucket, _, prefix = url[5:].partition("/")
        return cls(bucket, prefix)

    @property
    def arn(self) -> str:
        return f"arn:aws:s3:::{self.bucket}"


def account_of(role_arn: str) -> str:
    """The account in ``arn:aws:iam::<account>:role/...`` — where the job runs."""
    parts = role_arn.split(":")
    if len(parts) < 6 or parts[2] != "iam" or not parts[4].isdigit():
        raise ValueError(f"expected an IAM role ARN (arn:aws:iam::<account>:role/<name>), got {role_arn!r}")
    return parts[4]


def create_job_request(
    source: S3Location,
    *,
    role_arn: str,
    function_arn: str,
    report: S3Location,
    suffixes: tuple[str, ...] = SUPPORTED_SUFFIXES,
    report_scope: str = "AllTasks",
    priority: int = 10,
    token: str | None = None,
) -> dict[str, Any]:
    """The ``s3control.create_job`` arguments for a backfill of ``source``."""
    return {
        "AccountId": account_of(role_arn),
        "ConfirmationRequired": False,
        "ClientRequestToken": token or str(uuid.uuid4()),
        "Priority": priority,
        "RoleArn": role_arn,
        "Description": f"bert2vec backfill of s3://{source.bucket}/{source.prefix}"[:256],
        "Operation": {"LambdaInvoke": {"FunctionArn": function_arn, "InvocationSchemaVersion": "2.0"}},
        "ManifestGenerator": {
            "S3JobManifestGenerator": {
                "SourceBucket": source.arn,
                "EnableManifestOutput": True,
                "ManifestOutputLocation": {
                    "Bucket": report.arn,
                    "ManifestPrefix": report.prefix.rstrip("/") or "batch-reports",
                    "ManifestFormat": "S3InventoryReport_CSV_20211130",
                },
                "Filter": {"KeyNameConstraint": {"MatchAnyPrefix": [source.prefix], "MatchAnySuffix": list(suffixes)}},
            }
        },
        "Report": {
            "Bucket": report.arn,
            "Prefix": report.prefix.rstrip("/") or "batch-reports",
            "Format": "Report_CSV_20180820",
            "Enabled": True,
            "ReportScope": report_scope,
        },
    }


def start_backfill(client: Any, **kwargs: Any) -> str:
    """Create the job (``client`` is an ``s3control`` client); returns its id."""
    return str(client.create_job(**create_job_request(**kwargs))["JobId"])
