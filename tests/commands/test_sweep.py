"""``python -m shared sweep``: one sweep from the command line, queued or inline."""

import base64
import io
import json
import time
import uuid

from shared.cli import main
from tests.helpers import corpus_doc


def _recent(fake, case):
    doc = corpus_doc(case)
    doc.pop("history", None)
    doc["run"]["end_time"] = int(time.time() * 1000) - 60_000
    doc["run"]["start_time"] = doc["run"]["end_time"] - 60_000
    return fake.load(doc)


def _run(argv, env):
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, env=env, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_sweep_inline_triages_here(fake_databricks, fake_databricks_env, tmp_path):
    run_id = _recent(fake_databricks, "dev-001")
    env = {**fake_databricks_env, "TRIAGE_STORAGE": f"sqlite:///{tmp_path / 't.db'}"}
    code, out, err = _run(["sweep", "--inline"], env)
    assert code == 0, err
    assert f"1 triaged [{run_id}]" in out
    code, out, _ = _run(["decisions", "show", f"{run_id}-0"], env)
    assert code == 0 and json.loads(out)["category"] == "PERMISSION"
    code, out, _ = _run(["sweep", "--inline", "-o", "json"], env)      # nothing left to do
    assert code == 0 and json.loads(out)["workspaces"][0]["already_decided"] == 1


def test_sweep_queues_to_the_host_storage(fake_databricks, fake_databricks_env, azurite, tmp_path):
    from azure.storage.queue import QueueClient

    run_id = _recent(fake_databricks, "dev-001")
    queue = "q" + uuid.uuid4().hex[:12]
    env = {**fake_databricks_env, "TRIAGE_STORAGE": f"sqlite:///{tmp_path / 't.db'}",
           "AzureWebJobsStorage": azurite.connection_string, "TRIAGE_QUEUE_NAME": queue}
    code, out, err = _run(["sweep", "--workspace", fake_databricks.url], env)
    assert code == 0, err
    assert f"1 queued [{run_id}]" in out
    with QueueClient.from_connection_string(azurite.connection_string, queue) as q:
        [message] = list(q.receive_messages())
    assert json.loads(base64.b64decode(message.content))["run_id"] == run_id


def test_sweep_unknown_workspace_is_one_error_line(fake_databricks_env, tmp_path):
    env = {**fake_databricks_env, "TRIAGE_STORAGE": f"sqlite:///{tmp_path / 't.db'}"}
    code, _, err = _run(["sweep", "--workspace", "nope", "--quiet"], env)
    assert code == 1 and err.startswith("error: ConfigError: workspace 'nope' is not configured")


def test_sweep_outage_exits_1_naming_the_workspace(fake_databricks, fake_databricks_env, tmp_path):
    from demo.workspace import status_fault

    env = {**fake_databricks_env, "TRIAGE_STORAGE": f"sqlite:///{tmp_path / 't.db'}"}
    fake_databricks.inject("runs/list", *[status_fault(503, retry_after=0) for _ in range(8)])
    code, out, err = _run(["sweep", "--inline"], env)
    assert code == 1 and "runs/list failed" in err and fake_databricks.url in err
