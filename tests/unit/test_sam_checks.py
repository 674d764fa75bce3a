"""The checks `make sam-local` applies to `sam local invoke` output, on strings (fast, no Docker).

``sam local invoke`` exits 0 when it never reached the function (empty stdout, a connection
time-out on stderr) and when the handler raised (an ``errorType`` object on stdout): each of these
must be a failure, never a pass.
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.lambda_checks import EXPECTATIONS
from tests.sam.samlocal import NO_CONNECTION, Invoked, SamLocalFailure, answer, check_expected


def _run(stdout: str = "", stderr: str = "", rc: int = 0) -> Invoked:
    return Invoked(["sam", "local", "invoke"], rc, stdout, stderr)


@pytest.mark.parametrize(
    ("run", "why"),
    [
        (_run("", "Invoking function.app.handler\n" + NO_CONNECTION + "\n"), "never reached"),
        (_run("", "END RequestId: x\n"), "no answer"),
        (_run("   \n"), "no answer"),
        (_run('{"errorMessage": "Handler \'x\' missing", "errorType": "Runtime.HandlerNotFound"}'), "HandlerNotFound"),
        (_run("Traceback (most recent call last):"), "not JSON"),
        (_run('{"statusCode": 200, "body": "{}"}', rc=1), "exited 1"),
    ],
)
def test_what_tested_nothing_is_a_failure(run: Invoked, why: str) -> None:
    with pytest.raises(SamLocalFailure, match=why):
        answer(run)


def test_an_answer_is_checked_against_its_expectation() -> None:
    want = EXPECTATIONS["direct_encode.json"]
    good = {"vectors": [[0.1], [0.2]], "dimension": 1, "model": "m", "token_counts": [1, 1], "truncated": [False, False]}
    check_expected(answer(_run(json.dumps(good))), want)
    with pytest.raises(AssertionError):
        check_expected(answer(_run(json.dumps({**good, "vectors": [[0.1]]}))), want)  # one vector short
    error = {"statusCode": 400, "body": json.dumps({"error": "x", "error_type": "validation"})}
    with pytest.raises(AssertionError):
        check_expected(answer(_run(json.dumps(error))), EXPECTATIONS["bad_empty_text.json"])  # wrong error type
    ok = {"statusCode": 400, "body": json.dumps({"error": "x", "error_type": "empty_input"})}
    check_expected(answer(_run(json.dumps(ok))), EXPECTATIONS["bad_empty_text.json"])
