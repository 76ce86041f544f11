"""HTTP feedback handling, without the Functions runtime: what the feedback triggers do.

- ``POST /api/feedback`` (function key): ``{"decision_key", "verdict": "correct"|"wrong",
  "correct_action"?, "correct_category"?, "comment"?, "job_id"?}`` -> 200 with the stored
  feedback; 400 with a message for bad input, 404 for an unknown decision, 413 for a body over
  16 KiB, 503 when the store is unreachable.
- ``GET /api/feedback/{token}`` (anonymous: the signed token is the credential): checks the
  HMAC-SHA256 signature (key: the ``TRIAGE_FEEDBACK_SIGNING_KEY`` secret, through
  ``shared.secrets``), the expiry and the job binding *before* touching the store, and answers a
  confirmation page that changes nothing (mail scanners open every link): what the link would
  record (a verdict) or do (approve / reject a proposed retry), and a button.
- ``POST /api/feedback/confirm`` (anonymous; the token is in the form body): what the button
  sends. Records the verdict (idempotent) or approves / rejects the proposed retry
  (``shared.app.approvals``; an approval link works once).
  Both: 400 for a malformed, forged or unbound token, 410 for an expired one, 404 for a decision
  that is not the token's (job and workspace are bound), 503 when the signing key or the store is
  missing.

``handle_post`` and ``handle_link`` take the store and key as arguments, so tests drive them with
real ``azure.functions.HttpRequest`` objects; ``blueprints/feedback.py`` only builds settings,
store and key from the environment.
"""

from __future__ import annotations

import html
import json
import logging
import time
from typing import TYPE_CHECKING, Any, Callable

import azure.functions as func

from shared.app.http import html_page, json_response
from shared.errors import ConfigError, DecisionNotFound, StoreError, TriageError

if TYPE_CHECKING:  # pragma: no cover
    from shared.config import Settings
    from shared.store.base import Store

__all__ = ["handle_post", "handle_link", "handle_confirm", "page", "json_response", "MAX_BODY_BYTES"]

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024
_FIELDS = {"decision_key", "verdict", "correct_action", "correct_category", "comment", "job_id", "scope"}


def page(status: int, title: str, paragraphs: list[str]) -> func.HttpResponse:
    return html_page(status, title, paragraphs)


# --- POST /api/feedback -------------------------------------------------------------------------

def handle_post(req: func.HttpRequest, *, store: Store, now_ms: int | None = None,
                settings: "Settings | None" = None) -> func.HttpResponse:
    """Record feedback sent as JSON. Pure apart from the store it is given."""
    from shared.learning.feedback import record_feedback

    raw = req.get_body() or b""
    if len(raw) > MAX_BODY_BYTES:
        return json_response(413, {"error": f"the request body is over {MAX_BODY_BYTES} bytes"})
    try:
        doc = json.loads(raw.decode("utf-8"))
    except RecursionError:
        return json_response(400, {"error": "the request body is nested too deeply; expected a flat JSON "
                                    'object such as {"decision_key": "123-0", "verdict": "correct"}'})
    except (UnicodeDecodeError, ValueError):
        return json_response(400, {"error": "the request body must be a JSON object such as "
                                    '{"decision_key": "123-0", "verdict": "correct"}'})
    if not isinstance(doc, dict):
        return json_response(400, {"error": "the request body must be a JSON object"})
    unknown = sorted(str(k) for k in doc if k not in _FIELDS)
    if unknown:
        return json_response(400, {"error": f"unknown field(s): {', '.join(unknown)[:200]}; "
                                    f"allowed: {', '.join(sorted(_FIELDS))}"})
    for name in ("decision_key", "verdict"):
        if name not in doc:
            return json_response(400, {"error": f"{name} is required"})
    for name in _FIELDS:
        if doc.get(name) is not None and not isinstance(doc[name], str):
            return json_response(400, {"error": f"{name} must be a string"})
    try:
        record = record_feedback(store, doc["decision_key"], doc["verdict"],
                                 correct_action=doc.get("correct_action"),
                                 correct_category=doc.get("correct_category"),
                                 comment=doc.get("comment"), source="api", now_ms=now_ms,
                                 job_id=doc.get("job_id") or None, settings=settings, scope=doc.get("scope"))
    except ValueError as exc:
        return json_response(400, {"error": str(exc)})
    except DecisionNotFound as exc:
        return json_response(404, {"error": str(exc)})
    except (StoreError, ConfigError) as exc:
        log.warning("feedback not recorded: %s", exc)
        return json_response(503, {"error": "the decision store is unavailable; try again later"})
    fb = {k: v for k, v in record.feedback.items() if k != "history"}
    return json_response(200, {"decision_key": record.decision_key, "job_id": record.job_id, "feedback": fb})


# --- GET /api/feedback/{token}: a confirmation page that changes nothing ---------------------------

_CONFIRM_CSP = ("default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'self'; "
                "frame-ancestors 'none'")
_USED_KIND = "links-used"


def _check(signing_key: bytes | None, token: str, clock: float) -> tuple[Any, func.HttpResponse | None]:
    """(claim, None) for a valid, bound token; (None, error page) otherwise. No store access."""
    from shared.signing import verify_token

    if not signing_key:
        return None, page(503, "Feedback links are not set up",
                          ["This app has no feedback signing key (TRIAGE_FEEDBACK_SIGNING_KEY). "
                           "Ask the team that runs it."])
    try:
        claim = verify_token(signing_key, token, now=clock)
    except ValueError:
        try:     # a valid signature whose time has passed: the link expired
            verify_token(signing_key, token, now=0)
        except ValueError:
            return None, page(400, "This link is not valid",
                              ["The link is damaged or was not issued by this app. Copy the whole link "
                               "from the email, or reply to the email instead."])
        return None, page(410, "This link has expired",
                          ["Links in triage emails are valid for a limited time (an approval request expires "
                           "with them). You can still give feedback with: python -m shared feedback KEY "
                           "--verdict correct|wrong"])
    if not claim.job_id:
        return None, page(400, "This link is not valid",
                          ["The link does not name its job (it was issued by an older version of this app). "
                           f"Use: python -m shared feedback {claim.decision_key} --job JOB --verdict "
                           "correct|wrong"])
    if claim.verdict not in ("correct", "wrong", "approve", "reject"):
        return None, page(400, "This link is not valid", [f"Unknown answer {claim.verdict!r}."])
    return claim, None


def _bound_record(store: "Store", claim: Any) -> Any:
    """The decision the token names, in its job and workspace; DecisionNotFound otherwise."""
    record = store.get(claim.decision_key, job_id=claim.job_id)
    if record is None or (claim.workspace and record.workspace
                          and claim.workspace.rstrip("/").lower() != record.workspace.rstrip("/").lower()):
        raise DecisionNotFound(f"no decision {claim.decision_key} of job {claim.job_id}")
    return record


def _describe(record: Any) -> str:
    what = f"{record.category or '?'} -> {record.action or '?'}"
    job = f"job {record.job_name or record.job_id}" if (record.job_name or record.job_id) else "the job"
    return f"decision {record.decision_key} ({what}, {job}, run {record.run_id})"


def _form(token: str, label: str) -> str:
    return ('<form method="post" action="confirm"><input type="hidden" name="token" value="'
            f'{html.escape(token, quote=True)}"><p><button type="submit">{html.escape(label)}</button></p></form>')


def handle_link(req: func.HttpRequest, *, signing_key: bytes | None, open_store: Callable[[], Any],
                now: float | None = None) -> func.HttpResponse:
    """The page a link in an email opens: it says what the link would do and offers a button
    that POSTs the token to ``/api/feedback/confirm``. It changes nothing, so a mail scanner that
    opens every link records no verdict and approves nothing.

    ``open_store`` is called only once the token is valid (and only to read), so forged or
    expired links never reach the store. ``now`` (epoch seconds) moves the clock in tests."""
    from shared.app.approvals import approval_state

    token = (req.route_params or {}).get("token", "")
    claim, error = _check(signing_key, token, time.time() if now is None else float(now))
    if error is not None:
        return error
    try:
        with open_store() as store:
            record = _bound_record(store, claim)
    except DecisionNotFound:
        return page(404, "Decision not found",
                    [f"No decision {claim.decision_key} of job {claim.job_id} is stored any more."])
    except (StoreError, ConfigError) as exc:
        log.warning("link page not shown: %s", exc)
        return page(503, "The decision store is unavailable", ["Please try the link again later."])
    headers = {"Content-Security-Policy": _CONFIRM_CSP}
    if claim.verdict in ("approve", "reject"):
        d = record.decision or {}
        proposed = d.get("proposed_action") or "retry"
        params = ", ".join(f"{k}={v}" for k, v in sorted((d.get("proposed_params") or {}).items()))
        state = approval_state(record)
        if state != "pending":
            return html_page(200, "Nothing to confirm",
                             [f"The approval request of {_describe(record)} is {state or 'not open'}; "
                              "nothing will change."], headers=headers)
        verb = "Approve" if claim.verdict == "approve" else "Reject"
        lead = (f"{verb} the proposed {proposed}" + (f" ({params})" if params else "") + f" of {_describe(record)}?")
        more = ("Approving sends the request to Databricks once, as the job's own identity."
                if claim.verdict == "approve" else "Rejecting records that no retry should be made.")
        return html_page(200, f"{verb} the proposed {proposed}?", [lead, more, "Nothing happens until you confirm."],
                         form=_form(token, f"{verb} {proposed}"), headers=headers)
    lead = f"Record that {_describe(record)} was {claim.verdict}?"
    return html_page(200, "Confirm your feedback", [lead, "Nothing is recorded until you confirm."],
                     form=_form(token, f"Yes, it was {claim.verdict}"), headers=headers)


# --- POST /api/feedback/confirm: the page's button -------------------------------------------------

def _token_from_body(req: func.HttpRequest) -> str | None:
    from urllib.parse import parse_qs

    raw = req.get_body() or b""
    if len(raw) > 4096:
        return None
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return None
    values = parse_qs(text, keep_blank_values=False, max_num_fields=5).get("token") or []
    return values[0] if len(values) == 1 else None


def handle_confirm(req: func.HttpRequest, *, signing_key: bytes | None, open_store: Callable[[], Any],
                   open_runtime: Callable[[], Any] | None = None, settings: "Settings | None" = None,
                   now: float | None = None) -> func.HttpResponse:
    """Carry out what a confirmed link says: record the verdict (idempotent), or approve / reject
    the proposed retry (single use: a token that was used once changes nothing again).

    The token is the credential and travels in the form body (never a cookie), so another site
    cannot make a browser confirm anything without the token itself. ``open_runtime`` gives a
    ``shared.app.runtime.Runtime`` (store, Databricks clients, notifier) for an approval."""
    from shared.learning.feedback import record_feedback
    from shared.signing import token_id

    token = _token_from_body(req)
    if not token:
        return page(400, "Nothing to confirm", ["The form did not carry one token. Open the link from the email "
                                                "again and press the button."])
    clock = time.time() if now is None else float(now)
    claim, error = _check(signing_key, token, clock)
    if error is not None:
        return error
    now_ms = int(clock * 1000)
    try:
        if claim.verdict in ("approve", "reject"):
            if open_runtime is None:
                return page(503, "Approvals are not set up here", ["Use: python -m shared approve|reject KEY"])
            return _confirm_approval(claim, token_id(token), open_runtime, now_ms)
        with open_store() as store:
            _bound_record(store, claim)
            record = record_feedback(store, claim.decision_key, claim.verdict, source="link", now_ms=now_ms,
                                     job_id=claim.job_id, settings=settings)
    except DecisionNotFound:
        return page(404, "Decision not found",
                    [f"No decision {claim.decision_key} of job {claim.job_id} is stored any more; nothing changed."])
    except ValueError as exc:
        return page(400, "This link is not valid", [str(exc)])
    except (TriageError, ConfigError) as exc:
        log.warning("link not confirmed: %s", exc)
        return page(503, "Nothing could be recorded",
                    ["The decision store (or Databricks) is unavailable. Please try again later."])
    fb = record.feedback or {}
    if fb.get("at") == now_ms:
        title, lead = "Thank you: feedback recorded", f"Recorded: {_describe(record)} was {claim.verdict}."
    else:
        title = "Feedback already recorded"
        lead = f"This verdict ({claim.verdict}) on {_describe(record)} was already recorded; nothing changed."
    paragraphs = [lead]
    if claim.verdict == "wrong" and not fb.get("correct_action"):
        paragraphs.append("To say what should have been done (it then decides the next failure like this one), "
                          f"run: python -m shared feedback {record.decision_key} --job {record.job_id} "
                          "--verdict wrong --action ACTION --comment TEXT")
    return page(200, title, paragraphs)


def _confirm_approval(claim: Any, used_id: str, open_runtime: Callable[[], Any], now_ms: int) -> func.HttpResponse:
    from shared.app.approvals import approve, reject
    from shared.app.runtime import workspace_for_host

    with open_runtime() as rt:
        store = rt.store
        record = _bound_record(store, claim)
        if store.state_get(_USED_KIND, used_id) is not None:
            return page(200, "This link was already used",
                        [f"This {claim.verdict} link of {_describe(record)} was used before; nothing changed."])
        # The approval's own pending -> approving move (under etag) is what makes it act once; the
        # used-link mark on top makes a replayed link say so, and is set only once it did its work.
        if claim.verdict == "reject":
            result = reject(rt.store, claim.decision_key, rt.settings, by="email link", job_id=claim.job_id,
                            now_ms=now_ms, source="link")
        else:
            result = approve(rt.store, claim.decision_key, rt.settings, by="email link", job_id=claim.job_id,
                             now_ms=now_ms, notifier=rt.notifier,
                             client_for=lambda r: rt.client(workspace_for_host(rt.settings, r.workspace)))
        ttl = max(60, int(claim.expires_at - now_ms // 1000) + 86400)
        store.state_put(_USED_KIND, used_id, {"decision_key": claim.decision_key, "verdict": claim.verdict,
                                              "at": now_ms}, if_absent=True, ttl_s=ttl)
    title = ("Approved" if result.state == "approved" and result.changed else
             "Rejected" if result.state == "rejected" and result.changed else "Nothing changed")
    return page(200, title, [result.message[:500]])
