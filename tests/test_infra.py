"""Infrastructure as code: every Bicep file parses, and the parsed tree says what a platform team
needs to trust it (keyless, least privilege, Flex Consumption, every app setting set, no secret
out). The Bicep CLI is not available in CI, so the files are parsed with pycep-parser; the repo
keeps to the syntax it understands (docs/deploy.md).

Also checks ``local.settings.json.example``, the Bicep app settings, ``docs/settings.md`` and the
Key Vault secret names in the docs against the settings the code reads, a list derived from the
code itself (environment reads in shared/ and blueprints/, SECRET_SETTINGS, ``%NAME%`` binding
expressions, trigger connections), so a setting added in one place and not the others fails here.
"""

from __future__ import annotations

import ast
import functools
import json
import re
from pathlib import Path
from typing import Any

import pytest
from pycep import BicepParser

from shared.config import SECRET_SETTINGS
from shared.secrets import key_vault_name

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / "infra"
MAIN = INFRA / "main.bicep"
MODULES = INFRA / "modules"
PARAMS = INFRA / "main.bicepparam"
LOCAL_SETTINGS = ROOT / "local.settings.json.example"
SETTINGS_DOC = ROOT / "docs" / "settings.md"
DEPLOY_DOC = ROOT / "docs" / "deploy.md"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))

# Built-in role definition ids (identical in every tenant).
STORAGE_BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
STORAGE_QUEUE_DATA_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
STORAGE_TABLE_DATA_CONTRIBUTOR = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
KEY_VAULT_SECRETS_OFFICER = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"
MONITORING_METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"
COGNITIVE_SERVICES_OPENAI_USER = "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd"
EMAIL_SENDER_CUSTOM_ROLE = "custom:emailSenderRole"

# The ACS actions Microsoft documents for Entra-authenticated email sending (there is no
# send-only built-in role and no email data action).
ACS_SEND_ACTIONS = {
    "Microsoft.Communication/CommunicationServices/Read",
    "Microsoft.Communication/CommunicationServices/Write",
    "Microsoft.Communication/EmailServices/write",
}

# App settings Flex Consumption (FC1) rejects or ignores: the runtime is functionAppConfig.runtime,
# the package comes from the deployment container, scale is functionAppConfig.scaleAndConcurrency.
FC1_REJECTED_SETTINGS = {
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_WORKER_RUNTIME_VERSION",
    "FUNCTIONS_EXTENSION_VERSION",
    "FUNCTIONS_MAX_HTTP_CONCURRENCY",
    "FUNCTIONS_WORKER_PROCESS_COUNT",
    "PYTHON_THREADPOOL_THREAD_COUNT",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTSHARE",
    "WEBSITE_CONTENTOVERVNET",
    "WEBSITE_SKIP_CONTENTSHARE_VALIDATION",
    "WEBSITE_NODE_DEFAULT_VERSION",
    "WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT",
    "WEBSITE_VNET_ROUTE_ALL",
    "WEBSITE_DNS_SERVER",
    "WEBSITE_USE_PLACEHOLDER_DOTNETISOLATED",
    "SCM_DO_BUILD_DURING_DEPLOYMENT",
    "ENABLE_ORYX_BUILD",
}
# siteConfig properties an FC1 site rejects with ARM error 51021 (or that do not apply to it).
FC1_REJECTED_SITE_CONFIG = {
    "ftpsState",
    "alwaysOn",
    "linuxFxVersion",
    "windowsFxVersion",
    "netFrameworkVersion",
    "use32BitWorkerProcess",
    "functionsRuntimeScaleMonitoringEnabled",
    "functionAppScaleLimit",
    "preWarmedInstanceCount",
    "javaVersion",
    "powerShellVersion",
}

# Oldest API version of each type that has the properties these templates rely on
# (functionAppConfig arrived in Microsoft.Web 2023-12-01).
MIN_API_VERSIONS = {
    "Microsoft.Web/": "2023-12-01",
    "Microsoft.Storage/": "2023-01-01",
    "Microsoft.KeyVault/": "2023-07-01",
    "Microsoft.Authorization/": "2022-04-01",
    "Microsoft.Communication/": "2023-04-01",
    "Microsoft.CognitiveServices/": "2024-10-01",
    "Microsoft.OperationalInsights/": "2022-10-01",
    "Microsoft.Insights/": "2020-02-02",
}


# ------------------------------------------------------------------------------------ helpers


@functools.lru_cache(maxsize=None)
def _parser() -> BicepParser:
    return BicepParser()


@functools.lru_cache(maxsize=None)
def _parse(path: Path) -> dict[str, Any]:
    return _parser().parse(file_path=path)


def _module(name: str) -> dict[str, Any]:
    return _parse(MODULES / f"{name}.bicep")


def _body(entry: dict[str, Any]) -> dict[str, Any]:
    """The object of a resource or module, unwrapping `if (...)` and `[for ...]`."""
    cfg = entry["config"]
    while "config" in cfg and ("condition" in cfg or "loop_type" in cfg):
        cfg = cfg["config"]
    return cfg


def _condition(entry: dict[str, Any]) -> Any:
    return entry["config"].get("condition")


def _text(node: Any) -> str:
    """A compact rendering of an expression node: `a.b.c`, `f(x, y)`, literals as themselves."""
    if isinstance(node, dict):
        if "operator" in node:
            op = node["operator"]
            operands = op["operands"]
            if op["type"] == "property_accessor":
                return f"{_text(operands['operand_1'])}.{_text(operands['operand_2'])}"
            if op["type"] == "index_accessor":
                return f"{_text(operands['operand_1'])}[{_text(operands['operand_2'])}]"
            return f"{op['type']}({', '.join(_text(v) for v in operands.values())})"
        if "function" in node:
            fn = node["function"]
            args = [_text(v) for v in (fn.get("parameters") or {}).values() if v is not None]
            return f"{fn['type']}({', '.join(args)})"
        return "{" + ", ".join(f"{k}: {_text(v)}" for k, v in node.items()) + "}"
    if isinstance(node, list):
        return "[" + ", ".join(_text(v) for v in node) + "]"
    return str(node)


def _resources(tree: dict[str, Any], rtype: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in tree.get("resources", {}).items() if v["type"].lower() == rtype.lower()}


def _one(tree: dict[str, Any], rtype: str) -> dict[str, Any]:
    found = [v for v in _resources(tree, rtype).values() if not v["existing"]]
    assert len(found) == 1, f"expected one {rtype}, found {len(found)}"
    return _body(found[0])


def _object_keys(node: Any) -> set[str]:
    assert isinstance(node, dict) and "operator" not in node and "function" not in node, _text(node)
    return {k.strip("'") for k in node}


def _decorator(param: dict[str, Any], kind: str) -> Any:
    for dec in param.get("decorators", []):
        if dec["type"] == kind:
            return dec["argument"]
    return None


def _role_id(node: Any, variables: dict[str, Any]) -> str:
    """Resolve a roleDefinitionId expression to a built-in GUID (or the custom-role marker)."""
    text = _text(node)
    m = re.fullmatch(r"subscription_resource_id\(Microsoft\.Authorization/roleDefinitions, (.+)\)", text)
    if m:
        arg = m.group(1)
        if re.fullmatch(r"[0-9a-f-]{36}", arg):
            return arg
        if "." in arg:  # roles.<name>
            var, key = arg.split(".", 1)
            return variables[var]["value"][key]
        return variables[arg]["value"]
    if text == "emailSenderRole.id":
        return EMAIL_SENDER_CUSTOM_ROLE
    raise AssertionError(f"unrecognised roleDefinitionId: {text}")


def _role_assignments(tree: dict[str, Any]) -> list[dict[str, Any]]:
    """Each assignment as {name, scope, scope_type, role, principal, principal_type, conditional}."""
    resources = tree.get("resources", {})
    out = []
    for name, entry in _resources(tree, "Microsoft.Authorization/roleAssignments").items():
        body = _body(entry)
        scope = _text(body.get("scope", "resourceGroup"))
        out.append({
            "name": name,
            "scope": scope,
            "scope_type": resources[scope]["type"] if scope in resources else scope,
            "role": _role_id(body["properties"]["roleDefinitionId"], tree.get("variables", {})),
            "principal": _text(body["properties"]["principalId"]),
            "principal_type": body["properties"].get("principalType"),
            "conditional": _condition(entry) is not None,
        })
    return out


def _read_bicepparam(text: str) -> tuple[str | None, dict[str, str]]:
    """A small reader for .bicepparam files (pycep does not parse them): the `using` target and
    each `param name = <raw value>` (multi-line arrays/objects kept raw)."""
    lines = []
    for line in text.splitlines():
        out, quoted, i = [], False, 0
        while i < len(line):  # drop // comments outside single-quoted strings
            ch = line[i]
            if ch == "'":
                quoted = not quoted
            elif not quoted and line.startswith("//", i):
                break
            out.append(ch)
            i += 1
        lines.append("".join(out).rstrip())
    source = "\n".join(lines)
    using = re.search(r"^using\s+'([^']+)'\s*$", source, re.M)
    params: dict[str, str] = {}
    matches = list(re.finditer(r"^param\s+(\w+)\s*=\s*", source, re.M))
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(source)
        params[m.group(1)] = source[m.end():end].strip()
    return (using.group(1) if using else None), params


def _literal(raw: str) -> Any:
    """A .bicepparam value as Python, for simple literals; None for arrays/objects/expressions."""
    if re.fullmatch(r"'(?:[^'\\]|\\.)*'", raw):
        return raw[1:-1]
    if re.fullmatch(r"-?\d+", raw):
        return int(raw)
    return {"true": True, "false": False}.get(raw)


@functools.lru_cache(maxsize=None)
def _local_settings() -> dict[str, Any]:
    return json.loads(LOCAL_SETTINGS.read_text())


# Where the code reads settings: the package, the Functions blueprints and the entry point.
CODE_FILES = sorted([*(ROOT / "shared").rglob("*.py"), *(ROOT / "blueprints").glob("*.py"), ROOT / "function_app.py"])
BINDING_FILES = sorted([*(ROOT / "blueprints").glob("*.py"), ROOT / "function_app.py"])
_SETTING_NAME = re.compile(r"[A-Z][A-Z0-9]*_[A-Z0-9_]+|AzureWebJobs[A-Za-z]+(?:__[A-Za-z]+)?")
# A receiver whose .get("NAME") / ["NAME"] reads the environment: os.environ, Settings.extra, the
# `e`/`env` mappings of Settings.from_env.
_ENV_RECEIVER = re.compile(r"\b(?:environ|extra|_?env|e)\b")
_CONFIG_HELPERS = {"_int", "_float", "_list", "_duration", "_channels"}   # helper(env, "NAME", ...) in shared/config.py
_BINDING_EXPRESSION = re.compile(r"%([A-Za-z_][A-Za-z0-9_]{2,})%")

# Read by the code but deliberately not an app setting in Azure, and why.
NOT_SET_IN_AZURE = {
    "AzureWebJobsStorage": "a connection string (with a key); Azure uses the identity-based "
                           "AzureWebJobsStorage__* settings",
    "AzureWebJobsStorage__clientId": "only for a user-assigned identity; the app uses its system-assigned one",
    "DATABRICKS_AUTH": "the old name of DATABRICKS_AUTH_TYPE, which the deployment sets",
    "ARM_CLIENT_ID": "only for azure-client-secret or a user-assigned identity; the app uses its system-assigned one",
    "ARM_TENANT_ID": "only for azure-client-secret (an Entra app's secret); the app uses its managed identity",
    "DATABRICKS_CONFIG_FILE": "a .databrickscfg file is for people at a terminal (the command line)",
    "DATABRICKS_CONFIG_PROFILE": "a .databrickscfg profile is for people at a terminal (the command line)",
}
# App settings the deployment gives the app that our code does not read: the Functions host and
# its Application Insights integration do.
HOST_ONLY_SETTINGS = {
    "AzureWebJobsStorage__blobServiceUri",
    "AzureWebJobsStorage__credential",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
}


def _str_constants(value: ast.AST, module_strings: dict[str, str]) -> list[str]:
    """The string a decorator argument evaluates to: a literal, a module constant, or `A + B` of those."""
    if isinstance(value, ast.Constant) and isinstance(value.value, str):
        return [value.value]
    if isinstance(value, ast.Name) and value.id in module_strings:
        return [module_strings[value.id]]
    if isinstance(value, ast.BinOp) and isinstance(value.op, ast.Add):
        left, right = _str_constants(value.left, module_strings), _str_constants(value.right, module_strings)
        return [a + b for a in left for b in right]
    return []


def _module_strings(tree: ast.Module) -> dict[str, str]:
    out: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            values = _str_constants(node.value, out)
            if len(values) == 1:
                out[node.targets[0].id] = values[0]
    return out


def _env_reads(path: Path) -> set[str]:
    """Setting names one source file reads from the environment: `<env>.get("NAME")`,
    `<env>["NAME"]`, `os.getenv("NAME")` and shared/config.py's `_int(e, "NAME", ...)` & co."""
    names: set[str] = set()

    def add(node: ast.AST | None) -> None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and _SETTING_NAME.fullmatch(node.value):
            names.add(node.value)

    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            func = node.func
            receiver = ast.unparse(func.value) if isinstance(func, ast.Attribute) else ""
            if isinstance(func, ast.Attribute) and func.attr == "get" and _ENV_RECEIVER.search(receiver):
                add(node.args[0] if node.args else None)
            elif isinstance(func, ast.Attribute) and func.attr == "getenv":
                add(node.args[0] if node.args else None)
            elif isinstance(func, ast.Name) and func.id in _CONFIG_HELPERS and len(node.args) >= 2:
                add(node.args[1])
        elif isinstance(node, ast.Subscript) and _ENV_RECEIVER.search(ast.unparse(node.value)):
            add(node.slice)
    return names


def _binding_settings() -> tuple[set[str], set[str]]:
    """(`%NAME%` app settings, connection names) in the trigger and binding decorators: the
    Functions host resolves these itself, with no default, so each must be set."""
    expressions: set[str] = set()
    connections: set[str] = set()
    for path in BINDING_FILES:
        tree = ast.parse(path.read_text())
        strings = _module_strings(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            for kw in node.keywords:
                for value in _str_constants(kw.value, strings):
                    if kw.arg == "connection":
                        connections.add(value)
                    expressions.update(_BINDING_EXPRESSION.findall(value))
    return expressions, connections


@functools.lru_cache(maxsize=None)
def _settings_read_by_code() -> frozenset[str]:
    """Every setting the code reads, found in the code itself (not in a hand-kept list): the
    environment reads of shared/, blueprints/ and function_app.py, the secrets, the `%NAME%`
    binding expressions and the binding connections."""
    names: set[str] = set()
    for path in CODE_FILES:
        names |= _env_reads(path)
    expressions, connections = _binding_settings()
    return frozenset(names | set(SECRET_SETTINGS) | expressions | connections)


def _app_settings() -> dict[str, Any]:
    """Every app setting the deployment gives the function app: main's product settings plus the
    platform settings of modules/functionapp.bicep (which win)."""
    main = _parse(MAIN)
    fa = _module("functionapp")
    settings = dict(main["variables"]["triageSettings"]["value"])
    settings.update(fa["variables"]["platformSettings"]["value"])
    return {k.strip("'"): v for k, v in settings.items()}


# ------------------------------------------------------------------------------------ parsing


def test_infra_has_main_and_modules():
    names = {p.relative_to(INFRA).as_posix() for p in BICEP_FILES}
    assert "main.bicep" in names
    assert {"modules/functionapp.bicep", "modules/storage.bicep", "modules/keyvault.bicep",
            "modules/communication.bicep", "modules/monitoring.bicep", "modules/rbac.bicep",
            "modules/openai.bicep", "modules/openai-access.bicep"} <= names


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: p.relative_to(INFRA).as_posix())
def test_bicep_file_parses(path):
    tree = _parse(path)
    assert tree.get("resources") or tree.get("modules"), f"{path.name} declares nothing"


def test_bicep_parse_rejects_broken_syntax():
    # The parse test is only worth something if the parser refuses what Bicep refuses.
    with pytest.raises(Exception):
        _parser().parse(text="resource x 'Microsoft.Storage/storageAccounts@2024-01-01' = {\n  name: \n")


def test_main_modules_exist_and_get_declared_params():
    main = _parse(MAIN)
    assert main["modules"], "main.bicep uses no modules"
    for name, module in main["modules"].items():
        target = (INFRA / module["detail"]["path"]).resolve()
        assert target.is_file(), f"module {name}: {module['detail']['path']} does not exist"
        declared = _parse(target)["parameters"]
        passed = set(_body(module).get("params", {}))
        assert passed <= set(declared), f"module {name} passes undeclared params {passed - set(declared)}"
        required = {p for p, spec in declared.items() if spec.get("default") is None}
        assert required <= passed, f"module {name} misses required params {required - passed}"


def test_main_params_have_descriptions():
    for name, spec in _parse(MAIN)["parameters"].items():
        assert _decorator(spec, "description"), f"param {name} has no @description"


# ------------------------------------------------------------------------------------ bicepparam


def test_bicepparam_uses_main():
    using, _ = _read_bicepparam(PARAMS.read_text())
    assert using == "./main.bicep"


def test_bicepparam_params_are_declared_in_main():
    _, params = _read_bicepparam(PARAMS.read_text())
    declared = _parse(MAIN)["parameters"]
    assert params, "main.bicepparam sets no params"
    unknown = set(params) - set(declared)
    assert not unknown, f"main.bicepparam sets params main.bicep does not declare: {sorted(unknown)}"


def test_bicepparam_sets_every_required_param():
    _, params = _read_bicepparam(PARAMS.read_text())
    required = {n for n, spec in _parse(MAIN)["parameters"].items() if spec.get("default") is None}
    assert required, "main.bicep should require at least the Databricks host"
    assert required <= set(params), f"main.bicepparam misses {sorted(required - set(params))}"


def test_bicepparam_values_respect_main_constraints():
    _, params = _read_bicepparam(PARAMS.read_text())
    declared = _parse(MAIN)["parameters"]
    for name, raw in params.items():
        spec = declared[name]
        value = _literal(raw)
        if spec["type"] == "string":
            assert isinstance(value, str), f"{name}: expected a string, got {raw!r}"
        elif spec["type"] == "int":
            assert isinstance(value, int), f"{name}: expected an int, got {raw!r}"
        elif spec["type"] == "array":
            assert raw.startswith("["), f"{name}: expected an array, got {raw!r}"
        elif spec["type"] == "object":
            assert raw.startswith("{"), f"{name}: expected an object, got {raw!r}"
        allowed = _decorator(spec, "allowed")
        if allowed is not None and value is not None:
            assert value in allowed, f"{name}: {value!r} is not one of {allowed}"
        lo, hi = _decorator(spec, "min_value"), _decorator(spec, "max_value")
        if isinstance(value, int) and lo is not None:
            assert value >= lo, f"{name}: {value} < {lo}"
        if isinstance(value, int) and hi is not None:
            assert value <= hi, f"{name}: {value} > {hi}"


def test_bicepparam_reader_handles_comments_and_multiline_values():
    using, params = _read_bicepparam(
        "// header\nusing './main.bicep'\nparam a = 'https://x' // trailing\nparam b = [\n  'p'\n  'q'\n]\nparam c = 3\n"
    )
    assert using == "./main.bicep"
    assert params == {"a": "'https://x'", "b": "[\n  'p'\n  'q'\n]", "c": "3"}
    assert _literal(params["a"]) == "https://x" and _literal(params["c"]) == 3


def test_bicepparam_holds_no_secret():
    _, params = _read_bicepparam(PARAMS.read_text())
    for name in params:
        if name == "secretsOfficerPrincipalId":       # who may write secrets: an object id, not a secret
            assert params[name] in ("", "''"), params[name]
            continue
        assert not re.search(r"(?i)token|password|secret|apikey|connectionstring", name), name
    assert "dapi" not in PARAMS.read_text()
    assert "secretsOfficerPrincipalId" in params      # docs/deploy.md tells people to set it


# ------------------------------------------------------------------------------------ storage


def test_storage_account_is_keyless_and_tls12():
    props = _one(_module("storage"), "Microsoft.Storage/storageAccounts")["properties"]
    assert props["allowSharedKeyAccess"] is False
    assert props["minimumTlsVersion"] == "TLS1_2"
    assert props["allowBlobPublicAccess"] is False
    assert props["supportsHttpsTrafficOnly"] is True
    assert props["defaultToOAuthAuthentication"] is True


def test_storage_has_queue_poison_queue_tables_and_deployment_container():
    storage = _module("storage")
    queues = {_text(_body(q)["name"]) for q in _resources(storage, "Microsoft.Storage/storageAccounts/queueServices/queues").values()}
    assert queues == {"queueName", "${queueName}-poison"}
    container = _one(storage, "Microsoft.Storage/storageAccounts/blobServices/containers")
    assert container["properties"]["publicAccess"] == "None"
    tables = _resources(storage, "Microsoft.Storage/storageAccounts/tableServices/tables")
    assert tables and all(_body(t)["name"] == "tableName" for t in tables.values())

    params = _body(_parse(MAIN)["modules"]["storage"])["params"]
    assert params["queueName"] == "queueName"
    assert _parse(MAIN)["variables"]["queueName"]["value"] == "triage-requests"
    assert set(params["tableNames"]) == {"TriageDecisions", "TriageState"}


# ------------------------------------------------------------------------------------ function app


def test_plan_is_flex_consumption_linux():
    plan = _one(_module("functionapp"), "Microsoft.Web/serverfarms")
    assert plan["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    assert plan["properties"]["reserved"] is True


def test_function_app_is_https_only_tls12_with_system_identity():
    site = _one(_module("functionapp"), "Microsoft.Web/sites")
    assert site["kind"] == "functionapp,linux"
    assert site["identity"] == {"type": "SystemAssigned"}
    assert site["properties"]["httpsOnly"] is True
    assert site["properties"]["siteConfig"]["minTlsVersion"] == "1.2"
    assert _text(site["properties"]["serverFarmId"]) == "plan.id"


def test_function_app_runtime_is_python_313_in_function_app_config():
    """What runs is what tests/host tests: Python 3.13 with the worker release requirements.txt pins."""
    config = _one(_module("functionapp"), "Microsoft.Web/sites")["properties"]["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.13"}
    pins = [line for line in (ROOT / "requirements.txt").read_text().splitlines()
            if line.startswith("azure-functions-runtime")]
    assert pins == ['azure-functions-runtime>=1.3,<1.4; python_version >= "3.13"']
    assert set(config["scaleAndConcurrency"]) == {"maximumInstanceCount", "instanceMemoryMB"}
    storage = config["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["authentication"] == {"type": "SystemAssignedIdentity"}


def test_function_app_sets_no_site_config_fc1_rejects():
    site_config = _one(_module("functionapp"), "Microsoft.Web/sites")["properties"]["siteConfig"]
    assert not set(site_config) & FC1_REJECTED_SITE_CONFIG
    assert "appSettings" not in site_config  # the settings live in the sites/config resource


def test_function_app_settings_resource_applies_platform_settings_last():
    fa = _module("functionapp")
    config = _one(fa, "Microsoft.Web/sites/config")
    assert config["name"] == "appsettings" and config["parent"] == "site"
    assert _text(config["properties"]) == "union(appSettings, platformSettings)"
    main_params = _body(_parse(MAIN)["modules"]["functionApp"])["params"]
    assert _text(main_params["appSettings"]) == "union(triageSettings, settingOverrides)"
    assert _parse(MAIN)["parameters"]["settingOverrides"]["default"] == {}


def test_app_settings_cover_every_local_setting():
    settings = _app_settings()
    missing = []
    for name in _local_settings()["Values"]:
        if name in FC1_REJECTED_SETTINGS or name in SECRET_SETTINGS:
            continue
        if name in NOT_SET_IN_AZURE and name != "AzureWebJobsStorage":
            continue
        if name == "AzureWebJobsStorage":
            if "AzureWebJobsStorage__accountName" not in settings:
                missing.append(name)
        elif name not in settings:
            missing.append(name)
    assert not missing, f"app settings miss {missing}"


def test_app_settings_hold_no_secret_and_nothing_fc1_rejects():
    settings = _app_settings()
    assert not set(settings) & set(SECRET_SETTINGS), "secrets come from Key Vault, never app settings"
    assert not set(settings) & FC1_REJECTED_SETTINGS
    assert "AzureWebJobsStorage" not in settings  # identity-based: no connection string at all
    blob = json.dumps(settings).lower()
    for bad in ("listkeys", "accountkey", "sharedaccesssignature", "@microsoft.keyvault"):
        assert bad not in blob, bad


def test_app_settings_reach_storage_and_telemetry_by_identity():
    settings = _app_settings()
    assert settings["AzureWebJobsStorage__accountName"] == "storageAccountName"
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    for service in ("blob", "queue", "table"):
        uri = settings[f"AzureWebJobsStorage__{service}ServiceUri"]
        assert uri == f"https://${{storageAccountName}}.{service}.${{environment().suffixes.storage}}"
    assert settings["TRIAGE_STORAGE"] == "https://${storage.outputs.name}.table.${environment().suffixes.storage}"
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == "Authorization=AAD"
    assert _text(settings["KEY_VAULT_URL"]) == "keyVault.outputs.uri"
    assert _text(settings["ACS_ENDPOINT"]) == "communication.outputs.endpoint"
    assert _text(settings["EMAIL_SENDER"]) == "communication.outputs.senderAddress"
    assert settings["TRIAGE_PUBLIC_BASE_URL"] == "https://${site.properties.defaultHostName}"


def test_triage_mode_defaults_to_shadow():
    spec = _parse(MAIN)["parameters"]["triageMode"]
    assert spec["default"] == "shadow"
    assert sorted(_decorator(spec, "allowed")) == ["act", "shadow"]
    assert _app_settings()["TRIAGE_MODE"] == "triageMode"


def test_databricks_auth_choices_match_the_code():
    from shared.config import DATABRICKS_AUTH_TYPES

    spec = _parse(MAIN)["parameters"]["databricksAuth"]
    allowed = sorted(_decorator(spec, "allowed"))
    assert allowed == ["azure-identity", "azure-msi", "oauth-m2m", "pat"]
    assert set(allowed) <= set(DATABRICKS_AUTH_TYPES)       # azure-cli / azure-client-secret: not for the app
    assert _app_settings()["DATABRICKS_AUTH_TYPE"] == "databricksAuth"
    assert _app_settings()["DATABRICKS_CLIENT_ID"] == "databricksClientId"


# ------------------------------------------------------------------------------------ RBAC


def test_app_principal_flows_from_site_identity_to_every_role_module():
    assert _text(_module("functionapp")["outputs"]["principalId"]["value"]) == "site.identity.principalId"
    modules = _parse(MAIN)["modules"]
    for name in ("rbac", "openAiAccessCreated", "openAiAccessExisting"):
        assert _text(_body(modules[name])["params"]["principalId"]) == "functionApp.outputs.principalId", name


def test_app_role_assignments_are_exactly_the_least_privileged_set():
    granted = {
        (a["scope_type"], a["role"])
        for a in _role_assignments(_module("rbac")) + _role_assignments(_module("openai-access"))
        if a["principal"] == "principalId"
    }
    assert granted == {
        ("Microsoft.Storage/storageAccounts", STORAGE_BLOB_DATA_OWNER),
        ("Microsoft.Storage/storageAccounts", STORAGE_QUEUE_DATA_CONTRIBUTOR),
        ("Microsoft.Storage/storageAccounts", STORAGE_TABLE_DATA_CONTRIBUTOR),
        ("Microsoft.KeyVault/vaults", KEY_VAULT_SECRETS_USER),
        ("Microsoft.Insights/components", MONITORING_METRICS_PUBLISHER),
        ("Microsoft.Communication/communicationServices", EMAIL_SENDER_CUSTOM_ROLE),
        ("Microsoft.CognitiveServices/accounts", COGNITIVE_SERVICES_OPENAI_USER),
    }


def test_app_role_assignments_target_a_service_principal_at_resource_scope():
    for a in _role_assignments(_module("rbac")) + _role_assignments(_module("openai-access")):
        if a["principal"] != "principalId":
            continue
        assert a["principal_type"] == "ServicePrincipal", a["name"]
        assert a["scope_type"].startswith("Microsoft."), f"{a['name']} is not scoped to one resource"
        assert not a["conditional"], a["name"]


def test_role_assignment_names_are_deterministic_per_scope_principal_and_role():
    for path in (MODULES / "rbac.bicep", MODULES / "openai-access.bicep"):
        for entry in _resources(_parse(path), "Microsoft.Authorization/roleAssignments").values():
            name = _text(_body(entry)["name"])
            assert name.startswith("guid(") and ".id" in name and "rincipalId" in name, name


def test_secrets_officer_is_optional_and_never_the_app():
    officer = [a for a in _role_assignments(_module("rbac")) if a["role"] == KEY_VAULT_SECRETS_OFFICER]
    assert len(officer) == 1
    assert officer[0]["principal"] == "secretsOfficerPrincipalId"
    assert officer[0]["conditional"]
    assert _parse(MAIN)["parameters"]["secretsOfficerPrincipalId"]["default"] == ""


def test_acs_custom_role_grants_only_the_send_actions():
    role = _one(_module("rbac"), "Microsoft.Authorization/roleDefinitions")
    props = role["properties"]
    assert props["type"] == "CustomRole"
    assert [_text(s) for s in props["assignableScopes"]] == ["resource_group().id"]
    (perm,) = props["permissions"]
    assert set(perm["actions"]) == ACS_SEND_ACTIONS
    assert not any("*" in a or "listkeys" in a.lower() or "delete" in a.lower() for a in perm["actions"])
    assert perm["dataActions"] == [] and perm["notActions"] == [] and perm["notDataActions"] == []


def test_no_broad_builtin_role_anywhere():
    broad = {
        "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",  # Owner
        "b24988ac-6180-42a0-ab88-20f7382dd24c",  # Contributor
        "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",  # User Access Administrator
        "17d1049b-9a84-46fb-8f53-869881c3d3ab",  # Storage Account Contributor
        "00482a5a-887f-4fb3-b363-3b7fe8e74483",  # Key Vault Administrator
        "a001fd3d-188f-4b5d-821b-7da978bf7442",  # Cognitive Services OpenAI Contributor
    }
    text = "\n".join(p.read_text() for p in BICEP_FILES)
    assert not broad & set(re.findall(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", text))


# ------------------------------------------------------------------------------------ the rest


def test_key_vault_is_rbac_with_soft_delete_and_purge_protection():
    props = _one(_module("keyvault"), "Microsoft.KeyVault/vaults")["properties"]
    assert props["enableRbacAuthorization"] is True
    assert props["enableSoftDelete"] is True
    assert props["enablePurgeProtection"] is True
    assert "accessPolicies" not in props
    assert not _resources(_module("keyvault"), "Microsoft.KeyVault/vaults/secrets")


def test_application_insights_uses_entra_auth_on_log_analytics():
    monitoring = _module("monitoring")
    appi = _one(monitoring, "Microsoft.Insights/components")["properties"]
    assert appi["DisableLocalAuth"] is True
    assert _text(appi["WorkspaceResourceId"]) == "logAnalytics.id"
    _one(monitoring, "Microsoft.OperationalInsights/workspaces")


def test_communication_services_link_an_azure_managed_domain():
    acs = _module("communication")
    domain_entry = _resources(acs, "Microsoft.Communication/emailServices/domains")["managedDomain"]
    domain = _body(domain_entry)
    assert domain["name"] == "AzureManagedDomain"
    assert domain["properties"]["domainManagement"] == "AzureManaged"
    _one(acs, "Microsoft.Communication/emailServices")
    service = _one(acs, "Microsoft.Communication/communicationServices")
    assert [_text(d) for d in service["properties"]["linkedDomains"]] == ["managedDomain.id"]
    sender = acs["outputs"]["senderAddress"]["value"]
    assert sender == "DoNotReply@${managedDomain.properties.mailFromSenderDomain}"


def test_openai_is_optional_keyless_and_deployed_only_on_create():
    main = _parse(MAIN)
    spec = main["parameters"]["openAiMode"]
    assert sorted(_decorator(spec, "allowed")) == ["create", "existing", "none"]
    assert _text(_condition(main["modules"]["openAi"])) == "equals(openAiMode, create)"
    assert _text(_condition(main["modules"]["openAiAccessCreated"])) == "equals(openAiMode, create)"
    assert "existing" in _text(_condition(main["modules"]["openAiAccessExisting"]))
    account = _one(_module("openai"), "Microsoft.CognitiveServices/accounts")
    assert account["kind"] == "OpenAI"
    assert account["properties"]["disableLocalAuth"] is True
    assert account["properties"]["customSubDomainName"] == "name"
    deployment = _one(_module("openai"), "Microsoft.CognitiveServices/accounts/deployments")
    assert deployment["properties"]["model"]["format"] == "OpenAI"


def test_api_versions_are_ga_and_recent_enough():
    for path in BICEP_FILES:
        for name, res in _parse(path).get("resources", {}).items():
            version = res["api_version"]
            assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", version), f"{path.name}:{name} uses {version}"
            for prefix, minimum in MIN_API_VERSIONS.items():
                if res["type"].startswith(prefix):
                    assert version >= minimum, f"{path.name}:{name} {res['type']}@{version} < {minimum}"
                    break
            else:
                pytest.fail(f"{path.name}:{name}: no minimum API version known for {res['type']}")


# ------------------------------------------------------------------------------------ outputs


def test_main_outputs_give_host_webhook_sender_and_vault():
    outputs = _parse(MAIN)["outputs"]
    assert _text(outputs["functionHost"]["value"]) == "functionApp.outputs.defaultHostName"
    assert outputs["webhookUrlTemplate"]["value"] == (
        "https://${functionApp.outputs.defaultHostName}/api/databricks/webhook?code=<function-key>"
    )
    assert _text(outputs["emailSender"]["value"]) == "communication.outputs.senderAddress"
    assert _text(outputs["keyVaultName"]["value"]) == "keyVault.outputs.name"


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: p.relative_to(INFRA).as_posix())
def test_outputs_hold_no_secret(path):
    for name, output in _parse(path).get("outputs", {}).items():
        assert not _decorator(output, "secure"), f"{path.name}: output {name} is @secure"
        assert output["type"] not in ("secureString", "secureObject"), name
        assert not re.search(r"(?i)password|secret|token|connectionstring|apikey|accesskey", name), name
        value = json.dumps(output["value"]).lower()
        for bad in ("list_keys", "listkeys", "connectionstring", "instrumentationkey", "primarykey", "secret"):
            assert bad not in value, f"{path.name}: output {name} exposes {bad}"


def test_no_list_keys_and_no_secure_inputs_anywhere():
    for path in BICEP_FILES:
        text = path.read_text()
        assert not re.search(r"\.\s*list[A-Z]\w*\(|\blistKeys\(", text), f"{path.name} calls a list*() function"
        for name, spec in _parse(path).get("parameters", {}).items():
            assert not _decorator(spec, "secure"), f"{path.name}: param {name} takes a secret"


# ------------------------------------------------------------------------------------ local settings and docs


def test_local_settings_example_is_a_functions_settings_file():
    data = _local_settings()
    assert data["IsEncrypted"] is False
    values = data["Values"]
    assert all(isinstance(v, str) for v in values.values())
    assert values["FUNCTIONS_WORKER_RUNTIME"] == "python"
    assert values["AzureWebJobsStorage"] == "UseDevelopmentStorage=true"
    assert values["TRIAGE_MODE"] == "shadow"


def test_settings_scan_finds_each_kind_of_read():
    # The drift tests below are only as good as this scan: each way the code reads a setting
    # must turn up (config.py helpers, Settings.extra, secrets, %NAME%, connections).
    read = _settings_read_by_code()
    assert {"TRIAGE_MODE", "TRIAGE_MAX_RETRIES", "TRIAGE_LLM_MIN_RULE_CONFIDENCE", "TRIAGE_WORKSPACES",
            "TRIAGE_SWEEP_OVERLAP"} <= read                        # e.get(...) and _int/_float/_list/_duration
    assert {"AzureWebJobsStorage__queueServiceUri", "AzureWebJobsStorage__tableServiceUri"} <= read  # .extra.get
    assert "DATABRICKS_TOKEN" in read                              # a secret
    expressions, connections = _binding_settings()
    assert {"TRIAGE_QUEUE_NAME", "TRIAGE_SWEEP_SCHEDULE"} <= expressions
    assert connections == {"AzureWebJobsStorage"}
    assert all(_SETTING_NAME.fullmatch(n) for n in read), sorted(n for n in read if not _SETTING_NAME.fullmatch(n))


def test_local_settings_example_lists_every_setting_the_code_reads():
    # Identity-based `<connection>__*` settings are Azure-only: locally the connection is a
    # connection string (UseDevelopmentStorage=true for Azurite).
    values = set(_local_settings()["Values"])
    read = {n for n in _settings_read_by_code() if "__" not in n}
    assert read <= values, f"local.settings.json.example misses {sorted(read - values)}"
    stale = values - read - {"FUNCTIONS_WORKER_RUNTIME"}
    assert not stale, f"local.settings.json.example lists settings the code does not read: {sorted(stale)}"


def test_bicep_sets_every_setting_the_code_reads():
    settings = _app_settings()
    expected = _settings_read_by_code() - set(SECRET_SETTINGS) - FC1_REJECTED_SETTINGS - set(NOT_SET_IN_AZURE)
    missing = expected - set(settings)
    assert not missing, f"the app settings in infra/ miss {sorted(missing)}"
    assert not set(NOT_SET_IN_AZURE) & set(settings)


def test_bicep_sets_no_setting_nobody_reads():
    stale = set(_app_settings()) - _settings_read_by_code() - HOST_ONLY_SETTINGS
    assert not stale, f"infra/ sets app settings nothing reads: {sorted(stale)}"


def test_binding_expressions_have_a_value_everywhere():
    # The host resolves %NAME% itself and has no default: an unset or empty setting keeps the
    # function (and, at indexing, the whole app) from starting.
    expressions, _ = _binding_settings()
    local = _local_settings()["Values"]
    settings = _app_settings()
    for name in expressions:
        assert local.get(name, "").strip(), f"{name} is empty in local.settings.json.example"
        assert name in settings and settings[name] not in ("", None), f"infra/ leaves {name} unset"
    assert settings["TRIAGE_QUEUE_NAME"] == "queueName"           # the queue storage.bicep creates
    assert local["TRIAGE_QUEUE_NAME"] == _parse(MAIN)["variables"]["queueName"]["value"]
    assert settings["TRIAGE_SWEEP_SCHEDULE"] == "sweepSchedule"
    assert _parse(MAIN)["parameters"]["sweepSchedule"]["default"] == local["TRIAGE_SWEEP_SCHEDULE"]


def test_trigger_connections_are_identity_based_in_azure():
    # connection="AzureWebJobsStorage": locally the connection string; in Azure the host builds
    # the queue client from <connection>__queueServiceUri and the managed identity.
    _, connections = _binding_settings()
    settings = _app_settings()
    local = _local_settings()["Values"]
    for conn in connections:
        assert local.get(conn), f"{conn} is missing locally"
        assert conn not in settings, f"{conn} must not be a connection string in Azure"
        assert settings[f"{conn}__queueServiceUri"] == (
            f"https://${{storageAccountName}}.queue.${{environment().suffixes.storage}}")
        assert settings[f"{conn}__credential"] == "managedidentity"
        assert f"{conn}__clientId" not in settings  # system-assigned identity


def test_local_settings_example_leaves_secrets_empty():
    values = _local_settings()["Values"]
    for name in SECRET_SETTINGS:
        assert values[name] == "", f"{name} must be empty in the example"


def _settings_doc_rows() -> dict[str, str]:
    return {m.group(1): m.group(0) for m in re.finditer(r"^\|\s*`([A-Za-z_][A-Za-z0-9_]*)`.*$",
                                                          SETTINGS_DOC.read_text(), re.M)}


def test_settings_doc_lists_every_setting():
    rows = _settings_doc_rows()
    expected = set(_local_settings()["Values"]) | set(_app_settings()) | _settings_read_by_code()
    assert expected <= set(rows), f"docs/settings.md misses {sorted(expected - set(rows))}"


def test_settings_doc_names_each_secret_by_its_key_vault_name():
    rows = _settings_doc_rows()
    for name in SECRET_SETTINGS:
        assert f"**yes**: `{key_vault_name(name)}`" in rows[name], f"docs/settings.md: {name}"
    for name, row in rows.items():
        if "**yes**" in row:
            assert name in SECRET_SETTINGS, f"docs/settings.md calls {name} a secret; shared/config.py does not"


def test_deploy_doc_key_vault_secret_names_are_the_ones_the_code_reads():
    # shared.secrets reads setting X from the Key Vault secret key_vault_name(X); a doc that
    # names any other secret sends the operator to set one the app never reads.
    known = {key_vault_name(n) for n in SECRET_SETTINGS}
    for doc in sorted((ROOT / "docs").glob("*.md")):
        text = doc.read_text()
        for name in re.findall(r"az keyvault secret set[^\n]*?--name\s+([^\s`]+)", text):
            assert name in known, f"{doc.name}: Key Vault secret {name!r} is not one of {sorted(known)}"
    deploy = DEPLOY_DOC.read_text()
    for setting in ("DATABRICKS_TOKEN", "TRIAGE_WEBHOOK_USERNAME", "TRIAGE_WEBHOOK_PASSWORD",
                    "TRIAGE_FEEDBACK_SIGNING_KEY"):
        assert re.search(rf"az keyvault secret set[^\n]*--name {key_vault_name(setting)}\b", deploy), setting


def test_deploy_doc_covers_the_path_to_a_working_webhook():
    doc = DEPLOY_DOC.read_text()
    for needle in ("az deployment group create", "func azure functionapp publish", "databricks-token",
                   "triage-webhook-username", "triage-webhook-password", "webhook_notifications",
                   "on_failure", "TRIAGE_MODE", "azure-identity", "pycep"):
        assert needle in doc, needle
