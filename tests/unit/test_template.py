"""template.yaml: cfn-lint clean, and wired the way the image, the handler and the auth modes need.

The SAM CLI is optional: when ``sam`` is on PATH or in ``.cache/venv-sam`` (a separate venv, so its
pins never meet the project's), ``sam validate --lint`` runs too, and the template is translated
with SAM's own transform for each AuthMode to check what CloudFormation will really receive.
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
FUNCTION_ENV = {
    "MODEL_DIR",
    "MAX_TEXTS",
    "MAX_TEXT_CHARS",
    "CORS_ORIGINS",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
}


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
# `sam build` fills ImageUri in; stand in for it.
tpl["Resources"]["EncodeFunction"]["Properties"]["ImageUri"] = "123456789012.dkr.ecr.us-east-1.amazonaws.com/bert2vec:test"
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


@pytest.mark.parametrize("auth_mode", ["NONE", "IAM", "API_KEY"])
def test_sam_transform(auth_mode: str) -> None:
    """After SAM's transform, every route on both APIs has its Lambda integration and the auth block."""
    python = _sam_python()
    proc = subprocess.run(
        [str(python), "-c", _TRANSLATE, str(TEMPLATE), f"AuthMode={auth_mode}", "EnableFunctionUrl=true"],
        capture_output=True,
        text=True,
        timeout=300,
        env=_sam_env(),
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
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
