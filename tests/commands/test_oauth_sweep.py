"""The operator's path end to end, as separate command-line processes: a sweep of 30 failures
authenticated with OAuth M2M (a service principal's client id and secret exchanged at the
workspace's /oidc/v1/token) against the stand-in workspace, progress on stderr; then
``decisions list -o json`` and ``report -o json`` parse as JSON; and ``decisions list`` on a
store that does not exist says so and creates nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import CORPUS, corpus_doc

REPO = Path(__file__).resolve().parents[2]


def _cli(*argv: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shared", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=240)


def test_oauth_m2m_sweep_of_30_failures_then_json_reads(fake_databricks, tmp_path):
    now = int(time.time() * 1000)
    ids = []
    for i, path in enumerate(sorted(CORPUS.glob("dev-0*.json"))[:30]):
        doc = corpus_doc(path.stem)
        doc.pop("history", None)
        doc["run"]["end_time"] = now - 120_000 + i
        doc["run"]["start_time"] = doc["run"]["end_time"] - 60_000
        ids.append(fake_databricks.load(doc))
    assert len(set(ids)) == 30
    client_id, secret = fake_databricks.add_oauth_client()
    store = tmp_path / "store" / "triage.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABRICKS_", "TRIAGE_", "ARM_"))}
    env.update({"PYTHONPATH": str(REPO), "HOME": str(tmp_path), "DATABRICKS_HOST": fake_databricks.url,
                "DATABRICKS_AUTH_TYPE": "oauth-m2m", "DATABRICKS_CLIENT_ID": client_id,
                "DATABRICKS_CLIENT_SECRET": secret, "TRIAGE_STORAGE": f"sqlite:///{store}"})

    done = _cli("sweep", "--inline", "--timeout", "120", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    progress = [ln for ln in done.stderr.splitlines() if ln.startswith("[")]
    assert len(progress) == 30 and progress[0].startswith("[1/30] run ") and progress[-1].startswith("[30/30] run ")
    assert all(" -> " in ln for ln in progress)
    assert "30 failed" in done.stdout and "30 triaged" in done.stdout
    assert secret not in done.stdout + done.stderr
    # one token for the whole sweep, every Jobs API call made with it, the PAT never used
    token_calls = fake_databricks.requests_to("/oidc/v1/token")
    assert len(token_calls) == 1 and token_calls[0].status == 200 and token_calls[0].auth == "basic"
    api = [r for r in fake_databricks.requests if r.path.startswith("/api/")]
    assert api and all(r.auth == "valid" for r in api)

    done = _cli("decisions", "list", "-o", "json", "--limit", "0", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    decisions = json.loads(done.stdout)
    assert sorted(d["run_id"] for d in decisions) == sorted(ids)
    assert all(d["mode"] == "shadow" for d in decisions)

    done = _cli("report", "-o", "json", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["decisions"] == 30 and sum(c["decisions"] for c in report["categories"]) == 30

    missing = tmp_path / "typo" / "triag.db"
    done = _cli("decisions", "list", env={**env, "TRIAGE_STORAGE": f"sqlite:///{missing}"}, cwd=tmp_path)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.splitlines()[-1].startswith("error: StoreMissing: no decision store: no SQLite file ")
    assert not missing.exists() and not missing.parent.exists()
