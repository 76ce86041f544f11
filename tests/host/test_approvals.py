"""Approval requests through the real worker: a retry the policy refuses to take on the model's word
alone becomes a pending approval; the Approve link from the email opens a confirmation page
through the host, its form POST carries the retry out once, and the link cannot be used twice."""

import json
import random
import time
from urllib.parse import urlencode, urljoin, urlsplit

import pytest

pytest.importorskip("azure_functions_runtime", reason="the Functions Python worker library needs Python 3.13+ "
                    "(make test runs tests/host in .venv-worker)")

from shared.app.approvals import approval_state
from shared.config import Settings
from shared.notify.render import decision_links
from shared.signing import key_from_secret
from shared.store import open_store
from tests.fakes.openai_server import FakeOpenAI
from tests.helpers import CORPUS
from tests.host.conftest import SIGNING_KEY
from tests.host.test_http import _Forms, notification, post_webhook
from tests.llm.corpus_models import HOSTILE_VERDICT

HELD_OUT = CORPUS.parent / "validation" / "val-001.json"        # a firm PERMISSION failure


@pytest.fixture
def hostile_env(app_env, monkeypatch):
    """The app with a model that always proposes a retry, asked on every failure."""
    with FakeOpenAI() as model:
        model.default = dict(HOSTILE_VERDICT)
        env = {"AZURE_OPENAI_ENDPOINT": model.url, "AZURE_OPENAI_DEPLOYMENT": model.deployment,
               "AZURE_OPENAI_API_KEY": model.api_key, "TRIAGE_LLM_MIN_RULE_CONFIDENCE": "1.0"}
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        yield {**app_env, **env}


def _forms(resp):
    forms = _Forms()
    forms.feed(resp.body.decode())
    return forms.forms


def _press(host, page_path, action, fields):
    """Press a page's button as a browser does: a form-encoded POST to the form's action."""
    target = urlsplit(urljoin("http://localhost:7071" + page_path, action)).path
    return host.http("POST", target, body=urlencode(fields),
                     headers={"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://localhost:7071"})


def test_an_approved_retry_is_carried_out_once(host, hostile_env, azurite, fake_databricks):
    doc = json.loads(HELD_OUT.read_text())
    doc.pop("history", None)
    run_id, job_id = random.randrange(10**14, 10**15), random.randrange(10**14, 10**15)
    doc["run"].update(run_id=run_id, job_id=job_id, end_time=int(time.time() * 1000) - 60_000)
    if doc.get("job"):
        doc["job"]["job_id"] = job_id
    fake_databricks.load(doc)
    assert post_webhook(host, notification(run_id, job_id)).status == 202
    [inv] = host.drain_queue(azurite.connection_string, hostile_env["TRIAGE_QUEUE_NAME"])
    assert inv.ok, inv.exception
    settings = Settings.from_env(hostile_env)
    with open_store(settings) as store:
        [record] = store.list(job_id=str(job_id))
    assert approval_state(record) == "pending" and fake_databricks.writes == []
    links = decision_links(settings, key_from_secret(SIGNING_KEY), record, now=time.time())
    approve = urlsplit(links["approve"]).path
    page = host.http("GET", approve)                        # the link shows a page and changes nothing
    assert page.status == 200 and fake_databricks.writes == []
    [(action, fields)] = _forms(page)
    first = _press(host, approve, action, fields)
    assert first.status == 200 and "Approved" in first.body.decode()
    assert len(fake_databricks.writes) == 1
    assert _forms(host.http("GET", approve)) == []          # the link is spent: no button any more
    replay = _press(host, approve, action, fields)          # the same form sent again
    assert replay.status < 500 and len(fake_databricks.writes) == 1
    with open_store(settings) as store:
        assert store.get(record.decision_key, record.job_id).decided_by == "person"
