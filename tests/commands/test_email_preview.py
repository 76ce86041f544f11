import copy
import io
import json
import re
import secrets as _random

import shared.commands.email_preview as email_preview
from shared.cli import main
from shared.signing import verify_token
from tests.helpers import CORPUS, corpus_doc

_NOTE = ("note: feedback links in this preview are placeholders (set TRIAGE_PUBLIC_BASE_URL and "
         "TRIAGE_FEEDBACK_SIGNING_KEY for real ones)\n")


def _run(argv, env=None):
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, env=env or {}, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_email_preview_exports_exist():
    assert all(hasattr(email_preview, name) for name in email_preview.__all__)


def test_email_preview_permission_writes_html_and_says_where(tmp_path):
    out_file = tmp_path / "preview.html"
    code, out, err = _run(["email-preview", str(CORPUS / "dev-001.json"), "--out", str(out_file)])
    assert code == 0 and err == _NOTE
    subject = "[triage] nightly-etl failed: PERMISSION — owner action needed"
    assert out == f"wrote {out_file}\nTo: owner-26@example.com\nSubject: {subject}\n"
    page = out_file.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and f"<title>{subject}</title>" in page
    run_url = corpus_doc("dev-001")["run"]["run_page_url"]
    assert f'<a href="{run_url}">Open run 2707385833224991 in Databricks</a>' in page
    assert "Owner action needed" in page and "INSUFFICIENT_PERMISSIONS" in page and "publish" in page
    assert "https://your-triage-app.example.invalid/api/feedback/" in page


def test_email_preview_prints_text_body_without_output():
    code, out, err = _run(["email-preview", str(CORPUS / "dev-001.json")])
    assert code == 0
    assert out.startswith("To: owner-26@example.com\nSubject: [triage] nightly-etl failed: PERMISSION")
    assert "\nWHAT TO DO\n" in out and "\nROOT CAUSE (secrets redacted)\n" in out
    assert f"Run: {corpus_doc('dev-001')['run']['run_page_url']}\n" in out
    assert "<p" not in out and "&#x27;" not in out  # plain text, not HTML


def test_email_preview_hostile_snapshot_is_escaped_and_redacted(tmp_path):
    token = "dapi" + _random.token_hex(16)
    doc = copy.deepcopy(corpus_doc("dev-001"))
    doc["job"]["settings"]["name"] = "<img src=x onerror=alert(1)>"
    out_key = next(iter(doc["task_outputs"]))
    doc["task_outputs"][out_key]["error_trace"] += (
        f"\nCaused by: <script>alert('x')</script> & \"q\" using token {token}")
    snap_file = tmp_path / "hostile.json"
    snap_file.write_text(json.dumps(doc))
    out_file = tmp_path / "preview.html"
    code, out, _ = _run(["email-preview", str(snap_file), "-o", str(out_file)])
    assert code == 0
    page = out_file.read_text(encoding="utf-8")
    assert "<script" not in page and "<img" not in page and token not in page and token not in out
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_email_preview_real_links_when_configured(tmp_path):
    key = _random.token_urlsafe(32)
    env = {"TRIAGE_PUBLIC_BASE_URL": "https://triage-test.example.com", "TRIAGE_FEEDBACK_SIGNING_KEY": key}
    code, out, err = _run(["email-preview", str(CORPUS / "dev-001.json")], env)
    assert code == 0 and err == ""
    tokens = re.findall(r"https://triage-test\.example\.com/api/feedback/(\S+)", out)
    claims = [verify_token(key.encode(), t, now=0) for t in tokens]
    assert [(c.decision_key, c.verdict) for c in claims] == [("2707385833224991-0", "correct"),
                                                             ("2707385833224991-0", "wrong")]


def test_email_preview_escalation_goes_to_on_call():
    env = {"EMAIL_ESCALATION_TO": "oncall@example.com"}
    code, out, _ = _run(["email-preview", str(CORPUS / "dev-041-exhausted.json")], env)
    assert code == 0
    assert out.startswith("To: oncall@example.com\nSubject: [triage] ")
    assert "on-call action needed" in out.splitlines()[1]


def test_email_preview_retry_decision_says_no_email_is_sent():
    code, out, err = _run(["email-preview", str(CORPUS / "dev-043.json")])
    assert code == 0
    assert "note: the decision is RETRY: the app sends no email for it (rendered anyway)\n" in err
    assert "retry scheduled, for information" in out.splitlines()[1]


def test_email_preview_missing_file_is_one_line_error(tmp_path):
    missing = tmp_path / "nope.json"
    code, out, err = _run(["email-preview", str(missing)])
    assert code == 1 and out == ""
    assert err == f"error: SnapshotError: {missing}: cannot read: No such file or directory\n"


def test_email_preview_missing_argument_is_usage_error():
    code, _, err = _run(["email-preview"])
    assert code == 2 and "the following arguments are required: SNAPSHOT" in err
