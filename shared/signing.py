"""Signed, expiring feedback tokens for the links in triage emails.

A token says "whoever holds this may record verdict V on decision K of job J in workspace W
until time E". It is ``<payload>.<signature>``, both URL-safe base64 without padding, so it fits
in a URL path segment (``/api/feedback/{token}``):

- payload: compact JSON ``{"d": decision_key, "v": verdict, "e": expires_at, "j": job_id,
  "w": workspace}`` (seconds since the epoch, UTC). The job and workspace bind the token to one
  decision: decision keys are ``<run_id>-<repair_count>``, unique only within a job, so a link
  from job 10's email must not land on job 20's decision with the same key. Verdicts are
  ``correct``/``wrong`` (feedback) and ``approve``/``reject`` (an approval request);
- signature: HMAC-SHA256 over ``b"triage-feedback-v1." + payload`` with the key from the secret
  ``TRIAGE_FEEDBACK_SIGNING_KEY``.

The signature is checked (in constant time) before the payload is even parsed. Rotating the key
invalidates every link already sent. Tokens are not secret from the recipient (they are in the
email) but cannot be forged or altered without the key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone

__all__ = [
    "FeedbackClaim",
    "VERDICTS",
    "APPROVAL_VERDICTS",
    "MIN_KEY_BYTES",
    "MAX_TOKEN_LENGTH",
    "make_token",
    "verify_token",
    "token_id",
    "key_from_secret",
]

VERDICTS = ("correct", "wrong")     # the verdicts the email links offer
APPROVAL_VERDICTS = ("approve", "reject")   # the buttons of an approval request
MIN_KEY_BYTES = 16
MAX_TOKEN_LENGTH = 1024
_DOMAIN = b"triage-feedback-v1."
_VERDICT = re.compile(r"[a-z][a-z0-9_\-]{0,31}")
_MAX_KEY_CHARS = 256
_B64 = re.compile(r"[A-Za-z0-9_\-]+")


@dataclass(frozen=True)
class FeedbackClaim:
    """What a valid token grants: recording ``verdict`` on ``decision_key`` before ``expires_at``."""

    decision_key: str
    verdict: str
    expires_at: int
    job_id: str = ""          # the job the decision belongs to ("" only in tokens made unbound)
    workspace: str = ""       # the workspace host of the decision


def key_from_secret(value: str | bytes) -> bytes:
    """The signing key as bytes from the secret's text (used as-is, UTF-8). ValueError when it is
    too short to be a key (fewer than MIN_KEY_BYTES bytes)."""
    key = value if isinstance(value, bytes) else str(value).encode("utf-8")
    _check_key(key)
    return key


def make_token(key: bytes, decision_key: str, verdict: str, *, expires_at: int, job_id: str = "",
               workspace: str = "") -> str:
    """A signed token for ``verdict`` on ``decision_key`` (of ``job_id`` in ``workspace``), valid
    until ``expires_at`` (epoch s). Links in emails always bind the job and workspace."""
    _check_key(key)
    if not isinstance(decision_key, str) or not decision_key or len(decision_key) > _MAX_KEY_CHARS \
            or any(ord(c) < 32 for c in decision_key):
        raise ValueError("decision_key must be a non-empty printable string of at most 256 characters")
    if not isinstance(verdict, str) or not _VERDICT.fullmatch(verdict):
        raise ValueError(f"verdict {verdict!r} must be a short lower-case word such as {' or '.join(VERDICTS)}")
    if isinstance(expires_at, bool) or not isinstance(expires_at, int) or expires_at <= 0:
        raise ValueError("expires_at must be a positive whole number of seconds since the epoch")
    for name, value in (("job_id", job_id), ("workspace", workspace)):
        if not isinstance(value, str) or len(value) > _MAX_KEY_CHARS or any(ord(c) < 32 for c in value):
            raise ValueError(f"{name} must be a printable string of at most 256 characters")
    doc: dict[str, object] = {"d": decision_key, "v": verdict, "e": expires_at}
    if job_id:
        doc["j"] = job_id
    if workspace:
        doc["w"] = workspace
    payload = json.dumps(doc, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    body = _b64encode(payload)
    return f"{body}.{_b64encode(_sign(key, body))}"


def verify_token(key: bytes, token: str, *, now: int | float) -> FeedbackClaim:
    """Check a token and return what it grants. ValueError with the reason when the token is
    malformed, was not signed with ``key``, or has expired."""
    _check_key(key)
    if not isinstance(token, str) or not token:
        raise ValueError("malformed token: empty")
    if len(token) > MAX_TOKEN_LENGTH:
        raise ValueError("malformed token: too long")
    body, sep, sig = token.partition(".")
    if not sep or not body or not sig or "." in sig:
        raise ValueError("malformed token: expected <payload>.<signature>")
    if not _B64.fullmatch(body):
        raise ValueError("malformed token: the payload is not URL-safe base64")
    try:
        given = _b64decode(sig)
    except ValueError:
        raise ValueError("malformed token: the signature is not URL-safe base64") from None
    if not hmac.compare_digest(given, _sign(key, body)):
        raise ValueError("invalid signature: the token was altered or signed with another key")
    try:
        doc = json.loads(_b64decode(body))
    except (ValueError, UnicodeDecodeError):
        raise ValueError("malformed token: the payload is not JSON") from None
    if not isinstance(doc, dict):
        raise ValueError("malformed token: the payload is not an object")
    decision_key, verdict, expires_at = doc.get("d"), doc.get("v"), doc.get("e")
    if not isinstance(decision_key, str) or not decision_key or not isinstance(verdict, str) \
            or isinstance(expires_at, bool) or not isinstance(expires_at, int):
        raise ValueError("malformed token: the payload lacks a decision key, verdict or expiry")
    job_id, workspace = doc.get("j", ""), doc.get("w", "")
    if not isinstance(job_id, str) or not isinstance(workspace, str):
        raise ValueError("malformed token: the job or workspace is not a string")
    if now >= expires_at:
        when = datetime.fromtimestamp(expires_at, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        raise ValueError(f"expired: the link was valid until {when}")
    return FeedbackClaim(decision_key=decision_key, verdict=verdict, expires_at=expires_at, job_id=job_id,
                         workspace=workspace)


def token_id(token: str) -> str:
    """A short, stable id of a token (for single-use bookkeeping): never the token itself."""
    return hashlib.sha256(str(token).encode("utf-8")).hexdigest()[:40]


def _check_key(key: bytes) -> None:
    if not isinstance(key, (bytes, bytearray)):
        raise ValueError("the signing key must be bytes (see key_from_secret)")
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(
            f"the signing key (TRIAGE_FEEDBACK_SIGNING_KEY) must be at least {MIN_KEY_BYTES} bytes; "
            "generate one with: python -c \"import secrets; print(secrets.token_urlsafe(32))\""
        )


def _sign(key: bytes, body: str) -> bytes:
    return hmac.new(bytes(key), _DOMAIN + body.encode("ascii"), hashlib.sha256).digest()


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    if not _B64.fullmatch(text):
        raise ValueError("not URL-safe base64")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not URL-safe base64") from None
