"""template.yaml invariants: linters clean, handlers and routes real, IAM scoped, failure paths wired.

Fast tier: no TensorFlow. With the SAM CLI in ``.cache/venv-sam`` (or on PATH) the template is also
validated and translated with SAM's own transform; without it those tests skip.
"""

from __future__ import annotations

import ast
import itertools
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
FUNCTIONS = ("EncodeFunction", "BulkPlannerFunction", "BulkWorkerFunction")
NO_VALUE = {"Ref": "AWS::NoValue"}
SQS_VISIBILITY_MAX = 43200


def _load() -> dict[str, Any]:
    from cfnlint.decode import decode

    tpl, matches = decode(str(TEMPLATE))
    assert not matches, [str(m) for m in matches]
    return tpl


TPL = _load()
RES, PARAMS = TPL["Resources"], TPL["Parameters"]


def _merge(a: Any, b: Any) -> Any:
    if not (isinstance(a, dict) and isinstance(b, dict)):
        return b
    return {**a, **{k: _merge(a.get(k), v) for k, v in b.items()}}


def props(template: dict[str, Any], name: str) -> dict[str, Any]:
    """A function's properties with the Function Globals merged in (dicts merge, as SAM does)."""
    return _merge(template.get("Globals", {}).get("Function", {}), template["Resources"][name]["Properties"])


def refs(value: Any) -> set[str]:
    """Every name a value refers to: Ref, GetAtt, ${...} in Sub strings, recursively."""
    if isinstance(value, list):
        return set().union(*map(refs, value))
    if not isinstance(value, dict):
        return set()
    found: set[str] = set()
    for k, v in value.items():
        if k == "Ref":
            found.add(v)
        elif k == "Fn::GetAtt":
            found.add(v[0] if isinstance(v, list) else v.split(".")[0])
        elif k == "Fn::Sub":
            text, variables = (v, {}) if isinstance(v, str) else v
            found |= {m.split(".")[0] for m in re.findall(r"\$\{([^}!]+)\}", text)} | refs(variables)
        else:
            found |= refs(v)
    return found


def resolve(value: Any, conditions: dict[str, bool]) -> Any:
    """Apply Fn::If / AWS::NoValue the way CloudFormation does, for the given condition values."""
    if isinstance(value, dict):
        if set(value) == {"Fn::If"}:
            name, yes, no = value["Fn::If"]
            return resolve(yes if conditions[name] else no, conditions)
        out = {k: resolve(v, conditions) for k, v in value.items()}
        return {k: v for k, v in out.items() if v != NO_VALUE}
    if isinstance(value, list):
        return [resolve(v, conditions) for v in value if v != NO_VALUE]
    return value


def evaluator(template: dict[str, Any], **values: str) -> Any:
    """Evaluates condition/rule functions for parameter values (defaults for the rest)."""
    pvals = {k: str(v.get("Default", "")) for k, v in template["Parameters"].items()} | values

    def ev(expr: Any) -> Any:
        if isinstance(expr, dict):
            (fn, arg), = expr.items()
            if fn == "Ref":
                return pvals[arg]
            if fn == "Condition":
                return ev(template["Conditions"][arg])
            if fn == "Fn::Equals":
                return str(ev(arg[0])) == str(ev(arg[1]))
            if fn == "Fn::Not":
                return not ev(arg[0])
            if fn in ("Fn::And", "Fn::Or"):
                return (all if fn == "Fn::And" else any)(ev(a) for a in arg)
            if fn == "Fn::Contains":
                return str(ev(arg[1])) in [str(ev(a)) for a in arg[0]]
            if fn == "Fn::Select":
                items = ev(arg[1])
                assert int(arg[0]) < len(items), "Fn::Select past the end is a template error"
                return items[int(arg[0])]
            if fn == "Fn::Split":
                assert isinstance(arg[0], str), "Fn::Split takes a literal delimiter"
                return str(ev(arg[1])).split(arg[0])
            if fn == "Fn::Sub":
                assert isinstance(arg, str)
                return re.sub(r"\$\{(\w+)\}", lambda m: pvals[m.group(1)], arg)
            raise AssertionError(f"unexpected {fn}")
        return expr

    return ev


def conditions_for(template: dict[str, Any], **values: str) -> dict[str, bool]:
    ev = evaluator(template, **values)
    return {name: ev(expr) for name, expr in template["Conditions"].items()}


def _sam() -> Path | None:
    local = REPO / ".cache" / "venv-sam" / "bin" / "sam"
    found = local if local.is_file() else shutil.which("sam")
    return Path(found) if found else None


def _skip_without_sam(reason: str) -> None:
    """`make test` installs the SAM CLI; only a bare `pytest` may go without it, never CI."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must run the SAM CLI tests: `make test` installs it into .cache/venv-sam)")
    pytest.skip(reason)


def _sam_env() -> dict[str, str]:
    return {**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")}


def test_cfn_lint_clean() -> None:
    exe = Path(sys.executable).with_name("cfn-lint")
    assert exe.is_file(), "cfn-lint is a dev dependency"
    proc = subprocess.run([str(exe), "--format", "parseable", str(TEMPLATE)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


def test_sam_validate_lint() -> None:
    sam = _sam()
    if sam is None:
        _skip_without_sam("SAM CLI not installed (pip install aws-sam-cli into .cache/venv-sam)")
    cmd = [str(sam), "validate", "--lint", "--template-file", str(TEMPLATE)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO, env=_sam_env())
    assert proc.returncode == 0 and "is a valid SAM Template" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def _module_functions(module: str) -> set[str]:
    """Functions the module defines, and those it re-exports from the module that defines them
    (function/app.py is the image's entry point for bert2vec/http/app.py)."""
    tree = ast.parse((REPO / (module.replace(".", "/") + ".py")).read_text(encoding="utf-8"))
    names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    for node in tree.body:
        if module.startswith("function.") and isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {a.name for a in node.names if a.asname is None} & _module_functions(node.module)
    return names


@pytest.mark.parametrize("name", FUNCTIONS)
def test_image_command_is_a_real_handler(name: str) -> None:
    (command,) = props(TPL, name)["ImageConfig"]["Command"]
    module, func = command.rsplit(".", 1)
    assert func in _module_functions(module), command


def test_one_image_with_declared_build_args() -> None:
    """Same Metadata on every function (`sam build` builds one image); each build arg is an ARG;
    the image's default CMD is the encode handler."""
    metas = [RES[name]["Metadata"] for name in FUNCTIONS]
    assert all(m == metas[0] for m in metas)
    dockerfile = (REPO / metas[0]["DockerContext"] / metas[0]["Dockerfile"]).read_text(encoding="utf-8")
    cmd = json.loads(re.findall(r"^CMD\s+(\[.*\])\s*$", dockerfile, flags=re.MULTILINE)[-1])
    assert cmd == props(TPL, "EncodeFunction")["ImageConfig"]["Command"]
    declared = set(re.findall(r"^ARG\s+(\w+)", dockerfile, flags=re.MULTILINE))
    assert set(metas[0]["DockerBuildArgs"]) <= declared
    assert all(set(v) == {"Ref"} for v in metas[0]["DockerBuildArgs"].values())


def _code_strings(root: Path) -> set[str]:
    trees = (ast.parse(path.read_text(encoding="utf-8")) for path in root.rglob("*.py"))
    return {n.value for t in trees for n in ast.walk(t) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def _serving_strings() -> set[str]:
    """String constants of the code the image runs (the serving layers)."""
    return set().union(*(_code_strings(REPO / "bert2vec" / layer) for layer in ("core", "files", "http", "bulk")))


@pytest.mark.parametrize("name", FUNCTIONS)
def test_every_env_var_is_read(name: str) -> None:
    """Each variable the function gets is a string the code (or Powertools, for POWERTOOLS_*, or
    botocore, for AWS_*) uses."""
    import aws_lambda_powertools
    import botocore

    ours = _serving_strings()
    powertools = _code_strings(Path(aws_lambda_powertools.__file__).parent)
    boto = _code_strings(Path(botocore.__file__).parent) if name.startswith("Bulk") else set()
    for var in props(TPL, name)["Environment"]["Variables"]:
        assert var in ours or (var.startswith("POWERTOOLS_") and var in powertools) or (
            var.startswith("AWS_") and var in boto), f"{name}: nothing reads {var}"


@pytest.mark.parametrize("name", ["BulkPlannerFunction", "BulkWorkerFunction"])
def test_endpoint_override_is_declared_empty(name: str) -> None:
    """AWS_ENDPOINT_URL is declared only so `sam local invoke --env-vars` can set it (a local S3/SQS);
    deployed, it is empty, which botocore ignores: AWS's own endpoints."""
    assert props(TPL, name)["Environment"]["Variables"]["AWS_ENDPOINT_URL"] == ""
    assert "AWS_ENDPOINT_URL" not in props(TPL, "EncodeFunction")["Environment"]["Variables"]
    assert "AWS_ENDPOINT_URL" not in TPL["Parameters"] and "EndpointUrl" not in TPL["Parameters"]


def _listed(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v]


def test_bulk_iam_is_scoped() -> None:
    """No wildcard actions or resources; object grants end at a prefix; listing is prefix-conditioned."""
    listed: set[str] = set()
    for st in RES["BulkAccessPolicy"]["Properties"]["PolicyDocument"]["Statement"]:
        if "Fn::If" in st:  # the S3 Vectors grant, only with OutputFormat=s3vectors
            condition, st, otherwise = st["Fn::If"]
            assert condition == "UseVectors" and otherwise == NO_VALUE
            assert sorted(st["Action"]) == ["s3vectors:DeleteVectors", "s3vectors:ListVectors", "s3vectors:PutVectors"]
            assert all(b["Fn::Sub"].endswith("/index/${VectorIndexName}") for b in st["Resource"]["Fn::If"][1:])
            continue
        assert st["Effect"] == "Allow"
        assert not any("*" in a for a in _listed(st["Action"])), st
        for r in _listed(st["Resource"]):
            assert r != "*" and refs(r), st
            if "Fn::Sub" in r:
                text = r["Fn::Sub"] if isinstance(r["Fn::Sub"], str) else r["Fn::Sub"][0]
                assert not text.endswith(":::*") and "${Bucket}*" not in text, text
                if "s3:ListBucket" in _listed(st["Action"]):
                    assert text.endswith(":::${Bucket}"), text
                    (prefix,) = st["Condition"]["StringLike"].values()
                    assert re.fullmatch(r"\$\{\w+Prefix\}\*", prefix["Fn::Sub"]), prefix
                    listed.add(prefix["Fn::Sub"])
                else:
                    assert re.search(r"/\$\{\w+Prefix\}\*$", text), text
    # ListBucket on the input prefix (404 for missing keys) and the output prefix (markers).
    assert listed == {"${InputPrefix}*", "${OutputPrefix}*"}
    for name in ("BulkPlannerFunction", "BulkWorkerFunction"):  # nothing but the scoped policy
        assert RES[name]["Properties"]["Policies"] == [{"Ref": "BulkAccessPolicy"}] and "Role" not in RES[name]["Properties"]


def test_shard_queue_fits_the_worker() -> None:
    """Visibility >= 6 x every allowed worker timeout (AWS's advice); redrive = SHARD_MAX_RECEIVES."""
    visibility = RES["ShardQueue"]["Properties"]["VisibilityTimeout"]
    timeout = props(TPL, "BulkWorkerFunction")["Timeout"]
    assert set(timeout) == {"Ref"}
    assert 6 * int(PARAMS[timeout["Ref"]]["MaxValue"]) <= visibility <= SQS_VISIBILITY_MAX
    redrive = RES["ShardQueue"]["Properties"]["RedrivePolicy"]
    env = props(TPL, "BulkWorkerFunction")["Environment"]["Variables"]
    assert "Ref" in redrive["maxReceiveCount"] and env["SHARD_MAX_RECEIVES"] == redrive["maxReceiveCount"]
    assert refs(redrive["deadLetterTargetArn"]) <= set(RES)


def test_search_and_backfill_grants_are_scoped() -> None:
    (search,) = props(TPL, "EncodeFunction")["Policies"]
    condition, policy, otherwise = search["Fn::If"]
    assert condition == "UseSearch" and otherwise == NO_VALUE
    (st,) = policy["Statement"]
    assert sorted(st["Action"]) == ["s3vectors:GetVectors", "s3vectors:QueryVectors"]
    assert all(b["Fn::Sub"].endswith("/index/${VectorIndexName}") for b in st["Resource"]["Fn::If"][1:])
    role = RES["BatchOperationsRole"]["Properties"]
    (principal,) = [s["Principal"]["Service"] for s in role["AssumeRolePolicyDocument"]["Statement"]]
    assert principal == "batchoperations.s3.amazonaws.com"
    grants = {st["Sid"]: st for st in role["Policies"][0]["PolicyDocument"]["Statement"]}
    assert grants["InvokePlanner"]["Resource"] == {"Ref": "BulkPlannerFunction.Alias"}
    for sid in ("ReadInputObjects", "ManifestsAndReports"):
        assert re.search(r"/\$\{\w+Prefix\}\*$", grants[sid]["Resource"]["Fn::Sub"][0])
    assert not any("*" in a for st in grants.values() for a in _listed(st["Action"]))


def test_worker_hand_off_chains_are_not_cut_by_loop_detection() -> None:
    """Workers re-queue unfinished work on their own queue; the code bounds the chain (MAX_HOPS)."""
    assert props(TPL, "BulkWorkerFunction")["RecursiveLoop"] == "Allow"
    assert "MAX_HOPS" in _serving_strings()


def test_planner_failures_retry_then_dead_letter() -> None:
    cfg = props(TPL, "BulkPlannerFunction")["EventInvokeConfig"]
    assert int(PARAMS[cfg["MaximumRetryAttempts"]["Ref"]]["MaxValue"]) <= 2  # Lambda's limit
    age = PARAMS[cfg["MaximumEventAgeInSeconds"]["Ref"]]
    assert 60 <= int(age["MinValue"]) and int(age["MaxValue"]) <= 21600
    on_failure = cfg["DestinationConfig"]["OnFailure"]
    (queue,) = refs(on_failure["Destination"])
    assert on_failure["Type"] == "SQS" and RES[queue]["Type"] == "AWS::SQS::Queue"


def _alarmed() -> set[tuple[str, str]]:
    out = set()
    for r in RES.values():
        if r["Type"] == "AWS::CloudWatch::Alarm":
            p = r["Properties"]
            assert (p["Threshold"], p["ComparisonOperator"]) == (0, "GreaterThanThreshold")
            assert p["AlarmActions"] == {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], NO_VALUE]}
            for d in p["Dimensions"]:
                out |= {(p["MetricName"], name) for name in refs(d["Value"])}
    return out


def test_every_dead_letter_queue_and_function_has_alarms() -> None:
    dlqs = refs(RES["ShardQueue"]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"])
    dlqs |= refs(props(TPL, "BulkPlannerFunction")["EventInvokeConfig"]["DestinationConfig"])
    alarmed = _alarmed()
    assert {("ApproximateNumberOfMessagesVisible", q) for q in dlqs} <= alarmed
    assert {(m, f) for m in ("Errors", "Throttles") for f in FUNCTIONS} <= alarmed


def test_shard_rule_accepts_exactly_shard_at_least_chunk() -> None:
    """Rules cannot compare numbers: check the enumerated assertions against every allowed pair."""
    assertions = TPL["Rules"]["ShardHoldsWholeChunks"]["Assertions"]
    for shard, chunk in itertools.product(PARAMS["ShardBytes"]["AllowedValues"], PARAMS["ChunkBytes"]["AllowedValues"]):
        ev = evaluator(TPL, ShardBytes=str(shard), ChunkBytes=str(chunk))
        assert all(ev(a["Assert"]) for a in assertions) == (int(shard) >= int(chunk)), (shard, chunk)
    for name in ("ShardBytes", "ChunkBytes"):  # powers of two: every shard is whole chunks
        assert all(int(v) & (int(v) - 1) == 0 for v in PARAMS[name]["AllowedValues"])


def _securities(body: dict[str, Any]) -> dict[tuple[str, str], Any]:
    return {(p, m): op.get("security") for p, ops in body["paths"].items() for m, op in ops.items()}


@pytest.mark.parametrize(("mode", "rest", "http"), [("NONE", None, None), ("IAM", "AWS_IAM", "AWS_IAM"), ("API_KEY", "api_key", "AWS_IAM")])
def test_auth_modes(mode: str, rest: str | None, http: str | None) -> None:
    """NONE leaves no `security` key at all; otherwise every route requires the mode's scheme."""
    conds = conditions_for(TPL, AuthMode=mode)
    for api, scheme, defs in [("RestApi", rest, "securityDefinitions"), ("HttpApi", http, "components")]:
        body = resolve(RES[api]["Properties"]["DefinitionBody"], conds)
        for route, security in _securities(body).items():
            if route[1] == "options":  # CORS preflights: API Gateway's mock, open by design
                assert security is None, (api, route)
                continue
            expected = "AWS_IAM" if route == ("/search", "post") else scheme  # SearchAuth=IAM, the default
            assert security == ([{expected: []}] if expected else None), (api, route)
            if scheme:
                schemes = body[defs] if defs == "securityDefinitions" else body[defs]["securitySchemes"]
                assert scheme in schemes
    url = resolve(RES["EncodeFunctionUrl"]["Properties"], conds)
    assert (url["AuthType"] == "NONE") == (mode == "NONE")
    assert PARAMS["AuthMode"]["Default"] != "NONE" and mode in PARAMS["AuthMode"]["AllowedValues"]


def test_apis_are_throttled() -> None:
    (rest,) = RES["RestApi"]["Properties"]["MethodSettings"]
    assert (rest["ResourcePath"], rest["HttpMethod"]) == ("/*", "*")
    http = RES["HttpApi"]["Properties"]["DefaultRouteSettings"]
    plan = RES["RestApiUsagePlan"]["Properties"]
    for setting in (rest, http):
        assert setting["ThrottlingRateLimit"] == plan["Throttle"]["RateLimit"]
        assert setting["ThrottlingBurstLimit"] == plan["Throttle"]["BurstLimit"]
    assert plan["Quota"]["Period"] == "DAY" and "Ref" in plan["Quota"]["Limit"]
    for p in refs([rest, http, plan["Throttle"], plan["Quota"]]):
        assert int(PARAMS[p]["MinValue"]) >= 1, f"{p} can be 0 (= no requests) or unlimited"


@pytest.mark.parametrize("name", ["EncodeFunction", "BulkPlannerFunction"])
def test_reserved_concurrency_zero_means_unreserved(name: str) -> None:
    value = props(TPL, name)["ReservedConcurrentExecutions"]
    cond, on, off = value["Fn::If"]
    assert off == NO_VALUE  # Lambda reads a reservation of 0 as "never run"
    param = on["Ref"]
    for v, expected in (("0", False), ("5", True)):
        assert conditions_for(TPL, **{param: v})[cond] is expected


@pytest.mark.parametrize("name", FUNCTIONS)
def test_snapstart_constraints(name: str) -> None:
    p = props(TPL, name)
    assert p["AutoPublishAlias"], "every event source must invoke the published alias"
    assert p["SnapStart"]["ApplyOn"]["Fn::If"][1:] == ["PublishedVersions", "None"]
    assert int(p.get("EphemeralStorage", {}).get("Size", 512)) <= 512
    assert "ProvisionedConcurrencyConfig" not in p and "FileSystemConfigs" not in p


def _worst_case_len(name: str) -> int:
    p = PARAMS[name]
    if "AllowedValues" in p:
        return max(len(str(v)) for v in p["AllowedValues"])
    if "MaxValue" in p:
        return len(str(p["MaxValue"]))
    if p.get("AllowedPattern", "").startswith("^$|^[a-z0-9]"):
        return 63  # bucket name
    return int(p["MaxLength"])


@pytest.mark.parametrize("name", FUNCTIONS)
def test_version_description_follows_the_configuration(name: str) -> None:
    """SAM republishes only on image changes; the version's Description must change with every
    parameter the version's configuration holds, and fit Lambda's 256 characters."""
    p = props(TPL, name)
    config = [p["Environment"], p["MemorySize"], p["Timeout"], p["SnapStart"]]
    # The vector bucket/index names do not fit in 256 characters beside the rest; docs/deploy.md
    # says that changing only them needs an image build (or any described parameter) to take effect.
    needed = refs(config) & set(PARAMS) - {"VectorBucketName", "VectorIndexName"}
    described = refs(p["VersionDescription"]) & set(PARAMS)
    assert needed <= described, needed - described
    sub = p["VersionDescription"]["Fn::Sub"]
    text = sub if isinstance(sub, str) else sub[0]
    variables = {} if isinstance(sub, str) else sub[1]
    worst = len(re.sub(r"\$\{[^}]+\}", "", text))
    for var in re.findall(r"\$\{([^}]+)\}", text):
        if var not in variables:
            worst += _worst_case_len(var)
            continue
        literals = [len(v) for v in _strings(variables[var])]
        worst += max([_worst_case_len(n) for n in refs(variables[var]) & set(PARAMS)] + literals)
    assert worst <= 256


def _strings(value: Any) -> list[str]:
    """The literal strings a value can resolve to (the branches of its Fn::If)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict) and set(value) == {"Fn::If"}:
        return _strings(value["Fn::If"][1]) + _strings(value["Fn::If"][2])
    return []


def test_log_groups_have_retention() -> None:
    groups = [props(TPL, n)["LoggingConfig"]["LogGroup"]["Ref"] for n in FUNCTIONS]
    groups += [refs(RES["RestApi"]["Properties"]["AccessLogSetting"]["DestinationArn"]).pop()]
    groups += [refs(RES["HttpApi"]["Properties"]["AccessLogSettings"]["DestinationArn"]).pop()]
    assert len(set(groups)) == 5
    for g in groups:
        assert RES[g]["Type"] == "AWS::Logs::LogGroup" and RES[g]["Properties"]["RetentionInDays"]


def test_base_urls_compose_with_paths() -> None:
    for name in ("RestApiUrl", "HttpApiUrl", "FunctionUrl"):
        sub = TPL["Outputs"][name]["Value"]["Fn::Sub"]
        text = sub if isinstance(sub, str) else sub[0]
        assert text.startswith("https://") and not text.endswith("/"), name


_TRANSLATE = r"""
import json, sys
from samtranslator.translator.transform import transform
from samcli.yamlhelper import yaml_parse

class NoManagedPolicies:
    load = staticmethod(dict)
tpl = yaml_parse(open(sys.argv[1], encoding="utf-8").read())
for r in tpl["Resources"].values():  # `sam build` fills ImageUri in
    if r["Type"] == "AWS::Serverless::Function":
        r["Properties"]["ImageUri"] = "123456789012.dkr.ecr.us-east-1.amazonaws.com/bert2vec:test"
params = dict(a.split("=", 1) for a in sys.argv[2:])
print(json.dumps(transform(tpl, params, NoManagedPolicies())))
"""


def _sam_python() -> Path:
    sam = _sam()
    python = sam.with_name("python") if sam else None
    if python is None or subprocess.run([str(python), "-c", "import samtranslator, samcli"], capture_output=True).returncode:
        _skip_without_sam("SAM CLI (with samtranslator) not installed")
    return python


def _translate(*args: str) -> dict[str, Any]:
    cmd = [str(_sam_python()), "-c", _TRANSLATE, str(TEMPLATE), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=_sam_env())
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["Resources"]


@pytest.mark.parametrize("auth_mode", ["NONE", "IAM", "API_KEY"])
def test_transform_invokes_aliases_with_scoped_roles(auth_mode: str) -> None:
    out = _translate(f"AuthMode={auth_mode}", "EnableFunctionUrl=true")
    aliases = {k for k, v in out.items() if v["Type"] == "AWS::Lambda::Alias"}
    assert aliases == {f"{f}Aliaslive" for f in FUNCTIONS}
    for api in ("RestApi", "HttpApi"):
        for path, ops in out[api]["Properties"]["Body"]["paths"].items():
            for method, op in ops.items():
                if method == "options" and api == "RestApi":  # CORS preflights: API Gateway's mock
                    assert op["x-amazon-apigateway-integration"]["type"] == "mock", path
                    continue
                uri = op["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]
                assert "${EncodeFunctionAliaslive}" in uri, (api, path)
    invokers = [v["Properties"]["FunctionName"] for v in out.values() if v["Type"] == "AWS::Lambda::Permission"]
    invokers += [t["Arn"] for v in out.values() if v["Type"] == "AWS::Events::Rule" for t in v["Properties"]["Targets"]]
    invokers += [v["Properties"]["FunctionName"] for v in out.values() if v["Type"] == "AWS::Lambda::EventSourceMapping"]
    invokers += [out["EncodeFunctionUrl"]["Properties"]["TargetFunctionArn"]]
    assert len(invokers) >= 8 + 5 + 1 + 1 + 1 and all(refs(i) <= aliases for i in invokers), invokers
    (cfg,) = [v["Properties"] for v in out.values() if v["Type"] == "AWS::Lambda::EventInvokeConfig"]
    assert cfg["Qualifier"] == "live"
    for name in ("BulkPlannerFunction", "BulkWorkerFunction"):  # SAM's only inline grant: the planner DLQ
        role = out[out[name]["Properties"]["Role"]["Fn::GetAtt"][0]]["Properties"]
        assert {"Ref": "BulkAccessPolicy"} in role["ManagedPolicyArns"]
        for policy in role.get("Policies", []):
            for st in policy["PolicyDocument"]["Statement"]:
                assert st["Action"] == "sqs:SendMessage" and refs(st["Resource"]) == {"PlannerDeadLetterQueue"}


def test_scheduled_reconcile_is_off_unless_a_schedule_is_given() -> None:
    """``ReconcileSchedule`` empty (the default): no rule, no permission; a schedule invokes the
    planner's alias with the reconcile event the handler answers, from this account's rule only."""
    template = _load()
    assert template["Parameters"]["ReconcileSchedule"]["Default"] == ""
    assert conditions_for(template)["HasReconcileSchedule"] is False
    assert conditions_for(template, ReconcileSchedule="rate(1 day)")["HasReconcileSchedule"] is True
    rule, permission = RES["ReconcileScheduleRule"], RES["ReconcileSchedulePermission"]
    assert rule["Condition"] == permission["Condition"] == "HasReconcileSchedule"
    (target,) = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Ref": "BulkPlannerFunction.Alias"}
    assert '"bert2vec": "reconcile"' in target["Input"]["Fn::Sub"][0]
    assert permission["Properties"]["SourceArn"] == {"Fn::GetAtt": ["ReconcileScheduleRule", "Arn"]}
    assert permission["Properties"]["Principal"] == "events.amazonaws.com"


@pytest.mark.parametrize("name", ["BulkPlannerFunction", "BulkWorkerFunction"])
def test_the_slice_size_reaches_the_functions_under_its_new_name_from_the_parameter_of_its_first(name: str) -> None:
    """Functions get SLICE_BYTES (CHUNK_BYTES is only a former name the code still reads); the SAM
    parameter keeps its first name, ChunkBytes, so saved deploy configurations still apply."""
    env = props(TPL, name)["Environment"]["Variables"]
    assert env["SLICE_BYTES"] == {"Ref": "ChunkBytes"} and "CHUNK_BYTES" not in env
    assert "ChunkBytes" in PARAMS
