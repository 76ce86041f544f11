"""Feedback: shared.learning.feedback, the CLI command, and the HTTP endpoints (blueprints/feedback.py),
on both store backends."""

from __future__ import annotations

import io
import json
import time
from html.parser import HTMLParser

import azure.functions as func
import pytest

from blueprints.feedback import feedback_confirm, feedback_link, feedback_post
from shared.app.feedback import MAX_BODY_BYTES, handle_confirm, handle_link, handle_post
from shared.cli import main
from shared.errors import DecisionNotFound
from shared.learning.feedback import MAX_COMMENT_CHARS, corrections_for, record_feedback
from shared.models import Action, Category, Decision
from shared.signing import make_token
from tests.plugins.learning import JOB_ID, decision, unique_key

KEY = b"k" * 8 + b"0123456789abcdef"          # a made-up signing key, built at run time


def _seed(store, key="1001-0", **kw):
    claim = store.claim(decision(key, **kw))
    assert claim.won
    return claim.record


def _secret() -> str:
    return "dapi" + "0123456789abcdef" * 2


# --- record_feedback ------------------------------------------------------------------------------

def test_record_feedback_correct_then_same_again_is_idempotent(learning_store):
    _seed(learning_store)
    first = record_feedback(learning_store, "1001-0", "correct", source="link", now_ms=1000)
    assert first.feedback == {"verdict": "correct", "source": "link", "at": 1000}
    again = record_feedback(learning_store, "1001-0", "correct", source="link", now_ms=2000)
    assert again.etag == first.etag and again.feedback["at"] == 1000


def test_record_feedback_wrong_with_action_keeps_details_against_bare_link(learning_store):
    _seed(learning_store)
    r = record_feedback(learning_store, "1001-0", "wrong", correct_action="send_email", correct_category="data",
                        comment="table renamed upstream", now_ms=1000)
    assert r.feedback["correct_action"] == "SEND_EMAIL" and r.feedback["correct_category"] == "DATA"
    # the email link says only "wrong": nothing richer is erased, nothing is written
    same = record_feedback(learning_store, "1001-0", "wrong", source="link", now_ms=2000)
    assert same.etag == r.etag
    flipped = record_feedback(learning_store, "1001-0", "correct", now_ms=3000)
    assert flipped.feedback["verdict"] == "correct" and "correct_action" not in flipped.feedback
    assert flipped.feedback["history"][0]["correct_action"] == "SEND_EMAIL"


@pytest.mark.parametrize("kwargs,message", [
    ({"verdict": "maybe"}, "verdict must be one of correct, wrong"),
    ({"verdict": "wrong", "correct_action": "REBOOT"}, "is not one of RETRY"),
    ({"verdict": "correct", "correct_action": "ESCALATE"}, "give verdict 'wrong'"),
    ({"verdict": "wrong", "correct_action": "RETRY"}, "which is what was decided"),
    ({"verdict": "wrong", "correct_category": "WEATHER"}, "is not one of TIMEOUT"),
    ({"verdict": "wrong", "source": "fax"}, "source must be one of"),
])
def test_record_feedback_invalid_input_raises_value_error(learning_store, kwargs, message):
    _seed(learning_store)
    kwargs = dict(kwargs)
    verdict = kwargs.pop("verdict")
    with pytest.raises(ValueError, match=message):
        record_feedback(learning_store, "1001-0", verdict, **kwargs)
    assert learning_store.get("1001-0").feedback == {}


def test_record_feedback_unknown_key_raises_not_found(learning_store):
    with pytest.raises(DecisionNotFound, match="no decision with key '9-0'"):
        record_feedback(learning_store, "9-0", "correct")


def test_record_feedback_comment_redacted_and_bounded(learning_store):
    _seed(learning_store)
    comment = f"token {_secret()} leaked\x00 " + "x" * 5000
    r = record_feedback(learning_store, "1001-0", "wrong", correct_action="ESCALATE", comment=comment)
    stored = r.feedback["comment"]
    assert _secret() not in stored and "[REDACTED:" in stored and "\x00" not in stored
    assert len(stored) == MAX_COMMENT_CHARS and stored.endswith("…")


# --- corrections_for ------------------------------------------------------------------------------

def test_corrections_for_orders_fingerprint_category_overlap(learning_store):
    _seed(learning_store, "1-0", category="NETWORK", fingerprint="fp-a",
          excerpt="java.net.UnknownHostException: storage account host not found")
    _seed(learning_store, "2-0", category="NETWORK", fingerprint="fp-b",
          excerpt="java.net.UnknownHostException: storage account lookup failed")
    _seed(learning_store, "3-0", category="NETWORK", fingerprint="fp-c", excerpt="completely different words here")
    _seed(learning_store, "4-0", category="TIMEOUT", fingerprint="fp-d",
          excerpt="java.net.UnknownHostException: storage account host not found")
    _seed(learning_store, "5-0", category="NETWORK", fingerprint="fp-a", excerpt="same fingerprint, correct")
    for key in ("1-0", "2-0", "3-0", "4-0"):
        record_feedback(learning_store, key, "wrong", correct_action="ESCALATE", comment=f"note {key}")
    record_feedback(learning_store, "5-0", "correct")           # not a correction

    subject = Decision(category=Category.NETWORK, action=Action.RETRY, confidence=0.6, decided_by="rules",
                       reason="", excerpt="java.net.UnknownHostException: storage account host not found",
                       fingerprint="fp-a")
    found = corrections_for(learning_store, subject, limit=5)
    assert [c["decision_key"] for c in found] == ["1-0", "2-0", "3-0", "4-0"]
    assert found[0]["action"] == "ESCALATE" and found[0]["category"] == "NETWORK"
    assert found[0]["comment"] == "note 1-0" and found[0]["decided_action"] == "RETRY"
    assert [c["decision_key"] for c in corrections_for(learning_store, subject, limit=2)] == ["1-0", "2-0"]
    assert [c["decision_key"] for c in corrections_for(learning_store, "fp-d", limit=1)] == ["4-0"]

    # a correction withdrawn (the verdict flipped to correct) is no longer an example
    record_feedback(learning_store, "1-0", "correct")
    assert "1-0" not in [c["decision_key"] for c in corrections_for(learning_store, subject)]


def test_corrections_for_excludes_the_decision_itself(learning_store):
    rec = _seed(learning_store, "7-0")
    record_feedback(learning_store, "7-0", "wrong", correct_action="ESCALATE")
    assert corrections_for(learning_store, learning_store.get("7-0")) == []
    assert [c["decision_key"] for c in corrections_for(learning_store, rec.fingerprint)] == ["7-0"]


# --- the CLI --------------------------------------------------------------------------------------

def _cli(argv, env):
    out, err = io.StringIO(), io.StringIO()
    code = main([*argv, "--quiet"], env=env, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_feedback_command_records_correction(app_storage):
    env, store = app_storage
    key = unique_key()
    _seed(store, key)
    code, out, err = _cli(["feedback", key, "--verdict", "wrong", "--action", "escalate",
                           "--comment", "flaky DNS, page on-call"], env)
    assert (code, err) == (0, "")
    assert f"feedback on {key} (job {JOB_ID}, NETWORK -> RETRY)" in out
    fb = store.get(key).feedback
    assert (fb["verdict"], fb["correct_action"], fb["source"]) == ("wrong", "ESCALATE", "cli")


def test_feedback_command_unknown_key_exit_1(app_storage):
    env, _ = app_storage
    key = unique_key()
    code, out, err = _cli(["feedback", key, "--verdict", "correct"], env)
    assert (code, out) == (1, "")
    assert err == f"error: DecisionNotFound: no decision with key '{key}'\n"


def test_feedback_command_contradiction_exit_2(app_storage):
    env, store = app_storage
    key = unique_key()
    _seed(store, key)
    code, _, err = _cli(["feedback", key, "--verdict", "correct", "--action", "ESCALATE"], env)
    assert code == 2 and err.startswith("error: ValueError: verdict 'correct' confirms")


# --- POST /api/feedback ---------------------------------------------------------------------------

def _post(body) -> func.HttpRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return func.HttpRequest("POST", "http://localhost/api/feedback", body=raw,
                            headers={"Content-Type": "application/json"})


def test_handle_post_records_feedback(learning_store):
    _seed(learning_store)
    resp = handle_post(_post({"decision_key": "1001-0", "verdict": "wrong", "correct_action": "ESCALATE",
                              "comment": "ok"}), store=learning_store, now_ms=5)
    assert resp.status_code == 200
    doc = json.loads(resp.get_body())
    assert doc == {"decision_key": "1001-0", "job_id": str(JOB_ID),
                   "feedback": {"verdict": "wrong", "correct_action": "ESCALATE", "comment": "ok", "source": "api",
                                "at": 5}}
    assert learning_store.get("1001-0").feedback["source"] == "api"


@pytest.mark.parametrize("body,status,message", [
    (b"{not json", 400, "must be a JSON object"),
    ([1, 2], 400, "must be a JSON object"),
    ({"decision_key": "1001-0"}, 400, "verdict is required"),
    ({"decision_key": "1001-0", "verdict": "correct", "extra": 1}, 400, "unknown field(s): extra"),
    ({"decision_key": 1001, "verdict": "correct"}, 400, "decision_key must be a string"),
    ({"decision_key": "1001-0", "verdict": "wrong", "correct_action": "REBOOT"}, 400, "is not one of"),
    ({"decision_key": "404-0", "verdict": "correct"}, 404, "no decision with key '404-0'"),
    (b"{" + b" " * MAX_BODY_BYTES + b"}", 413, "over"),
])
def test_handle_post_bad_input(learning_store, body, status, message):
    _seed(learning_store)
    resp = handle_post(_post(body), store=learning_store)
    assert resp.status_code == status
    assert message in json.loads(resp.get_body())["error"]
    assert learning_store.get("1001-0").feedback == {}


def test_feedback_post_trigger_uses_the_configured_store(app_storage, monkeypatch):
    env, store = app_storage
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    key = unique_key()
    _seed(store, key)
    fn = feedback_post.build().get_user_function()
    resp = fn(_post({"decision_key": key, "verdict": "correct"}))
    assert resp.status_code == 200
    assert store.get(key).feedback["verdict"] == "correct"


# --- GET /api/feedback/{token} --------------------------------------------------------------------

class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href", "action") and value and not (tag == "form" and value == "confirm"):
                self.external.append(value)

    def handle_data(self, data):
        self.text.append(data)


def _page(resp) -> str:
    p = _Page()
    p.feed(resp.get_body().decode("utf-8"))
    p.close()
    assert p.external == []
    assert resp.mimetype == "text/html"
    assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
    return " ".join(p.text)


def _link(token: str) -> func.HttpRequest:
    return func.HttpRequest("GET", f"http://localhost/api/feedback/{token}", body=b"", route_params={"token": token})


class _Opener:
    def __init__(self, store):
        self.store, self.calls = store, 0

    def __call__(self):
        self.calls += 1
        return _NoClose(self.store)


class _NoClose:
    """The test keeps using the store after the handler's ``with`` block."""

    def __init__(self, store):
        self.store = store

    def __enter__(self):
        return self.store

    def __exit__(self, *exc):
        return None


def _confirm(token: str) -> func.HttpRequest:
    return func.HttpRequest("POST", "http://localhost/api/feedback/confirm", body=f"token={token}".encode(),
                            headers={"Content-Type": "application/x-www-form-urlencoded"})


def test_handle_link_shows_a_page_and_only_its_post_records(learning_store):
    _seed(learning_store, job_name="<b>nightly</b>")
    now = time.time()
    token = make_token(KEY, "1001-0", "wrong", expires_at=int(now) + 3600, job_id=str(JOB_ID))
    opener = _Opener(learning_store)
    before = learning_store.get("1001-0")
    shown = handle_link(_link(token), signing_key=KEY, open_store=opener, now=now)
    assert shown.status_code == 200
    text = _page(shown)
    assert "Confirm your feedback" in text and "1001-0" in text and "wrong" in text
    assert "<b>nightly</b>" in text        # shown as text: the name was escaped, not markup
    assert learning_store.get("1001-0").etag == before.etag          # a GET changes nothing

    first = handle_confirm(_confirm(token), signing_key=KEY, open_store=opener, now=now)
    assert first.status_code == 200 and "Thank you: feedback recorded" in _page(first)
    stored = learning_store.get("1001-0")
    assert stored.feedback["verdict"] == "wrong" and stored.feedback["source"] == "link"

    second = handle_confirm(_confirm(token), signing_key=KEY, open_store=opener, now=now + 60)
    assert second.status_code == 200 and "already recorded" in _page(second)
    assert learning_store.get("1001-0").etag == stored.etag


def test_handle_link_expired_410_and_store_untouched(learning_store):
    _seed(learning_store)
    now = time.time()
    token = make_token(KEY, "1001-0", "correct", expires_at=int(now) - 1)
    opener = _Opener(learning_store)
    resp = handle_link(_link(token), signing_key=KEY, open_store=opener, now=now)
    assert resp.status_code == 410 and "expired" in _page(resp)
    assert opener.calls == 0 and learning_store.get("1001-0").feedback == {}


@pytest.mark.parametrize("tamper", ["flip-verdict", "other-key", "garbage"])
def test_handle_link_tampered_400(learning_store, tamper):
    _seed(learning_store)
    now = time.time()
    good = make_token(KEY, "1001-0", "correct", expires_at=int(now) + 3600)
    if tamper == "flip-verdict":
        forged = make_token(KEY[::-1], "1001-0", "wrong", expires_at=int(now) + 3600)
        token = forged.split(".")[0] + "." + good.split(".")[1]
    elif tamper == "other-key":
        token = make_token(b"z" * 32, "1001-0", "correct", expires_at=int(now) + 3600)
    else:
        token = "not-a-token"
    opener = _Opener(learning_store)
    resp = handle_link(_link(token), signing_key=KEY, open_store=opener, now=now)
    assert resp.status_code == 400 and "not valid" in _page(resp)
    assert opener.calls == 0 and learning_store.get("1001-0").feedback == {}


def test_handle_link_unknown_decision_404(learning_store):
    now = time.time()
    token = make_token(KEY, "555-0", "correct", expires_at=int(now) + 3600, job_id=str(JOB_ID))
    resp = handle_link(_link(token), signing_key=KEY, open_store=_Opener(learning_store), now=now)
    assert resp.status_code == 404 and "555-0" in _page(resp)


def test_handle_link_without_key_503(learning_store):
    resp = handle_link(_link("x.y"), signing_key=None, open_store=_Opener(learning_store))
    assert resp.status_code == 503 and "not set up" in _page(resp)


def test_feedback_link_trigger_reads_key_from_secrets(app_storage, monkeypatch):
    env, store = app_storage
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("TRIAGE_FEEDBACK_SIGNING_KEY", KEY.decode())
    key = unique_key()
    _seed(store, key)
    token = make_token(KEY, key, "correct", expires_at=int(time.time()) + 600, job_id=str(JOB_ID))
    resp = feedback_link.build().get_user_function()(_link(token))
    assert resp.status_code == 200 and store.get(key).feedback == {}
    done = feedback_confirm.build().get_user_function()(_confirm(token))
    assert done.status_code == 200
    assert store.get(key).feedback == {"verdict": "correct", "source": "link", "at": store.get(key).feedback["at"]}


@pytest.mark.parametrize("storage", ["sqlite:///", "not a store"])
def test_feedback_link_trigger_store_misconfigured_is_503_not_500(monkeypatch, storage):
    """A store setting that cannot be used is found only once the token is valid: the page says
    "try again later" (503), it is not a NameError turned into a 500."""
    monkeypatch.setenv("TRIAGE_STORAGE", storage)
    monkeypatch.setenv("TRIAGE_FEEDBACK_SIGNING_KEY", KEY.decode())
    token = make_token(KEY, "1001-0", "correct", expires_at=int(time.time()) + 600, job_id=str(JOB_ID))
    resp = feedback_link.build().get_user_function()(_link(token))
    assert resp.status_code == 503 and "unavailable" in _page(resp)
    resp = feedback_confirm.build().get_user_function()(_confirm(token))
    assert resp.status_code == 503 and "could be recorded" in _page(resp)


def test_handle_link_store_unreachable_is_503(tmp_path):
    """A Table Storage account nobody answers for (a closed loopback port): 503, not a 500."""
    from shared.config import Settings
    from shared.app.runtime import build_store

    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conn = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" + "a" * 88 +
            f";TableEndpoint=http://127.0.0.1:{port}/devstoreaccount1;")
    settings = Settings.from_env({"TRIAGE_STORAGE": conn})
    now = time.time()
    token = make_token(KEY, "1001-0", "wrong", expires_at=int(now) + 600, job_id=str(JOB_ID))
    resp = handle_link(_link(token), signing_key=KEY, now=now,
                       open_store=lambda: build_store(settings, retry_total=0))
    assert resp.status_code == 503 and "unavailable" in _page(resp)


@pytest.mark.parametrize("depth", [5000, 16 * 1024 // 2 - 2])
def test_handle_post_deeply_nested_json_is_400(learning_store, depth):
    body = b"[" * depth + b"]" * depth
    assert len(body) <= MAX_BODY_BYTES
    resp = handle_post(_post(body), store=learning_store)
    assert resp.status_code == 400
    assert "nested too deeply" in json.loads(resp.get_body())["error"]
    body = b'{"a":' * (depth // 2) + b"1" + b"}" * (depth // 2)
    resp = handle_post(_post(body[:MAX_BODY_BYTES]), store=learning_store)
    assert resp.status_code == 400
