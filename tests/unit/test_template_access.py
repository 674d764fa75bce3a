"""Who can reach what, as template.yaml decides it: ``/search`` as its own decision, configurations
refused at deploy (Rules, and the prefix conditions Rules cannot express), least-privilege IAM, and
CORS preflights that never invoke the function. Fast tier: no TensorFlow; the SAM transform test
runs with the SAM CLI that ``make test`` installs."""

from __future__ import annotations

import itertools
import re
from typing import Any

import numpy as np
import pytest

from tests.unit.test_template import (
    NO_VALUE,
    PARAMS,
    RES,
    TPL,
    _listed,
    _translate,
    conditions_for,
    evaluator,
    props,
    refs,
    resolve,
)

PREFIX_PARAMS = ("InputPrefix", "OutputPrefix", "BatchReportPrefix")
PREFIXES = ["incoming/", "vectors/", "data/", "data/in/", "data/in/deep/", "dat/", "data2/", "in/data/",
            "batch-reports/", "a/b/c/d/e/f/g/h/i/j/", "a/b/c/d/e/f/g/h/i/", "a/b/"]  # fmt: skip


def rule_holds(rule: str, **values: str) -> bool:
    ev = evaluator(TPL, **values)
    return all(ev(a["Assert"]) for a in TPL["Rules"][rule]["Assertions"])


# ---------------------------------------------------------------------------------------------
# prefixes: never inside one another in one bucket
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PREFIX_PARAMS)
def test_prefix_patterns_refuse_empty_and_ambiguous_prefixes(name: str) -> None:
    """Never empty (an empty prefix is the whole bucket), at most 10 non-empty levels (what the
    overlap conditions compare), as CloudFormation matches AllowedPattern: the whole value."""
    pattern = PARAMS[name]["AllowedPattern"]
    for ok in [*PREFIXES, "x/", "my data/2026 q4/"]:
        assert re.fullmatch(pattern, ok), (name, ok)
    for bad in ["", "/", "x", "/x/", "x//y/", "a/b/c/d/e/f/g/h/i/j/k/", "x*/", "x?/", "$x/"]:
        assert not re.fullmatch(pattern, bad), (name, bad)
    assert len(PARAMS[name]["Default"]) <= PARAMS[name]["MaxLength"] and re.fullmatch(pattern, PARAMS[name]["Default"])


def _overlap(a: str, b: str) -> bool:
    return a.startswith(b) or b.startswith(a)


def test_overlapping_input_and_output_prefixes_are_refused_in_one_bucket() -> None:
    """Either inside the other (``data/in/`` under ``data/`` included) — for the input bucket as
    output (OutputBucket empty, or naming the existing input bucket); another bucket may overlap."""
    same = [{}, {"ExistingInputBucket": "in-bucket", "OutputBucket": "in-bucket"}]
    other = [{"OutputBucket": "out-bucket"}, {"ExistingInputBucket": "in-bucket", "OutputBucket": "out-bucket"}]
    for a, b in itertools.product(PREFIXES, PREFIXES):
        for buckets in same:
            conds = conditions_for(TPL, InputPrefix=a, OutputPrefix=b, **buckets)
            assert conds["PrefixesOverlap"] == _overlap(a, b), (a, b, buckets)
        for buckets in other:
            assert not conditions_for(TPL, InputPrefix=a, OutputPrefix=b, **buckets)["PrefixesOverlap"]
    assert conditions_for(TPL, InputPrefix="data/in/", OutputPrefix="data/")["PrefixesOverlap"]


def test_report_prefix_stays_out_of_the_input_and_output_prefixes() -> None:
    for a, b in itertools.product(PREFIXES, PREFIXES):
        conds = conditions_for(TPL, InputPrefix=a, BatchReportPrefix=b, OutputPrefix="zz-out/")
        assert conds["ReportPrefixOverlapsInput"] == _overlap(a, b), (a, b)
        conds = conditions_for(TPL, OutputPrefix=a, BatchReportPrefix=b, InputPrefix="zz-in/")
        assert conds["ReportPrefixOverlapsOutput"] == _overlap(a, b), (a, b)
    assert not conditions_for(TPL, OutputPrefix="r/", BatchReportPrefix="r/x/", OutputBucket="elsewhere")[
        "ReportPrefixOverlapsOutput"
    ]


@pytest.mark.parametrize(
    ("condition", "resource"),
    [("PrefixesOverlap", "OutputPrefixOverlapsInputPrefix"),
     ("ReportPrefixOverlapsInput", "BatchReportPrefixOverlapsInputPrefix"),
     ("ReportPrefixOverlapsOutput", "BatchReportPrefixOverlapsOutputPrefix")],
)  # fmt: skip
def test_each_overlap_fails_the_deployment_under_its_name(condition: str, resource: str) -> None:
    """A wait condition that nothing can signal exists exactly when the configuration is refused."""
    guard = RES[resource]
    assert guard["Type"] == "AWS::CloudFormation::WaitCondition" and guard["Condition"] == condition
    assert guard["CreationPolicy"]["ResourceSignal"]["Count"] == 1 and "Properties" not in guard
    assert not any(resource in refs(r) for name, r in RES.items() if name != resource)
    assert not conditions_for(TPL)[condition]  # the defaults deploy


def test_bulk_functions_see_one_bucket_as_an_empty_output_bucket() -> None:
    """The start-up refuses overlapping prefixes when OUTPUT_BUCKET is empty (the input bucket)."""
    for name in ("BulkPlannerFunction", "BulkWorkerFunction"):
        env = props(TPL, name)["Environment"]["Variables"]
        for values, expected in [({}, ""), ({"ExistingInputBucket": "b1", "OutputBucket": "b1"}, ""),
                                 ({"OutputBucket": "b2"}, {"Ref": "OutputBucket"})]:  # fmt: skip
            assert resolve(env["OUTPUT_BUCKET"], conditions_for(TPL, **values)) == expected, (name, values)


# ---------------------------------------------------------------------------------------------
# denial of wallet: a public Function URL needs a ceiling
# ---------------------------------------------------------------------------------------------


def test_public_function_url_needs_reserved_concurrency() -> None:
    rule = "PublicFunctionUrlHasConcurrencyCeiling"
    assert not rule_holds(rule, AuthMode="NONE", EnableFunctionUrl="true")
    assert rule_holds(rule, AuthMode="NONE", EnableFunctionUrl="true", EncodeReservedConcurrency="20")
    assert rule_holds(rule, AuthMode="NONE", EnableFunctionUrl="false")
    for mode in ("IAM", "API_KEY"):
        assert rule_holds(rule, AuthMode=mode, EnableFunctionUrl="true")
    assert "EncodeReservedConcurrency" in TPL["Rules"][rule]["Assertions"][0]["AssertDescription"]


def test_rest_api_preflights_never_invoke_the_function() -> None:
    """API Gateway answers OPTIONS itself (mock): no function event, no Lambda integration, no auth."""
    events = props(TPL, "EncodeFunction")["Events"]
    assert not [n for n, e in events.items() if e["Properties"]["Method"].lower() == "options"]
    paths = RES["RestApi"]["Properties"]["DefinitionBody"]["paths"]
    posts = {p for p, ops in paths.items() if "post" in ops}
    options = {p for p, ops in paths.items() if "options" in ops}
    assert options == posts  # every JSON POST route gets its preflight answered
    for p in options:
        op = paths[p]["options"]
        integration = op["x-amazon-apigateway-integration"]
        assert integration["type"] == "mock" and "security" not in op and "uri" not in integration, p
        assert integration["responses"]["default"]["statusCode"] == "200" and "200" in op["responses"], p
        template = integration["responses"]["default"]["responseTemplates"]["application/json"]["Fn::Sub"]
        assert "${CorsOrigins}" in template and "responseOverride.header.Access-Control-Allow-Origin" in template


def _preflight(origins: str, origin: str | None) -> dict[str, str]:
    """The headers the REST API's mock preflight answers with, its Velocity template run as API
    Gateway runs it (``$input.params()`` holds the request headers; ``responseOverride`` sets them)."""
    import airspeed

    paths = RES["RestApi"]["Properties"]["DefinitionBody"]["paths"]
    integration = paths["/encode"]["options"]["x-amazon-apigateway-integration"]
    template = integration["responses"]["default"]["responseTemplates"]["application/json"]["Fn::Sub"]

    class Input:
        @staticmethod
        def params() -> dict[str, Any]:
            return {"path": {}, "querystring": {}, "header": {} if origin is None else {"Origin": origin}}

    context: dict[str, Any] = {"responseOverride": {"header": {}}}
    airspeed.Template(template.replace("${CorsOrigins}", origins)).merge({"input": Input(), "context": context})
    return context["responseOverride"]["header"]


def test_preflights_allow_only_the_listed_origins() -> None:
    listed = "https://a.example,https://b.example"
    allowed = _preflight(listed, "https://b.example")
    assert allowed["Access-Control-Allow-Origin"] == "https://b.example" and allowed["Vary"] == "Origin"
    assert allowed["Access-Control-Allow-Methods"] == "OPTIONS,POST" and allowed["Access-Control-Max-Age"] == "300"
    assert {"Authorization", "Content-Type", "X-Api-Key"} <= set(allowed["Access-Control-Allow-Headers"].split(","))
    for origin in ("https://evil.example", "https://a.example.evil", "x,https://b.example", "", None):
        assert _preflight(listed, origin) == {}, origin
    assert _preflight("", "https://a.example") == {}  # CorsOrigins empty: CORS off, browsers refuse
    assert _preflight("*", "https://any.example")["Access-Control-Allow-Origin"] == "*"


def test_transformed_rest_api_answers_preflights_without_the_function() -> None:
    """SAM's own transform: the merged REST body keeps the mocks and grants no OPTIONS invoke."""
    out = _translate("AuthMode=NONE", "CorsOrigins=https://a.example,https://b.example")
    for path, ops in out["RestApi"]["Properties"]["Body"]["paths"].items():
        for method, op in ops.items():
            kind = op["x-amazon-apigateway-integration"]["type"]
            assert (kind == "mock") == (method == "options"), (path, method, kind)
    for r in out.values():
        if r["Type"] == "AWS::Lambda::Permission" and "SourceArn" in r["Properties"]:
            assert "OPTIONS" not in str(r["Properties"]["SourceArn"]), r
    # SAM merges the Globals' variables under the function's own: only EnableSearch gives it the index.
    env = out["EncodeFunction"]["Properties"]["Environment"]["Variables"]
    assert env["VECTOR_INDEX"]["Fn::If"][0] == "UseSearch" and env["VECTOR_BUCKET"]["Fn::If"][0] == "UseSearch"
    planner = out["BulkPlannerFunction"]["Properties"]["Environment"]["Variables"]
    assert planner["VECTOR_INDEX"]["Fn::If"][0] == "UseVectors"


# ---------------------------------------------------------------------------------------------
# /search as its own decision
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "enabled"), itertools.product(["jsonl", "s3vectors"], ["true", "false"]))
def test_search_is_off_unless_enabled_with_the_index(fmt: str, enabled: str) -> None:
    """Only EnableSearch=true (with the index) gives the encode function the index and its grant."""
    on = fmt == "s3vectors" and enabled == "true"
    conds = conditions_for(TPL, OutputFormat=fmt, EnableSearch=enabled)
    p = props(TPL, "EncodeFunction")
    env = resolve(p["Environment"]["Variables"], conds)
    assert bool(env["VECTOR_BUCKET"]) == on and bool(env["VECTOR_INDEX"]) == on
    assert bool([x for x in resolve(p["Policies"], conds) if x != NO_VALUE]) == on
    for name in ("BulkPlannerFunction", "BulkWorkerFunction"):  # the bulk path still writes the index
        benv = resolve(props(TPL, name)["Environment"]["Variables"], conds)
        assert bool(benv["VECTOR_BUCKET"]) == (fmt == "s3vectors"), name
    assert PARAMS["EnableSearch"]["Default"] == "false"
    assert rule_holds("SearchNeedsTheIndex", OutputFormat=fmt, EnableSearch=enabled) == (fmt == "s3vectors" or enabled == "false")


def _security(api: str, path: str, **values: str) -> Any:
    body = resolve(RES[api]["Properties"]["DefinitionBody"], conditions_for(TPL, **values))
    return body["paths"][path]["post"].get("security")


@pytest.mark.parametrize("mode", ["IAM", "API_KEY", "NONE"])
def test_search_auth_can_differ_from_encode(mode: str) -> None:
    """SearchAuth=IAM (default): /search takes SigV4 whatever AuthMode lets into /encode;
    SearchAuth=AuthMode: the same as /encode."""
    for api in ("RestApi", "HttpApi"):
        assert _security(api, "/search", AuthMode=mode) == [{"AWS_IAM": []}], api
        assert _security(api, "/search", AuthMode=mode, SearchAuth="AuthMode") == _security(api, "/encode", AuthMode=mode)
    assert _security("RestApi", "/encode", AuthMode="NONE") is None  # i.e. the two really differ there
    rule = "SearchNotPublicThroughFunctionUrl"  # a URL has one auth type: a public one would open /search
    public_url = {"AuthMode": "NONE", "EnableFunctionUrl": "true", "OutputFormat": "s3vectors"}
    assert not rule_holds(rule, EnableSearch="true", **public_url)
    assert rule_holds(rule, EnableSearch="true", SearchAuth="AuthMode", **public_url)
    assert rule_holds(rule, EnableSearch="false", **public_url)


def test_stored_texts_are_a_deploy_parameter() -> None:
    """VectorTextMaxBytes -> VECTOR_TEXT_MAX_BYTES on the functions that write the index; 0 keeps no text."""
    from bert2vec.bulk.config import MAX_VECTOR_TEXT_BYTES
    from bert2vec.bulk.vectors import VectorTarget
    from bert2vec.files.writers import OutputRow

    param = PARAMS["VectorTextMaxBytes"]
    assert (int(param["MinValue"]), int(param["MaxValue"])) == (0, MAX_VECTOR_TEXT_BYTES)
    for name in ("BulkPlannerFunction", "BulkWorkerFunction"):
        assert props(TPL, name)["Environment"]["Variables"]["VECTOR_TEXT_MAX_BYTES"] == {"Ref": "VectorTextMaxBytes"}
    row = OutputRow(id="r1", line=1, vector=np.zeros(3, np.float32), text="a private sentence")
    target = VectorTarget(None, "vb", "ix", "in-bucket", "incoming/a.txt", "etag1", text_max_bytes=0)
    assert "text" not in target.metadata(row)
    assert target.metadata(row)["source_key"] == "incoming/a.txt"


# ---------------------------------------------------------------------------------------------
# least privilege: no wildcard resource where a narrower one exists
# ---------------------------------------------------------------------------------------------


def _branches(value: Any) -> list[Any]:
    """Every value an Fn::If tree can resolve to (NoValue dropped)."""
    if isinstance(value, dict) and set(value) == {"Fn::If"}:
        return _branches(value["Fn::If"][1]) + _branches(value["Fn::If"][2])
    return [] if value == NO_VALUE else [value]


def _policy_statements() -> list[tuple[str, dict[str, Any]]]:
    """Every permission statement the template writes itself (roles, managed policies, SAM inline)."""
    found: list[tuple[str, dict[str, Any]]] = []

    def document(where: str, doc: Any) -> None:
        for d in _branches(doc):
            for st in _listed(d["Statement"]):
                found.extend((where, s) for s in _branches(st))

    for name, r in RES.items():
        p = r.get("Properties", {})
        if r["Type"] == "AWS::IAM::ManagedPolicy":
            document(name, p["PolicyDocument"])
        elif r["Type"] == "AWS::IAM::Role":
            for policy in p.get("Policies", []):
                document(name, policy["PolicyDocument"])
        elif r["Type"] == "AWS::Serverless::Function":
            for policy in p.get("Policies", []):
                for d in _branches(policy):
                    if isinstance(d, dict) and "Statement" in d:
                        document(name, d)
    return found


def _sub_text(resource: Any) -> str | None:
    if isinstance(resource, dict) and "Fn::Sub" in resource:
        sub = resource["Fn::Sub"]
        return sub if isinstance(sub, str) else sub[0]
    return None


def _never_empty(param: str) -> bool:
    pattern = PARAMS[param].get("AllowedPattern")
    return pattern is not None and re.fullmatch(pattern, "") is None


def test_no_wildcard_resource_where_a_narrower_one_exists() -> None:
    """Object grants end at a prefix that cannot be empty; ListBucket is limited to such a prefix;
    no resource is ``*`` or a whole bucket's objects; invokes name an alias."""
    statements = _policy_statements()
    assert {w for w, _ in statements} >= {"BulkAccessPolicy", "BatchOperationsRole", "EncodeFunction"}
    for where, st in statements:
        actions = _listed(st["Action"])
        assert st["Effect"] == "Allow" and not any("*" in a for a in actions), (where, st)
        for resource in (b for r in _listed(st["Resource"]) for b in _branches(r)):
            assert resource != "*" and refs(resource), (where, st)
            text = _sub_text(resource)
            if text is None:
                continue
            wild = re.sub(r"\$\{\w+Prefix\}\*$", "", text)
            if "s3:ListBucket" in actions:
                assert text.endswith(":::${Bucket}"), (where, text)
                limits = list(st.get("Condition", {}).get("StringLike", {}).values())
                assert len(limits) == 1, (where, "ListBucket on the whole bucket", st)
                m = re.fullmatch(r"\$\{(\w+Prefix)\}\*", limits[0]["Fn::Sub"])
                assert m and _never_empty(m.group(1)), (where, "ListBucket must be limited to a non-empty prefix", st)
            elif text.startswith("arn:${AWS::Partition}:s3:::"):
                m = re.search(r"/\$\{(\w+Prefix)\}\*$", text)
                assert m and _never_empty(m.group(1)), (where, "object grants end at a non-empty prefix", text)
            assert "*" not in wild, (where, text)
        if any(a.startswith("lambda:Invoke") for a in actions):
            assert st["Resource"] == {"Ref": "BulkPlannerFunction.Alias"}, (where, st)


def test_backfill_role_trusts_only_this_accounts_jobs() -> None:
    """Confused deputy: Batch Operations may assume the role only for jobs of this account."""
    (trust,) = RES["BatchOperationsRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "batchoperations.s3.amazonaws.com"}
    cond = trust["Condition"]
    assert cond["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    arn = cond["ArnLike"]["aws:SourceArn"]["Fn::Sub"]
    assert arn == "arn:${AWS::Partition}:s3:${AWS::Region}:${AWS::AccountId}:job/*"
