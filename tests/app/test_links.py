"""Links that robots cannot click: GET shows a confirmation page and changes nothing; the page's
button POSTs the token; tokens are bound to job and workspace; approval links are single-use.
Real azure.functions requests, the stand-in workspace over HTTP, a SQLite store."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from urllib.parse import urlencode

import azure.functions as func
import pytest

from shared.app.approvals import approval_state
from shared.app.feedback import handle_confirm, handle_link
from shared.app.runtime import open_runtime
from shared.config import Settings
from shared.notify.render import decision_links
from shared.signing import make_token
from shared.triage import triage_run
from tests.fakes.openai_server import FakeOpenAI
from tests.llm.corpus_models import HOSTILE_VERDICT

KEY = b"s" * 8 + b"0123456789abcdef"
HELD_OUT = Path(__file__).resolve().parents[1] / "corpus" / "validation" / "val-001.json"   # PERMISSION


class _Notifier:
    def __init__(self):
        self.calls = []

    def notify(self, snapshot, decision, record):
        self.calls.append(decision.action.value)
        return {"status": "sent"}

    def close(self):
        pass


class _Keep:
    def __init__(self, store):
        self.store = store

    def __call__(self):
        return self

    def __enter__(self):
        return self.store

    def __exit__(self, *exc):
        return None


def _get(token):
    return func.HttpRequest("GET", f"http://localhost/api/feedback/{token}", body=b"", route_params={"token": token})


def _post(token, extra=""):
    body = urlencode({"token": token}).encode() + extra.encode()
    return func.HttpRequest("POST", "http://localhost/api/feedback/confirm", body=body,
                            headers={"Content-Type": "application/x-www-form-urlencoded"})


def _text(resp) -> str:
    return resp.get_body().decode("utf-8")


@pytest.fixture
def world(fake_databricks, fake_databricks_env, client, store, tmp_path):
    with FakeOpenAI() as model:
        model.default = dict(HOSTILE_VERDICT)
        env = {**fake_databricks_env, "TRIAGE_MODE": "act", "AZURE_OPENAI_ENDPOINT": model.url,
               "AZURE_OPENAI_DEPLOYMENT": model.deployment, "AZURE_OPENAI_API_KEY": model.api_key,
               "TRIAGE_LLM_MIN_RULE_CONFIDENCE": "1.0", "TRIAGE_PUBLIC_BASE_URL": "https://triage.example.com"}
        settings = Settings.from_env(env)
        doc = json.loads(HELD_OUT.read_text())
        doc.pop("history", None)
        run_id = fake_databricks.load(doc)
        rec = triage_run(run_id, settings, client=client, store=store, notifier=_Notifier(), act_now=True).record
        links = decision_links(settings, KEY, rec, now=time.time())
        tokens = {v: u.rsplit("/", 1)[1] for v, u in links.items()}

        def runtime():
            return open_runtime(settings, store=store, notifier=_Notifier())
        yield dict(settings=settings, rec=rec, tokens=tokens, store=store, fake=fake_databricks, runtime=runtime)


def test_links_for_an_approval_request(world):
    assert set(world["tokens"]) == {"correct", "wrong", "approve", "reject"}


def test_get_shows_a_confirmation_page_and_changes_nothing(world):
    store, rec = world["store"], world["rec"]
    before = store.get(rec.decision_key, rec.job_id)
    for verdict, token in world["tokens"].items():
        for _ in range(3):                                   # a mail scanner opening every link, again and again
            resp = handle_link(_get(token), signing_key=KEY, open_store=_Keep(store))
            assert resp.status_code == 200, verdict
            body = _text(resp)
            assert '<form method="post" action="confirm">' in body
            assert f'name="token" value="{token}"' in body
            assert "form-action 'self'" in resp.headers["Content-Security-Policy"]
    after = store.get(rec.decision_key, rec.job_id)
    assert after.etag == before.etag and after.feedback == {} and approval_state(after) == "pending"
    assert world["fake"].writes == []


def test_post_records_feedback_once(world):
    store, rec = world["store"], world["rec"]
    resp = handle_confirm(_post(world["tokens"]["correct"]), signing_key=KEY, open_store=_Keep(store))
    assert resp.status_code == 200 and "feedback recorded" in _text(resp)
    again = handle_confirm(_post(world["tokens"]["correct"]), signing_key=KEY, open_store=_Keep(store))
    assert "already recorded" in _text(again)
    assert store.get(rec.decision_key, rec.job_id).feedback["verdict"] == "correct"


def test_post_approve_acts_once_and_the_link_is_single_use(world):
    store, rec, fake = world["store"], world["rec"], world["fake"]
    kw = dict(signing_key=KEY, open_store=_Keep(store), open_runtime=world["runtime"])
    first = handle_confirm(_post(world["tokens"]["approve"]), **kw)
    assert first.status_code == 200 and "Approved" in _text(first)
    assert len(fake.writes) == 1
    replay = handle_confirm(_post(world["tokens"]["approve"]), **kw)
    assert "already used" in _text(replay)
    reject = handle_confirm(_post(world["tokens"]["reject"]), **kw)
    assert "Nothing changed" in _text(reject) and "already approved" in _text(reject)
    assert len(fake.writes) == 1
    assert store.get(rec.decision_key, rec.job_id).decided_by == "person"


def test_post_reject_records_feedback_and_sends_nothing(world):
    store, rec = world["store"], world["rec"]
    kw = dict(signing_key=KEY, open_store=_Keep(store), open_runtime=world["runtime"])
    resp = handle_confirm(_post(world["tokens"]["reject"]), **kw)
    assert "Rejected" in _text(resp)
    stored = store.get(rec.decision_key, rec.job_id)
    assert approval_state(stored) == "rejected" and stored.feedback["verdict"] == "correct"
    assert world["fake"].writes == []


def test_tokens_are_bound_to_job_and_workspace(world):
    store, rec = world["store"], world["rec"]
    exp = int(time.time()) + 600
    other_job = make_token(KEY, rec.decision_key, "wrong", expires_at=exp, job_id="20", workspace=rec.workspace)
    assert handle_link(_get(other_job), signing_key=KEY, open_store=_Keep(store)).status_code == 404
    assert handle_confirm(_post(other_job), signing_key=KEY, open_store=_Keep(store)).status_code == 404
    other_ws = make_token(KEY, rec.decision_key, "wrong", expires_at=exp, job_id=rec.job_id,
                          workspace="https://adb-999.9.azuredatabricks.net")
    assert handle_confirm(_post(other_ws), signing_key=KEY, open_store=_Keep(store)).status_code == 404
    unbound = make_token(KEY, rec.decision_key, "wrong", expires_at=exp)
    assert handle_link(_get(unbound), signing_key=KEY, open_store=_Keep(store)).status_code == 400
    assert store.get(rec.decision_key, rec.job_id).feedback == {}


@pytest.mark.parametrize("body", [b"", b"token=a&token=b", b"\xff\xfe", b"token=" + b"x" * 5000])
def test_post_without_one_token_is_400(world, body):
    req = func.HttpRequest("POST", "http://localhost/api/feedback/confirm", body=body)
    resp = handle_confirm(req, signing_key=KEY, open_store=_Keep(world["store"]))
    assert resp.status_code == 400


def test_the_email_carries_approve_and_reject_buttons_to_confirmation_pages(world):
    from shared.notify.render import render_email
    from shared.snapshot import parse_snapshot
    from shared.triage import decision_of_record

    rec = world["rec"]
    doc = json.loads(HELD_OUT.read_text())
    links = decision_links(world["settings"], KEY, rec, now=time.time())
    email = render_email(parse_snapshot(doc), decision_of_record(rec), rec, settings=world["settings"],
                         links=links, now=time.time())
    assert "Approval requested" in email.html and "APPROVAL REQUESTED" in email.text
    assert links["approve"] in email.html and links["reject"] in email.html
    assert "python -m shared approve " + rec.decision_key in email.text
    # The model's injected text is data: escaped, never a live link or markup.
    assert not re.search(r'<a href="https://evil', email.html)
