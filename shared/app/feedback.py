"""HTTP feedback handling, without the Functions runtime: what the feedback triggers do.

- ``POST /api/feedback`` (function key): ``{"decision_key", "verdict": "correct"|"wrong",
  "correct_action"?, "correct_category"?, "comment"?, "job_id"?}`` -> 200 with the stored
  feedback; 400 with a message for bad input, 404 for an unknown decision, 413 for a body over
  16 KiB, 503 when the store is unreachable.
- ``GET /api/feedback/{token}`` (anonymous: the signed token is the credential): checks the
  HMAC-SHA256 signature (key: the ``TRIAGE_FEEDBACK_SIGNING_KEY`` secret, through
  ``shared.secrets``) and the expiry *before* touching the store, records the verdict
  (idempotent: a second click changes nothing) and answers a small self-contained HTML page.
  400 for a malformed or forged token, 410 for an expired one, 404 for an unknown decision,
  503 when the signing key or the store is missing.

``handle_post`` and ``handle_link`` take the store and key as arguments, so tests drive them with
real ``azure.functions.HttpRequest`` objects; ``blueprints/feedback.py`` only builds settings,
store and key from the environment.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any, Callable

import azure.functions as func

from shared.app.http import html_page, json_response
from shared.errors import ConfigError, DecisionNotFound, StoreError

if TYPE_CHECKING:  # pragma: no cover
    from shared.store.base import Store

__all__ = ["handle_post", "handle_link", "page", "json_response", "MAX_BODY_BYTES"]

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024
_FIELDS = {"decision_key", "verdict", "correct_action", "correct_category", "comment", "job_id"}


def page(status: int, title: str, paragraphs: list[str]) -> func.HttpResponse:
    return html_page(status, title, paragraphs)


# --- POST /api/feedback -------------------------------------------------------------------------

def handle_post(req: func.HttpRequest, *, store: Store, now_ms: int | None = None) -> func.HttpResponse:
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
                                 job_id=doc.get("job_id") or None)
    except ValueError as exc:
        return json_response(400, {"error": str(exc)})
    except DecisionNotFound as exc:
        return json_response(404, {"error": str(exc)})
    except (StoreError, ConfigError) as exc:
        log.warning("feedback not recorded: %s", exc)
        return json_response(503, {"error": "the decision store is unavailable; try again later"})
    fb = {k: v for k, v in record.feedback.items() if k != "history"}
    return json_response(200, {"decision_key": record.decision_key, "job_id": record.job_id, "feedback": fb})


# --- GET /api/feedback/{token} ------------------------------------------------------------------

def handle_link(req: func.HttpRequest, *, signing_key: bytes | None, open_store: Callable[[], Any],
                now: float | None = None) -> func.HttpResponse:
    """Record the verdict a signed email link carries and answer an HTML page.

    ``open_store`` is called only once the token is valid, so forged or expired links never
    reach the store. ``now`` (epoch seconds) moves the clock in tests."""
    from shared.learning.feedback import record_feedback
    from shared.signing import verify_token

    token = (req.route_params or {}).get("token", "")
    if not signing_key:
        return page(503, "Feedback links are not set up",
                     ["This app has no feedback signing key (TRIAGE_FEEDBACK_SIGNING_KEY). "
                      "Ask the team that runs it."])
    clock = time.time() if now is None else float(now)
    try:
        claim = verify_token(signing_key, token, now=clock)
    except ValueError:
        try:     # a valid signature whose time has passed: the link expired
            verify_token(signing_key, token, now=0)
        except ValueError:
            return page(400, "This feedback link is not valid",
                         ["The link is damaged or was not issued by this app. Copy the whole link "
                          "from the email, or reply to the email instead."])
        return page(410, "This feedback link has expired",
                     ["Feedback links are valid for a limited time. You can still give feedback "
                      "with: python -m shared feedback KEY --verdict correct|wrong"])
    now_ms = int(clock * 1000)
    try:
        with open_store() as store:
            record = record_feedback(store, claim.decision_key, claim.verdict, source="link", now_ms=now_ms)
    except DecisionNotFound:
        return page(404, "Decision not found",
                     [f"No decision {claim.decision_key} is stored any more, so nothing was recorded."])
    except ValueError as exc:
        return page(400, "This feedback link is not valid", [str(exc)])
    except (StoreError, ConfigError) as exc:
        log.warning("feedback link not recorded: %s", exc)
        return page(503, "Feedback could not be recorded",
                     ["The decision store is unavailable. Please try the link again later."])
    fb = record.feedback or {}
    what = f"{record.category or '?'} -> {record.action or '?'}"
    job = f"job {record.job_name or record.job_id}" if (record.job_name or record.job_id) else "the job"
    if fb.get("at") == now_ms:
        title = "Thank you: feedback recorded"
        lead = f"Recorded: the decision {record.decision_key} ({what}, {job}) was {claim.verdict}."
    else:
        title = "Feedback already recorded"
        lead = (f"This verdict ({claim.verdict}) on decision {record.decision_key} ({what}, {job}) "
                "was already recorded; nothing changed.")
    paragraphs = [lead]
    if claim.verdict == "wrong" and not fb.get("correct_action"):
        paragraphs.append("To say what should have been done, run: python -m shared feedback "
                          f"{record.decision_key} --verdict wrong --action ACTION --comment TEXT")
    return page(200, title, paragraphs)


