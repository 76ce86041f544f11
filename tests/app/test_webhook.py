"""shared/app/webhook.py: Databricks' notification shapes, authentication, status codes, and a fuzz."""

import base64
import json
import string

import azure.functions as func
import pytest
from hypothesis import HealthCheck, event, given, settings as hsettings, strategies as st

from shared.config import Settings
from shared.errors import ConfigError, QueueError, RequestError
from shared.secrets import SecretProvider
from shared.app.http import status_and_json
from shared.app.webhook import (
    MAX_BODY_BYTES,
    Ignored,
    TriageRequest,
    WebhookCredentials,
    WebhookRequest,
    check_basic_auth,
    handle_webhook,
    parse_id,
    parse_notification,
    webhook_credentials,
)

WS_ID = "1234567890123456"
HOST = f"https://adb-{WS_ID}.7.azuredatabricks.net"
URL = "http://localhost:7071/api/databricks/webhook"

# The payload examples of Databricks' documentation ("Add notifications on a job", HTTP webhook
# destinations), verbatim: the ids there are placeholders in quotes.
DOC_JOB_START = """{
  "event_type": "jobs.on_start",
  "workspace_id": "your_workspace_id",
  "run": {
    "run_id": "run_id"
  },
  "job": {
    "job_id": "job_id",
    "name": "job_name"
  }
}"""
DOC_TASK_START = """{
  "event_type": "jobs.on_start",
  "workspace_id": "your_workspace_id",
  "task": {
    "task_key": "task_name"
  },
  "run": {
    "run_id": "run_id_of_task",
    "parent_run_id": "run_id_of_parent_job_run"
  },
  "job": {
    "job_id": "job_id",
    "name": "job_name"
  }
}"""
DOC_JOB_FAILURE = """{
  "event_type": "jobs.on_failure",
  "workspace_id": "your_workspace_id",
  "run": {
    "run_id": "run_id"
  },
  "job": {
    "job_id": "job_id",
    "name": "job_name"
  }
}"""
DOC_TASK_SUCCESS = """{
  "event_type": "jobs.on_success",
  "workspace_id": "your_workspace_id",
  "task": {
    "task_key": "task_name"
  },
  "run": {
    "run_id": "run_id_of_task",
    "parent_run_id": "run_id_of_parent_job_run"
  },
  "job": {
    "job_id": "job_id",
    "name": "job_name"
  }
}"""


def _real(doc_text, **ids):
    """A documented example with its placeholder values replaced by real-looking ids."""
    def fill(node):
        if isinstance(node, dict):
            return {k: fill(v) for k, v in node.items()}
        return ids.get(node, node) if isinstance(node, str) else node

    return json.dumps(fill(json.loads(doc_text))).encode()


class Queue(list):
    def __call__(self, request):
        self.append(request)


def _settings(**env):
    return Settings.from_env({"DATABRICKS_HOST": HOST, **env})


def _post(body, *, content_type="application/json", auth=None, settings=None, credentials=None, queue=None,
          method="POST", extra_headers=None):
    headers = {k: v for k, v in (extra_headers or {}).items() if k.lower() not in ("content-type", "authorization")}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if auth is not None:
        headers["Authorization"] = auth
    req = func.HttpRequest(method=method, url=URL, headers=headers, body=body)
    queue = Queue() if queue is None else queue
    status, answer = status_and_json(handle_webhook(req, settings=settings or _settings(), credentials=credentials,
                                                    enqueue=queue))
    return status, answer, queue


def _basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# --- the documented shapes -----------------------------------------------------------------------

def test_parse_documented_job_start_is_ignored_with_reason():
    result = parse_notification(DOC_JOB_START.encode())
    assert isinstance(result, Ignored) and result.event_type == "jobs.on_start"
    assert "only jobs.on_failure is triaged" in result.reason


def test_parse_documented_task_start_and_task_success_are_ignored():
    assert isinstance(parse_notification(DOC_TASK_START.encode()), Ignored)
    assert parse_notification(DOC_TASK_SUCCESS.encode()).event_type == "jobs.on_success"


def test_parse_documented_job_failure_with_placeholder_ids_is_400_naming_the_field():
    with pytest.raises(RequestError) as err:
        parse_notification(DOC_JOB_FAILURE.encode())
    assert err.value.status == 400 and "run.run_id" in err.value.message


def test_parse_job_failure_with_string_ids():
    body = _real(DOC_JOB_FAILURE, your_workspace_id="1234567890123456", run_id="455644833", job_id="11223344",
                 job_name="nightly-etl")
    result = parse_notification(body)
    assert result == TriageRequest(run_id=455644833, job_id=11223344, job_name="nightly-etl",
                                   workspace_id="1234567890123456")


def test_parse_job_failure_with_numeric_ids():
    body = _real(DOC_JOB_FAILURE, your_workspace_id=1234567890123456, run_id=455644833, job_id=11223344)
    result = parse_notification(body)
    assert (result.run_id, result.job_id, result.workspace_id) == (455644833, 11223344, "1234567890123456")


def test_parse_task_failure_triages_the_parent_job_run():
    doc = DOC_TASK_SUCCESS.replace("jobs.on_success", "jobs.on_failure")
    body = _real(doc, your_workspace_id="42", run_id_of_task="900", run_id_of_parent_job_run=800, job_id="7")
    result = parse_notification(body)
    assert (result.run_id, result.task_run_id, result.task_key) == (800, 900, "task_name")


def test_parse_task_failure_without_parent_run_id_is_400_not_a_task_run_triaged_as_a_job_run():
    doc = json.loads(DOC_TASK_SUCCESS.replace("jobs.on_success", "jobs.on_failure"))
    del doc["run"]["parent_run_id"]
    doc["run"]["run_id"] = "900"
    with pytest.raises(RequestError) as err:
        parse_notification(json.dumps(doc).encode())
    assert err.value.status == 400 and "run.parent_run_id" in err.value.message


def test_parse_unknown_event_type_is_ignored_not_an_error():
    result = parse_notification(b'{"event_type": "jobs.on_streaming_backlog_exceeded", "run": {}}')
    assert isinstance(result, Ignored) and "unknown event type" in result.reason


@pytest.mark.parametrize("body, fragment", [
    (b"{not json", "not valid JSON"),
    (b"[]", "JSON object"),
    (b"", "empty"),
    (b'{"run": {"run_id": 1}}', "event_type is missing"),
    (b'{"event_type": 5}', "event_type must be"),
    (b'{"event_type": "jobs.on_failure"}', "run is missing"),
    (b'{"event_type": "jobs.on_failure", "run": []}', "run must be an object"),
    (b'{"event_type": "jobs.on_failure", "run": {}}', "run.run_id is missing"),
    (b'{"event_type": "jobs.on_failure", "run": {"run_id": true}}', "boolean"),
    (b'{"event_type": "jobs.on_failure", "run": {"run_id": -4}}', "positive"),
    (b'{"event_type": "jobs.on_failure", "run": {"run_id": 1.5}}', "fraction"),
    (b'{"event_type": "jobs.on_failure", "run": {"run_id": "99999999999999999999"}}', "run.run_id"),
    (b'{"event_type": "jobs.on_failure", "run": {"run_id": 1}, "job": {"job_id": "x"}}', "job.job_id"),
    (b'{"event_type": "jobs.on_failure", "run": {"run_id": 1}, "workspace_id": "a b"}', "workspace_id"),
    (b'{"event_type": "jobs.on_failure", "run": {"run_id": NaN}}', "not valid JSON"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b"[" * 100000, "nested too deeply"),
])
def test_parse_bad_shape_is_400_saying_what(body, fragment):
    with pytest.raises(RequestError) as err:
        parse_notification(body)
    assert err.value.status == 400 and fragment in err.value.message


def test_parse_body_over_256_kib_is_413():
    body = b'{"event_type": "jobs.on_failure", "pad": "' + b"x" * MAX_BODY_BYTES + b'"}'
    with pytest.raises(RequestError) as err:
        parse_notification(body)
    assert err.value.status == 413


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "application/json; charset=latin-1", "multipart/form-data"])
def test_parse_wrong_content_type_is_415(content_type):
    with pytest.raises(RequestError) as err:
        parse_notification(b'{"event_type": "jobs.on_start"}', content_type)
    assert err.value.status == 415


@pytest.mark.parametrize("content_type", [None, "application/json", "Application/JSON; charset=UTF-8",
                                          "application/cloudevents+json"])
def test_parse_json_content_types_are_accepted(content_type):
    assert isinstance(parse_notification(b'{"event_type": "jobs.on_start"}', content_type), Ignored)


def test_parse_id_accepts_numbers_and_digit_strings_only():
    assert parse_id(" 12 ", "x") == 12 and parse_id(12, "x") == 12 and parse_id(None, "x") is None
    for bad in ("", "1e3", "١٢", [], {}, 0, 2**63):
        with pytest.raises(RequestError):
            parse_id(bad, "x")


def test_triage_request_message_round_trip():
    request = TriageRequest(run_id=1, job_id=2, job_name="ä", workspace="https://h", request_id="r", received_at=5)
    assert TriageRequest.from_message(request.to_message()) == request
    assert TriageRequest.from_message(request.to_message().encode()) == request
    for bad in ("", "[]", '{"v": 2, "run_id": 1}', '{"v": 1}', '{"v": 1, "run_id": 1, "job_name": 3}'):
        with pytest.raises(RequestError):
            TriageRequest.from_message(bad)


# --- credentials -----------------------------------------------------------------------------------

CREDS = WebhookCredentials("databricks", "s3cret-" + "x" * 8)


def test_check_basic_auth_accepts_the_right_pair_only():
    check_basic_auth(_basic("databricks", CREDS.password), CREDS)
    check_basic_auth(None, None)   # not configured: the function key alone
    for header in (None, "", "Bearer abc", "Basic", "Basic !!!", "Basic " + base64.b64encode(b"nocolon").decode(),
                   _basic("databricks", "wrong"), _basic("other", CREDS.password), _basic("", "")):
        with pytest.raises(RequestError) as err:
            check_basic_auth(header, CREDS)
        assert err.value.status == 401 and CREDS.password not in err.value.message


def test_webhook_credentials_from_secrets():
    assert webhook_credentials(SecretProvider(env={})) is None
    pair = webhook_credentials(SecretProvider(env={"TRIAGE_WEBHOOK_USERNAME": "u", "TRIAGE_WEBHOOK_PASSWORD": "p"}))
    assert pair == WebhookCredentials("u", "p") and "p" not in repr(pair)
    with pytest.raises(ConfigError, match="TRIAGE_WEBHOOK_PASSWORD"):
        webhook_credentials(SecretProvider(env={"TRIAGE_WEBHOOK_USERNAME": "u"}))


# --- the handler -------------------------------------------------------------------------------------

def test_handle_failure_is_202_with_request_id_and_one_message():
    body = _real(DOC_JOB_FAILURE, your_workspace_id="1234567890123456", run_id="455644833", job_id="11223344")
    status, answer, queue = _post(body)
    assert status == 202 and answer["status"] == "accepted" and answer["run_id"] == 455644833
    [request] = queue
    assert request.request_id == answer["request_id"] and len(request.request_id) == 32
    assert request.workspace == HOST and request.source == "webhook" and request.received_at > 0


def test_handle_ignored_event_is_200_and_queues_nothing():
    status, answer, queue = _post(DOC_JOB_START.encode())
    assert status == 200 and answer["status"] == "ignored" and "jobs.on_start" in answer["reason"] and not queue


def test_handle_credentials_are_checked_before_the_body():
    status, answer, queue = _post(b"garbage", credentials=CREDS)
    assert status == 401 and not queue
    body = _real(DOC_JOB_FAILURE, your_workspace_id=WS_ID, run_id="5", job_id="6")
    assert _post(body, credentials=CREDS, auth=_basic("databricks", "nope"))[0] == 401
    assert _post(body, credentials=CREDS, auth=_basic("databricks", CREDS.password))[0] == 202


def test_handle_get_is_405():
    assert _post(b"", method="GET")[0] == 405


def test_handle_queue_failure_is_503_try_again():
    def broken(request):
        raise QueueError("queue down")

    body = _real(DOC_JOB_FAILURE, your_workspace_id=WS_ID, run_id="5", job_id="6")
    status, answer, _ = _post(body, queue=broken)
    assert status == 503 and "try again" in answer["error"]


def test_handle_workspace_id_picks_the_workspace():
    settings = _settings(TRIAGE_WORKSPACES=f"{HOST},222=https://adb-222.2.azuredatabricks.net")
    body = _real(DOC_JOB_FAILURE, your_workspace_id="222", run_id="5", job_id="6")
    status, _, queue = _post(body, settings=settings)
    assert status == 202 and queue[0].workspace == "https://adb-222.2.azuredatabricks.net"
    body = _real(DOC_JOB_FAILURE, your_workspace_id="1234567890123456", run_id="5", job_id="6")
    assert _post(body, settings=settings)[2][0].workspace == HOST
    body = _real(DOC_JOB_FAILURE, your_workspace_id="999", run_id="5", job_id="6")
    status, answer, queue = _post(body, settings=settings)
    assert status == 200 and "999" in answer["reason"] and not queue


def test_handle_without_any_workspace_is_503():
    body = _real(DOC_JOB_FAILURE, your_workspace_id=WS_ID, run_id="5", job_id="6")
    status, _, queue = _post(body, settings=Settings.from_env({}))
    assert status == 503 and not queue


def test_handle_takes_a_plain_request_object():
    req = WebhookRequest("POST", {"content-type": "application/json"}, b'{"event_type": "jobs.on_success"}')
    status, _ = status_and_json(handle_webhook(req, settings=_settings(), credentials=None, enqueue=Queue()))
    assert status == 200


# --- fuzz ----------------------------------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
_ids = st.one_of(st.integers(min_value=-5, max_value=2**64), st.text(string.digits, max_size=22), _json)
_notifications = st.fixed_dictionaries(
    {},
    optional={
        "event_type": st.sampled_from(["jobs.on_failure", "jobs.on_start", "jobs.on_success",
                                       "jobs.on_duration_warning_threshold_exceeded", "", "x"]) | _json,
        "workspace_id": _ids,
        "run": st.fixed_dictionaries({}, optional={"run_id": _ids, "parent_run_id": _ids}) | _json,
        "job": st.fixed_dictionaries({}, optional={"job_id": _ids, "name": _json}) | _json,
        "task": st.fixed_dictionaries({}, optional={"task_key": _json}) | _json,
    },
)


def _encode(doc):
    return json.dumps(doc).encode()


_good_id = st.integers(1, 2**63 - 1) | st.integers(1, 2**63 - 1).map(str)
_failures = st.fixed_dictionaries(
    {"event_type": st.just("jobs.on_failure"), "run": st.fixed_dictionaries({"run_id": _good_id})},
    optional={"workspace_id": st.just(WS_ID) | st.just(int(WS_ID)) | _ids,
              "job": st.fixed_dictionaries({"job_id": _good_id, "name": st.text(max_size=30)}),
              "task": st.fixed_dictionaries({"task_key": st.text(max_size=30)})},
)


@st.composite
def _mutated(draw):
    """A valid failure notification with one field dropped or replaced (or left valid)."""
    doc = draw(_failures)
    path = draw(st.sampled_from([None, ("event_type",), ("run",), ("run", "run_id"), ("job",), ("task",)]))
    if path is None:
        return _encode(doc)
    node = doc
    for key in path[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict):
        if draw(st.booleans()):
            node.pop(path[-1], None)
        else:
            node[path[-1]] = draw(_json)
    return _encode(doc)


_bodies = st.one_of(
    _failures.map(_encode),
    _mutated(),
    _notifications.map(_encode),
    _json.map(_encode),
    st.binary(max_size=300),
    _notifications.map(_encode).flatmap(lambda b: st.integers(0, max(len(b) - 1, 0)).map(lambda i: b[:i])),
    st.just(b"{" * 5000),
)
_content_types = st.one_of(
    st.just("application/json"),
    st.none(),
    st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain", "application/xml",
                     "application/json; charset=utf-16", "application/problem+json", "", ";", "application/"]),
    st.text(max_size=40),
)
_auth = st.one_of(
    st.none(),
    st.just(_basic("databricks", CREDS.password)),
    st.just(_basic("databricks", CREDS.password)),
    st.text(max_size=40),
    st.binary(max_size=30).map(lambda b: "Basic " + base64.b64encode(b).decode()),
)


@hsettings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(body=_bodies, content_type=_content_types, auth=_auth, method=st.sampled_from(["POST"] * 8 + ["PUT", "GET"]),
       with_credentials=st.booleans(), extra=st.dictionaries(st.text(string.ascii_letters, min_size=1, max_size=12),
                                                             st.text(max_size=20), max_size=3))
def test_handle_fuzzed_requests_answer_2xx_or_4xx_never_raise(body, content_type, auth, method, with_credentials,
                                                               extra):
    status, answer, queue = _post(body, content_type=content_type, auth=auth, settings=FUZZ_SETTINGS,
                                  credentials=CREDS if with_credentials else None, method=method, extra_headers=extra)
    event(f"HTTP {status}")
    assert status in (200, 202, 400, 401, 405, 413, 415)
    json.dumps(answer)
    assert (status == 202) == (len(queue) == 1)
    if status == 202:
        assert queue[0].event_type == "jobs.on_failure" and queue[0].run_id > 0
        assert TriageRequest.from_message(queue[0].to_message()) == queue[0]
    if with_credentials and auth != _basic("databricks", CREDS.password) and method == "POST":
        assert status == 401


FUZZ_SETTINGS = _settings()
