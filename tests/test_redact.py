"""Redaction: a planted-secrets corpus (built at run time, never stored as literals) must not
get through, and ordinary Spark/Databricks error text must come out unchanged."""

from __future__ import annotations

import base64
import io
import json
import logging
import random
from pathlib import Path

import pytest

import shared.redact as redact_mod
from shared.redact import (
    MARKER_PREFIX,
    RedactingFilter,
    install_log_redaction,
    is_sensitive_key,
    redact,
    redact_obj,
)

CORPUS = Path(__file__).parent / "corpus" / "dev"
_rng = random.Random(20240611)


def _hex(n: int) -> str:
    return "".join(_rng.choice("0123456789abcdef") for _ in range(n))


def _alnum(n: int, alphabet: str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") -> str:
    return "".join(_rng.choice(alphabet) for _ in range(n))


def _b64(nbytes: int) -> str:
    return base64.b64encode(bytes(_rng.randrange(256) for _ in range(nbytes))).decode()


def _b64url(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


def _planted() -> list[tuple[str, str, str]]:
    """(case id, text containing the secret, the secret). Every secret is assembled here."""
    db_pat = "da" + "pi" + _hex(32)
    db_oauth = "do" + "se" + _hex(32)
    acct_key = _b64(64)                      # 88 chars, ends '=='
    sas_sig = _b64(32).replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
    sb_key = _b64(32)
    jwt = "ey" + "J" + _b64url({"alg": "RS256", "typ": "JWT"})[3:] + "." + _b64url(
        {"aud": "https://management.azure.com", "oid": _hex(8)}) + "." + _alnum(43)
    aws_id = "AK" + "IA" + _alnum(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
    aws_sts = "AS" + "IA" + _alnum(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
    aws_secret = _alnum(40, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/+")
    gh = "gh" + "p_" + _alnum(36)
    gh_fine = "github" + "_pat_" + _alnum(22) + "_" + _alnum(59)
    pw = "Tr0ub4dor&" + _alnum(6)
    entra = _alnum(3) + "8" + "Q~" + _alnum(34, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
    pem_body = "\n".join(_b64(48) for _ in range(6))
    begin, end = "-----BEGIN ", "-----END "
    pem = f"{begin}RSA PRIVATE KEY-----\n{pem_body}\n{end}RSA PRIVATE KEY-----"
    pem_pkcs8 = f"{begin}PRIVATE KEY-----\\n{_b64(48)}\\n{_b64(48)}\\n{end}PRIVATE KEY-----"
    pem_cut = f"{begin}OPENSSH PRIVATE KEY-----\n{_b64(48)}\n{_b64(30)}"
    token = _alnum(24)
    api_key = _hex(32)
    fn_key = _alnum(40) + "=="
    return [
        ("databricks-pat", f"requests.exceptions.HTTPError: 401 for token {db_pat}", db_pat),
        ("databricks-pat-suffix", f"DATABRICKS_TOKEN: '{db_pat}-2'", db_pat),
        ("databricks-pat-header", f"Authorization: Bearer {db_pat}", db_pat),
        ("databricks-oauth-secret", f"client secret was {db_oauth}", db_oauth),
        ("storage-connection-string",
         f"DefaultEndpointsProtocol=https;AccountName=acct1;AccountKey={acct_key};EndpointSuffix=core.windows.net",
         acct_key),
        ("storage-key-spark-conf", f"spark.conf.set('fs.azure.account.key.acct1.dfs.core.windows.net', '{acct_key}')",
         acct_key),
        ("storage-key-bare", f"key1 {acct_key} key2", acct_key),
        ("sas-url",
         "Operation failed: 403, GET, https://acct1.blob.core.windows.net/raw/f.csv?sv=2022-11-02&ss=b&srt=co"
         f"&sp=rl&se=2030-01-01T00:00:00Z&spr=https&sig={sas_sig}, AuthorizationPermissionMismatch",
         sas_sig),
        ("sas-sig-only", f"https://acct1.dfs.core.windows.net/c?restype=container&sig={sas_sig}&comp=list", sas_sig),
        ("sas-in-connection-string",
         f"BlobEndpoint=https://acct1.blob.core.windows.net/;SharedAccessSignature=sv=2021-06-08&sig={sas_sig}",
         sas_sig),
        ("servicebus-key",
         f"Endpoint=sb://ns1.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey={sb_key}",
         sb_key),
        ("jdbc-password",
         f"jdbc:sqlserver://srv1.database.windows.net:1433;database=dw;user=etl@srv1;password={pw};encrypt=true",
         pw),
        ("odbc-pwd-braced", f"Driver={{ODBC Driver 18 for SQL Server}};Server=tcp:srv1;UID=sa;PWD={{{pw}}};", pw),
        ("url-userinfo", f"psycopg2.OperationalError: could not connect to postgresql://etl:{pw}@db1:5432/app", pw),
        ("jdbc-userinfo", f"jdbc:mysql://etl:{pw}@db1:3306/app?useSSL=true", pw),
        ("bearer", f"headers: Authorization: Bearer {token}", token),
        ("basic-auth-dict", f"{{'Authorization': 'Basic {base64.b64encode(('u:' + pw).encode()).decode()}'}}",
         base64.b64encode(("u:" + pw).encode()).decode()),
        ("bearer-bare", f"sent bearer {token} to the API", token),
        ("jwt", f"AADSTS700024: token {jwt} is not within its valid time range", jwt),
        ("aws-access-key-id", f"The AWS Access Key Id {aws_id} you provided does not exist", aws_id),
        ("aws-sts-key-id", f"fs.s3a.access.key={aws_sts}", aws_sts),
        ("aws-secret", f"aws_secret_access_key = {aws_secret}", aws_secret),
        ("aws-secret-hadoop", f"spark.hadoop.fs.s3a.secret.key {aws_secret}", aws_secret),
        ("private-key-pem", f"loading key failed:\n{pem}\nend", pem_body.splitlines()[2]),
        ("private-key-escaped", f'{{"key": "{pem_pkcs8}"}}', pem_pkcs8.split("\\n")[1]),
        ("private-key-truncated", f"...{pem_cut}", pem_cut.splitlines()[2]),
        ("github-token", f"git clone https://x-access-token:{gh}@github.com/org/repo.git", gh),
        ("github-token-bare", f"GITHUB_TOKEN {gh}", gh),
        ("github-fine-grained", f"token {gh_fine} was revoked", gh_fine),
        ("entra-client-secret", f"ClientSecretCredential(tenant, client, '{entra}')", entra),
        ("password-assignment", f"password={pw} user=etl", pw),
        ("password-yaml", f"  db_password: {pw}\n  host: db1", pw),
        ("password-json", f'{{"user": "etl", "password": "{pw} with spaces"}}', pw),
        ("secret-assignment", f"client_secret={token}&grant_type=client_credentials", token),
        ("token-query", f"https://api.example.org/v1/items?access_token={token}&page=2", token),
        ("api-key-header", f"api-key: {api_key}", api_key),
        ("api-key-assignment", f"OPENAI_API_KEY={api_key}", api_key),
        ("subscription-key", f"Ocp-Apim-Subscription-Key: {api_key}", api_key),
        ("function-key", f"POST https://app1.azurewebsites.net/api/webhook?code={fn_key}", fn_key),
        ("cli-flag", f"mysql --user etl --password {pw} -h db1", pw),
        ("spark-conf-set", f'spark.conf.set("fs.azure.account.key.acct1.dfs.core.windows.net", "{token}")', token),
        ("python-tuple", f"creds = ('password', '{pw}')", pw),
        ("kwarg", f'connect(host="db1", password="{pw}")', pw),
        ("env-export", f"export DB_PASS={pw}", pw),
    ]


PLANTED = _planted()


@pytest.mark.parametrize("case_id,text,secret", PLANTED, ids=[p[0] for p in PLANTED])
def test_redact_planted_secret_does_not_get_through(case_id, text, secret):
    out = redact(text)
    assert secret not in out
    assert MARKER_PREFIX in out


def test_redact_every_planted_secret_in_one_trace():
    trace = "\n".join(
        f"\tat com.example.Job{i}.run(Job.scala:{i})\nCaused by: java.lang.RuntimeException: {text}"
        for i, (_, text, _) in enumerate(PLANTED)
    )
    out = redact(trace)
    leaked = [cid for cid, _, secret in PLANTED if secret in out]
    assert leaked == []
    assert "at com.example.Job3.run(Job.scala:3)" in out


def test_redact_marker_names_the_kind():
    db_pat = "dap" + "i" + "0123456789abcdef" * 2
    assert redact(f"token {db_pat}") == "token [REDACTED:databricks-token]"
    assert redact("AccountKey=" + _b64(64) + ";") == "AccountKey=[REDACTED:storage-key];"


def test_redact_is_idempotent():
    for _, text, _ in PLANTED:
        once = redact(text)
        assert redact(once) == once


_SPARK_TEXTS = [
    "org.apache.spark.SparkException: Job aborted due to stage failure: Task 3 in stage 7.0 failed 4 times, "
    "most recent failure: Lost task 3.3 in stage 7.0 (TID 112) (10.139.64.5 executor 2): "
    "java.lang.OutOfMemoryError: Java heap space",
    "[TABLE_OR_VIEW_NOT_FOUND] The table or view `main`.`sales`.`orders` cannot be found. SQLSTATE: 42P01; line 1 pos 14",
    "[UNRESOLVED_COLUMN.WITH_SUGGESTION] A column or function parameter with name `amount` cannot be resolved. "
    "Did you mean one of the following? [`amt`, `id`]. SQLSTATE: 42703",
    "com.databricks.sql.io.FileReadException: Error while reading file "
    "abfss://raw@acct1.dfs.core.windows.net/x/part-00001-7c1f.snappy.parquet",
    "Failed to retrieve secret: scope etl-scope key db-password does not exist",
    "spark.sql.shuffle.partitions=200 spark.sql.autoBroadcastJoinThreshold=-1 tokenizer: bert",
    "PERMISSION_DENIED: User does not have USE CATALOG on Catalog 'main'. Token expired at 2024-01-01",
    "py4j.protocol.Py4JJavaError: An error occurred while calling o123.save.\n: java.net.ConnectException: "
    "Connection refused (Connection refused)",
    "ExecutorLostFailure (executor 5 exited caused by one of the running tasks) Reason: Container killed by "
    "YARN for exceeding memory limits. 9.1 GB of 9 GB physical memory used. Consider boosting "
    "spark.executor.memoryOverhead.",
    "Traceback (most recent call last):\n  File \"/databricks/python/lib/python3.10/site-packages/x.py\", "
    "line 12, in <module>\n    main()\nKeyError: 'customer_id'",
    "Library installation failed for library due to user error for pypi {\n  package: \"pandas==2.2.0\"\n}",
    "The credentials provided for the abfss filesystem are not valid",
    "fs.azure.sas.token.provider.type=org.apache.hadoop.fs.azurebfs.sas.FixedSASTokenProvider",
    "tests passed: 12, bypass=true, cache.enabled=false",
    "  File \"/Workspace/Repos/etl/auth.py\", line 8, in connect\n    token = get_token(scope)\nValueError: Token: Expired",
    "Authorization failed: the caller is not allowed to read the blob",
]


@pytest.mark.parametrize("text", _SPARK_TEXTS, ids=range(len(_SPARK_TEXTS)))
def test_redact_spark_error_text_unchanged(text):
    assert redact(text) == text


def _corpus_texts():
    for path in sorted(CORPUS.glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        for out in (doc.get("task_outputs") or {}).values():
            for field in ("error", "error_trace"):
                if out.get(field):
                    yield path.stem, out[field]


def test_redact_dev_corpus_errors_unchanged_unless_they_hold_a_sas():
    checked = 0
    for case_id, text in _corpus_texts():
        checked += 1
        out = redact(text)
        if "sig=" in text:  # a SAS query in the trace (placeholder signature): only the query goes
            assert "sig=[REDACTED:sas-signature]" in out, case_id
            kept = [line for line in text.splitlines() if "sig=" not in line]
            assert [line for line in out.splitlines() if "REDACTED" not in line] == kept, case_id
        else:
            assert out == text, case_id
    assert checked > 50


def test_redact_empty_and_non_string():
    assert redact("") == ""
    assert redact(12345) == "12345"


def test_redact_large_adversarial_input_completes():
    # Shapes that would make a naive pattern backtrack; this must finish promptly (no timing asserted).
    parts = [
        "password= " + "a" * 5000,
        "=" * 50000,
        "a:" * 50000,
        "://" + "a" * 50000,
        "-----BEGIN PRIVATE KEY-----" * 500,
        "eyJ" * 30000,
        ("A" * 85 + "=") * 1000,
        "sv=2022-01-01&a=b" * 5000,
        "&x=" * 50000,
        "Bearer " * 30000,
        "token:" * 30000,
    ]
    text = "\n".join(parts)
    out = redact(text)
    assert len(out) > len(text) // 2


def test_redact_obj_deep_and_by_key():
    db_pat = "dap" + "i" + _hex(32)
    obj = {
        "run": {"tasks": [{"error": f"auth failed with {db_pat}"}]},
        "spark_conf": {"fs.azure.account.key.acct1.dfs.core.windows.net": "shortvalue"},
        "spark_env_vars": {"DB_PASSWORD": "plain"},
        "clientSecret": "x1",
        "headers": ("Authorization: Bearer " + "t" * 20,),
        "next_page_token": "CAE=",
        "idempotency_token": "123-0",
        "usage": {"prompt_tokens": 120, "completion_tokens": 30},
        "count": 3,
    }
    out = redact_obj(obj)
    text = json.dumps(out)
    assert db_pat not in text and "shortvalue" not in text and "plain" not in text and "x1" not in text
    assert "t" * 20 not in text
    assert out["next_page_token"] == "CAE="
    assert out["idempotency_token"] == "123-0"
    assert out["usage"] == {"prompt_tokens": 120, "completion_tokens": 30}
    assert out["count"] == 3
    assert isinstance(out["headers"], tuple)
    assert obj["clientSecret"] == "x1"  # input untouched


@pytest.mark.parametrize("key,expected", [
    ("password", True), ("DB_PASSWORD", True), ("clientSecret", True), ("api-key", True),
    ("fs.azure.account.key.acct1.dfs.core.windows.net", True), ("access_token", True), ("sig", True),
    ("next_page_token", False), ("nextPageToken", False), ("max_tokens", False), ("secret_scope", False),
    ("task_key", False), ("job_id", False), ("token_type", False),
    ("DB_PWD", True), ("SNOWFLAKE_PASS", True), ("dbPass", True), ("API_CREDS", True), ("db.pw", True),
    ("bypass_cache", False), ("passenger_count", False), ("compass", False),
])
def test_is_sensitive_key_names(key, expected):
    assert is_sensitive_key(key) is expected


def _logger_with_stream(name: str) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    logger = logging.getLogger(name)
    logger.handlers[:] = []
    logger.filters[:] = []
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return logger, stream


def test_redacting_filter_redacts_message_args_and_traceback():
    logger, stream = _logger_with_stream("test_redact.filter")
    logger.addFilter(RedactingFilter())
    db_pat = "dap" + "i" + _hex(32)
    logger.info("calling with %s and %d", f"Bearer {db_pat}", 3)
    try:
        raise RuntimeError(f"password={db_pat}")
    except RuntimeError:
        logger.exception("failed for %s", "job 1")
    out = stream.getvalue()
    assert db_pat not in out
    assert "calling with Bearer [REDACTED:" in out and " and 3" in out
    assert "RuntimeError: password=[REDACTED:password]" in out
    assert "failed for job 1" in out


def test_redacting_filter_survives_bad_format_args():
    logger, stream = _logger_with_stream("test_redact.badfmt")
    logger.addFilter(RedactingFilter())
    db_pat = "dap" + "i" + _hex(32)
    logger.warning("two %s %s", db_pat)  # one argument for two placeholders
    assert db_pat not in stream.getvalue()


def test_install_log_redaction_covers_child_loggers_and_is_idempotent():
    parent, stream = _logger_with_stream("test_redact.parent")
    f1 = install_log_redaction(parent)
    f2 = install_log_redaction(parent)
    assert f1 is f2
    assert sum(isinstance(f, RedactingFilter) for f in parent.handlers[0].filters) == 1
    child = logging.getLogger("test_redact.parent.child")
    child.setLevel(logging.DEBUG)
    token = _alnum(30)
    child.info("header Authorization: Bearer %s", token)
    assert token not in stream.getvalue()
    assert "Authorization: Bearer [REDACTED:bearer-token]" in stream.getvalue()


def test_redact_module_exports():
    assert set(redact_mod.__all__) == {
        "MARKER_PREFIX", "redact", "redact_obj", "is_sensitive_key", "RedactingFilter", "install_log_redaction",
    }
    for name in redact_mod.__all__:
        assert hasattr(redact_mod, name)
