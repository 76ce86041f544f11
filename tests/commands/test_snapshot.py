"""`python -m shared snapshot`: capture a run from the (fake) workspace as a snapshot file."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from shared.cli import main
from shared.snapshot import load_snapshot
from demo.workspace import make_snapshot, make_token, status_fault

ROOT = Path(__file__).resolve().parents[2]


def run_cli(argv, env):
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, env=env, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def load_three(fake):
    return fake.load(make_snapshot(run_id=6000, tasks=[
        {"task_key": "extract"},
        {"task_key": "transform", "result": "FAILED", "depends_on": ["extract"]},
        {"task_key": "load", "result": "UPSTREAM_FAILED", "depends_on": ["transform"]},
    ], error="java.lang.OutOfMemoryError: Java heap space"))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_snapshot_command_prints_snapshot_to_stdout(fake_databricks, fake_databricks_env):
    load_three(fake_databricks)
    code, out, err = run_cli(["snapshot", "--run-id", "6000", "--no-store", "--quiet"], fake_databricks_env)
    assert (code, err) == (0, "")
    doc = json.loads(out)
    assert doc["run"]["run_id"] == 6000 and list(doc["task_outputs"]) == ["600002"]
    assert doc["job"]["settings"]["name"] == "nightly-etl"
    assert [r.endpoint for r in fake_databricks.requests] == ["runs/get", "runs/get-output", "get"]


def test_snapshot_command_writes_a_replayable_file(fake_databricks, fake_databricks_env, tmp_path):
    load_three(fake_databricks)
    target = tmp_path / "case.json"
    code, out, err = run_cli(["snapshot", "--run-id", "6000", "-o", str(target), "--case-id", "oom-1",
                              "--no-store"], fake_databricks_env)
    assert code == 0 and out == ""
    assert err.splitlines()[0] == "note: -o FILE is deprecated, use --out FILE (-o now takes json or table)"
    assert err.splitlines()[-1] == f"wrote {target}: run 6000, 1 task output(s)"
    snap = load_snapshot(target)
    assert snap.case_id == "oom-1" and snap.failed_tasks[0].error.startswith("java.lang.OutOfMemoryError")


def test_snapshot_command_survives_throttling(fake_databricks, fake_databricks_env):
    load_three(fake_databricks)
    fake_databricks.inject("runs/get", status_fault(429, retry_after=0), status_fault(503, retry_after=0))
    code, out, _ = run_cli(["snapshot", "--run-id", "6000", "--no-store"], fake_databricks_env)
    assert code == 0 and json.loads(out)["run"]["run_id"] == 6000


def test_snapshot_command_refused_token_is_one_line_exit_1(fake_databricks):
    token = make_token()
    env = {"DATABRICKS_HOST": fake_databricks.url, "DATABRICKS_TOKEN": token}
    code, out, err = run_cli(["snapshot", "--run-id", "6000", "--no-store", "-q"], env)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: DatabricksAuthError: Invalid access token.")
    assert token not in err


def test_snapshot_command_unreachable_workspace_is_one_line_exit_1():
    env = {"DATABRICKS_HOST": f"http://127.0.0.1:{closed_port()}", "DATABRICKS_TOKEN": make_token()}
    code, out, err = run_cli(["snapshot", "--run-id", "1", "--no-store", "--retry-deadline", "0.2", "-q"], env)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: DatabricksUnavailable: cannot connect to 127.0.0.1")


def test_snapshot_command_missing_run_is_exit_1(fake_databricks, fake_databricks_env):
    code, _, err = run_cli(["snapshot", "--run-id", "42", "--no-store", "-q"], fake_databricks_env)
    assert code == 1 and err.startswith("error: DatabricksNotFound: Run 42 does not exist.")


def test_snapshot_command_without_host_names_the_setting():
    code, _, err = run_cli(["snapshot", "--run-id", "42", "--no-store"], {"DATABRICKS_TOKEN": make_token()})
    assert code == 1 and "DATABRICKS_HOST" in err and err.count("\n") == 1


def test_snapshot_command_requires_run_id():
    code, _, _ = run_cli(["snapshot"], {})
    assert code == 2


def test_snapshot_command_rejects_nonpositive_deadline(fake_databricks_env):
    code, _, err = run_cli(["snapshot", "--run-id", "1", "--retry-deadline", "0", "--no-store"], fake_databricks_env)
    assert code == 2 and "--retry-deadline" in err


def test_snapshot_command_runs_as_a_module(fake_databricks, fake_databricks_env):
    load_three(fake_databricks)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABRICKS_", "TRIAGE_"))}
    env.update(fake_databricks_env)
    done = subprocess.run([sys.executable, "-m", "shared", "snapshot", "--run-id", "6000", "--no-store"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["run"]["run_id"] == 6000


def test_snapshot_file_for_bug_reports_holds_no_secret(fake_databricks, fake_databricks_env, tmp_path):
    """A snapshot is a file people attach to bug reports: every secret planted in the failure's
    error text, the job's settings or its parameters is redacted, and the file still replays."""
    from tests.test_redact import PLANTED

    planted = [secret for _, _, secret in PLANTED]
    trace = "java.lang.OutOfMemoryError: Java heap space\n" + "\n".join(text for _, text, _ in PLANTED)
    account_key = PLANTED[4][2]
    doc = make_snapshot(run_id=6100, tasks=[{"task_key": "transform", "result": "FAILED"}], error=trace,
                        job_parameters={"password": PLANTED[0][2]},
                        job_settings={"job_clusters": [{"job_cluster_key": "main", "new_cluster": {
                            "spark_version": "15.4.x-scala2.12", "node_type_id": "Standard_DS3_v2", "num_workers": 2,
                            "spark_conf": {"fs.azure.account.key.acct1.dfs.core.windows.net": account_key},
                            "spark_env_vars": {"DB_PASSWORD": PLANTED[-1][2]}}}]})
    fake_databricks.load(doc)
    target = tmp_path / "case.json"
    code, out, err = run_cli(["snapshot", "--run-id", "6100", "--out", str(target), "--no-store", "-q"],
                             fake_databricks_env)
    assert code == 0, err
    text = target.read_text(encoding="utf-8")
    leaked = [s for s in planted if s in text or json.dumps(s)[1:-1] in text]
    assert not leaked, f"{len(leaked)} planted secret(s) in the snapshot file"
    assert "REDACTED" in text
    snap = load_snapshot(target)
    assert snap.failed_tasks[0].error.startswith("java.lang.OutOfMemoryError")
