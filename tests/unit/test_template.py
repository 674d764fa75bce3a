"""template.yaml: cfn-lint clean, and wired the way the image, the handlers and the auth modes need.

The SAM CLI is optional: when ``sam`` is on PATH or in ``.cache/venv-sam`` (a separate venv, so its
pins never meet the project's), ``sam validate --lint`` runs too, and the template is translated
with SAM's own transform for each AuthMode and each input-bucket mode to check what CloudFormation
will really receive.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template.yaml"

# The routes every front door serves (function/routes.py ROUTES; kept here so the template is
# checked against the contract even while that module changes).
ROUTES: dict[str, str] = {
    "/encode": "POST",
    "/v1/embeddings": "POST",
    "/embed": "POST",
    "/health": "GET",
    "/model": "GET",
}
ENCODE_HANDLER = "function.app.handler"
BULK_FUNCTIONS = {
    "BulkPlannerFunction": "function.bulk_app.s3_handler",
    "BulkWorkerFunction": "function.bulk_app.sqs_handler",
}
FUNCTION_ENV = {
    "MODEL_DIR",
    "MAX_TEXTS",
    "MAX_TEXT_CHARS",
    "CORS_ORIGINS",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
}
BULK_ENV = {
    "MODEL_DIR",
    "INPUT_PREFIX",
    "OUTPUT_BUCKET",
    "OUTPUT_PREFIX",
    "OUTPUT_FORMAT",
    "SHARD_BYTES",
    "CHUNK_BYTES",
    "SHARD_QUEUE_URL",
    "SHARD_MAX_RECEIVES",
    "OVERLONG",
    "TEXT_FIELD",
    "ID_FIELD",
    "CSV_TEXT_COLUMN",
    "CSV_ID_COLUMN",
    "TIME_MARGIN_MS",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
}
# The input bucket's name / the output bucket's name, as the template spells them everywhere.
INPUT_BUCKET_NAME = {"Fn::If": ["CreateInputBucket", {"Ref": "InputBucket"}, {"Ref": "ExistingInputBucket"}]}
OUTPUT_BUCKET_NAME = {"Fn::If": ["HasOutputBucket", {"Ref": "OutputBucket"}, INPUT_BUCKET_NAME]}
SQS_VISIBILITY_MAX = 43200


def _tool(name: str) -> Path | None:
    """``name`` next to this interpreter, else on PATH."""
    beside = Path(sys.executable).with_name(name)
    if beside.is_file():
        return beside
    found = shutil.which(name)
    return Path(found) if found else None


def _sam() -> Path | None:
    local = REPO / ".cache" / "venv-sam" / "bin" / "sam"
    if local.is_file():
        return local
    found = shutil.which("sam")
    return Path(found) if found else None


def _sam_env() -> dict[str, str]:
    return {
        **os.environ,
        "SAM_CLI_TELEMETRY": "0",
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
    }


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    from cfnlint.decode import decode

    tpl, matches = decode(str(TEMPLATE))
    assert not matches, [str(m) for m in matches]
    assert isinstance(tpl, dict)
    return tpl


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    return template["Resources"]


@pytest.fixture(scope="module")
def function(resources: dict[str, Any]) -> dict[str, Any]:
    return resources["EncodeFunction"]


def _events(function: dict[str, Any], kind: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(path, METHOD) -> event properties, for the function's events of one type."""
    out = {}
    for event in function["Properties"]["Events"].values():
        if event["Type"] == kind:
            props = event["Properties"]
            out[(props["Path"], props["Method"].upper())] = props
    return out


# ---------------------------------------------------------------------------------------------
# linters
# ---------------------------------------------------------------------------------------------


def test_cfn_lint_clean() -> None:
    """No cfn-lint errors, warnings or informational findings (cfn-lint reads SAM natively)."""
    exe = _tool("cfn-lint")
    assert exe is not None, "cfn-lint is a dev dependency; install the project with .[dev]"
    proc = subprocess.run(
        [str(exe), "--format", "parseable", str(TEMPLATE)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


def test_sam_validate_lint() -> None:
    sam = _sam()
    if sam is None:
        pytest.skip("SAM CLI not installed (pip install aws-sam-cli into .cache/venv-sam to run this)")
    proc = subprocess.run(
        [str(sam), "validate", "--lint", "--template-file", str(TEMPLATE)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=_sam_env(),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "is a valid SAM Template" in proc.stdout + proc.stderr


# ---------------------------------------------------------------------------------------------
# shape
# ---------------------------------------------------------------------------------------------


def test_header_points_at_issue_4() -> None:
    head = TEMPLATE.read_text(encoding="utf-8").split("Resources:", 1)[0]
    assert "Issue #4" in head and "S3" in head and "SQS" in head and "worker" in head


def test_transform_and_parameters(template: dict[str, Any]) -> None:
    assert template["Transform"] == "AWS::Serverless-2016-10-31"
    params = template["Parameters"]
    assert params["BertModel"]["Default"] == ""
    assert "small_bert_uncased" in params["BertModel"]["Description"]
    assert "bert_uncased_L-12_H-768_A-12" in params["BertModel"]["Description"]
    assert (params["MemorySize"]["Default"], params["MemorySize"]["MinValue"], params["MemorySize"]["MaxValue"]) == (
        2048,
        128,
        10240,
    )
    assert params["Timeout"]["Default"] == 30
    assert params["MaxTexts"]["Default"] == 256
    assert params["MaxTextChars"]["Default"] == 100000
    assert params["LogLevel"]["Default"] == "INFO"
    assert list(params["LogLevel"]["AllowedValues"]) == ["DEBUG", "INFO", "WARNING", "ERROR"]
    assert params["AuthMode"]["Default"] == "NONE"
    assert list(params["AuthMode"]["AllowedValues"]) == ["NONE", "IAM", "API_KEY"]
    assert "fall back to IAM" in " ".join(params["AuthMode"]["Description"].split())
    assert params["EnableFunctionUrl"]["Default"] == "false"
    assert sorted(params["EnableFunctionUrl"]["AllowedValues"]) == ["false", "true"]
    assert params["CorsOrigins"]["Default"] == ""


def test_function_is_the_container_image(function: dict[str, Any]) -> None:
    assert function["Type"] == "AWS::Serverless::Function"
    props = function["Properties"]
    assert props["PackageType"] == "Image"
    assert list(props["Architectures"]) == ["x86_64"]
    assert props["MemorySize"] == {"Ref": "MemorySize"}
    assert props["Timeout"] == {"Ref": "Timeout"}
    meta = function["Metadata"]
    assert meta["Dockerfile"] == "function/Dockerfile"
    assert meta["DockerContext"] == "."
    assert meta["DockerTag"]
    assert meta["DockerBuildArgs"]["BERT_MODEL"] == {"Ref": "BertModel"}
    assert (REPO / meta["DockerContext"] / meta["Dockerfile"]).is_file()


def test_image_command_matches_dockerfile(function: dict[str, Any]) -> None:
    """ImageConfig.Command (set for when issue #4's worker shares the image) = the Dockerfile's CMD."""
    dockerfile = (REPO / function["Metadata"]["Dockerfile"]).read_text(encoding="utf-8")
    cmds = re.findall(r"^CMD\s+(\[.*\])\s*$", dockerfile, flags=re.MULTILINE)
    assert cmds, "function/Dockerfile has no exec-form CMD"
    assert json.loads(cmds[-1]) == ["function.app.handler"]
    assert list(function["Properties"]["ImageConfig"]["Command"]) == ["function.app.handler"]


def test_function_environment(function: dict[str, Any]) -> None:
    env = function["Properties"]["Environment"]["Variables"]
    assert set(env) == FUNCTION_ENV
    assert env["MODEL_DIR"] == "/opt/model"
    assert env["MAX_TEXTS"] == {"Ref": "MaxTexts"}
    assert env["MAX_TEXT_CHARS"] == {"Ref": "MaxTextChars"}
    assert env["CORS_ORIGINS"] == {"Ref": "CorsOrigins"}
    assert env["POWERTOOLS_LOG_LEVEL"] == {"Ref": "LogLevel"}


@pytest.mark.parametrize(("path", "method"), ROUTES.items())
def test_route_on_rest_api(function: dict[str, Any], path: str, method: str) -> None:
    event = _events(function, "Api").get((path, method))
    assert event is not None, f"no REST API event for {method} {path}"
    assert event["RestApiId"] == {"Ref": "RestApi"}


@pytest.mark.parametrize(("path", "method"), ROUTES.items())
def test_route_on_http_api(function: dict[str, Any], path: str, method: str) -> None:
    event = _events(function, "HttpApi").get((path, method))
    assert event is not None, f"no HTTP API event for {method} {path}"
    assert event["ApiId"] == {"Ref": "HttpApi"}


def test_no_stray_routes(function: dict[str, Any]) -> None:
    """Only the contract's routes (plus the REST API's CORS preflights for the POST routes)."""
    preflights = {(p, "OPTIONS") for p, m in ROUTES.items() if m == "POST"}
    assert set(_events(function, "Api")) == set(ROUTES.items()) | preflights
    assert set(_events(function, "HttpApi")) == set(ROUTES.items())


def test_routes_match_the_handler() -> None:
    routes = pytest.importorskip("function.routes")
    if not hasattr(routes, "ROUTES"):
        pytest.skip("function.routes has no ROUTES table")
    assert routes.ROUTES == ROUTES


# ---------------------------------------------------------------------------------------------
# auth
# ---------------------------------------------------------------------------------------------


def test_auth_conditions(template: dict[str, Any]) -> None:
    cond = template["Conditions"]
    assert cond["IsAuthNone"] == {"Fn::Equals": [{"Ref": "AuthMode"}, "NONE"]}
    assert cond["IsAuthIam"] == {"Fn::Equals": [{"Ref": "AuthMode"}, "IAM"]}
    assert cond["IsAuthApiKey"] == {"Fn::Equals": [{"Ref": "AuthMode"}, "API_KEY"]}
    assert cond["UseSigV4OnHttp"] == {"Fn::Not": [{"Condition": "IsAuthNone"}]}
    assert cond["CreateFunctionUrl"] == {"Fn::Equals": [{"Ref": "EnableFunctionUrl"}, "true"]}
    assert cond["HasCorsOrigins"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "CorsOrigins"}, ""]}]}


def test_every_rest_route_has_auth(resources: dict[str, Any]) -> None:
    """API key when API_KEY, SigV4 when IAM, nothing when NONE - on every route, none forgotten."""
    props = resources["RestApi"]["Properties"]
    assert props["MergeDefinitions"] is True  # the events' integrations merge into this body
    assert props["AlwaysDeploy"] is True  # an AuthMode change must reach the stage
    body = props["DefinitionBody"]
    assert body["securityDefinitions"]["api_key"] == {"type": "apiKey", "name": "x-api-key", "in": "header"}
    assert body["securityDefinitions"]["AWS_IAM"]["x-amazon-apigateway-authtype"] == "awsSigv4"
    expected = {
        "Fn::If": [
            "IsAuthApiKey",
            [{"api_key": []}],
            {"Fn::If": ["IsAuthIam", [{"AWS_IAM": []}], {"Ref": "AWS::NoValue"}]},
        ]
    }
    assert {(p, m.upper()) for p, item in body["paths"].items() for m in item} == set(ROUTES.items())
    for path, method in ROUTES.items():
        assert body["paths"][path][method.lower()]["security"] == expected, path


def test_every_http_route_has_auth(resources: dict[str, Any]) -> None:
    body = resources["HttpApi"]["Properties"]["DefinitionBody"]
    assert body["components"]["securitySchemes"]["AWS_IAM"]["x-amazon-apigateway-authtype"] == "awsSigv4"
    expected = {"Fn::If": ["UseSigV4OnHttp", [{"AWS_IAM": []}], {"Ref": "AWS::NoValue"}]}
    assert {(p, m.upper()) for p, item in body["paths"].items() for m in item} == set(ROUTES.items())
    for path, method in ROUTES.items():
        assert body["paths"][path][method.lower()]["security"] == expected, path


def test_http_api_cors_from_parameter(resources: dict[str, Any]) -> None:
    cors = resources["HttpApi"]["Properties"]["DefinitionBody"]["x-amazon-apigateway-cors"]
    cond, on, off = cors["Fn::If"]
    assert cond == "HasCorsOrigins"
    assert on["allowOrigins"] == {"Fn::Split": [",", {"Ref": "CorsOrigins"}]}
    assert {"GET", "POST"} <= set(on["allowMethods"])
    assert off == {"Ref": "AWS::NoValue"}


def test_api_key_resources_only_in_api_key_mode(resources: dict[str, Any]) -> None:
    for name, kind in [
        ("RestApiKey", "AWS::ApiGateway::ApiKey"),
        ("RestApiUsagePlan", "AWS::ApiGateway::UsagePlan"),
        ("RestApiUsagePlanKey", "AWS::ApiGateway::UsagePlanKey"),
    ]:
        assert resources[name]["Type"] == kind
        assert resources[name]["Condition"] == "IsAuthApiKey"
    stage = resources["RestApiUsagePlan"]["Properties"]["ApiStages"][0]
    assert stage == {"ApiId": {"Ref": "RestApi"}, "Stage": {"Ref": "RestApi.Stage"}}


def test_function_url_is_conditional(resources: dict[str, Any]) -> None:
    url = resources["EncodeFunctionUrl"]
    assert url["Type"] == "AWS::Lambda::Url"
    assert url["Condition"] == "CreateFunctionUrl"
    assert url["Properties"]["AuthType"] == {"Fn::If": ["IsAuthNone", "NONE", "AWS_IAM"]}
    assert url["Properties"]["TargetFunctionArn"] == {"Ref": "EncodeFunction"}
    public = [r for r in resources.values() if r.get("Condition") == "CreatePublicFunctionUrl"]
    actions = sorted(r["Properties"]["Action"] for r in public)
    assert actions == ["lambda:InvokeFunction", "lambda:InvokeFunctionUrl"]
    assert all(r["Properties"]["Principal"] == "*" for r in public)


def test_outputs(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    assert {"RestApiUrl", "HttpApiUrl", "FunctionUrl", "EncodeFunctionArn"} <= set(outputs)
    assert outputs["FunctionUrl"]["Condition"] == "CreateFunctionUrl"
    assert outputs["FunctionUrl"]["Value"] == {"Fn::GetAtt": ["EncodeFunctionUrl", "FunctionUrl"]}
    assert outputs["EncodeFunctionArn"]["Value"] == {"Fn::GetAtt": ["EncodeFunction", "Arn"]}
    assert "${RestApi}" in outputs["RestApiUrl"]["Value"]["Fn::Sub"]
    assert "${HttpApi}" in outputs["HttpApiUrl"]["Value"]["Fn::Sub"]


# ---------------------------------------------------------------------------------------------
# SAM's own transform (needs the SAM CLI's venv)
# ---------------------------------------------------------------------------------------------

_TRANSLATE = r"""
import json, sys
from samtranslator.translator.transform import transform
from samcli.yamlhelper import yaml_parse

class NoManagedPolicies:
    def load(self):
        return {}

tpl = yaml_parse(open(sys.argv[1], encoding="utf-8").read())
# `sam build` fills ImageUri in (the one image, for every image function); stand in for it.
for res in tpl["Resources"].values():
    if res["Type"] == "AWS::Serverless::Function" and res["Properties"].get("PackageType") == "Image":
        res["Properties"]["ImageUri"] = "123456789012.dkr.ecr.us-east-1.amazonaws.com/bert2vec:test"
params = dict(a.split("=", 1) for a in sys.argv[2:])
print(json.dumps(transform(tpl, params, NoManagedPolicies())))
"""


def _sam_python() -> Path:
    sam = _sam()
    if sam is None:
        pytest.skip("SAM CLI not installed (pip install aws-sam-cli into .cache/venv-sam to run this)")
    python = sam.with_name("python")
    probe = subprocess.run([str(python), "-c", "import samtranslator, samcli"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"no Python with samtranslator beside {sam}")
    return python


def _translate(*params: str) -> dict[str, Any]:
    """The template after SAM's transform, with these ``Name=value`` parameters."""
    python = _sam_python()
    proc = subprocess.run(
        [str(python), "-c", _TRANSLATE, str(TEMPLATE), *params],
        capture_output=True,
        text=True,
        timeout=300,
        env=_sam_env(),
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert isinstance(out, dict)
    return out


@pytest.mark.parametrize("auth_mode", ["NONE", "IAM", "API_KEY"])
def test_sam_transform(auth_mode: str) -> None:
    """After SAM's transform, every route on both APIs has its Lambda integration and the auth block."""
    out = _translate(f"AuthMode={auth_mode}", "EnableFunctionUrl=true")
    res = out["Resources"]
    assert res["EncodeFunction"]["Type"] == "AWS::Lambda::Function"
    for api, kind in [("RestApi", "AWS::ApiGateway::RestApi"), ("HttpApi", "AWS::ApiGatewayV2::Api")]:
        assert res[api]["Type"] == kind
        paths = res[api]["Properties"]["Body"]["paths"]
        for path, method in ROUTES.items():
            op = paths[path][method.lower()]
            assert op["x-amazon-apigateway-integration"]["type"] == "aws_proxy", (api, path)
            assert "Fn::If" in op["security"], (api, path)
    for path, method in ROUTES.items():
        if method == "POST":  # the preflight routes stay open
            assert "security" not in res["RestApi"]["Properties"]["Body"]["paths"][path]["options"]
    deployments = [r for r in res.values() if r["Type"] == "AWS::ApiGateway::Deployment"]
    assert len(deployments) == 1
    plan = res["RestApiUsagePlan"]
    assert plan["Condition"] == "IsAuthApiKey"
    assert plan["Properties"]["ApiStages"][0]["Stage"] == {"Ref": "RestApiprodStage"}
    assert "RestApiprodStage" in res
    permissions = [r for r in res.values() if r["Type"] == "AWS::Lambda::Permission"]
    assert len(permissions) >= 8 + 5  # one per REST event, one per HTTP API event


# ---------------------------------------------------------------------------------------------
# bulk path (issue #4): input bucket -> EventBridge -> planner -> SQS -> worker
# ---------------------------------------------------------------------------------------------


def _sub_text(value: Any) -> str:
    """The template string of a Fn::Sub (short or list form); fails on anything else."""
    assert isinstance(value, dict) and set(value) == {"Fn::Sub"}, value
    sub = value["Fn::Sub"]
    return sub if isinstance(sub, str) else sub[0]


def _sub_vars(value: Any) -> dict[str, Any]:
    sub = value["Fn::Sub"]
    return {} if isinstance(sub, str) else sub[1]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    doc = resources["BulkAccessPolicy"]["Properties"]["PolicyDocument"]
    return {st["Sid"]: st for st in doc["Statement"]}


def test_bulk_parameters(template: dict[str, Any]) -> None:
    params = template["Parameters"]
    assert params["ExistingInputBucket"]["Default"] == ""
    assert params["InputPrefix"]["Default"] == "incoming/"
    assert params["OutputPrefix"]["Default"] == "vectors/"
    assert params["OutputBucket"]["Default"] == ""
    assert params["OutputFormat"]["Default"] == "jsonl"
    assert sorted(params["OutputFormat"]["AllowedValues"]) == ["jsonl", "npy", "parquet"]
    assert params["ShardBytes"]["Default"] == 33554432
    assert params["ChunkBytes"]["Default"] == 8388608
    assert params["ShardBytes"]["Default"] % params["ChunkBytes"]["Default"] == 0
    assert params["Overlong"]["Default"] == "truncate"
    assert sorted(params["Overlong"]["AllowedValues"]) == ["reject", "truncate"]
    assert params["BulkMemorySize"]["Default"] == 3008
    assert params["BulkTimeout"]["Default"] == 900
    assert params["BulkTimeout"]["MaxValue"] == 900
    assert params["WorkerMaxConcurrency"]["Default"] == 10
    assert params["WorkerMaxConcurrency"]["MinValue"] == 2  # the least SQS's MaximumConcurrency takes
    assert params["ShardMaxReceives"]["Default"] == 3
    assert "EventBridge" in params["ExistingInputBucket"]["Description"]
    groups = template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    grouped = {name for group in groups for name in group["Parameters"]}
    assert set(params) == grouped  # every parameter is shown in the console's groups


@pytest.mark.parametrize("name", ["InputPrefix", "OutputPrefix"])
def test_prefix_pattern(template: dict[str, Any], name: str) -> None:
    """Non-empty, ends in "/", and free of IAM wildcards/variables (the prefixes go into ARNs)."""
    pattern = re.compile(template["Parameters"][name]["AllowedPattern"])
    for good in ["incoming/", "vectors/", "a/b c/", "date=2025-11-25/", "café/"]:
        assert pattern.fullmatch(good), good
    for bad in ["", "incoming", "/incoming/", "in*/", "in?/", "${aws:username}/"]:
        assert not pattern.fullmatch(bad), bad


def test_prefixes_must_differ(template: dict[str, Any]) -> None:
    params = template["Parameters"]
    inp, out = params["InputPrefix"]["Default"], params["OutputPrefix"]["Default"]
    assert not out.startswith(inp) and not inp.startswith(out)
    assertion = template["Rules"]["DistinctPrefixes"]["Assertions"][0]["Assert"]
    assert assertion == {"Fn::Not": [{"Fn::Equals": [{"Ref": "InputPrefix"}, {"Ref": "OutputPrefix"}]}]}


def test_bulk_conditions(template: dict[str, Any]) -> None:
    cond = template["Conditions"]
    assert cond["CreateInputBucket"] == {"Fn::Equals": [{"Ref": "ExistingInputBucket"}, ""]}
    assert cond["HasOutputBucket"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "OutputBucket"}, ""]}]}


def test_input_bucket(resources: dict[str, Any]) -> None:
    bucket = resources["InputBucket"]
    assert bucket["Type"] == "AWS::S3::Bucket"
    assert bucket["Condition"] == "CreateInputBucket"
    props = bucket["Properties"]
    # The created bucket sends its events to EventBridge, where the planner's rule picks them up.
    assert props["NotificationConfiguration"] == {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}
    assert all(props["PublicAccessBlockConfiguration"].values())
    policy = resources["InputBucketPolicy"]
    assert policy["Condition"] == "CreateInputBucket"
    deny = policy["Properties"]["PolicyDocument"]["Statement"][0]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


@pytest.mark.parametrize(("name", "command"), BULK_FUNCTIONS.items())
def test_bulk_function_is_the_same_image(resources: dict[str, Any], name: str, command: str) -> None:
    """Same Metadata as EncodeFunction (so `sam build` builds one image); its own Command."""
    fn = resources[name]
    assert fn["Type"] == "AWS::Serverless::Function"
    props = fn["Properties"]
    assert props["PackageType"] == "Image"
    assert props["Architectures"] == resources["EncodeFunction"]["Properties"]["Architectures"]
    assert list(props["ImageConfig"]["Command"]) == [command]
    assert fn["Metadata"] == resources["EncodeFunction"]["Metadata"]
    assert props["MemorySize"] == {"Ref": "BulkMemorySize"}
    assert props["Timeout"] == {"Ref": "BulkTimeout"}
    assert "CodeUri" not in props and "Handler" not in props and "Runtime" not in props


def test_encode_function_keeps_its_command(resources: dict[str, Any]) -> None:
    commands = {
        name: res["Properties"]["ImageConfig"]["Command"][0]
        for name, res in resources.items()
        if res["Type"] == "AWS::Serverless::Function"
    }
    assert commands == {"EncodeFunction": ENCODE_HANDLER, **BULK_FUNCTIONS}


@pytest.mark.parametrize("name", BULK_FUNCTIONS)
def test_bulk_function_environment(resources: dict[str, Any], name: str) -> None:
    env = resources[name]["Properties"]["Environment"]["Variables"]
    assert set(env) == BULK_ENV
    assert env["MODEL_DIR"] == "/opt/model"
    assert env["INPUT_PREFIX"] == {"Ref": "InputPrefix"}
    assert env["OUTPUT_BUCKET"] == OUTPUT_BUCKET_NAME
    assert env["OUTPUT_PREFIX"] == {"Ref": "OutputPrefix"}
    assert env["OUTPUT_FORMAT"] == {"Ref": "OutputFormat"}
    assert env["SHARD_BYTES"] == {"Ref": "ShardBytes"}
    assert env["CHUNK_BYTES"] == {"Ref": "ChunkBytes"}
    assert env["SHARD_QUEUE_URL"] == {"Ref": "ShardQueue"}
    assert env["SHARD_MAX_RECEIVES"] == {"Ref": "ShardMaxReceives"}
    assert env["OVERLONG"] == {"Ref": "Overlong"}
    assert (env["TEXT_FIELD"], env["ID_FIELD"]) == ("text", "id")
    assert (env["CSV_TEXT_COLUMN"], env["CSV_ID_COLUMN"]) == ("text", "id")
    assert str(env["TIME_MARGIN_MS"]) == "30000"
    assert env["POWERTOOLS_LOG_LEVEL"] == {"Ref": "LogLevel"}
    encode_env = resources["EncodeFunction"]["Properties"]["Environment"]["Variables"]
    for var in ("POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"):
        assert env[var] == encode_env[var]


def test_shard_queue_and_dead_letter_queue(template: dict[str, Any], resources: dict[str, Any]) -> None:
    queue = resources["ShardQueue"]
    dlq = resources["ShardDeadLetterQueue"]
    assert queue["Type"] == dlq["Type"] == "AWS::SQS::Queue"
    redrive = queue["Properties"]["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["ShardDeadLetterQueue", "Arn"]}
    # One parameter drives both the redrive and the worker's view of the last attempt.
    assert redrive["maxReceiveCount"] == {"Ref": "ShardMaxReceives"}
    env = resources["BulkWorkerFunction"]["Properties"]["Environment"]["Variables"]
    assert env["SHARD_MAX_RECEIVES"] == redrive["maxReceiveCount"]
    assert dlq["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert queue["Properties"]["MessageRetentionPeriod"] < dlq["Properties"]["MessageRetentionPeriod"]


def test_visibility_timeout_covers_six_function_timeouts(template: dict[str, Any], resources: dict[str, Any]) -> None:
    """AWS: a Lambda event source queue's visibility timeout >= 6 x the function timeout (SQS cap 43200)."""
    visibility = resources["ShardQueue"]["Properties"]["VisibilityTimeout"]
    assert isinstance(visibility, int)
    timeout = template["Parameters"]["BulkTimeout"]
    for value in (timeout["Default"], timeout["MaxValue"]):  # every allowed BulkTimeout is covered
        assert visibility >= min(6 * value, SQS_VISIBILITY_MAX)
    assert visibility <= SQS_VISIBILITY_MAX


def test_worker_consumes_the_shard_queue(resources: dict[str, Any]) -> None:
    events = resources["BulkWorkerFunction"]["Properties"]["Events"]
    assert [e["Type"] for e in events.values()] == ["SQS"]
    props = next(iter(events.values()))["Properties"]
    assert props["Queue"] == {"Fn::GetAtt": ["ShardQueue", "Arn"]}
    assert props["BatchSize"] == 1
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "WorkerMaxConcurrency"}}


def test_planner_trigger_filters_on_input_prefix(resources: dict[str, Any]) -> None:
    """One EventBridge rule for both bucket modes: aws.s3 Object Created, the bucket, keys under InputPrefix."""
    events = resources["BulkPlannerFunction"]["Properties"]["Events"]
    assert [e["Type"] for e in events.values()] == ["EventBridgeRule"]
    pattern = next(iter(events.values()))["Properties"]["Pattern"]
    assert pattern["source"] == ["aws.s3"]
    assert pattern["detail-type"] == ["Object Created"]
    assert pattern["detail"]["bucket"]["name"] == [INPUT_BUCKET_NAME]
    assert pattern["detail"]["object"]["key"] == [{"prefix": {"Ref": "InputPrefix"}}]
    # No S3-notification trigger and no other event source anywhere for the planner.
    assert not any(
        e["Type"] == "S3" for r in resources.values() for e in r.get("Properties", {}).get("Events", {}).values()
    )


def test_trigger_pattern_matches_the_events(resources: dict[str, Any], template: dict[str, Any]) -> None:
    """With the defaults, the rule takes events/eventbridge_object_created.json and not an output key."""
    events = resources["BulkPlannerFunction"]["Properties"]["Events"]
    pattern = next(iter(events.values()))["Properties"]["Pattern"]
    prefix = template["Parameters"]["InputPrefix"]["Default"]
    output_prefix = template["Parameters"]["OutputPrefix"]["Default"]
    event = json.loads((REPO / "events" / "eventbridge_object_created.json").read_text(encoding="utf-8"))
    assert event["source"] in pattern["source"] and event["detail-type"] in pattern["detail-type"]
    assert event["detail"]["object"]["key"].startswith(prefix)
    assert not f"{output_prefix}my docs/café notes.jsonl".startswith(prefix)


def test_bulk_iam_is_least_privilege(resources: dict[str, Any]) -> None:
    statements = _statements(resources)
    assert set(statements) == {"ReadInputPrefix", "ReadWriteOutputPrefix", "ListOutputPrefix", "SendShards"}
    for sid, st in statements.items():
        assert st["Effect"] == "Allow", sid
        for resource in _as_list(st["Resource"]):
            assert resource != "*", sid
            if isinstance(resource, dict) and "Fn::Sub" in resource:
                text = _sub_text(resource)
                assert not text.endswith(":::*") and "${Bucket}*" not in text, (sid, text)
    read = statements["ReadInputPrefix"]
    assert _as_list(read["Action"]) == ["s3:GetObject"]
    assert _sub_text(read["Resource"]) == "arn:${AWS::Partition}:s3:::${Bucket}/${InputPrefix}*"
    assert _sub_vars(read["Resource"]) == {"Bucket": INPUT_BUCKET_NAME}
    write = statements["ReadWriteOutputPrefix"]
    assert {"s3:PutObject", "s3:GetObject"} <= set(_as_list(write["Action"]))
    assert set(_as_list(write["Action"])) <= {"s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"}
    assert _sub_text(write["Resource"]) == "arn:${AWS::Partition}:s3:::${Bucket}/${OutputPrefix}*"
    assert _sub_vars(write["Resource"]) == {"Bucket": OUTPUT_BUCKET_NAME}
    listing = statements["ListOutputPrefix"]
    assert _as_list(listing["Action"]) == ["s3:ListBucket"]
    assert _sub_text(listing["Resource"]) == "arn:${AWS::Partition}:s3:::${Bucket}"
    assert _sub_vars(listing["Resource"]) == {"Bucket": OUTPUT_BUCKET_NAME}
    assert listing["Condition"] == {"StringLike": {"s3:prefix": {"Fn::Sub": "${OutputPrefix}*"}}}
    send = statements["SendShards"]
    assert _as_list(send["Action"]) == ["sqs:SendMessage"]
    assert send["Resource"] == {"Fn::GetAtt": ["ShardQueue", "Arn"]}
    # No statement grants anything on a whole bucket's objects or on other queues.
    granted = {a for st in statements.values() for a in _as_list(st["Action"])}
    assert not any(a.endswith("*") for a in granted)
    assert "s3:DeleteObject" not in granted


@pytest.mark.parametrize("name", BULK_FUNCTIONS)
def test_bulk_functions_use_only_the_bulk_policy(resources: dict[str, Any], name: str) -> None:
    """Planner and worker get exactly the scoped policy (the worker's SQS poller policy comes from SAM)."""
    props = resources[name]["Properties"]
    assert props["Policies"] == [{"Ref": "BulkAccessPolicy"}]
    assert "Role" not in props


def test_bulk_log_groups(resources: dict[str, Any]) -> None:
    for name in BULK_FUNCTIONS:
        group = resources[f"{name}LogGroup"]
        assert group["Type"] == "AWS::Logs::LogGroup"
        assert group["Properties"]["LogGroupName"] == {"Fn::Sub": f"/aws/lambda/${{{name}}}"}


def test_bulk_outputs(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    assert outputs["InputBucketName"]["Value"] == INPUT_BUCKET_NAME
    assert outputs["InputPrefix"]["Value"] == {"Ref": "InputPrefix"}
    location = outputs["OutputLocation"]["Value"]
    assert _sub_text(location) == "s3://${Bucket}/${OutputPrefix}"
    assert _sub_vars(location) == {"Bucket": OUTPUT_BUCKET_NAME}
    assert outputs["ShardQueueUrl"]["Value"] == {"Ref": "ShardQueue"}
    assert outputs["DeadLetterQueueUrl"]["Value"] == {"Ref": "ShardDeadLetterQueue"}
    assert outputs["BulkPlannerFunctionArn"]["Value"] == {"Fn::GetAtt": ["BulkPlannerFunction", "Arn"]}
    assert outputs["BulkWorkerFunctionArn"]["Value"] == {"Fn::GetAtt": ["BulkWorkerFunction", "Arn"]}


@pytest.mark.parametrize("existing_bucket", ["", "bert2vec-existing-input"])
def test_sam_transform_bulk(existing_bucket: str) -> None:
    """Both input-bucket modes translate to: the rule, its invoke permission, the SQS mapping, the roles."""
    out = _translate(f"ExistingInputBucket={existing_bucket}")
    res = out["Resources"]
    assert out["Rules"]["DistinctPrefixes"]
    assert res["InputBucket"]["Condition"] == "CreateInputBucket"  # CloudFormation drops it for an existing bucket
    for name, command in BULK_FUNCTIONS.items():
        fn = res[name]
        assert fn["Type"] == "AWS::Lambda::Function"
        assert fn["Properties"]["ImageConfig"]["Command"] == [command]
        role = res[fn["Properties"]["Role"]["Fn::GetAtt"][0]]
        assert {"Ref": "BulkAccessPolicy"} in role["Properties"]["ManagedPolicyArns"]
        assert "Policies" not in role["Properties"]  # nothing inline besides what we scoped
    rules = [r for r in res.values() if r["Type"] == "AWS::Events::Rule"]
    assert len(rules) == 1
    rule = rules[0]["Properties"]
    assert rule["EventPattern"]["detail"]["object"]["key"] == [{"prefix": {"Ref": "InputPrefix"}}]
    assert rule["EventPattern"]["detail"]["bucket"]["name"] == [INPUT_BUCKET_NAME]
    assert rule["Targets"][0]["Arn"] == {"Fn::GetAtt": ["BulkPlannerFunction", "Arn"]}
    invoke = [
        r["Properties"]
        for r in res.values()
        if r["Type"] == "AWS::Lambda::Permission" and r["Properties"]["FunctionName"] == {"Ref": "BulkPlannerFunction"}
    ]
    assert [p["Principal"] for p in invoke] == ["events.amazonaws.com"]
    mappings = [r["Properties"] for r in res.values() if r["Type"] == "AWS::Lambda::EventSourceMapping"]
    assert len(mappings) == 1
    mapping = mappings[0]
    assert mapping["FunctionName"] == {"Ref": "BulkWorkerFunction"}
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["ShardQueue", "Arn"]}
    assert mapping["BatchSize"] == 1
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "WorkerMaxConcurrency"}}
    assert not [
        r
        for r in res.values()
        if r["Type"] == "AWS::S3::Bucket"
        and "NotificationConfiguration" in r["Properties"]
        and "LambdaConfigurations" in r["Properties"]["NotificationConfiguration"]
    ]


_BUILD_GRAPH = r"""
import sys, tempfile
from samcli.lib.build.app_builder import ApplicationBuilder
from samcli.lib.providers.provider import ResourcesToBuildCollector
from samcli.lib.providers.sam_function_provider import SamFunctionProvider
from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider

stacks, _ = SamLocalStackProvider.get_stacks(sys.argv[1])
functions = ResourcesToBuildCollector()
functions.add_functions(list(SamFunctionProvider(stacks).get_all()))
scratch = tempfile.mkdtemp()
graph = ApplicationBuilder(functions, scratch, ".", scratch)._get_build_graph()
for definition in graph.get_function_build_definitions():
    print(definition.packagetype, ",".join(sorted(f.name for f in definition.functions)))
"""


def test_sam_build_builds_one_image() -> None:
    """`sam build` groups the three image functions into one build definition: one image."""
    python = _sam_python()
    proc = subprocess.run(
        [str(python), "-c", _BUILD_GRAPH, str(TEMPLATE)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=_sam_env(),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["Image", "BulkPlannerFunction,BulkWorkerFunction,EncodeFunction"]
