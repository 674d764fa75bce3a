"""Running the SAM CLI the way a user does, and reading what it printed.

``sam local invoke`` exits 0 even when it never reached the function (an engine without a bridge
network: "Timed out while attempting to establish a connection to the container", empty stdout), and
prints an unhandled error as a JSON object on stdout. :func:`answer` turns all of these into
failures, so a check built on it cannot pass on a run that tested nothing. It imports no TensorFlow
(tests/unit checks it on strings).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SAM_VAR = "BERT2VEC_SAM"  # the SAM CLI executable; `make sam-local` sets it
BUILD_DIR = REPO / ".aws-sam" / "build"
BUILT_TEMPLATE = BUILD_DIR / "template.yaml"
NO_CONNECTION = "Timed out while attempting to establish a connection to the container"
# sam local counts the container's start, TensorFlow's import and the model load against the
# function's Timeout (30 s): on a loaded 2-core machine that alone can pass 30 s ("Function timed
# out", no answer). The answers are what these tests check, so the local runs get more time.
LOCAL_TIMEOUT = "Timeout=180"


class SamLocalFailure(AssertionError):
    """What a ``sam local`` run printed instead of a function's answer."""


def sam_executable() -> str:
    return os.environ.get(SAM_VAR, "").strip() or str(REPO / ".cache" / "venv-sam" / "bin" / "sam")


def sam_env(**extra: str) -> dict[str, str]:
    """No telemetry, no real credentials or Region lookups: sam local hands these to the container."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTEST_"))}
    env.update(
        SAM_CLI_TELEMETRY="0", SAM_CLI_DISABLE_VERSION_CHECK="1", AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1", AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
    )  # fmt: skip
    env.update(extra)
    return env


@dataclass
class Invoked:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.stderr.splitlines()[-lines:])


def invoke(function: str, event: Path, *, template: Path = BUILT_TEMPLATE, env_vars: Path | None = None,
           extra: tuple[str, ...] = (), timeout: float = 300) -> Invoked:  # fmt: skip
    argv = [sam_executable(), "local", "invoke", function, "--template", str(template), "--event", str(event),
            "--skip-pull-image", "--parameter-overrides", LOCAL_TIMEOUT,
            *(["--env-vars", str(env_vars)] if env_vars else []), *extra]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=REPO, env=sam_env())
    return Invoked(argv, proc.returncode, proc.stdout, proc.stderr)


def answer(run: Invoked) -> Any:
    """The function's answer (its JSON), or :class:`SamLocalFailure` saying why there is none."""
    if NO_CONNECTION in run.stderr or NO_CONNECTION in run.stdout:
        raise SamLocalFailure(f"sam local never reached the function ({NO_CONNECTION!r}):\n{run.tail()}")
    if run.returncode != 0:
        raise SamLocalFailure(f"sam local exited {run.returncode}:\n{run.tail()}")
    text = run.stdout.strip()
    if not text:
        raise SamLocalFailure(f"sam local printed no answer (exit {run.returncode}):\n{run.tail()}")
    # The answer is the last line of stdout; anything before it is the function's own output.
    last = text.splitlines()[-1]
    try:
        out = json.loads(last)
    except json.JSONDecodeError as exc:
        raise SamLocalFailure(f"sam local printed something that is not JSON: {last[:300]!r}") from exc
    if isinstance(out, dict) and "errorType" in out and "statusCode" not in out:
        raise SamLocalFailure(f"the function failed: {out.get('errorType')}: {out.get('errorMessage')}")
    return out


def http_answer(out: Any) -> tuple[int, Any]:
    """(status, decoded body) of an answer, whichever front door's envelope it came in."""
    if not isinstance(out, dict) or "statusCode" not in out:
        return int(out.get("status", 200)) if isinstance(out, dict) else 200, out
    body = base64.b64decode(out["body"]).decode() if out.get("isBase64Encoded") else out["body"]
    return out["statusCode"], json.loads(body)


def check_expected(out: Any, want: dict[str, Any]) -> None:
    """An answer against its line of events/expectations.json: status, keys, vector count, error type."""
    status, body = http_answer(out)
    assert status == want["status"], (status, body)
    if want.get("body_type") == "list":
        assert isinstance(body, list) and all(isinstance(v, list) for v in body), body
    else:
        assert isinstance(body, dict), body
        keys = set(want["keys"])
        assert (set(body) == keys) if want.get("exact_keys") else (keys <= set(body)), sorted(body)
    if "error_type" in want:  # ours: {"error", "error_type"}; OpenAI's: {"error": {"code", ...}}
        error = body.get("error")
        got = error.get("code") if isinstance(error, dict) else body.get("error_type")
        assert got == want["error_type"], body
    if "vectors" in want:
        if isinstance(body, list):
            count = len(body)
        elif "data" in body:
            count = len(body["data"])
        else:
            count = len(body["vectors"])
        assert count == want["vectors"], body


def run_checked(argv: list[str], *, timeout: float, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env or sam_env())
    if proc.returncode != 0:
        raise SamLocalFailure(f"{' '.join(argv[:4])} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc
