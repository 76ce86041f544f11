"""Security end to end: secrets planted in a failed run never leave the process.

Secrets of many shapes (made up at run time, never written in the repo) are planted in what the
fake workspace serves: the task's error and trace, the run's state message, the job's tags, a
notebook's ``base_parameters`` and the job cluster's ``spark_env_vars`` / ``spark_conf``. The real
pipeline (``shared.triage.triage_run``) then runs in act mode on three failures:

- a resize (RETRY_WITH_NEW_PARAMS): the task definitions are copied into a ``runs/submit``;
- a permission error (SEND_EMAIL) through the real ``EmailNotifier`` and its SDK, answered by
  the ACS fake behind azure-core's transport hook;
- an unknown error, where the rules ask the model (the fake OpenAI server); its answer echoes
  the secrets back.

with the decision store on SQLite and on Table Storage (Azurite), every log record captured at
DEBUG. Then no planted value may appear in anything that left the process or was kept: the raw
store (every row of every table), the model requests, the emails, the log records, the CLI's
output (``decisions list/show``, ``report``, ``export_finetune``), the HTML report and the
fine-tuning file. The ``runs/submit`` sent to Databricks must still carry the job's real
parameters (a redacted rerun would be a broken rerun), while the copy stored on the decision is
redacted.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import logging
import secrets as _random
import sqlite3
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from shared import cli
from shared.config import Settings
from shared.databricks import RetryPolicy
from shared.learning.feedback import record_feedback
from shared.app.runtime import build_client
from shared.secrets import SecretProvider
from shared.store import open_store
from shared.triage import report_triage_failure, triage_run
from tests.fakes.azure_services import AcsEmailService, FakeCredential
from demo.workspace import make_snapshot, make_token, status_fault
from tests.fakes.openai_server import FakeOpenAI

SENDER = "DoNotReply@triage-test.example.com"
_NOISY = ("azure", "urllib3", "httpx", "httpcore", "openai", "requests", "shared", "blueprints")


# --- the planted secrets ----------------------------------------------------------------------

def _b64(n: int) -> str:
    return base64.b64encode(_random.token_bytes(n)).decode("ascii")


def _word(n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(_random.choice(alphabet) for _ in range(n))


def _jwt() -> str:
    def part(obj: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return ".".join((part({"alg": "RS256", "typ": "JWT"}), part({"sub": _word(12), "aud": "api"}),
                     base64.urlsafe_b64encode(_random.token_bytes(48)).decode().rstrip("=")))


@dataclass
class Planted:
    """Secret values (name -> value), each unique to this run, and the texts that carry them."""

    values: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, value: str) -> str:
        self.values[name] = value
        return value

    def found_in(self, text: str) -> list[str]:
        return sorted(name for name, value in self.values.items() if value in text)


def _plant() -> tuple[Planted, dict[str, str]]:
    p = Planted()
    pat = p.add("databricks-pat", make_token())
    account_key = p.add("storage-account-key", _b64(64))
    conn = f"DefaultEndpointsProtocol=https;AccountName=lake{_word(6).lower()};AccountKey={account_key};" \
           "EndpointSuffix=core.windows.net"
    sig = p.add("sas-signature", quote(_b64(32), safe=""))
    sas_url = (f"https://lake.blob.core.windows.net/raw/in.csv?sv=2022-11-02&ss=b&srt=co&sp=rl"
               f"&se=2030-01-01T00:00:00Z&spr=https&sig={sig}")
    jdbc_pw = p.add("jdbc-password", "Jd" + _word(14))
    jdbc = f"jdbc:sqlserver://sql.example.com:1433;database=sales;user=etl;password={jdbc_pw}"
    jwt = p.add("bearer-jwt", _jwt())
    aws_id = p.add("aws-access-key-id", "AKIA" + _word(16, string.ascii_uppercase + string.digits))
    aws_secret = p.add("aws-secret-key", _b64(30))
    pem_body = p.add("private-key-body", _b64(60))
    pem = f"-----BEGIN RSA PRIVATE KEY-----\n{pem_body}\n-----END RSA PRIVATE KEY-----"
    texts = {
        "pat": pat, "account_key": account_key, "conn": conn, "sas_url": sas_url, "jdbc": jdbc, "jwt": jwt,
        "aws_id": aws_id, "aws_secret": aws_secret, "pem": pem,
        # secrets only a key name gives away
        "notebook_password": p.add("notebook-password", "Nb" + _word(14)),
        "env_password": p.add("env-password", "Ev" + _word(14)),
        "env_pwd": p.add("env-pwd", "Pw" + _word(14)),
        "env_pass": p.add("env-pass", "Ps" + _word(14)),
        "tag_secret": p.add("tag-secret", "Tg" + _word(20)),
        "state_password": p.add("state-message-password", "Sm" + _word(14)),
    }
    # what a Spark job prints when it fails while holding them
    texts["trace"] = "\n".join([
        f"  connecting with token {pat}",
        f"  spark.conf.set('fs.azure.account.key.lake.dfs.core.windows.net', '{account_key}')",
        f"  storage connection string: {conn}",
        f"  reading {sas_url}",
        f"  jdbc url {jdbc}",
        f"  request header Authorization: Bearer {jwt}",
        f"  aws_access_key_id={aws_id} aws_secret_access_key={aws_secret}",
        f"  key file:\n{pem}",
    ])
    return p, texts


# --- the failures -----------------------------------------------------------------------------

def _unique_run_id() -> int:
    return 100_000_000 + _random.randbelow(800_000_000)


def _with_secrets(doc: dict[str, Any], texts: dict[str, str], *, error_head: str) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    run = doc["run"]
    run["state"]["state_message"] = (f"Workload failed: the driver said Authorization: Bearer {texts['jwt']} "
                                     f"was refused; password={texts['state_password']}")
    doc["job"]["settings"]["tags"] = {"team": "data", "api_token": texts["tag_secret"],
                                      "notes": f"rotate password={texts['state_password']} monthly"}
    for out in doc["task_outputs"].values():
        out["error"] = error_head
        out["error_trace"] = f"{error_head}\n{texts['trace']}"
    return doc


def _resize_case(texts: dict[str, str]) -> dict[str, Any]:
    """An out-of-memory failure on a job cluster: triage submits a resized rerun of the task."""
    cluster = {"spark_version": "15.4.x-scala2.12", "node_type_id": "Standard_DS3_v2", "num_workers": 2,
               "spark_env_vars": {"DB_PASSWORD": texts["env_password"], "DB_PWD": texts["env_pwd"],
                                  "SNOWFLAKE_PASS": texts["env_pass"], "DATABRICKS_TOKEN": texts["pat"],
                                  "AWS_SECRET_ACCESS_KEY": texts["aws_secret"]},
               "spark_conf": {"fs.azure.account.key.lake.dfs.core.windows.net": texts["account_key"],
                              "spark.hadoop.fs.s3a.access.key": texts["aws_id"],
                              "spark.hadoop.fs.s3a.secret.key": texts["aws_secret"]}}
    task = {"task_key": "ingest", "result": "FAILED",
            "notebook_task": {"notebook_path": "/Workspace/etl/ingest",
                              "base_parameters": {"db_password": texts["notebook_password"],
                                                  "jdbc_url": texts["jdbc"], "source": texts["conn"],
                                                  "input": texts["sas_url"], "run_date": "2025-01-31"}}}
    doc = make_snapshot(run_id=_unique_run_id(), job_id=_unique_run_id(), job_name="nightly-ingest",
                        tasks=[task], job_clusters=[{"job_cluster_key": "main", "new_cluster": cluster}])
    return _with_secrets(doc, texts, error_head="java.lang.OutOfMemoryError: Java heap space")


def _permission_case(texts: dict[str, str]) -> dict[str, Any]:
    doc = make_snapshot(run_id=_unique_run_id(), job_id=_unique_run_id(), job_name="publish-sales")
    return _with_secrets(doc, texts, error_head="[INSUFFICIENT_PERMISSIONS] Insufficient privileges: User does "
                                                "not have USE CATALOG on Catalog 'sales'.")


def _unknown_case(texts: dict[str, str]) -> dict[str, Any]:
    doc = make_snapshot(run_id=_unique_run_id(), job_id=_unique_run_id(), job_name="vendor-sync")
    return _with_secrets(doc, texts, error_head="VendorSyncAbort: the partner feed handshake ended with code 0x5e")


def _network_case(texts: dict[str, str]) -> dict[str, Any]:
    """A transient failure of two tasks: triage repairs the run (the test makes Databricks refuse)."""
    doc = make_snapshot(run_id=_unique_run_id(), job_id=_unique_run_id(), job_name="hourly-load",
                        tasks=[{"task_key": "a", "result": "FAILED"}, {"task_key": "b", "result": "FAILED"}])
    head = "java.net.ConnectException: Connection refused (Connection refused)"
    for task in doc["run"]["tasks"]:   # the task whose output cannot be read is still classified
        task["state"]["state_message"] = head
    return _with_secrets(doc, texts, error_head=head)


def _refusal(texts: dict[str, str]) -> str:
    """An error message of the workspace that quotes secrets back."""
    return (f"Invalid access token {texts['pat']} for {texts['conn']}; "
            f"Authorization: Bearer {texts['jwt']}")


def _echo_verdict(texts: dict[str, str]) -> dict[str, Any]:
    """A model answer that repeats the secrets it should never have seen."""
    return {"category": "DATA", "confidence": 0.9, "is_transient": False,
            "root_cause": f"The feed rejected token {texts['pat']} and password={texts['jdbc'].split('password=')[1]}; "
                          f"Authorization: Bearer {texts['jwt']}",
            "recommended_action": "SEND_EMAIL",
            "suggested_fix": f"Rotate the key {texts['account_key']} and the connection {texts['conn']}; "
                             f"aws_secret_access_key={texts['aws_secret']}",
            "parameters": {"num_workers": None, "node_type": None, "spark_conf": []}}


# --- the store, on both backends, and its raw contents ------------------------------------------

@pytest.fixture(params=["sqlite", "tables"])
def storage(request, tmp_path):
    """(TRIAGE_STORAGE value, dump()): ``dump()`` returns every row of every table of the store as text."""
    if request.param == "sqlite":
        path = tmp_path / "security.db"

        def dump() -> str:
            con = sqlite3.connect(path)
            try:
                rows = []
                for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
                    rows.extend(repr(r) for r in con.execute(f'SELECT * FROM "{table}"'))
                return "\n".join(rows)
            finally:
                con.close()

        return f"sqlite:///{path}", dump

    from azure.data.tables import TableServiceClient

    conn = request.getfixturevalue("azurite").connection_string

    def dump() -> str:
        rows = []
        with TableServiceClient.from_connection_string(conn) as service:
            for table in service.list_tables():
                client = service.get_table_client(table.name)
                rows.extend(repr(dict(e)) for e in client.list_entities())
        return "\n".join(rows)

    return conn, dump


@pytest.fixture
def debug_logs(caplog):
    """Every logger at DEBUG into caplog, with no redacting handler left over from an earlier CLI
    run (such a handler would redact the records before caplog sees them and hide a leak)."""
    root = logging.getLogger()
    leftovers = [h for h in root.handlers if getattr(h, "_triage_cli", False)]
    for h in leftovers:
        root.removeHandler(h)
    levels = {name: logging.getLogger(name).level for name in _NOISY}
    for name in _NOISY:
        logging.getLogger(name).setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    try:
        yield caplog
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        for h in leftovers:
            if h not in root.handlers:
                root.addHandler(h)


def _log_text(records: list[logging.LogRecord]) -> str:
    out = []
    fmt = logging.Formatter()
    for r in records:
        out.append(f"{r.name} {r.levelname} {r.getMessage()}")
        if r.exc_info:
            out.append(fmt.formatException(r.exc_info))
        if r.exc_text:
            out.append(r.exc_text)
        if r.stack_info:
            out.append(r.stack_info)
    return "\n".join(out)


def _cli(env: dict[str, str], *argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), env=env, stdout=out, stderr=err)
    return code, out.getvalue() + "\n" + err.getvalue()


def _find(obj: Any, key: str) -> list[Any]:
    """Every value under ``key`` anywhere in a JSON-like object."""
    found = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == key:
                found.append(v)
            found.extend(_find(v, key))
    elif isinstance(obj, list):
        for v in obj:
            found.extend(_find(v, key))
    return found


# --- the test ---------------------------------------------------------------------------------

def test_security_planted_secrets_never_leave_the_process(storage, debug_logs, fake_databricks, tmp_path):
    planted, texts = _plant()
    storage_value, dump = storage
    signing_key = planted.add("feedback-signing-key", _random.token_urlsafe(32))
    openai_key = planted.add("openai-api-key", "sk-" + _word(40))
    planted.add("databricks-token-of-the-app", fake_databricks.token)
    if "AccountKey=" in storage_value:
        planted.add("azurite-account-key", storage_value.split("AccountKey=")[1].split(";")[0])

    acs = AcsEmailService()
    with FakeOpenAI(api_key=openai_key) as model:
        model.default = _echo_verdict(texts)
        env = {
            "TRIAGE_MODE": "act", "TRIAGE_MAX_WORKERS": "16", "TRIAGE_STORAGE": storage_value,
            "DATABRICKS_HOST": fake_databricks.url, "DATABRICKS_TOKEN": fake_databricks.token,
            "OPENAI_BASE_URL": f"{model.url}/v1", "OPENAI_API_KEY": openai_key, "OPENAI_MODEL": "gpt-test",
            "ACS_ENDPOINT": acs.endpoint, "EMAIL_SENDER": SENDER, "EMAIL_DEFAULT_TO": "data-platform@example.com",
            "EMAIL_ESCALATION_TO": "oncall@example.com", "TRIAGE_PUBLIC_BASE_URL": "https://triage-test.example.com",
            "TRIAGE_FEEDBACK_SIGNING_KEY": signing_key,
        }
        settings = Settings.from_env(env)
        from shared.notify import EmailNotifier

        store_options = {"retry_total": 1, "retry_backoff_factor": 0.1} if "AccountKey=" in storage_value else {}
        with SecretProvider.from_settings(settings) as secrets, \
                open_store(settings, **store_options) as store, \
                build_client(settings, secrets, retry=RetryPolicy(deadline_s=5, sleep=lambda s: None,
                                                                  jitter=False)) as client:
            notifier = EmailNotifier.from_settings(settings, store=store, secrets=secrets, credential=FakeCredential(),
                                                   transport=acs.transport, polling_interval_s=0,
                                                   retry_backoff_factor=0)
            results = {}
            for name, doc in (("resize", _resize_case(texts)), ("email", _permission_case(texts)),
                              ("unknown", _unknown_case(texts)), ("network", _network_case(texts))):
                run_id = fake_databricks.load(doc)
                if name == "network":   # one task's output cannot be read; the repair is refused
                    fake_databricks.inject("runs/get-output", status_fault(400, error_code="INVALID_STATE",
                                                                           message=_refusal(texts)))
                    fake_databricks.inject("runs/repair", status_fault(403, message=_refusal(texts)))
                results[name] = triage_run(run_id, settings, client=client, store=store, notifier=notifier,
                                           act_now=True, use_llm=name != "network")
            # a poison message whose error text carries secrets
            poison = report_triage_failure(_unique_run_id(), f"DatabricksError: {texts['trace']}", settings,
                                           store=store, notifier=notifier)
            notifier.close()
            keys = [r.record.decision_key for r in results.values()] + [poison.decision_key]
            for key in keys:
                record_feedback(store, key, "correct", comment=f"confirmed; the password={texts['jdbc'].split('=')[-1]}"
                                                                f" and token {texts['pat']} were rotated")

        # the pipeline did what each case needs (so the checks below look at real traffic)
        resize, email, unknown = results["resize"].record, results["email"].record, results["unknown"].record
        assert (resize.action, resize.status) == ("RETRY_WITH_NEW_PARAMS", "acted"), resize.to_dict()
        assert (email.category, email.action, email.status) == ("PERMISSION", "SEND_EMAIL", "acted"), email.to_dict()
        assert unknown.decided_by not in ("rules", "") and model.calls >= 1, unknown.to_dict()
        assert len(acs.accepted) >= 2
        network = results["network"].record
        # the refused repair (403) is handed to a person at once, with the error (redacted)
        assert (network.action, network.status) == ("RETRY", "escalated"), (network.category, network.reason)
        assert "[REDACTED:" in network.action_result["error"] and "[REDACTED:" in network.action_result["escalated"]

        # the rerun sent to Databricks carries the job's real parameters ...
        [submit] = fake_databricks.requests_to("runs/submit")
        sent_task = submit.body["tasks"][0]
        assert sent_task["notebook_task"]["base_parameters"]["db_password"] == texts["notebook_password"]
        assert sent_task["notebook_task"]["base_parameters"]["jdbc_url"] == texts["jdbc"]
        assert sent_task["new_cluster"]["spark_env_vars"]["DB_PWD"] == texts["env_pwd"]
        assert sent_task["new_cluster"]["spark_conf"]["fs.azure.account.key.lake.dfs.core.windows.net"] == \
            texts["account_key"]
        assert sent_task["new_cluster"]["num_workers"] == 4
        # ... while the copy stored on the decision keeps no job input value at all (a secret under
        # a neutral name cannot be recognised) and redacts the Spark conf key by key
        leaks: dict[str, list[str]] = {}
        stored_task = resize.action_request["requests"][0]["body"]["tasks"][0]
        for where, values in (("stored base_parameters", stored_task["notebook_task"]["base_parameters"]),
                              ("stored spark_env_vars", stored_task["new_cluster"]["spark_env_vars"])):
            assert set(values) and all(v == "[not stored]" or v.startswith("[REDACTED:") for v in values.values()), where
        kept = sorted(k for k, v in stored_task["new_cluster"]["spark_conf"].items()
                      if "[REDACTED:" not in v and k.startswith(("fs.azure.account.key", "spark.hadoop")))
        if kept:
            leaks["stored spark_conf"] = kept

        def check(where: str, text: str) -> None:
            found = planted.found_in(text)
            if found:
                leaks[where] = found

        check("store (every row of every table)", dump())
        check("model requests", "\n".join(json.dumps(r.body) for r in model.requests))
        for i, sent in enumerate(acs.accepted):
            check(f"email {i} ({sent.subject})", "\n".join((sent.subject, sent.html, sent.text)))

        # the command line, on the same store
        code, out = _cli(env, "decisions", "list")
        assert code == 0, out
        check("decisions list", out)
        code, out = _cli(env, "decisions", "list", "--format", "json")
        assert code == 0, out
        check("decisions list --format json", out)
        for key in keys:
            code, out = _cli(env, "decisions", "show", key)
            assert code == 0, out
            check(f"decisions show {key}", out)
        html_path = tmp_path / "report.html"
        code, out = _cli(env, "report", "--since", "1d", "--html", str(html_path))
        assert code == 0, out
        check("report output", out)
        check("report HTML", html_path.read_text(encoding="utf-8"))
        train = tmp_path / "train.jsonl"
        code, out = _cli(env, "export-finetune", "-o", str(train), "--valid-percent", "0")
        assert code == 0, out
        check("export-finetune output", out)
        exported = train.read_text(encoding="utf-8")
        assert len(exported.splitlines()) >= 3, exported   # the confirmed decisions are in it
        check("fine-tuning file", exported)

        # an error of a command, with and without --debug (the workspace's refusal quotes secrets)
        fake_databricks.inject("runs/get", *[status_fault(403, message=_refusal(texts))] * 2)
        for flags in ((), ("--debug",)):
            code, out = _cli(env, *flags, "triage", "--run-id", str(resize.run_id), "--no-llm")
            assert code == 1 and "DatabricksAuthError" in out, out
            check(f"triage {' '.join(flags)} error", out)

        for record in debug_logs.records:
            check(f"log record of {record.name} ({record.msg!r:.60})", _log_text([record]))
        assert debug_logs.records, "no log record was captured"
        assert not leaks, f"planted secrets left the process: {leaks}"



# --- a secret cut in half by a length limit is no longer recognisable: redact first ---------------

def _partial_leak(secret: str, text: str, size: int = 12) -> bool:
    """True when any ``size`` consecutive characters of ``secret`` are in ``text``."""
    return any(secret[i:i + size] in text for i in range(len(secret) - size + 1))


def _straddling(prefix: str, limit: int, secret: str, offset: int) -> str:
    """``prefix``, filler, then ``secret`` starting ``offset`` characters before ``limit``."""
    return prefix + "y" * (limit - offset - 1 - len(prefix)) + " " + secret


def test_security_excerpt_cut_through_a_secret_keeps_no_part_of_it():
    """An excerpt line is cut at 600 characters."""
    from shared.triage import decide
    from tests.helpers import make_snapshot as snapshot_with_error

    for secret in (make_token(), _b64(64)):
        for offset in range(4, len(secret) - 4, 7):   # the limit falls inside the secret
            error = _straddling("java.lang.RuntimeException: ", 600, secret, offset)
            excerpt = decide(snapshot_with_error(error), Settings(), use_llm=False).excerpt
            assert not _partial_leak(secret, excerpt), (offset, excerpt[-100:])


def test_security_state_message_excerpt_cut_through_a_secret_keeps_no_part_of_it():
    """A run whose only text is an uninformative state message: its first 2000 characters are the excerpt."""
    from shared.triage import decide
    from tests.helpers import make_snapshot as snapshot_with_error

    token = make_token()
    for offset in range(4, len(token) - 4, 5):
        message = _straddling("at ", 2000, token, offset)
        excerpt = decide(snapshot_with_error("", state_message=message), Settings(), use_llm=False).excerpt
        assert excerpt, "the state message should be the excerpt"
        assert not _partial_leak(token, excerpt), (offset, excerpt[-100:])


def test_security_workspace_error_cut_through_a_secret_keeps_no_part_of_it(fake_databricks):
    from shared.databricks import DatabricksClient, PatCredential
    from shared.errors import DatabricksAuthError

    run_id = fake_databricks.load(make_snapshot(run_id=_unique_run_id()))
    policy = RetryPolicy(deadline_s=5, sleep=lambda s: None, jitter=False)
    token = make_token()
    with DatabricksClient(fake_databricks.url, PatCredential(fake_databricks.token), retry=policy) as client:
        for offset in range(4, len(token) - 4, 5):   # the message is shortened to 500 characters
            fake_databricks.inject("runs/get", status_fault(403, message=_straddling("Denied: ", 497, token, offset)))
            with pytest.raises(DatabricksAuthError) as info:
                client.get_run(run_id)
            assert not _partial_leak(token, str(info.value)), (offset, str(info.value)[-100:])
            assert fake_databricks.token not in str(info.value)


def test_security_long_feedback_comment_cut_through_a_secret_keeps_no_part_of_it(tmp_path):
    """Comments are cut at 4x their limit before redaction; a long redacted part before the cut
    brings the cut's neighbourhood within the limit."""
    from shared.learning.feedback import MAX_COMMENT_CHARS, clean_comment

    token = make_token()
    pem = "-----BEGIN PRIVATE KEY-----\n" + _b64(int(2.4 * MAX_COMMENT_CHARS)) + "\n-----END PRIVATE KEY-----"
    for offset in range(4, len(token) - 4, 5):
        comment = _straddling(pem + " note: ", 4 * MAX_COMMENT_CHARS, token, offset) + " and more words"
        stored = clean_comment(comment)
        assert "[REDACTED:private-key]" in stored
        assert not _partial_leak(token, stored), (offset, stored[-100:])


# --- errors on the command line -----------------------------------------------------------------

@pytest.mark.parametrize("flags", [(), ("--debug",)])
def test_security_cli_error_line_and_traceback_are_redacted(flags, tmp_path):
    """An error message may quote what it read (here a snapshot file's bad field); the command
    lets the error through to the CLI, which prints it (and with --debug its traceback)."""
    token = make_token()
    path = tmp_path / "snapshot.json"
    path.write_text(json.dumps({"snapshot_version": token, "run": {"run_id": 1}}), encoding="utf-8")
    code, out = _cli({}, *flags, "email-preview", str(path), "--no-llm")
    assert code == 1 and "SnapshotError" in out and "[REDACTED:" in out, out
    assert ("Traceback" in out) == bool(flags), out
    assert not _partial_leak(token, out), out


# --- log lines of the Functions app ------------------------------------------------------------

def test_security_function_app_redacts_every_log_line():
    """The Functions worker puts its handler on the root logger before it imports function_app;
    every record any logger sends through that handler comes out redacted."""
    import subprocess
    import sys

    token = make_token()
    code = (
        "import io, logging\n"
        "stream = io.StringIO()\n"
        "logging.getLogger().addHandler(logging.StreamHandler(stream))   # the worker's handler\n"
        "logging.getLogger().setLevel(logging.INFO)\n"
        "import function_app\n"
        f"logging.getLogger('shared.databricks.capture').warning('runs/get-output failed: %s', 'token {token}')\n"
        f"logging.getLogger('azure.core').info('answer: password={token}')\n"
        "print(stream.getvalue())\n"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "runs/get-output failed" in done.stdout and "[REDACTED:" in done.stdout, done.stdout
    assert token not in done.stdout + done.stderr


# --- Key Vault mode: nothing secret from plain app settings ----------------------------------------

def test_security_key_vault_mode_reads_no_secret_from_app_settings(fake_databricks, caplog):
    from shared.config import SECRET_SETTINGS
    from shared.databricks import DatabricksClient
    from shared.llm import backend_from_settings
    from shared.secrets import key_vault_name
    from shared.triage import decide
    from shared.app.webhook import webhook_credentials
    from tests.fakes.azure_services import KeyVaultService
    from tests.helpers import make_snapshot as snapshot_with_error

    plain = {name: f"plain-{name.lower()}-{_word(20)}" for name in SECRET_SETTINGS}   # left in app settings
    vaulted = {name: f"vault-{name.lower()}-{_word(20)}" for name in SECRET_SETTINGS}
    vaulted["DATABRICKS_TOKEN"] = fake_databricks.token
    vault = KeyVaultService({key_vault_name(name): value for name, value in vaulted.items()})
    run_id = fake_databricks.load(make_snapshot(run_id=_unique_run_id()))
    caplog.set_level(logging.DEBUG)
    with FakeOpenAI(api_key=vaulted["OPENAI_API_KEY"]) as model:
        env = {**plain, "KEY_VAULT_URL": vault.vault_url, "DATABRICKS_HOST": fake_databricks.url,
               "OPENAI_BASE_URL": f"{model.url}/v1", "OPENAI_MODEL": "gpt-test"}
        settings = Settings.from_env(env)
        policy = RetryPolicy(deadline_s=5, sleep=lambda s: None, jitter=False)
        with SecretProvider.from_settings(settings, credential=FakeCredential(), transport=vault.transport) as secrets:
            assert {name: secrets.get(name) for name in SECRET_SETTINGS} == vaulted
            with build_client(settings, secrets, retry=policy) as client:
                assert client.get_run(run_id)["run_id"] == run_id
            with DatabricksClient.from_settings(settings, secrets=secrets, retry=policy) as client:
                assert client.get_run(run_id)["run_id"] == run_id
            with backend_from_settings(settings, secrets=secrets) as backend:
                decided = decide(snapshot_with_error("VendorSyncAbort: the partner feed ended with 0x5e"), settings,
                                 llm=backend)
            creds = webhook_credentials(secrets)
    assert {r.auth for r in fake_databricks.requests} == {"valid"}
    assert model.calls == 1 and decided.llm is not None, decided
    assert (creds.username, creds.password) == (vaulted["TRIAGE_WEBHOOK_USERNAME"], vaulted["TRIAGE_WEBHOOK_PASSWORD"])
    sent = json.dumps([{"headers": r.headers, "body": r.body} for r in model.requests])
    logged = _log_text(caplog.records)
    for name, value in plain.items():
        assert value not in sent and value not in logged, name
        assert f"ignoring app setting {name}" in logged   # named once, never its value
