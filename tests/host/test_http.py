"""HTTP functions through the real worker: the webhook, health and feedback endpoints, with the
requests encoded as the host encodes them (lower-case header names, body bytes, query, route values)."""

import json
import random
import time
from html.parser import HTMLParser
from urllib.parse import urlencode, urljoin, urlsplit

import pytest

pytest.importorskip("azure_functions_runtime", reason="the Functions Python worker library needs Python 3.13+ "
                    "(make test runs tests/host in .venv-worker)")

from shared.config import Settings
from shared.store import open_store
from tests.helpers import corpus_doc
from tests.host.conftest import FUNCTION_KEY, SIGNING_KEY, WEBHOOK_PASSWORD, basic

WEBHOOK = "/api/databricks/webhook"


def load_failure(fake, case="dev-001"):
    """A corpus failure with fresh ids (Azurite is shared by the session) that ended a minute ago."""
    doc = corpus_doc(case)
    doc.pop("history", None)
    run_id, job_id = random.randrange(10**14, 10**15), random.randrange(10**14, 10**15)
    run = doc["run"]
    duration = int(run.get("end_time", 0)) - int(run.get("start_time", 0))
    run.update(run_id=run_id, job_id=job_id, end_time=int(time.time() * 1000) - 60_000)
    run["start_time"] = run["end_time"] - max(duration, 1000)
    if doc.get("job"):
        doc["job"]["job_id"] = job_id
    fake.load(doc)
    return run_id, job_id


def notification(run_id, job_id, event="jobs.on_failure"):
    return {"event_type": event, "workspace_id": "1234567890123456",
            "run": {"run_id": str(run_id)}, "job": {"job_id": str(job_id), "name": "nightly-etl"}}


def post_webhook(host, doc, *, auth=None, content_type="application/json", key=FUNCTION_KEY, raw=None):
    headers = {"Content-Type": content_type, "User-Agent": "Databricks-Webhook"}
    auth = basic() if auth is None else auth
    if auth:
        headers["Authorization"] = auth
    body = raw if raw is not None else json.dumps(doc).encode()
    return host.http("POST", WEBHOOK, headers=headers, body=body, query={"code": key} if key else {})


def peek(azurite, queue):
    """The messages waiting in ``queue`` (none when it does not exist), decoded."""
    import base64

    from azure.core.exceptions import ResourceNotFoundError
    from azure.storage.queue import QueueClient

    with QueueClient.from_connection_string(azurite.connection_string, queue) as q:
        try:
            return [json.loads(base64.b64decode(m.content)) for m in q.peek_messages(max_messages=32)]
        except ResourceNotFoundError:
            return []


def assert_no_secret_in_logs(host, env):
    shipped = "\n".join(entry.message for entry in host.logs)
    for name in ("TRIAGE_WEBHOOK_PASSWORD", "DATABRICKS_TOKEN", "TRIAGE_FEEDBACK_SIGNING_KEY"):
        assert env[name] not in shipped, name
    assert FUNCTION_KEY not in shipped


# --- webhook ---------------------------------------------------------------------------------------

def test_webhook_accepts_a_failure_notification_and_queues_it(host, app_env, azurite, fake_databricks):
    run_id, job_id = load_failure(fake_databricks)
    resp = post_webhook(host, notification(run_id, job_id))
    assert resp.status == 202, resp.body
    assert resp.header("Content-Type").startswith("application/json")
    assert resp.header("Cache-Control") == "no-store"
    answer = resp.json()
    assert answer["status"] == "accepted" and answer["run_id"] == run_id
    [queued] = peek(azurite, app_env["TRIAGE_QUEUE_NAME"])
    assert queued["request_id"] == answer["request_id"] and queued["run_id"] == run_id
    assert queued["workspace"] == fake_databricks.url and queued["source"] == "webhook"
    assert fake_databricks.requests == []              # the webhook calls nobody
    assert resp.invocation.ok and any("queued run" in e.message for e in resp.invocation.logs)
    assert_no_secret_in_logs(host, app_env)


def test_webhook_headers_in_any_case_reach_the_app(host, app_env, azurite, fake_databricks):
    run_id, job_id = load_failure(fake_databricks)
    body = json.dumps(notification(run_id, job_id)).encode()
    resp = host.http("POST", WEBHOOK, headers={"CONTENT-TYPE": "application/json; charset=utf-8",
                                               "authorization": basic()},
                     body=body, query={"code": FUNCTION_KEY})
    assert resp.status == 202, resp.body


def test_webhook_without_a_content_type_reads_json(host, app_env, fake_databricks):
    run_id, job_id = load_failure(fake_databricks)
    resp = host.http("POST", WEBHOOK, headers={"Authorization": basic()},
                     body=json.dumps(notification(run_id, job_id)), query={"code": FUNCTION_KEY})
    assert resp.status == 202, resp.body


def test_webhook_without_a_function_key_is_refused_by_the_host(host, app_env, fake_databricks):
    resp = post_webhook(host, notification(1, 2), key=None)
    assert resp.status == 401 and resp.invocation is None          # the worker was never called
    resp = post_webhook(host, notification(1, 2), key="not-the-key")
    assert resp.status == 401 and resp.invocation is None
    # The key in a header instead of the query string is accepted too.
    ok = host.http("POST", WEBHOOK, headers={"Content-Type": "application/json", "Authorization": basic(),
                                             "x-functions-key": FUNCTION_KEY},
                   body=json.dumps(notification(*load_failure(fake_databricks))).encode())
    assert ok.status == 202, ok.body


def test_webhook_with_wrong_basic_credentials_is_401_from_the_app(host, app_env):
    resp = post_webhook(host, notification(1, 2), auth=basic("databricks", "wrong"))
    assert resp.status == 401 and resp.invocation is not None
    assert resp.header("WWW-Authenticate").startswith("Basic")
    assert WEBHOOK_PASSWORD not in resp.body.decode()
    resp = post_webhook(host, notification(1, 2), auth=False)
    assert resp.status == 401


@pytest.mark.parametrize("raw, content_type, status", [
    (b"{oops", "application/json", 400),
    (b"", "application/json", 400),
    (b"[]", "application/json", 400),
    (b"\xff\xfe\x00bad", "application/json", 400),
    (json.dumps(notification(1, 2)).encode(), "text/plain", 415),
    (b'{"event_type": "jobs.on_failure", "pad": "' + b"x" * 300_000 + b'"}', "application/json", 413),
])
def test_webhook_bad_input_is_a_4xx_with_a_message(host, app_env, raw, content_type, status):
    resp = post_webhook(host, None, raw=raw, content_type=content_type)
    assert resp.status == status, resp.body
    body = resp.json()
    assert body["status"] == "rejected" and body["error"] and "Traceback" not in resp.body.decode()


def test_webhook_other_events_are_ignored_with_200(host, app_env):
    resp = post_webhook(host, notification(1, 2, event="jobs.on_start"))
    assert resp.status == 200 and resp.json()["status"] == "ignored"


def test_webhook_wrong_method_is_not_routed(host, app_env):
    assert host.http("GET", WEBHOOK, query={"code": FUNCTION_KEY}).status == 404


# --- health ----------------------------------------------------------------------------------------

def test_health_is_anonymous_and_reports_no_secrets(host, app_env):
    resp = host.http("GET", "/api/health")
    assert resp.status == 200
    body = resp.json()
    assert body["status"] == "ok" and body["mode"] == "act" and body["integrations"]["databricks"] is True
    text = resp.body.decode()
    for name in ("AzureWebJobsStorage", "DATABRICKS_TOKEN", "TRIAGE_WEBHOOK_PASSWORD", "DATABRICKS_HOST"):
        assert app_env[name] not in text, name


def test_health_with_bad_settings_is_503(host, app_env, monkeypatch):
    monkeypatch.setenv("TRIAGE_MODE", "sometimes")
    resp = host.http("GET", "/api/health")
    assert resp.status == 503 and "sometimes" not in resp.body.decode()


# --- feedback --------------------------------------------------------------------------------------

def _decide(host, app_env, azurite, fake_databricks):
    """A decision made the production way: webhook -> queue -> worker."""
    run_id, job_id = load_failure(fake_databricks)
    assert post_webhook(host, notification(run_id, job_id)).status == 202
    [inv] = host.drain_queue(azurite.connection_string, app_env["TRIAGE_QUEUE_NAME"])
    assert inv.ok, inv.exception
    return f"{run_id}-0", str(job_id)


def test_feedback_post_records_a_verdict(host, app_env, azurite, fake_databricks):
    key, job_id = _decide(host, app_env, azurite, fake_databricks)
    body = {"decision_key": key, "verdict": "wrong", "correct_action": "ESCALATE", "job_id": job_id}
    resp = host.http("POST", "/api/feedback", headers={"Content-Type": "application/json"},
                     body=json.dumps(body), query={"code": FUNCTION_KEY})
    assert resp.status == 200, resp.body
    assert resp.json()["feedback"]["verdict"] == "wrong"
    assert host.http("POST", "/api/feedback", body=json.dumps(body)).status == 401      # no function key


@pytest.mark.parametrize("raw, status", [
    (b"not json", 400),
    (json.dumps({"decision_key": "1-0"}).encode(), 400),
    (json.dumps({"decision_key": "9999999-0", "verdict": "correct"}).encode(), 404),
    (b"{" * 20000, 413),
])
def test_feedback_post_bad_input_is_a_4xx(host, app_env, raw, status):
    resp = host.http("POST", "/api/feedback", headers={"Content-Type": "application/json"}, body=raw,
                     query={"code": FUNCTION_KEY})
    assert resp.status == status, resp.body
    assert resp.json()["error"]


class _Forms(HTMLParser):
    """The forms of a page: (action, {hidden input name: value})."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.forms.append((attrs.get("action") or "", {}))
        elif tag == "input" and self.forms and attrs.get("name"):
            self.forms[-1][1][attrs["name"]] = attrs.get("value") or ""


def _email_link(app_env, decision_key, job_id, verdict):
    """The path of the link the app puts in its emails for this decision (``shared.notify``)."""
    from shared.notify import decision_links
    from shared.signing import key_from_secret

    settings = Settings.from_env(app_env)
    with open_store(settings) as store:
        record = store.get(decision_key, job_id)
    links = decision_links(settings, key_from_secret(SIGNING_KEY), record, now=time.time())
    return urlsplit(links[verdict]).path


def test_feedback_link_records_the_verdict_from_the_route_token(host, app_env, azurite, fake_databricks):
    """A signed link from an email, as a browser follows it through the host: GET the page (the
    token is a route value); where the page is a confirmation form, submit it as a browser does
    (form-encoded POST to its action). Either way the verdict ends up on the decision."""
    key, job_id = _decide(host, app_env, azurite, fake_databricks)
    link = _email_link(app_env, key, job_id, "correct")
    token = link.rsplit("/", 1)[1]
    resp = host.http("GET", link)                    # anonymous: the token is the credential
    assert resp.status == 200, resp.body
    assert resp.header("Content-Type").startswith("text/html") and key in resp.body.decode()
    forms = _Forms()
    forms.feed(resp.body.decode())
    for action, fields in forms.forms:
        target = urljoin("http://localhost:7071" + link, action)
        answer = host.http("POST", urlsplit(target).path, body=urlencode(fields),
                           headers={"Content-Type": "application/x-www-form-urlencoded",
                                    "Origin": "http://localhost:7071"})
        assert answer.status == 200, answer.body
    with open_store(Settings.from_env(app_env)) as store:
        record = store.get(key, job_id)
    assert (record.feedback or {}).get("verdict") == "correct"
    forged = host.http("GET", f"/api/feedback/{token[:-4]}AAAA")
    assert forged.status == 400
    assert_no_secret_in_logs(host, app_env)


# --- every HTTP function ---------------------------------------------------------------------------

JUNK = [b"", b"{oops", b"null", b'{"a": ' * 50, b"\x00\xff" * 100, json.dumps({"unexpected": [1, 2]}).encode()]


def test_no_http_function_answers_500_to_junk(host, app_env):
    """Whatever endpoints the app has (the list comes from the worker's index): junk bodies, odd
    route values and content types get an answer from the app itself, never a 500 (no exception
    escapes to the host; a deliberate 503 "not set up" or "try again" is an answer)."""
    import re

    http_functions = [fn for fn in host.functions.values() if fn.trigger.get("type") == "httpTrigger"]
    assert len(http_functions) >= 4
    for fn in http_functions:
        route = re.sub(r"\{[^}]+\}", "not.a~token", fn.trigger["route"])
        for method in fn.trigger.get("methods") or ["GET", "POST"]:
            for body in JUNK:
                for ctype in ("application/json", "text/plain", "application/x-www-form-urlencoded"):
                    resp = host.http(method, f"/api/{route}", headers={"Content-Type": ctype}, body=body,
                                     query={"code": FUNCTION_KEY})
                    assert resp.invocation is not None and resp.invocation.ok, (fn.name, resp.invocation)
                    assert resp.status != 500, (fn.name, method, body, ctype)
