"""``bert-encode --backfill s3://bucket[/prefix]``: encode what is already in S3 with S3 Batch Operations.

AWS's own engine does the listing and the fan-out: the job generates its manifest from a prefix
filter (``S3JobManifestGenerator``), invokes the planner's alias once per object with the
``LambdaInvoke`` operation (schema 2.0), retries ``TemporaryFailure`` answers, and writes a
completion report of the failed tasks. Every task goes through the planner exactly like an upload
event, so objects already encoded are skipped and a later upload does not double the output.

The job filters by prefix only: S3's key-name filter takes a single, case-sensitive suffix, while
the readers accept ``.txt``/``.TXT``/``.JsonL``... alike. So every object under the prefix becomes a
task and the planner answers objects that are not inputs ``PermanentFailure`` ("not encoded:
unsupported input ...") without writing anything. Every name and ARN is checked here, before any
call, so a mistake is one line naming it.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

# S3 general-purpose bucket names: 3-63 of a-z 0-9 . -, starting and ending with a letter or digit.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PARTITION = r"aws(?:-cn|-us-gov|-iso|-iso-[a-z])?"
_ROLE_ARN = re.compile(rf"^arn:{_PARTITION}:iam::(\d{{12}}):role/[\w+=,.@/-]{{1,512}}$")
_FUNCTION_ARN = re.compile(
    rf"^arn:{_PARTITION}:lambda:[a-z0-9-]+:(\d{{12}}):function:[A-Za-z0-9_-]{{1,64}}(?::[A-Za-z0-9_$-]{{1,128}})?$"
)
REPORT_SCOPE = "FailedTasksOnly"


def check_bucket(name: str) -> str:
    if not _BUCKET.match(name) or ".." in name or re.match(r"^\d+\.\d+\.\d+\.\d+$", name):
        raise ValueError(
            f"{name!r} is not a valid S3 bucket name (3-63 characters: lowercase letters, digits, '.' and '-', "
            "starting and ending with a letter or digit)"
        )
    return name


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> S3Location:
        if not url.startswith("s3://") or not url[5:].split("/", 1)[0]:
            raise ValueError(f"expected s3://bucket/prefix, got {url!r}")
        bucket, _, prefix = url[5:].partition("/")
        return cls(check_bucket(bucket), prefix)

    @property
    def arn(self) -> str:
        return f"arn:aws:s3:::{self.bucket}"


def account_of(role_arn: str) -> str:
    """The account in ``arn:aws:iam::<account>:role/...`` — where the job runs."""
    match = _ROLE_ARN.match(role_arn)
    if not match:
        raise ValueError(f"--role-arn: expected an IAM role ARN (arn:aws:iam::<account>:role/<name>), got {role_arn!r}")
    return match.group(1)


def check_function_arn(function_arn: str) -> str:
    """The planner's ARN (a function, version or alias); what S3 Batch Operations' LambdaInvoke takes."""
    if not _FUNCTION_ARN.match(function_arn):
        raise ValueError(
            "--function-arn: expected a Lambda function ARN (arn:aws:lambda:<region>:<account>:function:<name>[:alias]), "
            f"got {function_arn!r}"
        )
    return function_arn


def create_job_request(
    source: S3Location,
    *,
    role_arn: str,
    function_arn: str,
    report: S3Location,
    priority: int = 10,
    token: str | None = None,
) -> dict[str, Any]:
    """The ``s3control.create_job`` arguments for a backfill of ``source`` (validated first)."""
    account = account_of(role_arn)
    check_function_arn(function_arn)
    generator: dict[str, Any] = {
        "SourceBucket": source.arn,
        "EnableManifestOutput": True,
        "ManifestOutputLocation": {
            "Bucket": report.arn,
            "ManifestPrefix": report.prefix.rstrip("/") or "batch-reports",
            "ManifestFormat": "S3InventoryReport_CSV_20211130",
        },
    }
    if source.prefix:  # no prefix: the whole bucket (an empty MatchAnyPrefix entry is invalid)
        generator["Filter"] = {"KeyNameConstraint": {"MatchAnyPrefix": [source.prefix]}}
    return {
        "AccountId": account,
        "ConfirmationRequired": False,
        "ClientRequestToken": token or str(uuid.uuid4()),
        "Priority": priority,
        "RoleArn": role_arn,
        "Description": f"bert2vec backfill of s3://{source.bucket}/{source.prefix}"[:256],
        "Operation": {"LambdaInvoke": {"FunctionArn": function_arn, "InvocationSchemaVersion": "2.0"}},
        "ManifestGenerator": {"S3JobManifestGenerator": generator},
        "Report": {
            "Bucket": report.arn,
            "Prefix": report.prefix.rstrip("/") or "batch-reports",
            "Format": "Report_CSV_20180820",
            "Enabled": True,
            "ReportScope": REPORT_SCOPE,
        },
    }


def start_backfill(client: Any, **kwargs: Any) -> str:
    """Create the job (``client`` is an ``s3control`` client); returns its id."""
    return str(client.create_job(**create_job_request(**kwargs))["JobId"])
