"""The command line's conventions, across commands: exit codes, one error line, progress on
stderr (silenced by --quiet), deadlines, a refused connection failing fast, the store named,
local.settings.json read as ``func start`` would."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shared.cli import main
from tests.helpers import corpus_doc

REPO = Path(__file__).resolve().parents[2]


def _run(argv, env):
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, env=env, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _recent(fake, case):
    doc = corpus_doc(case)
    doc.pop("history", None)
    doc["run"]["end_time"] = int(time.time() * 1000) - 60_000
    doc["run"]["start_time"] = doc["run"]["end_time"] - 60_000
    return fake.load(doc)


@pytest.mark.parametrize("argv", [["triage", "--run-id", "1", "--timeout", "5"], ["sweep", "--inline", "--timeout", "5"],
                                  ["snapshot", "--run-id", "1", "--no-store", "--timeout", "5"]])
def test_refused_connection_fails_at_once_with_one_line(argv, tmp_path):
    env = {"DATABRICKS_HOST": f"http://127.0.0.1:{_closed_port()}", "DATABRICKS_TOKEN": "dapi" + "0" * 32,
           "TRIAGE_STORAGE": f"sqlite:///{tmp_path / 't.db'}"}
    code, out, err = _run([*argv, "--quiet"], env)
    assert code == 1
    [line] = err.splitlines()
    assert line.startswith("error: ") and "Connection refused" in line and "gave up" not in line, line
    assert "due actions" not in out


def test_triage_timeout_on_a_closed_port_is_one_line_in_a_subprocess(tmp_path):
    env = {**os.environ, "DATABRICKS_HOST": f"http://127.0.0.1:{_closed_port()}", "DATABRICKS_TOKEN": "dapi" + "1" * 32,
           "TRIAGE_STORAGE": f"sqlite:///{tmp_path / 't.db'}", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "shared", "triage", "--run-id", "7", "--timeout", "5"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stdout == ""
    errors = [ln for ln in done.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "DatabricksUnavailable" in errors[0], done.stderr
    assert done.stderr.splitlines()[0].startswith("store: SQLite file ")


def test_retries_are_announced_and_the_timeout_bounds_them(fake_databricks, fake_databricks_env, tmp_path):
    from demo.workspace import status_fault

    env = {**fake_databricks_env, "TRIAGE_STORAGE": f"sqlite:///{tmp_path / 't.db'}"}
    run_id = _recent(fake_databricks, "dev-001")
    fake_databricks.inject("runs/get", status_fault(503, retry_after=0))
    code, out, err = _run(["triage", "--run-id", str(run_id)], env)
    assert code == 0, err
    assert any(ln.startswith("retrying runs/get in 0 s (2/8): HTTP 503") for ln in err.splitlines()), err
    assert f"[1/1] run {run_id} -> SEND_EMAIL" in err.splitlines()
    fake_databricks.inject("runs/get", *[status_fault(503, retry_after=3) for _ in range(3)])
    code, out, err = _run(["triage", "--run-id", str(run_id + 1), "--timeout", "1", "--quiet"], env)
    assert code == 1 and out == ""
    [line] = err.splitlines()
    assert line.startswith("error: DatabricksUnavailable: HTTP 503") and "deadline" in line


def test_triage_prints_a_summary_or_json(fake_databricks, fake_databricks_env, tmp_path):
    env = {**fake_databricks_env, "TRIAGE_STORAGE": f"sqlite:///{tmp_path / 't.db'}"}
    run_id = _recent(fake_databricks, "dev-001")
    code, out, err = _run(["triage", "--run-id", str(run_id)], env)
    assert code == 0, err
    assert out.startswith(f"run {run_id}: PERMISSION -> SEND_EMAIL (confidence ") and len(out) < 1200
    assert "mode shadow" in out and "reason: " in out
    code, out, _ = _run(["triage", "--run-id", str(run_id), "-o", "json"], env)
    doc = json.loads(out)
    assert code == 0 and doc["duplicate"] is True and doc["mode"] == "shadow"
    assert "a shadow decision is never acted on later" in doc["message"]
    # act mode with no channel to reach a person is refused, with one line
    code, out, err = _run(["triage", "--run-id", str(run_id), "--mode", "act"], env)
    assert code == 1 and out == ""
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert errors == [ln for ln in err.splitlines() if "error" in ln] and len(errors) == 1
    assert errors[0].startswith("error: ConfigError: TRIAGE_MODE=act needs a notification channel")
    from tests.fakes.channel_services import ChannelServices

    channels = ChannelServices().start()
    try:
        hook = {"TRIAGE_WEBHOOK_URL": channels.hook_url, "TRIAGE_WEBHOOK_SECRET": channels.webhook_secret,
                "TRIAGE_NOTIFY_VIA": "webhook", "TRIAGE_ESCALATE_VIA": "webhook"}
        code, out, _ = _run(["triage", "--run-id", str(run_id), "--mode", "act"], {**env, **hook})
    finally:
        channels.stop()
    assert code == 0 and "already decided" in out and "never acted on later" in out


def test_sweep_progress_per_run_and_quiet(fake_databricks, fake_databricks_env, tmp_path):
    env = {**fake_databricks_env, "TRIAGE_STORAGE": f"sqlite:///{tmp_path / 't.db'}"}
    ids = [_recent(fake_databricks, case) for case in ("dev-001", "dev-043")]
    code, out, err = _run(["sweep", "--inline"], env)
    assert code == 0, err
    progress = [ln for ln in err.splitlines() if ln.startswith("[")]
    assert [ln.split(" run ")[0] for ln in progress] == ["[1/2]", "[2/2]"]
    assert sorted(int(ln.split(" run ")[1].split()[0]) for ln in progress) == sorted(ids)
    assert all(ln.split(" -> ")[1] in ("SEND_EMAIL", "RETRY", "ESCALATE", "RETRY_WITH_NEW_PARAMS") for ln in progress)
    code, out, err = _run(["sweep", "--inline", "-q"], env)
    assert code == 0 and err == ""


def test_failed_sweep_says_failed_and_the_error_once(fake_databricks, fake_databricks_env, tmp_path):
    from demo.workspace import status_fault

    env = {**fake_databricks_env, "TRIAGE_STORAGE": f"sqlite:///{tmp_path / 't.db'}"}
    fake_databricks.inject("runs/list", *[status_fault(400, error_code="INVALID_PARAMETER_VALUE")])
    code, out, err = _run(["sweep", "--inline", "--quiet"], env)
    assert code == 1
    assert "FAILED" in out and "due actions carried out" not in out
    [line] = err.splitlines()
    assert line.startswith("error: ") and "runs/list failed" in line


def test_local_settings_values_are_read_unless_the_environment_sets_them(tmp_path):
    store = tmp_path / "from-file.db"
    (tmp_path / "local.settings.json").write_text(json.dumps({
        "IsEncrypted": False, "Values": {"TRIAGE_STORAGE": f"sqlite:///{store}", "FUNCTIONS_WORKER_RUNTIME": "python"}}))
    env = {k: v for k, v in os.environ.items() if k != "TRIAGE_STORAGE"}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run([sys.executable, "-m", "shared", "decisions", "list"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and f"store: SQLite file {store} (TRIAGE_STORAGE)" in done.stderr
    other = tmp_path / "from-env.db"
    done = subprocess.run([sys.executable, "-m", "shared", "decisions", "list"], cwd=tmp_path, timeout=60,
                          env={**env, "TRIAGE_STORAGE": f"sqlite:///{other}"}, capture_output=True, text=True)
    assert f"store: SQLite file {other} (TRIAGE_STORAGE)" in done.stderr
    assert not store.exists() and not other.exists()


def test_classify_empty_folder_says_so_and_subfolders_count(tmp_path):
    code, out, err = _run(["classify", str(tmp_path)], {})
    assert (code, out) == (1, "") and "no *.json snapshots in this folder or its subfolders" in err
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    (sub / "case.json").write_text(json.dumps(corpus_doc("dev-001")))
    code, out, _ = _run(["classify", str(tmp_path), "-o", "table", "--no-llm"], {})
    assert code == 0 and out.splitlines()[0].split()[:3] == ["CASE_ID", "CATEGORY", "ACTION"]
    assert len(out.splitlines()) == 3


def test_files_written_into_missing_folders(tmp_path):
    from tests.commands.test_email_preview import CORPUS

    target = tmp_path / "new" / "deeper" / "preview.html"
    code, out, err = _run(["email-preview", str(CORPUS / "dev-001.json"), "--out", str(target)], {})
    assert code == 0 and target.is_file(), err
    code, out, err = _run(["email-preview", str(CORPUS / "dev-001.json"), "-o", "json"], {})
    assert code == 0 and json.loads(out)["subject"]


def test_azure_credential_failure_names_the_fix_and_keeps_the_sdk_text():
    from azure.identity import CredentialUnavailableError

    from shared.databricks import AzureIdentityCredential
    from shared.errors import DatabricksAuthError
    from shared.redact import redact

    class NoCredential:
        def get_token(self, *scopes, **kwargs):
            raise CredentialUnavailableError(
                "DefaultAzureCredential failed to retrieve a token from the included credentials.\nAttempted "
                "credentials:\n\tEnvironmentCredential: EnvironmentCredential authentication unavailable. "
                "Environment variables are not fully configured.\n\tManagedIdentityCredential: "
                "ManagedIdentityCredential authentication unavailable, no response from the IMDS endpoint.")

    with pytest.raises(DatabricksAuthError) as info:
        AzureIdentityCredential(NoCredential()).authorization()
    line = redact(f"error: {type(info.value).__name__}: {info.value}")
    assert line.startswith("error: DatabricksAuthError: no Azure credential found: run `az login`, or set "
                           "DATABRICKS_TOKEN")
    assert "EnvironmentCredential: EnvironmentCredential authentication unavailable" in line
    assert "ManagedIdentityCredential: ManagedIdentityCredential authentication unavailable" in line
    assert "[REDACTED" not in line and "\n" not in line


def test_export_finetune_writes_into_missing_folders(tmp_path):
    from shared.config import Settings
    from shared.store import open_store

    env = {"TRIAGE_STORAGE": f"sqlite:///{tmp_path / 't.db'}"}
    open_store(Settings.from_env(env)).close()                     # an existing, empty store
    target = tmp_path / "data" / "2026" / "train.jsonl"
    code, out, err = _run(["export-finetune", "--out", str(target), "-q"], env)
    assert code == 0 and err == "" and target.is_file()
    code, out, err = _run(["export-finetune", "-o", str(tmp_path / "old" / "t.jsonl")], env)   # the old spelling
    assert code == 0 and (tmp_path / "old" / "t.jsonl").is_file()
    assert "note: -o FILE is deprecated, use --out FILE" in err
    code, out, _ = _run(["export-finetune", "--out", str(target), "-o", "json", "-q"], env)
    assert code == 0 and json.loads(out)["train_file"] == str(target)


def test_feedback_job_by_name(tmp_path):
    from shared.config import Settings
    from shared.store import DecisionRecord, open_store

    env = {"TRIAGE_STORAGE": f"sqlite:///{tmp_path / 't.db'}"}
    with open_store(Settings.from_env(env)) as store:
        store.claim(DecisionRecord(decision_key="9-0", job_id="99", run_id=9, job_name="Nightly ETL",
                                   category="NETWORK", action="RETRY"))
    code, out, err = _run(["feedback", "9-0", "--verdict", "correct", "--job", "nightly etl", "-q"], env)
    assert code == 0 and out.startswith("feedback on 9-0 (job 99, NETWORK -> RETRY)"), err
    code, _, err = _run(["feedback", "9-0", "--verdict", "correct", "--job", "other job", "-q"], env)
    assert code == 1 and "DecisionNotFound" in err


def test_a_tls_failure_is_one_line_not_a_crash(fake_databricks, tmp_path):
    # https:// to a server that speaks plain HTTP: the TLS error's own 'reason' is a text, which the
    # refused-connection check and the description must step over.
    env = {"DATABRICKS_HOST": fake_databricks.url.replace("http://", "https://"),
           "DATABRICKS_TOKEN": fake_databricks.token, "TRIAGE_STORAGE": f"sqlite:///{tmp_path / 't.db'}"}
    code, out, err = _run(["triage", "--run-id", "1", "--timeout", "5", "-q"], env)
    assert code == 1 and out == ""
    [line] = err.splitlines()
    assert line.startswith("error: DatabricksError: cannot connect to 127.0.0.1") and "SSL" in line, line


def test_a_mistyped_flag_is_reported_by_its_command_with_the_nearest_flag(tmp_path):
    code, out, err = _run(["decisions", "list", "--sinse", "24h"], {"TRIAGE_STORAGE": f"sqlite:///{tmp_path / 't.db'}"})
    assert code == 2 and out == ""
    assert "usage: python -m shared decisions list" in err
    assert "error: unrecognized arguments: --sinse 24h (did you mean --since?)" in err
    assert "(see 'python -m shared decisions list --help')" in err
    assert not (tmp_path / "t.db").exists()
    code, _, err = _run(["report", "--bogus"], {})
    assert code == 2 and "usage: python -m shared report" in err and "did you mean" not in err
